//! The DPDK side of `flowgate run -- <EAL args>`: the data path of a long-running balancer
//! whose tables belong to the driver's `ControlPlane`.
//!
//! `flowgate run` starts the control plane (health checker, admin API, SIGHUP reload,
//! SIGINT / SIGTERM) on a tokio runtime and calls [`run`] on its main thread, which becomes
//! the EAL's main lcore. [`run`] sets up the EAL, the mbuf pool and the ports, then forwards
//! until `stop` is set, taking every table version the control plane publishes between
//! bursts (one atomic load per burst) and publishing its counters for the admin API.
//!
//! The flow table lives as long as the run: a new table version (a backend going down, a
//! drain, a new weight, a reload) keeps every established flow where the contract says it
//! stays. Only a reload that adds VIPs or backends beyond the current index space starts a
//! new flow table, because a [`Shard`]'s counters are sized for the tables it was made for.

use crate::datapath::{Handled, IoCounters, Shard};
use crate::eal::{DpdkError, Eal};
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::port::{Port, PortConfig, PortStats, RssMode};
use flowgate_core::counters::Counters;
use flowgate_core::hash::FlowHasher;
use flowgate_core::pipeline::prepare;
use flowgate_core::rewrite::MAX_FRAME_LEN;
use flowgate_core::{Tables, Verdict};
use flowgate_driver::admin::CountersBoard;
use flowgate_driver::TablesWatch;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the daemon uses DPDK.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// EAL arguments (what follows `--` on the command line).
    pub eal_args: Vec<String>,
    /// Port frames are read from.
    pub rx_port: u16,
    /// Port forwarded frames are sent on; `None`: 1 when the EAL found two ports or more,
    /// else the RX port.
    pub tx_port: Option<u16>,
    /// Port frames for no VIP are sent on; `None`: they are counted and freed.
    pub pass_port: Option<u16>,
    /// Frames per RX burst.
    pub burst: u16,
    /// Mbufs in the pool (without hugepages keep this to a few thousand).
    pub mbufs: u32,
    /// How often the counters are published for the admin API.
    pub counters_every: Duration,
    /// TX attempts before unsent frames are dropped (and counted in `tx_unsent`).
    pub tx_retries: u32,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            eal_args: Vec::new(),
            rx_port: 0,
            tx_port: None,
            pass_port: None,
            burst: 32,
            mbufs: 8191,
            counters_every: Duration::from_millis(200),
            tx_retries: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("the EAL found no port: give --vdev or PCI devices after `--`")]
    NoPort,
    #[error("the burst size must be at least 1")]
    ZeroBurst,
}

/// One port's statistics at the end of the run.
#[derive(Debug, Clone)]
pub struct PortReport {
    pub id: u16,
    pub stats: PortStats,
    pub rss: RssMode,
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub struct DaemonReport {
    /// The tables in force at the end (the summary names VIPs and backends from them).
    pub tables: Arc<Tables>,
    pub counters: Counters,
    pub io: IoCounters,
    pub ports: Vec<PortReport>,
    /// Table versions taken from the control plane after the first.
    pub table_updates: u64,
    /// New flow tables started because a reload grew the index space.
    pub flow_table_restarts: u64,
}

impl DaemonReport {
    /// The `dpdk` section of the JSON summary (the same shape `flowgate-dpdk --json` gives).
    pub fn dpdk_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| {
                let s = &p.stats;
                json!({
                    "port": p.id, "rx_packets": s.rx_packets, "tx_packets": s.tx_packets,
                    "rx_missed": s.rx_missed, "rx_errors": s.rx_errors, "tx_errors": s.tx_errors,
                    "rx_no_mbuf": s.rx_no_mbuf, "rss": rss_name(p.rss),
                })
            })
            .collect();
        let io = &self.io;
        json!({
            "received": io.received, "sent": io.sent, "passed_sent": io.passed_sent,
            "tx_unsent": io.tx_unsent, "rewrite_no_room": io.rewrite_no_room,
            "busy_s": io.busy.as_secs_f64(), "mpps": io.mpps(), "lcores": 1,
            "table_updates": self.table_updates,
            "flow_table_restarts": self.flow_table_restarts, "ports": ports,
        })
    }

    /// One line for the text summary.
    pub fn dpdk_line(&self) -> String {
        let io = &self.io;
        format!(
            "dpdk: received {}  sent {}  passed sent {}  tx unsent {}  no room {}  table updates {}",
            io.received,
            io.sent,
            io.passed_sent,
            io.tx_unsent,
            io.rewrite_no_room,
            self.table_updates
        )
    }
}

