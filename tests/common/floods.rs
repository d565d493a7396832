//! The floods of issue 24 item 6 as a trace any engine can be driven through: long-lived
//! TCP flows through a 1,024-entry flow table while a SYN flood, a random-source UDP flood
//! (each 20 times the table's capacity) and a flood of malformed frames go by; and what
//! the established flows' backends were before and after.
//!
//! Shared by `tests/floods.rs` (replay engine) and `dpdk/tests/floods.rs` (the DPDK data
//! path, which includes this file): the same trace and config, so their figures describe
//! the same runs.

#![allow(dead_code)] // each test binary uses its own part of this

use flowgate_core::{Tables, Verdict};
use flowgate_host::{Frame, Outcome, ShardedEngine};
use flowgate_traces::gen::FrameKind;
use flowgate_traces::{generate_trace, SynFlood, Trace, TraceSpec, VipTarget};
use std::collections::HashMap;
use std::time::Duration;

/// A 1,024-entry flow table (256 sets × 4 ways); a TCP service and a UDP one.
pub const CONFIG: &str = r#"
maglev_m = 4099
[flow_table]
sets = 256
ways = 4
[timeouts]
tcp = 20000
tcp_embryonic = 2000
udp = 5000

[[vip]]
name = "web"
address = "192.0.2.10"
port = 80
protocol = "tcp"
  [[vip.backend]]
  address = "198.51.100.1"
  mac = "02:00:00:00:00:01"
  [[vip.backend]]
  address = "198.51.100.2"
  mac = "02:00:00:00:00:02"
  [[vip.backend]]
  address = "198.51.100.3"
  mac = "02:00:00:00:00:03"

[[vip]]
name = "dns"
address = "192.0.2.53"
port = 53
protocol = "udp"
  [[vip.backend]]
  address = "198.51.100.11"
  mac = "02:00:00:00:00:11"
  [[vip.backend]]
  address = "198.51.100.12"
  mac = "02:00:00:00:00:12"
"#;

pub const CAPACITY: u32 = 1024;
pub const FLOOD_FACTOR: u32 = 20;
/// When the floods start, after the established flows' first packets.
pub const ATTACK_AT: Duration = Duration::from_millis(1500);

/// A frame of the merged trace; `flow` is set for the established flows' packets.
pub struct Tagged {
    pub frame: Frame,
    pub flow: Option<u32>,
}

pub fn tables() -> Tables {
    flowgate_driver::compile(&flowgate_driver::parse_str(CONFIG, "floods.toml").unwrap())
}

fn quiet(mut spec: TraceSpec, seed: u64) -> TraceSpec {
    spec.seed = seed;
    spec.malformed = 0;
    spec.passthrough = 0;
    spec.syn_flood = None;
    spec.vlan_fraction = 0.0;
    spec.fragment_fraction = 0.0;
    spec
}

/// 250 long-lived TCP flows over about ten seconds (a packet every 50 ms or so).
pub fn established(t: &Tables) -> Trace {
    let mut spec = quiet(
        TraceSpec::mixed(vec![VipTarget::tcp(t.vips[0].address, 80)], 50_000),
        21,
    );
    spec.flows = 250;
    spec.clients = 250;
    spec.zipf_exponent = 0.0;
    spec.max_packets_per_flow = 200;
    spec.duration_us = 1_000_000;
    spec.mean_gap_us = 50_000;
    generate_trace(&spec).unwrap()
}

/// The floods: spoofed SYNs to the TCP VIP, one datagram from each of 20 × capacity
/// sources to the UDP VIP, and malformed frames of every kind the generator makes.
pub fn floods(t: &Tables) -> Vec<Trace> {
    let packets = FLOOD_FACTOR * CAPACITY;
    let mut syn = quiet(
        TraceSpec::mixed(vec![VipTarget::tcp(t.vips[0].address, 80)], 1_000),
        22,
    );
    syn.flows = 1;
    syn.max_packets_per_flow = 1;
    syn.duration_us = 1;
    syn.syn_flood = Some(SynFlood {
        vip: 0,
        packets,
        start_us: 0,
        rate_pps: 50_000,
    });
    let mut udp = quiet(
        TraceSpec::mixed(vec![VipTarget::udp(t.vips[1].address, 53)], 1_000),
        23,
    );
    udp.flows = packets;
    udp.clients = packets;
    udp.max_packets_per_flow = 1;
    udp.zipf_exponent = 0.0;
    udp.duration_us = 400_000;
    let mut bad = quiet(
        TraceSpec::mixed(vec![VipTarget::tcp(t.vips[0].address, 80)], 1_000),
        24,
    );
    bad.flows = 1;
    bad.max_packets_per_flow = 1;
    bad.malformed = 10_000;
    bad.duration_us = 400_000;
    [syn, udp, bad]
        .iter()
        .map(|s| generate_trace(s).unwrap())
        .collect()
}

