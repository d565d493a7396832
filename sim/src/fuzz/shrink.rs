//! Shrinking a case that differs: delta debugging over the frames (drop chunks, halving
//! the chunk size down to single frames), then over the events (drop each; drop the
//! reload configs no event names), then over the config (drop the backpressure, each
//! VIP, then each backend, from the config and every reload). A step is kept when the case still
//! differs; a refused case (an event naming what was dropped) counts as not differing.

use super::case::{reload_name, Case};
use super::run::{check, EngineFactory, Verdict};
use std::time::{Duration, Instant};

/// A shrunk case and what it shows.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub case: Case,
    /// The shrunk case's difference.
    pub difference: String,
    /// Cases tried.
    pub tries: usize,
}

struct Shrinker<'a, 'b> {
    make: &'a mut EngineFactory<'b>,
    deadline: Instant,
    tries: usize,
    difference: String,
}

impl Shrinker<'_, '_> {
    fn differs(&mut self, case: &Case) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        self.tries += 1;
        match check(case, self.make) {
            Verdict::Differs(d) => {
                self.difference = d;
                true
            }
            _ => false,
        }
    }

    fn frames(&mut self, case: &mut Case) {
        let mut chunk = case.frames.len().div_ceil(2).max(1);
        loop {
            let mut start = 0;
            while start < case.frames.len() {
                let end = (start + chunk).min(case.frames.len());
                let mut trial = case.clone();
                trial.frames.drain(start..end);
                if self.differs(&trial) {
                    *case = trial;
                } else {
                    start = end;
                }
            }
            if chunk == 1 || Instant::now() >= self.deadline {
                return;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    fn events(&mut self, case: &mut Case) {
        let mut i = 0;
        while i < case.events.len() {
            let mut trial = case.clone();
            trial.events.remove(i);
            if self.differs(&trial) {
                *case = trial;
            } else {
                i += 1;
            }
        }
        // Reload configs no event names any more: drop them, renaming the others.
        let named: Vec<usize> = (0..case.reloads.len())
            .filter(|&i| {
                case.events
                    .iter()
                    .any(|e| e.config.as_deref() == Some(reload_name(i).as_str()))
            })
            .collect();
        if named.len() < case.reloads.len() {
            let mut trial = case.clone();
            trial.reloads = named.iter().map(|&i| case.reloads[i].clone()).collect();
            for e in &mut trial.events {
                if let Some(pos) = named
                    .iter()
                    .position(|&i| e.config.as_deref() == Some(reload_name(i).as_str()))
                {
                    e.config = Some(reload_name(pos));
                }
            }
            if self.differs(&trial) {
                *case = trial;
            }
        }
    }

    fn config(&mut self, case: &mut Case) {
        if case.stream.is_some() {
            let trial = Case {
                stream: None,
                ..case.clone()
            };
            if self.differs(&trial) {
                *case = trial;
            }
        }
        let mut v = 0;
        while v < case.config.vip.len() && case.config.vip.len() > 1 {
            let name = case.config.vip[v].name.clone();
            let mut trial = case.clone();
            for c in std::iter::once(&mut trial.config).chain(trial.reloads.iter_mut()) {
                if c.vip.len() > 1 {
                    c.vip.retain(|x| x.name != name);
                }
            }
            if self.differs(&trial) {
                *case = trial;
            } else {
                v += 1;
            }
        }
        for v in 0..case.config.vip.len() {
            let mut b = 0;
            while b < case.config.vip[v].backend.len() && case.config.vip[v].backend.len() > 1 {
                let (name, address) = (
                    case.config.vip[v].name.clone(),
                    case.config.vip[v].backend[b].address.clone(),
                );
                let mut trial = case.clone();
                for c in std::iter::once(&mut trial.config).chain(trial.reloads.iter_mut()) {
                    for x in c.vip.iter_mut().filter(|x| x.name == name) {
                        if x.backend.len() > 1 {
                            x.backend.retain(|y| y.address != address);
                        }
                    }
                }
                if self.differs(&trial) {
                    *case = trial;
                } else {
                    b += 1;
                }
            }
        }
    }
}

/// Shrink `case`, which differs as `difference` says, within `budget`; the frames, the
/// events, the config, then the frames again (fewer VIPs may free more of them).
pub fn shrink(
    case: &Case,
    difference: &str,
    make: &mut EngineFactory<'_>,
    budget: Duration,
) -> Shrunk {
    let mut s = Shrinker {
        make,
        deadline: Instant::now() + budget,
        tries: 0,
        difference: difference.to_string(),
    };
    let mut case = case.clone();
    s.frames(&mut case);
    s.events(&mut case);
    s.config(&mut case);
    s.frames(&mut case);
    // The difference of the case as kept (a failed last try may have set another).
    let difference = match check(&case, s.make) {
        Verdict::Differs(d) => d,
        _ => s.difference.clone(),
    };
    Shrunk {
        case,
        difference,
        tries: s.tries,
    }
}
