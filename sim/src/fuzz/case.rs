//! A differential-fuzzing case: a config within the hardware profile, the configs its
//! reloads swap in, the control events and the frames. Written to and read from a
//! directory (`config.toml`, `reload-N.toml`, `events.toml`, `trace.pcap`, `case.toml`,
//! and `stream.toml` when the hardware's output sees backpressure),
//! the same files `flowgate replay --config config.toml --events events.toml -i
//! trace.pcap` takes.

use flowgate_host::pcap_io::{read_pcap_file, write_pcap_file, Frame, PcapError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A config as the fuzzer writes it (the keys of `examples/hw-small.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSpec {
    pub own_mac: String,
    pub encap_src_v4: String,
    pub encap_src_v6: String,
    pub hash_key: String,
    pub maglev_m: u32,
    pub flow_table: FlowTableSpec,
    pub timeouts: TimeoutsSpec,
    pub vip: Vec<VipSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTableSpec {
    pub sets: u32,
    pub ways: u32,
    /// Candidate sets per flow: the hardware's count (`program::HW_CHOICES`), which a
    /// config for it must state (the software default is 2).
    pub choices: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsSpec {
    pub tcp: u64,
    pub tcp_embryonic: u64,
    pub udp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipSpec {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub protocol: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    pub persistence: String,
    pub backend: Vec<BackendSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSpec {
    pub address: String,
    pub mac: String,
    pub weight: u32,
}

/// One `[[event]]` of an events file (`flowgate_driver::events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSpec {
    pub at_ms: u64,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EventsFile {
    #[serde(default)]
    event: Vec<EventSpec>,
}

/// Random `m_axis_tready` for the hardware engine (`stream.toml`; no file: always ready):
/// ready in `ready_percent` % of the clocks, drawn by xorshift32 from `ready_seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub ready_seed: u32,
    pub ready_percent: u8,
}

impl StreamSpec {
    /// As the simulators take it.
    pub fn backpressure(self) -> crate::hw::Backpressure {
        crate::hw::Backpressure {
            // xorshift32 stays at 0 from 0.
            seed: self.ready_seed.max(1),
            ready_percent: self.ready_percent,
        }
    }
}

/// What a case directory says about itself (`case.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseMeta {
    /// The design it runs through (`top`, `wide-top`).
    pub design: String,
    /// The seed it was generated from (before shrinking).
    pub seed: u64,
    /// What differed, or, once understood, what the bug was.
    pub note: String,
}

/// A whole case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub config: ConfigSpec,
    /// The configs reload events swap in: `reloads[i]` is `reload-{i}.toml`.
    pub reloads: Vec<ConfigSpec>,
    pub events: Vec<EventSpec>,
    pub frames: Vec<Frame>,
    /// Backpressure on the hardware's output, if any.
    pub stream: Option<StreamSpec>,
}

/// Why a case directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error("{path}: {reason}")]
    Toml { path: PathBuf, reason: String },
}

/// The file name of reload `i`.
pub fn reload_name(i: usize) -> String {
    format!("reload-{i}.toml")
}

fn write(path: &Path, text: &str) -> Result<(), CaseError> {
    std::fs::write(path, text).map_err(|source| CaseError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String, CaseError> {
    std::fs::read_to_string(path).map_err(|source| CaseError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn to_toml<T: Serialize>(value: &T, path: &Path) -> Result<String, CaseError> {
    toml::to_string(value).map_err(|e| CaseError::Toml {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn from_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CaseError> {
    toml::from_str(&read(path)?).map_err(|e| CaseError::Toml {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl Case {
    /// The events file's text.
    pub fn events_toml(&self) -> String {
        toml::to_string(&EventsFile {
            event: self.events.clone(),
        })
        .unwrap_or_default()
    }

    /// Write the case into `dir` (created if need be); `meta` too when given.
    pub fn write_dir(&self, dir: &Path, meta: Option<&CaseMeta>) -> Result<(), CaseError> {
        std::fs::create_dir_all(dir).map_err(|source| CaseError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let config = dir.join("config.toml");
        write(&config, &to_toml(&self.config, &config)?)?;
        for (i, r) in self.reloads.iter().enumerate() {
            let path = dir.join(reload_name(i));
            write(&path, &to_toml(r, &path)?)?;
        }
        let events = dir.join("events.toml");
        write(
            &events,
            &to_toml(
                &EventsFile {
                    event: self.events.clone(),
                },
                &events,
            )?,
        )?;
        write_pcap_file(dir.join("trace.pcap"), &self.frames)?;
        if let Some(stream) = &self.stream {
            let path = dir.join("stream.toml");
            write(&path, &to_toml(stream, &path)?)?;
        }
        if let Some(meta) = meta {
            let path = dir.join("case.toml");
            write(&path, &to_toml(meta, &path)?)?;
        }
        Ok(())
    }

    /// Read a case written by [`Case::write_dir`].
    pub fn read_dir(dir: &Path) -> Result<Case, CaseError> {
        let config: ConfigSpec = from_toml(&dir.join("config.toml"))?;
        let events: EventsFile = from_toml(&dir.join("events.toml"))?;
        let mut reloads = Vec::new();
        while dir.join(reload_name(reloads.len())).is_file() {
            reloads.push(from_toml(&dir.join(reload_name(reloads.len())))?);
        }
        let frames = read_pcap_file(dir.join("trace.pcap"))?;
        let stream = match dir.join("stream.toml") {
            p if p.is_file() => Some(from_toml(&p)?),
            _ => None,
        };
        Ok(Case {
            config,
            reloads,
            events: events.event,
            frames,
            stream,
        })
    }

    /// The `case.toml` of a case directory.
    pub fn read_meta(dir: &Path) -> Result<CaseMeta, CaseError> {
        from_toml(&dir.join("case.toml"))
    }
}
