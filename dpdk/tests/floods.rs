//! Resource bounds under attack (issue 24 item 6) through the DPDK data path: the floods
//! of `tests/floods.rs` (250 long-lived TCP flows through a 1,024-entry flow table while a
//! SYN flood and a random-source UDP flood, each 20 times the table's capacity, and 10,000
//! malformed frames go by) run through `datapath::run` with two worker lcores, and through
//! the replay engine (`ShardedEngine`, two workers) on the same trace and config.
//!
//! - Every frame is accounted for: frames in = forwarded + passed + dropped, the counters
//!   equal replay's, the forwarded and passed frames that came out of the ports are
//!   replay's, byte for byte.
//! - Established flows keep their backends: every one with the tables unchanged; with a
//!   backend added right after the floods, the same flows as on the replay engine.
//! - Memory stays flat. What DPDK allocates is fixed when the EAL and the pool are made
//!   (`-m 512` of memory, a pool of 8,191 mbufs): the floods can only exhaust the pool
//!   (an mbuf leaked per dropped frame would) or grow what the lcores allocate on the
//!   Rust heap (flow-table shards, burst buffers, hand-off state). So the test checks that
//!   every mbuf is back in the pool after each run, and that the heap peak of the lcores'
//!   threads during the run with the floods is that without them. (The process's RSS
//!   would mostly measure the test's own copy of the trace.)
//!
//! The ports are net_ring vdevs, as in `churn.rs`: the test transmits the trace into the
//! input port's rings (each balanced frame on the queue of the worker owning its set, so
//! each worker sees its frames in trace order, as replay's do), stamped with its trace
//! time (the flow table ages on RX timestamps, as replay's does), and receives forwarded
//! frames from the output port and passed frames from the pass port. Every wait has a
//! deadline.
//!
//! In-process: one EAL per process, so one test in this file.

mod common;
use common::eal_args_on;

#[path = "../../tests/common/floods.rs"]
mod trace;

use flowgate_core::counters::Counters;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{prepare, Prepared};
use flowgate_core::{Tables, Verdict};
use flowgate_dpdk::datapath::{self, Clock, LoopConfig, Ports, RunReport};
use flowgate_dpdk::port::RxTimestampField;
use flowgate_dpdk::{Eal, Mbuf, Mempool, Port, PortConfig};
use flowgate_host::{CountersBoard, SetSplit, TablesPublisher};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trace::{
    backends, established, floods, kept, last_flood, merge, tables, with_backend_added, Tagged,
    CAPACITY, FLOOD_FACTOR,
};

/// Main lcore on CPU 0, worker lcores 1 (CPU 0) and 2 (CPU 1).
const LCORES: &str = "0@0,1@0,2@1";
const WORKERS: u16 = 2;
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);
/// Frames the test puts into a queue's ring at a time.
const FEED: usize = 64;
/// The pool's mbufs.
const POOL: u32 = 8191;
/// The most mbufs the test lets be in flight (a ring of a net_ring port holds 1,023).
const IN_FLIGHT: u32 = 512;

/// Counts the heap in use and its peak, on every thread but the test's feeding thread:
/// during a run that is the lcores' allocations.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the feeding thread: its allocations (the frames it collects) are the test's.
    static UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    UNCOUNTED.try_with(|u| !u.get()).unwrap_or(true)
}

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The EAL's ports and what the test feeds them with.
struct Rig<'a> {
    pool: &'a Mempool,
    /// net_ring0: the data path receives from it; the test transmits into its rings.
    input: &'a Port,
    /// net_ring1: forwarded frames.
    output: &'a Port,
    /// net_ring2: passed frames.
    pass: &'a Port,
    stamp: RxTimestampField,
}

/// A trace ready to feed, with what replay made of it.
struct Case<'a> {
    all: &'a [Tagged],
    /// The RX queue of each frame: the owner of its set for a balanced frame.
    queue: Vec<u16>,
    /// Frames the data path balances (each must arrive on its owner's queue).
    balanced: u64,
    /// Change the tables (`with_backend_added`) after the last flood frame.
    change: bool,
}

