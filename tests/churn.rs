//! Churn without broken flows (issue 24 item 3), through the replay engine with 1, 2 and 3
//! workers: long-lived TCP flows fill a 1,024-entry flow table (256 sets × 4 ways as the
//! issue's user had, or 128 sets × 8 ways) to a
//! given load while the control plane adds, removes, drains, undrains and re-weights
//! backends many times. A flow whose backend is still a live member of its VIP after an
//! event (drained ones included: draining keeps established flows) must keep its backend;
//! a flow moved anyway is *broken*. With one candidate set per flow, sets holding more than
//! four live flows evict established flows, which re-select through the changed Maglev
//! table; with two choices they do not, up to the load asserted here.
//!
//! Run with `--nocapture` for the curve of broken flows against load (docs/RELIABILITY.md).

use flowgate_core::Verdict;
use flowgate_driver::{parse_str, BackendKey, ControlPlane};
use flowgate_host::{Frame, ShardedEngine};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const ENTRIES: usize = 1024;
const VIP: [u8; 4] = [192, 0, 2, 10];
/// Control events over the run; every flow sends a packet between two events.
const EVENTS: usize = 40;
/// The backends the VIP starts with.
const FIRST_BACKENDS: u8 = 8;

/// A backend of the evolving config: its last address byte and weight (0 = draining).
#[derive(Debug, Clone, Copy)]
struct Member {
    host: u8,
    weight: u32,
}

fn address(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, host))
}

/// A flow table of `ENTRIES` entries: `ways` ways per set, `choices` candidate sets per flow.
#[derive(Debug, Clone, Copy)]
struct Table {
    ways: usize,
    choices: u32,
}

impl Table {
    const fn new(ways: usize, choices: u32) -> Table {
        Table { ways, choices }
    }
}

/// The table the user tried: 256 sets × 4 ways.
const FOUR_WAYS: usize = 4;

/// The config: the 1,024-entry table, a TCP timeout far beyond the run (nothing expires:
/// every move is an eviction's or an event's).
fn config(table: Table, members: &[Member]) -> String {
    let (ways, choices) = (table.ways, table.choices);
    let sets = ENTRIES / ways;
    let mut s = format!(
        "maglev_m = 4099\n\
         [flow_table]\nsets = {sets}\nways = {ways}\nchoices = {choices}\n\
         [timeouts]\ntcp = 600000\n\
         [[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nprotocol = \"tcp\"\n"
    );
    for m in members {
        write!(
            s,
            "  [[vip.backend]]\n  address = \"{}\"\n  mac = \"02:00:00:00:00:{:02x}\"\n  weight = {}\n",
            address(m.host),
            m.host,
            m.weight
        )
        .unwrap();
    }
    s
}

/// A client: a random address in 10.0.0.0/8 and port (random, not sequential: the Toeplitz
/// hash is linear, so sequential tuples would fill the sets perfectly evenly, which real
/// clients do not).
fn clients(flows: usize, rng: &mut impl Rng) -> Vec<([u8; 4], u16)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(flows);
    while out.len() < flows {
        let c = (
            [10, rng.gen(), rng.gen(), rng.gen()],
            rng.gen_range(1024..=65535),
        );
        if seen.insert(c) {
            out.push(c);
        }
    }
    out
}

/// A TCP frame from `client` to the VIP.
fn frame(client: ([u8; 4], u16), syn: bool, ts: Duration) -> Frame {
    let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xfe])
        .ipv4(client.0, VIP, 64)
        .tcp(client.1, 80, 1, 64_000);
    let builder = if syn { builder.syn() } else { builder.ack(1) };
    let mut data = Vec::new();
    builder.write(&mut data, &[]).unwrap();
    Frame { ts, data }
}

/// What one run saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Churn {
    flows: usize,
    /// Flows moved at least once while their backend was a live member of the VIP.
    broken: usize,
    /// Moves of flows whose backend had gone (removed): allowed, counted for the record.
    moved_off_removed: usize,
    /// Every frame's verdict, to compare engines.
    verdicts: Vec<Verdict>,
}

