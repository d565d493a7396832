//! Shared by the driver's end-to-end tests: a software data path fed from the control
//! plane's published tables, TCP flows to one VIP, and loopback servers to check.

#![allow(dead_code)] // each test file uses its own part

use etherparse::PacketBuilder;
use flowgate_core::pipeline::{prepare, Prepared};
use flowgate_core::{Tables, Verdict};
use flowgate_host::TablesWatch;
use flowgate_host::{Frame, ShardedEngine};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// One TCP flow to the VIP's port 80.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub client: Ipv4Addr,
    pub port: u16,
}

/// `n` distinct flows; `salt` makes disjoint sets.
pub fn flows(n: u32, salt: u8) -> Vec<Flow> {
    (0..n)
        .map(|i| Flow {
            client: Ipv4Addr::new(10, salt, (i / 200) as u8, (i % 200) as u8 + 1),
            port: 1024 + (i % 50_000) as u16,
        })
        .collect()
}

pub fn frame(flow: Flow, syn: bool, ts: Duration) -> Frame {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xfe])
        .ipv4(flow.client.octets(), VIP.octets(), 64)
        .tcp(flow.port, 80, 1000, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut data = Vec::new();
    b.write(&mut data, &[]).expect("writing to a Vec");
    Frame { ts, data }
}

/// The flow's Maglev hash under `tables` (what selects its slot).
pub fn flow_hash(tables: &Tables, flow: Flow) -> u32 {
    let hasher = flowgate_core::hash::FlowHasher::new(&tables.keys);
    match prepare(&frame(flow, true, Duration::ZERO).data, tables, &hasher) {
        Prepared::Balance(b) => b.flow.hash,
        other => panic!("flow {flow:?} is not balanced: {other:?}"),
    }
}

/// The software engine, following the control plane's published tables between bursts
/// as the daemon's data path does.
pub struct DataPath {
    pub engine: ShardedEngine,
    watch: TablesWatch,
    seen: u64,
    now: Duration,
}

impl DataPath {
    pub fn new(watch: TablesWatch, workers: usize) -> DataPath {
        let seen = watch.version();
        DataPath {
            engine: ShardedEngine::new((*watch.load()).clone(), workers),
            watch,
            seen,
            now: Duration::from_secs(1),
        }
    }

    /// The table version it runs.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Take the newest tables, if any were published; returns whether there were.
    pub fn sync(&mut self) -> bool {
        match self.watch.changed(&mut self.seen) {
            Some(t) => {
                self.engine.update_tables((*t).clone());
                true
            }
            None => false,
        }
    }

    /// One burst with a frame of every flow (SYNs or established segments), after
    /// syncing; returns each flow's verdict.
    pub fn send(&mut self, flows: &[Flow], syn: bool) -> Vec<Verdict> {
        self.sync();
        self.now += Duration::from_millis(10);
        let burst: Vec<Frame> = flows.iter().map(|&f| frame(f, syn, self.now)).collect();
        self.engine
            .process_burst(&burst)
            .into_iter()
            .map(|o| o.verdict)
            .collect()
    }

    /// Like [`DataPath::send`], but every frame must be forwarded: each flow's backend.
    pub fn backends(&mut self, flows: &[Flow], syn: bool) -> Vec<u16> {
        self.send(flows, syn)
            .into_iter()
            .zip(flows)
            .map(|(v, f)| match v {
                Verdict::Forward { backend, .. } => backend,
                other => panic!("flow {f:?} was not forwarded: {other:?}"),
            })
            .collect()
    }
}

/// Poll `cond` every 5 ms until it holds; the time it took, or `None` after `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Async [`wait_until`].
pub async fn wait_until_async<F, Fut>(limit: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// A TCP server on a loopback address that accepts and closes connections, until killed.
pub struct TcpServer {
    pub addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpServer {
    /// Listen on `ip` at `port` (0 = any free port).
    pub async fn start(ip: Ipv4Addr, port: u16) -> TcpServer {
        let listener = tokio::net::TcpListener::bind((ip, port))
            .await
            .unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        TcpServer {
            addr,
            task: Some(task),
        }
    }

    /// Stop listening: later connects are refused.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await; // the listener is dropped once the task is gone
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
