//! `flowgate run` on DPDK ports, end to end through real TCP connections (feature `dpdk`).
//!
//! The test builds its own network in namespaces (names carry the test's pid; all are
//! deleted when the test ends, passes or fails):
//!
//! ```text
//!  client ns                 flowgate ns                               backend ns 1..3
//!  c0 10.0.0.1/24 ──veth── frx (af_packet port 0: RX)                  eth0 10.1.0.i/24
//!     10.0.0.10-33           ftx (af_packet port 1: TX) ─veth─ ftxp ┐   lo: the VIPs
//!                            br0 10.1.0.254/24 ◀── b1 b2 b3 ────────┴── eth0 (veth)
//!                            frx 10.0.0.254/24: the kernel routes the backends' answers
//! ```
//!
//! Clients reach the VIPs through frx, where flowgate reads them (the kernel drops them:
//! a blackhole route); flowgate rewrites the MACs (L2 DSR) and sends the frames on ftx,
//! whose peer sits on the backends' bridge; backends hold the VIPs on loopback (arp_ignore /
//! arp_announce keep them from answering ARP for them) and answer the clients directly
//! through the flowgate namespace's kernel. RX and TX are separate veths, so af_packet never
//! hands flowgate its own output. flowgate's health checker reaches the backends through
//! br0. The HTTP servers and clients are threads of this test moved into the namespaces
//! with setns(2).
//!
//! Shown: responses arrive, new connections spread by weight (5-tuple VIP), every client
//! address sticks to one backend (src-IP VIP), killing one backend's server moves its
//! clients within the health bound while the other connections (kept open across the kill)
//! keep working on their backends, the admin API reports it, and SIGTERM stops flowgate with
//! final counters.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 and ethtool (scripts/setup installs
//! them); without them the test prints a SKIP line saying why and passes.

mod common;

use common::{ask, connect_from, fetch, in_netns, in_ns_cmd, ip, run, Daemon, Server};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flowgate");

const WEB: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 1), 80);
const STICKY: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 2), 80);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Client addresses for the src-IP VIP: 10.0.0.10 .. 10.0.0.33.
const STICKY_CLIENTS: u8 = 24;
const WEB_WEIGHTS: [u32; 3] = [1, 1, 2];
const WEB_CONNECTIONS: usize = 600;
const OWN_MAC: &str = "02:00:00:00:00:fe";
const ADMIN: &str = "127.0.0.1:9090";

// Health checks: a backend is down at most FALL × INTERVAL + TIMEOUT after it stops.
const INTERVAL_MS: u64 = 250;
const TIMEOUT_MS: u64 = 200;
const FALL: u64 = 2;
/// Added to the health bound for a loaded machine (flowgate busy-polls one of two cores).
const SLACK: Duration = Duration::from_secs(3);

/// Written to the process's stderr itself, not through `eprintln!`, so the line shows even
/// when the test harness captures the output of passing tests.
fn skip(reason: &str) {
    let _ = writeln!(
        io::stderr(),
        "\n!!!!!!!! SKIP dpdk_netns: {reason} !!!!!!!!\n"
    );
}

fn backend_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, i as u8 + 1)
}

fn backend_mac(i: usize) -> String {
    format!("02:00:00:00:01:{:02x}", i + 1)
}

fn sticky_client(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 10 + k)
}

/// The namespaces of one run; deleted on drop (also when the test panics).
struct Namespaces {
    names: Vec<String>,
    dpdk_prefix: String,
}

impl Namespaces {
    fn add(&mut self, name: String) -> String {
        ip("", &format!("netns add {name}"));
        self.names.push(name.clone());
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = run("ip", &["netns", "del", n]);
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.dpdk_prefix));
    }
}

