//! `flowgate-dpdk` on net_pcap vdevs against the software engine that `flowgate replay`
//! runs: the same trace must give the same forwarded frames (bytes, in order), the same
//! passed frames and the same counters JSON.
//!
//! Each test spawns the binary: DPDK's EAL initialises once per process. They run with
//! `--no-huge -m 512 --no-pci` and a unique `--file-prefix`, so they need no hugepages,
//! no NIC and no root beyond what DPDK's EAL asks of /var/run.

use flowgate_core::Tables;
use flowgate_core::Verdict;
use flowgate_host::{Frame, ShardedEngine};
use flowgate_traces::{generate, read_pcap_file, write_pcap_file, TraceSpec, VipTarget};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::eal_args_on;

#[allow(dead_code)]
#[path = "../../src/report.rs"]
mod report;

const BIN: &str = env!("CARGO_BIN_EXE_flowgate-dpdk");

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic.toml")
}

fn tables() -> Tables {
    let config = flowgate_driver::load(&example_config()).expect("examples/basic.toml loads");
    flowgate_driver::compile(&config)
}

/// `TraceSpec::mixed` aimed at the example's VIPs, written to `dir/in.pcap`.
fn write_trace(dir: &Path, tables: &Tables, frames: u32) -> (PathBuf, Vec<Frame>) {
    let vips = VipTarget::for_tables(tables);
    let trace = generate(&TraceSpec::mixed(vips, frames)).expect("valid trace spec");
    let path = dir.join("in.pcap");
    write_pcap_file(&path, &trace).expect("write trace");
    let frames = read_pcap_file(&path)
        .expect("read trace back")
        .into_iter()
        .map(|f| Frame {
            ts: f.ts,
            data: f.data,
        })
        .collect();
    (path, frames)
}

/// What `flowgate replay` computes: forwarded and passed frames in order, and its JSON.
struct Oracle {
    forwarded: Vec<Vec<u8>>,
    passed: Vec<Vec<u8>>,
    json: Value,
}

fn oracle(tables: &Tables, frames: &[Frame]) -> Oracle {
    oracle_sharded(tables, frames, 1)
}

fn oracle_sharded(tables: &Tables, frames: &[Frame], workers: usize) -> Oracle {
    let mut engine = ShardedEngine::new(tables.clone(), workers);
    let (mut forwarded, mut passed) = (Vec::new(), Vec::new());
    for burst in frames.chunks(4096) {
        for (frame, outcome) in burst.iter().zip(engine.process_burst(burst)) {
            match outcome.verdict {
                Verdict::Forward { .. } => forwarded.push(outcome.frame),
                Verdict::Pass => passed.push(frame.data.clone()),
                Verdict::Drop(_) => {}
            }
        }
    }
    let counters = engine.counters();
    let json = report::Summary::new(tables, &counters, workers).to_json();
    Oracle {
        forwarded,
        passed,
        json,
    }
}

fn eal_args(prefix: &str, vdevs: &[String]) -> Vec<String> {
    eal_args_on("0", prefix, vdevs)
}

fn run_dpdk(flowgate_args: &[&str], eal: &[String]) -> Output {
    run_dpdk_with(&example_config(), flowgate_args, eal)
}

fn run_dpdk_with(config: &Path, flowgate_args: &[&str], eal: &[String]) -> Output {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(flowgate_args)
        .arg("--")
        .args(eal)
        .output()
        .expect("spawn flowgate-dpdk");
    out
}

fn frames_of(path: &Path) -> Vec<Vec<u8>> {
    read_pcap_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|f| f.data)
        .collect()
}