fn rss_name(rss: RssMode) -> String {
    match rss {
        RssMode::SingleQueue => "single-queue".to_string(),
        RssMode::Hardware { rss_hf } => format!("hardware (rss_hf {rss_hf:#x})"),
        RssMode::Software => "software".to_string(),
    }
}

/// Initialise DPDK, configure the ports and forward until `stop` is set, following
/// `watch`'s tables and publishing counters to `board`. Must be called on the thread that
/// is to be the EAL's main lcore, once per process.
pub fn run(
    config: &DaemonConfig,
    watch: &TablesWatch,
    board: &CountersBoard,
    stop: &AtomicBool,
) -> Result<DaemonReport, DaemonError> {
    if config.burst == 0 {
        return Err(DaemonError::ZeroBurst);
    }
    let (eal, _) = Eal::init(&config.eal_args)?;
    let pool = Arc::new(Mempool::new(&eal, "flowgate_mbufs", config.mbufs, 256)?);
    let count = eal.port_count();
    if count == 0 {
        return Err(DaemonError::NoPort);
    }
    let tx_id = config
        .tx_port
        .unwrap_or(if count >= 2 { 1 } else { config.rx_port });
    let tables = watch.load();
    let mut rss_key = [0u8; 40];
    rss_key.copy_from_slice(&tables.keys.rss[..40]);
    let port_config = PortConfig {
        rss_key: Some(rss_key),
        ..PortConfig::default()
    };
    // Each distinct port is configured once, whatever roles it plays.
    let mut ids = vec![config.rx_port, tx_id];
    ids.extend(config.pass_port);
    ids.sort_unstable();
    ids.dedup();
    let ports: Vec<Port> = ids
        .iter()
        .map(|&id| Port::configure(&eal, id, &port_config, &pool))
        .collect::<Result<_, _>>()?;
    let by_id = |id: u16| {
        ports
            .iter()
            .find(|p| p.id() == id)
            .expect("configured above")
    };
    let mut report = forward(
        &eal,
        by_id(config.rx_port),
        by_id(tx_id),
        config.pass_port.map(by_id),
        config,
        watch,
        board,
        stop,
    );
    report.ports = ports
        .iter()
        .map(|p| PortReport {
            id: p.id(),
            stats: p.stats(),
            rss: p.rss(),
        })
        .collect();
    drop(ports);
    drop(pool);
    drop(eal);
    Ok(report)
}

fn send_all(port: &Port, frames: &mut Vec<Mbuf>, retries: u32) -> (u64, u64) {
    let mut sent = 0;
    for _ in 0..=retries {
        if frames.is_empty() {
            break;
        }
        sent += port.tx_burst(0, frames) as u64;
    }
    let unsent = frames.len() as u64;
    frames.clear();
    (sent, unsent)
}

/// The counters of a shard sized for `tables`, and those of shards retired before it.
struct Tally {
    shard: Shard,
    dims: (usize, usize),
    retired: Counters,
    restarts: u64,
}

impl Tally {
    fn new(tables: &Tables) -> Tally {
        Tally {
            shard: Shard::new(tables, 0, 1),
            dims: (tables.vips.len(), tables.backends.len()),
            retired: Counters::new(0, 0),
            restarts: 0,
        }
    }