impl<'a> Case<'a> {
    fn new(all: &'a [Tagged], change: bool) -> Case<'a> {
        let t = tables();
        let hasher = FlowHasher::new(&t.keys);
        let split = SetSplit::new(u32::from(WORKERS), &t.geometry);
        let mut balanced = 0;
        let queue = all
            .iter()
            .enumerate()
            .map(|(i, f)| match prepare(&f.frame.data, &t, &hasher) {
                Prepared::Balance(b) => {
                    balanced += 1;
                    split.owner(b.sets[0]) as u16
                }
                _ => (i % usize::from(WORKERS)) as u16,
            })
            .collect();
        Case {
            all,
            queue,
            balanced,
            change,
        }
    }
}

/// What came out of the data path's ports.
#[derive(Default)]
struct Out {
    forwarded: Vec<Vec<u8>>,
    passed: Vec<Vec<u8>>,
}

/// One run: the data path's report, what came out, the lcores' heap peak above the start
/// and the pool's free mbufs before and after.
struct Run {
    report: RunReport,
    out: Out,
    heap_peak: usize,
    pool: (u32, u32),
}

/// Sets `stop` if the feeding thread panics, so the data path never runs on without it.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Waits (bounded by [`WAIT`]) until `done` holds; panics with `what` otherwise.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "within {WAIT:?}: {what}");
        std::thread::yield_now();
    }
}

/// Frames `range` of `case` into the input port, until `forwarded` and `passed` frames
/// came out of the output and pass ports (replay's counts for the range).
fn feed(rig: &Rig<'_>, case: &Case<'_>, range: Range<usize>, want: (usize, usize), out: &mut Out) {
    let mut next: Vec<Vec<usize>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for i in range.rev() {
        next[usize::from(case.queue[i])].push(i);
    }
    let mut pending: Vec<Vec<Mbuf>> = (0..WORKERS).map(|_| Vec::with_capacity(FEED)).collect();
    let mut received: Vec<Mbuf> = Vec::with_capacity(FEED);
    let (fwd0, pass0) = (out.forwarded.len(), out.passed.len());
    let deadline = Instant::now() + WAIT;
    loop {
        for q in 0..WORKERS {
            let frames = &mut pending[usize::from(q)];
            let queue = &mut next[usize::from(q)];
            while frames.len() < FEED {
                let Some(&i) = queue.last() else { break };
                // Fewer mbufs in flight than an output ring holds, so the data path never
                // finds one full (it would drop what it cannot send).
                if POOL - rig.pool.available() >= IN_FLIGHT {
                    break;
                }
                let Some(mut m) = rig.pool.frame(&case.all[i].frame.data) else {
                    break;
                };
                m.set_rx_timestamp(rig.stamp, case.all[i].frame.ts.as_nanos() as u64);
                frames.push(m);
                queue.pop();
            }
            rig.input.tx_burst(q, frames);
            while rig.output.rx_burst(q, &mut received, FEED as u16) > 0 {
                out.forwarded
                    .extend(received.drain(..).map(|m| m.data().to_vec()));
            }
            while rig.pass.rx_burst(q, &mut received, FEED as u16) > 0 {
                out.passed
                    .extend(received.drain(..).map(|m| m.data().to_vec()));
            }
        }
        let got = (out.forwarded.len() - fwd0, out.passed.len() - pass0);
        let unfed: Vec<usize> = next
            .iter()
            .zip(&pending)
            .map(|(n, p)| n.len() + p.len())
            .collect();
        if unfed.iter().all(|&u| u == 0) && got.0 >= want.0 && got.1 >= want.1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "within {WAIT:?}: every frame fed ({unfed:?} not yet) and its output out ({got:?} of {want:?}; {} mbufs free)",
            rig.pool.available()
        );
        std::thread::yield_now();
    }
    assert_eq!(
        (out.forwarded.len() - fwd0, out.passed.len() - pass0),
        want,
        "no frame out twice"
    );
}

