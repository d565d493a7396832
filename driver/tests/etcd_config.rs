//! The config from etcd, against a real single-member etcd on loopback that the test
//! starts (Debian's `etcd-server`): each new revision of the key is applied, a bad one is
//! refused with its reason and the running config kept, the node keeps its config while
//! etcd is down and follows the key again once etcd is back.

mod common;

use common::wait_until_async;
use flowgate_driver::etcd::{self, EtcdClient, EtcdKey};
use flowgate_driver::parse_str;
use flowgate_driver::ControlPlane;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Every wait is for an event; this is only the bound past which the test fails.
const LIMIT: Duration = Duration::from_secs(20);

fn config(weights: &[u32]) -> String {
    let mut text = "maglev_m = 1021\n[flow_table]\nsets = 1024\nways = 4\n\
         [[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nprotocol = \"tcp\"\n"
        .to_string();
    for (i, w) in weights.iter().enumerate() {
        text += &format!(
            "  [[vip.backend]]\n  address = \"10.1.0.{}\"\n  mac = \"02:00:00:00:01:{:02x}\"\n  weight = {w}\n",
            i + 1,
            i + 1
        );
    }
    text
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member on loopback, killed on drop.
struct Etcd {
    child: Child,
}

impl Etcd {
    fn start(dir: &Path, client: u16, peer: u16) -> Etcd {
        Etcd::member(
            dir,
            "m0",
            client,
            peer,
            &format!("m0=http://127.0.0.1:{peer}"),
        )
    }

    /// Member `name` of the cluster `initial` (`name=peer URL,...`).
    fn member(dir: &Path, name: &str, client: u16, peer: u16, initial: &str) -> Etcd {
        let c = format!("http://127.0.0.1:{client}");
        let p = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", name, "--data-dir"])
            .arg(dir)
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", initial])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        Etcd { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn etcd_missing() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
}

/// Until a write goes through (etcd has elected itself leader).
async fn put_when_ready(client: &EtcdClient, text: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match client.put(text).await {
            Ok(rev) => return rev,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("etcd never ready: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn weights(control: &ControlPlane) -> Vec<u32> {
    control.config().vips[0]
        .backends
        .iter()
        .map(|b| b.weight)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_are_applied_bad_ones_refused_and_etcd_loss_survived() {
    if etcd_missing() {
        eprintln!("SKIPPED: no `etcd` binary (apt-get install etcd-server; scripts/setup does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (free_port(), free_port());
    let mut server = Etcd::start(dir.path(), client_port, peer_port);
    let url = format!("etcd://127.0.0.1:{client_port}/flowgate/config");
    let key = EtcdKey::parse(&url).unwrap();
    let client = EtcdClient::new(key.clone());

    let first = put_when_ready(&client, &config(&[1, 1])).await;
    let rev = etcd::fetch(&client).await.unwrap();
    assert_eq!(rev.revision, first);
    let control = Arc::new(ControlPlane::from_etcd(
        parse_str(&rev.text, "etcd").unwrap(),
        key.clone(),
        rev.revision,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn(etcd::follow(control.clone(), client.clone(), async move {
        let _ = stopped.await;
    }));

    // A new revision (a backend added, a weight changed) is applied.
    let second = client.put(&config(&[1, 3, 2])).await.unwrap();
    let took = wait_until_async(LIMIT, || async {
        control.revisions().applied == Some(second)
    })
    .await
    .unwrap_or_else(|| panic!("revision {second} not applied: {:?}", control.revisions()));
    eprintln!("revision applied {took:?} after the put");
    assert_eq!(weights(&control), [1, 3, 2]);
    let version = control.watch().version();

    // A bad one is refused, with FILE:LINE:COL naming the revision; nothing changes.
    let bad = client
        .put(&config(&[1, 3]).replace("weight = 3", "weight = \"heavy\""))
        .await
        .unwrap();
    wait_until_async(LIMIT, || async {
        control.revisions().refused.is_some_and(|(n, _)| n == bad)
    })
    .await
    .unwrap_or_else(|| panic!("revision {bad} not refused: {:?}", control.revisions()));
    let revisions = control.revisions();
    let reason = revisions.refused.unwrap().1;
    assert!(
        reason.contains(&format!("{url}@{bad}:")),
        "the reason names the key and revision: {reason}"
    );
    assert_eq!(revisions.applied, Some(second), "the running config stays");
    assert_eq!(weights(&control), [1, 3, 2]);
    assert_eq!(control.watch().version(), version, "no tables published");

    // etcd gone: the node notices, keeps its config.
    server.kill();
    wait_until_async(LIMIT, || async { control.revisions().connected.is_none() })
        .await
        .expect("the lost watch is noticed");
    assert_eq!(control.revisions().applied, Some(second));
    assert_eq!(weights(&control), [1, 3, 2]);

    // etcd back (same data): the node reconnects and follows the key again.
    let _server = Etcd::start(dir.path(), client_port, peer_port);
    let third = put_when_ready(&client, &config(&[2, 2, 2])).await;
    wait_until_async(LIMIT, || async {
        control.revisions().applied == Some(third)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "revision {third} not applied after reconnecting: {:?}",
            control.revisions()
        )
    });
    assert_eq!(weights(&control), [2, 2, 2]);

    let _ = stop.send(());
    tokio::time::timeout(LIMIT, follower)
        .await
        .expect("the follower stops when asked")
        .unwrap();
}

#[tokio::test]
async fn a_missing_key_says_how_to_write_one() {
    if etcd_missing() {
        eprintln!("SKIPPED: no `etcd` binary (apt-get install etcd-server; scripts/setup does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (free_port(), free_port());
    let _server = Etcd::start(dir.path(), client_port, peer_port);
    let url = format!("etcd://127.0.0.1:{client_port}/flowgate/none");
    let client = EtcdClient::new(EtcdKey::parse(&url).unwrap());
    put_when_ready(
        &EtcdClient::new(EtcdKey::parse(&format!("etcd://127.0.0.1:{client_port}/other")).unwrap()),
        "x",
    )
    .await;
    let e = etcd::fetch(&client).await.unwrap_err().to_string();
    assert!(e.contains("flowgate ctl push"), "{e}");
}

async fn all_applied(nodes: &[Arc<ControlPlane>], revision: i64) -> Duration {
    let mut last = Duration::ZERO;
    for n in nodes {
        let t = wait_until_async(LIMIT, || async { n.revisions().applied == Some(revision) })
            .await
            .unwrap_or_else(|| panic!("revision {revision} not applied: {:?}", n.revisions()));
        last = last.max(t);
    }
    last
}

/// Three nodes follow one key on a three-member cluster: every revision reaches all of
/// them (how long after the put the last one had it is printed), a bad one is refused by
/// all, and killing the member they watch changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_three_members_agree_and_survive_a_member_loss() {
    if etcd_missing() {
        eprintln!("SKIPPED: no `etcd` binary (apt-get install etcd-server; scripts/setup does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members: Vec<Etcd> = ports
        .iter()
        .enumerate()
        .map(|(i, &(c, p))| {
            let name = format!("m{i}");
            Etcd::member(&dir.path().join(&name), &name, c, p, &initial)
        })
        .collect();
    let endpoints = ports
        .iter()
        .map(|(c, _)| format!("127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let key = EtcdKey::parse(&format!("etcd://{endpoints}/flowgate/config")).unwrap();
    let client = EtcdClient::new(key.clone());
    put_when_ready(&client, &config(&[1, 1])).await;
    let rev = etcd::fetch(&client).await.unwrap();

    let mut stops = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let control = Arc::new(ControlPlane::from_etcd(
            parse_str(&rev.text, "etcd").unwrap(),
            key.clone(),
            rev.revision,
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(etcd::follow(control.clone(), client.clone(), async move {
            let _ = stopped.await;
        }));
        nodes.push(control);
    }

    let second = client.put(&config(&[1, 3, 2])).await.unwrap();
    let spread = all_applied(&nodes, second).await;
    eprintln!("revision {second} applied by all three nodes within {spread:?} of the put");
    for n in &nodes {
        assert_eq!(weights(n), [1, 3, 2]);
    }

    let bad = client.put("maglev_m = \"x\"\n").await.unwrap();
    for n in &nodes {
        wait_until_async(LIMIT, || async {
            n.revisions().refused.is_some_and(|(r, _)| r == bad)
        })
        .await
        .unwrap_or_else(|| panic!("revision {bad} not refused: {:?}", n.revisions()));
        assert_eq!(n.revisions().applied, Some(second));
        assert_eq!(weights(n), [1, 3, 2]);
    }

    // The member every node watches (the first listed) dies: they move on, and the next
    // revision reaches all of them.
    members[0].kill();
    let third = put_when_ready(&client, &config(&[2, 2, 2])).await;
    let spread = all_applied(&nodes, third).await;
    eprintln!("one member of three killed: revision {third} applied by all within {spread:?}");
    for n in &nodes {
        assert_eq!(weights(n), [2, 2, 2]);
        assert_ne!(
            n.revisions().connected.as_deref(),
            Some(key.endpoints[0].as_str()),
            "watching a live member"
        );
    }
    for s in stops {
        let _ = s.send(());
    }
}
