//! The TOML configuration: parsing, validation, and errors that point at the offending text.
//!
//! Parsing happens in two steps. serde reads the text into `raw` structs whose validated
//! values are `toml::Spanned`, so every later check still knows where its value was written;
//! [`parse_str`] then turns the raw form into [`Config`], in which every address, MAC,
//! prefix, key and limit has been checked. Every error, whether TOML syntax, a serde type
//! mismatch, an unknown key or a semantic rule, reads `FILE:LINE:COL: reason`, so an operator
//! can jump to it; nothing here panics on any input text.
//!
//! ```toml
//! own_mac = "02:00:00:00:00:fe"    # all globals are optional
//! maglev_m = 65537
//! [[vip]]
//! name = "web"
//! address = "192.0.2.10"
//! port = 80
//! protocol = "tcp"
//!   [[vip.backend]]
//!   address = "198.51.100.1"
//!   mac = "02:00:00:00:00:01"
//! ```
//!
//! `examples/basic.toml` documents every key of the data path. The daemon's keys:
//!
//! ```toml
//! admin = "127.0.0.1:9090"   # admin API address (default; `flowgate run --admin` wins)
//! admin_token_file = "admin.token"  # bearer token for the admin API (relative to this
//!                            # file); required when `admin` is not loopback
//! admin_tls_cert = "admin.crt"      # optional: serve the admin API over TLS (PEM chain
//! admin_tls_key = "admin.key"       # and key, relative to this file; both or neither)
//! [[vip]]
//! # ...
//!   [vip.health]             # optional: without it, backends are never checked
//!   kind = "http"            # "tcp" (connect) or "http" (GET); default "tcp"
//!   port = 8080              # default: the VIP's port (required for an any-port VIP,
//!                            # unless every backend sets health_port)
//!   path = "/healthz"        # http only; default "/"
//!   expect_status = 200      # http only; default 200
//!   interval_ms = 2000       # default 2000
//!   timeout_ms = 1000        # default 1000 (or interval_ms if shorter); <= interval_ms
//!   rise = 2                 # consecutive successes to come up; default 2
//!   fall = 3                 # consecutive failures to go down; default 3
//!   [[vip.backend]]
//!   # ...
//!   health_port = 8081       # optional: check this port instead of health.port
//! ```
//!
//! A backend then goes down between `(fall - 1) × interval_ms` and `fall × interval_ms +
//! timeout_ms` after it stops answering, and comes back after `rise` good checks.

use flowgate_core::flow_table::{Geometry, Timeouts};
use flowgate_core::hash::{HashKeys, Persistence, KEY_LEN};
use flowgate_core::maglev::DEFAULT_M;
use flowgate_core::rewrite::{EncapSource, Mode, ModeSpec};
use flowgate_core::Tables;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use thiserror::Error;
use toml::Spanned;

/// Most backends in one config: global backend indices are `u16`, and
/// `flowgate_core::maglev::NO_BACKEND` (65535) marks an empty Maglev slot half.
pub const MAX_BACKENDS: usize = 65534;
/// Most VIPs in one config: VIP indices are `u16`, and 65535 is kept free as "no VIP".
pub const MAX_VIPS: usize = 65534;
/// Largest backend weight (the hardware stores weights in 16 bits).
pub const MAX_WEIGHT: u32 = 65535;
/// Most ways per flow-table set (the hardware compares at most 16 ways in parallel).
pub const MAX_WAYS: u32 = 16;
/// Largest flow-table set count and Maglev table size accepted. Both are allocated in full by
/// every engine, so a value beyond this is a typo rather than a plan, and would exhaust
/// memory instead of failing cleanly.
pub const MAX_TABLE_SIZE: u32 = 1 << 24;
/// Bytes of the NIC RSS key at the start of the Toeplitz key; a 40-byte `hash_key` replaces
/// only these and keeps the default for the rest.
pub const RSS_KEY_LEN: usize = 40;

/// Where the admin API listens when neither the config nor the command line says.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

/// Where in a config text something was written (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name (or other origin given to [`parse_str`]).
    pub origin: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// Why a config was rejected.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{origin}: cannot read config: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not the shape of a flowgate config (wrong type, unknown key, bad enum
    /// value, missing required key).
    #[error("{at}: {reason}")]
    Syntax { at: Location, reason: String },
    /// Well-formed, but breaks a rule (bad address, duplicate VIP, limit exceeded, ...).
    #[error("{at}: {reason}")]
    Invalid { at: Location, reason: String },
}

impl ConfigError {
    /// Where the error is, if it is in the text (all but read errors).
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { at, .. } | ConfigError::Invalid { at, .. } => Some(at),
        }
    }

    /// The reason without the location prefix.
    pub fn reason(&self) -> String {
        match self {
            ConfigError::Read { source, .. } => format!("cannot read config: {source}"),
            ConfigError::Syntax { reason, .. } | ConfigError::Invalid { reason, .. } => {
                reason.clone()
            }
        }
    }
}

/// The IP protocol a VIP serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number (IPv4 protocol / IPv6 next header).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A validated config: every value is in range and every rule holds, so compiling it into
/// [`Tables`] cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub own_mac: [u8; 6],
    pub encap_src_v4: EncapSource<Ipv4Addr>,
    pub encap_src_v6: EncapSource<Ipv6Addr>,
    pub keys: HashKeys,
    /// Maglev table size per VIP (prime).
    pub maglev_m: u32,
    pub geometry: Geometry,
    pub timeouts: Timeouts,
    /// Where the admin API listens (`admin = "127.0.0.1:9090"`); `None` = the default or
    /// the command line's choice.
    pub admin: Option<SocketAddr>,
    /// The admin API's security, as written (relative paths are relative to the config
    /// file; `flowgate run`'s options win).
    pub admin_security: AdminSecurityConfig,
    pub vips: Vec<VipConfig>,
}

/// The admin API's token file and TLS files, as the config names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminSecurityConfig {
    pub token_file: Option<PathBuf>,
    /// Certificate chain and private key (PEM); both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipConfig {
    pub name: String,
    pub address: IpAddr,
    /// 0 = any port.
    pub port: u16,
    pub protocol: Protocol,
    pub mode: Mode,
    pub persistence: Persistence,
    /// Never empty.
    pub backends: Vec<BackendConfig>,
    /// How the health checker probes this VIP's backends; `None` = no checks, every
    /// backend stays up.
    pub health: Option<HealthCheck>,
}

/// What a health check does (`[vip.health]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// Port probed on each backend's address, unless the backend sets `health_port`.
    pub port: u16,
    /// Time between the starts of two checks of one backend.
    pub interval_ms: u32,
    /// A check not finished within this is a failure; at most `interval_ms`.
    pub timeout_ms: u32,
    /// Consecutive successes that bring a down backend up.
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    pub fall: u32,
}

/// The probe of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// A TCP connection is accepted.
    Tcp,
    /// `GET path` over HTTP/1.1 answers with status `expect_status`.
    Http { path: String, expect_status: u16 },
}

