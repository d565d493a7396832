//! `flowgate ctl`: the admin API from the command line.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use flowgate_driver::admin::client;
use flowgate_driver::config::DEFAULT_ADMIN;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

#[derive(Args)]
pub struct CtlArgs {
    /// Where the daemon's admin API listens.
    #[arg(long, default_value_t = DEFAULT_ADMIN)]
    admin: SocketAddr,
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
    /// The Prometheus metrics text.
    Metrics,
}

pub fn run(args: CtlArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let admin = args.admin;
    let answer = runtime.block_on(async {
        match &args.command {
            CtlCommand::Status => client::get(admin, "/status").await,
            CtlCommand::Metrics => client::get(admin, "/metrics").await,
            CtlCommand::Reload => client::post(admin, "/reload").await,
            CtlCommand::Drain { vip, address } => {
                client::post(admin, &client::backend_path(vip, *address, "drain")).await
            }
            CtlCommand::Undrain { vip, address } => {
                client::post(admin, &client::backend_path(vip, *address, "undrain")).await
            }
            CtlCommand::Weight {
                vip,
                address,
                weight,
            } => {
                let path = client::backend_path(vip, *address, "weight");
                client::post(admin, &format!("{path}?value={weight}")).await
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
