//! The sharded software engine: N worker threads, each a [`Shard`] owning the flow-table
//! sets [`crate::SetSplit`] gives it (a flow's two candidate sets have one owner).

use flowgate_core::counters::Counters;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{count_unbalanced, prepare, tick_of, Prepared};
use flowgate_core::{Tables, Verdict};
use std::sync::Arc;

use crate::engine::{Engine, EngineError, Leaving, Outcome};
use crate::pcap_io::Frame;
use crate::shard::{fit_counters, Shard};

/// The software engine. Frames are processed in bursts with [`ShardedEngine::process_burst`];
/// outcomes come back in input order.
pub struct ShardedEngine {
    tables: Arc<Tables>,
    /// Built from `tables.keys`; rebuilt only when the keys change.
    hasher: FlowHasher,
    workers: Vec<Shard>,
    /// Counters of frames that never reached a worker (drops and passes found by `prepare`).
    front: Counters,
}

impl ShardedEngine {
    pub fn new(tables: Tables, workers: usize) -> ShardedEngine {
        let n = workers.max(1) as u32;
        let workers = (0..n).map(|w| Shard::new(&tables, w, n)).collect();
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
        self.set_tables(Arc::new(tables));
    }

    fn set_tables(&mut self, tables: Arc<Tables>) {
        assert_eq!(
            tables.geometry, self.tables.geometry,
            "the flow-table geometry is fixed for an engine's life"
        );
        fit_counters(&mut self.front, &tables);
        for w in &mut self.workers {
            w.update_tables(&tables);
        }
        if tables.keys != self.tables.keys {
            self.hasher = FlowHasher::new(&tables.keys);
        }
        self.tables = tables;
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Counters of all workers, summed.
    pub fn counters(&self) -> Counters {
        let mut total = self.front.clone();
        for w in &self.workers {
            total.merge(w.counters());
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
            vec![run_worker(&mut self.workers[0], frames, prepared, tables)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .workers
                    .iter_mut()
                    .map(|worker| scope.spawn(move || run_worker(worker, frames, prepared, tables)))
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
    worker: &mut Shard,
    frames: &[Frame],
    prepared: &[Prepared],
    tables: &Tables,
) -> Vec<(usize, Outcome)> {
    let mut done = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        let Prepared::Balance(b) = p else { continue };
        if !worker.owns(b) {
            continue;
        }
        let mut out = Vec::new();
        let frame = &frames[i];
        let verdict = worker.balance(&frame.data, b, tick_of(frame.ts), tables, &mut out);
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

impl Engine for ShardedEngine {
    fn name(&self) -> &str {
        "model"
    }

    fn program(&mut self, tables: Arc<Tables>) -> Result<(), EngineError> {
        if tables.geometry != self.tables.geometry {
            return Err(format!(
                "the flow table is {} sets x {} ways; new tables cannot change it while running",
                self.tables.geometry.sets, self.tables.geometry.ways
            )
            .into());
        }
        self.set_tables(tables);
        Ok(())
    }

    fn programmed(&self) -> Arc<Tables> {
        self.tables.clone()
    }

    fn process(
        &mut self,
        frames: &[Frame],
        emit: &mut dyn FnMut(usize, Leaving<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let outcomes = self.process_burst(frames);
        for (i, (frame, outcome)) in frames.iter().zip(&outcomes).enumerate() {
            match outcome.verdict {
                Verdict::Forward { .. } => emit(i, Leaving::Forwarded(&outcome.frame))?,
                Verdict::Pass => emit(i, Leaving::Passed(&frame.data))?,
                Verdict::Drop(_) => {}
            }
        }
        Ok(())
    }

    fn counters(&mut self) -> Result<Counters, EngineError> {
        Ok(ShardedEngine::counters(self))
    }

    fn shards(&self) -> usize {
        self.worker_count()
    }
}