fn first_difference(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[test]
fn forwarded_passed_and_counters_match_replay() {
    let dir = tempfile::tempdir().unwrap();
    let tables = tables();
    let (input, frames) = write_trace(dir.path(), &tables, 5000);
    // The TSC ticks the flow table here (DPDK 22.11's net_pcap offers no RX timestamps), so
    // time must not decide anything: the whole trace lies within the shortest timeout.
    let span = frames.last().unwrap().ts - frames[0].ts;
    assert!(span.as_millis() < u128::from(tables.timeouts.tcp_embryonic_ms));
    let expected = oracle(&tables, &frames);
    assert!(expected.forwarded.len() > 4000 && !expected.passed.is_empty());

    let (out, pass) = (dir.path().join("out.pcap"), dir.path().join("pass.pcap"));
    let vdevs = [
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            input.display(),
            out.display()
        ),
        format!("net_pcap1,tx_pcap={}", pass.display()),
    ];
    let run = run_dpdk(
        &[
            "--json",
            "--idle-exit-ms",
            "500",
            "--tx-port",
            "0",
            "--pass-port",
            "1",
        ],
        &eal_args("fg-identity", &vdevs),
    );
    assert!(
        run.status.success(),
        "flowgate-dpdk failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    let forwarded = frames_of(&out);
    assert_eq!(
        forwarded.len(),
        expected.forwarded.len(),
        "forwarded frame count"
    );
    assert_eq!(
        first_difference(&forwarded, &expected.forwarded),
        None,
        "first forwarded frame that differs"
    );
    let passed = frames_of(&pass);
    assert_eq!(
        passed, expected.passed,
        "passed frames, untouched and in order"
    );

    let mut json: Value = serde_json::from_slice(&run.stdout).expect("--json prints JSON");
    let dpdk = json
        .as_object_mut()
        .unwrap()
        .remove("dpdk")
        .expect("a dpdk section");
    assert_eq!(json, expected.json, "counters JSON equals replay's");
    assert_eq!(dpdk["received"], frames.len() as u64);
    assert_eq!(dpdk["sent"], expected.forwarded.len() as u64);
    assert_eq!(dpdk["passed_sent"], expected.passed.len() as u64);
    assert_eq!(dpdk["tx_unsent"], 0);
    assert_eq!(dpdk["rewrite_no_room"], 0);
}

#[test]
fn ip_in_ip_grows_frames_in_place_of_the_mbuf() {
    // The example's `dns` VIP encapsulates (IPv6 in IPv6): its frames leave 40 bytes
    // longer (less any Ethernet padding), written through the mbuf's headroom.
    let dir = tempfile::tempdir().unwrap();
    let tables = tables();
    let (input, frames) = write_trace(dir.path(), &tables, 2000);
    let expected = oracle(&tables, &frames);
    let out = dir.path().join("out.pcap");
    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        out.display()
    );
    let run = run_dpdk(&["--idle-exit-ms", "500"], &eal_args("fg-ipip", &[vdev]));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let forwarded = frames_of(&out);
    assert_eq!(forwarded, expected.forwarded);
    let encapsulated = forwarded
        .iter()
        .filter(|f| f.len() > 14 && f[12..14] == [0x86, 0xdd] && f[14 + 6] == 41)
        .count();
    assert!(encapsulated > 0, "the trace has IPv6-in-IPv6 frames");
}

/// examples/gue.toml (the example's services by GUE: IPv4 outer to port 6080, IPv6 outer
/// to port 7000): the same frames as replay, in order, every one rewritten in the mbuf's
/// headroom (48 bytes for IPv6 + UDP), and the same counters JSON.
#[test]
fn gue_encapsulates_in_place_like_replay() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gue.toml");
    let tables = flowgate_driver::compile(&flowgate_driver::load(&config).unwrap());
    let (input, frames) = write_trace(dir.path(), &tables, 2000);
    let expected = oracle(&tables, &frames);
    let out = dir.path().join("out.pcap");
    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        out.display()
    );
    let run = run_dpdk_with(
        &config,
        &["--json", "--idle-exit-ms", "500"],
        &eal_args("fg-gue", &[vdev]),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let forwarded = frames_of(&out);
    assert_eq!(first_difference(&forwarded, &expected.forwarded), None);
    assert_eq!(forwarded.len(), expected.forwarded.len());
    let mut json: Value = serde_json::from_slice(&run.stdout).unwrap();
    let dpdk = json.as_object_mut().unwrap().remove("dpdk").unwrap();
    assert_eq!(json, expected.json);
    assert_eq!(
        dpdk["rewrite_no_room"], 0,
        "every outer header fits the headroom"
    );
    let udp_to = |port: u16| {
        forwarded
            .iter()
            .filter(|f| {
                matches!(
                    etherparse::SlicedPacket::from_ethernet(f).map(|p| p.transport),
                    Ok(Some(etherparse::TransportSlice::Udp(u))) if u.destination_port() == port
                )
            })
            .count()
    };
    assert!(
        udp_to(6080) > 0 && udp_to(7000) > 0,
        "GUE over IPv4 and IPv6"
    );
}

