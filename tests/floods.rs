//! Resource bounds under attack, through the replay engine: long-lived TCP flows while a
//! SYN flood, a random-source UDP flood (each 20 times the flow table's capacity) and a
//! flood of malformed frames go by. Memory stays flat (the replay engine's heap peak with
//! the floods is that without them), counters account for every frame, and
//! established flows keep their backends. The figures go to docs/RELIABILITY.md (run with
//! `--nocapture` to see them).

#[path = "common/floods.rs"]
mod trace;

use flowgate_host::{Frame, ShardedEngine};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use trace::{
    backends, established, floods, kept, merge, replay, tables, Tagged, CAPACITY, CONFIG,
    FLOOD_FACTOR,
};

const FLOWGATE: &str = env!("CARGO_BIN_EXE_flowgate");

fn write(path: &Path, frames: &[Tagged]) {
    let frames: Vec<flowgate_traces::Frame> = frames
        .iter()
        .map(|t| flowgate_traces::Frame {
            ts: t.frame.ts,
            data: t.frame.data.clone(),
        })
        .collect();
    flowgate_traces::write_pcap_file(path, &frames).unwrap();
}

/// Counts the heap in use and its peak, so the test can see what processing a trace
/// allocates. (The replay process's peak RSS cannot be had from outside: Linux carries
/// ru_maxrss across exec, so a child shows the test's own size.)
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests of this file run one at a time: the heap count is process-wide.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The most heap that replaying `frames` in bursts of 64 (as `flowgate replay` does: each
/// burst's output written and dropped) held above what was in use before, in bytes.
fn replay_heap_peak(frames: &[Tagged]) -> usize {
    let frames: Vec<Frame> = frames.iter().map(|t| t.frame.clone()).collect();
    let mut engine = ShardedEngine::new(tables(), 2);
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    for burst in frames.chunks(64) {
        let out = engine.process_burst(burst);
        std::hint::black_box(&out);
    }
    PEAK.load(Ordering::Relaxed) - base
}

/// `flowgate replay --json` of `input`: its summary.
fn replay_cli(config: &Path, input: &Path, output: &Path) -> serde_json::Value {
    let out = Command::new(FLOWGATE)
        .args(["replay", "--json", "--workers", "2", "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn floods_at_twenty_times_capacity_keep_memory_flat_and_every_frame_counted() {
    let _serial = one_at_a_time();
    let t = tables();
    let base = established(&t);
    let attack = merge(&base, &floods(&t));
    let quiet_only = merge(&base, &[]);
    let flood_frames = attack.len() - quiet_only.len();
    assert!(flood_frames as u32 >= 2 * FLOOD_FACTOR * CAPACITY);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("floods.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let (quiet_pcap, attack_pcap) = (
        dir.path().join("quiet.pcap"),
        dir.path().join("attack.pcap"),
    );
    write(&quiet_pcap, &quiet_only);
    write(&attack_pcap, &attack);
    let summary = replay_cli(&config, &attack_pcap, &dir.path().join("out.pcap"));
    let quiet_heap = replay_heap_peak(&quiet_only);
    let attack_heap = replay_heap_peak(&attack);
    eprintln!(
        "floods: {} frames ({} of them floods); replay heap peak {} KiB without, {} KiB with",
        attack.len(),
        flood_frames,
        quiet_heap / 1024,
        attack_heap / 1024
    );
    // Flat: the flow table and buffers are sized by the config, not by the traffic; the
    // floods (twice the quiet trace's frames) may cost at most a burst's worth more.
    assert!(
        attack_heap <= quiet_heap + 256 * 1024,
        "heap peak {attack_heap} B under attack vs {quiet_heap} B without"
    );
    let n = attack.len() as u64;
    let get = |k: &str| summary[k].as_u64().unwrap();
    let dropped: u64 = summary["dropped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(get("frames_in"), n);
    assert_eq!(get("forwarded") + get("passed") + dropped, n, "{summary}");
    // Every malformed case the generator makes is dropped but a few it makes on purpose
    // to be passed (a bad frame to no VIP is the host's business).
    assert!(
        dropped >= 9_000,
        "the malformed frames are dropped: {summary}"
    );
}

/// Established flows through `floods`, (kept, spanning) once with the tables unchanged and
/// once with a backend added right after the attack (`trace::with_backend_added`).
fn kept_through(floods: &[flowgate_traces::Trace]) -> [(usize, usize); 2] {
    let all = merge(&established(&tables()), floods);
    [false, true].map(|change| kept(&all, &backends(&replay(&all, change).0)))
}

#[test]
fn established_flows_keep_their_backends_through_syn_and_malformed_floods() {
    let _serial = one_at_a_time();
    let t = tables();
    let mut f = floods(&t);
    f.remove(1); // the UDP flood: see the next test
    let [(same, n1), (changed, n2)] = kept_through(&f);
    eprintln!("SYN + malformed floods: {same}/{n1} kept (tables unchanged), {changed}/{n2} kept (backend added)");
    assert!(n1 >= 150 && n2 >= 150, "only {n1} flows span the floods");
    assert_eq!(same, n1, "nothing changed, so nothing may move");
    assert!(changed * 100 >= n2 * 99, "{changed} of {n2} kept");
}

#[test]
fn established_flows_keep_their_backends_through_a_udp_flood_while_tables_stand() {
    let _serial = one_at_a_time();
    let t = tables();
    let f = floods(&t);
    let [(same, n1), (changed, n2)] = kept_through(&f);
    // Unchanged tables: a flow evicted by the flood re-selects through the same Maglev
    // table and lands on the same backend.
    eprintln!(
        "all floods: {same}/{n1} kept (tables unchanged), {changed}/{n2} kept (backend added)"
    );
    assert!(n1 >= 150, "only {n1} flows span the floods");
    assert_eq!(same, n1, "nothing changed, so nothing may move");
}
