//! The running control plane: the one owner of the programmed state while flowgate runs.
//!
//! Every change — a health check flipping a backend, an operator draining or re-weighting
//! one, a config reload — goes through [`ControlPlane`], which edits its own copy of the
//! [`Tables`] and publishes a new version for the data path ([`TablesWatch`]). The data path
//! looks for a new version between bursts with one atomic load and swaps it in
//! (`ShardedEngine::update_tables`), keeping its flow tables.
//!
//! Two rules keep established flows where they are:
//! * **Health is a bit first.** A backend going down is published at once with only its
//!   `up` bit cleared, so its slots fall to their secondaries on the next burst (the
//!   hardware does the same with one register write); then that VIP's Maglev table is
//!   rebuilt with [`MaglevTable::rebuild_min_disruption`], treating down backends as
//!   weight 0, and published again. Since the rebuild hands a freed slot to its previous
//!   secondary first, the flows of a failed backend move once, not twice.
//! * **Indices are forever.** Flow-table entries hold global backend indices, and flow
//!   digests include the VIP index. A reload therefore keeps the index of every VIP (by
//!   name) and backend (by VIP name and address) that survives it, appends new ones after
//!   all existing indices, and leaves removed ones as tombstones: a removed backend stays in
//!   [`Tables::backends`] with `up = false` and belongs to no VIP's member list, a removed
//!   VIP stays with no backends and a service no frame can name (see [`tombstone_vip`]).
//!   Tombstones are reused only when the index space would otherwise run out.

use crate::compile::compile;
use crate::config::{self, Config, ConfigError, HealthCheck, MAX_BACKENDS, MAX_VIPS, MAX_WEIGHT};
use flowgate_core::maglev::{MaglevBackend, MaglevTable};
use flowgate_core::tables::{Backend, Vip};
use flowgate_core::Tables;
use flowgate_host::handoff::TablesPublisher;
pub use flowgate_host::handoff::TablesWatch;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

/// A backend as operators and health checks name it: the VIP's name and the backend's
/// address. Global indices are an implementation detail of the tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub vip: String,
    pub address: IpAddr,
}

impl fmt::Display for BackendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.vip, self.address)
    }
}

/// Why an operation was refused. The running state is unchanged after every error.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("no backend {0}")]
    NoSuchBackend(BackendKey),
    #[error("weight {0} is above the maximum {MAX_WEIGHT}")]
    WeightTooLarge(u32),
    /// The new config is not valid (its message is `FILE:LINE:COL: reason`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The new config is valid but cannot be applied to a running data path.
    #[error("{origin}: cannot reload: {reason}")]
    Incompatible { origin: String, reason: String },
    #[error("no config file to reload from (the control plane was started from text)")]
    NoConfigFile,
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<BackendKey>,
    pub removed: Vec<BackendKey>,
    pub kept: usize,
}

/// Operator and health state of one global backend index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BackendState {
    key: BackendKey,
    /// The weight the config gives.
    configured_weight: u32,
    /// A weight set through the admin API, until the next reload.
    weight_override: Option<u32>,
    drained: bool,
    healthy: bool,
    /// Removed by a reload: a tombstone, never selected again.
    removed: bool,
}

impl BackendState {
    /// The weight the data path sees: 0 when draining (established flows stay, no new ones).
    fn weight(&self) -> u32 {
        if self.drained || self.removed {
            0
        } else {
            self.weight_override.unwrap_or(self.configured_weight)
        }
    }

    fn up(&self) -> bool {
        self.healthy && !self.removed
    }
}

/// A backend's state as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendStatus {
    pub address: IpAddr,
    /// Global backend index (flow-table entries and counters use it).
    pub index: u16,
    pub configured_weight: u32,
    /// The weight in force (0 when drained).
    pub weight: u32,
    pub drained: bool,
    /// The last health verdict (always true without health checks).
    pub healthy: bool,
    /// The `up` bit the data path sees.
    pub up: bool,
    /// Primary Maglev slots owned now.
    pub slots: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VipStatus {
    pub name: String,
    pub index: u16,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: u8,
    pub backends: Vec<BackendStatus>,
}

