//! The DPDK side of `flowgate run -- <EAL args>`: the data path of a long-running balancer
//! whose tables belong to the driver's `ControlPlane`.
//!
//! [`DpdkDataPath`] is a [`DataPath`]: the daemon (`flowgate_driver::daemon`, the same one
//! that runs a pcap input) starts the control plane (health checker, admin API, SIGHUP
//! reload, SIGINT / SIGTERM) on a tokio runtime and runs it on its main thread, which
//! becomes the EAL's main lcore. [`run`] sets up the EAL, the mbuf pool and the ports, then
//! forwards until `stop` is set, taking every table version the control plane publishes
//! between bursts (one atomic load per burst) and publishing its counters for the admin API.
//!
//! The forwarding itself is [`datapath::run`]: one worker per lcore given to the EAL
//! (the main lcore only supervises when there are workers), each polling its own RX
//! queues and owning its shard of the flow table for the whole run, so a new table version (a backend going down, a
//! drain, a new weight, a reload) keeps every established flow where the contract says it
//! stays.

use crate::datapath::{self, IoCounters, LoopConfig, WorkerReport};
use crate::eal::{DpdkError, Eal};
use crate::mempool::Mempool;
use crate::port::{
    open_ports, rss_name, run_port_config, Port, PortRoles, PortStats, Reta, RssMode,
};
use crate::steer::{VipRule, VipSteering};
use flowgate_core::counters::Counters;
use flowgate_core::Tables;
use flowgate_host::datapath::{DataPath, Finished, IoReport};
use flowgate_host::handoff::{CountersBoard, TablesWatch};
use flowgate_host::idle::IdlePolicy;
use flowgate_host::EngineError;
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

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
    /// RX queues per port (`None`: one per forwarding lcore); worker `w` of `n` polls the
    /// queues `q % n == w`. With several, the port spreads frames by RSS with the
    /// contract's key and a redirection table laid out for the workers where it can.
    pub rx_queues: Option<u16>,
    /// Frames per RX burst.
    pub burst: u16,
    /// Mbufs in the pool (without hugepages keep this to a few thousand).
    pub mbufs: u32,
    /// TX attempts before unsent frames are dropped (and counted in `tx_unsent`).
    pub tx_retries: u32,
    /// How lcores back off when their polls come back empty.
    pub idle: IdlePolicy,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            eal_args: Vec::new(),
            rx_port: 0,
            tx_port: None,
            pass_port: None,
            rx_queues: None,
            burst: 32,
            mbufs: 8191,
            tx_retries: 64,
            idle: IdlePolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("the burst size must be at least 1")]
    ZeroBurst,
}

/// One port's statistics at the end of the run.
#[derive(Debug, Clone)]
pub struct PortReport {
    pub id: u16,
    pub stats: PortStats,
    pub rss: RssMode,
    pub reta: Option<Reta>,
    /// The src-IP-persistence VIPs and how each is steered (none with one RX queue).
    pub vips: Vec<VipRule>,
    pub rx_queues: u16,
    /// For the RX port: (balanced frames that arrived on their owner's queue, balanced
    /// frames handed off in software).
    pub steering: Option<(u64, u64)>,
}

impl PortReport {
    pub fn of(port: &Port) -> PortReport {
        PortReport {
            id: port.id(),
            stats: port.stats(),
            rss: port.rss(),
            reta: port.reta(),
            vips: port.vip_rules().to_vec(),
            rx_queues: port.rx_queue_count(),
            steering: None,
        }
    }

    /// As [`PortReport::of`], with the run's steering counts if `port` is its RX port.
    pub fn of_run(port: &Port, rx: u16, io: &IoCounters) -> PortReport {
        let mut r = PortReport::of(port);
        if port.id() == rx {
            r.steering = Some((io.steered, io.handed_off));
        }
        r
    }

    /// The `rss` object of a port's JSON: how the port spreads frames over queues
    /// (`mode`: single-queue, hardware, software), the hash types and redirection table
    /// for hardware RSS, and for the RX port how many balanced frames arrived on the
    /// queue of the lcore owning them (`steered`) and how many took the software
    /// hand-off (`handed_off`); `vips`: each src-IP-persistence VIP (its name, address) and
    /// whether an rte_flow rule steers it in the NIC (`steering`: `nic`) or the driver
    /// refused one (`software`, with the driver's `reason`).
    pub fn rss_json(&self) -> Value {
        let mut v = json!({ "mode": rss_name(self.rss) });
        if let RssMode::Hardware { rss_hf } = self.rss {
            v["rss_hf"] = json!(format!("{rss_hf:#x}"));
        }
        if let Some(reta) = self.reta {
            v["reta_size"] = json!(reta.size);
            v["reta_exact"] = json!(reta.exact);
        }
        if let Some((steered, handed_off)) = self.steering {
            v["steered"] = json!(steered);
            v["handed_off"] = json!(handed_off);
        }
        let vips: Vec<Value> = self
            .vips
            .iter()
            .map(|r| {
                let mut vip = json!({ "vip": r.name, "address": r.address.to_string() });
                match &r.steering {
                    VipSteering::Nic => vip["steering"] = json!("nic"),
                    VipSteering::Software { reason } => {
                        vip["steering"] = json!("software");
                        vip["reason"] = json!(reason);
                    }
                }
                vip
            })
            .collect();
        v["vips"] = json!(vips);
        v
    }

