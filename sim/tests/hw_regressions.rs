//! Differential fuzzing (`flowgate_sim::fuzz`): every stored regression case
//! (`sim/tests/hw-regressions/NAME/`, written by `flowgate-hw-fuzz` when a case differed,
//! shrunk) runs through the Verilator build of its top and through the software engine
//! with the same output frames and counters; a few seeds do too; a planted difference is
//! found, shrunk to a small case, written and read back; a seed makes the same case and
//! seeds cover every mode, persistence, event kind, backpressure and table overflow.

use flowgate_core::Tables;
use flowgate_host::engine::{Engine, EngineError, Leaving};
use flowgate_host::pcap_io::Frame;
use flowgate_host::ShardedEngine;
use flowgate_sim::fuzz::{self, Case, Sizes, Verdict};
use flowgate_sim::hw::{Backpressure, Simulator};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn small() -> &'static flowgate_hdl::profile::HwProfile {
    fuzz::profile_of(flowgate_hdl::Design::Top).expect("the small profile's top")
}

#[test]
fn every_regression_case_is_the_same_through_verilator_and_the_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hw-regressions");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    dirs.sort();
    eprintln!("{} regression cases in {}", dirs.len(), root.display());
    for dir in dirs {
        let meta = Case::read_meta(&dir).unwrap_or_else(|e| panic!("{e}"));
        let design = flowgate_hdl::Design::from_name(&meta.design)
            .unwrap_or_else(|| panic!("{}: no design {}", dir.display(), meta.design));
        let mut make = fuzz::hardware(Simulator::Verilator, design);
        let verdict = fuzz::check_dir(&dir, &mut make).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(verdict, Verdict::Same { .. }),
            "{} ({}): {verdict:?}",
            dir.display(),
            meta.note
        );
    }
}

#[test]
fn a_few_small_seeds_are_the_same_through_verilator_and_the_model() {
    let sizes = Sizes {
        frames: 300,
        overflow_every: 0,
    };
    let mut make = fuzz::hardware(Simulator::Verilator, flowgate_hdl::Design::Top);
    let mut compared = 0;
    for seed in 0..4 {
        let case = fuzz::generate(seed, small(), sizes);
        match fuzz::check(&case, &mut make) {
            Verdict::Same { frames_out, .. } => {
                assert!(frames_out > 0, "seed {seed}: nothing left either engine");
                compared += case.frames.len();
            }
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    assert!(compared > 0);
}

#[test]
fn a_seed_makes_the_same_case_and_cases_vary() {
    let sizes = Sizes::default();
    let a = fuzz::generate(42, small(), sizes);
    assert_eq!(a, fuzz::generate(42, small(), sizes));
    assert_ne!(a, fuzz::generate(43, small(), sizes));
    // Across seeds: every mode and persistence, events of every kind, overflow cases.
    let cases: Vec<Case> = (0..40).map(|s| fuzz::generate(s, small(), sizes)).collect();
    let vips = || cases.iter().flat_map(|c| &c.config.vip);
    for mode in ["dsr", "ipip", "gue"] {
        assert!(vips().any(|v| v.mode == mode), "no {mode} VIP");
    }
    for p in ["5tuple", "src-ip"] {
        assert!(vips().any(|v| v.persistence == p), "no {p} VIP");
    }
    for action in ["down", "up", "weight", "reload"] {
        assert!(
            cases
                .iter()
                .flat_map(|c| &c.events)
                .any(|e| e.action == action),
            "no {action} event"
        );
    }
    assert!(
        cases.iter().any(|c| c.stream.is_some()) && cases.iter().any(|c| c.stream.is_none()),
        "backpressure in some cases, not in all"
    );
    let entries = (small().sets * small().ways) as usize;
    assert!(
        cases.iter().any(|c| c.frames.len() > entries),
        "no case with more frames than the flow table has entries"
    );
}

/// The software engine with a planted bug: a forwarded frame of 100 bytes or more whose
/// length is 3 mod 7 leaves with its last byte flipped.
struct Planted(ShardedEngine);

impl Engine for Planted {
    fn name(&self) -> &str {
        "planted"
    }
    fn program(&mut self, tables: Arc<Tables>) -> Result<(), EngineError> {
        Engine::program(&mut self.0, tables)
    }
    fn programmed(&self) -> Arc<Tables> {
        Engine::programmed(&self.0)
    }
    fn process(
        &mut self,
        frames: &[Frame],
        emit: &mut dyn FnMut(usize, Leaving<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        Engine::process(&mut self.0, frames, &mut |i, leaving| match leaving {
            Leaving::Forwarded(d) if d.len() >= 100 && d.len() % 7 == 3 => {
                let mut d = d.to_vec();
                *d.last_mut().expect("long frame") ^= 1;
                emit(i, Leaving::Forwarded(&d))
            }
            other => emit(i, other),
        })
    }
    fn counters(&mut self) -> Result<flowgate_core::counters::Counters, EngineError> {
        Engine::counters(&mut self.0)
    }
    fn shards(&self) -> usize {
        1
    }
}

#[test]
fn a_planted_difference_shrinks_to_a_small_case_that_reproduces_from_its_files() {
    let mut planted =
        |t: Arc<Tables>, _: Option<Backpressure>| -> Result<Box<dyn Engine>, EngineError> {
            Ok(Box::new(Planted(ShardedEngine::new((*t).clone(), 1))))
        };
    let sizes = Sizes {
        frames: 400,
        overflow_every: 0,
    };
    let (case, difference) = (0..50)
        .find_map(|seed| {
            let case = fuzz::generate(seed, small(), sizes);
            match fuzz::check(&case, &mut planted) {
                Verdict::Differs(d) => Some((case, d)),
                _ => None,
            }
        })
        .expect("the planted bug shows within 50 seeds");
    let shrunk = fuzz::shrink(&case, &difference, &mut planted, Duration::from_secs(120));
    assert!(
        shrunk.case.frames.len() <= 2 && shrunk.case.events.is_empty(),
        "shrunk to {} frames and {} events",
        shrunk.case.frames.len(),
        shrunk.case.events.len()
    );
    assert!(
        shrunk.difference.contains("output 0"),
        "{}",
        shrunk.difference
    );
    let dir = tempfile::tempdir().unwrap();
    let meta = fuzz::CaseMeta {
        design: "top".into(),
        seed: 0,
        note: shrunk.difference.clone(),
    };
    shrunk.case.write_dir(dir.path(), Some(&meta)).unwrap();
    assert_eq!(Case::read_dir(dir.path()).unwrap(), shrunk.case);
    assert_eq!(Case::read_meta(dir.path()).unwrap(), meta);
    assert!(matches!(
        fuzz::check_dir(dir.path(), &mut planted).unwrap(),
        Verdict::Differs(_)
    ));
    // Through an engine without the bug, the same files are the same.
    let mut model =
        |t: Arc<Tables>, _: Option<Backpressure>| -> Result<Box<dyn Engine>, EngineError> {
            Ok(Box::new(ShardedEngine::new((*t).clone(), 1)))
        };
    assert!(matches!(
        fuzz::check_dir(dir.path(), &mut model).unwrap(),
        Verdict::Same { .. }
    ));
}
