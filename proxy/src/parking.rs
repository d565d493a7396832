//! The parking lot: idle plain HTTP/1 client connections held as bare sockets.
//!
//! A connection quiet for `timeouts.park_ms` leaves hyper (see `server`) and its task
//! ends: what is left of it is a [`Parked`] entry here (the socket's descriptor, its
//! connection-limit slot and its place in the deadline heap: 48 bytes, and 24 more in the
//! heap), watched by one epoll set and one timer. A socket that turns readable (bytes, or
//! the client's close) is taken out and a fresh connection task serves it under the config
//! current then; a deadline closes it; shutdown closes them all at once.
//!
//! Why not one tokio task per parked connection: the task, its future, its `Sleep` and
//! tokio's I/O registration cost about 2 KB per connection, scattered through the heap
//! that served it so that glibc could not give it back. tokio offers no way to wait on
//! many sockets from one task, so the lot holds its own `mio::Poll` (an epoll set:
//! mio is tokio's own poller), itself registered in tokio with [`AsyncFd`].
//!
//! Why two flat tables (a slab of entries indexed by epoll token, the `slab` crate's, and
//! the deadlines as a binary min-heap in one `Vec`) rather than a map and an ordered set:
//! what a parked connection keeps must not be scattered through the heap that served it. A
//! B-tree node (or any small allocation) made while thousands of connections are being
//! answered lands between their buffers, and after they are freed each such node holds a
//! whole page resident that `malloc_trim` cannot give back: with a `BTreeSet` of
//! deadlines, 0.5 MB of nodes held 6 MB of heap for 10,000 parked connections
//! (docs/BENCHMARKS.md).

use crate::server::OpenConnection;
use crate::Shared;
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use prometheus_client::metrics::gauge::Gauge;
use slab::Slab;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Events taken from the epoll set per call.
const EVENTS: usize = 256;
/// Connections parked since the last heap trim before the lot trims again.
const TRIM_AFTER_PARKED: usize = 256;
/// The least time between two trims (a trim walks every arena's heap), and the quiet
/// after the last park that ends a burst of parking.
const TRIM_EVERY: Duration = Duration::from_secs(1);
/// An emptied lot keeps its tables' room up to this many entries (beyond, it frees them).
const KEEP_EMPTY: usize = 1024;

/// One parked connection. The client's address is not kept: a woken connection asks its
/// socket (`getpeername`).
struct Parked {
    stream: MioStream,
    /// Its place under the connection limits, held while parked.
    open: OpenConnection,
}

#[derive(Default)]
struct Lot {
    parked: TimedSlab<Parked>,
    /// Shut down: a connection parked now is closed at once.
    closed: bool,
    /// Connections parked since the last heap trim.
    parked_since_trim: usize,
    /// When the last connection parked.
    last_park: Option<Instant>,
}

impl Lot {
    /// When to trim the heap next, the last trim at `last_trim`: once [`TRIM_AFTER_PARKED`]
    /// connections parked, at most once per [`TRIM_EVERY`]; and once parking has been
    /// quiet for [`TRIM_EVERY`] after fewer (the end of a burst: the heap that served its
    /// last connections would otherwise stay resident until the next burst).
    fn trim_due(&self, last_trim: Instant) -> Option<Instant> {
        let earliest = last_trim + TRIM_EVERY;
        match self.parked_since_trim {
            0 => None,
            n if n >= TRIM_AFTER_PARKED => Some(earliest),
            _ => self.last_park.map(|t| earliest.max(t + TRIM_EVERY)),
        }
    }
}

/// Values under `u32` keys (here: parked connections under their epoll tokens), each with
/// a deadline: the values in a [`Slab`] (its keys dense and reused: the epoll tokens), and
/// the deadlines as a binary min-heap of (deadline, key) whose entries the values point
/// back to, so that a value taken out early leaves the heap in O(log n). Two contiguous
/// tables, whatever the count. The heap is written here because it must tell each value
/// where its deadline is (for the early removal): `std`'s `BinaryHeap` cannot remove an
/// entry, and the indexed-heap crates key their entries by a hash map, the scattered
/// allocation this lot avoids.
struct TimedSlab<T> {
    slots: Slab<Slot<T>>,
    deadlines: Vec<(Instant, u32)>,
}