/// Namespaces left by an earlier run that was killed before its cleanup (its pid is gone).
fn remove_stale_namespaces() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("fgt") else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// Why the test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    // SAFETY: no arguments, no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for network namespaces)".into());
    }
    if run("ip", &["-V"]).is_err() {
        return Some("iproute2 (`ip`) is not installed: run scripts/setup".into());
    }
    if run("ethtool", &["--version"]).is_err() {
        return Some(
            "ethtool is not installed (needed to turn off veth checksum offload): run scripts/setup"
                .into(),
        );
    }
    let probe = format!("fgt{}probe", std::process::id());
    if let Err(e) = run("ip", &["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    let _ = run("ip", &["netns", "del", &probe]);
    None
}

/// Build the network of the module documentation.
fn build_network(nss: &mut Namespaces, tag: &str) -> (String, String, Vec<String>) {
    let client = nss.add(format!("{tag}c"));
    let lb = nss.add(format!("{tag}l"));
    let backends: Vec<String> = (1..=3).map(|i| nss.add(format!("{tag}b{i}"))).collect();

    // Client <-> flowgate RX.
    ip(
        "",
        &format!("link add c0 netns {client} type veth peer name frx netns {lb}"),
    );
    // flowgate TX <-> the backends' bridge.
    ip(&lb, "link add ftx type veth peer name ftxp");
    ip(&lb, &format!("link set ftx address {OWN_MAC}"));
    ip(&lb, "link add br0 type bridge");
    ip(&lb, "link set ftxp master br0");
    ip(&lb, "addr add 10.1.0.254/24 dev br0");
    ip(&lb, "addr add 10.0.0.254/24 dev frx");
    // Frames to the VIPs are flowgate's: the kernel here must neither route them nor
    // answer them with ICMP unreachable.
    for vip in [WEB, STICKY] {
        ip(&lb, &format!("route add blackhole {}/32", vip.ip()));
    }
    in_ns_cmd(&lb, "sysctl", "-qw net.ipv4.ip_forward=1");
    for dev in ["lo", "frx", "ftx", "ftxp", "br0"] {
        ip(&lb, &format!("link set {dev} up"));
    }

    ip(&client, "addr add 10.0.0.1/24 dev c0");
    for k in 0..STICKY_CLIENTS {
        ip(&client, &format!("addr add {}/24 dev c0", sticky_client(k)));
    }
    ip(&client, "link set lo up");
    ip(&client, "link set c0 up");
    ip(&client, "route add 10.9.9.0/24 via 10.0.0.254");
    // A veth hands its peer frames with the TCP checksum left for "hardware" to fill in;
    // af_packet gives flowgate those bytes as they are, and the backend would drop them. A
    // real NIC delivers complete checksums: so does the client's veth with offloads off.
    in_ns_cmd(&client, "ethtool", "-K c0 tx off tso off gso off");

    for (i, b) in backends.iter().enumerate() {
        let port = format!("b{}", i + 1);
        ip(
            "",
            &format!("link add eth0 netns {b} type veth peer name {port} netns {lb}"),
        );
        ip(&lb, &format!("link set {port} master br0"));
        ip(&lb, &format!("link set {port} up"));
        ip(b, &format!("link set eth0 address {}", backend_mac(i)));
        ip(b, &format!("addr add {}/24 dev eth0", backend_ip(i)));
        for vip in [WEB, STICKY] {
            ip(b, &format!("addr add {}/32 dev lo", vip.ip()));
        }
        in_ns_cmd(
            b,
            "sysctl",
            "-qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
             net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2",
        );
        ip(b, "link set lo up");
        ip(b, "link set eth0 up");
        ip(b, "route add default via 10.1.0.254");
    }
    (client, lb, backends)
}

fn config_text() -> String {
    let health = format!(
        "  [vip.health]\n  kind = \"http\"\n  path = \"/healthz\"\n  interval_ms = {INTERVAL_MS}\n  \
         timeout_ms = {TIMEOUT_MS}\n  rise = 2\n  fall = {FALL}\n"
    );
    let mut s = format!("own_mac = \"{OWN_MAC}\"\nadmin = \"{ADMIN}\"\n");
    for (name, vip, persistence, weights) in [
        ("web", WEB, "5tuple", WEB_WEIGHTS),
        ("sticky", STICKY, "src-ip", [1, 1, 1]),
    ] {
        s += &format!(
            "\n[[vip]]\nname = \"{name}\"\naddress = \"{}\"\nport = {}\nprotocol = \"tcp\"\n\
             mode = \"dsr\"\npersistence = \"{persistence}\"\n{health}",
            vip.ip(),
            vip.port()
        );
        for (i, w) in weights.iter().enumerate() {
            s += &format!(
                "  [[vip.backend]]\n  address = \"{}\"\n  mac = \"{}\"\n  weight = {w}\n",
                backend_ip(i),
                backend_mac(i)
            );
        }
    }
    s
}

fn admin_status(lb: &str) -> serde_json::Value {
    let out = Command::new("ip")
        .args(["netns", "exec", lb, BIN, "ctl", "--admin", ADMIN, "status"])
        .output()
        .expect("flowgate ctl");
    assert!(
        out.status.success(),
        "ctl status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status is JSON")
}

/// The `up` bit the admin API reports for each backend address of `vip`.
fn up_bits(status: &serde_json::Value, vip: &str) -> BTreeMap<String, bool> {
    let vips = status["vips"].as_array().expect("vips");
    let v = vips
        .iter()
        .find(|v| v["name"] == vip)
        .expect("vip in status");
    v["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["address"].as_str().unwrap_or_default().to_string(),
                b["up"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn daemon_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("flowgate.err")).unwrap_or_default()
}

#[test]
fn dpdk_l2_dsr_to_backend_namespaces() {
    if let Some(reason) = missing_prerequisite() {
        skip(&reason);
        return;
    }
    remove_stale_namespaces();
    let started = Instant::now();
    let tag = format!("fgt{}", std::process::id());
    let mut nss = Namespaces {
        names: Vec::new(),
        dpdk_prefix: tag.clone(),
    };
    let (client, lb, backend_ns) = build_network(&mut nss, &tag);
    let mut servers: Vec<Server> = backend_ns
        .iter()
        .enumerate()
        .map(|(i, ns)| Server::start(ns, i))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowgate.toml");
    std::fs::write(&config, config_text()).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &lb, BIN, "run", "--config"])
        .arg(&config)
        .args(["--json", "--mbufs", "4095", "--"])
        .args(["--no-huge", "-m", "512", "--no-pci", "-l", "0"])
        .args(["--file-prefix", &tag])
        .args(["--vdev", "net_af_packet0,iface=frx"])
        .args(["--vdev", "net_af_packet1,iface=ftx"])
        .stdin(Stdio::null())
        .stdout(File::create(dir.path().join("flowgate.out")).unwrap())
        .stderr(File::create(dir.path().join("flowgate.err")).unwrap())
        .spawn()
        .expect("spawn flowgate");
    let mut daemon = Daemon(child);

    // Responses arrive: the first answer through flowgate.
    let first = in_netns(&client, || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match fetch(CLIENT, WEB) {
                Ok(b) => return Ok(b),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    if let Ok(Some(status)) = daemon.0.try_wait() {
        panic!("flowgate exited ({status}):\n{}", daemon_log(dir.path()));
    }
    let first = first.unwrap_or_else(|e| {
        panic!(
            "no answer through flowgate within 60 s: {e}\n{}",
            daemon_log(dir.path())
        )
    });
    eprintln!(
        "first answer from backend {first} after {:?}",
        started.elapsed()
    );

    // Load spreads by weight over new connections (5-tuple persistence: every connection
    // is balanced on its own).
    let t = Instant::now();
    let results: Vec<io::Result<usize>> = in_netns(&client, || {
        (0..WEB_CONNECTIONS).map(|_| fetch(CLIENT, WEB)).collect()
    });
    let elapsed = t.elapsed();
    let mut per_backend = [0usize; 3];
    for r in &results {
        match r {
            Ok(b) => per_backend[*b] += 1,
            Err(e) => panic!("a connection to the web VIP failed: {e}"),
        }
    }
    let total_weight: u32 = WEB_WEIGHTS.iter().sum();
    eprintln!(
        "web VIP: {WEB_CONNECTIONS} connections in {elapsed:?} ({:.0}/s), per backend {per_backend:?}",
        WEB_CONNECTIONS as f64 / elapsed.as_secs_f64()
    );
    for (i, &n) in per_backend.iter().enumerate() {
        let share = n as f64 / WEB_CONNECTIONS as f64;
        let want = WEB_WEIGHTS[i] as f64 / total_weight as f64;
        assert!(
            (share - want).abs() < 0.08,
            "backend {i} got {share:.3} of the connections, its weight gives {want:.3}: {per_backend:?}"
        );
    }

    // Session persistence on the src-IP VIP: every connection of a client address goes to
    // the same backend, and the addresses spread over the backends.
    let sticky: Vec<Vec<io::Result<usize>>> = in_netns(&client, || {
        (0..STICKY_CLIENTS)
            .map(|k| (0..4).map(|_| fetch(sticky_client(k), STICKY)).collect())
            .collect()
    });
    let mut home: HashMap<u8, usize> = HashMap::new();
    for (k, answers) in sticky.into_iter().enumerate() {
        let answers: Vec<usize> = answers
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("client {}: {e}", sticky_client(k as u8))))
            .collect();
        assert!(
            answers.iter().all(|&b| b == answers[0]),
            "client {} was balanced over {answers:?} on a src-IP VIP",
            sticky_client(k as u8)
        );
        home.insert(k as u8, answers[0]);
    }
    let mut clients_of = [0usize; 3];
    for &b in home.values() {
        clients_of[b] += 1;
    }
    eprintln!("sticky VIP: clients per backend {clients_of:?}");
    assert!(
        clients_of.iter().filter(|&&n| n > 0).count() >= 2,
        "{STICKY_CLIENTS} client addresses all went to one backend: {clients_of:?}"
    );

    // Connections held open across the failure: one per sticky client, twelve on the web VIP.
    let (mut held_sticky, mut held_web) = in_netns(&client, || {
        let open = |src, vip| -> (TcpStream, usize) {
            let mut s = connect_from(src, vip).expect("held connection");
            let b = ask(&mut s).expect("first request on a held connection");
            (s, b)
        };
        let sticky: Vec<_> = (0..STICKY_CLIENTS)
            .map(|k| open(sticky_client(k), STICKY))
            .collect();
        let web: Vec<_> = (0..12).map(|_| open(CLIENT, WEB)).collect();
        (sticky, web)
    });
    for (k, (_, b)) in held_sticky.iter().enumerate() {
        assert_eq!(*b, home[&(k as u8)], "held connection of client {k}");
    }

    // Kill the server with the most sticky clients.
    let victim = (0..3).max_by_key(|&i| clients_of[i]).unwrap();
    let moving: Vec<u8> = (0..STICKY_CLIENTS).filter(|k| home[k] == victim).collect();
    let bound = Duration::from_millis(FALL * INTERVAL_MS + TIMEOUT_MS);
    let killed = Instant::now();
    servers[victim].kill();

    // Its clients move to the other backends within the health bound.
    let moved: Vec<(u8, usize, Duration)> = in_netns(&client, || {
        let mut left: Vec<u8> = moving.clone();
        let mut moved = Vec::new();
        let deadline = killed + bound + SLACK;
        while !left.is_empty() && Instant::now() < deadline {
            left.retain(|&k| match fetch(sticky_client(k), STICKY) {
                Ok(b) if b != victim => {
                    moved.push((k, b, killed.elapsed()));
                    false
                }
                _ => true,
            });
            thread::sleep(Duration::from_millis(20));
        }
        moved
    });
    let slowest = moved.iter().map(|m| m.2).max().unwrap_or_default();
    eprintln!(
        "killed backend {victim}: {} of its {} clients moved, the last after {slowest:?} \
         (health bound {bound:?})",
        moved.len(),
        moving.len()
    );
    assert_eq!(
        moved.len(),
        moving.len(),
        "clients of the killed backend {victim} did not all move within {:?}\n{}",
        bound + SLACK,
        daemon_log(dir.path())
    );
    // ... and stay where they moved.
    let again: Vec<(u8, usize, io::Result<usize>)> = in_netns(&client, || {
        moved
            .iter()
            .map(|&(k, b, _)| (k, b, fetch(sticky_client(k), STICKY)))
            .collect()
    });
    for (k, b, r) in again {
        let now = r.unwrap_or_else(|e| panic!("moved client {k}: {e}"));
        assert_eq!(now, b, "moved client {k} did not stick to its new backend");
    }

    // Connections to the other backends kept working through the failure, on the same
    // backend, and the other clients' new connections still go where they went before.
    let mut kept = 0;
    for (s, b) in held_sticky.iter_mut().chain(held_web.iter_mut()) {
        if *b == victim {
            continue;
        }
        let now = ask(s).unwrap_or_else(|e| panic!("held connection to backend {b} broke: {e}"));
        assert_eq!(now, *b, "a held connection changed backend");
        kept += 1;
    }
    eprintln!("{kept} held connections to the surviving backends still answer");
    assert!(kept > 0);
    let stayed: Vec<(u8, io::Result<usize>)> = in_netns(&client, || {
        (0..STICKY_CLIENTS)
            .filter(|k| home[k] != victim)
            .map(|k| (k, fetch(sticky_client(k), STICKY)))
            .collect()
    });
    for (k, r) in stayed {
        let b = r.unwrap_or_else(|e| panic!("client {k} of a surviving backend: {e}"));
        assert_eq!(
            b, home[&k],
            "client {k} moved although its backend stayed up"
        );
    }

    // The admin API saw it: the victim is down in both VIPs, the others up; counters are live.
    let status = admin_status(&lb);
    for vip in ["web", "sticky"] {
        let bits = up_bits(&status, vip);
        for i in 0..3 {
            assert_eq!(
                bits.get(&backend_ip(i).to_string()),
                Some(&(i != victim)),
                "{vip}: up bits {bits:?} after killing backend {victim}"
            );
        }
    }
    assert!(
        status["counters"]["forwarded"].as_u64().unwrap_or(0) > 0,
        "admin counters: {}",
        status["counters"]
    );

    // SIGTERM: a clean stop with the final counters.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "flowgate did not stop on SIGTERM"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "flowgate: {exit}\n{}",
        daemon_log(dir.path())
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("flowgate.out")).unwrap())
            .expect("final summary is JSON");
    let forwarded = summary["forwarded"].as_u64().unwrap();
    let dpdk = &summary["dpdk"];
    let sent = dpdk["sent"].as_u64().unwrap();
    eprintln!(
        "final: forwarded {forwarded}, sent {sent}, passed {}, table updates {}",
        summary["passed"], dpdk["table_updates"]
    );
    // Every connection's frames from the client went through flowgate.
    assert!(
        forwarded >= (WEB_CONNECTIONS as u64) * 5,
        "forwarded {forwarded}"
    );
    assert_eq!(
        sent + dpdk["tx_unsent"].as_u64().unwrap() + dpdk["rewrite_no_room"].as_u64().unwrap(),
        forwarded
    );
    assert!(dpdk["table_updates"].as_u64().unwrap() >= 1);
    for b in summary["backends"].as_array().unwrap() {
        assert!(
            b["packets"].as_u64().unwrap() > 0,
            "backend got nothing: {b}"
        );
        let victim_ip = backend_ip(victim).to_string();
        assert_eq!(b["up"], b["address"] != victim_ip.as_str(), "{b}");
    }
    drop(servers.drain(..));
    eprintln!("dpdk_netns passed in {:?}", started.elapsed());
}