/// Replay's forwarded and passed frames among `outcomes[range]`.
fn replay_counts(outcomes: &[flowgate_host::Outcome], range: Range<usize>) -> (usize, usize) {
    let o = &outcomes[range];
    (
        o.iter()
            .filter(|o| matches!(o.verdict, Verdict::Forward { .. }))
            .count(),
        o.iter().filter(|o| o.verdict == Verdict::Pass).count(),
    )
}

/// `case` through `datapath::run` with two worker lcores.
fn run(eal: &Eal, rig: &Rig<'_>, case: &Case<'_>, replay: &[flowgate_host::Outcome]) -> Run {
    let n = case.all.len();
    let publisher = TablesPublisher::new(tables());
    let watch = publisher.watch();
    // The board only where the run waits on it (the change): loading it from the feeding
    // thread would free the lcores' snapshots there, uncounted.
    let board = CountersBoard::default();
    let stop = AtomicBool::new(false);
    let returned = AtomicBool::new(false);
    let config = LoopConfig {
        clock: Clock::RxTimestamp(rig.stamp),
        max_frames: Some(n as u64),
        publish_every: Duration::from_millis(1),
        ..LoopConfig::default()
    };
    let ports = Ports {
        rx: rig.input,
        tx: rig.output,
        pass: Some(rig.pass),
    };
    let free_before = rig.pool.available();
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let (report, out) = std::thread::scope(|s| {
        let feeder = s.spawn(|| {
            UNCOUNTED.with(|u| u.set(true));
            let _stop = StopOnPanic(&stop);
            let mut out = Out {
                forwarded: Vec::with_capacity(n),
                passed: Vec::with_capacity(n),
            };
            if case.change {
                let end = last_flood(case.all);
                feed(
                    rig,
                    case,
                    0..end + 1,
                    replay_counts(replay, 0..end + 1),
                    &mut out,
                );
                wait_for("every frame up to the last flood frame counted", || {
                    board.load().counters.frames_in == (end + 1) as u64
                });
                publisher.publish(with_backend_added(&tables()));
                let version = watch.version();
                wait_for("every lcore took the new tables", || {
                    board.load().tables_version >= version
                });
                feed(
                    rig,
                    case,
                    end + 1..n,
                    replay_counts(replay, end + 1..n),
                    &mut out,
                );
            } else {
                feed(rig, case, 0..n, replay_counts(replay, 0..n), &mut out);
            }
            // The data path returns once it received `max_frames`; stop it if it does not.
            let deadline = Instant::now() + WAIT;
            while !returned.load(Ordering::Relaxed) {
                if Instant::now() >= deadline {
                    stop.store(true, Ordering::Relaxed);
                    panic!("the data path did not return within {WAIT:?} of its last frame");
                }
                std::thread::yield_now();
            }
            out
        });
        let board = case.change.then_some(&board);
        let report = datapath::run(eal, &ports, &watch, &config, board, &stop);
        returned.store(true, Ordering::Relaxed);
        let out = feeder
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (report.expect("the data path runs"), out)
    });
    let heap_peak = PEAK.load(Ordering::Relaxed) - base;
    Run {
        report,
        out,
        heap_peak,
        pool: (free_before, rig.pool.available()),
    }
}

/// The frames of `v`, sorted (the lcores interleave their outputs).
fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort_unstable();
    v
}

/// The client of a TCP frame (source address and port), if it is one.
fn tcp_client(frame: &[u8]) -> Option<([u8; 4], u16)> {
    let p = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        return None;
    };
    let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
        return None;
    };
    Some((ip.header().source(), tcp.source_port()))
}