/// `flows` long-lived flows through `EVENTS` random control events (seeded: every engine
/// and table sees the same sequence), on the replay engine with `workers` workers.
fn churn(table: Table, flows: usize, workers: usize, seed: u64) -> Churn {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut members: Vec<Member> = (1..=FIRST_BACKENDS)
        .map(|host| Member { host, weight: 1 })
        .collect();
    let mut next_host = FIRST_BACKENDS + 1;
    let control = ControlPlane::new(
        parse_str(&config(table, &members), "churn.toml").unwrap(),
        None,
    );
    let mut engine = ShardedEngine::new((*control.tables()).clone(), workers);
    let clients = clients(flows, &mut rng);

    let mut ts = Duration::ZERO;
    let mut verdicts = Vec::new();
    // Each flow's backend, from its last forwarded frame.
    let mut backend: Vec<Option<u16>> = vec![None; flows];
    let mut broken = vec![false; flows];
    let mut moved_off_removed = 0;
    let mut order: Vec<usize> = (0..flows).collect();
    for round in 0..=EVENTS {
        if round > 0 {
            event(&control, &mut members, &mut next_host, table, &mut rng);
            engine.update_tables((*control.tables()).clone());
        }
        // Every flow once (SYN then ACK in the first round), in a new order each round.
        order.shuffle(&mut rng);
        let mut frames = Vec::with_capacity(2 * flows);
        let mut who = Vec::with_capacity(2 * flows);
        for &i in &order {
            ts += Duration::from_micros(50);
            if round == 0 {
                frames.push(frame(clients[i], true, ts));
                who.push(i);
            }
            frames.push(frame(clients[i], false, ts));
            who.push(i);
        }
        let tables = control.tables();
        for (out, &i) in engine.process_burst(&frames).iter().zip(&who) {
            verdicts.push(out.verdict);
            let Verdict::Forward { backend: now, .. } = out.verdict else {
                panic!("flow {i}: {:?}", out.verdict);
            };
            if let Some(before) = backend[i] {
                if before != now {
                    // The contract's "still a backend of this VIP": up and a member.
                    let b = &tables.backends[before as usize];
                    if b.up && b.vip == 0 {
                        broken[i] = true;
                    } else {
                        moved_off_removed += 1;
                    }
                }
            }
            backend[i] = Some(now);
        }
        ts += Duration::from_millis(100);
    }
    if std::env::var("CHURN_DEBUG").is_ok() {
        eprintln!("{:?}", engine.counters().flow);
    }
    Churn {
        flows,
        broken: broken.iter().filter(|&&b| b).count(),
        moved_off_removed,
        verdicts,
    }
}

/// One random event through the control plane: a weight change, a new backend, a removal
/// (a drained backend first, as operators do), a drain or an undrain.
fn event(
    control: &ControlPlane,
    members: &mut Vec<Member>,
    next_host: &mut u8,
    table: Table,
    rng: &mut impl Rng,
) {
    let key = |host| BackendKey {
        vip: "web".into(),
        address: address(host),
    };
    let serving = members.iter().filter(|m| m.weight > 0).count();
    match rng.gen_range(0..5) {
        0 => {
            let m = members.choose_mut(rng).unwrap();
            m.weight = rng.gen_range(1..=4);
            control.set_weight(&key(m.host), m.weight).unwrap();
            return;
        }
        1 if *next_host < 250 => {
            members.push(Member {
                host: *next_host,
                weight: 1,
            });
            *next_host += 1;
        }
        2 if members.len() > 4 => {
            let at = members
                .iter()
                .position(|m| m.weight == 0)
                .unwrap_or_else(|| rng.gen_range(0..members.len()));
            if serving > 3 || members[at].weight == 0 {
                members.remove(at);
            }
        }
        3 if serving > 3 => {
            let m = members.choose_mut(rng).unwrap();
            m.weight = 0;
            control.set_weight(&key(m.host), 0).unwrap();
            return;
        }
        _ => {
            if let Some(m) = members.iter_mut().find(|m| m.weight == 0) {
                m.weight = 1;
                control.set_weight(&key(m.host), 1).unwrap();
                return;
            }
        }
    }
    control
        .reload_str(&config(table, members), "churn.toml")
        .unwrap();
}

