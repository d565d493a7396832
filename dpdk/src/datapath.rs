//! The forwarding loop: RX burst → contract → rewrite in the mbuf → TX burst.
//!
//! Per frame this runs exactly what `ShardedEngine`'s workers run: `prepare` (parse,
//! classify, hash), then `balance` on the [`Shard`] that owns the frame's flow-table set
//! (`set % shards`, at local index `set / shards`). `balance` writes the rewritten frame
//! into a reusable buffer (the contract's copy-out interface); [`Mbuf::write`] then puts
//! it back into the frame's own mbuf, growing into the headroom for IP-in-IP. So nothing
//! is allocated per frame, at the price of one extra copy of each forwarded frame.
//!
//! This loop runs one shard on the calling lcore (the EAL's main lcore). Several lcores,
//! each with an RX queue, are the `Shard` API's purpose but not wired yet: see README.md.

use crate::mbuf::Mbuf;
use crate::port::{Port, RxTimestampField};
use crate::Eal;
use flowgate_core::counters::Counters;
use flowgate_core::flow_table::FlowTable;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{balance, count_unbalanced, prepare, tick_of, Prepared};
use flowgate_core::rewrite::MAX_FRAME_LEN;
use flowgate_core::{Tables, Verdict};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One worker's share of the flow table and its counters.
#[derive(Debug, Clone)]
pub struct Shard {
    index: u32,
    count: u32,
    flows: FlowTable,
    counters: Counters,
}

/// What a shard did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Done(Verdict),
    /// The frame's set belongs to another shard: hand it (and its `Prepared`) over.
    OtherShard(u32),
}

impl Shard {
    /// Shard `index` of `count` for `tables`' flow-table geometry.
    pub fn new(tables: &Tables, index: u32, count: u32) -> Shard {
        let count = count.max(1);
        Shard {
            index,
            count,
            flows: FlowTable::new(tables.geometry.sets.div_ceil(count), tables.geometry.ways),
            counters: Counters::new(tables.vips.len(), tables.backends.len()),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The contract for one frame; when forwarded, the rewritten frame is in `out`.
    pub fn handle(
        &mut self,
        frame: &[u8],
        prepared: &Prepared,
        now: u32,
        tables: &Tables,
        out: &mut Vec<u8>,
    ) -> Handled {
        let verdict = match prepared {
            Prepared::Balance(b) => {
                if b.set % self.count != self.index {
                    return Handled::OtherShard(b.set % self.count);
                }
                balance(
                    frame,
                    b,
                    now,
                    tables,
                    &mut self.flows,
                    b.set / self.count,
                    &mut self.counters,
                    out,
                )
            }
            Prepared::Pass => Verdict::Pass,
            Prepared::Drop(r) => Verdict::Drop(*r),
        };
        if !matches!(prepared, Prepared::Balance(_)) {
            count_unbalanced(verdict, &mut self.counters);
        }
        Handled::Done(verdict)
    }
}

/// Where the flow table's ticks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Milliseconds of the TSC since the loop started: for live traffic.
    Tsc,
    /// The RX timestamp the PMD stored, in nanoseconds (net_pcap: the capture time, so a
    /// replay through DPDK ages flows exactly as `flowgate replay` does). Frames without
    /// one fall back to the TSC.
    RxTimestamp(RxTimestampField),
}

#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Frames per RX burst (DPDK's usual 32).
    pub burst: u16,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Stop when no frame arrived for this long (a pcap input has ended).
    pub idle_exit: Option<Duration>,
    pub clock: Clock,
    /// TX attempts before unsent frames are dropped (and counted in `tx_unsent`).
    pub tx_retries: u32,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            burst: 32,
            max_frames: None,
            idle_exit: None,
            clock: Clock::Tsc,
            tx_retries: 64,
        }
    }
}

/// The ports of one run: RX, where forwarded frames go, and optionally where passed
/// frames go (else they are counted and freed). `tx` and `pass` may be `rx` itself.
pub struct Ports<'a> {
    pub rx: &'a Port,
    pub tx: &'a Port,
    pub pass: Option<&'a Port>,
}

