//! `flowgate run` and `flowgate ctl` as processes: the daemon serves its admin API while it
//! replays, `ctl` drains a backend and is refused a bad reload (with the config's line),
//! SIGHUP with a bad config keeps it running, and SIGTERM stops it with a final summary.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flowgate");

fn ctl(admin: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["ctl", "--admin", admin])
        .args(args)
        .output()
        .unwrap()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn run_is_administered_by_ctl_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.path().join("flowgate.toml");
    std::fs::copy(root.join("examples/basic.toml"), &config).unwrap();
    // A free port for the admin API (released just before the daemon binds it).
    let admin = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut daemon = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(root.join("examples/basic.pcap"))
        .arg("--output")
        .arg(dir.path().join("out.pcap"))
        .args(["--admin", &admin, "--loop", "--pace", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = daemon.id();

    let start = Instant::now();
    let status = loop {
        let out = ctl(&admin, &["status"]);
        if out.status.success() {
            break out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "admin API never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["vips"][0]["name"], "web");

    let out = ctl(&admin, &["drain", "web", "198.51.100.1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&ctl(&admin, &["status"]).stdout).unwrap();
    assert_eq!(status["vips"][0]["backends"][0]["drained"], true);
    let out = ctl(&admin, &["weight", "web", "198.51.100.9", "2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no backend web/198.51.100.9"));

    // A bad config: refused by reload and by SIGHUP, with its place; the daemon runs on.
    std::fs::write(&config, "maglev_m = 4\n").unwrap();
    let out = ctl(&admin, &["reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:1:12: maglev_m 4 is not prime",
            config.display()
        )),
        "{err}"
    );
    signal(pid, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    let status: serde_json::Value =
        serde_json::from_slice(&ctl(&admin, &["status"]).stdout).unwrap();
    assert_eq!(
        status["vips"].as_array().unwrap().len(),
        2,
        "running config kept"
    );
    let metrics = ctl(&admin, &["metrics"]);
    assert!(String::from_utf8_lossy(&metrics.stdout)
        .contains("flowgate_backend_weight{vip=\"web\",backend=\"198.51.100.1\"} 0"));

    signal(pid, "-TERM");
    let start = Instant::now();
    let code = loop {
        if let Some(code) = daemon.try_wait().unwrap() {
            break code;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = daemon.wait_with_output().unwrap();
    assert!(code.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["forwarded"].as_u64().unwrap() > 0, "{summary}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("reload refused"), "{log}");
}

/// Waits (bounded) until the daemon's admin API answers `ctl status`.
fn wait_for_admin(admin: &str, daemon: &mut std::process::Child) {
    let start = Instant::now();
    while !ctl(admin, &["status"]).status.success() {
        if let Some(code) = daemon.try_wait().unwrap() {
            panic!("daemon exited early: {code}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "admin API never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctl_needs_the_daemons_token_file_to_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "s3cret-token-for-the-test\n").unwrap();
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let admin = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut daemon = Command::new(BIN)
        .args(["run", "--config"])
        .arg(root.join("examples/basic.toml"))
        .arg("--input")
        .arg(root.join("examples/basic.pcap"))
        .arg("--output")
        .arg(dir.path().join("out.pcap"))
        .args(["--admin", &admin, "--loop", "--pace", "--admin-token-file"])
        .arg(&token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Reads on loopback need no token (wait_for_admin uses `ctl status` without one).
    wait_for_admin(&admin, &mut daemon);
    let drain = ["drain", "web", "198.51.100.1"];
    let out = ctl(&admin, &drain);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("(401)"));
    let with = |file: &Path| {
        let mut args = vec!["--token-file", file.to_str().unwrap()];
        args.extend(drain);
        ctl(&admin, &args)
    };
    let out = with(&wrong);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(401)"));
    let out = with(&token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn run_refuses_a_non_loopback_admin_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(root.join("examples/basic.toml"))
        .arg("--input")
        .arg(root.join("examples/basic.pcap"))
        .arg("--output")
        .arg(dir.path().join("out.pcap"))
        .args(["--admin", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the admin API on 0.0.0.0:0") && err.contains("token"),
        "{err}"
    );
}
