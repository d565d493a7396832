//! Protection: a token bucket per client IP, connection limits per client and in total,
//! and an idle timeout on client connections.

use crate::config::Rate;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};
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

/// A client connection that fails its reads with `TimedOut` once it has been idle (no
/// byte received and no request in flight) for `idle`.
///
/// Hand-written because the timeouts hyper offers do not cover this: its
/// `header_read_timeout` bounds one request head, and a per-request timeout (tower) would
/// cut long downloads; what must end is a connection that holds a slot and does nothing.
pub struct IdleTimeoutIo<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// When the last byte came in. The timer is moved only when it fires, to this plus
    /// `idle`: resetting it on every read cost a timer-wheel update per request.
    last_read: tokio::time::Instant,
    in_flight: Arc<AtomicUsize>,
}

impl<T> IdleTimeoutIo<T> {
    /// `in_flight` counts the connection's requests being answered.
    pub fn new(inner: T, idle: Duration, in_flight: Arc<AtomicUsize>) -> Self {
        IdleTimeoutIo {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            last_read: tokio::time::Instant::now(),
            in_flight,
        }
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
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                while self.deadline.as_mut().poll(cx).is_ready() {
                    let now = tokio::time::Instant::now();
                    let due = self.last_read + self.idle;
                    if due > now {
                        // Bytes came since the timer was set: it fires again when idle.
                        self.deadline.as_mut().reset(due);
                    } else if self.in_flight.load(Ordering::Relaxed) == 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "client connection idle",
                        )));
                    } else {
                        // Busy answering: look again one idle period later.
                        let again = now + self.idle;
                        self.deadline.as_mut().reset(again);
                    }
                }
                Poll::Pending
            }
        }
    }
}

write_through!(IdleTimeoutIo);

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
