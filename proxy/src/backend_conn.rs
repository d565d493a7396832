//! HTTP/1.1 connections to backends, owned by the proxy: one [`Conns`] per backend of a
//! pool (per config generation), a LIFO stack of idle `hyper::client::conn::http1`
//! connections under a lock that is only held to push or pop.
//!
//! Why not hyper-util's legacy `Client` (which the HTTP/2 upstream still uses): per
//! request it checked a connection out of a pool keyed by scheme and authority (a hash and
//! a lock over every host's list), wrapped it, and spawned a task per response to wait for
//! the connection to be ready again before putting it back. Here the request goes out on
//! a connection popped off its backend's own stack, and the connection goes back on it
//! when the response body has been read to its end (see
//! [`forward`](crate::forward)'s `BackendBody`).
//!
//! A connection has no task of its own: hyper's `Connection` future (with upgrades, for
//! WebSocket) is polled by whoever holds the connection, the request's future until the
//! response head is in ([`Conns::send`]), then the response body on its way to the client
//! ([`Lease::drive`]). So a request does not hop from the client connection's task to a
//! backend connection's task and back (hyper's dispatch channel, a task wake-up each way):
//! reading and writing the backend's socket happen in the client connection's own task.
//! An idle connection on the stack is not polled; a backend that closed it meanwhile is
//! found when it is next checked out (the connection ends when polled), and the next one
//! is taken. Only an upgraded connection (a WebSocket tunnel) is spawned, to finish the
//! upgrade.
//!
//! A request that finds its pooled connection closed before any byte of it was written
//! (the backend closed an idle connection) is sent again on another one (hyper's
//! `try_send_request` hands it back); an error on a fresh connection is the backend's.

use crate::{BoxError, ProxyBody};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// hyper's side of one backend connection: the future that reads and writes its socket
/// (with upgrades: a type hyper does not name, hence boxed, once per connection).
type Connection = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One backend connection: the handle that sends requests on it and the future that
/// drives it; `driver` is `None` once that future has ended (the connection is closed, or
/// upgraded).
struct Conn {
    sender: SendRequest<ProxyBody>,
    driver: Option<Connection>,
    address: SocketAddr,
}

impl Conn {
    /// Let hyper read and write the socket; `Ready` once the connection has ended.
    fn poll_driver(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(driver) = &mut self.driver else {
            return Poll::Ready(());
        };
        let Poll::Ready(ended) = driver.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        if let Err(e) = ended {
            tracing::debug!(backend = %self.address, error = %e, "backend connection ended with an error");
        }
        self.driver = None;
        Poll::Ready(())
    }
}

/// Idle connections kept per backend; more are closed when they come back.
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is closed (as the legacy client's pool did).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a backend connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0}: timed out")]
    Timeout(SocketAddr),
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, #[source] std::io::Error),
    #[error("HTTP/1 handshake with {0}: {1}")]
    Handshake(SocketAddr, #[source] hyper::Error),
}

/// The HTTP/1.1 connections to one backend.
pub struct Conns {
    address: SocketAddr,
    connect_timeout: Duration,
    /// Most recently used last; each with the time it went idle.
    idle: Mutex<VecDeque<(Instant, Conn)>>,
}

/// A connection lent to one request: given back with [`Lease::give_back`] once its
/// response has been read to the end, closed if dropped. Whoever holds it drives the
/// connection ([`Lease::drive`]) while it waits for the response body.
pub struct Lease {
    conn: Conn,
    home: Arc<Conns>,
}

impl Lease {
    /// Let the connection read and write its socket (the response body's bytes come from
    /// it): called by the response body's reader before each read.
    pub fn drive(&mut self, cx: &mut Context<'_>) {
        let _ = self.conn.poll_driver(cx);
    }

    /// The response is through: the connection may serve the next request.
    pub fn give_back(self) {
        self.home.check_in(self.conn);
    }

    /// The connection has switched protocols (`101`): it is the tunnel's, never the
    /// pool's again. Its future is spawned to finish the upgrade (hyper hands the socket
    /// to `hyper::upgrade::on` when it ends).
    pub fn upgrade(self) {
        if let Some(driver) = self.conn.driver {
            let address = self.conn.address;
            tokio::spawn(async move {
                if let Err(e) = driver.await {
                    tracing::debug!(backend = %address, error = %e, "backend connection ended with an error");
                }
            });
        }
    }
}

impl Conns {
    pub fn new(address: SocketAddr, connect_timeout: Duration) -> Arc<Conns> {
        Arc::new(Conns {
            address,
            connect_timeout,
            idle: Mutex::new(VecDeque::new()),
        })
    }

    fn check_out(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.pop_back().map(|(_, conn)| conn)
    }

    fn check_in(&self, conn: Conn) {
        if conn.driver.is_none() || conn.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while idle
            .front()
            .is_some_and(|(since, _)| now.duration_since(*since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back((now, conn));
        }
    }

    async fn connect(&self) -> Result<Conn, ConnectError> {
        let address = self.address;
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        .map_err(|_| ConnectError::Timeout(address))?
        .map_err(|e| ConnectError::Io(address, e))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Handshake(address, e))?;
        Ok(Conn {
            sender,
            driver: Some(Box::pin(connection.with_upgrades())),
            address,
        })
    }

    /// Send `req` (origin-form target, `Host` set) to this backend on an idle connection
    /// or a new one, driving the connection until the response head is in. The lease goes
    /// with the response.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Lease), BoxError> {
        loop {
            let (mut conn, fresh) = match self.check_out() {
                Some(conn) => (conn, false),
                // Boxed: opening a connection is rare, its future large.
                None => (Box::pin(self.connect()).await?, true),
            };
            // Ready for a request: the connection's future first, which finishes the
            // previous exchange (or finds the socket closed), then the handle, which sees
            // at once what the future just did.
            let ready = std::future::poll_fn(|cx| {
                let ended = conn.poll_driver(cx).is_ready();
                match conn.sender.poll_ready(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(true),
                    Poll::Ready(Err(_)) => Poll::Ready(false),
                    Poll::Pending if ended => Poll::Ready(false),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if !ready {
                if fresh {
                    return Err(format!("backend {} closed a new connection", self.address).into());
                }
                continue;
            }
            let mut response = std::pin::pin!(conn.sender.try_send_request(req));
            // The handle's future and the connection's, polled together: the request is
            // written and its response read in this task.
            let sent = std::future::poll_fn(|cx| {
                let _ = conn.poll_driver(cx);
                response.as_mut().poll(cx)
            })
            .await;
            match sent {
                Ok(response) => {
                    let lease = Lease {
                        conn,
                        home: self.clone(),
                    };
                    return Ok((response, lease));
                }
                Err(mut e) => match e.take_message() {
                    // Not a byte of it went out on a pooled connection that had closed:
                    // another connection gets it.
                    Some(back) if !fresh => req = back,
                    _ => return Err(Box::new(e.into_error())),
                },
            }
        }
    }
}