/// What happened besides the contract's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoCounters {
    /// Frames taken from the RX port.
    pub received: u64,
    /// Forwarded frames the TX port accepted.
    pub sent: u64,
    /// Passed frames the pass port accepted.
    pub passed_sent: u64,
    /// Frames the TX (or pass) port would not take after all retries: freed.
    pub tx_unsent: u64,
    /// Forwarded frames whose rewrite did not fit their mbuf: freed.
    pub rewrite_no_room: u64,
    /// Time from the first frame received to the last frame handled.
    pub busy: Duration,
}

impl IoCounters {
    /// Millions of frames per second over [`IoCounters::busy`].
    pub fn mpps(&self) -> f64 {
        let s = self.busy.as_secs_f64();
        if s > 0.0 {
            self.received as f64 / s / 1e6
        } else {
            0.0
        }
    }
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct RunReport {
    pub counters: Counters,
    pub io: IoCounters,
}

fn send_all(port: &Port, frames: &mut Vec<Mbuf>, retries: u32) -> (u64, u64) {
    let mut sent = 0;
    for _ in 0..=retries {
        if frames.is_empty() {
            break;
        }
        sent += port.tx_burst(0, frames) as u64;
    }
    let unsent = frames.len() as u64;
    frames.clear();
    (sent, unsent)
}

/// Forward until `stop` is set, `max_frames` were read or the input stayed idle for
/// `idle_exit`.
pub fn run(
    eal: &Eal,
    ports: &Ports<'_>,
    tables: &Tables,
    config: &LoopConfig,
    stop: &AtomicBool,
) -> RunReport {
    let mut shard = Shard::new(tables, 0, 1);
    let hasher = FlowHasher::new(&tables.keys);
    let mut io = IoCounters::default();
    let burst = config.burst.max(1);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut forward: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut pass: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut out = Vec::with_capacity(MAX_FRAME_LEN);
    let mut scratch = Vec::new();
    let hz = eal.tsc_hz().max(1);
    let tsc_start = eal.tsc_cycles();
    let mut first_rx: Option<Instant> = None;
    let mut last_rx = Instant::now();

    while !stop.load(Ordering::Relaxed) {
        let want = match config.max_frames {
            Some(max) if io.received >= max => break,
            Some(max) => (max - io.received).min(burst as u64) as u16,
            None => burst,
        };
        let n = ports.rx.rx_burst(0, &mut rx, want);
        if n == 0 {
            if let Some(idle) = config.idle_exit {
                if last_rx.elapsed() >= idle {
                    break;
                }
            }
            continue;
        }
        last_rx = Instant::now();
        first_rx.get_or_insert(last_rx);
        io.received += n as u64;
        let tsc_now = || {
            let ms = (eal.tsc_cycles().wrapping_sub(tsc_start) as u128 * 1000) / hz as u128;
            ms as u32
        };
        for mut m in rx.drain(..) {
            let now = match config.clock {
                Clock::RxTimestamp(f) => m
                    .rx_timestamp(f.offset, f.flag)
                    .map(|ns| tick_of(Duration::from_nanos(ns)))
                    .unwrap_or_else(tsc_now),
                Clock::Tsc => tsc_now(),
            };
            let frame = m.bytes(&mut scratch);
            let prepared = prepare(frame, tables, &hasher);
            let verdict = match shard.handle(frame, &prepared, now, tables, &mut out) {
                Handled::Done(v) => v,
                Handled::OtherShard(_) => unreachable!("a single shard owns every set"),
            };
            match verdict {
                Verdict::Forward { .. } => match m.write(&out) {
                    Ok(()) => forward.push(m),
                    Err(_) => io.rewrite_no_room += 1,
                },
                Verdict::Pass if ports.pass.is_some() => pass.push(m),
                Verdict::Pass | Verdict::Drop(_) => {}
            }
        }
        let (sent, unsent) = send_all(ports.tx, &mut forward, config.tx_retries);
        io.sent += sent;
        io.tx_unsent += unsent;
        if let Some(p) = ports.pass {
            let (sent, unsent) = send_all(p, &mut pass, config.tx_retries);
            io.passed_sent += sent;
            io.tx_unsent += unsent;
        }
        io.busy = first_rx.map(|t| t.elapsed()).unwrap_or_default();
    }
    RunReport {
        counters: shard.counters().clone(),
        io,
    }
}
