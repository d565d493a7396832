//! `flowgate ctl`: the admin API from the command line.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use flowgate_driver::admin::{client, AdminToken};
use flowgate_driver::config::DEFAULT_ADMIN;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

#[derive(Args)]
pub struct CtlArgs {
    /// Where the daemon's admin API listens.
    #[arg(long, default_value_t = DEFAULT_ADMIN)]
    admin: SocketAddr,
    /// File holding the admin API's bearer token (the daemon's --admin-token-file).
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Talk HTTPS, trusting only this CA certificate (PEM) for the API's certificate.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// VIPs, backends (weight, drain, health, up), counters, as JSON.
    Status,
    /// Stop new flows to a backend; its established flows stay.
    Drain { vip: String, address: IpAddr },
    /// Undo `drain`.
    Undrain { vip: String, address: IpAddr },
    /// Set a backend's weight until the next reload.
    Weight {
        vip: String,
        address: IpAddr,
        weight: u32,
    },
    /// Re-read the config file; a bad one is refused and the running one stays.
    Reload,
    /// Withdraw this node's BGP announcements (it keeps forwarding what reaches it).
    NodeDrain,
    /// Announce again (every VIP with a backend up).
    NodeUndrain,
    /// The Prometheus metrics text.
    Metrics,
    /// Validate a config file and, if it is good, write it to the etcd key every node
    /// follows (`flowgate run --config etcd://...`); prints the revision it got.
    Push {
        file: std::path::PathBuf,
        /// etcd://HOST:PORT[,HOST:PORT...]/KEY
        #[arg(long, value_name = "URL")]
        etcd: String,
    },
}

/// `ctl push`: a config that does not validate never reaches etcd.
async fn push(file: &std::path::Path, url: &str) -> Result<()> {
    use flowgate_driver::etcd::{EtcdClient, EtcdKey};
    let key = EtcdKey::parse(url)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    flowgate_driver::parse_str(&text, &file.display().to_string())?;
    let revision = EtcdClient::new(key.clone()).put(&text).await?;
    println!(
        "pushed {} to {} at revision {revision}",
        file.display(),
        key.url()
    );
    Ok(())
}

pub fn run(args: CtlArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    if let CtlCommand::Push { file, etcd } = &args.command {
        return runtime.block_on(push(file, etcd));
    }
    let admin = args.admin;
    let token = args
        .token_file
        .as_deref()
        .map(AdminToken::from_file)
        .transpose()?;
    let api = client::AdminClient::new(admin, token, args.tls_ca.as_deref())?;
    let answer = runtime.block_on(async {
        match &args.command {
            CtlCommand::Status => api.get("/status").await,
            CtlCommand::Metrics => api.get("/metrics").await,
            CtlCommand::Reload => api.post("/reload").await,
            CtlCommand::NodeDrain => api.post("/node/drain").await,
            CtlCommand::NodeUndrain => api.post("/node/undrain").await,
            CtlCommand::Push { .. } => unreachable!("push talks to etcd, handled above"),
            CtlCommand::Drain { vip, address } => {
                api.post(&client::backend_path(vip, *address, "drain"))
                    .await
            }
            CtlCommand::Undrain { vip, address } => {
                api.post(&client::backend_path(vip, *address, "undrain"))
                    .await
            }
            CtlCommand::Weight {
                vip,
                address,
                weight,
            } => {
                let path = client::backend_path(vip, *address, "weight");
                api.post(&format!("{path}?value={weight}")).await
            }
        }
    });
    let answer = answer.with_context(|| format!("admin API at {admin}"))?;
    if !answer.is_success() {
        // The API's errors are {"error": "..."}; show just the reason.
        let reason = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(answer.body);
        bail!("{} ({})", reason, answer.status);
    }
    let text = match serde_json::from_str::<serde_json::Value>(&answer.body) {
        Ok(v) => serde_json::to_string_pretty(&v)? + "\n",
        Err(_) => answer.body,
    };
    match std::io::stdout().write_all(text.as_bytes()) {
        // `flowgate ctl metrics | head` closes the pipe early; that is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}
