//! Pools of backends: their health as the proxy sees it and the five ways to pick one.
//!
//! A backend is usable when the active checker says up, passive health has not ejected it,
//! it is not drained, and its weight is not 0. [`BackendState`] lives across reloads (the
//! [`crate::Shared`] registry hands the same one to every generation that keeps the
//! backend), so a reload neither forgets an ejection nor restarts rise/fall.
//!
//! Balancers ([`Balance`]):
//! - round-robin: nginx's smooth weighted round robin (each pick adds every usable
//!   backend's weight to its score, takes the highest and subtracts the total from it),
//!   which interleaves backends instead of sending `weight` requests in a row to each;
//! - least-requests: fewest requests in flight per unit of weight, ties from a rotating
//!   start so an idle pool is still spread;
//! - p2c: two distinct random backends, the one with fewer requests in flight per weight;
//! - random: weighted random;
//! - maglev: `flowgate_core::maglev` on the pool's hash key; a slot whose primary is not
//!   usable goes to its secondary, then to the next slot that has a usable primary, so a
//!   backend's failure moves only its own keys.

use crate::config::{Balance, HashOn, PoolConfig, POOL_MAGLEV_M};
use flowgate_core::maglev::{MaglevBackend, MaglevTable, NO_BACKEND};
use rand::Rng;
use siphasher::sip::SipHasher24;
use smallvec::SmallVec;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Milliseconds since the first call, the clock of ejection deadlines (an `Instant` does
/// not fit an atomic).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// One backend's live state, shared by every generation of the config that has it.
#[derive(Debug)]
pub struct BackendState {
    pub address: SocketAddr,
    /// The active checker's verdict (always true without `[pool.health]`).
    pub active_up: AtomicBool,
    /// Drained through the admin API: no new requests, persistence moves on.
    pub drained: AtomicBool,
    /// Requests sent and not yet answered in full.
    pub outstanding: AtomicUsize,
    /// Consecutive connect errors / 5xx answers.
    fails: AtomicU32,
    /// Ejections in a row without a success between them (the back-off doubles).
    ejections: AtomicU32,
    /// Ejected until this [`now_ms`]; 0 = not ejected.
    ejected_until: AtomicU64,
}

impl BackendState {
    pub fn new(address: SocketAddr) -> BackendState {
        BackendState {
            address,
            active_up: AtomicBool::new(true),
            drained: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
            fails: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        }
    }

    /// Time left of a passive ejection.
    pub fn ejected_for(&self) -> Option<Duration> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        let now = now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Passive health: a request to this backend failed (connect error, no answer, or
    /// 5xx). Returns true when this failure ejects it.
    pub fn record_failure(&self, max_fails: u32, eject_ms: u32) -> bool {
        if max_fails == 0 {
            return false;
        }
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        if fails < max_fails || self.ejected_for().is_some() {
            return false;
        }
        self.fails.store(0, Ordering::Relaxed);
        // Back-off: eject_ms, doubling for each ejection in a row, at most 32 times.
        let shift = self.ejections.fetch_add(1, Ordering::Relaxed).min(5);
        let time = u64::from(eject_ms) << shift;
        self.ejected_until.store(now_ms() + time, Ordering::Relaxed);
        true
    }

    /// Passive health: a request succeeded.
    pub fn record_success(&self) {
        self.fails.store(0, Ordering::Relaxed);
        if self.ejected_for().is_none() {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Up by both health checks (drain and weight aside).
    pub fn is_healthy(&self) -> bool {
        self.active_up.load(Ordering::Relaxed) && self.ejected_for().is_none()
    }
}

/// Counts a request in flight on a backend until dropped.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<BackendState>);

impl InFlight {
    pub fn new(backend: std::sync::Arc<BackendState>) -> InFlight {
        backend.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(backend)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a balancer may look at in a request.
pub struct PickKey<'a> {
    pub client: IpAddr,
    pub headers: &'a http::HeaderMap,
}

/// A pool of one config generation.
#[derive(Debug)]
pub struct Pool {
    pub config: PoolConfig,
    /// Parallel to `config.backends`.
    pub backends: Vec<std::sync::Arc<BackendState>>,
    /// Smooth weighted round robin scores.
    scores: Mutex<Vec<i64>>,
    /// Rotating start of least-requests ties.
    next: AtomicUsize,
    maglev: Option<MaglevTable>,
    /// Parallel to `config.backends`: the authority of requests sent there.
    pub authorities: Vec<http::uri::Authority>,
    pub metrics: crate::metrics::PoolMetrics,
}

impl Pool {
    pub fn new(config: PoolConfig, backends: Vec<std::sync::Arc<BackendState>>) -> Pool {
        let maglev = (config.balance == Balance::Maglev).then(|| {
            let members: Vec<MaglevBackend> = config
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| MaglevBackend {
                    key: b.address.to_string().into_bytes(),
                    weight: b.weight,
                    // The config allows at most MAX_POOL_BACKENDS (< NO_BACKEND) backends.
                    index: i as u16,
                })
                .collect();
            MaglevTable::build(POOL_MAGLEV_M, &members)
        });
        let authorities = config
            .backends
            .iter()
            .map(|b| {
                http::uri::Authority::try_from(b.address.to_string())
                    .expect("a socket address is an authority")
            })
            .collect();
        Pool {
            metrics: crate::metrics::PoolMetrics::new(config.backends.len()),
            authorities,
            scores: Mutex::new(vec![0; config.backends.len()]),
            next: AtomicUsize::new(0),
            maglev,
            config,
            backends,
        }
    }

    /// Whether backend `i` may take a new request.
    pub fn usable(&self, i: usize) -> bool {
        let b = &self.backends[i];
        self.config.backends[i].weight > 0 && !b.drained.load(Ordering::Relaxed) && b.is_healthy()
    }

    /// Whether any backend may take a request.
    pub fn any_usable(&self) -> bool {
        (0..self.backends.len()).any(|i| self.usable(i))
    }

    /// Seconds a client should wait before trying again when nothing is usable: the end
    /// of the nearest passive ejection, else a health check interval or so.
    pub fn retry_after(&self) -> u64 {
        let ejection = self
            .backends
            .iter()
            .filter_map(|b| b.ejected_for())
            .min()
            .map(|d| d.as_secs() + 1);
        let check = self
            .config
            .health
            .as_ref()
            .map(|h| u64::from(h.interval_ms * h.rise).div_ceil(1000).max(1));
        ejection.or(check).unwrap_or(1)
    }

    /// Pick a usable backend not in `tried`, by the pool's balancer.
    pub fn pick(&self, key: &PickKey<'_>, tried: &[usize]) -> Option<usize> {
        let candidates: SmallVec<[usize; 16]> = (0..self.backends.len())
            .filter(|i| !tried.contains(i) && self.usable(*i))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let weight = |i: usize| u64::from(self.config.backends[i].weight);
        let load = |i: usize| self.backends[i].outstanding.load(Ordering::Relaxed) as u64;
        // a is less loaded than b, per unit of weight.
        let lighter = |a: usize, b: usize| load(a) * weight(b) < load(b) * weight(a);
        Some(match self.config.balance {
            Balance::RoundRobin => {
                let mut scores = self.scores.lock().unwrap_or_else(|p| p.into_inner());
                let total: i64 = candidates.iter().map(|&i| weight(i) as i64).sum();
                let mut best = candidates[0];
                for &i in &candidates {
                    scores[i] += weight(i) as i64;
                    if scores[i] > scores[best] {
                        best = i;
                    }
                }
                scores[best] -= total;
                best
            }
            Balance::LeastRequests => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let n = candidates.len();
                let mut best = candidates[start % n];
                for k in 1..n {
                    let i = candidates[(start + k) % n];
                    if lighter(i, best) {
                        best = i;
                    }
                }
                best
            }
            Balance::P2c => {
                let mut rng = rand::thread_rng();
                if candidates.len() == 1 {
                    candidates[0]
                } else {
                    let a = rng.gen_range(0..candidates.len());
                    let mut b = rng.gen_range(0..candidates.len() - 1);
                    if b >= a {
                        b += 1;
                    }
                    let (a, b) = (candidates[a], candidates[b]);
                    if lighter(b, a) {
                        b
                    } else {
                        a
                    }
                }
            }
            Balance::Random => {
                let total: u64 = candidates.iter().map(|&i| weight(i)).sum();
                let mut x = rand::thread_rng().gen_range(0..total);
                let mut chosen = candidates[candidates.len() - 1];
                for &i in &candidates {
                    if x < weight(i) {
                        chosen = i;
                        break;
                    }
                    x -= weight(i);
                }
                chosen
            }
            Balance::Maglev => self.maglev_pick(key, &candidates),
        })
    }

    fn maglev_pick(&self, key: &PickKey<'_>, candidates: &[usize]) -> usize {
        let Some(table) = self.maglev.as_ref().filter(|t| !t.is_empty()) else {
            return candidates[0];
        };
        let hash = hash_key(&self.config.hash, key);
        let ok = |b: u16| b != NO_BACKEND && candidates.contains(&usize::from(b));
        let start = table.slot_index(hash) as usize;
        let slots = table.slots();
        let slot = slots[start];
        if ok(slot.primary) {
            return usize::from(slot.primary);
        }
        if ok(slot.secondary) {
            return usize::from(slot.secondary);
        }
        (1..slots.len())
            .map(|k| slots[(start + k) % slots.len()].primary)
            .find(|&b| ok(b))
            .map_or(candidates[0], usize::from)
    }
}

/// The 32-bit Maglev hash of a request's key (SipHash-2-4 under a fixed key, so every
/// proxy instance maps a key to the same slot). A missing header or cookie hashes as
/// empty.
fn hash_key(on: &HashOn, key: &PickKey<'_>) -> u32 {
    const KEY: &[u8; 16] = b"flowgate-l7-hash";
    let hasher = SipHasher24::new_with_key(KEY);
    let h = match on {
        HashOn::ClientIp => match key.client {
            IpAddr::V4(a) => hasher.hash(&a.octets()),
            IpAddr::V6(a) => hasher.hash(&a.octets()),
        },
        HashOn::Header(name) => {
            hasher.hash(key.headers.get(name).map_or(&[][..], |v| v.as_bytes()))
        }
        HashOn::Cookie(name) => hasher.hash(
            crate::cookie::find(key.headers, name)
                .unwrap_or_default()
                .as_bytes(),
        ),
    };
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, Upstream};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn pool(balance: Balance, weights: &[u32]) -> Pool {
        let backends: Vec<BackendConfig> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| BackendConfig {
                address: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
                weight,
            })
            .collect();
        let states = backends
            .iter()
            .map(|b| Arc::new(BackendState::new(b.address)))
            .collect();
        Pool::new(
            PoolConfig {
                name: "p".into(),
                balance,
                hash: HashOn::ClientIp,
                upstream: Upstream::Http1,
                backends,
                health: None,
                cookie: None,
                retries: 2,
                max_fails: 3,
                eject_ms: 1000,
                hide_headers: vec![],
            },
            states,
        )
    }

    fn picks(p: &Pool, n: usize) -> Vec<usize> {
        let headers = http::HeaderMap::new();
        (0..n)
            .map(|i| {
                let key = PickKey {
                    client: IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
                    headers: &headers,
                };
                p.pick(&key, &[]).unwrap()
            })
            .collect()
    }

    #[test]
    fn smooth_round_robin_interleaves_by_weight() {
        let p = pool(Balance::RoundRobin, &[5, 1, 1]);
        // nginx's documented sequence for weights 5, 1, 1.
        assert_eq!(picks(&p, 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn every_balancer_follows_weights_and_skips_unusable_backends() {
        for balance in [
            Balance::RoundRobin,
            Balance::LeastRequests,
            Balance::P2c,
            Balance::Random,
            Balance::Maglev,
        ] {
            let p = pool(balance, &[1, 3, 0, 1]);
            p.backends[3].active_up.store(false, Ordering::Relaxed);
            let mut count: HashMap<usize, usize> = HashMap::new();
            for i in picks(&p, 4000) {
                *count.entry(i).or_default() += 1;
            }
            assert_eq!(count.get(&2), None, "{balance:?}: weight 0 is draining");
            assert_eq!(count.get(&3), None, "{balance:?}: down");
            // Weighted balancers send about 3 of 4 to backend 1; least-requests and p2c
            // see no load here, so they only have to use both.
            let share = count[&1] as f64 / 4000.0;
            match balance {
                Balance::LeastRequests | Balance::P2c => assert!(count[&0] > 0, "{balance:?}"),
                _ => assert!((0.65..0.85).contains(&share), "{balance:?}: {share}"),
            }
        }
    }

    #[test]
    fn least_requests_avoids_the_busy_backend() {
        let p = pool(Balance::LeastRequests, &[1, 1]);
        let _busy: Vec<InFlight> = (0..3)
            .map(|_| InFlight::new(p.backends[0].clone()))
            .collect();
        assert!(picks(&p, 10).iter().all(|&i| i == 1));
    }

    #[test]
    fn maglev_moves_only_the_failed_backends_keys() {
        let p = pool(Balance::Maglev, &[1, 1, 1]);
        let before = picks(&p, 1000);
        p.backends[1].active_up.store(false, Ordering::Relaxed);
        let after = picks(&p, 1000);
        for (b, a) in before.iter().zip(&after) {
            if *b != 1 {
                assert_eq!(a, b, "a key on a live backend moved");
            } else {
                assert_ne!(*a, 1);
            }
        }
    }

    #[test]
    fn passive_ejection_after_max_fails_with_back_off() {
        let b = BackendState::new(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(!b.record_failure(3, 60_000));
        b.record_success();
        assert!(!b.record_failure(3, 60_000));
        assert!(!b.record_failure(3, 60_000));
        assert!(b.record_failure(3, 60_000));
        assert!(!b.is_healthy());
        assert!(b.ejected_for().unwrap() > Duration::from_secs(59));
    }
}