struct Slot<T> {
    value: T,
    /// The value's index in [`TimedSlab::deadlines`].
    heap_index: u32,
}

impl<T> Default for TimedSlab<T> {
    fn default() -> Self {
        TimedSlab {
            slots: Slab::new(),
            deadlines: Vec::new(),
        }
    }
}

impl<T> TimedSlab<T> {
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The key the next [`TimedSlab::insert`] takes; `None` when every `u32` key is in use.
    fn next_key(&self) -> Option<u32> {
        u32::try_from(self.slots.vacant_key()).ok()
    }

    /// Put `value` under [`TimedSlab::next_key`]; `None` (and `value` dropped) when
    /// there is none.
    fn insert(&mut self, value: T, deadline: Instant) -> Option<u32> {
        let key = self.next_key()?;
        let heap_index = self.deadlines.len() as u32;
        self.slots.insert(Slot { value, heap_index });
        self.deadlines.push((deadline, key));
        self.sift_up(heap_index as usize);
        Some(key)
    }

    /// Take `key`'s value out, if there is one.
    fn remove(&mut self, key: usize) -> Option<T> {
        let Slot { value, heap_index } = self.slots.try_remove(key)?;
        self.remove_deadline(heap_index as usize);
        if self.slots.is_empty() && self.slots.capacity() > KEEP_EMPTY {
            // A burst is over: give its tables back.
            *self = TimedSlab::default();
        }
        Some(value)
    }

    /// The earliest deadline and its key.
    fn earliest(&self) -> Option<(Instant, u32)> {
        self.deadlines.first().copied()
    }

    /// Every key in use.
    fn keys(&self) -> Vec<u32> {
        self.deadlines.iter().map(|&(_, key)| key).collect()
    }

    fn remove_deadline(&mut self, i: usize) {
        let last = self.deadlines.len() - 1;
        self.swap(i, last);
        self.deadlines.pop();
        if i < self.deadlines.len() {
            self.sift_down(i);
            self.sift_up(i);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.deadlines[parent].0 <= self.deadlines[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.deadlines.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.deadlines[right].0 < self.deadlines[left].0 {
                right
            } else {
                left
            };
            if self.deadlines[i].0 <= self.deadlines[child].0 {
                break;
            }
            self.swap(i, child);
            i = child;
        }
    }

    /// Swap two heap entries and tell their slots.
    fn swap(&mut self, a: usize, b: usize) {
        self.deadlines.swap(a, b);
        for i in [a, b] {
            let key = self.deadlines[i].1 as usize;
            if let Some(slot) = self.slots.get_mut(key) {
                slot.heap_index = i as u32;
            }
        }
    }
}

/// Idle plain HTTP/1 connections of one proxy (see the module doc).
pub struct ParkingLot {
    lot: Mutex<Lot>,
    registry: mio::Registry,
    /// The epoll set, taken by [`ParkingLot::run`].
    poll: Mutex<Option<Poll>>,
    /// Woken when a connection parks with the earliest deadline, or when enough have
    /// parked for a heap trim.
    earlier: Notify,
    /// `flowgate_proxy_parked_connections`, set under the lot's lock.
    gauge: Gauge,
}

impl ParkingLot {
    pub fn new(gauge: Gauge) -> io::Result<ParkingLot> {
        let poll = Poll::new()?;
        Ok(ParkingLot {
            lot: Mutex::default(),
            registry: poll.registry().try_clone()?,
            poll: Mutex::new(Some(poll)),
            earlier: Notify::new(),
            gauge,
        })
    }

    fn lot(&self) -> std::sync::MutexGuard<'_, Lot> {
        self.lot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Park `stream` (nothing read past its last request) until it is readable or
    /// `deadline`. Closed at once after shutdown or on an error.
    pub fn park(&self, stream: TcpStream, deadline: Instant, open: OpenConnection) {
        let Ok(stream) = stream.into_std() else {
            return;
        };
        let mut stream = MioStream::from_std(stream);
        let mut lot = self.lot();
        if lot.closed {
            return;
        }
        let Some(token) = lot.parked.next_key() else {
            return;
        };
        // Registered under the lock, so the event cannot be handled before the entry is in.
        if let Err(e) =
            self.registry
                .register(&mut stream, Token(token as usize), Interest::READABLE)
        {
            tracing::debug!(error = %e, "cannot park a connection; closing it");
            return;
        }
        let earliest = lot.parked.earliest().is_none_or(|(d, _)| deadline < d);
        lot.parked_since_trim += 1;
        lot.last_park = Some(Instant::now());
        // The trim's time changes with the first park after a trim and with the one
        // that makes a batch.
        let trim = matches!(lot.parked_since_trim, 1 | TRIM_AFTER_PARKED);
        lot.parked.insert(Parked { stream, open }, deadline);
        self.gauge.set(lot.parked.len() as i64);
        drop(lot);
        if earliest || trim {
            self.earlier.notify_one();
        }
    }

