//! The [`DataPath`] trait: what a long-running balancer runs on its data-path thread,
//! whatever its I/O. `flowgate run` (the daemon, `flowgate_driver::daemon`) is written
//! once over it: the pcap data path here ([`PcapDataPath`], any [`Engine`] fed from a
//! trace file) and the DPDK one (`flowgate_dpdk::daemon::DpdkDataPath`, lcores polling
//! ports) both follow the control plane's [`TablesWatch`], publish their counters on a
//! [`CountersBoard`] and stop when asked.

use crate::engine::{Engine, EngineError, Outputs};
use crate::handoff::{CountersBoard, TablesWatch};
use crate::pcap_io::{PcapSink, PcapSource};
use flowgate_core::counters::Counters;
use flowgate_core::Tables;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a data path hands back when it stops, for the final summary.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The tables in force at the end (the summary names VIPs and backends from them).
    pub tables: Arc<Tables>,
    pub counters: Counters,
    /// Flow-table shards (worker threads or lcores).
    pub shards: usize,
    /// What the I/O layer adds to the summary (DPDK: ports, queues, rates), if anything.
    pub io: Option<IoReport>,
}

/// A data path's own section of the summary.
#[derive(Debug, Clone)]
pub struct IoReport {
    /// The JSON summary's key for it (e.g. `dpdk`).
    pub key: &'static str,
    pub json: serde_json::Value,
    /// One line for the text summary.
    pub line: String,
}

/// The data-path side of a running balancer.
pub trait DataPath {
    /// Forward on the calling thread until `stop` is set or the input ends, taking every
    /// table version `watch` publishes between bursts and publishing the counters on
    /// `board` about every `publish_every` (each publication tagged with the oldest
    /// table version any part of the data path was running), and once more at the end.
    fn run(
        &mut self,
        watch: &TablesWatch,
        board: &CountersBoard,
        publish_every: Duration,
        stop: &AtomicBool,
    ) -> Result<Finished, EngineError>;
}

/// How [`PcapDataPath`] reads its input.
#[derive(Debug, Clone)]
pub struct PcapOptions {
    pub input: PathBuf,
    /// Where forwarded frames go.
    pub output: PathBuf,
    /// Where frames for no VIP go, untouched (else they are counted only).
    pub passed: Option<PathBuf>,
    /// Frames per burst; new tables are taken between bursts.
    pub burst: usize,
    /// Replay at the capture's own pace instead of as fast as possible.
    pub pace: bool,
    /// Start the input again at its end (timestamps keep increasing) until stopped.
    pub repeat: bool,
}

/// A data path that reads a trace file and writes what an [`Engine`] forwards.
pub struct PcapDataPath {
    engine: Box<dyn Engine>,
    options: PcapOptions,
}

impl PcapDataPath {
    pub fn new(engine: Box<dyn Engine>, options: PcapOptions) -> PcapDataPath {
        PcapDataPath { engine, options }
    }
}

impl DataPath for PcapDataPath {
    fn run(
        &mut self,
        watch: &TablesWatch,
        board: &CountersBoard,
        publish_every: Duration,
        stop: &AtomicBool,
    ) -> Result<Finished, EngineError> {
        let o = &self.options;
        let engine = &mut self.engine;
        let mut seen = watch.version();
        engine.program(watch.load())?;
        let mut output = PcapSink::create(&o.output)?;
        let mut passed = o.passed.as_deref().map(PcapSink::create).transpose()?;
        let burst_len = o.burst.max(1);
        let mut burst = Vec::with_capacity(burst_len);
        let started = Instant::now();
        let mut published = Instant::now();
        // Pacing: the first frame's timestamp is the run's start.
        let mut epoch: Option<Duration> = None;
        // Added to every timestamp of the current pass over the input, so that a looped
        // trace's time (and with it the flow-table ticks) keeps moving forward.
        let mut offset = Duration::ZERO;
        'passes: loop {
            let mut source = PcapSource::open(&o.input)?;
            let mut span: Option<(Duration, Duration)> = None;
            loop {
                if stop.load(Ordering::Relaxed) {
                    break 'passes;
                }
                burst.clear();
                if source.read_burst(burst_len, &mut burst)? == 0 {
                    break;
                }
                for f in burst.iter_mut() {
                    span = Some(span.map_or((f.ts, f.ts), |(a, _)| (a, f.ts)));
                    f.ts += offset;
                }
                if o.pace {
                    let first = *epoch.get_or_insert(burst[0].ts);
                    let due = burst[0].ts.saturating_sub(first);
                    // Sleep in short steps so a stop request is seen promptly.
                    while started.elapsed() < due && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(
                            (due - started.elapsed()).min(Duration::from_millis(50)),
                        );
                    }
                }
                if let Some(tables) = watch.changed(&mut seen) {
                    engine.program(tables)?;
                }
                let frames = &burst;
                let mut outputs = Outputs {
                    forwarded: &mut output,
                    passed: passed.as_mut(),
                };
                engine.process(frames, &mut |i, leaving| {
                    Ok(outputs.write(frames[i].ts, leaving)?)
                })?;
                if published.elapsed() >= publish_every {
                    board.publish(engine.counters()?, seen);
                    published = Instant::now();
                }
            }
            match span {
                Some((first, last)) if o.repeat => {
                    offset += last.saturating_sub(first) + Duration::from_millis(1);
                }
                // An empty input would loop without doing anything.
                _ => break,
            }
        }
        let counters = engine.counters()?;
        board.publish(counters.clone(), seen);
        output.finish()?;
        if let Some(p) = passed {
            p.finish()?;
        }
        Ok(Finished {
            tables: engine.programmed(),
            counters,
            shards: engine.shards(),
            io: None,
        })
    }
}
