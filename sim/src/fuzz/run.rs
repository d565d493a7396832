//! One case through two engines, compared: every frame that leaves (forwarded or passed,
//! its bytes, in order) and every counter, read after the last frame before each event
//! and at the end.
//!
//! Events apply as `flowgate replay` applies them (`flowgate_driver::replay::run`): before
//! the first frame at or after the first frame's time plus `at_ms`, through a control
//! plane of the engine's own that checks them as the admin API does; the engine then takes
//! the tables it publishes. The frames between two events go to the engine as one burst.

use super::case::{reload_name, Case};
use crate::hw::Backpressure;
use flowgate_core::counters::Counters;
use flowgate_core::Tables;
use flowgate_driver::events::{self, ControlEvent};
use flowgate_driver::ControlPlane;
use flowgate_host::engine::{Engine, EngineError, Leaving};
use flowgate_host::pcap_io::Frame;
use std::path::Path;
use std::sync::Arc;

/// Makes the engine under test for a case, programmed with its first tables, with the
/// case's backpressure on its output (an engine without an output stream ignores it).
pub type EngineFactory<'a> =
    dyn FnMut(Arc<Tables>, Option<Backpressure>) -> Result<Box<dyn Engine>, EngineError> + 'a;

/// A frame that left an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// The input frame it came from.
    pub input: usize,
    pub passed: bool,
    pub data: Vec<u8>,
}

/// Everything an engine did with a case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Run {
    pub outputs: Vec<Out>,
    /// Counters before each event that applies, then at the end.
    pub counters: Vec<Counters>,
}

/// What became of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both engines sent the same frames and counted the same.
    Same { frames_out: usize, events: usize },
    /// The config or an event is not one the control plane or the hardware takes (a
    /// refusal, not a difference): the reason.
    Refused(String),
    /// The engines disagree: the first difference.
    Differs(String),
}

/// Why an engine could not run a case: the configuration side (refused) or the engine.
enum Failure {
    Refused(String),
    Engine(String),
}

/// The case's config, events and reloads as the driver reads them, from files in a
/// scratch directory (reload events name their config files).
struct Loaded {
    config: flowgate_driver::Config,
    events: Vec<ControlEvent>,
    _dir: tempfile::TempDir,
}

fn load(case: &Case) -> Result<Loaded, String> {
    let dir = tempfile::Builder::new()
        .prefix("flowgate-hwfuzz.")
        .tempdir()
        .map_err(|e| format!("scratch directory: {e}"))?;
    let config_text = toml::to_string(&case.config).map_err(|e| e.to_string())?;
    for (i, r) in case.reloads.iter().enumerate() {
        let text = toml::to_string(r).map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join(reload_name(i)), text).map_err(|e| e.to_string())?;
    }
    let config =
        flowgate_driver::parse_str(&config_text, "config.toml").map_err(|e| e.to_string())?;
    let events = events::parse_str(&case.events_toml(), "events.toml", dir.path())
        .map_err(|e| e.to_string())?;
    Ok(Loaded {
        config,
        events,
        _dir: dir,
    })
}

fn drive(
    engine: &mut dyn Engine,
    control: &ControlPlane,
    events: &[ControlEvent],
    frames: &[Frame],
) -> Result<Run, Failure> {
    let engine_err = |e: EngineError| Failure::Engine(e.to_string());
    let mut run = Run::default();
    let Some(t0) = frames.first().map(|f| f.ts) else {
        run.counters.push(engine.counters().map_err(engine_err)?);
        return Ok(run);
    };
    let due = |next: usize, ts| events.get(next).is_some_and(|e| t0 + e.at <= ts);
    let (mut start, mut next) = (0, 0);
    while start < frames.len() {
        if due(next, frames[start].ts) {
            run.counters.push(engine.counters().map_err(engine_err)?);
            while due(next, frames[start].ts) {
                events::apply(control, &events[next])
                    .map_err(|e| Failure::Refused(e.to_string()))?;
                next += 1;
            }
            engine.program(control.tables()).map_err(engine_err)?;
            continue;
        }
        let mut end = start;
        while end < frames.len() && !due(next, frames[end].ts) {
            end += 1;
        }
        let outputs = &mut run.outputs;
        engine
            .process(&frames[start..end], &mut |i, leaving| {
                let (passed, data) = match leaving {
                    Leaving::Forwarded(d) => (false, d),
                    Leaving::Passed(d) => (true, d),
                };
                outputs.push(Out {
                    input: start + i,
                    passed,
                    data: data.to_vec(),
                });
                Ok(())
            })
            .map_err(engine_err)?;
        start = end;
    }
    run.counters.push(engine.counters().map_err(engine_err)?);
    Ok(run)
}

