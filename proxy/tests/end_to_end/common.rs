//! What the end-to-end tests share: backends (hyper servers on 127.0.0.1:0 that the tests
//! start and kill), a proxy started from a config text, and clients.

use bytes::Bytes;
use flowgate_proxy::Proxy;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Bound on every wait in these tests: generous for a loaded 2-core CI machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A test backend. Paths: `/health` (200 while `healthy`), `/echo` (the request head as
/// JSON), `/status/N` (answers N), `/ws` (WebSocket-style upgrade, then echoes bytes),
/// `/gate` (answers when the test opens the gate), anything else: its name. Every answer carries `Server`, `X-Powered-By` and
/// `X-Backend-Id` for the hiding tests.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub healthy: Arc<AtomicBool>,
    /// Requests answered, `/health` excluded.
    pub requests: Arc<AtomicU64>,
    /// Request paths seen, `/health` excluded.
    pub paths: Arc<std::sync::Mutex<Vec<String>>>,
    /// `/gate` answers once this is notified.
    pub gate: Arc<tokio::sync::Notify>,
    /// [`Backend::kill`]'s request to the accept task, with the channel it acknowledges on.
    stop: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(name, listener)
    }

    /// Serve on a given listener (to restart on a known port).
    pub fn serve(name: &str, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let requests = Arc::new(AtomicU64::new(0));
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let state = (
            name.to_string(),
            healthy.clone(),
            requests.clone(),
            paths.clone(),
            gate.clone(),
        );
        let (stop, mut stopped) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        let task = tokio::spawn(async move {
            // Connections live in the set: aborting the accept task drops it, which cuts
            // every open connection, as a crashed server would.
            let mut connections = JoinSet::new();
            let ack = loop {
                let accepted = tokio::select! {
                    ack = stopped.recv() => break ack,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else {
                    continue;
                };
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| answer(req, state.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            };
            // Killed: the listener closes, then every connection is cut and gone (an
            // abort alone only schedules the drop) before the test goes on.
            drop(listener);
            connections.shutdown().await;
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            healthy,
            requests,
            paths,
            gate,
            stop,
            task,
        }
    }

    /// Stop at once: the listener closes and open connections are cut; returns when they
    /// are closed, so the next request through the proxy cannot reach this backend.
    pub async fn kill(&self) {
        let (ack, done) = tokio::sync::oneshot::channel();
        if self.stop.send(ack).await.is_ok() {
            let _ = done.await;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type State = (
    String,
    Arc<AtomicBool>,
    Arc<AtomicU64>,
    Arc<std::sync::Mutex<Vec<String>>>,
    Arc<tokio::sync::Notify>,
);

async fn answer(
    mut req: Request<Incoming>,
    (name, healthy, requests, paths, gate): State,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let response = Response::builder()
        .header("server", "secret-backend/1.0")
        .header("x-powered-by", "PHP/5.1")
        .header("x-backend-id", name.clone());
    if path == "/health" {
        let ok = healthy.load(Ordering::Relaxed);
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return Ok(response
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    paths.lock().unwrap().push(path.clone());
    if path == "/gate" {
        let opened = gate.notified();
        requests.fetch_add(1, Ordering::Relaxed);
        opened.await;
        return Ok(response
            .body(Full::new(Bytes::from("through the gate")))
            .unwrap());
    }
    requests.fetch_add(1, Ordering::Relaxed);
    if path == "/ws" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(io) = upgrade.await {
                let mut io = TokioIo::new(io);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(response
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        return Ok(response
            .status(status)
            .body(Full::new(Bytes::from(format!(
                "backend {name} says {code}"
            ))))
            .unwrap());
    }
    if path == "/echo" {
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .keys()
            .map(|k| {
                let all: Vec<String> = req
                    .headers()
                    .get_all(k)
                    .iter()
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .collect();
                (k.to_string(), all.join(", ").into())
            })
            .collect();
        let version = format!("{:?}", req.version());
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json = serde_json::json!({
            "backend": name,
            "version": version,
            "headers": headers,
            "body_len": body.len(),
        });
        return Ok(response
            .body(Full::new(Bytes::from(json.to_string())))
            .unwrap());
    }
    Ok(response.body(Full::new(Bytes::from(name))).unwrap())
}

/// A proxy running from `config` (written to a fresh folder, which the returned guard
/// keeps; files for the config go there too).
pub struct Running {
    pub proxy: Proxy,
    pub dir: tempfile::TempDir,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.listeners[0])
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("proxy.toml")
    }

    /// Replace the config file (for reloads).
    pub fn rewrite(&self, config: &str) {
        std::fs::write(self.config_path(), config).unwrap();
    }
}

pub async fn start_in(dir: tempfile::TempDir, config: &str) -> Running {
    std::fs::write(dir.path().join("proxy.toml"), config).unwrap();
    let proxy = Proxy::start(&dir.path().join("proxy.toml"))
        .await
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\n{config}"));
    Running { proxy, dir }
}

pub async fn start(config: &str) -> Running {
    start_in(tempfile::tempdir().unwrap(), config).await
}

/// `[[pool]]` text with `backends` and extra pool keys.
pub fn pool(name: &str, balance: &str, extra: &str, backends: &[&Backend]) -> String {
    let mut text = format!("[[pool]]\nname = \"{name}\"\nbalance = \"{balance}\"\n{extra}\n");
    for b in backends {
        text += &format!("[[pool.backend]]\naddress = \"{}\"\n", b.addr);
    }
    text
}

/// A config with one plain listener, one route `/` to pool `web`, and `rest` (pools,
/// limits, ...). The admin API listens on an ephemeral port.
pub fn plain(rest: &str) -> String {
    format!(
        "admin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n[[route]]\npath_prefix = \"/\"\npool = \"web\"\n{rest}"
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// GET `url`, returning status and body text.
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Wait until `check` holds, looking again after each `tick` of a short interval, at most
/// `PATIENCE`: for states the proxy reaches on its own (a health verdict).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tick.tick().await;
    }
}

/// Send raw bytes on a new connection and read until the proxy closes it (bounded). A
/// connection the proxy refuses may be reset under the write: that reads as "".
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    if stream.write_all(request).await.is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("the proxy kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}