/// Defaults of `[vip.health]`, as documented in `examples/basic.toml`.
pub mod health_defaults {
    pub const INTERVAL_MS: u32 = 2000;
    pub const TIMEOUT_MS: u32 = 1000;
    pub const RISE: u32 = 2;
    pub const FALL: u32 = 3;
    pub const PATH: &str = "/";
    pub const EXPECT_STATUS: u16 = 200;
}

/// Largest `rise` / `fall`: beyond this a backend would take hours to change state at
/// common intervals, which is a typo rather than a plan.
pub const MAX_RISE_FALL: u32 = 1000;
/// Longest check interval accepted (one hour).
pub const MAX_INTERVAL_MS: u32 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub address: IpAddr,
    pub mac: [u8; 6],
    /// 0 = draining; at most [`MAX_WEIGHT`].
    pub weight: u32,
    /// Port the health check probes on this backend instead of the VIP's `health.port`.
    pub health_port: Option<u16>,
}

/// Read and validate the config at `path`; errors name `path` as their file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse_str(&text, &origin)
}

/// Parse and validate config `text`; `origin` is the file name errors are reported against.
pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let source = Source::new(text, origin);
    let raw: raw::Config = source.parse()?;
    source.validate(raw)
}

/// The serde-facing shape of the file. Values that are checked after parsing keep their
/// spans; `deny_unknown_fields` everywhere, so a misspelt key is an error and not a silently
/// ignored default.
mod raw {
    use super::Protocol;
    use flowgate_core::rewrite::modes::{ModeSpec, MODES, MODE_NAMES};
    use serde::{Deserialize, Deserializer};
    use toml::Spanned;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        pub own_mac: Option<Spanned<String>>,
        pub encap_src_v4: Option<Spanned<String>>,
        pub encap_src_v6: Option<Spanned<String>>,
        pub hash_key: Option<Spanned<String>>,
        pub maglev_m: Option<Spanned<u32>>,
        pub admin: Option<Spanned<String>>,
        pub admin_token_file: Option<Spanned<String>>,
        pub admin_tls_cert: Option<Spanned<String>>,
        pub admin_tls_key: Option<Spanned<String>>,
        #[serde(default)]
        pub flow_table: FlowTable,
        #[serde(default)]
        pub timeouts: Timeouts,
        #[serde(default)]
        pub vip: Vec<Vip>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct FlowTable {
        pub sets: Option<Spanned<u32>>,
        pub ways: Option<Spanned<u32>>,
        pub choices: Option<Spanned<u32>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Timeouts {
        pub tcp: Option<Spanned<u32>>,
        pub tcp_embryonic: Option<Spanned<u32>>,
        pub udp: Option<Spanned<u32>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Vip {
        pub name: Spanned<String>,
        pub address: Spanned<String>,
        pub port: u16,
        pub protocol: Protocol,
        #[serde(default)]
        pub mode: Mode,
        /// GUE's parameter (`flowgate_core::rewrite::MODES`); other modes refuse it.
        pub gue_port: Option<Spanned<u16>>,
        #[serde(default)]
        pub persistence: Persistence,
        pub health: Option<Spanned<Health>>,
        #[serde(default)]
        pub backend: Vec<Backend>,
    }

    pub use super::{HealthKeys as Health, HealthKind as CheckKind};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Backend {
        pub address: Spanned<String>,
        pub mac: Spanned<String>,
        pub weight: Option<Spanned<u32>>,
        pub health_port: Option<Spanned<u16>>,
    }

    /// A `mode` value: a row of the rewrite-mode table, by name (an unknown name is a
    /// shape error, as an unknown variant of a serde enum is).
    #[derive(Clone, Copy)]
    pub struct Mode(pub &'static ModeSpec);

    impl Default for Mode {
        fn default() -> Self {
            Mode(&MODES[0])
        }
    }

    impl<'de> Deserialize<'de> for Mode {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let name = String::deserialize(d)?;
            ModeSpec::by_name(&name)
                .map(Mode)
                .ok_or_else(|| serde::de::Error::unknown_variant(&name, &MODE_NAMES))
        }
    }

    #[derive(Deserialize, Default, Clone, Copy)]
    pub enum Persistence {
        #[default]
        #[serde(rename = "5tuple")]
        FiveTuple,
        #[serde(rename = "src-ip")]
        SrcIp,
    }
}

/// The keys of a health check block (`[vip.health]` here, `[pool.health]` in the proxy's
/// config), as written; [`Source::health_check`] validates them.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthKeys {
    #[serde(default)]
    pub kind: HealthKind,
    pub port: Option<Spanned<u16>>,
    pub path: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<u16>>,
    pub interval_ms: Option<Spanned<u32>>,
    pub timeout_ms: Option<Spanned<u32>>,
    pub rise: Option<Spanned<u32>>,
    pub fall: Option<Spanned<u32>>,
}

/// `kind` of a health check block as written.
#[derive(serde::Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    #[default]
    Tcp,
    Http,
}

