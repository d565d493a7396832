//! Protection: a token bucket per client IP, connection limits per client and in total,
//! and an idle timeout on client connections.

use crate::config::Rate;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Clients tracked before idle buckets are swept (a full bucket is as good as none).
const SWEEP_AT: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-client-IP token buckets: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// Take a token for `client`; `Err(wait)` when it has none, with the time until one.
    pub fn take(&self, client: IpAddr, rate: Rate, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second < rate.burst
            });
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_second).min(rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate.per_second))
        }
    }
}

/// Open client connections, in total and per client IP.
#[derive(Debug, Default)]
pub struct ConnectionLimiter {
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    /// Woken when the last connection closes.
    idle: tokio::sync::Notify,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerClient,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerClient => "per_client",
        }
    }
}

/// Holds one connection's place until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: Arc<ConnectionLimiter>,
    client: IpAddr,
}

impl ConnectionLimiter {
    pub fn open(
        self: &Arc<Self>,
        client: IpAddr,
        max_total: usize,
        max_per_client: usize,
    ) -> Result<ConnectionSlot, Refused> {
        let mut per = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= max_total {
            return Err(Refused::Total);
        }
        let n = per.entry(client).or_insert(0);
        if *n >= max_per_client {
            return Err(Refused::PerClient);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionSlot {
            limiter: self.clone(),
            client,
        })
    }

    pub fn open_connections(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Wait until no connection is open.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.open_connections() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per = self
            .limiter
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.client);
            }
        }
        if self.limiter.total.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.limiter.idle.notify_waiters();
        }
    }
}

/// What a client connection's parts tell each other: its requests in flight (the idle
/// timeout leaves a busy connection alone) and, on plain HTTP/1, whether it may be parked
/// (see `server`: an idle connection leaves hyper and keeps only its socket).
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests of this connection being answered.
    pub in_flight: AtomicUsize,
    /// Set by [`IdleTimeoutIo`] when the connection has received nothing for its park time
    /// with no request in flight; cleared by the next byte.
    quiet: AtomicBool,
    /// Set by the service when a request or its answer ends the connection after it
    /// (`Connection: close`, HTTP/1.0, an upgrade): hyper closes it, it is not parked.
    no_park: AtomicBool,
    /// The connection is leaving hyper to be parked: its socket is not shut down.
    parking: AtomicBool,
}

impl Activity {
    /// This connection must not be parked (its current HTTP session ends with a close).
    pub fn no_park(&self) {
        self.no_park.store(true, Ordering::Relaxed);
    }

    /// Quiet for its park time, nothing in flight, and nothing against parking.
    pub fn wants_park(&self) -> bool {
        self.quiet.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !self.no_park.load(Ordering::Relaxed)
    }

    /// The connection is asked to leave hyper: keep its socket open when hyper ends.
    pub fn parking(&self) {
        self.parking.store(true, Ordering::Relaxed);
    }
}

/// A client connection that fails its reads with `TimedOut` once it has been idle (no
/// byte received and no request in flight) for `idle`, and marks it quiet (parkable, see
/// [`Activity`]) after `park` of the same.
///
/// Hand-written because the timeouts hyper offers do not cover this: its
/// `header_read_timeout` bounds one request head, and a per-request timeout (tower) would
/// cut long downloads; what must end is a connection that holds a slot and does nothing.
pub struct IdleTimeoutIo<T> {
    inner: T,
    idle: Duration,
    /// `None`: never parked (TLS and HTTP/2 connections).
    park: Option<Duration>,
    deadline: Pin<Box<Sleep>>,
    /// When the last byte came in. The timer is moved only when it fires, to this plus
    /// `park` or `idle`: resetting it on every read cost a timer-wheel update per request.
    last_read: tokio::time::Instant,
    activity: Arc<Activity>,
}

impl<T> IdleTimeoutIo<T> {
    pub fn new(inner: T, idle: Duration, park: Option<Duration>, activity: Arc<Activity>) -> Self {
        let first = park.map_or(idle, |p| p.min(idle));
        IdleTimeoutIo {
            inner,
            idle,
            park,
            deadline: Box::pin(tokio::time::sleep(first)),
            last_read: tokio::time::Instant::now(),
            activity,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    pub fn into_inner(self) -> T {
        self.inner
    }

    /// When the connection times out if nothing more comes (idle from its last byte).
    pub fn idle_deadline(&self) -> tokio::time::Instant {
        self.last_read + self.idle
    }

    /// Poll the idle deadline: `Ready(Err(TimedOut))` once the connection has been idle for
    /// its idle time (see the type's doc), `Pending` otherwise, with the timer set to wake
    /// `cx` when it is next due.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let now = tokio::time::Instant::now();
            let quiet = self.activity.in_flight.load(Ordering::Relaxed) == 0;
            let idle_due = self.last_read + self.idle;
            let park_due = self.park.map(|p| self.last_read + p);
            let next = if !quiet {
                // Busy answering: look again one period later.
                now + self.park.unwrap_or(self.idle).max(Duration::from_millis(1))
            } else if idle_due <= now {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client connection idle",
                )));
            } else {
                match park_due {
                    Some(due) if due > now => due,
                    Some(_) => {
                        self.activity.quiet.store(true, Ordering::Relaxed);
                        idle_due
                    }
                    // Bytes came since the timer was set: it fires again when idle.
                    None => idle_due,
                }
            };
            self.deadline.as_mut().reset(next);
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last_read = tokio::time::Instant::now();
                    if self.park.is_some() && self.activity.quiet.load(Ordering::Relaxed) {
                        self.activity.quiet.store(false, Ordering::Relaxed);
                    }
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.poll_deadline(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeoutIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// hyper shuts its IO down when a session ends; a connection being parked keeps its
    /// socket whole (nothing is buffered below this point, so there is nothing to flush).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.parking.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::default();
        let rate = Rate {
            per_second: 2.0,
            burst: 3.0,
        };
        let ip = IpAddr::from([192, 0, 2, 1]);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(ip, rate, t0), Ok(()));
        }
        let wait = limiter.take(ip, rate, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another client has its own bucket.
        assert_eq!(limiter.take(IpAddr::from([192, 0, 2, 2]), rate, t0), Ok(()));
        assert_eq!(
            limiter.take(ip, rate, t0 + Duration::from_millis(500)),
            Ok(())
        );
        assert!(limiter
            .take(ip, rate, t0 + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn connection_limits_count_per_client_and_in_total() {
        let limiter = Arc::new(ConnectionLimiter::default());
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        let s1 = limiter.open(a, 3, 2).unwrap();
        let _s2 = limiter.open(a, 3, 2).unwrap();
        assert_eq!(limiter.open(a, 3, 2).unwrap_err(), Refused::PerClient);
        let _s3 = limiter.open(b, 3, 2).unwrap();
        assert_eq!(limiter.open(b, 3, 2).unwrap_err(), Refused::Total);
        drop(s1);
        let s4 = limiter.open(a, 3, 2);
        assert!(s4.is_ok());
        assert_eq!(limiter.open_connections(), 3);
    }
}
