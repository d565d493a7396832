//! The parking lot: idle plain HTTP/1 client connections held as bare sockets.
//!
//! A connection quiet for `timeouts.park_ms` leaves hyper (see `server`) and its task
//! ends: what is left of it is a [`Parked`] entry here (the socket, its idle deadline, its
//! connection-limit slot and the client's address: about a hundred bytes), in one map per
//! proxy, watched by one epoll set and one timer. A socket that turns readable (bytes, or
//! the client's close) is taken out and a fresh connection task serves it under the config
//! current then; a deadline closes it; shutdown closes them all at once.
//!
//! Why not one tokio task per parked connection: the task, its future, its `Sleep` and
//! tokio's I/O registration cost about 2 KB per connection, scattered through the heap
//! that served it so that glibc could not give it back. tokio offers no way to wait on
//! many sockets from one task, so the lot holds its own `mio::Poll` (an epoll set:
//! mio is tokio's own portable poller), itself registered in tokio with [`AsyncFd`]; the
//! deadlines are an ordered set with one tokio sleep for the earliest.

use crate::server::OpenConnection;
use crate::Shared;
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
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
/// The least time between two trims (a trim walks every arena's heap).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// One parked connection.
struct Parked {
    stream: MioStream,
    deadline: Instant,
    client: SocketAddr,
    /// Its place under the connection limits, held while parked.
    open: OpenConnection,
}

#[derive(Default)]
struct Lot {
    next_id: usize,
    parked: HashMap<usize, Parked>,
    /// (idle deadline, id) of every parked connection, earliest first.
    deadlines: BTreeSet<(Instant, usize)>,
    /// Shut down: a connection parked now is closed at once.
    closed: bool,
    /// Connections parked since the last heap trim.
    parked_since_trim: usize,
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
    pub fn park(
        &self,
        stream: TcpStream,
        deadline: Instant,
        client: SocketAddr,
        open: OpenConnection,
    ) {
        let Ok(stream) = stream.into_std() else {
            return;
        };
        let mut stream = MioStream::from_std(stream);
        let mut lot = self.lot();
        if lot.closed {
            return;
        }
        let id = lot.next_id;
        lot.next_id = lot.next_id.wrapping_add(1);
        // Registered under the lock, so the event cannot be handled before the entry is in.
        if let Err(e) = self
            .registry
            .register(&mut stream, Token(id), Interest::READABLE)
        {
            tracing::debug!(error = %e, "cannot park a connection; closing it");
            return;
        }
        let earliest = lot.deadlines.first().is_none_or(|&(d, _)| deadline < d);
        lot.parked_since_trim += 1;
        let trim = lot.parked_since_trim == TRIM_AFTER_PARKED;
        lot.deadlines.insert((deadline, id));
        lot.parked.insert(
            id,
            Parked {
                stream,
                deadline,
                client,
                open,
            },
        );
        self.gauge.set(lot.parked.len() as i64);
        drop(lot);
        if earliest || trim {
            self.earlier.notify_one();
        }
    }

    /// Take `id` out (deregistered), if still parked.
    fn take(&self, lot: &mut Lot, id: usize) -> Option<Parked> {
        let mut parked = lot.parked.remove(&id)?;
        lot.deadlines.remove(&(parked.deadline, id));
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
                let due =
                    (lot.parked_since_trim >= TRIM_AFTER_PARKED).then(|| last_trim + TRIM_EVERY);
                (lot.deadlines.first().map(|&(d, _)| d), due)
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
                    self.lot().parked_since_trim = 0;
                    last_trim = Instant::now();
                    trim_heap();
                }
                () = earlier => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        // Shut down (or the epoll set failed): close every parked connection now.
        let mut lot = self.lot();
        lot.closed = true;
        let all: Vec<usize> = lot.parked.keys().copied().collect();
        for id in all {
            drop(self.take(&mut lot, id));
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
                parked.client,
                parked.open,
                shared.clone(),
                shutdown.clone(),
            ));
        }
    }

    /// Close the connections whose idle deadline is `now` or past.
    fn expire(&self, now: Instant) {
        let mut lot = self.lot();
        while let Some(&(deadline, id)) = lot.deadlines.first() {
            if deadline > now {
                break;
            }
            drop(self.take(&mut lot, id));
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
/// (`MADV_DONTNEED`) at the cost of one walk of the heaps, so the lot calls it rarely: at
/// most once per [`TRIM_EVERY`], after [`TRIM_AFTER_PARKED`] more connections parked, in
/// the blocking pool. (An allocator that decays its free pages itself, jemalloc or
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
