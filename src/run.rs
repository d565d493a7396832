//! `flowgate run`: the daemon's command line. It picks the data path, either the
//! software engine replaying a pcap or, with EAL arguments after `--` (cargo feature
//! `dpdk`), DPDK ports (`flowgate_dpdk::daemon::DpdkDataPath`), hands it to
//! `flowgate_driver::daemon` (health checks, admin API, SIGHUP reloads, SIGINT / SIGTERM)
//! and prints the final counters.

use crate::report;
use anyhow::{bail, Context, Result};
use clap::Args;
use flowgate_driver::announce::{BirdSpeaker, Lifeline, Speaker};
use flowgate_driver::config::DEFAULT_ADMIN;
use flowgate_driver::etcd::{self, EtcdClient, EtcdKey};
use flowgate_driver::{admin, daemon, ControlPlane};
use flowgate_host::{DataPath, PcapDataPath, PcapOptions, ShardedEngine};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct RunArgs {
    /// The TOML config; SIGHUP and `POST /reload` re-read it. Or
    /// `etcd://HOST:PORT[,HOST:PORT...]/KEY`: the config in etcd, followed (every new
    /// revision validated and applied, a bad one refused).
    #[arg(long, short)]
    config: PathBuf,
    /// Input trace (pcap or pcapng, Ethernet); not with DPDK ports.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Where forwarded (rewritten) frames go; not with DPDK ports.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Where frames for no VIP go, untouched.
    #[arg(long)]
    passed: Option<PathBuf>,
    /// Admin API address [default: the config's `admin`, else 127.0.0.1:9090]; port 0
    /// picks a free port (the address is logged).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token [default: the config's
    /// admin_token_file]; required when the admin address is not loopback.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Serve the admin API over TLS with this PEM certificate chain (with
    /// --admin-tls-key) [default: the config's admin_tls_cert].
    #[arg(long, value_name = "FILE", requires = "admin_tls_key")]
    admin_tls_cert: Option<PathBuf>,
    /// The PEM private key of --admin-tls-cert.
    #[arg(long, value_name = "FILE", requires = "admin_tls_cert")]
    admin_tls_key: Option<PathBuf>,
    /// Worker threads, each owning a shard of the flow table.
    #[arg(long, short, default_value_t = 1)]
    workers: usize,
    /// Frames per burst; new tables are taken between bursts.
    #[arg(long, default_value_t = 64)]
    burst: usize,
    /// Replay at the capture's own pace instead of as fast as possible.
    #[arg(long)]
    pace: bool,
    /// Start the input again at its end (timestamps keep increasing) until stopped.
    #[arg(long = "loop")]
    repeat: bool,
    /// Announce the VIPs through this BIRD 2 control socket (`birdc -s`): a VIP is
    /// announced while the data path runs and one of its backends is up (with
    /// --bird-routes).
    #[arg(
        long,
        value_name = "SOCKET",
        requires = "bird_routes",
        help_heading = "BGP"
    )]
    bird_socket: Option<PathBuf>,
    /// The routes file the node's bird.conf includes in its `protocol static` (IPv6 VIPs
    /// go to the same name with `6` appended).
    #[arg(
        long,
        value_name = "FILE",
        requires = "bird_socket",
        help_heading = "BGP"
    )]
    bird_routes: Option<PathBuf>,
    /// Create this TUN interface, held open for the process's life, and announce the VIPs
    /// as routes through it: when flowgate dies, even by `kill -9`, the kernel deletes the
    /// interface and BIRD withdraws the routes at once (its `protocol device` sees it).
    #[arg(
        long,
        value_name = "IFACE",
        requires = "bird_socket",
        help_heading = "BGP"
    )]
    bird_lifeline: Option<String>,
    /// On SIGTERM, milliseconds the data path keeps forwarding after the announcements are
    /// withdrawn.
    #[arg(long, default_value_t = 5000, help_heading = "BGP")]
    drain_ms: u64,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
    /// DPDK port frames are read from.
    #[arg(
        long,
        default_value_t = 0,
        help_heading = "DPDK (after `--`: EAL arguments)"
    )]
    rx_port: u16,
    /// DPDK port forwarded frames are sent on [default: 1 if the EAL found two ports or
    /// more, else the RX port].
    #[arg(long, help_heading = "DPDK (after `--`: EAL arguments)")]
    tx_port: Option<u16>,
    /// DPDK port frames for no VIP are sent on [default: counted and freed].
    #[arg(long, help_heading = "DPDK (after `--`: EAL arguments)")]
    pass_port: Option<u16>,
    /// Mbufs in the DPDK pool (without hugepages keep it to a few thousand).
    #[arg(
        long,
        default_value_t = 8191,
        help_heading = "DPDK (after `--`: EAL arguments)"
    )]
    mbufs: u32,
    /// Spin on empty polls instead of backing off to sleep (the lowest wake-up latency,
    /// a full core per lcore even when idle).
    #[arg(long, help_heading = "DPDK (after `--`: EAL arguments)")]
    busy_poll: bool,
    /// EAL arguments: run on DPDK ports instead of a pcap input (cargo feature `dpdk`),
    /// e.g. `-- -l 0 --no-huge -m 512 --no-pci --vdev net_af_packet0,iface=eth1`.
    #[arg(last = true, value_name = "EAL ARGS")]
    eal: Vec<String>,
}

