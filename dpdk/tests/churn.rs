//! Churn without broken flows (issue 24 item 3) through the DPDK data path: the churn of
//! `tests/churn.rs` (long-lived TCP flows, 40 seeded control events through the control
//! plane between rounds of one packet per flow) run through `datapath::run` with two
//! worker lcores, in lockstep with the replay engine (`ShardedEngine`, two workers) on the
//! same tables: the same frames per flow, byte for byte, the same counters, and no flow
//! broken at 75 % of a 128 × 8 two-choice table.
//!
//! The ports are net_ring vdevs: the test transmits a round into the input port's rings
//! (queue = the worker owning the flow's set, as the RETA flowgate programs would steer
//! it, so each worker balances its frames in the replay engine's order), stamps every
//! frame with its trace time (the data path runs on RX timestamps, so the flow table ages
//! and evicts exactly as replay's), and receives the forwarded frames from the output
//! port's rings. A round is complete when all its frames came out; the next event is
//! applied then, and the next round goes in once the counters board says every lcore took
//! the new tables. Every wait has a deadline.
//!
//! In-process: one EAL per process, so one test in this file.

mod common;
use common::eal_args_on;

#[path = "../../tests/common/churn.rs"]
mod scenario;

use flowgate_core::counters::Counters;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::{prepare, Prepared};
use flowgate_core::Tables;
use flowgate_dpdk::datapath::{self, Clock, LoopConfig, Ports, RunReport};
use flowgate_dpdk::port::RxTimestampField;
use flowgate_dpdk::{Eal, Mbuf, Mempool, Port, PortConfig};
use flowgate_host::{CountersBoard, SetSplit, ShardedEngine};
use scenario::{flows_at, Round, Scenario, Table, Tally, EVENTS};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Main lcore on CPU 0, worker lcores 1 (CPU 0) and 2 (CPU 1).
const LCORES: &str = "0@0,1@0,2@1";
const WORKERS: u16 = 2;
/// The longest any single wait may take (a round out, the lcores taking new tables).
const WAIT: Duration = Duration::from_secs(30);

/// The EAL's ports and what the test feeds them with (what the feeding thread needs: the
/// EAL itself stays on the main lcore).
struct Rig<'a> {
    pool: &'a Mempool,
    /// net_ring0: the data path receives from it; the test transmits into its rings.
    input: &'a Port,
    /// net_ring1: the data path transmits into it; the test receives from its rings.
    output: &'a Port,
    stamp: RxTimestampField,
}

/// One run's results on both engines.
struct Run {
    tally: Tally,
    dpdk: RunReport,
    replay: Counters,
    rounds: usize,
}

/// Sets `stop` when dropped, so a failing feeder never leaves the data path running.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits (bounded by [`WAIT`]) until `done` holds; panics with `what` otherwise. Polls an
/// atomic state (a ring's count, the board), yielding in between.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "within {WAIT:?}: {what}");
        std::thread::yield_now();
    }
}

/// The client (source address and port) of a forwarded frame: DSR keeps the client's
/// datagram.
fn client_of(frame: &[u8]) -> ([u8; 4], u16) {
    let p = etherparse::SlicedPacket::from_ethernet(frame).expect("a forwarded frame parses");
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("an IPv4 frame: {frame:02x?}")
    };
    let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("a TCP frame: {frame:02x?}")
    };
    (ip.header().source(), tcp.source_port())
}

/// A round's frames grouped by flow, each group in order.
type PerFlow = BTreeMap<usize, Vec<Vec<u8>>>;

/// One round through the DPDK data path: every frame stamped with its time, on the RX
/// queue of the worker owning its set; returns the forwarded frames per flow once all
/// came out.
fn dpdk_round(
    rig: &Rig<'_>,
    round: &Round,
    tables: &Tables,
    flow_of: &HashMap<([u8; 4], u16), usize>,
) -> PerFlow {
    let hasher = FlowHasher::new(&tables.keys);
    let split = SetSplit::new(u32::from(WORKERS), &tables.geometry);
    let mut pending: Vec<Vec<Mbuf>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for f in &round.frames {
        let Prepared::Balance(b) = prepare(&f.data, tables, &hasher) else {
            panic!("every churn frame is balanced")
        };
        let mut m = rig.pool.frame(&f.data).expect("a free mbuf");
        m.set_rx_timestamp(rig.stamp, f.ts.as_nanos() as u64);
        pending[split.owner(b.sets[0]) as usize].push(m);
    }
    let mut out: Vec<Mbuf> = Vec::new();
    let mut got = PerFlow::new();
    let mut received = 0;
    wait_for("every frame of the round forwarded", || {
        // The rings hold 1,023 frames each: feed and drain together.
        for (q, frames) in pending.iter_mut().enumerate() {
            rig.input.tx_burst(q as u16, frames);
            rig.output.rx_burst(q as u16, &mut out, 64);
        }
        for m in out.drain(..) {
            received += 1;
            let frame = m.data().to_vec();
            let flow = flow_of[&client_of(&frame)];
            got.entry(flow).or_default().push(frame);
        }
        received >= round.frames.len()
    });
    assert_eq!(received, round.frames.len(), "no frame forwarded twice");
    got
}