/// The first difference between two runs, if any. Frames are compared by kind and bytes
/// in order; the input each came from is shown but not compared (the hardware engine
/// finds it by matching bytes, and two equal inputs are indistinguishable).
pub fn compare(model: &Run, other: &Run) -> Option<String> {
    for (k, (m, o)) in model.outputs.iter().zip(&other.outputs).enumerate() {
        if m.passed != o.passed || m.data != o.data {
            let kind = |p: bool| if p { "passed" } else { "forwarded" };
            let at = m
                .data
                .iter()
                .zip(&o.data)
                .position(|(a, b)| a != b)
                .unwrap_or(m.data.len().min(o.data.len()));
            return Some(format!(
                "output {k}: model {} {} bytes (input {}), engine {} {} bytes (input {}); \
                 first differing byte at {at}",
                kind(m.passed),
                m.data.len(),
                m.input,
                kind(o.passed),
                o.data.len(),
                o.input
            ));
        }
    }
    if model.outputs.len() != other.outputs.len() {
        let (longer, who) = if model.outputs.len() > other.outputs.len() {
            (&model.outputs, "model")
        } else {
            (&other.outputs, "engine")
        };
        let extra = &longer[model.outputs.len().min(other.outputs.len())];
        return Some(format!(
            "the model sent {} frames, the engine {}; the first extra one ({}) is input {}",
            model.outputs.len(),
            other.outputs.len(),
            who,
            extra.input
        ));
    }
    for (k, (m, o)) in model.counters.iter().zip(&other.counters).enumerate() {
        if m != o {
            let at = if k + 1 == model.counters.len() {
                "at the end".to_string()
            } else {
                format!("before event {k}")
            };
            return Some(format!("counters {at}: {}", counter_diff(m, o).join("; ")));
        }
    }
    None
}

fn counter_diff(m: &Counters, o: &Counters) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |name: String, a: u64, b: u64| {
        if a != b {
            d.push(format!("{name}: model {a}, engine {b}"));
        }
    };
    field("frames_in".into(), m.frames_in, o.frames_in);
    field("forwarded".into(), m.forwarded, o.forwarded);
    field("passed".into(), m.passed, o.passed);
    for (i, (a, b)) in m.drops.iter().zip(&o.drops).enumerate() {
        field(format!("drops[{i}]"), *a, *b);
    }
    for (i, (a, b)) in m.vips.iter().zip(&o.vips).enumerate() {
        field(format!("vip {i} packets"), a.packets, b.packets);
        field(format!("vip {i} bytes"), a.bytes, b.bytes);
    }
    for (i, (a, b)) in m.backends.iter().zip(&o.backends).enumerate() {
        field(format!("backend {i} packets"), a.packets, b.packets);
        field(format!("backend {i} bytes"), a.bytes, b.bytes);
    }
    if m.flow != o.flow {
        d.push(format!("flow: model {:?}, engine {:?}", m.flow, o.flow));
    }
    if d.is_empty() {
        d.push(format!(
            "slot counts: model {} VIPs {} backends, engine {} {}",
            m.vips.len(),
            m.backends.len(),
            o.vips.len(),
            o.backends.len()
        ));
    }
    d
}

/// Run `case` through the software engine and through `make(tables)`, and compare.
pub fn check(case: &Case, make: &mut EngineFactory<'_>) -> Verdict {
    let loaded = match load(case) {
        Ok(l) => l,
        Err(reason) => return Verdict::Refused(reason),
    };
    let model_control = ControlPlane::new(loaded.config.clone(), None);
    let mut model = flowgate_host::ShardedEngine::new((*model_control.tables()).clone(), 1);
    let model_run = match drive(&mut model, &model_control, &loaded.events, &case.frames) {
        Ok(r) => r,
        Err(Failure::Refused(r)) => return Verdict::Refused(r),
        Err(Failure::Engine(e)) => return Verdict::Refused(format!("model engine: {e}")),
    };
    let control = ControlPlane::new(loaded.config, None);
    let backpressure = case.stream.map(|s| s.backpressure());
    let mut engine = match make(control.tables(), backpressure) {
        Ok(e) => e,
        Err(e) => return Verdict::Refused(format!("engine refused the config: {e}")),
    };
    let name = engine.name().to_string();
    let run = match drive(&mut *engine, &control, &loaded.events, &case.frames) {
        Ok(r) => r,
        Err(Failure::Refused(r)) => return Verdict::Refused(r),
        Err(Failure::Engine(e)) => return Verdict::Differs(format!("{name} engine failed: {e}")),
    };
    match compare(&model_run, &run) {
        Some(d) => Verdict::Differs(d),
        None => Verdict::Same {
            frames_out: run.outputs.len(),
            events: loaded.events.len(),
        },
    }
}

/// [`check`] on the case in `dir` (see [`Case::read_dir`]).
pub fn check_dir(dir: &Path, make: &mut EngineFactory<'_>) -> Result<Verdict, String> {
    let case = Case::read_dir(dir).map_err(|e| e.to_string())?;
    Ok(check(&case, make))
}