/// Refuse argument combinations before anything starts.
fn check_args(args: &RunArgs) -> Result<()> {
    if args.workers == 0 || args.burst == 0 {
        bail!("--workers and --burst must be at least 1");
    }
    if args.eal.is_empty() {
        if args.input.is_none() || args.output.is_none() {
            bail!(
                "--input and --output are required (or give EAL arguments after `--` to run on \
                 DPDK ports)"
            );
        }
        if args.busy_poll {
            bail!("--busy-poll is for DPDK ports (EAL arguments after `--`)");
        }
        return Ok(());
    }
    if !cfg!(feature = "dpdk") {
        bail!(
            "EAL arguments were given after `--`, but this flowgate was built without DPDK \
             support: rebuild with `cargo build --release --features dpdk` (needs DPDK 22.11's \
             development files: apt-get install dpdk-dev libdpdk-dev libclang-dev clang \
             pkg-config)"
        );
    }
    let pcap_only = [
        (args.input.is_some(), "--input"),
        (args.output.is_some(), "--output"),
        (args.passed.is_some(), "--passed (use --pass-port)"),
        (args.pace, "--pace"),
        (args.repeat, "--loop"),
        (args.workers != 1, "--workers"),
    ];
    if let Some((_, name)) = pcap_only.iter().find(|(given, _)| *given) {
        bail!("{name} is for pcap input; it cannot be used with DPDK ports (EAL arguments after `--`)");
    }
    if args.burst > u16::MAX as usize {
        bail!("--burst must be at most {} on DPDK ports", u16::MAX);
    }
    Ok(())
}

