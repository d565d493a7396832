//! Announcements reach a router's FIB as one ECMP route (root; network namespaces the
//! test creates and deletes). A router namespace runs BIRD with three BGP neighbours, BFD,
//! and `merge paths on` into the kernel (`fib_multipath_hash_policy=1`); three node
//! namespaces each run BIRD peered with it; each node's announcer (`announce::run`, as
//! `flowgate run --bird-socket` runs it) drives its BIRD through the control socket.
//! Asserted: the VIP's route has the three nodes as next hops once their data paths run;
//! a drained node leaves it and comes back; a node whose BIRD freezes (a hung machine:
//! no BFD, no keepalives) leaves it within the BFD detection time (printed); a stopping
//! node withdraws. No DPDK and no TCP here: the several-node forwarding test is not
//! written yet (see README "Running several nodes").

mod common;

use common::wait_until_async;
use flowgate_driver::announce::{self, BirdSpeaker, NodeState};
use flowgate_driver::ControlPlane;
use flowgate_host::handoff::CountersBoard;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);
const VIP: &str = "192.0.2.10";

const CONFIG: &str = "maglev_m = 1021\n[flow_table]\nsets = 1024\nways = 4\n\
    [[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nprotocol = \"tcp\"\n\
    [[vip.backend]]\naddress = \"10.1.0.1\"\nmac = \"02:00:00:00:01:01\"\n";

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ns(name: &str, args: &[&str]) -> String {
    let mut all = vec!["ip", "netns", "exec", name];
    all.extend_from_slice(args);
    sh(&all).unwrap_or_else(|e| panic!("{e}"))
}

/// The namespaces and BIRDs of one run, removed on drop (also when an assertion fails).
struct Lab {
    tag: String,
    dir: PathBuf,
}

impl Lab {
    fn router(&self) -> String {
        format!("{}r", self.tag)
    }

    fn node(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pid"))
    }

    fn bird_pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.pid_file(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no BIRD pid for {name}"))
    }