#[test]
fn max_frames_stops_early_and_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let tables = tables();
    let (input, frames) = write_trace(dir.path(), &tables, 2000);
    let expected = oracle(&tables, &frames[..700]);
    let out = dir.path().join("out.pcap");
    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        out.display()
    );
    let run = run_dpdk(
        &["--json", "--max-frames", "700"],
        &eal_args("fg-max", &[vdev]),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut json: Value = serde_json::from_slice(&run.stdout).unwrap();
    json.as_object_mut().unwrap().remove("dpdk");
    assert_eq!(json, expected.json);
    assert_eq!(frames_of(&out), expected.forwarded);
}

#[test]
fn missing_port_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let tables = tables();
    let (input, _) = write_trace(dir.path(), &tables, 100);
    let vdev = format!("net_pcap0,rx_pcap={},tx_pcap=/dev/null", input.display());
    let run = run_dpdk(&["--rx-port", "3"], &eal_args("fg-noport", &[vdev]));
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("port 3 does not exist"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_stops_an_endless_input_with_final_counters() {
    let dir = tempfile::tempdir().unwrap();
    let tables = tables();
    let (input, _) = write_trace(dir.path(), &tables, 500);
    let vdev = format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display());
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(example_config())
        .arg("--json")
        .arg("--")
        .args(eal_args("fg-sigterm", &[vdev]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for the binary to say it forwards, then give it a moment on the
    // endless input; a fixed sleep from spawn would race a slow EAL start.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("flowgate-dpdk: forwarding") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            line.clear();
        }
        all
    });
    let started = rx.recv_timeout(Duration::from_secs(60)).is_ok();
    if started {
        std::thread::sleep(Duration::from_millis(300));
    }
    // SIGTERM, as a service manager sends it.
    let rc = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(rc.success());
    let out = child.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    assert!(started, "no start line within 60 s: {stderr}");
    assert!(out.status.success(), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("final counters as JSON");
    let frames_in = json["frames_in"].as_u64().unwrap();
    assert!(
        frames_in > 500,
        "an endless input was read past one pass: {frames_in}"
    );
    assert_eq!(json["dpdk"]["received"].as_u64().unwrap(), frames_in);
}

/// Frames grouped by flow (the rewritten frame's addresses, protocol and ports, which the
/// rewrite keeps inside any encapsulation), each group in output order.
fn by_flow(
    frames: &[Vec<u8>],
    tables: &Tables,
) -> std::collections::BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
    let hasher = flowgate_core::hash::FlowHasher::new(&tables.keys);
    let mut flows: std::collections::BTreeMap<Vec<u8>, Vec<Vec<u8>>> = Default::default();
    for f in frames {
        // The flow key: the contract's own flow hash of the innermost datagram.
        let inner = innermost(f);
        let key = match flowgate_core::pipeline::prepare(&inner, tables, &hasher) {
            flowgate_core::pipeline::Prepared::Balance(b) => b.flow.digest.to_be_bytes().to_vec(),
            _ => inner[14..].to_vec(),
        };
        flows.entry(key).or_default().push(f.clone());
    }
    flows
}

/// The client's frame as flowgate received it, up to the MACs: for IP-in-IP, the inner
/// datagram behind the first 14 bytes of Ethernet (no VLANs in these traces).
fn innermost(f: &[u8]) -> Vec<u8> {
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let (next, outer_len) = match ethertype {
        0x0800 => (f[14 + 9], usize::from(f[14] & 0x0f) * 4),
        0x86dd => (f[14 + 6], 40),
        _ => return f.to_vec(),
    };
    let inner_type: u16 = match next {
        4 => 0x0800,
        41 => 0x86dd,
        _ => return f.to_vec(),
    };
    let mut v = f[..12].to_vec();
    v.extend_from_slice(&inner_type.to_be_bytes());
    v.extend_from_slice(&f[14 + outer_len..]);
    v
}

