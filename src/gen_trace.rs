//! `flowgate gen-trace`: a thin CLI over `flowgate_traces::gen`.

use anyhow::{bail, Context, Result};
use clap::Args;
use flowgate_core::hash::{FlowHasher, Persistence};
use flowgate_core::parse::{parse, Parsed};
use flowgate_core::Tables;
use flowgate_host::shard::SetSplit;
use flowgate_traces::{generate, write_pcap_file, SynFlood, TraceSpec, VipTarget};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct GenTraceArgs {
    /// Output pcap file.
    #[arg(long, short)]
    out: PathBuf,
    /// Aim the traffic at the VIPs of this config.
    #[arg(long, short, required_unless_present = "vip")]
    config: Option<PathBuf>,
    /// A VIP to aim at, as PROTO:ADDRESS:PORT (e.g. tcp:192.0.2.10:80, udp:[2001:db8::53]:53).
    #[arg(long, conflicts_with = "config")]
    vip: Vec<String>,
    /// Random seed: the same seed and options give the same file, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Approximate number of frames (the preset mix: flows, ~5% SYN flood, ~1% malformed,
    /// 2% for no VIP). The options below override parts of it.
    #[arg(long, default_value_t = 2000)]
    frames: u32,
    /// Number of client flows.
    #[arg(long)]
    flows: Option<u32>,
    /// Distinct client addresses.
    #[arg(long)]
    clients: Option<u32>,
    /// SYN-flood packets from random spoofed sources to the first TCP VIP (0 = none).
    #[arg(long)]
    syn_flood: Option<u32>,
    /// SYN-flood rate in packets per second.
    #[arg(long)]
    syn_flood_rate: Option<u32>,
    /// Malformed frames mixed in (each malformed case at least once when ≥ 24).
    #[arg(long)]
    malformed: Option<u32>,
    /// Frames for no VIP mixed in.
    #[arg(long)]
    passthrough: Option<u32>,
    /// Fraction of flows over IPv6 (needs an IPv6 VIP).
    #[arg(long)]
    ipv6_fraction: Option<f64>,
    /// Fraction of flows carried in VLAN tags.
    #[arg(long)]
    vlan_fraction: Option<f64>,
    /// Fraction of UDP datagrams sent as IP fragments.
    #[arg(long)]
    fragment_fraction: Option<f64>,
    /// Zipf exponent of flow sizes.
    #[arg(long)]
    zipf: Option<f64>,
    /// Largest flow, in packets.
    #[arg(long)]
    max_packets: Option<u32>,
    /// Trace duration over which flows start, in seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Also write the trace split over this many RX queues as a NIC would spread it for
    /// `flowgate-dpdk` with as many worker lcores: RSS (Toeplitz with the config's key over
    /// the 5-tuple of TCP and UDP, the addresses of other frames and fragments) and the
    /// redirection table flowgate programs (queue = the worker owning the flow-table set,
    /// `set % queues`). Frames that are not IP go to queue 0. Files: OUT with `.qN.pcap`
    /// for `.pcap`, one per queue, for net_pcap's `rx_pcap=` (one per queue).
    #[arg(long, requires = "config", value_parser = clap::value_parser!(u32).range(1..=64))]
    rss_queues: Option<u32>,
}

fn parse_vip(text: &str) -> Result<VipTarget> {
    let (proto, rest) = text
        .split_once(':')
        .with_context(|| format!("--vip {text}: expected PROTO:ADDRESS:PORT"))?;
    let addr: std::net::SocketAddr = rest
        .parse()
        .with_context(|| format!("--vip {text}: bad ADDRESS:PORT (IPv6 in brackets)"))?;
    Ok(match proto {
        "tcp" => VipTarget::tcp(addr.ip(), addr.port()),
        "udp" => VipTarget::udp(addr.ip(), addr.port()),
        other => bail!("--vip {text}: protocol {other:?} is neither tcp nor udp"),
    })
}