fn flows_at(load_percent: usize) -> usize {
    ENTRIES * load_percent / 100
}

/// Runs `table` at `load` % for `seed` on 1, 2 and 3 workers (every worker count gives the
/// same frames) and returns the one-worker run.
fn churn_on_every_worker_count(table: Table, load: usize, seed: u64) -> Churn {
    let one = churn(table, flows_at(load), 1, seed);
    eprintln!(
        "{table:?}, {load} %: {} flows, {} broken, {} moved off removed backends (seed {seed})",
        one.flows, one.broken, one.moved_off_removed
    );
    assert!(
        one.moved_off_removed > 0,
        "the events removed backends with flows"
    );
    for workers in [2, 3] {
        let many = churn(table, flows_at(load), workers, seed);
        assert!(
            many == one,
            "{workers} workers differ from one ({table:?}, seed {seed})"
        );
    }
    one
}

/// Two choices of 4-way sets: no established flow to a surviving backend moves up to 50 %
/// of the entries, and at most 0.5 % at 75 % (two 4-way sets both full of live flows is
/// not rare at 75 %: see docs/RELIABILITY.md), whatever the worker count.
#[test]
fn two_choices_keep_established_flows_at_load() {
    for seed in [1, 2, 3] {
        for (load, most) in [(50, 0), (75, flows_at(75) / 200)] {
            let one = churn_on_every_worker_count(Table::new(FOUR_WAYS, 2), load, seed);
            assert!(
                one.broken <= most,
                "{load} %, seed {seed}: {} broken",
                one.broken
            );
        }
    }
}

/// The goal: no established flow moved at 75 % of the entries. Two choices of
/// 8-way sets (the same 1,024 entries as 128 sets × 8 ways) reach it: that a new flow
/// finds all 16 of its candidate ways live at 75 % is rare (docs/RELIABILITY.md).
#[test]
fn two_choices_of_eight_ways_keep_every_established_flow_at_75_percent() {
    for seed in [1, 2, 3] {
        let one = churn_on_every_worker_count(Table::new(8, 2), 75, seed);
        assert_eq!(one.broken, 0, "75 %, seed {seed}");
    }
}

/// One choice breaks flows at the same load (the harness sees what it is there to see),
/// and the curve of every table against load, for docs/RELIABILITY.md.
#[test]
fn one_choice_breaks_flows_at_load_and_the_curve() {
    let seeds = [1u64, 2, 3];
    let tables = [
        Table::new(FOUR_WAYS, 1),
        Table::new(FOUR_WAYS, 2),
        Table::new(8, 1),
        Table::new(8, 2),
    ];
    let mut rows = Vec::new();
    for load in [25, 50, 75, 90, 100] {
        let flows = flows_at(load);
        let mut broken = [0usize; 4];
        for seed in seeds {
            for (t, table) in tables.into_iter().enumerate() {
                broken[t] += churn(table, flows, 2, seed).broken;
            }
        }
        let mut line = format!(
            "load {load:>3} % ({flows} flows × {} seeds, {EVENTS} events): broken",
            seeds.len()
        );
        for (t, table) in tables.iter().enumerate() {
            write!(
                line,
                "; {} ways {} choice(s) {} ({:.2} %)",
                table.ways,
                table.choices,
                broken[t],
                100.0 * broken[t] as f64 / (flows * seeds.len()) as f64
            )
            .unwrap();
        }
        eprintln!("{line}");
        rows.push((load, broken));
    }
    let at = |load| rows.iter().find(|r| r.0 == load).unwrap().1;
    assert!(at(75)[0] > 0, "one choice breaks flows at 75 %");
    assert!(
        at(75)[1] * 20 < at(75)[0],
        "two choices break far fewer at 75 %"
    );
    assert!(at(50)[1] == 0 && at(25)[1] == 0);
    assert!(at(75)[3] == 0 && at(50)[3] == 0 && at(25)[3] == 0);
}