/// Main lcore + `workers` worker lcores (on this machine's CPUs 0 and 1): the same
/// frames per flow in the same order, the same passed frames and counters as
/// `ShardedEngine` with as many workers.
fn multi_lcore_identity(lcores: &str, workers: usize, prefix: &str) {
    multi_queue_identity(lcores, workers, 1, Split::Hash, prefix)
}

/// How a test spreads its trace over RX queues.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    /// By `hash % queues`: a NIC whose RETA ignores the workers, so frames arrive on other
    /// workers' queues and take the software hand-off.
    Hash,
    /// Queue = the worker owning the flow's set (`set % workers`): what the RETA
    /// flowgate programs makes the NIC do, so nothing is handed off.
    Owner,
}

/// The trace split over `queues` files as a NIC's RSS would split it over RX queues (so
/// every frame of a flow, fragments included, lands on one queue); frames for no VIP on
/// queue 0.
fn split_by_flow(
    dir: &Path,
    tables: &Tables,
    input: &Path,
    queues: usize,
    split: Split,
    workers: usize,
) -> Vec<PathBuf> {
    let hasher = flowgate_core::hash::FlowHasher::new(&tables.keys);
    let mut parts = vec![Vec::new(); queues];
    for f in read_pcap_file(input).expect("read trace") {
        let q = match flowgate_core::pipeline::prepare(&f.data, tables, &hasher) {
            flowgate_core::pipeline::Prepared::Balance(b) => match split {
                Split::Hash => b.flow.hash as usize % queues,
                Split::Owner => {
                    let split =
                        flowgate_host::SetSplit::new(workers.max(1) as u32, &tables.geometry);
                    split.owner(b.sets[0]) as usize % queues
                }
            },
            _ => 0,
        };
        parts[q].push(f);
    }
    parts
        .iter()
        .enumerate()
        .map(|(q, frames)| {
            assert!(
                frames.len() > 100,
                "queue {q} gets frames: {}",
                frames.len()
            );
            let path = dir.join(format!("in-{q}.pcap"));
            write_pcap_file(&path, frames).expect("write split trace");
            path
        })
        .collect()
}

