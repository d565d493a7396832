//! End-to-end: `flowgate replay` and the software engine on generated traces.

use flowgate_core::parse::{parse, Parsed};
use flowgate_core::{DropReason, Tables, Verdict};
use flowgate_host::{Frame, ShardedEngine};
use flowgate_traces::gen::{FrameKind, MalformedCase};
use flowgate_traces::{generate_trace, SynFlood, Trace, TraceSpec, VipTarget};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const FLOWGATE: &str = env!("CARGO_BIN_EXE_flowgate");

/// Two IPv4 and two IPv6 VIPs, DSR and IP-in-IP, 5-tuple and src-ip, with a flow table small
/// enough (1024 entries) that a 20k-frame trace evicts and expires.
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
mode = "dsr"
  [[vip.backend]]
  address = "198.51.100.1"
  mac = "02:00:00:00:00:01"
  [[vip.backend]]
  address = "198.51.100.2"
  mac = "02:00:00:00:00:02"
  [[vip.backend]]
  address = "198.51.100.3"
  mac = "02:00:00:00:00:03"
  weight = 2

[[vip]]
name = "dns4"
address = "192.0.2.53"
port = 53
protocol = "udp"
mode = "ipip"
persistence = "src-ip"
  [[vip.backend]]
  address = "198.51.100.11"
  mac = "02:00:00:00:00:11"
  [[vip.backend]]
  address = "2001:db8:1::11"
  mac = "02:00:00:00:00:12"

[[vip]]
name = "web6"
address = "2001:db8::80"
port = 0
protocol = "tcp"
mode = "ipip"
  [[vip.backend]]
  address = "2001:db8:1::21"
  mac = "02:00:00:00:00:21"
  [[vip.backend]]
  address = "198.51.100.22"
  mac = "02:00:00:00:00:22"

[[vip]]
name = "dns6"
address = "2001:db8::53"
port = 53
protocol = "udp"
mode = "dsr"
  [[vip.backend]]
  address = "2001:db8:1::31"
  mac = "02:00:00:00:00:31"
  [[vip.backend]]
  address = "2001:db8:1::32"
  mac = "02:00:00:00:00:32"
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flowgate.toml"), CONFIG).unwrap();
        Fixture { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn tables(&self) -> Tables {
        flowgate_driver::compile(&flowgate_driver::load(&self.path("flowgate.toml")).unwrap())
    }
}

fn vip_targets(t: &Tables) -> Vec<VipTarget> {
    VipTarget::for_tables(t)
}

fn host_frames(trace: &Trace) -> Vec<Frame> {
    trace
        .frames
        .iter()
        .map(|f| Frame {
            ts: f.ts,
            data: f.data.clone(),
        })
        .collect()
}

fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(FLOWGATE)
        .args(args)
        .output()
        .expect("run flowgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn replay_json(fx: &Fixture, input: &Path, output: &Path, passed: &Path, workers: usize) -> Value {
    let w = workers.to_string();
    let (ok, stdout, stderr) = run_cli(&[
        "replay",
        "--config",
        fx.path("flowgate.toml").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--passed",
        passed.to_str().unwrap(),
        "--workers",
        &w,
        "--json",
    ]);
    assert!(ok, "replay failed: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"))
}

