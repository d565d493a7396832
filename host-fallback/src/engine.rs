//! The sharded engine: N workers, each owning the flow-table sets `s` with
//! `s % N == worker` (stored at local index `s / N`).

use flowgate_core::counters::Counters;
use flowgate_core::flow_table::FlowTable;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{balance, count_unbalanced, prepare, tick_of, Prepared};
use flowgate_core::{Tables, Verdict};
use std::sync::Arc;

use crate::pcap_io::Frame;

/// What became of one input frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The rewritten frame when `verdict` is `Forward`; empty otherwise.
    pub frame: Vec<u8>,
}

struct Worker {
    flows: FlowTable,
    counters: Counters,
}

/// The software engine. Frames are processed in bursts with [`ShardedEngine::process_burst`];
/// outcomes come back in input order.
pub struct ShardedEngine {
    tables: Arc<Tables>,
    /// Built from `tables.keys`; rebuilt only when the keys change.
    hasher: FlowHasher,
    workers: Vec<Worker>,
    /// Counters of frames that never reached a worker (drops and passes found by `prepare`).
    front: Counters,
}

impl ShardedEngine {
    pub fn new(tables: Tables, workers: usize) -> ShardedEngine {
        let n = workers.max(1);
        let sets = tables.geometry.sets as usize;
        let local_sets = sets.div_ceil(n) as u32;
        let workers = (0..n)
            .map(|_| Worker {
                flows: FlowTable::new(local_sets, tables.geometry.ways),
                counters: Counters::new(tables.vips.len(), tables.backends.len()),
            })
            .collect();
        let front = Counters::new(tables.vips.len(), tables.backends.len());
        ShardedEngine {
            hasher: FlowHasher::new(&tables.keys),
            tables: Arc::new(tables),
            workers,
            front,
        }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Program new tables between bursts (the control plane's atomic swap). Flow tables are
    /// kept, so established flows stay on their backends; the flow-table geometry and the
    /// VIP and backend indices of existing entries must mean the same in `tables`.
    pub fn update_tables(&mut self, tables: Tables) {
        assert_eq!(
            tables.geometry, self.tables.geometry,
            "the flow-table geometry is fixed for an engine's life"
        );
        let (vips, backends) = (tables.vips.len(), tables.backends.len());
        for c in
            std::iter::once(&mut self.front).chain(self.workers.iter_mut().map(|w| &mut w.counters))
        {
            c.vips.resize(vips.max(c.vips.len()), Default::default());
            c.backends
                .resize(backends.max(c.backends.len()), Default::default());
        }
        if tables.keys != self.tables.keys {
            self.hasher = FlowHasher::new(&tables.keys);
        }
        self.tables = Arc::new(tables);
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Counters of all workers, summed.
    pub fn counters(&self) -> Counters {
        let mut total = self.front.clone();
        for w in &self.workers {
            total.merge(&w.counters);
        }
        total
    }

    /// Run one burst; returns one outcome per frame, in input order.
    pub fn process_burst(&mut self, frames: &[Frame]) -> Vec<Outcome> {
        let n = self.workers.len();
        let prepared = self.prepare_all(frames);
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(frames.len());
        for p in &prepared {
            let verdict = match *p {
                Prepared::Drop(r) => Verdict::Drop(r),
                // Balanced frames get their verdict from a worker below.
                Prepared::Pass | Prepared::Balance(_) => Verdict::Pass,
            };
            if !matches!(p, Prepared::Balance(_)) {
                count_unbalanced(verdict, &mut self.front);
            }
            outcomes.push(Outcome {
                verdict,
                frame: Vec::new(),
            });
        }
        let tables = &*self.tables;
        let prepared = &prepared;
        // Each worker returns (frame index, outcome) for the frames of its sets, in input
        // order; the sets of different workers never interact.
        let per_worker: Vec<Vec<(usize, Outcome)>> = if n == 1 {
            vec![run_worker(
                &mut self.workers[0],
                0,
                1,
                frames,
                prepared,
                tables,
            )]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .workers
                    .iter_mut()
                    .enumerate()
                    .map(|(w, worker)| {
                        scope.spawn(move || run_worker(worker, w, n, frames, prepared, tables))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker panicked"))
                    .collect()
            })
        };
        for list in per_worker {
            for (i, outcome) in list {
                outcomes[i] = outcome;
            }
        }
        outcomes
    }

    /// Stateless half for the whole burst, split over the worker threads.
    fn prepare_all(&self, frames: &[Frame]) -> Vec<Prepared> {
        let n = self.workers.len();
        let (tables, hasher) = (&*self.tables, &self.hasher);
        if n == 1 || frames.len() < 256 {
            return frames
                .iter()
                .map(|f| prepare(&f.data, tables, hasher))
                .collect();
        }
        let chunk = frames.len().div_ceil(n);
        std::thread::scope(|scope| {
            let handles: Vec<_> = frames
                .chunks(chunk)
                .map(|c| {
                    scope.spawn(move || {
                        c.iter()
                            .map(|f| prepare(&f.data, tables, hasher))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("prepare panicked"))
                .collect()
        })
    }
}

fn run_worker(
    worker: &mut Worker,
    w: usize,
    n: usize,
    frames: &[Frame],
    prepared: &[Prepared],
    tables: &Tables,
) -> Vec<(usize, Outcome)> {
    let mut done = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        let Prepared::Balance(b) = p else { continue };
        if b.set as usize % n != w {
            continue;
        }
        let local_set = b.set / n as u32;
        let mut out = Vec::new();
        let frame = &frames[i];
        let verdict = balance(
            &frame.data,
            b,
            tick_of(frame.ts),
            tables,
            &mut worker.flows,
            local_set,
            &mut worker.counters,
            &mut out,
        );
        if !matches!(verdict, Verdict::Forward { .. }) {
            out.clear();
        }
        done.push((
            i,
            Outcome {
                verdict,
                frame: out,
            },
        ));
    }
    done
}