/// The admin API's token and TLS from the options, else from the config (its paths are
/// relative to the config file); refuses a non-loopback address without a token.
fn admin_security(
    args: &RunArgs,
    control: &ControlPlane,
    addr: SocketAddr,
) -> Result<admin::AdminSecurity> {
    let from_config = control.config().admin_security;
    // Paths in a config from etcd are relative to the working directory.
    let base = match control.config_path() {
        Some(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
        None => PathBuf::new(),
    };
    let token_file = args
        .admin_token_file
        .clone()
        .or(from_config.token_file.map(|p| base.join(p)));
    let tls_files = match (&args.admin_tls_cert, &args.admin_tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => from_config.tls.map(|(c, k)| (base.join(c), base.join(k))),
    };
    let token = token_file
        .as_deref()
        .map(admin::AdminToken::from_file)
        .transpose()?;
    if token.is_none() {
        tracing::warn!(
            admin = %addr,
            "the admin API has no token: any local user can drain, re-weight and reload \
             (give --admin-token-file)"
        );
    }
    let auth = admin::AdminAuth::new(addr, token)?;
    let tls = tls_files
        .map(|(cert, key)| admin::tls_config(&cert, &key))
        .transpose()?;
    Ok(admin::AdminSecurity { auth, tls })
}

pub fn run(args: RunArgs) -> Result<()> {
    check_args(&args)?;
    let control = Arc::new(control_plane(&args.config)?);
    let admin = args
        .admin
        .or(control.config().admin)
        .unwrap_or(DEFAULT_ADMIN);
    let security = admin_security(&args, &control, admin)?;
    let mut datapath = if args.eal.is_empty() {
        pcap_path(&args, &control)?
    } else {
        dpdk_path(&args)?
    };
    let mut speaker = match (&args.bird_socket, &args.bird_routes) {
        (Some(socket), Some(routes)) => Some(BirdSpeaker {
            routes_file: routes.clone(),
            socket: socket.clone(),
            via: args.bird_lifeline.clone(),
        }),
        _ => None,
    };
    // Routes that a killed flowgate left in the file would be announced again the moment the
    // lifeline's interface is back, before this data path runs: withdraw them first.
    if let (Some(s), Some(_)) = (&mut speaker, &args.bird_lifeline) {
        if let Err(e) = s.announce(&[]) {
            tracing::warn!(error = %e, "could not withdraw the routes of an earlier run");
        }
    }
    // Held until flowgate exits, however it exits.
    let lifeline = args
        .bird_lifeline
        .as_deref()
        .map(|name| {
            Lifeline::open(name).with_context(|| format!("creating the TUN interface {name}"))
        })
        .transpose()?;
    let node = daemon::NodeOptions {
        speaker: speaker.map(|s| Box::new(s) as Box<dyn Speaker>),
        drain: Duration::from_millis(args.drain_ms),
    };
    let done = daemon::run(control, admin, security, node, &mut *datapath)?;
    drop(lifeline);
    let summary = report::Summary::new(&done.tables, &done.counters, done.shards);
    if args.json {
        let mut value = summary.to_json();
        if let Some(io) = &done.io {
            value[io.key] = io.json.clone();
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        summary.print();
        if let Some(io) = &done.io {
            println!();
            println!("{}", io.line);
        }
    }
    Ok(())
}

/// The control plane from the config file, or from etcd when `config` is an `etcd://` URL.
fn control_plane(config: &Path) -> Result<ControlPlane> {
    let url = config.to_string_lossy();
    if !EtcdKey::is_url(&url) {
        return Ok(ControlPlane::from_file(config)?);
    }
    let key = EtcdKey::parse(&url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime to read etcd")?;
    let rev = runtime.block_on(etcd::fetch(&EtcdClient::new(key.clone())))?;
    let origin = format!("{}@{}", key.url(), rev.revision);
    let parsed = flowgate_driver::parse_str(&rev.text, &origin)?;
    tracing::info!(revision = rev.revision, url = %key.url(), "config from etcd");
    Ok(ControlPlane::from_etcd(parsed, key, rev.revision))
}

/// The software engine on a trace file.
fn pcap_path(args: &RunArgs, control: &ControlPlane) -> Result<Box<dyn DataPath>> {
    let (Some(input), Some(output)) = (&args.input, &args.output) else {
        bail!("--input and --output are required");
    };
    let engine = ShardedEngine::new((*control.tables()).clone(), args.workers);
    Ok(Box::new(PcapDataPath::new(
        Box::new(engine),
        PcapOptions {
            input: input.clone(),
            output: output.clone(),
            passed: args.passed.clone(),
            burst: args.burst,
            pace: args.pace,
            repeat: args.repeat,
        },
    )))
}

#[cfg(feature = "dpdk")]
fn dpdk_path(args: &RunArgs) -> Result<Box<dyn DataPath>> {
    use flowgate_dpdk::daemon::{DaemonConfig, DpdkDataPath};
    Ok(Box::new(DpdkDataPath::new(DaemonConfig {
        eal_args: args.eal.clone(),
        rx_port: args.rx_port,
        tx_port: args.tx_port,
        pass_port: args.pass_port,
        burst: args.burst as u16,
        mbufs: args.mbufs,
        idle: if args.busy_poll {
            flowgate_host::IdlePolicy::SPIN
        } else {
            flowgate_host::IdlePolicy::default()
        },
        ..DaemonConfig::default()
    })))
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_path(_args: &RunArgs) -> Result<Box<dyn DataPath>> {
    unreachable!("check_args refuses EAL arguments without feature dpdk")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn check(args: &[&str]) -> Result<()> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))?;
        check_args(&cli.run)
    }

    #[test]
    fn pcap_runs_need_input_and_output() {
        let e = check(&["--config", "f.toml", "--input", "in.pcap"]).unwrap_err();
        assert!(
            e.to_string().contains("--input and --output are required"),
            "{e}"
        );
        check(&["--config", "f.toml", "-i", "in.pcap", "-o", "out.pcap"]).unwrap();
    }

    #[cfg(not(feature = "dpdk"))]
    #[test]
    fn eal_arguments_without_the_feature_say_how_to_rebuild() {
        let e = check(&["--config", "f.toml", "--", "-l", "0", "--no-pci"]).unwrap_err();
        assert!(e.to_string().contains("--features dpdk"), "{e}");
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn dpdk_runs_refuse_pcap_options() {
        check(&["--config", "f.toml", "--tx-port", "1", "--", "-l", "0"]).unwrap();
        for extra in [
            ["--input", "in.pcap"],
            ["--workers", "2"],
            ["--output", "o.pcap"],
        ] {
            let mut args = vec!["--config", "f.toml"];
            args.extend(extra);
            args.extend(["--", "-l", "0"]);
            let e = check(&args).unwrap_err();
            assert!(
                e.to_string().contains("cannot be used with DPDK ports"),
                "{e}"
            );
        }
    }
}