/// `case` through the data path, checked against replay frame for frame and counter for
/// counter; returns the run and the backend each established flow's frame went to.
fn checked(eal: &Eal, rig: &Rig<'_>, case: &Case<'_>, what: &str) -> (Run, Vec<Option<u16>>) {
    let (outcomes, replayed): (_, Counters) = trace::replay(case.all, case.change);
    let run = run(eal, rig, case, &outcomes);
    let (d, io, n) = (&run.report.counters, &run.report.io, case.all.len() as u64);
    assert_eq!(d.frames_in, n, "{what}: every frame counted in");
    assert_eq!(
        d.forwarded + d.passed + d.total_dropped(),
        n,
        "{what}: every frame forwarded, passed or dropped: {d:?}"
    );
    assert_eq!(*d, replayed, "{what}: counters equal replay's");
    assert_eq!(
        (
            io.received,
            io.sent,
            io.passed_sent,
            io.tx_unsent,
            io.rewrite_no_room
        ),
        (n, d.forwarded, d.passed, 0, 0),
        "{what}: every forwarded and passed frame sent"
    );
    assert_eq!(
        (io.steered, io.handed_off),
        (case.balanced, 0),
        "{what}: every balanced frame on its owner's queue"
    );
    assert_eq!(
        run.pool.0, run.pool.1,
        "{what}: every mbuf back in the pool"
    );
    let want_forwarded = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Forward { .. }))
        .map(|o| o.frame.clone())
        .collect();
    let want_passed = outcomes
        .iter()
        .zip(case.all)
        .filter(|(o, _)| o.verdict == Verdict::Pass)
        .map(|(_, f)| f.frame.data.clone())
        .collect();
    let (got_forwarded, got_passed) = (
        sorted(run.out.forwarded.clone()),
        sorted(run.out.passed.clone()),
    );
    assert!(
        got_forwarded == sorted(want_forwarded),
        "{what}: the forwarded frames are replay's"
    );
    assert!(
        got_passed == sorted(want_passed),
        "{what}: the passed frames are replay's"
    );

    // Each established flow's frames leave in order: its k-th forwarded frame is its k-th
    // frame of the trace. Its backend is the one whose MAC it was sent to (DSR).
    let all_backends = with_backend_added(&tables()).backends;
    let backend_of_mac = |frame: &[u8]| {
        all_backends
            .iter()
            .position(|b| b.mac[..] == frame[..6])
            .map(|b| b as u16)
    };
    let mut flow_of: HashMap<([u8; 4], u16), u32> = HashMap::new();
    let mut frames_of: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, f) in case.all.iter().enumerate() {
        if let Some(flow) = f.flow {
            let client = tcp_client(&f.frame.data).expect("a flow's frame is TCP");
            assert_eq!(
                *flow_of.entry(client).or_insert(flow),
                flow,
                "a client per flow"
            );
            frames_of.entry(flow).or_default().push(i);
        }
    }
    let mut sent_to: HashMap<u32, Vec<u16>> = HashMap::new();
    for f in &run.out.forwarded {
        if let Some(flow) = tcp_client(f).and_then(|c| flow_of.get(&c)) {
            let b = backend_of_mac(f).expect("sent to a backend's MAC");
            sent_to.entry(*flow).or_default().push(b);
        }
    }
    let mut backend = vec![None; case.all.len()];
    for (flow, frames) in &frames_of {
        let to = &sent_to[flow];
        assert_eq!(
            to.len(),
            frames.len(),
            "{what}: flow {flow}: every frame forwarded"
        );
        for (&i, &b) in frames.iter().zip(to) {
            backend[i] = Some(b);
        }
    }
    let replay_backend = backends(&outcomes);
    for (i, f) in case.all.iter().enumerate() {
        if f.flow.is_some() {
            assert_eq!(
                backend[i], replay_backend[i],
                "{what}: frame {i}'s backend is replay's"
            );
        }
    }
    (run, backend)
}