/// One backend the health checker must probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckTarget {
    pub key: BackendKey,
    pub port: u16,
    pub check: HealthCheck,
}

struct State {
    config: Config,
    tables: Tables,
    /// Parallel to `tables.backends`.
    backends: Vec<BackendState>,
    /// Parallel to `tables.vips`: false for a tombstone.
    vip_alive: Vec<bool>,
}

/// Which config revisions from a shared store (etcd) this node applied and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigRevisions {
    /// The revision in force (`None`: the config did not come from a store).
    pub applied: Option<i64>,
    /// The last revision refused, with the reason.
    pub refused: Option<(i64, String)>,
    /// The store endpoint being watched, `None` while disconnected.
    pub connected: Option<String>,
}

/// The control plane: see the module documentation.
pub struct ControlPlane {
    state: Mutex<State>,
    revisions: Mutex<ConfigRevisions>,
    /// Where the config comes from when it is etcd's (the daemon follows the key).
    #[cfg(feature = "service")]
    etcd: Option<crate::etcd::EtcdKey>,
    published: TablesPublisher,
    path: Option<PathBuf>,
    /// Bumped on every reload, so the health checker re-reads its targets.
    #[cfg(feature = "service")]
    generation: tokio::sync::watch::Sender<u64>,
}

impl ControlPlane {
    /// Start from a validated config; `path` is where [`ControlPlane::reload`] re-reads it.
    pub fn new(config: Config, path: Option<PathBuf>) -> ControlPlane {
        let tables = compile(&config);
        let backends = config
            .vips
            .iter()
            .flat_map(|v| {
                v.backends.iter().map(|b| BackendState {
                    key: BackendKey {
                        vip: v.name.clone(),
                        address: b.address,
                    },
                    configured_weight: b.weight,
                    weight_override: None,
                    drained: false,
                    healthy: true,
                    removed: false,
                })
            })
            .collect();
        let vip_alive = vec![true; tables.vips.len()];
        let published = TablesPublisher::new(tables.clone());
        ControlPlane {
            state: Mutex::new(State {
                config,
                tables,
                backends,
                vip_alive,
            }),
            revisions: Mutex::new(ConfigRevisions::default()),
            #[cfg(feature = "service")]
            etcd: None,
            published,
            path,
            #[cfg(feature = "service")]
            generation: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Load and validate `path`, and start from it.
    pub fn from_file(path: &Path) -> Result<ControlPlane, ConfigError> {
        Ok(ControlPlane::new(
            config::load(path)?,
            Some(path.to_path_buf()),
        ))
    }

    /// Start from revision `revision` of the config at `key` in etcd, which the daemon then
    /// follows (`crate::etcd::follow`).
    #[cfg(feature = "service")]
    pub fn from_etcd(config: Config, key: crate::etcd::EtcdKey, revision: i64) -> ControlPlane {
        let mut control = ControlPlane::new(config, None);
        control.etcd = Some(key);
        control.record_applied(revision);
        control
    }

    /// The etcd key the config comes from, if it does.
    #[cfg(feature = "service")]
    pub fn etcd_key(&self) -> Option<&crate::etcd::EtcdKey> {
        self.etcd.as_ref()
    }

    /// The config revisions from a shared store applied and refused so far.
    pub fn revisions(&self) -> ConfigRevisions {
        self.revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Record that store revision `revision` is in force.
    pub fn record_applied(&self, revision: i64) {
        self.revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .applied = Some(revision);
    }

    /// Record that store revision `revision` was refused, and why.
    pub fn record_refused(&self, revision: i64, reason: String) {
        self.revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused = Some((revision, reason));
    }

    /// Record which store endpoint is being watched (`None`: none right now).
    pub fn set_etcd_connected(&self, endpoint: Option<String>) {
        self.revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .connected = endpoint;
    }

    /// The data path's view of the published tables.
    pub fn watch(&self) -> TablesWatch {
        self.published.watch()
    }

    /// The tables published last.
    pub fn tables(&self) -> Arc<Tables> {
        self.published.load()
    }

    /// The config in force.
    pub fn config(&self) -> Config {
        self.lock().config.clone()
    }

    /// The config file reloads read, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Changes on every reload (for the health checker to re-read [`Self::check_targets`]).
    #[cfg(feature = "service")]
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Every live backend and VIP, in index order.
    pub fn status(&self) -> Vec<VipStatus> {
        let state = self.lock();
        let t = &state.tables;
        t.vips
            .iter()
            .enumerate()
            .filter(|(v, _)| state.vip_alive[*v])
            .map(|(v, vip)| {
                let mut slots: HashMap<u16, u32> = HashMap::new();
                for s in vip.maglev.slots() {
                    *slots.entry(s.primary).or_default() += 1;
                }
                VipStatus {
                    name: vip.name.clone(),
                    index: v as u16,
                    address: vip.address,
                    port: vip.port,
                    protocol: vip.protocol,
                    backends: vip
                        .backends
                        .iter()
                        .map(|&i| {
                            let b = &state.backends[i as usize];
                            BackendStatus {
                                address: b.key.address,
                                index: i,
                                configured_weight: b.configured_weight,
                                weight: b.weight(),
                                drained: b.drained,
                                healthy: b.healthy,
                                up: t.backends[i as usize].up,
                                slots: slots.get(&i).copied().unwrap_or(0),
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The global index of a live backend.
    pub fn index_of(&self, key: &BackendKey) -> Option<u16> {
        find(&self.lock(), key)
    }

    /// The backends with health checks, and how to check each.
    pub fn check_targets(&self) -> Vec<CheckTarget> {
        let state = self.lock();
        state
            .config
            .vips
            .iter()
            .filter_map(|v| v.health.as_ref().map(|h| (v, h)))
            .flat_map(|(v, h)| {
                v.backends.iter().map(move |b| CheckTarget {
                    key: BackendKey {
                        vip: v.name.clone(),
                        address: b.address,
                    },
                    port: b.health_port.unwrap_or(h.port),
                    check: h.clone(),
                })
            })
            .collect()
    }

    /// Whether the backend's last health verdict was up.
    pub fn is_healthy(&self, key: &BackendKey) -> Result<bool, ControlError> {
        let state = self.lock();
        let i = find(&state, key).ok_or_else(|| ControlError::NoSuchBackend(key.clone()))?;
        Ok(state.backends[i as usize].healthy)
    }

    /// A health verdict. Flips the backend's `up` bit and publishes at once (the data path
    /// moves its flows to their slots' secondaries), then rebuilds the VIP's Maglev table
    /// around the change and publishes again. Returns whether anything changed.
    pub fn set_up(&self, key: &BackendKey, up: bool) -> Result<bool, ControlError> {
        let mut state = self.lock();
        let i = find(&state, key).ok_or_else(|| ControlError::NoSuchBackend(key.clone()))?;
        if !self.flip(&mut state, i, up) {
            return Ok(false);
        }
        let vip = state.tables.backends[i as usize].vip as usize;
        self.rebalance(&mut state, vip);
        Ok(true)
    }

    /// Stop sending new flows to the backend; its established flows stay.
    pub fn drain(&self, key: &BackendKey) -> Result<(), ControlError> {
        self.edit(key, |b| b.drained = true)
    }

    /// Undo [`Self::drain`].
    pub fn undrain(&self, key: &BackendKey) -> Result<(), ControlError> {
        self.edit(key, |b| b.drained = false)
    }

    /// Set the backend's weight until the next reload (0 = draining).
    pub fn set_weight(&self, key: &BackendKey, weight: u32) -> Result<(), ControlError> {
        if weight > MAX_WEIGHT {
            return Err(ControlError::WeightTooLarge(weight));
        }
        self.edit(key, |b| b.weight_override = Some(weight))
    }

    /// Re-read the config file and apply it (see [`Self::reload_config`]).
    pub fn reload(&self) -> Result<ReloadSummary, ControlError> {
        let path = self.path.as_deref().ok_or(ControlError::NoConfigFile)?;
        self.reload_config(config::load(path)?)
    }

    /// Validate `text` (errors name `origin`) and apply it.
    pub fn reload_str(&self, text: &str, origin: &str) -> Result<ReloadSummary, ControlError> {
        self.reload_config(config::parse_str(text, origin)?)
    }

    /// Apply a new config, keeping the indices of surviving VIPs and backends (see the
    /// module documentation), their health and drain state, and the Maglev slots they own
    /// as far as the new weights allow. Weights set through the API give way to the file's.
    pub fn reload_config(&self, new: Config) -> Result<ReloadSummary, ControlError> {
        let mut state = self.lock();
        let origin = || {
            self.path
                .as_ref()
                .map_or_else(|| "config".to_string(), |p| p.display().to_string())
        };
        if new.geometry != state.config.geometry {
            // The engines allocate their flow tables once; a new geometry means a restart.
            return Err(ControlError::Incompatible {
                origin: origin(),
                reason:
                    "flow_table sets/ways/choices cannot change while running; restart flowgate"
                        .into(),
            });
        }
        let (next, summary) = merge(&state, &new).map_err(|reason| ControlError::Incompatible {
            origin: origin(),
            reason,
        })?;
        *state = next;
        self.publish(&state);
        drop(state);
        #[cfg(feature = "service")]
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(
            added = summary.added.len(),
            removed = summary.removed.len(),
            kept = summary.kept,
            "config reloaded"
        );
        Ok(summary)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a state that was valid before the panicking
        // operation began (tables are edited in copies and swapped in), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, state: &State) {
        self.published.publish(state.tables.clone());
    }

    /// Step one of [`Self::set_up`]: the `up` bit alone, published.
    fn flip(&self, state: &mut State, i: u16, up: bool) -> bool {
        let b = &mut state.backends[i as usize];
        if b.healthy == up {
            return false;
        }
        b.healthy = up;
        state.tables.backends[i as usize].up = b.up();
        tracing::warn!(backend = %b.key, up, "backend health changed");
        self.publish(state);
        true
    }

    /// Step two: rebuild one VIP's Maglev table around the current weights and health.
    fn rebalance(&self, state: &mut State, vip: usize) {
        let m = state.config.maglev_m;
        let members = members(&state.tables, &state.backends, vip);
        let t = &mut state.tables.vips[vip];
        t.maglev = MaglevTable::rebuild_min_disruption(&t.maglev, m, &members);
        self.publish(state);
    }

    fn edit(
        &self,
        key: &BackendKey,
        f: impl FnOnce(&mut BackendState),
    ) -> Result<(), ControlError> {
        let mut state = self.lock();
        let i = find(&state, key).ok_or_else(|| ControlError::NoSuchBackend(key.clone()))?;
        let b = &mut state.backends[i as usize];
        let before = b.weight();
        f(b);
        let weight = b.weight();
        state.tables.backends[i as usize].weight = weight;
        tracing::info!(backend = %key, before, weight, "backend weight changed");
        let vip = state.tables.backends[i as usize].vip as usize;
        self.rebalance(&mut state, vip);
        Ok(())
    }
}

fn find(state: &State, key: &BackendKey) -> Option<u16> {
    let vip = state
        .tables
        .vips
        .iter()
        .enumerate()
        .position(|(v, t)| state.vip_alive[v] && t.name == key.vip)?;
    state.tables.vips[vip]
        .backends
        .iter()
        .copied()
        .find(|&i| state.backends[i as usize].key.address == key.address)
}

/// The Maglev members of `vip`: a backend that is down counts as weight 0, so its slots
/// go to the others while it stays a member (and gets them back, as far as the rebuild
/// can, when it comes up).
fn members(tables: &Tables, backends: &[BackendState], vip: usize) -> Vec<MaglevBackend> {
    let mut members = tables.maglev_members(vip);
    for m in &mut members {
        if !backends[m.index as usize].up() {
            m.weight = 0;
        }
    }
    members
}

/// A removed VIP's stand-in at its index: no backends, and a service no parsed frame
/// carries (the unspecified address with IP protocol 255, "reserved"), so it never
/// classifies a frame and its index is not reused for another VIP's flows.
pub fn tombstone_vip(old: &Vip) -> Vip {
    Vip {
        name: format!("(removed) {}", old.name),
        address: match old.address {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        },
        port: 0,
        protocol: 255,
        mode: old.mode,
        persistence: old.persistence,
        maglev: MaglevTable::default(),
        backends: Vec::new(),
    }
}

/// The state after applying `new` to `state`, with stable indices.
fn merge(state: &State, new: &Config) -> Result<(State, ReloadSummary), String> {
    let fresh = compile(new);
    let mut tables = Tables {
        vips: state.tables.vips.clone(),
        backends: state.tables.backends.clone(),
        ..fresh.clone()
    };
    let mut backends = state.backends.clone();
    let mut vip_alive = state.vip_alive.clone();
    let mut summary = ReloadSummary::default();

    // Old live indices by name and by key.
    let old_vips: HashMap<&str, usize> = state
        .tables
        .vips
        .iter()
        .enumerate()
        .filter(|(v, _)| state.vip_alive[*v])
        .map(|(v, t)| (t.name.as_str(), v))
        .collect();
    let old_backends: HashMap<&BackendKey, u16> = state
        .backends
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.removed)
        .map(|(i, b)| (&b.key, i as u16))
        .collect();
    let mut kept_vips = vec![false; tables.vips.len()];
    let mut kept_backends = vec![false; tables.backends.len()];

    // Indices for new VIPs and backends: after every existing one, then tombstones.
    let mut free_vips = FreeIndices::new(tables.vips.len(), MAX_VIPS, &vip_alive);
    let live: Vec<bool> = backends.iter().map(|b| !b.removed).collect();
    let mut free_backends = FreeIndices::new(tables.backends.len(), MAX_BACKENDS, &live);

    // Which VIPs are assigned where, decided first so tombstones freed by this reload are
    // not reused by it (their flows may still be in the flow tables).
    let mut vip_index = Vec::with_capacity(new.vips.len());
    for v in &new.vips {
        let i = match old_vips.get(v.name.as_str()) {
            Some(&i) => i,
            None => free_vips
                .take()
                .ok_or("too many VIPs, counting removed ones")?,
        };
        vip_index.push(i);
    }

    for ((vip, &v), f) in new.vips.iter().zip(&vip_index).zip(&fresh.vips) {
        let survived = old_vips.contains_key(vip.name.as_str());
        if v == tables.vips.len() {
            tables.vips.push(f.clone());
            vip_alive.push(true);
            kept_vips.push(false);
        }
        let mut indices = Vec::with_capacity(vip.backends.len());
        for b in &vip.backends {
            let key = BackendKey {
                vip: vip.name.clone(),
                address: b.address,
            };
            let old = old_backends.get(&key).copied();
            let i = match old {
                Some(i) => {
                    summary.kept += 1;
                    i
                }
                None => {
                    summary.added.push(key.clone());
                    free_backends
                        .take()
                        .ok_or("too many backends, counting removed ones")?
                        as u16
                }
            };
            let st = BackendState {
                key,
                configured_weight: b.weight,
                weight_override: None,
                drained: old.is_some_and(|i| state.backends[i as usize].drained),
                // A new backend starts up, as in `compile`; the checker takes it down. One
                // whose VIP is no longer checked is up: nothing would ever bring it back.
                healthy: match old {
                    Some(i) if vip.health.is_some() => state.backends[i as usize].healthy,
                    _ => true,
                },
                removed: false,
            };
            let be = Backend {
                address: b.address,
                mac: b.mac,
                weight: st.weight(),
                up: st.up(),
                vip: v as u16,
            };
            let slot = i as usize;
            if slot == tables.backends.len() {
                tables.backends.push(be);
                backends.push(st);
                kept_backends.push(true);
            } else {
                tables.backends[slot] = be;
                backends[slot] = st;
                kept_backends[slot] = true;
            }
            indices.push(i);
        }
        let previous = if survived {
            std::mem::take(&mut tables.vips[v].maglev)
        } else {
            MaglevTable::default()
        };
        tables.vips[v] = Vip {
            maglev: MaglevTable::default(),
            backends: indices,
            ..f.clone()
        };
        vip_alive[v] = true;
        kept_vips[v] = true;
        // A table of another size (maglev_m changed) is rebuilt from scratch by the call.
        let members = members(&tables, &backends, v);
        tables.vips[v].maglev =
            MaglevTable::rebuild_min_disruption(&previous, new.maglev_m, &members);
    }

    for (v, kept) in kept_vips.iter().enumerate() {
        if !kept && vip_alive[v] {
            vip_alive[v] = false;
            tables.vips[v] = tombstone_vip(&tables.vips[v]);
        }
    }
    for (i, kept) in kept_backends.iter().enumerate() {
        if !kept && !backends[i].removed {
            backends[i].removed = true;
            tables.backends[i].up = false;
            tables.backends[i].weight = 0;
            summary.removed.push(backends[i].key.clone());
        }
    }
    Ok((
        State {
            config: new.clone(),
            tables,
            backends,
            vip_alive,
        },
        summary,
    ))
}

/// Hands out indices: first `len..max`, then the tombstones (`live[i] == false`) below
/// `len`, lowest first.
struct FreeIndices {
    next: usize,
    max: usize,
    tombstones: std::vec::IntoIter<usize>,
}

impl FreeIndices {
    fn new(len: usize, max: usize, live: &[bool]) -> FreeIndices {
        let tombstones: Vec<usize> = (0..len).filter(|&i| !live[i]).collect();
        FreeIndices {
            next: len,
            max,
            tombstones: tombstones.into_iter(),
        }
    }

    fn take(&mut self) -> Option<usize> {
        if self.next < self.max {
            self.next += 1;
            Some(self.next - 1)
        } else {
            self.tombstones.next()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use flowgate_core::pipeline::select;

    fn config(backends: &[(&str, u32)]) -> String {
        let mut text = String::from(
            "maglev_m = 1021\n[[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\n\
             protocol = \"tcp\"\n",
        );
        for (address, weight) in backends {
            text += &format!(
                "[[vip.backend]]\naddress = \"{address}\"\nmac = \"02:00:00:00:00:01\"\n\
                 weight = {weight}\n"
            );
        }
        text
    }

    fn plane(backends: &[(&str, u32)]) -> ControlPlane {
        ControlPlane::new(parse_str(&config(backends), "t").unwrap(), None)
    }

    fn key(address: &str) -> BackendKey {
        BackendKey {
            vip: "web".into(),
            address: address.parse().unwrap(),
        }
    }

    const THREE: [(&str, u32); 3] = [("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)];

    #[test]
    fn the_up_bit_is_published_before_the_rebuild() {
        let control = plane(&THREE);
        let before = control.tables();
        let mut state = control.lock();
        let version = control.watch().version();
        assert!(control.flip(&mut state, 1, false));
        // Published at once with the bit alone: the Maglev table is unchanged, so every
        // slot of the failed backend falls to its secondary.
        let flipped = control.tables();
        assert_eq!(control.watch().version(), version + 1);
        assert_eq!(flipped.vips[0].maglev, before.vips[0].maglev);
        assert!(!flipped.backends[1].up);
        for (i, s) in before.vips[0].maglev.slots().iter().enumerate() {
            // A hash that lands in slot i: (hash × M) >> 32 = i.
            let hash = ((i as u64) << 32).div_ceil(u64::from(before.vips[0].maglev.len())) as u32;
            assert_eq!(before.vips[0].maglev.slot_index(hash), i as u32);
            let expected = if s.primary == 1 {
                s.secondary
            } else {
                s.primary
            };
            assert_eq!(select(&flipped, 0, hash), Some(expected), "slot {i}");
        }
        // The rebuild gives the failed backend's slots away, mostly to those secondaries.
        control.rebalance(&mut state, 0);
        drop(state);
        let rebuilt = control.tables();
        assert_eq!(control.watch().version(), version + 2);
        let (mut freed, mut to_secondary) = (0, 0);
        for (old, new) in before.vips[0]
            .maglev
            .slots()
            .iter()
            .zip(rebuilt.vips[0].maglev.slots())
        {
            assert!(new.primary != 1 && new.secondary != 1);
            if old.primary == 1 {
                freed += 1;
                to_secondary += usize::from(new.primary == old.secondary);
            } else {
                assert_eq!(new.primary, old.primary, "a healthy backend's slot moved");
            }
        }
        assert!(to_secondary * 10 >= freed * 8, "{to_secondary} of {freed}");
    }

    #[test]
    fn set_up_is_idempotent_and_unknown_backends_are_errors() {
        let control = plane(&THREE);
        let version = control.watch().version();
        assert!(!control.set_up(&key("10.0.0.1"), true).unwrap());
        assert_eq!(control.watch().version(), version, "nothing to publish");
        assert!(control.set_up(&key("10.0.0.1"), false).unwrap());
        assert!(!control.set_up(&key("10.0.0.1"), false).unwrap());
        assert!(matches!(
            control.set_up(&key("10.9.9.9"), false),
            Err(ControlError::NoSuchBackend(_))
        ));
        // Everything down: no slot has a backend that is up.
        control.set_up(&key("10.0.0.2"), false).unwrap();
        control.set_up(&key("10.0.0.3"), false).unwrap();
        let t = control.tables();
        assert!((0..1021u32).all(|h| select(&t, 0, h << 22).is_none()));
        // Up again: each backend gets its share back.
        for a in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            control.set_up(&key(a), true).unwrap();
        }
        assert!(control.status()[0]
            .backends
            .iter()
            .all(|b| b.up && b.slots > 300));
    }

    #[test]
    fn drain_weight_and_undrain() {
        let control = plane(&THREE);
        control.drain(&key("10.0.0.3")).unwrap();
        let b = &control.status()[0].backends[2];
        assert_eq!((b.weight, b.drained, b.up, b.slots), (0, true, true, 0));
        // A weight set while drained takes effect on undrain.
        control.set_weight(&key("10.0.0.3"), 2).unwrap();
        assert_eq!(control.status()[0].backends[2].slots, 0);
        control.undrain(&key("10.0.0.3")).unwrap();
        let slots: Vec<u32> = control.status()[0]
            .backends
            .iter()
            .map(|b| b.slots)
            .collect();
        assert!(slots[2] > 480 && slots[0] < 270, "{slots:?}");
        assert!(matches!(
            control.set_weight(&key("10.0.0.3"), MAX_WEIGHT + 1),
            Err(ControlError::WeightTooLarge(_))
        ));
    }

    #[test]
    fn reload_keeps_indices_and_state_of_surviving_backends() {
        let control = plane(&THREE);
        control.set_up(&key("10.0.0.1"), false).unwrap();
        control.drain(&key("10.0.0.3")).unwrap();
        // Remove .2, add .4 before .1 in the file, and put a new VIP first.
        let text = format!(
            "maglev_m = 1021\n[[vip]]\nname = \"dns\"\naddress = \"192.0.2.53\"\nport = 53\n\
             protocol = \"udp\"\n[[vip.backend]]\naddress = \"10.0.1.1\"\n\
             mac = \"02:00:00:00:00:01\"\n{}",
            config(&[("10.0.0.4", 1), ("10.0.0.1", 1), ("10.0.0.3", 5)])
                .replace("protocol = \"tcp\"\n", "protocol = \"tcp\"\n[vip.health]\n")
                .split_once("[[vip]]")
                .map(|(_, rest)| format!("[[vip]]{rest}"))
                .unwrap()
        );
        let summary = control.reload_str(&text, "new.toml").unwrap();
        assert_eq!(summary.kept, 2);
        assert_eq!(summary.removed, [key("10.0.0.2")]);
        assert_eq!(summary.added.len(), 2);
        let t = control.tables();
        // Old indices stay; new ones come after them; the removed one is a tombstone.
        assert_eq!(control.index_of(&key("10.0.0.1")), Some(0));
        assert_eq!(control.index_of(&key("10.0.0.3")), Some(2));
        assert_eq!(control.index_of(&key("10.0.0.2")), None);
        // The new VIP's backend comes first in the file, so it is numbered first.
        assert_eq!(t.vips[1].backends, [3]);
        assert_eq!(control.index_of(&key("10.0.0.4")), Some(4));
        assert_eq!(t.vips[0].name, "web", "the surviving VIP keeps index 0");
        assert_eq!(t.vips[1].name, "dns");
        assert_eq!(t.vips[0].backends, [4, 0, 2]);
        assert!(!t.backends[1].up && t.backends[1].weight == 0);
        // Health and drain state survive; the file's weight is in force (drained → 0).
        let web = &control.status()[0];
        let by_index: HashMap<u16, &BackendStatus> =
            web.backends.iter().map(|b| (b.index, b)).collect();
        assert!(!by_index[&0].up && by_index[&2].drained && by_index[&2].configured_weight == 5);
        assert!(
            by_index[&4].up && by_index[&4].slots == 1021,
            "only .4 is up and undrained"
        );
        // A reload that removes a VIP leaves an inert tombstone at its index; one that
        // stops checking a VIP brings its backends up.
        let summary = control
            .reload_str(&config(&[("10.0.0.4", 1), ("10.0.0.1", 1)]), "again.toml")
            .unwrap();
        assert_eq!(summary.removed.len(), 2);
        assert!(control.tables().backends[0].up, "unchecked backends are up");
        let t = control.tables();
        assert_eq!(t.vips.len(), 2);
        assert_eq!((t.vips[1].protocol, t.vips[1].backends.len()), (255, 0));
        assert_eq!(control.status().len(), 1);
    }

    #[test]
    fn a_bad_reload_changes_nothing() {
        let control = plane(&THREE);
        let version = control.watch().version();
        let e = control
            .reload_str("maglev_m = 100\n", "bad.toml")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad.toml:1:12: maglev_m 100 is not prime (e.g. 65537, 251, 4093)"
        );
        let geometry = config(&THREE).replace(
            "maglev_m = 1021\n",
            "maglev_m = 1021\n[flow_table]\nsets = 64\n",
        );
        let e = control.reload_str(&geometry, "geo.toml").unwrap_err();
        assert!(
            e.to_string()
                .contains("flow_table sets/ways/choices cannot change"),
            "{e}"
        );
        assert_eq!(control.watch().version(), version);
        assert!(matches!(control.reload(), Err(ControlError::NoConfigFile)));
    }
}