    /// Take `token` out (deregistered), if still parked.
    fn take(&self, lot: &mut Lot, token: usize) -> Option<Parked> {
        let mut parked = lot.parked.remove(token)?;
        let _ = self.registry.deregister(&mut parked.stream);
        Some(parked)
    }

    /// Watch the parked connections until `shutdown`: serve the readable ones, close the
    /// expired ones; at shutdown close them all.
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
        let Some(poll) = self.poll.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        // SAFETY: a `mio::Poll` owns its epoll descriptor from creation to drop and
        // always answers `as_raw_fd` with it.
        let registered =
            unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) };
        let mut poll = match registered {
            Ok(poll) => poll,
            Err(e) => {
                tracing::error!(error = %e, "the parking lot cannot watch its sockets");
                return;
            }
        };
        let mut events = Events::with_capacity(EVENTS);
        // The woken connections' tasks get `shutdown`; the lot waits on its own copy.
        let mut stop = shutdown.clone();
        let mut last_trim = Instant::now() - TRIM_EVERY;
        loop {
            let earlier = self.earlier.notified();
            let (earliest, trim_due) = {
                let lot = self.lot();
                (
                    lot.parked.earliest().map(|(d, _)| d),
                    lot.trim_due(last_trim),
                )
            };
            let expiry = at(earliest);
            let trim = at(trim_due);
            tokio::select! {
                ready = poll.readable_mut() => {
                    let Ok(mut ready) = ready else { break };
                    if let Err(e) = ready.get_inner_mut().poll(&mut events, Some(Duration::ZERO)) {
                        if e.kind() != io::ErrorKind::Interrupted {
                            tracing::error!(error = %e, "the parking lot's epoll failed");
                            break;
                        }
                        continue;
                    }
                    if events.iter().count() < EVENTS {
                        ready.clear_ready();
                    }
                    self.wake(&events, &shared, &shutdown);
                }
                () = expiry => self.expire(Instant::now()),
                () = trim => {
                    let now = Instant::now();
                    let mut lot = self.lot();
                    // Parks since the sleep began may have moved the quiet's end.
                    if lot.trim_due(last_trim).is_some_and(|due| due <= now) {
                        lot.parked_since_trim = 0;
                        drop(lot);
                        last_trim = now;
                        trim_heap();
                    }
                }
                () = earlier => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        // Shut down (or the epoll set failed): close every parked connection now.
        let mut lot = self.lot();
        lot.closed = true;
        for token in lot.parked.keys() {
            drop(self.take(&mut lot, token as usize));
        }
        self.gauge.set(lot.parked.len() as i64);
    }

    /// Hand the connections that turned readable to fresh connection tasks.
    fn wake(&self, events: &Events, shared: &Arc<Shared>, shutdown: &watch::Receiver<bool>) {
        let mut woken = Vec::new();
        {
            let mut lot = self.lot();
            for event in events.iter() {
                woken.extend(self.take(&mut lot, event.token().0));
            }
            self.gauge.set(lot.parked.len() as i64);
        }
        for parked in woken {
            let Ok(stream) = TcpStream::from_std(parked.stream.into()) else {
                continue;
            };
            tokio::spawn(crate::server::resume(
                stream,
                parked.open,
                shared.clone(),
                shutdown.clone(),
            ));
        }
    }

    /// Close the connections whose idle deadline is `now` or past.
    fn expire(&self, now: Instant) {
        let mut lot = self.lot();
        while let Some((deadline, token)) = lot.parked.earliest() {
            if deadline > now {
                break;
            }
            drop(self.take(&mut lot, token as usize));
        }
        self.gauge.set(lot.parked.len() as i64);
    }
}