/// `flows` flows of `table` through the churn of `seed` on both engines in lockstep.
fn churn(eal: &Eal, rig: &Rig<'_>, table: Table, flows: usize, seed: u64) -> Run {
    let mut scenario = Scenario::new(table, flows, seed);
    let watch = scenario.control().watch();
    let flow_of: HashMap<([u8; 4], u16), usize> = scenario
        .clients()
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, i))
        .collect();
    let mut replay =
        ShardedEngine::new((*scenario.control().tables()).clone(), usize::from(WORKERS));
    let board = CountersBoard::default();
    let stop = AtomicBool::new(false);
    let config = LoopConfig {
        clock: Clock::RxTimestamp(rig.stamp),
        // Frequent, so that waiting for the lcores to take new tables is short.
        publish_every: Duration::from_millis(1),
        ..LoopConfig::default()
    };
    let ports = Ports {
        rx: rig.input,
        tx: rig.output,
        pass: None,
    };
    let (dpdk, (tally, rounds)) = std::thread::scope(|s| {
        let feeder = s.spawn(|| {
            let _stop = StopOnDrop(&stop);
            let mut tally = Tally::new(flows);
            let mut rounds = 0;
            while let Some(round) = scenario.next_round() {
                rounds += 1;
                let tables = scenario.control().tables();
                let version = watch.version();
                // Replay first: the expected frames and verdicts.
                replay.update_tables((*tables).clone());
                let outcomes = replay.process_burst(&round.frames);
                let verdicts: Vec<_> = outcomes.iter().map(|o| o.verdict).collect();
                tally.record(&round, &verdicts, &tables);
                let mut want = PerFlow::new();
                for (o, &i) in outcomes.into_iter().zip(&round.flows) {
                    want.entry(i).or_default().push(o.frame);
                }
                wait_for("every lcore took the round's tables", || {
                    board.load().tables_version >= version
                });
                let got = dpdk_round(rig, &round, &tables, &flow_of);
                if got != want {
                    let flow = want.keys().find(|i| got.get(i) != want.get(i));
                    panic!(
                        "{table:?}, seed {seed}, round {rounds}: flow {flow:?} differs from replay: {:02x?} vs {:02x?}",
                        flow.and_then(|i| got.get(i)),
                        flow.and_then(|i| want.get(i))
                    );
                }
            }
            (tally, rounds)
        });
        let report = datapath::run(eal, &ports, &watch, &config, Some(&board), &stop);
        stop.store(true, Ordering::Relaxed);
        let fed = feeder
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (report.expect("the data path runs"), fed)
    });
    Run {
        tally,
        dpdk,
        replay: replay.counters(),
        rounds,
    }
}

#[test]
fn churn_through_two_worker_lcores_breaks_no_flow_and_equals_replay() {
    let args = eal_args_on(
        LCORES,
        "fg-churn",
        &["net_ring0", "net_ring1"].map(String::from),
    );
    let (eal, _) = Eal::init(&args).expect("EAL");
    let pool = Arc::new(Mempool::new(&eal, "churn", 8191, 256).expect("mempool"));
    let queues = PortConfig {
        rx_queues: WORKERS,
        tx_queues: WORKERS,
        ..PortConfig::default()
    };
    let input = Port::configure(&eal, 0, &queues, &pool).expect("net_ring0");
    let output = Port::configure(&eal, 1, &queues, &pool).expect("net_ring1");
    assert_eq!(
        (input.rx_queue_count(), output.tx_queue_count()),
        (WORKERS, WORKERS),
        "a queue per worker"
    );
    let stamp = RxTimestampField::register(&eal).expect("the RX timestamp field");
    let rig = Rig {
        pool: &pool,
        input: &input,
        output: &output,
        stamp,
    };

    // The goal (128 × 8, two choices, 75 %) and the user's table (256 × 4, two
    // choices: at most 0.5 % broken at 75 %, as on the replay engine), seeds of
    // tests/churn.rs.
    for (table, most) in [
        (Table::new(8, 2), 0),
        (Table::new(4, 2), flows_at(75) / 200),
    ] {
        for seed in [1, 2, 3] {
            let run = churn(&eal, &rig, table, flows_at(75), seed);
            let (t, d) = (&run.tally, &run.dpdk);
            eprintln!(
                "DPDK, {WORKERS} worker lcores, {table:?}, 75 % ({} flows), seed {seed}: {} rounds, {} broken, {} moved off removed backends, {} frames kept on draining backends, {} held against Maglev; evictions {}",
                flows_at(75),
                run.rounds,
                t.broken(),
                t.moved_off_removed,
                t.kept_on_drained,
                t.held_against_maglev,
                d.counters.flow.evictions
            );
            assert_eq!(run.rounds, EVENTS + 1);
            assert!(
                t.broken() <= most,
                "{table:?}, seed {seed}: {} broken",
                t.broken()
            );
            // It churned: events moved Maglev slots under live flows, and removed backends
            // that had flows, so a flow table that let flows go would show here.
            assert!(t.held_against_maglev > 0 && t.moved_off_removed > 0);
            assert!(
                t.kept_on_drained > 0,
                "drained backends kept their flows (seed {seed})"
            );
            assert_eq!(d.counters, run.replay, "counters equal replay's");
            let frames = d.counters.frames_in;
            assert_eq!(frames, ((EVENTS + 2) * flows_at(75)) as u64);
            assert_eq!(d.counters.forwarded, frames);
            assert_eq!(
                (d.io.received, d.io.sent, d.io.steered, d.io.handed_off),
                (frames, frames, frames, 0),
                "every frame on its owner's queue, balanced there and sent"
            );
            assert_eq!((d.io.tx_unsent, d.io.rewrite_no_room), (0, 0));
            assert_eq!(d.workers.len(), usize::from(WORKERS));
            assert!(d.workers.iter().all(|w| w.frames > 0), "{:?}", d.workers);
        }
    }
    drop((input, output, pool));
    drop(eal);
}
