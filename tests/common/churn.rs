//! The churn of issue 24 item 3 as a scenario that any engine can be driven through, round
//! by round: long-lived TCP flows from random clients to one VIP, through a 1,024-entry
//! flow table, while seeded control events (re-weight, add, remove, drain, undrain) go
//! through the control plane between rounds of one packet per flow. [`Tally`] counts the
//! *broken* flows: moved while their backend was still a live member of the VIP.
//!
//! The same generator as `tests/churn.rs` (replay engine): the same seed gives the same
//! clients, events and frames, so its figures and the DPDK test's (`dpdk/tests/churn.rs`,
//! which includes this file) describe the same runs.

#![allow(dead_code)] // each test binary uses its own part of this

use flowgate_core::{Tables, Verdict};
use flowgate_driver::{parse_str, BackendKey, ControlPlane};
use flowgate_host::{Frame, ShardedEngine};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub const ENTRIES: usize = 1024;
pub const VIP: [u8; 4] = [192, 0, 2, 10];
/// Control events over a run; every flow sends a packet between two events.
pub const EVENTS: usize = 40;
/// The backends the VIP starts with.
const FIRST_BACKENDS: u8 = 8;

/// A flow table of `entries` entries: `ways` ways per set, `choices` candidate sets per
/// flow; and the Maglev table size of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub entries: usize,
    pub ways: usize,
    pub choices: u32,
    pub maglev_m: u32,
}

impl Table {
    /// [`ENTRIES`] entries in sets of `ways`.
    pub const fn new(ways: usize, choices: u32) -> Table {
        Table {
            entries: ENTRIES,
            ways,
            choices,
            maglev_m: 4099,
        }
    }

    /// Flows that fill `load_percent` % of the entries.
    pub fn flows_at(self, load_percent: usize) -> usize {
        self.entries * load_percent / 100
    }
}

/// The hardware top's table (`examples/hw-small.toml`: 4096 sets × 4 ways in two RAM
/// banks, two choices, Maglev M = 251), the geometry the Verilator build of `top` has.
pub const HARDWARE: Table = Table {
    entries: 4096 * 4,
    ways: 4,
    choices: 2,
    maglev_m: 251,
};

/// Flows that fill `load_percent` % of [`ENTRIES`].
pub fn flows_at(load_percent: usize) -> usize {
    ENTRIES * load_percent / 100
}

/// A backend of the evolving config: its last address byte and weight (0 = draining).
#[derive(Debug, Clone, Copy)]
struct Member {
    host: u8,
    weight: u32,
}

fn address(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, host))
}

