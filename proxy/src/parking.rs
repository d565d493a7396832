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
}

/// Idle plain HTTP/1 connections of one proxy (see the module doc).
pub struct ParkingLot {
    lot: Mutex<Lot>,
    registry: mio::Registry,
    /// The epoll set, taken by [`ParkingLot::run`].
    poll: Mutex<Option<Poll>>,
    /// Woken when a connection parks with the earliest deadline.
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
        if earliest {
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
        loop {
            let earlier = self.earlier.notified();
            let earliest = self.lot().deadlines.first().map(|&(d, _)| d);
            let expiry = async {
                match earliest {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
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