pub fn run(args: &GenTraceArgs) -> Result<()> {
    let mut tables = None;
    let vips: Vec<VipTarget> = match &args.config {
        Some(path) => {
            let config = flowgate_driver::load(path)?;
            let compiled = flowgate_driver::compile(&config);
            let vips = VipTarget::for_tables(&compiled);
            tables = Some(compiled);
            vips
        }
        None => args
            .vip
            .iter()
            .map(|v| parse_vip(v))
            .collect::<Result<_>>()?,
    };
    let mut spec = TraceSpec::mixed(vips, args.frames);
    spec.seed = args.seed;
    if let Some(v) = args.flows {
        spec.flows = v;
    }
    if let Some(v) = args.clients {
        spec.clients = v;
    }
    if let Some(v) = args.malformed {
        spec.malformed = v;
    }
    if let Some(v) = args.passthrough {
        spec.passthrough = v;
    }
    if let Some(v) = args.ipv6_fraction {
        spec.ipv6_fraction = v;
    }
    if let Some(v) = args.vlan_fraction {
        spec.vlan_fraction = v;
    }
    if let Some(v) = args.fragment_fraction {
        spec.fragment_fraction = v;
    }
    if let Some(v) = args.zipf {
        spec.zipf_exponent = v;
    }
    if let Some(v) = args.max_packets {
        spec.max_packets_per_flow = v;
    }
    if let Some(secs) = args.duration {
        if !(secs.is_finite() && secs > 0.0) {
            bail!("--duration {secs}: must be a positive number of seconds");
        }
        spec.duration_us = (secs * 1e6) as u64;
    }
    match args.syn_flood {
        Some(0) => spec.syn_flood = None,
        Some(packets) => {
            let vip = spec
                .vips
                .iter()
                .position(|v| v.protocol == 6)
                .context("--syn-flood needs a TCP VIP")?;
            let rate_pps = args.syn_flood_rate.unwrap_or(100_000);
            spec.syn_flood = Some(SynFlood {
                vip,
                packets,
                start_us: spec.duration_us / 2,
                rate_pps,
            });
        }
        None => {
            if let (Some(rate), Some(flood)) = (args.syn_flood_rate, spec.syn_flood.as_mut()) {
                flood.rate_pps = rate;
            }
        }
    }
    let frames = generate(&spec)?;
    write_pcap_file(&args.out, &frames)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "gen-trace: wrote {} frames to {}",
        frames.len(),
        args.out.display()
    );
    if let (Some(queues), Some(tables)) = (args.rss_queues, &tables) {
        let hasher = FlowHasher::new(&tables.keys);
        let mut parts = vec![Vec::new(); queues as usize];
        for f in frames {
            let q = rss_queue(tables, &hasher, &f.data, queues);
            parts[q as usize].push(f);
        }
        for (q, part) in parts.iter().enumerate() {
            let path = queue_path(&args.out, q);
            write_pcap_file(&path, part).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "gen-trace: queue {q}: {} frames to {}",
                part.len(),
                path.display()
            );
        }
    }
    Ok(())
}

/// `OUT.pcap` → `OUT.qN.pcap`.
fn queue_path(out: &Path, q: usize) -> PathBuf {
    let stem = out.with_extension("");
    PathBuf::from(format!("{}.q{q}.pcap", stem.display()))
}

/// The RX queue a NIC with flowgate's RSS key and redirection table gives `frame`: the
/// NIC hashes the 5-tuple whatever the VIP's persistence (so a src-IP-persistence VIP's
/// frames may land on a queue whose worker does not own their set: the data path hands
/// those off), and the RETA maps the hash to the owner of its flow-table set.
fn rss_queue(tables: &Tables, hasher: &FlowHasher, frame: &[u8], queues: u32) -> u32 {
    let Ok(Parsed::Ip(p)) = parse(frame) else {
        return 0;
    };
    let nic_hash = hasher.flow_hash(&p, Persistence::FiveTuple, 0).hash;
    SetSplit::new(queues, &tables.geometry).owner(tables.geometry.set_of(nic_hash))
}