/// A config text being validated, for turning `toml::Spanned` spans into
/// `FILE:LINE:COL` locations. The L4 config and the proxy's config (`flowgate-proxy`) both
/// report their errors through it.
pub struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl<'a> Source<'a> {
    /// `text`, whose errors are reported against file name `origin`.
    pub fn new(text: &'a str, origin: &'a str) -> Source<'a> {
        Source { text, origin }
    }

    /// Deserialize the text; syntax and shape errors are located in it.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| ConfigError::Syntax {
            // Errors from serde's side (e.g. a missing key in a table) may come without a
            // span; the top of the file is the best we can say then.
            at: self.locate(e.span().map_or(0, |s| s.start)),
            reason: e.message().trim_end().to_string(),
        })
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    pub fn locate(&self, offset: usize) -> Location {
        let mut end = offset.min(self.text.len());
        // A span from the parser always falls on a char boundary, but a wrong one must not
        // turn into a panic on slicing.
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &self.text[..end];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            origin: self.origin.to_string(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// A rule broken by the value written at `span`.
    pub fn invalid(&self, span: Range<usize>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: self.locate(span.start),
            reason: reason.into(),
        }
    }

    /// Apply `check` to a spanned value, locating its error at the value.
    pub fn check<T, U>(
        &self,
        value: &Spanned<T>,
        check: impl FnOnce(&T) -> Result<U, String>,
    ) -> Result<U, ConfigError> {
        check(value.get_ref()).map_err(|reason| self.invalid(value.span(), reason))
    }

    fn validate(&self, raw: raw::Config) -> Result<Config, ConfigError> {
        let defaults = Tables::default();
        let own_mac = match &raw.own_mac {
            Some(v) => self.check(v, |s| parse_mac(s).map_err(|r| format!("own_mac: {r}")))?,
            None => defaults.own_mac,
        };
        let encap_src_v4 = match &raw.encap_src_v4 {
            Some(v) => self.check(v, |s| {
                parse_prefix::<Ipv4Addr>(s, 32).map_err(|r| format!("encap_src_v4: {r}"))
            })?,
            None => defaults.encap_src_v4,
        };
        let encap_src_v6 = match &raw.encap_src_v6 {
            Some(v) => self.check(v, |s| {
                parse_prefix::<Ipv6Addr>(s, 128).map_err(|r| format!("encap_src_v6: {r}"))
            })?,
            None => defaults.encap_src_v6,
        };
        let mut keys = defaults.keys;
        if let Some(v) = &raw.hash_key {
            keys.rss = self.check(v, |s| parse_hash_key(s, &keys.rss))?;
        }
        let maglev_m = match &raw.maglev_m {
            Some(v) => self.check(v, |&m| check_maglev_m(m).map(|()| m))?,
            None => DEFAULT_M,
        };
        let geometry = Geometry {
            sets: match &raw.flow_table.sets {
                Some(v) => self.check(v, |&s| check_sets(s).map(|()| s))?,
                None => defaults.geometry.sets,
            },
            ways: match &raw.flow_table.ways {
                Some(v) => self.check(v, |&w| check_ways(w).map(|()| w))?,
                None => defaults.geometry.ways,
            },
            choices: match &raw.flow_table.choices {
                Some(v) => self.check(v, |&c| check_choices(c).map(|()| c))?,
                None => defaults.geometry.choices,
            },
        };
        let timeout = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
            Some(v) => self.check(v, |&ms| match ms {
                0 => Err(format!("timeouts.{key} must be at least 1 ms")),
                ms => Ok(ms),
            }),
            None => Ok(default),
        };
        let timeouts = Timeouts {
            tcp_ms: timeout(&raw.timeouts.tcp, "tcp", defaults.timeouts.tcp_ms)?,
            tcp_embryonic_ms: timeout(
                &raw.timeouts.tcp_embryonic,
                "tcp_embryonic",
                defaults.timeouts.tcp_embryonic_ms,
            )?,
            udp_ms: timeout(&raw.timeouts.udp, "udp", defaults.timeouts.udp_ms)?,
        };
        let admin = match &raw.admin {
            Some(v) => Some(self.check(v, |s| {
                SocketAddr::from_str(s)
                    .map_err(|_| format!("admin: bad address '{s}' (expected IP:PORT)"))
            })?),
            None => None,
        };
        let file = |v: &Option<Spanned<String>>, key: &str| match v {
            Some(v) => self
                .check(v, |s| {
                    if s.is_empty() {
                        Err(format!("{key}: empty path"))
                    } else {
                        Ok(PathBuf::from(s))
                    }
                })
                .map(Some),
            None => Ok(None),
        };
        let token_file = file(&raw.admin_token_file, "admin_token_file")?;
        let cert = file(&raw.admin_tls_cert, "admin_tls_cert")?;
        let key = file(&raw.admin_tls_key, "admin_tls_key")?;
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                let given = raw.admin_tls_cert.as_ref().or(raw.admin_tls_key.as_ref());
                return Err(self.invalid(
                    given.map_or(0..0, |g| g.span()),
                    "admin_tls_cert and admin_tls_key go together: give both or neither",
                ));
            }
        };
        Ok(Config {
            admin,
            admin_security: AdminSecurityConfig { token_file, tls },
            own_mac,
            encap_src_v4,
            encap_src_v6,
            keys,
            maglev_m,
            geometry,
            timeouts,
            vips: self.validate_vips(raw.vip)?,
        })
    }

    fn validate_vips(&self, raw: Vec<raw::Vip>) -> Result<Vec<VipConfig>, ConfigError> {
        if let Some(extra) = raw.get(MAX_VIPS) {
            return Err(self.invalid(
                extra.name.span(),
                format!("too many vips: at most {MAX_VIPS} are allowed"),
            ));
        }
        let mut vips = Vec::with_capacity(raw.len());
        // Where each name and each (address, port, protocol) was first defined, to name the
        // earlier definition in a duplicate's error.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut services: HashMap<(IpAddr, u16, Protocol), (String, usize)> = HashMap::new();
        let mut backend_count = 0usize;
        for vip in raw {
            let name = vip.name.get_ref().clone();
            if name.is_empty() {
                return Err(self.invalid(vip.name.span(), "vip name must not be empty"));
            }
            if let Some(&first) = names.get(&name) {
                return Err(self.invalid(
                    vip.name.span(),
                    format!(
                        "duplicate vip name '{name}' (first defined at line {})",
                        self.locate(first).line
                    ),
                ));
            }
            names.insert(name.clone(), vip.name.span().start);
            let address = self.check(&vip.address, |s| {
                parse_ip(s).map_err(|r| format!("vip '{name}': {r}"))
            })?;
            let service = (address, vip.port, vip.protocol);
            if let Some((first, first_at)) = services.get(&service) {
                return Err(self.invalid(
                    vip.address.span(),
                    format!(
                        "duplicate vip: {address} port {} {} is already vip '{}' (line {})",
                        vip.port,
                        vip.protocol,
                        first,
                        self.locate(*first_at).line
                    ),
                ));
            }
            services.insert(service, (name.clone(), vip.address.span().start));
            if vip.backend.is_empty() {
                return Err(self.invalid(vip.name.span(), format!("vip '{name}' has no backends")));
            }
            let mut backends: Vec<BackendConfig> = Vec::with_capacity(vip.backend.len());
            let mut seen: HashMap<IpAddr, usize> = HashMap::new();
            for backend in vip.backend {
                backend_count += 1;
                if backend_count > MAX_BACKENDS {
                    return Err(self.invalid(
                        backend.address.span(),
                        format!("too many backends: at most {MAX_BACKENDS} in all vips"),
                    ));
                }
                let address = self.check(&backend.address, |s| {
                    parse_ip(s).map_err(|r| format!("backend of vip '{name}': {r}"))
                })?;
                if let Some(&first) = seen.get(&address) {
                    return Err(self.invalid(
                        backend.address.span(),
                        format!(
                            "duplicate backend {address} in vip '{name}' (first at line {})",
                            self.locate(first).line
                        ),
                    ));
                }
                seen.insert(address, backend.address.span().start);
                let mac = self.check(&backend.mac, |s| {
                    parse_mac(s).map_err(|r| format!("backend {address}: {r}"))
                })?;
                let weight = match &backend.weight {
                    Some(w) => self.check(w, |&w| {
                        if w > MAX_WEIGHT {
                            Err(format!(
                                "backend {address}: weight {w} is above the maximum {MAX_WEIGHT}"
                            ))
                        } else {
                            Ok(w)
                        }
                    })?,
                    None => 1,
                };
                let health_port = match &backend.health_port {
                    Some(p) => Some(self.check(p, |&p| match p {
                        0 => Err(format!("backend {address}: health_port must not be 0")),
                        p => Ok(p),
                    })?),
                    None => None,
                };
                backends.push(BackendConfig {
                    address,
                    mac,
                    weight,
                    health_port,
                });
            }
            let health = match &vip.health {
                Some(h) => Some(self.validate_health(h, &name, vip.port, &backends)?),
                None => None,
            };
            let mode = self.validate_mode(vip.mode.0, vip.gue_port.as_ref(), &name)?;
            vips.push(VipConfig {
                health,
                name,
                address,
                port: vip.port,
                protocol: vip.protocol,
                mode,
                persistence: match vip.persistence {
                    raw::Persistence::FiveTuple => Persistence::FiveTuple,
                    raw::Persistence::SrcIp => Persistence::SrcIp,
                },
                backends,
            });
        }
        Ok(vips)
    }

    /// The VIP's mode with its parameter: the configured value (not 0) or the table's
    /// default; a parameter given to a mode without one is an error at the key.
    fn validate_mode(
        &self,
        spec: &'static ModeSpec,
        gue_port: Option<&Spanned<u16>>,
        vip: &str,
    ) -> Result<Mode, ConfigError> {
        let param = match (spec.param, gue_port) {
            (Some(param), Some(value)) => self.check(value, |&v| match v {
                0 => Err(format!("vip '{vip}': {} must not be 0", param.key)),
                v => Ok(v),
            })?,
            (Some(param), None) => param.default,
            (None, Some(value)) => {
                return Err(self.invalid(
                    value.span(),
                    format!(
                        "vip '{vip}': gue_port applies to mode \"gue\" only, not \"{}\"",
                        spec.name
                    ),
                ))
            }
            (None, None) => 0,
        };
        Ok(spec.with_param(param))
    }

    fn validate_health(
        &self,
        raw: &Spanned<raw::Health>,
        vip: &str,
        vip_port: u16,
        backends: &[BackendConfig],
    ) -> Result<HealthCheck, ConfigError> {
        // A VIP on one port is usually checked on that port; an any-port VIP has none to
        // offer, so every backend must then name its own.
        if raw.get_ref().port.is_none()
            && vip_port == 0
            && !backends.iter().all(|b| b.health_port.is_some())
        {
            return Err(self.invalid(
                raw.span(),
                format!(
                    "vip '{vip}' listens on any port: health.port (or every backend's \
                     health_port) must be set"
                ),
            ));
        }
        self.health_check(raw.get_ref(), &format!("vip '{vip}'"), vip_port)
    }

    /// Validate a health check block of `owner` (e.g. "vip 'web'", named in errors); the
    /// probed port is `default_port` unless the block sets `port`.
    pub fn health_check(
        &self,
        h: &HealthKeys,
        owner: &str,
        default_port: u16,
    ) -> Result<HealthCheck, ConfigError> {
        use health_defaults as d;
        let port = match &h.port {
            Some(p) => self.check(p, |&p| match p {
                0 => Err(format!("{owner}: health.port must not be 0")),
                p => Ok(p),
            })?,
            None => default_port,
        };
        let in_range =
            |v: &Option<Spanned<u32>>, key: &str, min: u32, max: u32, default: u32| match v {
                Some(v) => self.check(v, |&x| {
                    if (min..=max).contains(&x) {
                        Ok(x)
                    } else {
                        Err(format!(
                            "{owner}: health.{key} {x} is out of range {min}..={max}"
                        ))
                    }
                }),
                None => Ok(default),
            };
        let interval_ms = in_range(
            &h.interval_ms,
            "interval_ms",
            1,
            MAX_INTERVAL_MS,
            d::INTERVAL_MS,
        )?;
        let timeout_ms = match &h.timeout_ms {
            Some(_) => in_range(&h.timeout_ms, "timeout_ms", 1, interval_ms, d::TIMEOUT_MS)?,
            // The default timeout shrinks with a short interval: one check at a time.
            None => d::TIMEOUT_MS.min(interval_ms),
        };
        let rise = in_range(&h.rise, "rise", 1, MAX_RISE_FALL, d::RISE)?;
        let fall = in_range(&h.fall, "fall", 1, MAX_RISE_FALL, d::FALL)?;
        let kind = match h.kind {
            raw::CheckKind::Tcp => {
                for (key, span) in [
                    ("path", h.path.as_ref().map(|p| p.span())),
                    ("expect_status", h.expect_status.as_ref().map(|p| p.span())),
                ] {
                    if let Some(span) = span {
                        return Err(self.invalid(
                            span,
                            format!("{owner}: health.{key} needs kind = \"http\""),
                        ));
                    }
                }
                CheckKind::Tcp
            }
            raw::CheckKind::Http => CheckKind::Http {
                path: match &h.path {
                    Some(p) => self.check(p, |p| check_path(p).map(|()| p.clone()))?,
                    None => d::PATH.to_string(),
                },
                expect_status: match &h.expect_status {
                    Some(s) => self.check(s, |&s| {
                        if (100..=599).contains(&s) {
                            Ok(s)
                        } else {
                            Err(format!(
                                "health.expect_status {s} is not an HTTP status (100..=599)"
                            ))
                        }
                    })?,
                    None => d::EXPECT_STATUS,
                },
            },
        };
        Ok(HealthCheck {
            kind,
            port,
            interval_ms,
            timeout_ms,
            rise,
            fall,
        })
    }
}

