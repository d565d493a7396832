//! `flowgate proxy` as a process: it says where it listens, forwards, answers `flowgate
//! ctl` (status, reload, metrics), reloads on SIGHUP (a bad config refused with its line,
//! the running one kept), and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_flowgate");
const PATIENCE: Duration = Duration::from_secs(30);

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The next stderr line containing `needle`, waiting at most PATIENCE.
fn wait_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with '{needle}' on stderr: {e}"),
        }
    }
}

fn config(route_prefix: &str, backend: &str) -> String {
    format!(
        "admin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"{route_prefix}\"\npool = \"web\"\n\
         [[pool]]\nname = \"web\"\nbalance = \"round-robin\"\n\
         [[pool.backend]]\naddress = \"{backend}\"\n"
    )
}

/// One HTTP/1.1 request on a new connection; the status line.
fn status_line(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or("").to_string()
}

#[test]
fn proxy_forwards_answers_ctl_reloads_on_sighup_and_stops_on_sigterm() {
    forwards_answers_reloads_and_stops(None);
}

/// The same on one worker, where the proxy runs tokio's current-thread scheduler
/// (`TOKIO_WORKER_THREADS=1`, as `scripts/bench-proxy` runs it).
#[test]
fn proxy_on_one_worker_thread_forwards_reloads_and_stops_the_same() {
    forwards_answers_reloads_and_stops(Some("1"));
}

fn forwards_answers_reloads_and_stops(workers: Option<&str>) {
    // A one-answer backend on a thread: enough to see requests go through.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut s in backend.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config("/", &backend_addr)).unwrap();
    let mut proxy = Command::new(BIN);
    if let Some(n) = workers {
        proxy.env("TOKIO_WORKER_THREADS", n);
    }
    let mut proxy = proxy
        .args(["proxy", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = proxy.id();
    let (tx, lines) = mpsc::channel();
    let stderr = proxy.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = wait_line(&lines, "listening on");
    // "flowgate proxy: listening on [127.0.0.1:PORT], admin API on 127.0.0.1:PORT"
    let listen = started
        .split('[')
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap()
        .to_string();
    let admin = started.rsplit(' ').next().unwrap().to_string();

    assert_eq!(status_line(&listen, "/a"), "HTTP/1.1 200 OK");
    let ctl = |args: &[&str]| {
        Command::new(BIN)
            .args(["ctl", "--admin", &admin])
            .args(args)
            .output()
            .unwrap()
    };
    let status = ctl(&["status"]);
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["pools"][0]["name"], "web");
    let metrics = ctl(&["metrics"]);
    assert!(String::from_utf8_lossy(&metrics.stdout).contains("flowgate_proxy_requests_total"));

    // SIGHUP with a bad config: refused with its line, still serving the old routes.
    std::fs::write(&path, config("no-slash", &backend_addr)).unwrap();
    signal(pid, "-HUP");
    let refused = wait_line(&lines, "reload refused");
    assert!(refused.contains("proxy.toml:5:"), "{refused}");
    assert_eq!(status_line(&listen, "/a"), "HTTP/1.1 200 OK");
    // `ctl reload` says the same.
    let out = ctl(&["reload"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("proxy.toml:5:"));

    // SIGHUP with a good config: only /b/ routes now.
    std::fs::write(&path, config("/b/", &backend_addr)).unwrap();
    signal(pid, "-HUP");
    wait_line(&lines, "config reloaded");
    assert_eq!(status_line(&listen, "/a"), "HTTP/1.1 404 Not Found");
    assert_eq!(status_line(&listen, "/b/x"), "HTTP/1.1 200 OK");

    signal(pid, "-TERM");
    wait_line(&lines, "stopped");
    assert!(proxy.wait().unwrap().success());
}