    /// One entry of the JSON summaries' `ports` list.
    pub fn json(&self) -> Value {
        let s = &self.stats;
        json!({
            "port": self.id, "rx_packets": s.rx_packets, "tx_packets": s.tx_packets,
            "rx_missed": s.rx_missed, "rx_errors": s.rx_errors, "tx_errors": s.tx_errors,
            "rx_no_mbuf": s.rx_no_mbuf, "rss": self.rss_json(), "rx_queues": self.rx_queues,
        })
    }
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
    /// Flow-table shards (worker lcores, or 1 when the main lcore does everything).
    pub shards: u32,
    /// Frames each worker lcore balanced (empty without workers).
    pub workers: Vec<WorkerReport>,
}

impl DaemonReport {
    /// The `dpdk` section of the JSON summary (the same shape `flowgate-dpdk --json` gives).
    pub fn dpdk_json(&self) -> Value {
        let ports: Vec<Value> = self.ports.iter().map(PortReport::json).collect();
        let io = &self.io;
        json!({
            "received": io.received, "sent": io.sent, "passed_sent": io.passed_sent,
            "tx_unsent": io.tx_unsent, "rewrite_no_room": io.rewrite_no_room,
            "busy_s": io.busy.as_secs_f64(), "mpps": io.mpps(),
            "steered": io.steered, "handed_off": io.handed_off,
            "lcores": self.workers.len() + 1, "shards": self.shards,
            "worker_frames": self.workers.iter().map(|w| w.frames).collect::<Vec<_>>(),
            "table_updates": self.table_updates, "ports": ports,
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

/// DPDK ports as the daemon's data path.
pub struct DpdkDataPath {
    config: DaemonConfig,
}

impl DpdkDataPath {
    pub fn new(config: DaemonConfig) -> DpdkDataPath {
        DpdkDataPath { config }
    }
}

impl DataPath for DpdkDataPath {
    fn run(
        &mut self,
        watch: &TablesWatch,
        board: &CountersBoard,
        publish_every: Duration,
        stop: &AtomicBool,
    ) -> Result<Finished, EngineError> {
        let report = run(&self.config, watch, board, publish_every, stop)?;
        Ok(Finished {
            io: Some(IoReport {
                key: "dpdk",
                json: report.dpdk_json(),
                line: report.dpdk_line(),
            }),
            tables: report.tables,
            counters: report.counters,
            shards: report.shards as usize,
        })
    }
}

/// Initialise DPDK, configure the ports and forward until `stop` is set, following
/// `watch`'s tables and publishing counters to `board` every `publish_every`. Must be
/// called on the thread that is to be the EAL's main lcore, once per process.
pub fn run(
    config: &DaemonConfig,
    watch: &TablesWatch,
    board: &CountersBoard,
    publish_every: Duration,
    stop: &AtomicBool,
) -> Result<DaemonReport, DaemonError> {
    if config.burst == 0 {
        return Err(DaemonError::ZeroBurst);
    }
    let (eal, _) = Eal::init(&config.eal_args)?;
    let pool = Arc::new(Mempool::new(&eal, "flowgate_mbufs", config.mbufs, 256)?);
    let tables = watch.load();
    let port_config = run_port_config(&eal, &tables, config.rx_queues, false);
    let roles = PortRoles {
        rx: config.rx_port,
        tx: config.tx_port,
        pass: config.pass_port,
    };
    let ports = open_ports(&eal, roles, &port_config, &pool)?;
    let loop_config = LoopConfig {
        burst: config.burst,
        tx_retries: config.tx_retries,
        publish_every,
        idle: config.idle,
        ..LoopConfig::default()
    };
    let done = datapath::run(&eal, &ports.roles(), watch, &loop_config, Some(board), stop)?;
    let mut report = DaemonReport {
        tables: done.tables,
        counters: done.counters,
        io: done.io,
        ports: Vec::new(),
        table_updates: done.table_updates,
        shards: done.shards,
        workers: done.workers,
    };
    let rx = ports.rx().id();
    report.ports = ports
        .all()
        .iter()
        .map(|p| PortReport::of_run(p, rx, &report.io))
        .collect();
    drop(ports);
    drop(pool);
    drop(eal);
    Ok(report)
}