    fn bird(&self, netns: &str, name: &str, conf: &str) -> PathBuf {
        let conf_path = self.dir.join(format!("{name}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let socket = self.dir.join(format!("{name}.ctl"));
        ns(
            netns,
            &[
                "bird",
                "-c",
                conf_path.to_str().unwrap(),
                "-s",
                socket.to_str().unwrap(),
                "-P",
                self.pid_file(name).to_str().unwrap(),
            ],
        );
        socket
    }

    /// Next hops of the VIP's route in the router's FIB.
    fn next_hops(&self) -> Vec<String> {
        let text = ns(&self.router(), &["ip", "route", "show", VIP]);
        let mut hops: Vec<String> = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect();
        hops.sort();
        hops
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in ["router", "node0", "node1", "node2"] {
            if let Ok(pid) = std::fs::read_to_string(self.pid_file(name)) {
                let _ = sh(&["kill", "-CONT", pid.trim()]);
                let _ = sh(&["kill", "-KILL", pid.trim()]);
            }
        }
        let _ = sh(&["ip", "netns", "del", &self.router()]);
        for i in 0..3 {
            let _ = sh(&["ip", "netns", "del", &self.node(i)]);
        }
    }
}

fn missing_prerequisite() -> Option<String> {
    // SAFETY: no arguments, no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)".into());
    }
    for tool in [["ip", "-V"], ["bird", "--version"], ["birdc", "--version"]] {
        if Command::new(tool[0]).arg(tool[1]).output().is_err() {
            return Some(format!("`{}` is not installed: run scripts/setup", tool[0]));
        }
    }
    None
}

fn node_ip(i: usize) -> String {
    format!("10.77.0.{}", 11 + i)
}

fn build(lab: &Lab) -> Vec<BirdSpeaker> {
    let r = lab.router();
    sh(&["ip", "netns", "add", &r]).unwrap();
    ns(&r, &["ip", "link", "set", "lo", "up"]);
    ns(
        &r,
        &["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"],
    );
    ns(&r, &["ip", "link", "add", "br0", "type", "bridge"]);
    ns(&r, &["ip", "addr", "add", "10.77.0.1/24", "dev", "br0"]);
    ns(&r, &["ip", "link", "set", "br0", "up"]);
    let mut speakers = Vec::new();
    let mut neighbours = String::new();
    for i in 0..3 {
        let n = lab.node(i);
        let (inner, outer) = (format!("{}a{i}", lab.tag), format!("{}b{i}", lab.tag));
        sh(&["ip", "netns", "add", &n]).unwrap();
        ns(&n, &["ip", "link", "set", "lo", "up"]);
        sh(&[
            "ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer,
        ])
        .unwrap();
        sh(&["ip", "link", "set", &inner, "netns", &n]).unwrap();
        sh(&["ip", "link", "set", &outer, "netns", &r]).unwrap();
        ns(&r, &["ip", "link", "set", &outer, "master", "br0", "up"]);
        ns(
            &n,
            &[
                "ip",
                "addr",
                "add",
                &format!("{}/24", node_ip(i)),
                "dev",
                &inner,
            ],
        );
        ns(&n, &["ip", "link", "set", &inner, "up"]);
        let speaker = BirdSpeaker {
            routes_file: lab.dir.join(format!("vips{i}.conf")),
            socket: lab.dir.join(format!("node{i}.ctl")),
            via: None,
        };
        std::fs::write(&speaker.routes_file, "").unwrap();
        std::fs::write(speaker.routes_file_v6(), "").unwrap();
        // The README's node config, with this node's addresses.
        let conf = format!(
            "router id {ip};\nprotocol device {{}}\nprotocol static flowgate4 {{\n  ipv4;\n  \
             include \"{routes}\";\n}}\n\
             protocol bfd {{ interface \"{inner}\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
             protocol bgp upstream {{\n  local {ip} as 65001;\n  neighbor 10.77.0.1 as 65000;\n  \
             hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;\n  bfd on;\n  \
             ipv4 {{ import none; export where proto = \"flowgate4\"; }};\n}}\n",
            ip = node_ip(i),
            routes = speaker.routes_file.display(),
        );
        lab.bird(&n, &format!("node{i}"), &conf);
        neighbours += &format!(
            "protocol bgp lb{i} from lb {{ neighbor {} as 65001; }}\n",
            node_ip(i)
        );
        speakers.push(speaker);
    }
    let conf = format!(
        "router id 10.77.0.1;\nprotocol device {{}}\n\
         protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\n\
         protocol bfd {{ interface \"br0\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
         template bgp lb {{ local 10.77.0.1 as 65000; hold time 3; keepalive time 1; error wait time 1, 5; \
         connect retry time 1; bfd on; ipv4 {{ import all; export none; }}; }}\n{neighbours}"
    );
    lab.bird(&r, "router", &conf);
    speakers
}

async fn wait_hops(lab: &Lab, want: &[usize]) -> Duration {
    let want: Vec<String> = want.iter().map(|&i| node_ip(i)).collect();
    wait_until_async(LIMIT, || async { lab.next_hops() == want })
        .await
        .unwrap_or_else(|| panic!("next hops should be {want:?}, are {:?}", lab.next_hops()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_become_an_ecmp_route_that_follows_drain_and_node_loss() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED bgp_ecmp: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab {
        tag: format!("fgb{}", std::process::id()),
        dir: dir.path().to_path_buf(),
    };
    let speakers = build(&lab);

    let mut nodes = Vec::new();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for speaker in speakers {
        let control = Arc::new(ControlPlane::new(
            flowgate_driver::parse_str(CONFIG, "test").unwrap(),
            None,
        ));
        let board = Arc::new(CountersBoard::default());
        let node = Arc::new(NodeState::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tasks.push(tokio::spawn(announce::run(
            control.clone(),
            board.clone(),
            node.clone(),
            Box::new(speaker),
            async move {
                let _ = stopped.await;
            },
        )));
        // The node's data path runs.
        board.publish(
            flowgate_core::counters::Counters::new(0, 0),
            control.watch().version(),
        );
        nodes.push(node);
        stops.push(stop);
    }

    let took = wait_hops(&lab, &[0, 1, 2]).await;
    eprintln!("ECMP over three nodes {took:?} after the announcers started (BGP sessions up)");

    nodes[1].set_draining(true);
    let took = wait_hops(&lab, &[0, 2]).await;
    eprintln!("drained node out of the router's FIB in {took:?}");
    nodes[1].set_draining(false);
    wait_hops(&lab, &[0, 1, 2]).await;

    // A hung node: its BIRD frozen, so no BFD or keepalive reaches the router.
    let pid = lab.bird_pid("node2").to_string();
    sh(&["kill", "-STOP", &pid]).unwrap();
    let took = wait_hops(&lab, &[0, 1]).await;
    eprintln!("frozen node out of the router's FIB in {took:?} (BFD 3 x 100 ms)");
    assert!(
        took < Duration::from_secs(2),
        "BFD should route around a dead node in about a second, took {took:?}"
    );
    sh(&["kill", "-CONT", &pid]).unwrap();
    let took = wait_hops(&lab, &[0, 1, 2]).await;
    eprintln!("node back in the router's FIB {took:?} after it thawed");

    // A stopping node withdraws before its announcer returns.
    let stop = stops.remove(0);
    let _ = stop.send(());
    tokio::time::timeout(LIMIT, tasks.remove(0))
        .await
        .unwrap()
        .unwrap();
    wait_hops(&lab, &[1, 2]).await;
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        tokio::time::timeout(LIMIT, t).await.unwrap().unwrap();
    }
    wait_hops(&lab, &[]).await;
}
