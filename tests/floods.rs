//! Resource bounds under attack, through the replay engine: long-lived TCP flows while a
//! SYN flood, a random-source UDP flood (each 20 times the flow table's capacity) and a
//! flood of malformed frames go by. Memory stays flat (the replay engine's heap peak with
//! the floods is that without them), counters account for every frame, and
//! established flows keep their backends. The figures go to docs/RELIABILITY.md (run with
//! `--nocapture` to see them).

use flowgate_core::{Tables, Verdict};
use flowgate_host::{Frame, ShardedEngine};
use flowgate_traces::gen::FrameKind;
use flowgate_traces::{generate_trace, SynFlood, Trace, TraceSpec, VipTarget};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const FLOWGATE: &str = env!("CARGO_BIN_EXE_flowgate");

/// A 1,024-entry flow table (256 sets × 4 ways); a TCP service and a UDP one.
const CONFIG: &str = r#"
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

const CAPACITY: u32 = 1024;
const FLOOD_FACTOR: u32 = 20;
/// When the floods start, after the established flows' first packets.
const ATTACK_AT: Duration = Duration::from_millis(1500);

/// A frame of the merged trace; `flow` is set for the established flows' packets.
struct Tagged {
    frame: Frame,
    flow: Option<u32>,
}

fn tables() -> Tables {
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
fn established(t: &Tables) -> Trace {
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
fn floods(t: &Tables) -> Vec<Trace> {
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
fn merge(base: &Trace, extra: &[Trace]) -> Vec<Tagged> {
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
fn replay(config: &Path, input: &Path, output: &Path) -> serde_json::Value {
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
    let summary = replay(&config, &attack_pcap, &dir.path().join("out.pcap"));
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

/// Established flows through `floods`: the backend each had before the attack against the
/// one it has after, once with the tables unchanged and once with a backend added right
/// after the attack (Maglev then moves about a quarter of the slots, so a flow that lost
/// its flow-table entry to the flood would likely change backend). (kept, spanning) each.
fn kept_through(floods: &[Trace]) -> [(usize, usize); 2] {
    let t = tables();
    let base = established(&t);
    let all = merge(&base, floods);
    let end = all
        .iter()
        .rposition(|f| f.flow.is_none())
        .expect("flood frames");
    let frames: Vec<Frame> = all.iter().map(|t| t.frame.clone()).collect();
    let before_at = |i: usize| all[i].frame.ts < all[0].frame.ts + ATTACK_AT;
    [false, true].map(|change| {
        let mut tables = t.clone();
        let mut engine = ShardedEngine::new(tables.clone(), 2);
        let mut out = engine.process_burst(&frames[..=end]);
        if change {
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
            engine.update_tables(tables);
        }
        out.extend(engine.process_burst(&frames[end + 1..]));
        let mut first: HashMap<u32, u16> = HashMap::new();
        let mut last: HashMap<u32, u16> = HashMap::new();
        for (i, o) in out.iter().enumerate() {
            if let (Some(f), Verdict::Forward { backend, .. }) = (all[i].flow, o.verdict) {
                if before_at(i) {
                    first.entry(f).or_insert(backend);
                } else if i > end && first.contains_key(&f) {
                    last.insert(f, backend);
                }
            }
        }
        let kept = last.iter().filter(|(f, b)| first[f] == **b).count();
        (kept, last.len())
    })
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