/// [`multi_lcore_identity`] with the input on `queues` RX queues of one port (net_pcap
/// with one `rx_pcap=` per queue, the trace split by flow). Passed frames come from
/// several queues, so only their multiset is compared.
fn multi_queue_identity(lcores: &str, workers: usize, queues: usize, split: Split, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tables = tables();
    let (input, frames) = write_trace(dir.path(), &tables, 6000);
    let span = frames.last().unwrap().ts - frames[0].ts;
    assert!(span.as_millis() < u128::from(tables.timeouts.tcp_embryonic_ms));
    let expected = oracle_sharded(&tables, &frames, workers.max(1));
    let (out, pass) = (dir.path().join("out.pcap"), dir.path().join("pass.pcap"));
    let rx_pcaps: String = if queues > 1 {
        split_by_flow(dir.path(), &tables, &input, queues, split, workers)
            .iter()
            .map(|p| format!("rx_pcap={},", p.display()))
            .collect()
    } else {
        format!("rx_pcap={},", input.display())
    };
    let vdevs = [
        format!("net_pcap0,{rx_pcaps}tx_pcap={}", out.display()),
        format!("net_pcap1,tx_pcap={}", pass.display()),
    ];
    let queues_arg = queues.to_string();
    let run = run_dpdk(
        &[
            "--json",
            "--idle-exit-ms",
            "800",
            "--tx-port",
            "0",
            "--pass-port",
            "1",
            "--rx-queues",
            &queues_arg,
        ],
        &eal_args_on(lcores, prefix, &vdevs),
    );
    assert!(
        run.status.success(),
        "flowgate-dpdk failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let forwarded = frames_of(&out);
    assert_eq!(
        forwarded.len(),
        expected.forwarded.len(),
        "forwarded frame count"
    );
    let (got, want) = (
        by_flow(&forwarded, &tables),
        by_flow(&expected.forwarded, &tables),
    );
    assert!(want.len() > 50, "the trace has many flows: {}", want.len());
    assert_eq!(got.len(), want.len(), "flows");
    for (flow, frames) in &want {
        assert_eq!(
            got.get(flow),
            Some(frames),
            "flow {flow:02x?}: frames or their order differ"
        );
    }
    if queues == 1 {
        assert_eq!(frames_of(&pass), expected.passed, "passed frames, in order");
    } else {
        let (mut got, mut want) = (frames_of(&pass), expected.passed.clone());
        got.sort();
        want.sort();
        assert_eq!(got, want, "passed frames");
    }
    let mut json: Value = serde_json::from_slice(&run.stdout).expect("--json prints JSON");
    let dpdk = json
        .as_object_mut()
        .unwrap()
        .remove("dpdk")
        .expect("a dpdk section");
    assert_eq!(
        json, expected.json,
        "counters JSON equals ShardedEngine's with {workers} workers"
    );
    let per_worker: Vec<u64> = dpdk["worker_lcores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["frames"].as_u64().unwrap())
        .collect();
    assert_eq!(per_worker.len(), workers);
    assert!(
        per_worker.iter().all(|&f| f > 100),
        "every worker balanced frames: {per_worker:?}"
    );
    assert_eq!(dpdk["received"], frames.len() as u64);
    assert_eq!(dpdk["sent"], expected.forwarded.len() as u64);
    assert_eq!(dpdk["tx_unsent"], 0);
    assert_eq!(dpdk["rewrite_no_room"], 0);
    assert_eq!(
        dpdk["ports"][0]["rx_queues"], queues as u64,
        "RX queues configured"
    );
    let rss = &dpdk["ports"][0]["rss"];
    if queues > 1 {
        assert_eq!(rss["mode"], "software", "net_pcap has no RSS");
        // The example's src-IP-persistence VIP: net_pcap has no rte_flow, so its rule is
        // refused and the VIP reported as steered in software, with the driver's reason.
        let vips = rss["vips"].as_array().expect("rss.vips");
        assert_eq!(vips.len(), 1, "one src-IP VIP in the example: {vips:?}");
        assert_eq!(vips[0]["vip"], "dns");
        assert_eq!(vips[0]["address"], "2001:db8::53");
        assert_eq!(vips[0]["steering"], "software");
        let reason = vips[0]["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("rte_flow_validate: "), "{reason}");
    } else {
        assert_eq!(
            rss["vips"],
            serde_json::json!([]),
            "one queue: nothing to steer"
        );
    }
    let (steered, handed_off) = (
        rss["steered"].as_u64().unwrap(),
        rss["handed_off"].as_u64().unwrap(),
    );
    if workers > 0 {
        let balanced: u64 = per_worker.iter().sum();
        assert_eq!(
            steered + handed_off,
            balanced,
            "every balanced frame counted once, steered or handed off"
        );
    }
    if workers <= 1 || split == Split::Owner && queues == workers {
        assert_eq!(handed_off, 0, "every frame arrived on its owner's queue");
    } else if queues >= workers {
        assert!(
            handed_off > 100,
            "frames on other workers' queues: {handed_off}"
        );
    }
}

#[test]
fn two_rx_queues_on_one_lcore_keep_flow_order_and_counters() {
    multi_queue_identity("0", 0, 2, Split::Hash, "fg-mq1");
}

#[test]
fn three_rx_queues_polled_by_two_workers_hand_off_and_keep_flow_order() {
    multi_queue_identity("0@0,1@1,2@1", 2, 3, Split::Hash, "fg-mq3");
}

#[test]
fn two_workers_on_queues_split_by_owner_hand_nothing_off() {
    multi_queue_identity("0@0,1@0,2@1", 2, 2, Split::Owner, "fg-own2");
}

#[test]
fn three_workers_on_their_own_queues_keep_flow_order_and_counters() {
    multi_queue_identity("0@0,1@0,2@1,3@1", 3, 3, Split::Owner, "fg-own3");
}

#[test]
fn three_workers_handing_off_keep_flow_order_and_counters() {
    multi_queue_identity("0@0,1@0,2@1,3@1", 3, 3, Split::Hash, "fg-hash3");
}

#[test]
fn two_worker_lcores_keep_flow_order_and_counters() {
    multi_lcore_identity("0@0,1@1,2@1", 2, "fg-mc2");
}

#[test]
fn one_worker_lcore_beside_the_rx_lcore() {
    multi_lcore_identity("0@0,1@1", 1, "fg-mc1");
}