/// `base` with `extra`'s frames moved to start at `ATTACK_AT` after `base`'s first frame,
/// merged in time order; only `base`'s flow packets are tagged.
pub fn merge(base: &Trace, extra: &[Trace]) -> Vec<Tagged> {
    let t0 = base.frames[0].ts;
    let mut all: Vec<Tagged> = base
        .frames
        .iter()
        .zip(&base.kinds)
        .map(|(f, k)| Tagged {
            frame: Frame {
                ts: f.ts,
                data: f.data.clone(),
            },
            flow: match k {
                FrameKind::Flow(n) => Some(*n),
                _ => None,
            },
        })
        .collect();
    for trace in extra {
        let e0 = trace.frames[0].ts;
        all.extend(trace.frames.iter().map(|f| Tagged {
            frame: Frame {
                ts: f.ts - e0 + t0 + ATTACK_AT,
                data: f.data.clone(),
            },
            flow: None,
        }));
    }
    all.sort_by_key(|t| t.frame.ts);
    all
}

/// The index of the last flood frame of `all` (the change of [`with_backend_added`] goes
/// right after it).
pub fn last_flood(all: &[Tagged]) -> usize {
    all.iter()
        .rposition(|f| f.flow.is_none())
        .expect("flood frames")
}

/// `t` with a fourth backend added to the TCP VIP: Maglev then moves about a quarter of
/// its slots, so a flow that lost its flow-table entry to a flood would likely change
/// backend.
pub fn with_backend_added(t: &Tables) -> Tables {
    let mut tables = t.clone();
    tables.backends.push(flowgate_core::tables::Backend {
        address: "198.51.100.4".parse().unwrap(),
        mac: [2, 0, 0, 0, 0, 4],
        weight: 1,
        up: true,
        vip: 0,
    });
    let new_index = (tables.backends.len() - 1) as u16;
    tables.vips[0].backends.push(new_index);
    tables.rebuild_maglev(0, 4099);
    tables
}

/// `all` through the replay engine (two workers): the frames up to the last flood frame,
/// then, if `change`, the tables of [`with_backend_added`], then the rest.
pub fn replay(all: &[Tagged], change: bool) -> (Vec<Outcome>, flowgate_core::counters::Counters) {
    let frames: Vec<Frame> = all.iter().map(|t| t.frame.clone()).collect();
    let t = tables();
    let mut engine = ShardedEngine::new(t.clone(), 2);
    let mut out = Vec::with_capacity(frames.len());
    if change {
        let end = last_flood(all);
        out.extend(engine.process_burst(&frames[..=end]));
        engine.update_tables(with_backend_added(&t));
        out.extend(engine.process_burst(&frames[end + 1..]));
    } else {
        out.extend(engine.process_burst(&frames));
    }
    (out, engine.counters())
}

/// The backend each frame of `out` was forwarded to.
pub fn backends(out: &[Outcome]) -> Vec<Option<u16>> {
    out.iter()
        .map(|o| match o.verdict {
            Verdict::Forward { backend, .. } => Some(backend),
            _ => None,
        })
        .collect()
}

/// Established flows through the floods: the backend each had before the attack against
/// the one it has after the last flood frame (`backend[i]`: where frame `i` of `all` was
/// forwarded). (kept, spanning).
pub fn kept(all: &[Tagged], backend: &[Option<u16>]) -> (usize, usize) {
    let end = last_flood(all);
    let before_at = |i: usize| all[i].frame.ts < all[0].frame.ts + ATTACK_AT;
    let mut first: HashMap<u32, u16> = HashMap::new();
    let mut last: HashMap<u32, u16> = HashMap::new();
    for (i, b) in backend.iter().enumerate() {
        if let (Some(f), Some(b)) = (all[i].flow, *b) {
            if before_at(i) {
                first.entry(f).or_insert(b);
            } else if i > end && first.contains_key(&f) {
                last.insert(f, b);
            }
        }
    }
    let kept = last.iter().filter(|(f, b)| first[f] == **b).count();
    (kept, last.len())
}
