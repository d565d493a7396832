//! What a node announces, handed to a real BIRD 2 (Debian's `bird2`) that the test starts
//! with a control socket in a temporary directory: a VIP is in BIRD's table while the
//! data path runs and the VIP has a backend up, and leaves it when its backends are all
//! down, when the node is drained, and when the daemon stops. (The BGP sessions to
//! routers and ECMP over several nodes are the several-node test's; here BIRD's own
//! table, which its BGP protocols export, is the observable.)

mod common;

use common::wait_until_async;
use flowgate_driver::admin::{self, AdminState};
use flowgate_driver::announce::{self, BirdSpeaker, NodeState};
use flowgate_driver::health::HealthBoard;
use flowgate_driver::{BackendKey, ControlPlane};
use flowgate_host::handoff::CountersBoard;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(15);

const CONFIG: &str = "maglev_m = 1021\n[flow_table]\nsets = 1024\nways = 4\n\
    [[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nprotocol = \"tcp\"\n\
    [[vip.backend]]\naddress = \"10.1.0.1\"\nmac = \"02:00:00:00:01:01\"\n\
    [[vip]]\nname = \"api\"\naddress = \"192.0.2.11\"\nport = 80\nprotocol = \"tcp\"\n\
    [[vip.backend]]\naddress = \"10.1.0.2\"\nmac = \"02:00:00:00:01:02\"\n";

struct Bird(Child);

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn birdc(socket: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("birdc")
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// BIRD with the node's static protocols including the routes files flowgate writes.
fn start_bird(dir: &Path, speaker: &BirdSpeaker) -> Bird {
    std::fs::write(&speaker.routes_file, "").unwrap();
    std::fs::write(speaker.routes_file_v6(), "").unwrap();
    let conf = dir.join("bird.conf");
    std::fs::write(
        &conf,
        format!(
            // BIRD takes `include` only at the start of a line.
            "router id 10.255.0.1;\nprotocol device {{}}\n\
             protocol static flowgate4 {{\n  ipv4;\n  include \"{}\";\n}}\n\
             protocol static flowgate6 {{\n  ipv6;\n  include \"{}\";\n}}\n",
            speaker.routes_file.display(),
            speaker.routes_file_v6().display()
        ),
    )
    .unwrap();
    let child = Command::new("bird")
        .arg("-f")
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&speaker.socket)
        .arg("-P")
        .arg(dir.join("bird.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bird");
    Bird(child)
}

fn bird_missing() -> bool {
    ["bird", "birdc"].iter().any(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
    })
}

/// The prefixes BIRD holds from flowgate's static protocols.
fn routes(socket: &Path) -> Vec<String> {
    let text = birdc(socket, &["show", "route"]).unwrap_or_default();
    let mut r: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.contains('/'))
        .map(str::to_string)
        .collect();
    r.sort();
    r
}

async fn wait_routes(socket: &Path, want: &[&str]) {
    let found = wait_until_async(LIMIT, || async { routes(socket) == want }).await;
    assert!(
        found.is_some(),
        "BIRD should hold {want:?}, holds {:?}",
        routes(socket)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vips_are_announced_while_running_with_a_backend_up_and_withdrawn_otherwise() {
    if bird_missing() {
        eprintln!("SKIPPED: no `bird`/`birdc` (apt-get install bird2; scripts/setup does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let speaker = BirdSpeaker {
        routes_file: dir.path().join("vips.conf"),
        socket: dir.path().join("bird.ctl"),
        via: None,
    };
    let socket = speaker.socket.clone();
    let _bird = start_bird(dir.path(), &speaker);
    wait_until_async(LIMIT, || async {
        birdc(&socket, &["show", "status"]).is_some()
    })
    .await
    .expect("BIRD's control socket answers");

    let control = Arc::new(ControlPlane::new(
        flowgate_driver::parse_str(CONFIG, "test").unwrap(),
        None,
    ));
    let board = Arc::new(CountersBoard::default());
    let node = Arc::new(NodeState::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(announce::run(
        control.clone(),
        board.clone(),
        node.clone(),
        Box::new(speaker),
        async move {
            let _ = stopped.await;
        },
    ));

    // Before the data path runs: nothing, though the backends are up.
    wait_until_async(LIMIT, || async { node.speaking() })
        .await
        .unwrap();
    tokio::time::sleep(announce::EVALUATE_EVERY * 3).await;
    assert_eq!(routes(&socket), Vec::<String>::new());

    // The data path publishes its first counters: both VIPs.
    board.publish(
        flowgate_core::counters::Counters::new(0, 0),
        control.watch().version(),
    );
    wait_routes(&socket, &["192.0.2.10/32", "192.0.2.11/32"]).await;
    // The node records an announcement once the speaker has taken it, a moment after BIRD
    // shows the routes: wait for that event too.
    wait_until_async(LIMIT, || async { node.announced().len() == 2 })
        .await
        .expect("the node should record both VIPs as announced");
    // What the operator sees: /status and the metrics.
    let admin = AdminState {
        control: control.clone(),
        health: Arc::new(HealthBoard::default()),
        counters: board.clone(),
        node: node.clone(),
    };
    let status = admin::status_json(&admin);
    assert_eq!(status["node"]["bgp"], true);
    assert_eq!(status["node"]["announced"][0]["vip"], "web", "{status}");
    let metrics = admin::metrics_text(&admin).unwrap();
    assert!(
        metrics.contains("flowgate_vip_announced{vip=\"api\"} 1"),
        "{metrics}"
    );

    // Every backend of `api` down: `api` withdrawn, `web` stays.
    let api = BackendKey {
        vip: "api".into(),
        address: "10.1.0.2".parse().unwrap(),
    };
    control.set_up(&api, false).unwrap();
    wait_routes(&socket, &["192.0.2.10/32"]).await;
    control.set_up(&api, true).unwrap();
    wait_routes(&socket, &["192.0.2.10/32", "192.0.2.11/32"]).await;

    // Drained: all withdrawn; undrained: back.
    node.set_draining(true);
    wait_routes(&socket, &[]).await;
    wait_until_async(LIMIT, || async { node.announced().is_empty() })
        .await
        .expect("the node should record the withdrawal");
    let metrics = admin::metrics_text(&admin).unwrap();
    assert!(
        metrics.contains("flowgate_vip_announced{vip=\"api\"} 0"),
        "{metrics}"
    );
    node.set_draining(false);
    wait_routes(&socket, &["192.0.2.10/32", "192.0.2.11/32"]).await;

    // Stopping: withdrawn before the task ends.
    let _ = stop.send(());
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(routes(&socket), Vec::<String>::new());
}
