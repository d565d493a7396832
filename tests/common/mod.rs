//! Helpers of the tests that build networks in namespaces (dpdk_netns, multinode): commands
//! in namespaces, threads moved into them with setns(2), a backend's HTTP server that names
//! itself in every answer, and the client side of a long-lived HTTP/1.1 connection.

#![allow(dead_code)] // each test binary uses its own part of these

use socket2::{Domain, Protocol, Socket, Type};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A server's accept loop ends after this at the latest.
pub const SERVE_FOR: Duration = Duration::from_secs(240);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a command; Err carries its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ip -n NS ARGS...` (or `ip ARGS` for an empty NS); panics with ip's message on failure.
pub fn ip(ns: &str, args: &str) {
    let mut all: Vec<&str> = Vec::new();
    if !ns.is_empty() {
        all.extend(["-n", ns]);
    }
    all.extend(args.split_whitespace());
    if let Err(e) = run("ip", &all) {
        panic!("{e}");
    }
}

pub fn in_ns_cmd(ns: &str, program: &str, args: &str) {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend(args.split_whitespace());
    if let Err(e) = run("ip", &all) {
        panic!("{e}");
    }
}

pub fn enter_netns(name: &str) -> io::Result<()> {
    let f = File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: plain syscall on an open namespace file; only this thread moves.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `f` on a thread inside network namespace `ns`. Sockets it creates stay in that
/// namespace whichever thread uses them later.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// One backend's HTTP server: answers every request with `backend=N`.
pub struct Server {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

pub fn serve_connection(mut s: TcpStream, id: usize) {
    let body = format!("backend={id}\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    for _ in 0..10_000 {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..end + 4);
                break;
            }
            if buf.len() > 16 * 1024 {
                return;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        if s.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

impl Server {
    pub fn start(ns: &str, id: usize) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (ready, started) = mpsc::channel();
        let (ns, stop2, conns2) = (ns.to_string(), stop.clone(), conns.clone());
        let accept = thread::spawn(move || {
            let listener = enter_netns(&ns)
                .and_then(|()| TcpListener::bind("0.0.0.0:80"))
                .and_then(|l| l.set_nonblocking(true).map(|()| l));
            let listener = match listener {
                Ok(l) => {
                    let _ = ready.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("server in {ns}: {e}")));
                    return;
                }
            };
            let deadline = Instant::now() + SERVE_FOR;
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                        if let Ok(c) = s.try_clone() {
                            conns2.lock().unwrap().push(c);
                        }
                        thread::spawn(move || serve_connection(s, id));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            // The listener closes here: new connections are refused from now on.
        });
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("server thread start")
            .unwrap_or_else(|e| panic!("{e}"));
        Server {
            stop,
            conns,
            accept: Some(accept),
        }
    }

    /// Stop as a killed server process would: no listener, every connection closed.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// flowgate, killed if the test ends before it stops.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A TCP connection from `src` (an address of the client namespace; call on a thread in it).
pub fn connect_from(src: Ipv4Addr, dst: SocketAddrV4) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.bind(&SocketAddrV4::new(src, 0).into())?;
    sock.connect_timeout(&dst.into(), CONNECT_TIMEOUT)?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// One HTTP request on an open connection; returns the number of the backend that answered.
pub fn ask(s: &mut TcpStream) -> io::Result<usize> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while buf.len() < 4096 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = &buf[end + 4..];
            if let Some(nl) = body.iter().position(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&body[..nl]);
                return text
                    .strip_prefix("backend=")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| io::Error::other(format!("unexpected body {text:?}")));
            }
        }
        match s.read(&mut chunk)? {
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Err(io::Error::other("response too long"))
}

/// A new connection, one request, closed.
pub fn fetch(src: Ipv4Addr, dst: SocketAddrV4) -> io::Result<usize> {
    let mut s = connect_from(src, dst)?;
    ask(&mut s)
}
