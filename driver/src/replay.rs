//! The replay driver: a trace through any [`Engine`] (the software model, the rust-hdl or
//! Verilator simulation of the hardware), with control events (backend down/up, weight,
//! reload: [`crate::events`]) applied at frame times, and every frame that leaves sent to
//! its output file. Written once: `flowgate replay --engine model|rtl|verilator` all come
//! through here, so the engines see the same bursts, the same events between the same
//! frames, and their outputs can be compared byte for byte.

use crate::control::ControlPlane;
use crate::events::{self, ApplyError, ControlEvent};
pub use flowgate_host::engine::Outputs;
use flowgate_host::engine::{Engine, EngineError};
use flowgate_host::pcap_io::{Frame, PcapError, PcapSource};
use std::time::Duration;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error(transparent)]
    Event(#[from] ApplyError),
    #[error("{engine} engine: {source}")]
    Engine { engine: String, source: EngineError },
}

/// Replay `source` through `engine` in bursts of at most `burst` frames (split where an
/// event falls, so each event applies between the right two frames). An event at `at`
/// applies before the first frame whose timestamp is at least the first frame's plus
/// `at`; the control plane checks it as the admin API would and the engine takes the
/// tables it publishes. `progress` sees every burst read.
pub fn run(
    engine: &mut dyn Engine,
    control: &ControlPlane,
    events: &[ControlEvent],
    source: &mut PcapSource,
    mut outputs: Outputs<'_>,
    burst: usize,
    progress: &mut dyn FnMut(&[Frame]),
) -> Result<(), ReplayError> {
    let engine_err = |engine: &dyn Engine, source: EngineError| ReplayError::Engine {
        engine: engine.name().to_string(),
        source,
    };
    let mut first: Option<Duration> = None;
    let mut next_event = 0;
    let mut frames = Vec::with_capacity(burst.max(1));
    loop {
        frames.clear();
        if source.read_burst(burst.max(1), &mut frames)? == 0 {
            return Ok(());
        }
        let mut start = 0;
        while start < frames.len() {
            let t0 = *first.get_or_insert(frames[start].ts);
            let mut end = start;
            while end < frames.len() && !event_due(events, next_event, t0, frames[end].ts) {
                end += 1;
            }
            if end == start {
                while event_due(events, next_event, t0, frames[start].ts) {
                    events::apply(control, &events[next_event])?;
                    next_event += 1;
                }
                engine
                    .program(control.tables())
                    .map_err(|e| engine_err(engine, e))?;
                continue;
            }
            let chunk = &frames[start..end];
            let mut write_error = None;
            let result = engine.process(chunk, &mut |i, leaving| {
                outputs.write(chunk[i].ts, leaving).map_err(|e| {
                    let message = e.to_string();
                    write_error = Some(e);
                    message.into()
                })
            });
            if let Some(e) = write_error {
                return Err(e.into());
            }
            result.map_err(|e| engine_err(engine, e))?;
            start = end;
        }
        progress(&frames);
    }
}

/// Whether the event at `next` is due before a frame at `ts`.
fn event_due(events: &[ControlEvent], next: usize, first: Duration, ts: Duration) -> bool {
    events.get(next).is_some_and(|e| first + e.at <= ts)
}
