//! Adaptive polling for data paths that poll (DPDK lcores): an idle loop backs off from
//! spinning to sleeping so that an idle node costs about no CPU, and snaps back to full
//! speed on the first frame.
//!
//! The shape of VPP's adaptive mode and DPDK's `rte_power` "empty poll" heuristics: a
//! few empty polls are spun through (a burst gap costs nothing), then the thread yields,
//! then it sleeps for growing intervals (doubling from `first_sleep` up to `max_sleep`).
//! Any non-empty poll resets it. The price is latency at wake-up: the first frame after
//! an idle spell waits at most `max_sleep` plus the kernel's timer slack. Written by hand
//! because it is a dozen lines over `std::thread`, and the loops that call it must stay
//! free of any runtime: one call per poll.

use std::time::Duration;

/// How a polling loop backs off when its polls come back empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Empty polls spun through (`spin_loop` hint) before yielding.
    pub spins: u32,
    /// Further empty polls that yield the CPU before the first sleep.
    pub yields: u32,
    /// The first sleep; each further empty poll doubles it.
    pub first_sleep: Duration,
    /// The longest sleep: the bound on the latency added at wake-up.
    pub max_sleep: Duration,
}

impl IdlePolicy {
    /// Never back off: spin on every empty poll (the lowest latency, a full core).
    pub const SPIN: IdlePolicy = IdlePolicy {
        spins: u32::MAX,
        yields: 0,
        first_sleep: Duration::ZERO,
        max_sleep: Duration::ZERO,
    };
}

impl Default for IdlePolicy {
    /// About 50 µs of spinning at a few hundred ns per empty poll, then sleeps from 10 µs
    /// up to 500 µs: an idle lcore wakes about 2000 times a second, for a few µs each.
    fn default() -> Self {
        IdlePolicy {
            spins: 128,
            yields: 32,
            first_sleep: Duration::from_micros(10),
            max_sleep: Duration::from_micros(500),
        }
    }
}

/// One polling loop's back-off state.
#[derive(Debug, Clone)]
pub struct IdleBackoff {
    policy: IdlePolicy,
    /// Empty polls since the last frame.
    empty: u32,
    /// The next sleep.
    sleep: Duration,
    /// Sleeps taken so far (for tests and reports).
    sleeps: u64,
}

impl IdleBackoff {
    pub fn new(policy: IdlePolicy) -> IdleBackoff {
        IdleBackoff {
            policy,
            empty: 0,
            sleep: policy.first_sleep,
            sleeps: 0,
        }
    }

    /// After a poll that got `frames`: on an empty poll spin, yield or sleep as the
    /// policy says; on a non-empty one, start over at full speed.
    #[inline]
    pub fn polled(&mut self, frames: usize) {
        if frames > 0 {
            self.empty = 0;
            self.sleep = self.policy.first_sleep;
            return;
        }
        let p = &self.policy;
        self.empty = self.empty.saturating_add(1);
        if self.empty <= p.spins {
            std::hint::spin_loop();
        } else if self.empty - p.spins <= p.yields {
            std::thread::yield_now();
        } else {
            std::thread::sleep(self.sleep);
            self.sleeps += 1;
            self.sleep = (self.sleep * 2).min(p.max_sleep);
        }
    }

    /// Sleeps taken since the start.
    pub fn sleeps(&self) -> u64 {
        self.sleeps
    }

    /// The sleep the next empty poll past the spins and yields would take.
    pub fn next_sleep(&self) -> Duration {
        self.sleep
    }
}

impl Default for IdleBackoff {
    fn default() -> Self {
        IdleBackoff::new(IdlePolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> IdlePolicy {
        IdlePolicy {
            spins: 3,
            yields: 2,
            first_sleep: Duration::from_micros(1),
            max_sleep: Duration::from_micros(4),
        }
    }

    #[test]
    fn spins_then_yields_then_sleeps_growing_to_the_cap() {
        let mut b = IdleBackoff::new(policy());
        for _ in 0..5 {
            b.polled(0);
        }
        assert_eq!(b.sleeps(), 0, "spins and yields come before any sleep");
        b.polled(0);
        assert_eq!(b.sleeps(), 1);
        assert_eq!(b.next_sleep(), Duration::from_micros(2));
        b.polled(0);
        assert_eq!(b.next_sleep(), Duration::from_micros(4));
        b.polled(0);
        assert_eq!(b.next_sleep(), Duration::from_micros(4), "capped");
        assert_eq!(b.sleeps(), 3);
    }

    #[test]
    fn traffic_resets_to_spinning() {
        let mut b = IdleBackoff::new(policy());
        for _ in 0..8 {
            b.polled(0);
        }
        let sleeps = b.sleeps();
        b.polled(32);
        assert_eq!(b.next_sleep(), Duration::from_micros(1));
        for _ in 0..5 {
            b.polled(0);
        }
        assert_eq!(b.sleeps(), sleeps, "back to spinning after a frame");
    }

    #[test]
    fn spin_policy_never_sleeps() {
        let mut b = IdleBackoff::new(IdlePolicy::SPIN);
        for _ in 0..10_000 {
            b.polled(0);
        }
        assert_eq!(b.sleeps(), 0);
    }
}