    /// Take new tables; a grown index space needs a shard (and flow table) sized for it.
    fn update(&mut self, tables: &Tables) {
        let dims = (tables.vips.len(), tables.backends.len());
        if dims.0 > self.dims.0 || dims.1 > self.dims.1 {
            let old = std::mem::replace(&mut self.shard, Shard::new(tables, 0, 1));
            self.retired.merge(old.counters());
            self.dims = dims;
            self.restarts += 1;
        }
    }

    fn total(&self) -> Counters {
        let mut total = self.retired.clone();
        total.merge(self.shard.counters());
        total
    }
}

/// The forwarding loop of `datapath::run` on one lcore, with the tables re-read between
/// bursts. When `datapath::run` follows a `TablesWatch` itself, this becomes a call to it.
#[allow(clippy::too_many_arguments)]
fn forward(
    eal: &Eal,
    rx_port: &Port,
    tx_port: &Port,
    pass_port: Option<&Port>,
    config: &DaemonConfig,
    watch: &TablesWatch,
    board: &CountersBoard,
    stop: &AtomicBool,
) -> DaemonReport {
    let mut seen = watch.version();
    let mut tables = watch.load();
    let mut hasher = FlowHasher::new(&tables.keys);
    let mut tally = Tally::new(&tables);
    let mut table_updates = 0;
    let mut io = IoCounters::default();
    let burst = config.burst.max(1);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut fwd: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut pass: Vec<Mbuf> = Vec::with_capacity(burst as usize);
    let mut out = Vec::with_capacity(MAX_FRAME_LEN);
    let mut scratch = Vec::new();
    let hz = eal.tsc_hz().max(1);
    let tsc_start = eal.tsc_cycles();
    let mut first_rx: Option<Instant> = None;
    let mut published = Instant::now();
    board.publish(tally.total());

    while !stop.load(Ordering::Relaxed) {
        if let Some(new) = watch.changed(&mut seen) {
            if new.keys != tables.keys {
                hasher = FlowHasher::new(&new.keys);
            }
            tally.update(&new);
            tables = new;
            table_updates += 1;
        }
        if published.elapsed() >= config.counters_every {
            board.publish(tally.total());
            published = Instant::now();
        }
        let n = rx_port.rx_burst(0, &mut rx, burst);
        if n == 0 {
            continue;
        }
        first_rx.get_or_insert_with(Instant::now);
        io.received += n as u64;
        // Live traffic: flow-table time is the TSC in milliseconds since the start.
        let now = ((eal.tsc_cycles().wrapping_sub(tsc_start) as u128 * 1000) / hz as u128) as u32;
        for mut m in rx.drain(..) {
            let frame = m.bytes(&mut scratch);
            let prepared = prepare(frame, &tables, &hasher);
            let verdict = match tally.shard.handle(frame, &prepared, now, &tables, &mut out) {
                Handled::Done(v) => v,
                Handled::OtherShard(_) => unreachable!("a single shard owns every set"),
            };
            match verdict {
                Verdict::Forward { .. } => match m.write(&out) {
                    Ok(()) => fwd.push(m),
                    Err(_) => io.rewrite_no_room += 1,
                },
                Verdict::Pass if pass_port.is_some() => pass.push(m),
                Verdict::Pass | Verdict::Drop(_) => {}
            }
        }
        let (sent, unsent) = send_all(tx_port, &mut fwd, config.tx_retries);
        io.sent += sent;
        io.tx_unsent += unsent;
        if let Some(p) = pass_port {
            let (sent, unsent) = send_all(p, &mut pass, config.tx_retries);
            io.passed_sent += sent;
            io.tx_unsent += unsent;
        }
        io.busy = first_rx.map(|t| t.elapsed()).unwrap_or_default();
    }
    let counters = tally.total();
    board.publish(counters.clone());
    DaemonReport {
        tables,
        counters,
        io,
        ports: Vec::new(),
        table_updates,
        flow_table_restarts: tally.restarts,
    }
}
