//! What adaptive polling costs and saves (docs/BENCHMARKS.md, "Idle data path"): a loop
//! polls an empty "queue" (an atomic) for a few seconds under the default [`IdlePolicy`]
//! and under [`IdlePolicy::SPIN`] (the baseline, in the same run), and reports the CPU it
//! used and the delay between a frame "arriving" (the atomic set, after a random idle
//! spell) and the loop seeing it.
//!
//! `cargo run --release -p flowgate-host --example idle_backoff [SECONDS]`

use flowgate_host::idle::{IdleBackoff, IdlePolicy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU time (user + system) of this process so far, from /proc (clock ticks of 10 ms).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct Run {
    cpu_share: f64,
    wake_us: Vec<f64>,
}

fn run(policy: IdlePolicy, seconds: f64) -> Run {
    // 0: nothing pending; else the instant (ns since `epoch`) a frame arrived.
    let pending = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let end = epoch + Duration::from_secs_f64(seconds);
    let p = pending.clone();
    let poller = std::thread::spawn(move || {
        let mut backoff = IdleBackoff::new(policy);
        let mut wake_us = Vec::new();
        while Instant::now() < end {
            let arrived = p.swap(0, Ordering::AcqRel);
            if arrived != 0 {
                let seen = epoch.elapsed().as_nanos() as u64;
                wake_us.push(seen.saturating_sub(arrived) as f64 / 1000.0);
            }
            backoff.polled(usize::from(arrived != 0));
        }
        wake_us
    });
    let before = cpu();
    // A frame every 20-50 ms: long enough for the loop to reach its longest sleep.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    while Instant::now() + Duration::from_millis(60) < end {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 30));
        pending.store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
    }
    let wake_us = poller.join().expect("poller");
    let used = cpu() - before;
    Run {
        cpu_share: used.as_secs_f64() / seconds,
        wake_us,
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    println!("| policy | CPU of one core | wake-up p50 | p99 | max | wake-ups |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut spin_cpu = None;
    for (name, policy) in [
        ("spin (baseline)", IdlePolicy::SPIN),
        ("adaptive (default)", IdlePolicy::default()),
    ] {
        let mut r = run(policy, seconds);
        let ratio = spin_cpu.map_or(String::new(), |s: f64| {
            format!(" ({:.3} x spin)", r.cpu_share / s.max(1e-9))
        });
        spin_cpu.get_or_insert(r.cpu_share);
        let n = r.wake_us.len();
        println!(
            "| {name} | {:.1} %{ratio} | {:.1} µs | {:.1} µs | {:.1} µs | {n} |",
            r.cpu_share * 100.0,
            percentile(&mut r.wake_us, 0.5),
            percentile(&mut r.wake_us, 0.99),
            percentile(&mut r.wake_us, 1.0),
        );
    }
}