/// Sleep until `when`; forever if `None`.
async fn at(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Give the heap that served the parked connections back to the system.
///
/// glibc's malloc returns freed memory at the top of a heap only (and a thread arena's
/// heap only when wholly free); the memory that served thousands of connections before
/// they parked is free chunks scattered under live ones, kept for reuse, and stays
/// resident. `malloc_trim(0)` releases the free pages inside every arena
/// (`MADV_DONTNEED`) at the cost of one walk of the heaps, so the lot calls it rarely (see
/// [`Lot::trim_due`]), in the blocking pool. (An allocator that decays its free pages itself, jemalloc or
/// mimalloc, would do this without the call but changes every allocation's cost.)
#[cfg(target_env = "gnu")]
fn trim_heap() {
    tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim takes the allocator's own locks and releases only free memory.
        unsafe { libc::malloc_trim(0) };
    });
}

#[cfg(not(target_env = "gnu"))]
fn trim_heap() {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    /// Deadlines leave in order and values under their keys, through any mix of
    /// inserts, early removals (a woken connection) and expiries, as in an ordered set.
    #[test]
    fn a_timed_slab_expires_in_deadline_order_like_an_ordered_set() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(20);
        let start = Instant::now();
        let mut slab = TimedSlab::default();
        let mut model = BTreeSet::new();
        for _ in 0..20_000 {
            match rng.gen_range(0..10) {
                0..=4 => {
                    let deadline = start + Duration::from_millis(rng.gen_range(0..500));
                    let key = slab.next_key().unwrap();
                    assert_eq!(slab.insert(key * 7, deadline), Some(key));
                    model.insert((deadline, key));
                }
                5..=7 if !model.is_empty() => {
                    let &(deadline, key) = model.iter().nth(rng.gen_range(0..model.len())).unwrap();
                    assert_eq!(slab.remove(key as usize), Some(key * 7));
                    assert_eq!(slab.remove(key as usize), None);
                    model.remove(&(deadline, key));
                }
                _ => {
                    if let Some((deadline, key)) = slab.earliest() {
                        // Equal deadlines may leave in either order.
                        assert_eq!(Some(deadline), model.first().map(|&(d, _)| d));
                        assert!(model.remove(&(deadline, key)));
                        assert_eq!(slab.remove(key as usize), Some(key * 7));
                    }
                }
            }
            assert_eq!(slab.len(), model.len());
            assert_eq!(
                slab.earliest().map(|(d, _)| d),
                model.first().map(|&(d, _)| d)
            );
        }
    }

    /// What a parked connection keeps in the slab: its socket, its connection-limit slot
    /// and its heap index in 56 bytes, with the slab's vacancy link folded in (the socket's
    /// descriptor is never -1, a niche the enum uses). `Entry` is slab 0.4's own entry
    /// type, written out: the crate does not export it.
    #[test]
    fn a_parked_connection_takes_one_56_byte_slab_entry() {
        #[allow(dead_code)]
        enum Entry<T> {
            Vacant(usize),
            Occupied(T),
        }
        assert_eq!(std::mem::size_of::<Slot<Parked>>(), 56);
        assert_eq!(std::mem::size_of::<Entry<Slot<Parked>>>(), 56);
    }

    /// Keys are reused, so the epoll tokens and the slab stay as dense as the parked count;
    /// an emptied large slab gives its room back.
    #[test]
    fn a_timed_slab_reuses_keys_and_frees_its_room_when_emptied() {
        let now = Instant::now();
        let mut slab = TimedSlab::default();
        let keys: Vec<u32> = (0..5000).map(|i| slab.insert(i, now).unwrap()).collect();
        assert_eq!(keys, (0..5000).collect::<Vec<_>>());
        assert_eq!(slab.remove(17), Some(17));
        assert_eq!(slab.remove(4000), Some(4000));
        assert_eq!(slab.insert(1, now), Some(4000));
        assert_eq!(slab.insert(2, now), Some(17));
        assert_eq!(slab.insert(3, now), Some(5000));
        for key in slab.keys() {
            assert!(slab.remove(key as usize).is_some());
        }
        assert_eq!(slab.len(), 0);
        assert_eq!(slab.slots.capacity() + slab.deadlines.capacity(), 0);
        assert_eq!(slab.insert(9, now), Some(0));
    }
}
