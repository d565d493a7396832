//! The hand-off between the data path and the control plane, in both directions, with
//! nothing but atomics and an atomic pointer swap: no async runtime, no HTTP.
//!
//! * Tables go down: the control plane holds a [`TablesPublisher`] and publishes every
//!   new version of the programmed [`Tables`]; each part of the data path (a worker
//!   thread, a DPDK lcore) holds a [`TablesWatch`] and asks between bursts whether a newer
//!   version exists ([`TablesWatch::changed`]: one atomic load when nothing changed).
//! * Counters go up: the data path publishes a snapshot of its counters every so often on
//!   a [`CountersBoard`], tagged with the oldest table version any part of it was running;
//!   the admin API and `/metrics` read the last snapshot.
//!
//! Every engine (software, DPDK, hardware replay) and the control plane depend on this
//! module; the admin API depends on it, not the reverse.

use arc_swap::ArcSwap;
use flowgate_core::counters::Counters;
use flowgate_core::Tables;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Published {
    tables: ArcSwap<Tables>,
    version: AtomicU64,
}

/// The control plane's end of the tables hand-off.
pub struct TablesPublisher {
    shared: Arc<Published>,
}

impl TablesPublisher {
    /// Start at version 1 with `tables`.
    pub fn new(tables: Tables) -> TablesPublisher {
        TablesPublisher {
            shared: Arc::new(Published {
                tables: ArcSwap::from_pointee(tables),
                version: AtomicU64::new(1),
            }),
        }
    }

    /// Publish `tables` as the next version.
    pub fn publish(&self, tables: Tables) {
        self.shared.tables.store(Arc::new(tables));
        // After the store: whoever sees the new version loads tables at least that new.
        self.shared.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The tables published last.
    pub fn load(&self) -> Arc<Tables> {
        self.shared.tables.load_full()
    }

    /// A data-path view of what this publishes.
    pub fn watch(&self) -> TablesWatch {
        TablesWatch {
            shared: self.shared.clone(),
        }
    }
}

/// The published tables, seen from the data path.
#[derive(Clone)]
pub struct TablesWatch {
    shared: Arc<Published>,
}

impl TablesWatch {
    /// A watch on tables that never change (a data path run without a control plane,
    /// e.g. the standalone `flowgate-dpdk` binary).
    pub fn fixed(tables: Tables) -> TablesWatch {
        TablesPublisher::new(tables).watch()
    }

    /// The current tables.
    pub fn load(&self) -> Arc<Tables> {
        self.shared.tables.load_full()
    }

    /// The current version number (starts at 1, grows by one per publication).
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// The tables, if a version newer than `*seen` was published; updates `*seen`. One
    /// atomic load when nothing changed, so the data path can ask between every burst.
    pub fn changed(&self, seen: &mut u64) -> Option<Arc<Tables>> {
        let version = self.version();
        if version == *seen {
            return None;
        }
        *seen = version;
        // The version is bumped after the store, so these tables are at least that new.
        Some(self.load())
    }
}

/// The data path's counters, published by it (a snapshot every so often) for the admin
/// API and metrics, which read them at scrape time: the data path never touches a
/// metrics registry.
#[derive(Debug)]
pub struct CountersBoard {
    snapshot: ArcSwap<BoardSnapshot>,
}

/// One publication of the data path's counters.
#[derive(Debug, Clone)]
pub struct BoardSnapshot {
    pub counters: Counters,
    /// The oldest [`TablesWatch`] version that any part of the data path (any lcore, any
    /// worker) was running when it took its share of `counters`; 0 before the first
    /// publication. Once it reaches a version, every frame the data path balanced under
    /// older tables is in `counters`: a backend marked down in that version gets nothing
    /// more, so its count here is final.
    pub tables_version: u64,
}

impl Default for CountersBoard {
    fn default() -> Self {
        CountersBoard {
            snapshot: ArcSwap::from_pointee(BoardSnapshot {
                counters: Counters::new(0, 0),
                tables_version: 0,
            }),
        }
    }
}

impl CountersBoard {
    /// Publish `counters`, taken while every part of the data path ran tables of version
    /// `tables_version` or newer.
    pub fn publish(&self, counters: Counters, tables_version: u64) {
        self.snapshot.store(Arc::new(BoardSnapshot {
            counters,
            tables_version,
        }));
    }

    /// The last publication.
    pub fn load(&self) -> Arc<BoardSnapshot> {
        self.snapshot.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_sees_each_publication_once_and_the_newest_tables() {
        let publisher = TablesPublisher::new(Tables::default());
        let watch = publisher.watch();
        let mut seen = watch.version();
        assert_eq!(seen, 1);
        assert!(watch.changed(&mut seen).is_none());
        let mut t = Tables::default();
        t.geometry.ways = 7;
        publisher.publish(t.clone());
        t.geometry.ways = 9;
        publisher.publish(t);
        let got = watch
            .changed(&mut seen)
            .expect("two versions were published");
        assert_eq!((seen, got.geometry.ways), (3, 9));
        assert!(watch.changed(&mut seen).is_none());
    }

    #[test]
    fn the_board_keeps_the_last_publication_with_its_version() {
        let board = CountersBoard::default();
        assert_eq!(board.load().tables_version, 0);
        board.publish(Counters::new(2, 3), 5);
        let s = board.load();
        assert_eq!((s.tables_version, s.counters.vips.len()), (5, 2));
    }
}