#[test]
fn floods_through_two_worker_lcores_keep_memory_flat_flows_kept_and_every_frame_counted() {
    let args = eal_args_on(
        LCORES,
        "fg-floods",
        &["net_ring0", "net_ring1", "net_ring2"].map(String::from),
    );
    let (eal, _) = Eal::init(&args).expect("EAL");
    let pool = Arc::new(Mempool::new(&eal, "floods", POOL, 256).expect("mempool"));
    let queues = PortConfig {
        rx_queues: WORKERS,
        tx_queues: WORKERS,
        ..PortConfig::default()
    };
    let input = Port::configure(&eal, 0, &queues, &pool).expect("net_ring0");
    let output = Port::configure(&eal, 1, &queues, &pool).expect("net_ring1");
    let pass = Port::configure(&eal, 2, &queues, &pool).expect("net_ring2");
    let stamp = RxTimestampField::register(&eal).expect("the RX timestamp field");
    let rig = Rig {
        pool: &pool,
        input: &input,
        output: &output,
        pass: &pass,
        stamp,
    };
    let start_free = pool.available();

    let t: Tables = tables();
    let base = established(&t);
    let attack = merge(&base, &floods(&t));
    let quiet_only = merge(&base, &[]);
    let flood_frames = attack.len() - quiet_only.len();
    assert!(flood_frames as u32 >= 2 * FLOOD_FACTOR * CAPACITY);

    // Without the floods first: the heap the lcores need anyway. The quiet trace has no
    // flood frame to change the tables after: it runs unchanged.
    let (quiet, _) = checked(&eal, &rig, &Case::new(&quiet_only, false), "quiet");
    let (flooded, backend) = checked(&eal, &rig, &Case::new(&attack, false), "floods");
    let (same, n1) = kept(&attack, &backend);
    let (changed_run, backend) = checked(
        &eal,
        &rig,
        &Case::new(&attack, true),
        "floods, backend added",
    );
    let (changed, n2) = kept(&attack, &backend);
    // Without the UDP flood: the embryonic rule keeps the SYNs from evicting established
    // flows, so they keep their backends through a change too.
    let mut syn_bad = floods(&t);
    syn_bad.remove(1);
    let syn_bad = merge(&base, &syn_bad);
    let (_, backend) = checked(
        &eal,
        &rig,
        &Case::new(&syn_bad, true),
        "SYN + malformed floods, backend added",
    );
    let (syn_kept, n3) = kept(&syn_bad, &backend);
    let (d, dropped) = (
        &flooded.report.counters,
        flooded.report.counters.total_dropped(),
    );
    eprintln!(
        "DPDK floods, {WORKERS} worker lcores: {} frames ({flood_frames} of them floods) = forwarded {} + passed {} + dropped {dropped}, equal to replay; evictions {}; lcores' heap peak {} KiB without the floods, {} KiB with; mbufs free {} before each run and after; established flows kept: {same}/{n1} (tables unchanged), {changed}/{n2} (backend added after the floods, evictions {}); SYN + malformed floods only: {syn_kept}/{n3} (backend added)",
        attack.len(),
        d.forwarded,
        d.passed,
        d.flow.evictions,
        quiet.heap_peak / 1024,
        flooded.heap_peak / 1024,
        start_free,
        changed_run.report.counters.flow.evictions,
    );
    assert!(dropped >= 9_000, "the malformed frames are dropped: {d:?}");
    // Flat: the shards and buffers are sized by the config, not by the traffic; the floods
    // (twice the quiet trace's frames) may cost at most a little more.
    assert!(
        flooded.heap_peak <= quiet.heap_peak + 64 * 1024,
        "lcores' heap peak {} B under attack vs {} B without",
        flooded.heap_peak,
        quiet.heap_peak
    );
    assert_eq!(pool.available(), start_free, "no mbuf held after the runs");
    assert!(n1 >= 150 && n2 >= 150, "only {n1} flows span the floods");
    assert_eq!(same, n1, "nothing changed, so nothing may move");
    assert!(
        n3 >= 150 && syn_kept * 100 >= n3 * 99,
        "SYN + malformed floods, backend added: {syn_kept} of {n3} kept"
    );
    drop((input, output, pass, pool));
    drop(eal);
}