fn sum_dropped(j: &Value) -> u64 {
    j["dropped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

fn mixed_trace(fx: &Fixture, frames: u32, seed: u64) -> Trace {
    let mut spec = TraceSpec::mixed(vip_targets(&fx.tables()), frames);
    spec.seed = seed;
    spec.vlan_fraction = 0.2;
    spec.fragment_fraction = 0.2;
    generate_trace(&spec).unwrap()
}

#[test]
fn replay_output_is_identical_for_1_and_4_workers_and_counts_every_frame() {
    let fx = Fixture::new();
    let trace = mixed_trace(&fx, 20_000, 7);
    let input = fx.path("in.pcap");
    flowgate_traces::write_pcap_file(&input, &trace.frames).unwrap();

    let one = replay_json(
        &fx,
        &input,
        &fx.path("out1.pcap"),
        &fx.path("pass1.pcap"),
        1,
    );
    let four = replay_json(
        &fx,
        &input,
        &fx.path("out4.pcap"),
        &fx.path("pass4.pcap"),
        4,
    );
    let read = |name: &str| std::fs::read(fx.path(name)).unwrap();
    assert!(
        read("out1.pcap") == read("out4.pcap"),
        "forwarded output differs between 1 and 4 workers"
    );
    assert!(
        read("pass1.pcap") == read("pass4.pcap"),
        "passed output differs between 1 and 4 workers"
    );
    let mut one_wo = one.clone();
    let mut four_wo = four.clone();
    one_wo["workers"] = Value::Null;
    four_wo["workers"] = Value::Null;
    assert_eq!(one_wo, four_wo, "summaries differ");

    let n = trace.frames.len() as u64;
    assert!(n >= 20_000 * 7 / 10, "trace has {n} frames");
    assert_eq!(one["frames_in"].as_u64().unwrap(), n);
    let (fwd, pass) = (
        one["forwarded"].as_u64().unwrap(),
        one["passed"].as_u64().unwrap(),
    );
    assert_eq!(
        fwd + pass + sum_dropped(&one),
        n,
        "frames_in == forwarded + passed + dropped"
    );
    assert!(
        one["flows"]["evictions"].as_u64().unwrap() > 0,
        "the small table must evict: {}",
        one["flows"]
    );
    // Output files hold exactly what the counters say.
    assert_eq!(
        flowgate_traces::read_pcap_file(fx.path("out1.pcap"))
            .unwrap()
            .len() as u64,
        fwd
    );
    assert_eq!(
        flowgate_traces::read_pcap_file(fx.path("pass1.pcap"))
            .unwrap()
            .len() as u64,
        pass
    );
    let backend_packets: u64 = one["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(backend_packets, fwd);
}

#[test]
fn every_packet_of_a_flow_goes_to_one_backend_and_checksums_verify() {
    let fx = Fixture::new();
    let trace = mixed_trace(&fx, 20_000, 11);
    let mut engine = ShardedEngine::new(fx.tables(), 3);
    let frames = host_frames(&trace);
    // The contract hashes IP fragments on L3 only (every fragment of a datagram must meet
    // one backend, and only the first carries ports), so under 5-tuple persistence a flow's
    // fragments form their own (src, dst, protocol) flow: the unit here is (flow, fragment?).
    let mut backends_of_flow: HashMap<(u32, bool), HashSet<u16>> = HashMap::new();
    let mut forwarded = 0;
    for (chunk_no, chunk) in frames.chunks(512).enumerate() {
        for (k, outcome) in engine.process_burst(chunk).into_iter().enumerate() {
            let i = chunk_no * 512 + k;
            if let FrameKind::Flow(flow) = trace.kinds[i] {
                match outcome.verdict {
                    Verdict::Forward { backend, .. } => {
                        let Ok(Parsed::Ip(p)) = parse(&chunk[k].data) else {
                            panic!("flow frame {i} must parse")
                        };
                        backends_of_flow
                            .entry((flow, p.fragment))
                            .or_default()
                            .insert(backend);
                        forwarded += 1;
                        check_rewritten(&chunk[k].data, &outcome.frame);
                    }
                    other => panic!("flow frame {i} was not forwarded: {other:?}"),
                }
            }
        }
    }
    assert!(forwarded > 10_000);
    let split: Vec<_> = backends_of_flow
        .iter()
        .filter(|(_, b)| b.len() > 1)
        .collect();
    assert!(
        split.is_empty(),
        "{} flows reached more than one backend, e.g. {:?}",
        split.len(),
        split.first()
    );
    // src-ip persistence: every flow of one client to `dns4` meets one backend.
    let mut by_client: HashMap<std::net::IpAddr, HashSet<u16>> = HashMap::new();
    for ((flow, _), b) in &backends_of_flow {
        let f = &trace.flows[*flow as usize];
        if f.vip == 1 {
            by_client.entry(f.client).or_default().extend(b);
        }
    }
    assert!(!by_client.is_empty());
    assert!(
        by_client.values().all(|b| b.len() == 1),
        "src-ip persistence broken"
    );
}

/// The rewritten frame is a valid frame whose IPv4 checksums and L4 checksums verify, and
/// which carries the input's IP datagram unchanged.
fn check_rewritten(input: &[u8], output: &[u8]) {
    let Ok(Parsed::Ip(p_in)) = parse(input) else {
        panic!("input must parse")
    };
    let datagram = &input[p_in.l3_offset as usize..p_in.l3_offset as usize + p_in.ip_len as usize];
    let Ok(Parsed::Ip(p_out)) = parse(output) else {
        panic!("output must parse: {output:02x?}")
    };
    let l3 = p_out.l3_offset as usize;
    verify_ip_checksum(&output[l3..]);
    let inner = if p_out.protocol == 4 || p_out.protocol == 41 {
        // IP-in-IP: the inner datagram follows the outer header.
        &output[p_out.l4_offset as usize..]
    } else {
        &output[l3..l3 + p_out.ip_len as usize]
    };
    assert_eq!(
        inner, datagram,
        "the inner datagram must be carried unchanged"
    );
    verify_ip_checksum(inner);
    // L4 checksum of unfragmented TCP/UDP, recomputed independently by etherparse.
    if !p_in.fragment {
        let sliced = etherparse::SlicedPacket::from_ip(inner).expect("inner parses");
        let net = sliced.net.as_ref().unwrap();
        match (&sliced.transport, net) {
            (Some(etherparse::TransportSlice::Tcp(t)), etherparse::NetSlice::Ipv4(ip)) => {
                assert_eq!(
                    t.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
                        .unwrap(),
                    t.checksum()
                )
            }
            (Some(etherparse::TransportSlice::Tcp(t)), etherparse::NetSlice::Ipv6(ip)) => {
                assert_eq!(
                    t.calc_checksum_ipv6(ip.header().source(), ip.header().destination())
                        .unwrap(),
                    t.checksum()
                )
            }
            _ => {}
        }
    }
}

fn verify_ip_checksum(ip: &[u8]) {
    if ip[0] >> 4 == 4 {
        let h = etherparse::Ipv4HeaderSlice::from_slice(ip).expect("IPv4 header");
        assert_eq!(
            h.to_header().calc_header_checksum(),
            h.header_checksum(),
            "IPv4 header checksum"
        );
    }
}

#[test]
fn malformed_trace_replays_without_panic_and_every_frame_is_counted() {
    let fx = Fixture::new();
    let mut spec = TraceSpec::mixed(vip_targets(&fx.tables()), 5_000);
    spec.malformed = 3_000;
    spec.seed = 3;
    let trace = generate_trace(&spec).unwrap();
    let input = fx.path("bad.pcap");
    flowgate_traces::write_pcap_file(&input, &trace.frames).unwrap();
    let j = replay_json(&fx, &input, &fx.path("o.pcap"), &fx.path("p.pcap"), 2);
    let n = trace.frames.len() as u64;
    assert_eq!(j["frames_in"].as_u64().unwrap(), n);
    assert_eq!(
        j["forwarded"].as_u64().unwrap() + j["passed"].as_u64().unwrap() + sum_dropped(&j),
        n
    );

    // Each named malformed case is dropped with the reason the contract gives it.
    let mut engine = ShardedEngine::new(fx.tables(), 1);
    let outcomes = engine.process_burst(&host_frames(&trace));
    let mut seen: HashSet<MalformedCase> = HashSet::new();
    for (i, o) in outcomes.iter().enumerate() {
        if let FrameKind::Malformed(case) = trace.kinds[i] {
            if let Some(reason) = case.expected_drop() {
                assert_eq!(o.verdict, Verdict::Drop(reason), "frame {i}: {case:?}");
                seen.insert(case);
            }
        }
    }
    let named = MalformedCase::ALL
        .iter()
        .filter(|c| c.expected_drop().is_some())
        .count();
    assert_eq!(
        seen.len(),
        named,
        "every named malformed case appears in the trace"
    );
    let dropped = engine.counters().total_dropped();
    assert!(dropped >= seen.len() as u64);
    assert!(engine.counters().dropped(DropReason::TooManyVlans) > 0);
}

#[test]
fn syn_flood_at_ten_times_capacity_keeps_established_flows_on_their_backends() {
    let fx = Fixture::new();
    let mut tables = fx.tables();
    let capacity = tables.geometry.capacity() as u32; // 1024
                                                      // Long-lived established flows (web VIP only), then a flood of 10× the table's capacity
                                                      // from spoofed sources in the middle of the trace.
    let mut spec = TraceSpec::mixed(vec![VipTarget::tcp(tables.vips[0].address, 80)], 20_000);
    spec.seed = 5;
    spec.flows = 250;
    spec.clients = 250;
    spec.malformed = 0;
    spec.passthrough = 0;
    spec.zipf_exponent = 0.0; // uniform sizes: every flow long enough to span the flood
    spec.max_packets_per_flow = 200;
    spec.duration_us = 1_000_000;
    spec.mean_gap_us = 50_000;
    let flood_start = 1_500_000;
    spec.syn_flood = Some(SynFlood {
        vip: 0,
        packets: 10 * capacity,
        start_us: flood_start,
        rate_pps: 100_000,
    });
    let trace = generate_trace(&spec).unwrap();
    let frames = host_frames(&trace);
    let t0 = frames[0].ts;
    let flood_end = std::time::Duration::from_micros(flood_start + 10 * capacity as u64 * 10) + t0;
    let split = frames
        .iter()
        .position(|f| f.ts > flood_end)
        .expect("packets after the flood");

    let mut engine = ShardedEngine::new(tables.clone(), 2);
    let before = engine.process_burst(&frames[..split]);
    // A full table: with two candidate sets per flow (the default) an embryonic insert is
    // refused only when both sets hold established flows alone, so most of the flood's
    // inserts evict one another instead.
    let flow = &engine.counters().flow;
    assert!(
        flow.refused + flow.evictions > u64::from(capacity),
        "the flood must have met a full table: {flow:?}"
    );

    // The control plane now adds a backend: Maglev moves ~1/4 of the slots, so any flow that
    // lost its flow-table entry to the flood would very likely change backend.
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
    let after = engine.process_burst(&frames[split..]);

    let mut first: HashMap<u32, u16> = HashMap::new();
    let mut last: HashMap<u32, u16> = HashMap::new();
    let mut seen_before: HashSet<u32> = HashSet::new();
    for (i, o) in before.iter().chain(after.iter()).enumerate() {
        if let (FrameKind::Flow(f), Verdict::Forward { backend, .. }) = (trace.kinds[i], o.verdict)
        {
            if i < split {
                first.entry(f).or_insert(backend);
                seen_before.insert(f);
            } else if seen_before.contains(&f) {
                last.insert(f, backend);
            }
        }
    }
    let spanning = last.len();
    assert!(spanning >= 150, "only {spanning} flows span the flood");
    let kept = last.iter().filter(|(f, b)| first[f] == **b).count();
    assert!(
        kept * 100 >= spanning * 99,
        "{kept} of {spanning} established flows kept their backend"
    );
}

#[test]
fn bad_config_is_refused_with_file_line_and_reason() {
    let fx = Fixture::new();
    let bad = fx.path("bad.toml");
    std::fs::write(
        &bad,
        CONFIG.replace("mac = \"02:00:00:00:00:02\"", "mac = \"02:00:00:00:00\""),
    )
    .unwrap();
    let (ok, _, stderr) = run_cli(&["check-config", bad.to_str().unwrap()]);
    assert!(!ok);
    let line = CONFIG
        .lines()
        .position(|l| l.contains("02:00:00:00:00:02"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("bad.toml:{line}:")),
        "stderr: {stderr}"
    );
    let (ok, stdout, _) = run_cli(&["check-config", fx.path("flowgate.toml").to_str().unwrap()]);
    assert!(ok && stdout.contains("web6"));
}

#[test]
fn the_bundled_example_is_what_gen_trace_makes() {
    let fx = Fixture::new();
    let out = fx.path("example.pcap");
    let (ok, _, stderr) = run_cli(&[
        "gen-trace",
        "--config",
        "examples/basic.toml",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "1",
        "--frames",
        "3000",
    ]);
    assert!(ok, "{stderr}");
    assert!(std::fs::read(&out).unwrap() == std::fs::read("examples/basic.pcap").unwrap(),
        "examples/basic.pcap is stale: regenerate with `flowgate gen-trace --config examples/basic.toml --out examples/basic.pcap --seed 1 --frames 3000`");
}

/// `gen-trace --rss-queues 2` splits the trace as a NIC with flowgate's RSS key and RETA
/// would: every frame in one file, a 5-tuple VIP's frames on the queue of the worker that
/// owns their flow-table set (`set % 2`), and src-IP-persistence VIPs by the NIC's 5-tuple
/// hash, which disagrees with the contract's for some of them (those the DPDK path hands
/// off in software).
#[test]
fn gen_trace_splits_by_rss_queue_as_the_nic_would() {
    let fx = Fixture::new();
    let out = fx.path("t.pcap");
    let (ok, _, stderr) = run_cli(&[
        "gen-trace",
        "--config",
        "examples/basic.toml",
        "--out",
        out.to_str().unwrap(),
        "--frames",
        "3000",
        "--rss-queues",
        "2",
    ]);
    assert!(ok, "{stderr}");
    let tables =
        flowgate_driver::compile(&flowgate_driver::load(Path::new("examples/basic.toml")).unwrap());
    let hasher = flowgate_core::hash::FlowHasher::new(&tables.keys);
    let whole = flowgate_traces::read_pcap_file(&out).unwrap();
    let mut split = Vec::new();
    let owners = flowgate_host::SetSplit::new(2, &tables.geometry);
    let (mut five_tuple, mut src_ip_elsewhere) = (0, 0);
    for q in 0..2u32 {
        for f in flowgate_traces::read_pcap_file(fx.path(&format!("t.q{q}.pcap"))).unwrap() {
            if let flowgate_core::pipeline::Prepared::Balance(b) =
                flowgate_core::pipeline::prepare(&f.data, &tables, &hasher)
            {
                match tables.vips[b.vip as usize].persistence {
                    flowgate_core::hash::Persistence::FiveTuple => {
                        assert_eq!(
                            owners.owner(b.sets[0]),
                            q,
                            "a 5-tuple flow on its owner's queue"
                        );
                        five_tuple += 1;
                    }
                    flowgate_core::hash::Persistence::SrcIp => {
                        src_ip_elsewhere += usize::from(owners.owner(b.sets[0]) != q);
                    }
                }
            }
            split.push(f.data);
        }
    }
    assert!(five_tuple > 100, "5-tuple frames: {five_tuple}");
    assert!(
        src_ip_elsewhere > 0,
        "the NIC hashes src-IP VIPs' ports too"
    );
    let mut whole: Vec<Vec<u8>> = whole.into_iter().map(|f| f.data).collect();
    whole.sort();
    split.sort();
    assert_eq!(split, whole, "every frame in exactly one queue's file");
}

/// `frames` written as scapy's `wrpcap` writes them on a little-endian host: the
/// microsecond magic, version 2.4, snap length 65535, Ethernet, records of (sec, usec,
/// caplen, wirelen) with usec = round(fraction × 10^6). The record at `whole_second_at`
/// gets usec = 1,000,000, as scapy writes a time within half a microsecond under a second.
fn write_like_scapy(path: &Path, frames: &[flowgate_traces::Frame], whole_second_at: usize) {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
        out.extend(v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let usec = if i == whole_second_at {
            1_000_000
        } else {
            (f.ts.subsec_nanos() + 500) / 1000
        };
        let sec = f.ts.as_secs() as u32 + usec / 1_000_000;
        let usec = if i == whole_second_at {
            usec
        } else {
            usec % 1_000_000
        };
        let len = f.data.len() as u32;
        for v in [sec, usec, len, len] {
            out.extend(v.to_le_bytes());
        }
        out.extend(&f.data);
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn scapy_pcap_with_a_whole_second_usec_field_replays_every_frame() {
    let fx = Fixture::new();
    let trace = mixed_trace(&fx, 22_000, 11);
    let input = fx.path("scapy.pcap");
    // 22,000 frames, as in the report that found this (it stopped at frame 10,000).
    write_like_scapy(&input, &trace.frames[..22_000], 10_000);
    let (output, passed) = (fx.path("out.pcap"), fx.path("pass.pcap"));
    let (ok, stdout, stderr) = run_cli(&[
        "replay",
        "--config",
        fx.path("flowgate.toml").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--passed",
        passed.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "replay failed: {stderr}");
    let j: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["frames_in"].as_u64().unwrap(), 22_000);
    assert!(
        stderr.contains("1 records of") && stderr.contains("carried into the seconds"),
        "{stderr}"
    );
    let out = flowgate_traces::read_pcap_file(&output).unwrap();
    assert_eq!(out.len() as u64, j["forwarded"].as_u64().unwrap());
}

#[test]
fn unreadable_record_stops_replay_naming_it_and_leaves_no_output() {
    let fx = Fixture::new();
    let trace = mixed_trace(&fx, 2_000, 12);
    let whole = fx.path("whole.pcap");
    flowgate_traces::write_pcap_file(&whole, &trace.frames).unwrap();
    // Cut the file inside record 1500's data.
    let offset: usize = 24
        + trace.frames[..1500]
            .iter()
            .map(|f| 16 + f.data.len())
            .sum::<usize>();
    let mut bytes = std::fs::read(&whole).unwrap();
    bytes.truncate(offset + 20);
    let input = fx.path("cut.pcap");
    std::fs::write(&input, bytes).unwrap();
    let output = fx.path("out.pcap");
    let (ok, _, stderr) = run_cli(&[
        "replay",
        "--config",
        fx.path("flowgate.toml").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--burst",
        "64",
    ]);
    assert!(!ok, "a cut trace must fail");
    for part in [
        "record 1500".to_string(),
        format!("byte offset {offset}"),
        "1500 frames were read".to_string(),
        "no output written".to_string(),
    ] {
        assert!(stderr.contains(&part), "missing {part:?} in: {stderr}");
    }
    assert!(!output.exists(), "no output that looks complete");
    assert!(!fx.path("out.pcap.partial").exists(), "no partial leftover");
}

/// `examples/gue.toml` on the bundled trace, through the binary with 3 workers: every
/// forwarded frame decodes with etherparse as Ethernet / IP / UDP to the VIP's GUE port
/// with the contract's checksums (0 under IPv4, correct under IPv6), and its UDP payload is
/// exactly the IP packet of an input frame to that VIP (GUE variant 1: no GUE header).
#[test]
fn gue_replay_output_decodes_to_the_input_packets() {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let fx = Fixture::new();
    let (out, passed) = (fx.path("gue.pcap"), fx.path("gue-passed.pcap"));
    let (ok, stdout, stderr) = run_cli(&[
        "replay",
        "--config",
        "examples/gue.toml",
        "--input",
        "examples/basic.pcap",
        "--output",
        out.to_str().unwrap(),
        "--passed",
        passed.to_str().unwrap(),
        "--workers",
        "3",
        "--json",
    ]);
    assert!(ok, "replay failed: {stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let vips = summary["vips"].as_array().unwrap();
    assert_eq!(vips[0]["mode"], "gue");
    assert_eq!(vips[0]["gue_port"], 6080);
    assert_eq!(vips[1]["gue_port"], 7000);

    // The IP packet of every input frame, by destination VIP address.
    let mut sent: HashMap<Vec<u8>, std::net::IpAddr> = HashMap::new();
    for f in flowgate_traces::read_pcap_file("examples/basic.pcap").unwrap() {
        if let Ok(Parsed::Ip(p)) = parse(&f.data) {
            let (l3, len) = (usize::from(p.l3_offset), usize::from(p.ip_len));
            sent.insert(f.data[l3..l3 + len].to_vec(), p.dst);
        }
    }
    let forwarded = flowgate_traces::read_pcap_file(&out).unwrap();
    assert_eq!(
        forwarded.len() as u64,
        summary["forwarded"].as_u64().unwrap()
    );
    let mut per_port: HashMap<u16, usize> = HashMap::new();
    for f in &forwarded {
        let packet = SlicedPacket::from_ethernet(&f.data).expect("output parses");
        let (source, destination, v6) = match &packet.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                (h.source().to_vec(), h.destination().to_vec(), false)
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                (h.source().to_vec(), h.destination().to_vec(), true)
            }
            other => panic!("outer {other:?}"),
        };
        let Some(TransportSlice::Udp(udp)) = &packet.transport else {
            panic!("not UDP: {:?}", packet.transport);
        };
        assert!(udp.source_port() >= 49152);
        if v6 {
            let expected = udp
                .to_header()
                .calc_checksum_ipv6_raw(
                    source[..].try_into().unwrap(),
                    destination[..].try_into().unwrap(),
                    udp.payload(),
                )
                .unwrap();
            assert_eq!(udp.checksum(), expected);
        } else {
            assert_eq!(udp.checksum(), 0);
        }
        let vip = sent
            .get(udp.payload())
            .expect("the UDP payload is an input frame's IP packet");
        let port = if vip.is_ipv4() { 6080 } else { 7000 };
        assert_eq!(udp.destination_port(), port);
        *per_port.entry(port).or_default() += 1;
    }
    // Both VIPs (IPv4 and IPv6 outer) forwarded frames.
    assert!(
        per_port[&6080] > 100 && per_port[&7000] > 100,
        "{per_port:?}"
    );
}
