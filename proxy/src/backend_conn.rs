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
//! [`forward`](crate::forward)'s `BackendBody`), with no task of its own per request.
//! Each connection runs in one task (hyper's `Connection`, with upgrades for WebSocket),
//! spawned when it is opened.
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
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    idle: Mutex<VecDeque<(Instant, SendRequest<ProxyBody>)>>,
}

/// A connection lent to one request: given back with [`Lease::give_back`] once its
/// response has been read to the end, closed if dropped.
pub struct Lease {
    sender: SendRequest<ProxyBody>,
    home: Arc<Conns>,
}

impl Lease {
    /// The response is through: the connection may serve the next request.
    pub fn give_back(self) {
        self.home.check_in(self.sender);
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

    fn check_out(&self) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((_, sender)) = idle.pop_back() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn check_in(&self, sender: SendRequest<ProxyBody>) {
        if sender.is_closed() {
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
            idle.push_back((now, sender));
        }
    }

    async fn connect(&self) -> Result<SendRequest<ProxyBody>, ConnectError> {
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
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(backend = %address, error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Send `req` (origin-form target, `Host` set) to this backend on an idle connection
    /// or a new one. The lease goes with the response.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Lease), BoxError> {
        loop {
            let (mut sender, fresh) = match self.check_out() {
                Some(sender) => (sender, false),
                // Boxed: opening a connection is rare, its future large.
                None => (Box::pin(self.connect()).await?, true),
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(format!("backend {} closed a new connection", self.address).into());
                }
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let lease = Lease {
                        sender,
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
