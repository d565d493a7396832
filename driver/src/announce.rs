//! What this node announces to the routers, through a BGP speaker that is not flowgate.
//!
//! flowgate decides, the speaker (BIRD 2) speaks BGP: a VIP is announced while the data
//! path runs and the VIP has at least one backend up, and withdrawn when it has none, when
//! the node is drained (`POST /node/drain`), and first thing on SIGTERM (the daemon then
//! waits its drain time before it stops the data path, so that the routers move new flows
//! to the other nodes while this one still forwards the ones in flight).
//!
//! [`Speaker`] is the hand-off: the whole set of prefixes to announce, each time it
//! changes. [`BirdSpeaker`] writes them as static routes into a file that the node's BIRD
//! config includes in a `protocol static`, and asks BIRD to reconfigure through its control
//! socket (`birdc configure`): BIRD exports them to its BGP sessions, and withdraws them
//! when they leave the file. See ARCHITECTURE.md for why BIRD.

use crate::control::ControlPlane;
use flowgate_host::handoff::CountersBoard;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the announcer re-evaluates (health changes, reloads, drain).
pub const EVALUATE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("writing the routes file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running birdc: {0}")]
    Birdc(#[source] std::io::Error),
    #[error("birdc configure refused: {0}")]
    Refused(String),
}

/// A BGP speaker flowgate hands its announcements to.
pub trait Speaker: Send {
    /// Announce exactly `prefixes` (host routes for the VIPs), withdrawing any other.
    fn announce(&mut self, prefixes: &[IpAddr]) -> Result<(), AnnounceError>;
}

/// BIRD 2: a routes file included by a `protocol static`, and `birdc configure`.
#[derive(Debug, Clone)]
pub struct BirdSpeaker {
    /// The file the node's `bird.conf` includes inside its static protocols.
    pub routes_file: PathBuf,
    /// BIRD's control socket (`bird -s`).
    pub socket: PathBuf,
}

impl BirdSpeaker {
    /// The routes file's text: one blackhole host route per VIP (BIRD only needs a route
    /// to export; the frames are DPDK's, not the kernel's), IPv4 and IPv6 apart because a
    /// static protocol has one channel.
    pub fn routes(prefixes: &[IpAddr], v6: bool) -> String {
        let mut text = String::from("# Written by flowgate: the VIPs this node announces.\n");
        for p in prefixes.iter().filter(|p| p.is_ipv6() == v6) {
            let len = if v6 { 128 } else { 32 };
            text += &format!("route {p}/{len} blackhole;\n");
        }
        text
    }

    fn write(&self, path: &std::path::Path, text: &str) -> Result<(), AnnounceError> {
        // Written aside and renamed, so BIRD never reads half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| AnnounceError::Write {
                path: path.into(),
                source,
            })
    }

    /// The IPv6 routes file: the IPv4 one's name with `6` appended.
    pub fn routes_file_v6(&self) -> PathBuf {
        let mut name = self.routes_file.clone().into_os_string();
        name.push("6");
        name.into()
    }
}

impl Speaker for BirdSpeaker {
    fn announce(&mut self, prefixes: &[IpAddr]) -> Result<(), AnnounceError> {
        self.write(&self.routes_file, &BirdSpeaker::routes(prefixes, false))?;
        self.write(&self.routes_file_v6(), &BirdSpeaker::routes(prefixes, true))?;
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .arg("configure")
            .output()
            .map_err(AnnounceError::Birdc)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // birdc exits 0 even when BIRD refuses the config; its answer says.
        if !out.status.success() || !text.contains("Reconfigur") {
            return Err(AnnounceError::Refused(format!(
                "{}{}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// What the node announces and whether it is drained: shared with the admin API.
#[derive(Debug, Default)]
pub struct NodeState {
    draining: AtomicBool,
    /// (VIP name, address) announced now.
    announced: Mutex<Vec<(String, IpAddr)>>,
    /// Whether a speaker is configured at all.
    speaking: AtomicBool,
}

impl NodeState {
    /// Withdraw everything and keep it withdrawn (`true`), or announce again (`false`).
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The VIPs announced now (name, address).
    pub fn announced(&self) -> Vec<(String, IpAddr)> {
        self.announced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the node hands announcements to a BGP speaker.
    pub fn speaking(&self) -> bool {
        self.speaking.load(Ordering::SeqCst)
    }
}

/// The VIPs to announce now: none while draining or before the data path runs (it has
/// published its counters once), else every VIP with a backend up.
pub fn wanted(
    control: &ControlPlane,
    board: &CountersBoard,
    node: &NodeState,
) -> Vec<(String, IpAddr)> {
    if node.draining() || board.load().tables_version == 0 {
        return Vec::new();
    }
    control
        .status()
        .into_iter()
        .filter(|v| v.backends.iter().any(|b| b.up))
        .map(|v| (v.name, v.address))
        .collect()
}

/// Keep `speaker` announcing what [`wanted`] says until `stopped`, then withdraw all.
pub async fn run(
    control: Arc<ControlPlane>,
    board: Arc<CountersBoard>,
    node: Arc<NodeState>,
    speaker: Box<dyn Speaker>,
    stopped: impl Future<Output = ()>,
) {
    tokio::pin!(stopped);
    node.speaking.store(true, Ordering::SeqCst);
    let speaker = Arc::new(Mutex::new(speaker));
    // `None`: not told the speaker anything yet (so the first pass always writes, and a
    // failed hand-off is retried).
    let mut told: Option<Vec<(String, IpAddr)>> = None;
    let mut tick = tokio::time::interval(EVALUATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = &mut stopped => true,
            _ = tick.tick() => false,
        };
        let want = if stopping {
            Vec::new()
        } else {
            wanted(&control, &board, &node)
        };
        if told.as_ref() != Some(&want) {
            let s = speaker.clone();
            let prefixes: Vec<IpAddr> = want.iter().map(|(_, a)| *a).collect();
            let done = tokio::task::spawn_blocking(move || {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .announce(&prefixes)
            })
            .await;
            match done {
                Ok(Ok(())) => {
                    tracing::info!(vips = ?want, "announced");
                    *node.announced.lock().unwrap_or_else(|p| p.into_inner()) = want.clone();
                    told = Some(want);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "BGP speaker: announcement not taken; retrying")
                }
                Err(e) => tracing::error!(error = %e, "announcement task failed"),
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_routes_are_host_routes_by_family() {
        let p: Vec<IpAddr> = vec![
            "10.0.0.100".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        let v4 = BirdSpeaker::routes(&p, false);
        assert!(v4.contains("route 10.0.0.100/32 blackhole;\n"), "{v4}");
        assert!(!v4.contains("2001"), "{v4}");
        let v6 = BirdSpeaker::routes(&p, true);
        assert!(v6.contains("route 2001:db8::1/128 blackhole;\n"), "{v6}");
    }
}