/// The config: the table, a TCP timeout far beyond the run (nothing expires: every move is
/// an eviction's or an event's).
fn config(table: Table, members: &[Member]) -> String {
    let (ways, choices, m) = (table.ways, table.choices, table.maglev_m);
    let sets = table.entries / ways;
    let mut s = format!(
        "maglev_m = {m}\n\
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
        .expect("writing to a String");
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
    builder
        .write(&mut data, &[])
        .expect("a TCP frame without payload");
    Frame { ts, data }
}

/// One round: every flow's frame (SYN then ACK in the first round), in a new order.
pub struct Round {
    pub frames: Vec<Frame>,
    /// The flow of each frame.
    pub flows: Vec<usize>,
}

/// A run in the making: the control plane with the evolving config, the clients, and the
/// seeded source of events and orders.
pub struct Scenario {
    rng: ChaCha8Rng,
    control: ControlPlane,
    table: Table,
    members: Vec<Member>,
    next_host: u8,
    clients: Vec<([u8; 4], u16)>,
    order: Vec<usize>,
    ts: Duration,
    round: usize,
    events: usize,
}

impl Scenario {
    /// A run of [`EVENTS`] events.
    pub fn new(table: Table, flows: usize, seed: u64) -> Scenario {
        Scenario::with_events(table, flows, EVENTS, seed)
    }

    /// A run of `events` events (the first `events` of the longer runs' sequence).
    pub fn with_events(table: Table, flows: usize, events: usize, seed: u64) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let members: Vec<Member> = (1..=FIRST_BACKENDS)
            .map(|host| Member { host, weight: 1 })
            .collect();
        let control = ControlPlane::new(
            parse_str(&config(table, &members), "churn.toml").expect("the churn config parses"),
            None,
        );
        let clients = clients(flows, &mut rng);
        Scenario {
            rng,
            control,
            table,
            members,
            next_host: FIRST_BACKENDS + 1,
            clients,
            order: (0..flows).collect(),
            ts: Duration::ZERO,
            round: 0,
            events,
        }
    }

    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    pub fn flows(&self) -> usize {
        self.clients.len()
    }

    /// Each flow's client: source address and port.
    pub fn clients(&self) -> &[([u8; 4], u16)] {
        &self.clients
    }

    /// The next of the run's `events + 1` rounds, `None` after the last. Before every
    /// round but the first, one control event goes through the control plane, so the
    /// round runs under the tables it published.
    pub fn next_round(&mut self) -> Option<Round> {
        if self.round > self.events {
            return None;
        }
        if self.round > 0 {
            self.ts += Duration::from_millis(100);
            self.event();
        }
        let first = self.round == 0;
        self.round += 1;
        self.order.shuffle(&mut self.rng);
        let per_flow = if first { 2 } else { 1 };
        let mut frames = Vec::with_capacity(per_flow * self.order.len());
        let mut flows = Vec::with_capacity(per_flow * self.order.len());
        for &i in &self.order {
            self.ts += Duration::from_micros(50);
            if first {
                frames.push(frame(self.clients[i], true, self.ts));
                flows.push(i);
            }
            frames.push(frame(self.clients[i], false, self.ts));
            flows.push(i);
        }
        Some(Round { frames, flows })
    }

    /// One random event through the control plane: a weight change, a new backend, a
    /// removal (a drained backend first, as operators do), a drain or an undrain.
    fn event(&mut self) {
        let key = |host| BackendKey {
            vip: "web".into(),
            address: address(host),
        };
        let (members, rng) = (&mut self.members, &mut self.rng);
        let serving = members.iter().filter(|m| m.weight > 0).count();
        match rng.gen_range(0..5) {
            0 => {
                let m = members.choose_mut(rng).expect("the VIP has members");
                m.weight = rng.gen_range(1..=4);
                self.control.set_weight(&key(m.host), m.weight).unwrap();
                return;
            }
            1 if self.next_host < 250 => {
                members.push(Member {
                    host: self.next_host,
                    weight: 1,
                });
                self.next_host += 1;
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
                let m = members.choose_mut(rng).expect("the VIP has members");
                m.weight = 0;
                self.control.set_weight(&key(m.host), 0).unwrap();
                return;
            }
            _ => {
                if let Some(m) = members.iter_mut().find(|m| m.weight == 0) {
                    m.weight = 1;
                    self.control.set_weight(&key(m.host), 1).unwrap();
                    return;
                }
            }
        }
        self.control
            .reload_str(&config(self.table, members), "churn.toml")
            .unwrap();
    }
}

/// What happened to the flows of a run, frame by frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Each flow's backend, from its last forwarded frame.
    backend: Vec<Option<u16>>,
    broken: Vec<bool>,
    /// Moves of flows whose backend had gone (removed): allowed, counted for the record.
    pub moved_off_removed: usize,
    /// Frames of established flows that stayed on a draining backend.
    pub kept_on_drained: usize,
    /// Frames of established flows that a new flow with their tuple would not follow:
    /// the events moved their Maglev slots, and only the flow table kept them in place.
    pub held_against_maglev: usize,
}

impl Tally {
    pub fn new(flows: usize) -> Tally {
        Tally {
            backend: vec![None; flows],
            broken: vec![false; flows],
            moved_off_removed: 0,
            kept_on_drained: 0,
            held_against_maglev: 0,
        }
    }

    /// Flows moved at least once while their backend was a live member of the VIP.
    pub fn broken(&self) -> usize {
        self.broken.iter().filter(|&&b| b).count()
    }

    /// Record a round's verdicts (in `round`'s frame order) under `tables`, the tables
    /// the round ran under.
    pub fn record(&mut self, round: &Round, verdicts: &[Verdict], tables: &Tables) {
        assert_eq!(verdicts.len(), round.frames.len());
        // What a flow table that knew none of these flows would do: Maglev's pick.
        let fresh = ShardedEngine::new(tables.clone(), 1).process_burst(&round.frames);
        for ((&i, verdict), fresh) in round.flows.iter().zip(verdicts).zip(&fresh) {
            let backend_of = |v: &Verdict| match *v {
                Verdict::Forward { backend, .. } => backend,
                other => panic!("flow {i}: {other:?}"),
            };
            let now = backend_of(verdict);
            if let Some(before) = self.backend[i] {
                // The contract's "still a backend of this VIP": up and a member.
                let b = &tables.backends[before as usize];
                if before != now {
                    if b.up && b.vip == 0 {
                        self.broken[i] = true;
                    } else {
                        self.moved_off_removed += 1;
                    }
                } else {
                    self.kept_on_drained += usize::from(b.weight == 0);
                    self.held_against_maglev += usize::from(backend_of(&fresh.verdict) != now);
                }
            }
            self.backend[i] = Some(now);
        }
    }
}
