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
    /// The routes' next hop: this interface (a [`Lifeline`]) instead of a blackhole, so
    /// that BIRD drops them the moment the interface goes, that is when flowgate dies.
    pub via: Option<String>,
}

impl BirdSpeaker {
    /// The routes file's text: one host route per VIP (BIRD only needs a route to export;
    /// the frames are DPDK's, not the kernel's), a blackhole or through the interface
    /// `via`, IPv4 and IPv6 apart because a static protocol has one channel.
    pub fn routes(prefixes: &[IpAddr], v6: bool, via: Option<&str>) -> String {
        let mut text = String::from("# Written by flowgate: the VIPs this node announces.\n");
        let hop = match via {
            Some(iface) => format!("via \"{iface}\""),
            None => "blackhole".to_string(),
        };
        for p in prefixes.iter().filter(|p| p.is_ipv6() == v6) {
            let len = if v6 { 128 } else { 32 };
            text += &format!("route {p}/{len} {hop};\n");
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
        let via = self.via.as_deref();
        self.write(
            &self.routes_file,
            &BirdSpeaker::routes(prefixes, false, via),
        )?;
        self.write(
            &self.routes_file_v6(),
            &BirdSpeaker::routes(prefixes, true, via),
        )?;
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

/// A TUN interface that lives exactly as long as this process: the kernel deletes a
/// non-persistent TUN device when its last descriptor closes, which a `kill -9` or a crash
/// does too. Announced routes go through it (`BirdSpeaker::via`), and BIRD's `device`
/// protocol hears the interface go over netlink at once, so the static routes become
/// unreachable and BGP withdraws them: a dead flowgate stops attracting traffic even while
/// its BIRD lives on. (A graceful stop withdraws earlier, through the routes file.)
///
/// Written with two ioctls through `libc` rather than a TUN crate: nothing is read from
/// or written to the device, only its lifetime matters.
#[derive(Debug)]
pub struct Lifeline {
    name: String,
    _device: std::os::fd::OwnedFd,
}

impl Lifeline {
    /// Create TUN interface `name` (up, no address) held by this process.
    pub fn open(name: &str) -> std::io::Result<Lifeline> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '"']) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not an interface name (1 to 15 characters, no / or quotes)"),
            ));
        }
        // SAFETY: a zeroed ifreq is valid; the name fits (checked) with its NUL.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        let os = std::io::Error::last_os_error;
        // SAFETY: plain syscalls on descriptors this function owns; `req` outlives them.
        unsafe {
            let fd = libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(os());
            }
            let device = OwnedFd::from_raw_fd(fd);
            req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
            if libc::ioctl(device.as_raw_fd(), libc::TUNSETIFF, &mut req) < 0 {
                return Err(os());
            }
            let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if sock < 0 {
                return Err(os());
            }
            let sock = OwnedFd::from_raw_fd(sock);
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(os());
            }
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) < 0 {
                return Err(os());
            }
            Ok(Lifeline {
                name: name.to_string(),
                _device: device,
            })
        }
    }

    pub fn name(&self) -> &str {
        &self.name
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
        let v4 = BirdSpeaker::routes(&p, false, None);
        assert!(v4.contains("route 10.0.0.100/32 blackhole;\n"), "{v4}");
        assert!(!v4.contains("2001"), "{v4}");
        let v6 = BirdSpeaker::routes(&p, true, None);
        assert!(v6.contains("route 2001:db8::1/128 blackhole;\n"), "{v6}");
        let v4 = BirdSpeaker::routes(&p, false, Some("fg0"));
        assert!(v4.contains("route 10.0.0.100/32 via \"fg0\";\n"), "{v4}");
    }
}