/// An HTTP check's request path: absolute, printable ASCII without spaces, so it is sent
/// as written.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("health.path '{path}' must start with '/'"));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "health.path '{path}' must be printable ASCII without spaces"
        ));
    }
    Ok(())
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    IpAddr::from_str(s).map_err(|_| format!("bad IP address '{s}'"))
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`), hex digits in either case.
fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("bad MAC address '{s}' (expected six hex bytes like 02:00:00:00:00:01)");
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// `address/len`. Host bits must be zero: they are filled from the flow hash, so set ones
/// would be silently ignored, which usually means the prefix length is a typo.
fn parse_prefix<A>(s: &str, max_len: u8) -> Result<EncapSource<A>, String>
where
    A: FromStr + Copy + Into<IpAddr>,
{
    let bad = |why: &str| format!("bad prefix '{s}': {why}");
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/LENGTH"))?;
    let prefix: A = addr.parse().map_err(|_| {
        bad(if max_len == 32 {
            "not an IPv4 address"
        } else {
            "not an IPv6 address"
        })
    })?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|&l| l <= max_len)
        .ok_or_else(|| bad(&format!("length must be 0..={max_len}")))?;
    let bits = match prefix.into() {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    };
    if len < 128 && bits << len != 0 {
        return Err(bad("host bits are set"));
    }
    Ok(EncapSource { prefix, len })
}

/// The Toeplitz key in hex: all [`KEY_LEN`] bytes, or the [`RSS_KEY_LEN`]-byte NIC RSS key
/// with the remaining bytes taken from `default`.
fn parse_hash_key(s: &str, default: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], String> {
    let digits: Vec<u8> = s
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()
        .ok_or("hash_key must be hex digits only")?;
    if digits.len() != 2 * KEY_LEN && digits.len() != 2 * RSS_KEY_LEN {
        return Err(format!(
            "hash_key must be {KEY_LEN} or {RSS_KEY_LEN} bytes ({} or {} hex digits), not {} digits",
            KEY_LEN * 2,
            RSS_KEY_LEN * 2,
            digits.len()
        ));
    }
    let mut key = *default;
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(key)
}

fn check_maglev_m(m: u32) -> Result<(), String> {
    if m > MAX_TABLE_SIZE {
        Err(format!(
            "maglev_m {m} is above the maximum {MAX_TABLE_SIZE}"
        ))
    } else if !is_prime(m) {
        Err(format!("maglev_m {m} is not prime (e.g. 65537, 251, 4093)"))
    } else {
        Ok(())
    }
}

fn check_sets(sets: u32) -> Result<(), String> {
    if !sets.is_power_of_two() {
        Err(format!("flow_table.sets {sets} is not a power of two"))
    } else if sets > MAX_TABLE_SIZE {
        Err(format!(
            "flow_table.sets {sets} is above the maximum {MAX_TABLE_SIZE}"
        ))
    } else {
        Ok(())
    }
}

fn check_choices(choices: u32) -> Result<(), String> {
    match choices {
        1 | 2 => Ok(()),
        _ => Err(format!(
            "flow_table.choices {choices} must be 1 (one candidate set per flow) or 2 (two)"
        )),
    }
}

fn check_ways(ways: u32) -> Result<(), String> {
    if (1..=MAX_WAYS).contains(&ways) {
        Ok(())
    } else {
        Err(format!(
            "flow_table.ways {ways} is out of range 1..={MAX_WAYS}"
        ))
    }
}

/// Trial division; `n` is at most [`MAX_TABLE_SIZE`] here, so at most ~4096 divisions.
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = u64::from(n);
    let mut d = 2u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = include_str!("../../examples/basic.toml");

    /// A one-VIP config whose lines are numbered in the comments, for error positions.
    fn one_vip(globals: &str, vip: &str, backend: &str) -> String {
        format!(
            "{globals}\n\
             [[vip]]\n\
             name = \"web\"\n\
             address = \"192.0.2.10\"\n\
             port = 80\n\
             protocol = \"tcp\"\n\
             {vip}\n\
             [[vip.backend]]\n\
             address = \"198.51.100.1\"\n\
             mac = \"02:00:00:00:00:01\"\n\
             {backend}\n"
        )
    }

    fn error(text: &str) -> ConfigError {
        match parse_str(text, "test.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn example_parses_to_its_documented_services() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic.toml");
        let config = load(&path).unwrap();
        let defaults = Tables::default();
        // The example spells out the defaults, including the key's first 40 bytes.
        assert_eq!(config.own_mac, defaults.own_mac);
        assert_eq!(config.encap_src_v4, defaults.encap_src_v4);
        assert_eq!(config.encap_src_v6, defaults.encap_src_v6);
        assert_eq!(config.keys, defaults.keys);
        assert_eq!(config.geometry, defaults.geometry);
        assert_eq!(config.timeouts, defaults.timeouts);
        assert_eq!(config.maglev_m, 65537);

        let [web, dns] = &config.vips[..] else {
            panic!("expected 2 vips, got {:?}", config.vips);
        };
        assert_eq!(web.name, "web");
        assert_eq!(web.address, "192.0.2.10".parse::<IpAddr>().unwrap());
        assert_eq!((web.port, web.protocol), (80, Protocol::Tcp));
        assert_eq!(
            (web.mode, web.persistence),
            (Mode::Dsr, Persistence::FiveTuple)
        );
        let web_backends: Vec<_> = web
            .backends
            .iter()
            .map(|b| (b.address.to_string(), b.weight))
            .collect();
        assert_eq!(
            web_backends,
            [
                ("198.51.100.1".to_string(), 1),
                ("198.51.100.2".to_string(), 1),
                ("198.51.100.3".to_string(), 2)
            ]
        );
        assert_eq!(web.backends[2].mac, [2, 0, 0, 0, 0, 3]);

        assert_eq!(dns.name, "dns");
        assert_eq!(dns.address, "2001:db8::53".parse::<IpAddr>().unwrap());
        assert_eq!((dns.port, dns.protocol), (53, Protocol::Udp));
        assert_eq!(
            (dns.mode, dns.persistence),
            (Mode::IpIp, Persistence::SrcIp)
        );
        let dns_backends: Vec<_> = dns
            .backends
            .iter()
            .map(|b| (b.address.to_string(), b.weight))
            .collect();
        assert_eq!(
            dns_backends,
            [
                ("2001:db8:1::1".to_string(), 1),
                ("2001:db8:1::2".to_string(), 1)
            ]
        );
    }

    #[test]
    fn missing_keys_take_core_defaults() {
        let config = parse_str(&one_vip("", "", ""), "t").unwrap();
        let defaults = Tables::default();
        assert_eq!(config.own_mac, defaults.own_mac);
        assert_eq!(config.encap_src_v4, defaults.encap_src_v4);
        assert_eq!(config.encap_src_v6, defaults.encap_src_v6);
        assert_eq!(config.keys, defaults.keys);
        assert_eq!(config.geometry, defaults.geometry);
        assert_eq!(config.timeouts, defaults.timeouts);
        assert_eq!(config.maglev_m, DEFAULT_M);
        let vip = &config.vips[0];
        assert_eq!(
            (vip.mode, vip.persistence),
            (Mode::Dsr, Persistence::FiveTuple)
        );
        assert_eq!(vip.backends[0].weight, 1);
        // Only the tables that are present override; a partial table keeps the rest.
        let partial = "[flow_table]\nways = 8\n[timeouts]\nudp = 1000\n";
        let config = parse_str(&one_vip(partial, "", ""), "t").unwrap();
        assert_eq!(config.geometry.sets, defaults.geometry.sets);
        assert_eq!(config.geometry.ways, 8);
        assert_eq!(config.timeouts.tcp_ms, defaults.timeouts.tcp_ms);
        assert_eq!(config.timeouts.udp_ms, 1000);
    }

    #[test]
    fn every_global_key_is_applied() {
        let key: String = (0..KEY_LEN).map(|i| format!("{:02x}", i + 0xa0)).collect();
        let globals = format!(
            "own_mac = \"0A-0b-0c-0d-0e-0f\"\n\
             encap_src_v4 = \"10.128.0.0/9\"\n\
             encap_src_v6 = \"fd00:1::/32\"\n\
             hash_key = \"{key}\"\n\
             maglev_m = 251\n\
             [flow_table]\nsets = 1024\nways = 16\nchoices = 1\n\
             [timeouts]\ntcp = 1\ntcp_embryonic = 2\nudp = 3\n"
        );
        let config = parse_str(&one_vip(&globals, "", ""), "t").unwrap();
        assert_eq!(config.own_mac, [0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]);
        assert_eq!(
            config.encap_src_v4,
            EncapSource {
                prefix: Ipv4Addr::new(10, 128, 0, 0),
                len: 9
            }
        );
        assert_eq!(
            config.encap_src_v6,
            EncapSource {
                prefix: "fd00:1::".parse().unwrap(),
                len: 32
            }
        );
        let expected: Vec<u8> = (0..KEY_LEN).map(|i| (i + 0xa0) as u8).collect();
        assert_eq!(config.keys.rss[..], expected[..]);
        // The digest keys are not configurable yet and must stay at their defaults.
        assert_eq!(config.keys.digest_hi, HashKeys::default().digest_hi);
        assert_eq!(config.maglev_m, 251);
        assert_eq!(
            config.geometry,
            Geometry {
                sets: 1024,
                ways: 16,
                choices: 1
            }
        );
        assert_eq!(
            config.timeouts,
            Timeouts {
                tcp_ms: 1,
                tcp_embryonic_ms: 2,
                udp_ms: 3
            }
        );
    }

    #[test]
    fn a_40_byte_hash_key_replaces_only_the_rss_part() {
        let key = "11".repeat(RSS_KEY_LEN);
        let config = parse_str(&one_vip(&format!("hash_key = \"{key}\""), "", ""), "t").unwrap();
        let default = HashKeys::default().rss;
        assert_eq!(config.keys.rss[..RSS_KEY_LEN], [0x11; RSS_KEY_LEN]);
        assert_eq!(config.keys.rss[RSS_KEY_LEN..], default[RSS_KEY_LEN..]);
    }

    /// Each rule: the config that breaks it, the line it must be reported on, and a phrase
    /// the reason must contain.
    #[test]
    fn semantic_errors_name_line_and_reason() {
        let cases: Vec<(&str, String, usize, &str)> = vec![
            (
                "bad own MAC",
                one_vip("own_mac = \"02:00:00:00:00\"", "", ""),
                1,
                "bad MAC address",
            ),
            (
                "bad backend MAC",
                one_vip("", "", "").replace("02:00:00:00:00:01", "02:00:00:00:00:0g"),
                10,
                "bad MAC address",
            ),
            (
                "bad vip IP",
                one_vip("", "", "").replace("192.0.2.10", "192.0.2.300"),
                4,
                "bad IP address '192.0.2.300'",
            ),
            (
                "bad backend IP",
                one_vip("", "", "").replace("198.51.100.1", "198.51.100"),
                9,
                "bad IP address",
            ),
            (
                "v6 prefix for v4",
                one_vip("encap_src_v4 = \"fc00::/64\"", "", ""),
                1,
                "not an IPv4 address",
            ),
            (
                "prefix too long",
                one_vip("encap_src_v6 = \"fc00::/129\"", "", ""),
                1,
                "length must be 0..=128",
            ),
            (
                "prefix host bits",
                one_vip("encap_src_v4 = \"172.16.0.1/16\"", "", ""),
                1,
                "host bits are set",
            ),
            (
                "prefix without length",
                one_vip("encap_src_v4 = \"172.16.0.0\"", "", ""),
                1,
                "bad prefix",
            ),
            (
                "non-prime maglev_m",
                one_vip("maglev_m = 65536", "", ""),
                1,
                "not prime",
            ),
            (
                "maglev_m 1",
                one_vip("maglev_m = 1", "", ""),
                1,
                "not prime",
            ),
            (
                "huge maglev_m",
                one_vip("maglev_m = 4294967291", "", ""),
                1,
                "above the maximum",
            ),
            (
                "sets not power of two",
                one_vip("[flow_table]\nsets = 1000", "", ""),
                2,
                "not a power of two",
            ),
            (
                "sets zero",
                one_vip("[flow_table]\nsets = 0", "", ""),
                2,
                "not a power of two",
            ),
            (
                "choices 3",
                one_vip("[flow_table]\nchoices = 3", "", ""),
                2,
                "must be 1 (one candidate set per flow) or 2",
            ),
            (
                "ways zero",
                one_vip("[flow_table]\nways = 0", "", ""),
                2,
                "out of range",
            ),
            (
                "ways 17",
                one_vip("[flow_table]\nsets = 16\nways = 17", "", ""),
                3,
                "out of range",
            ),
            (
                "timeout zero",
                one_vip("[timeouts]\ntcp = 300000\nudp = 0", "", ""),
                3,
                "timeouts.udp must be at least 1 ms",
            ),
            (
                "short hash_key",
                one_vip("hash_key = \"6d5a\"", "", ""),
                1,
                "hash_key must be 52 or 40 bytes",
            ),
            (
                "odd hash_key",
                one_vip(&format!("hash_key = \"{}\"", "a".repeat(81)), "", ""),
                1,
                "hash_key must be",
            ),
            (
                "non-hex hash_key",
                one_vip(&format!("hash_key = \"{}\"", "zz".repeat(40)), "", ""),
                1,
                "hex digits only",
            ),
            (
                "weight too big",
                one_vip("", "", "weight = 65536"),
                11,
                "weight 65536 is above the maximum 65535",
            ),
            (
                "empty name",
                one_vip("", "", "").replace("\"web\"", "\"\""),
                3,
                "must not be empty",
            ),
            (
                "no backends",
                "[[vip]]\nname = \"x\"\naddress = \"192.0.2.1\"\nport = 0\nprotocol = \"udp\"\n"
                    .into(),
                2,
                "vip 'x' has no backends",
            ),
            (
                "duplicate backend",
                one_vip(
                    "",
                    "",
                    "[[vip.backend]]\naddress = \"198.51.100.1\"\nmac = \"02:00:00:00:00:09\"",
                ),
                12,
                "duplicate backend 198.51.100.1 in vip 'web' (first at line 9)",
            ),
            (
                "duplicate backend, spelt differently",
                one_vip("", "", "").replace("198.51.100.1", "2001:db8::1")
                    + "[[vip.backend]]\naddress = \"2001:DB8:0::1\"\nmac = \"02:00:00:00:00:09\"\n",
                13,
                "duplicate backend 2001:db8::1",
            ),
            (
                "duplicate vip",
                one_vip("", "", "") + &one_vip("", "", "").replace("\"web\"", "\"web2\""),
                15,
                "duplicate vip: 192.0.2.10 port 80 tcp is already vip 'web' (line 4)",
            ),
            (
                "duplicate name",
                one_vip("", "", "") + &one_vip("", "", "").replace("port = 80", "port = 81"),
                14,
                "duplicate vip name 'web' (first defined at line 3)",
            ),
        ];
        for (what, text, line, phrase) in cases {
            let e = error(&text);
            assert!(matches!(e, ConfigError::Invalid { .. }), "{what}: {e:?}");
            let at = e.location().unwrap();
            assert_eq!(at.line, line, "{what}: {e}\n{text}");
            assert!(e.reason().contains(phrase), "{what}: {e}");
            assert!(
                e.to_string().starts_with(&format!("test.toml:{line}:")),
                "{what}: {e}"
            );
        }
    }

    #[test]
    fn display_is_file_line_column_reason() {
        let e = error(&one_vip("maglev_m = 100", "", ""));
        assert_eq!(
            e.to_string(),
            "test.toml:1:12: maglev_m 100 is not prime (e.g. 65537, 251, 4093)"
        );
        // Columns count characters, not bytes: the value starts at byte 33, character 32.
        let e = error(
            "# héllo\nvip = [{ name = \"é\", address = \"1.2.3\", port = 1, protocol = \"tcp\" }]\n",
        );
        assert!(e.to_string().starts_with("test.toml:2:32: "), "{e}");
    }

    #[test]
    fn mixed_modes_persistence_and_families_are_accepted() {
        // An IPv6 backend behind an IPv4 DSR VIP is fine: DSR only needs it on our L2.
        let mut text = one_vip("", "mode = \"dsr\"\npersistence = \"src-ip\"", "")
            .replace("198.51.100.1", "2001:db8::1");
        // The same backend may serve several VIPs, and one address may carry several
        // services on other ports or protocols.
        text += &one_vip("", "mode = \"ipip\"", "")
            .replace("\"web\"", "\"web-udp\"")
            .replace("\"tcp\"", "\"udp\"")
            .replace("198.51.100.1", "2001:db8::1");
        text += &one_vip("", "", "")
            .replace("\"web\"", "\"any\"")
            .replace("port = 80", "port = 0");
        let config = parse_str(&text, "t").unwrap();
        assert_eq!(config.vips.len(), 3);
        assert_eq!(config.vips[0].persistence, Persistence::SrcIp);
        assert_eq!(config.vips[1].mode, Mode::IpIp);
        assert_eq!(config.vips[2].port, 0);
        // A config without VIPs passes everything to the host; that is a valid config.
        assert!(parse_str("maglev_m = 251\n", "t").unwrap().vips.is_empty());
    }

    #[test]
    fn gue_takes_its_port_or_the_default() {
        let gue = |extra: &str| one_vip("", &format!("mode = \"gue\"\n{extra}"), "");
        let config = parse_str(&gue(""), "t").unwrap();
        assert_eq!(config.vips[0].mode, Mode::Gue { port: 6080 });
        let config = parse_str(&gue("gue_port = 7000"), "t").unwrap();
        assert_eq!(config.vips[0].mode, Mode::Gue { port: 7000 });
        // Every mode parameter of the table is a VIP key this parser reads.
        for spec in &flowgate_core::rewrite::MODES {
            if let Some(param) = spec.param {
                let text = one_vip(
                    "",
                    &format!("mode = \"{}\"\n{} = 9", spec.name, param.key),
                    "",
                );
                assert_eq!(parse_str(&text, "t").unwrap().vips[0].mode.param(), 9);
            }
        }

        let e = error(&gue("gue_port = 0"));
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
        assert_eq!(e.location().unwrap().line, 8, "{e}");
        assert!(e.reason().contains("gue_port must not be 0"), "{e}");
        let e = error(&one_vip("", "mode = \"ipip\"\ngue_port = 6080", ""));
        assert_eq!(e.location().unwrap().line, 8, "{e}");
        assert!(e.reason().contains("applies to mode \"gue\" only"), "{e}");
        let e = error(&one_vip("", "gue_port = 6080", ""));
        assert!(e.reason().contains("not \"dsr\""), "{e}");
        // The unknown-mode error names every mode of the table.
        let e = error(&one_vip("", "mode = \"nat\"", ""));
        assert!(e.reason().contains("`dsr`, `ipip`, `gue`"), "{e}");
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let text = one_vip("", "", "").replace("port = 80", "port = 80\nmode = \"dsr");
        let e = error(&text);
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        assert_eq!(e.location().unwrap().line, 6, "{e}");
        // A key defined twice is a TOML error too.
        let e = error(&one_vip("", "port = 81", ""));
        assert_eq!(e.location().unwrap().line, 7, "{e}");
        assert!(e.reason().contains("duplicate key"), "{e}");
    }

    #[test]
    fn shape_errors_name_their_line() {
        let cases: Vec<(&str, String, usize, &str)> = vec![
            (
                "unknown backend key",
                one_vip("", "", "wieght = 2"),
                11,
                "unknown field `wieght`",
            ),
            (
                "unknown global key",
                one_vip("maglev = 251", "", ""),
                1,
                "unknown field `maglev`",
            ),
            (
                "unknown vip key",
                one_vip("", "healthcheck = 1", ""),
                7,
                "unknown field `healthcheck`",
            ),
            (
                "unknown table",
                one_vip("[flow_tabel]\nsets = 4", "", ""),
                1,
                "unknown field `flow_tabel`",
            ),
            (
                "bad protocol",
                one_vip("", "", "").replace("\"tcp\"", "\"sctp\""),
                6,
                "unknown variant `sctp`",
            ),
            (
                "bad mode",
                one_vip("", "mode = \"nat\"", ""),
                7,
                "unknown variant `nat`",
            ),
            (
                "bad persistence",
                one_vip("", "persistence = \"3tuple\"", ""),
                7,
                "unknown variant `3tuple`",
            ),
            (
                "port as string",
                one_vip("", "", "").replace("port = 80", "port = \"80\""),
                5,
                "invalid type",
            ),
            (
                "port too big",
                one_vip("", "", "").replace("port = 80", "port = 70000"),
                5,
                "invalid value",
            ),
            (
                "negative weight",
                one_vip("", "", "weight = -1"),
                11,
                "invalid value",
            ),
            (
                "mac as number",
                one_vip("own_mac = 2", "", ""),
                1,
                "invalid type",
            ),
        ];
        for (what, text, line, phrase) in cases {
            let e = error(&text);
            assert!(matches!(e, ConfigError::Syntax { .. }), "{what}: {e:?}");
            assert_eq!(e.location().unwrap().line, line, "{what}: {e}\n{text}");
            assert!(e.reason().contains(phrase), "{what}: {e}");
        }
        // A missing required key is reported at the table that lacks it.
        let e = error(&one_vip("", "", "").replace("mac = \"02:00:00:00:00:01\"", ""));
        assert!(e.reason().contains("missing field `mac`"), "{e}");
        assert_eq!(e.location().unwrap().line, 8, "{e}");
    }

    #[test]
    fn backend_and_vip_limits() {
        // 65534 backends are the most that get indices below NO_BACKEND.
        let mut text = String::from(
            "[[vip]]\nname = \"big\"\naddress = \"192.0.2.1\"\nport = 80\nprotocol = \"tcp\"\n",
        );
        for i in 0..MAX_BACKENDS {
            text += &format!(
                "[[vip.backend]]\naddress = \"10.{}.{}.{}\"\nmac = \"02:00:00:00:00:01\"\n",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            );
        }
        assert_eq!(
            parse_str(&text, "t").unwrap().vips[0].backends.len(),
            MAX_BACKENDS
        );
        text += "[[vip.backend]]\naddress = \"10.255.0.0\"\nmac = \"02:00:00:00:00:01\"\n";
        let e = error(&text);
        assert_eq!(e.location().unwrap().line, text.lines().count() - 1, "{e}");
        assert!(e.reason().contains("too many backends"), "{e}");

        let vips: String = (0..=MAX_VIPS)
            .map(|i| format!("{{name = \"v{i}\", address = \"192.0.2.1\", port = {}, protocol = \"tcp\"}},\n", i + 1))
            .collect();
        let e = error(&format!("vip = [\n{vips}]\n"));
        assert_eq!(e.location().unwrap().line, MAX_VIPS + 2, "{e}");
        assert!(e.reason().contains("too many vips"), "{e}");
    }

    #[test]
    fn load_names_the_file_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = load(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(
            e.to_string().starts_with(&missing.display().to_string()),
            "{e}"
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "maglev_m = 4\n").unwrap();
        let e = load(&bad).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}:1:12: ", bad.display())),
            "{e}"
        );
    }

    /// Truncations and single-byte corruptions of a real config: each is either accepted or
    /// rejected with a location inside the text, never a panic.
    #[test]
    fn damaged_configs_never_panic() {
        let lines = BASIC.lines().count() + 1;
        let mut cuts: Vec<String> = BASIC
            .char_indices()
            .map(|(i, _)| BASIC[..i].to_string())
            .collect();
        for (i, _) in BASIC.char_indices().step_by(7) {
            for c in ['"', '[', '=', '\n', 'é', '0'] {
                let mut s = BASIC.to_string();
                s.replace_range(
                    i..i + BASIC[i..].chars().next().unwrap().len_utf8(),
                    &c.to_string(),
                );
                cuts.push(s);
            }
        }
        for text in &cuts {
            if let Err(e) = parse_str(text, "t") {
                let at = e.location().unwrap();
                assert!(at.line >= 1 && at.line <= lines && at.column >= 1, "{e}");
            }
        }
    }

    #[test]
    fn health_checks_take_documented_defaults() {
        let config = parse_str(
            &one_vip("admin = \"127.0.0.1:9191\"", "[vip.health]", ""),
            "t",
        )
        .unwrap();
        assert_eq!(config.admin, Some("127.0.0.1:9191".parse().unwrap()));
        assert_eq!(
            config.vips[0].health,
            Some(HealthCheck {
                kind: CheckKind::Tcp,
                port: 80,
                interval_ms: health_defaults::INTERVAL_MS,
                timeout_ms: health_defaults::TIMEOUT_MS,
                rise: health_defaults::RISE,
                fall: health_defaults::FALL,
            })
        );
        let text = one_vip(
            "",
            "[vip.health]\nkind = \"http\"\nport = 8080\npath = \"/healthz?full=1\"\n\
             expect_status = 204\ninterval_ms = 50",
            "health_port = 9000",
        );
        let config = parse_str(&text, "t").unwrap();
        let h = config.vips[0].health.as_ref().unwrap();
        assert_eq!(
            h.kind,
            CheckKind::Http {
                path: "/healthz?full=1".into(),
                expect_status: 204
            }
        );
        // The default timeout shrinks to a short interval.
        assert_eq!((h.port, h.interval_ms, h.timeout_ms), (8080, 50, 50));
        assert_eq!(config.vips[0].backends[0].health_port, Some(9000));
        assert!(parse_str(&one_vip("", "", ""), "t").unwrap().vips[0]
            .health
            .is_none());
    }

    /// The commented `[vip.health]` block of the example is a working config once
    /// uncommented, with the values its comments give.
    #[test]
    fn the_examples_health_block_parses_when_uncommented() {
        let uncommented: String = BASIC
            .lines()
            .map(|l| {
                let t = l.trim_start();
                match t.strip_prefix("# ") {
                    Some(rest)
                        if rest.starts_with("[vip.health]")
                            || rest.split_once(" = ").is_some_and(|(k, _)| {
                                !k.contains(' ') && !k.is_empty() && l.starts_with("  #")
                            }) =>
                    {
                        format!("  {rest}")
                    }
                    _ => l.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(
            uncommented, BASIC,
            "the example has a commented health block"
        );
        let config = parse_str(&uncommented, "basic.toml").unwrap();
        let h = config.vips[0]
            .health
            .as_ref()
            .expect("web has health checks");
        assert_eq!(
            h.kind,
            CheckKind::Http {
                path: "/healthz".into(),
                expect_status: 200
            }
        );
        assert_eq!(
            (h.port, h.interval_ms, h.timeout_ms, h.rise, h.fall),
            (8080, 2000, 1000, 2, 3)
        );
    }

    #[test]
    fn health_errors_name_line_and_reason() {
        let health = |lines: &str| one_vip("", &format!("[vip.health]\n{lines}"), "");
        let cases: Vec<(&str, String, usize, &str)> = vec![
            (
                "zero interval",
                health("interval_ms = 0"),
                8,
                "health.interval_ms 0 is out of range",
            ),
            (
                "timeout above interval",
                health("interval_ms = 100\ntimeout_ms = 200"),
                9,
                "timeout_ms 200 is out of range 1..=100",
            ),
            ("zero rise", health("rise = 0"), 8, "health.rise 0"),
            (
                "huge fall",
                health("fall = 100000"),
                8,
                "health.fall 100000",
            ),
            (
                "path on tcp",
                health("path = \"/\""),
                8,
                "needs kind = \"http\"",
            ),
            (
                "relative path",
                health("kind = \"http\"\npath = \"healthz\""),
                9,
                "must start with '/'",
            ),
            (
                "path with space",
                health("kind = \"http\"\npath = \"/a b\""),
                9,
                "printable ASCII",
            ),
            (
                "bad status",
                health("kind = \"http\"\nexpect_status = 99"),
                9,
                "not an HTTP status",
            ),
            (
                "zero port",
                health("port = 0"),
                8,
                "health.port must not be 0",
            ),
            (
                "zero backend port",
                one_vip("", "", "health_port = 0"),
                11,
                "health_port must not be 0",
            ),
            (
                "bad admin",
                one_vip("admin = \"localhost\"", "", ""),
                1,
                "admin: bad address",
            ),
        ];
        for (what, text, line, phrase) in cases {
            let e = error(&text);
            assert!(matches!(e, ConfigError::Invalid { .. }), "{what}: {e:?}");
            assert_eq!(e.location().unwrap().line, line, "{what}: {e}\n{text}");
            assert!(e.reason().contains(phrase), "{what}: {e}");
        }
        // An any-port VIP has no port to check unless one is given.
        let any = health("").replace("port = 80", "port = 0");
        let e = error(&any);
        assert!(e.reason().contains("health.port"), "{e}");
        assert!(parse_str(
            &any.replace("[vip.health]\n", "[vip.health]\nport = 81\n"),
            "t"
        )
        .is_ok());
        // Shape errors are syntax errors, with a line too.
        let e = error(&health("kind = \"icmp\""));
        assert!(
            matches!(e, ConfigError::Syntax { .. })
                && e.reason().contains("unknown variant `icmp`"),
            "{e}"
        );
        assert_eq!(e.location().unwrap().line, 8, "{e}");
        let e = error(&health("intervall_ms = 5"));
        assert!(e.reason().contains("unknown field `intervall_ms`"), "{e}");
    }

    #[test]
    fn primes() {
        let primes: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537) && is_prime(4093) && !is_prime(65535));
        assert!(is_prime(16_777_213) && !is_prime(MAX_TABLE_SIZE));
    }

    #[test]
    fn admin_token_and_tls_files_are_read_and_tls_needs_both() {
        let text = one_vip(
            "admin_token_file = \"admin.token\"\nadmin_tls_cert = \"a.crt\"\nadmin_tls_key = \"a.key\"",
            "",
            "",
        );
        let config = parse_str(&text, "t.toml").unwrap();
        assert_eq!(
            config.admin_security,
            AdminSecurityConfig {
                token_file: Some("admin.token".into()),
                tls: Some(("a.crt".into(), "a.key".into())),
            }
        );
        let err = parse_str(&one_vip("admin_tls_cert = \"a.crt\"", "", ""), "t.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.toml:1:18: admin_tls_cert and admin_tls_key go together"),
            "{err}"
        );
        let err = parse_str(&one_vip("admin_token_file = \"\"", "", ""), "t.toml").unwrap_err();
        assert!(
            err.to_string().contains("admin_token_file: empty path"),
            "{err}"
        );
    }
}
