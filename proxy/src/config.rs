//! The proxy's TOML config: the fixed keys of issue 20 (`admin`, `[[listener]]` address/tls,
//! `[[route]]` path_prefix/host/pool, `[[pool]]` name/balance, `[pool.health]` as the L4
//! `[vip.health]`, `[[pool.backend]]` address/weight) plus the proxy's own.
//!
//! As with the L4 config (`flowgate_driver::config`), serde reads the text into `raw` structs
//! whose checked values keep their spans, and every error reads `FILE:LINE:COL: reason`
//! through the driver's [`Source`]. Files named by the config (certificates, keys, error
//! pages) are read here, relative to the config's folder, so a config whose certificate is
//! missing is refused like any other bad config and a reload keeps the running one.
//!
//! ```toml
//! admin = "127.0.0.1:9091"
//! [[listener]]
//! address = "0.0.0.0:8443"
//! tls = { cert = "cert.pem", key = "key.pem", sni = [{ name = "b.example", cert = "b.pem", key = "b.key" }] }
//! [[route]]
//! path_prefix = "/"           # longest prefix wins
//! host = "a.example"          # optional
//! pool = "web"
//! intercept_errors = true     # backend 5xx answered with the proxy's [[error_page]]
//! cache = true                # RFC 9111 shared cache ([cache]); default false
//! compress = true             # gzip/br/zstd by Accept-Encoding; default false
//! compress_prefer = ["br", "zstd", "gzip"]
//! compress_types = ["text/*", "application/json"]
//! compress_min_bytes = 256
//! compress_levels = { gzip = 6, br = 4, zstd = 3 }
//! [[pool]]
//! name = "web"
//! balance = "maglev"          # round-robin | least-requests | p2c | random | maglev
//! hash = "cookie:session"     # maglev key: client-ip (default) | header:NAME | cookie:NAME
//! protocol = "http1"          # to the backends: http1 (pooled) | h2 (prior knowledge)
//! retries = 2                 # idempotent requests retried on another backend
//! max_fails = 3               # passive: consecutive connect errors / 5xx before ejection
//! eject_ms = 10000            # passive: ejection time (doubles while it keeps failing)
//! hide_headers = ["x-backend-id"]
//! cookie = { name = "FGSRV", key = "a secret of 16 bytes or more" }
//!   [pool.health]             # the keys of the L4 [vip.health]; port: the backend's
//!   kind = "http"
//!   path = "/health"
//!   interval_ms = 500
//!   [[pool.backend]]
//!   address = "127.0.0.1:8081"
//!   weight = 1
//! [limits]                    # all optional, defaults below in `Limits`
//! rate_per_second = 100.0
//! rate_burst = 200.0
//! [timeouts]                  # all optional, defaults below in `Timeouts`
//! header_read_ms = 10000
//! park_ms = 1000              # an idle plain HTTP/1 connection leaves hyper after this
//! [cache]
//! max_bytes = 268435456       # what the cache holds, in bytes
//! max_object_bytes = 16777216 # larger responses are streamed, not stored
//! store_set_cookie = false    # true: store responses with Set-Cookie (never replayed)
//! [access_log]
//! path = "-"                  # "-" = stdout
//! format = "json"             # json | common
//! [[error_page]]
//! status = [502, 503, 504]
//! file = "5xx.html"
//! ```

use flowgate_driver::config::{HealthCheck, HealthKeys, Source};
use flowgate_driver::ConfigError;
use http::header::HeaderName;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use toml::Spanned;

/// Where the proxy's admin API listens when the config does not say (the L4 daemon's
/// default plus one, so both tiers can run on one host).
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9091";
/// Most backends in one pool (Maglev indices are `u16`, one value marks an empty slot).
pub const MAX_POOL_BACKENDS: usize = 65534;
/// Maglev table size per pool (prime): about 250 slots per backend for 256 backends.
pub const POOL_MAGLEV_M: u32 = 65537;

/// A validated config.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub admin: SocketAddr,
    pub listeners: Vec<ListenerConfig>,
    pub routes: Vec<RouteConfig>,
    pub pools: Vec<PoolConfig>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub access_log: Option<AccessLogConfig>,
    /// Status → page body.
    pub error_pages: HashMap<u16, bytes::Bytes>,
    pub cache: CacheConfig,
}

/// The shared response cache (`[cache]`), used by routes with `cache = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bound on stored bodies and headers, in bytes.
    pub max_bytes: u64,
    /// A response larger than this is streamed to the client and not stored.
    pub max_object_bytes: u64,
    /// Whether a response with a backend's `Set-Cookie` is stored. Off (the default), it is
    /// not, as Varnish and nginx do; on, it is stored as RFC 9111 §7.3 allows, but its
    /// `Set-Cookie` is never sent from the cache to another client.
    pub store_set_cookie: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 256 * 1024 * 1024,
            max_object_bytes: 16 * 1024 * 1024,
            store_set_cookie: false,
        }
    }
}

/// A route's compression (`compress = true` and the `compress_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressConfig {
    /// Codings in the server's order of preference (ties of the client's q-values).
    pub prefer: Vec<crate::compress::Codec>,
    /// Content types compressed: `major/*` or exact, lower case.
    pub types: Vec<String>,
    /// Bodies whose `Content-Length` is under this go as they are.
    pub min_bytes: u64,
    /// Levels by codec; codecs not named use [`crate::compress::Codec::default_level`].
    pub levels: Vec<(crate::compress::Codec, i32)>,
}

impl CompressConfig {
    pub fn level(&self, codec: crate::compress::Codec) -> i32 {
        self.levels
            .iter()
            .find(|(c, _)| *c == codec)
            .map_or(codec.default_level(), |&(_, l)| l)
    }
}

impl Default for CompressConfig {
    fn default() -> Self {
        CompressConfig {
            prefer: crate::compress::Codec::ALL.to_vec(),
            types: [
                "text/*",
                "application/json",
                "application/javascript",
                "application/x-javascript",
                "application/xml",
                "application/xhtml+xml",
                "application/rss+xml",
                "application/atom+xml",
                "application/manifest+json",
                "application/ld+json",
                "image/svg+xml",
            ]
            .map(str::to_string)
            .to_vec(),
            min_bytes: 256,
            levels: vec![],
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// `None` = plain HTTP/1.1 and h2c (prior knowledge).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Lower-case host without port; `None` = any host.
    pub host: Option<String>,
    pub path_prefix: String,
    /// Index into [`ProxyConfig::pools`].
    pub pool: usize,
    pub intercept_errors: bool,
    /// Responses stored in and answered from the shared cache (RFC 9111).
    pub cache: bool,
    /// `None` = responses go as the backend sent them.
    pub compress: Option<CompressConfig>,
}

/// How a pool picks a backend for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Smooth weighted round robin (nginx's).
    RoundRobin,
    /// Fewest requests in flight per unit of weight.
    LeastRequests,
    /// Power of two choices: two random backends, the one with fewer requests in flight.
    P2c,
    /// Weighted random.
    Random,
    /// `core`'s Maglev on the pool's `hash` key.
    Maglev,
}

/// What Maglev hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    ClientIp,
    Header(HeaderName),
    Cookie(String),
}

/// The protocol spoken to a pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upstream {
    /// HTTP/1.1 with a pool of keep-alive connections.
    Http1,
    /// HTTP/2 with prior knowledge (h2c): one multiplexed connection per backend.
    H2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub name: String,
    pub balance: Balance,
    pub hash: HashOn,
    pub upstream: Upstream,
    pub backends: Vec<BackendConfig>,
    /// `None` = no active checks (only passive ejection).
    pub health: Option<HealthCheck>,
    pub cookie: Option<CookieConfig>,
    pub retries: u32,
    pub max_fails: u32,
    pub eject_ms: u32,
    /// Response headers removed besides `Server` and `X-Powered-By`.
    pub hide_headers: Vec<HeaderName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub address: SocketAddr,
    /// 0 = draining: no new requests, but a persistence cookie naming it is moved on.
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    pub name: String,
    /// HMAC-SHA256 key.
    pub key: Vec<u8>,
}

/// Protection limits (`[limits]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Per-client-IP token bucket; `None` = no rate limit.
    pub rate: Option<Rate>,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Request head (request line + headers) in bytes; over it → 431.
    pub max_header_bytes: usize,
    /// Header fields in a request; over it → 431.
    pub max_headers: usize,
    /// Request target in bytes; over it → 414.
    pub max_uri_bytes: usize,
    /// Request body in bytes; over it → 413.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate: None,
            max_connections: 20_000,
            max_connections_per_client: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// Timeouts (`[timeouts]`), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A request head (and a TLS handshake) must arrive within this.
    pub header_read_ms: u32,
    /// A connection with no request in flight and no byte received is closed after this.
    pub idle_ms: u32,
    /// Connecting to a backend.
    pub connect_ms: u32,
    /// A backend's response head after the request was sent.
    pub response_ms: u32,
    /// Graceful shutdown: in-flight requests get this long to finish.
    pub shutdown_ms: u32,
    /// A plain HTTP/1 connection with no request in flight and no byte received for this
    /// long is parked: its HTTP state and buffers are freed and only the socket is kept
    /// until its next request (or `idle_ms`).
    pub park_ms: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read_ms: 10_000,
            idle_ms: 60_000,
            connect_ms: 2_000,
            response_ms: 60_000,
            shutdown_ms: 10_000,
            park_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// `None` = stdout.
    pub path: Option<PathBuf>,
    pub json: bool,
}

/// Read and validate the config at `path`; errors name `path`, relative file names in it
/// are taken from its folder.
pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_str(&text, &origin, base)
}

/// Parse and validate `text` (reported as file `origin`); relative file names are taken
/// from folder `base`.
pub fn parse_str(text: &str, origin: &str, base: &Path) -> Result<ProxyConfig, ConfigError> {
    let source = Source::new(text, origin);
    let raw: raw::Config = source.parse()?;
    Validator { source, base }.validate(raw)
}

/// The serde-facing shape of the file (`deny_unknown_fields` everywhere: a misspelt key is
/// an error, not a silent default).
mod raw {
    use super::{Balance, HealthKeys, Upstream};
    use serde::Deserialize;
    use toml::Spanned;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        pub admin: Option<Spanned<String>>,
        #[serde(default)]
        pub listener: Vec<Listener>,
        #[serde(default)]
        pub route: Vec<Route>,
        #[serde(default)]
        pub pool: Vec<Pool>,
        #[serde(default)]
        pub limits: Limits,
        #[serde(default)]
        pub timeouts: Timeouts,
        pub access_log: Option<AccessLog>,
        #[serde(default)]
        pub error_page: Vec<ErrorPage>,
        pub cache: Option<Cache>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Cache {
        pub max_bytes: Option<Spanned<u64>>,
        pub max_object_bytes: Option<Spanned<u64>>,
        pub store_set_cookie: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Listener {
        pub address: Spanned<String>,
        pub tls: Option<Spanned<Tls>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub cert: Spanned<String>,
        pub key: Spanned<String>,
        #[serde(default)]
        pub sni: Vec<Sni>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sni {
        pub name: Spanned<String>,
        pub cert: Spanned<String>,
        pub key: Spanned<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Route {
        pub path_prefix: Spanned<String>,
        pub host: Option<Spanned<String>>,
        pub pool: Spanned<String>,
        #[serde(default)]
        pub intercept_errors: bool,
        #[serde(default)]
        pub cache: bool,
        #[serde(default)]
        pub compress: bool,
        pub compress_prefer: Option<Spanned<Vec<String>>>,
        pub compress_types: Option<Spanned<Vec<String>>>,
        pub compress_min_bytes: Option<u64>,
        pub compress_levels: Option<Spanned<std::collections::BTreeMap<String, i32>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Pool {
        pub name: Spanned<String>,
        pub balance: Balance,
        pub hash: Option<Spanned<String>>,
        pub protocol: Option<Upstream>,
        pub retries: Option<Spanned<u32>>,
        pub max_fails: Option<Spanned<u32>>,
        pub eject_ms: Option<Spanned<u32>>,
        #[serde(default)]
        pub hide_headers: Vec<Spanned<String>>,
        pub cookie: Option<Cookie>,
        pub health: Option<HealthKeys>,
        #[serde(default)]
        pub backend: Vec<Backend>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Cookie {
        pub name: Spanned<String>,
        pub key: Spanned<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Backend {
        pub address: Spanned<String>,
        pub weight: Option<Spanned<u32>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Limits {
        pub rate_per_second: Option<Spanned<f64>>,
        pub rate_burst: Option<Spanned<f64>>,
        pub max_connections: Option<Spanned<u32>>,
        pub max_connections_per_client: Option<Spanned<u32>>,
        pub max_header_bytes: Option<Spanned<u32>>,
        pub max_headers: Option<Spanned<u32>>,
        pub max_uri_bytes: Option<Spanned<u32>>,
        pub max_body_bytes: Option<Spanned<u64>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Timeouts {
        pub header_read_ms: Option<Spanned<u32>>,
        pub idle_ms: Option<Spanned<u32>>,
        pub connect_ms: Option<Spanned<u32>>,
        pub response_ms: Option<Spanned<u32>>,
        pub shutdown_ms: Option<Spanned<u32>>,
        pub park_ms: Option<Spanned<u32>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AccessLog {
        pub path: Option<String>,
        #[serde(default)]
        pub format: Format,
    }

    #[derive(Deserialize, Default, PartialEq, Eq)]
    #[serde(rename_all = "lowercase")]
    pub enum Format {
        #[default]
        Common,
        Json,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ErrorPage {
        pub status: Spanned<Vec<u16>>,
        pub file: Spanned<String>,
    }
}

struct Validator<'a> {
    source: Source<'a>,
    base: &'a Path,
}

impl Validator<'_> {
    fn file(&self, name: &Spanned<String>, what: &str) -> Result<Vec<u8>, ConfigError> {
        let path = self.base.join(name.get_ref());
        std::fs::read(&path).map_err(|e| {
            self.source.invalid(
                name.span(),
                format!("{what}: cannot read {}: {e}", path.display()),
            )
        })
    }

    fn validate(&self, raw: raw::Config) -> Result<ProxyConfig, ConfigError> {
        let s = &self.source;
        let admin = match &raw.admin {
            Some(v) => s.check(v, |a| parse_addr(a, "admin"))?,
            None => parse_addr(DEFAULT_ADMIN, "admin").map_err(|r| s.invalid(0..0, r))?,
        };
        if raw.listener.is_empty() {
            return Err(s.invalid(0..0, "no [[listener]]: the proxy needs at least one"));
        }
        let mut listeners = Vec::new();
        let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
        for l in &raw.listener {
            let address = s.check(&l.address, |a| parse_addr(a, "listener.address"))?;
            if address.port() != 0 {
                if let Some(first) = seen.insert(address, l.address.span().start) {
                    return Err(s.invalid(
                        l.address.span(),
                        format!(
                            "duplicate listener {address} (first at line {})",
                            s.locate(first).line
                        ),
                    ));
                }
            }
            let tls = match &l.tls {
                Some(t) => Some(self.tls(t)?),
                None => None,
            };
            listeners.push(ListenerConfig { address, tls });
        }
        let pools = self.pools(&raw.pool)?;
        let mut routes = Vec::new();
        let mut route_keys: HashMap<(Option<String>, String), usize> = HashMap::new();
        for r in &raw.route {
            let path_prefix = s.check(&r.path_prefix, |p| {
                if p.starts_with('/') {
                    Ok(p.clone())
                } else {
                    Err(format!("route.path_prefix '{p}' must start with '/'"))
                }
            })?;
            let host = match &r.host {
                Some(h) => Some(s.check(h, |h| {
                    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
                        Err(format!("route.host '{h}' is not a host name"))
                    } else {
                        Ok(h.to_ascii_lowercase())
                    }
                })?),
                None => None,
            };
            let pool = s.check(&r.pool, |name| {
                pools
                    .iter()
                    .position(|p| &p.name == name)
                    .ok_or_else(|| format!("route.pool: no [[pool]] named '{name}'"))
            })?;
            if let Some(first) = route_keys.insert(
                (host.clone(), path_prefix.clone()),
                r.path_prefix.span().start,
            ) {
                return Err(s.invalid(
                    r.path_prefix.span(),
                    format!(
                        "duplicate route {}{path_prefix} (first at line {})",
                        host.as_deref().unwrap_or("*"),
                        s.locate(first).line
                    ),
                ));
            }
            routes.push(RouteConfig {
                host,
                path_prefix,
                pool,
                intercept_errors: r.intercept_errors,
                cache: r.cache,
                compress: self.compress(r)?,
            });
        }
        let mut error_pages = HashMap::new();
        for page in &raw.error_page {
            let body = bytes::Bytes::from(self.file(&page.file, "error_page.file")?);
            for &status in page.status.get_ref() {
                if !(400..=599).contains(&status) {
                    return Err(s.invalid(
                        page.status.span(),
                        format!("error_page.status {status} is not an error status (400..=599)"),
                    ));
                }
                error_pages.insert(status, body.clone());
            }
        }
        Ok(ProxyConfig {
            admin,
            listeners,
            routes,
            pools,
            limits: self.limits(&raw.limits)?,
            timeouts: self.timeouts(&raw.timeouts)?,
            access_log: raw.access_log.map(|a| AccessLogConfig {
                path: a.path.filter(|p| p != "-").map(|p| self.base.join(p)),
                json: a.format == raw::Format::Json,
            }),
            error_pages,
            cache: self.cache(raw.cache.as_ref())?,
        })
    }
    fn cache(&self, raw: Option<&raw::Cache>) -> Result<CacheConfig, ConfigError> {
        let d = CacheConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        let max_bytes = match &raw.max_bytes {
            Some(v) => self.source.check(v, |&x| {
                if x >= 1024 {
                    Ok(x)
                } else {
                    Err("cache.max_bytes must be at least 1024".to_string())
                }
            })?,
            None => d.max_bytes,
        };
        let max_object_bytes = match &raw.max_object_bytes {
            Some(v) => self.source.check(v, |&x| {
                if x <= max_bytes {
                    Ok(x)
                } else {
                    Err(format!(
                        "cache.max_object_bytes {x} is over cache.max_bytes {max_bytes}"
                    ))
                }
            })?,
            None => d.max_object_bytes.min(max_bytes / 4),
        };
        Ok(CacheConfig {
            max_bytes,
            max_object_bytes,
            store_set_cookie: raw.store_set_cookie.unwrap_or(d.store_set_cookie),
        })
    }
    fn compress(&self, r: &raw::Route) -> Result<Option<CompressConfig>, ConfigError> {
        use crate::compress::Codec;
        let s = &self.source;
        let named = r.compress_prefer.is_some()
            || r.compress_types.is_some()
            || r.compress_min_bytes.is_some()
            || r.compress_levels.is_some();
        if !r.compress {
            if named {
                return Err(s.invalid(
                    r.path_prefix.span(),
                    "route has compress_* keys but not compress = true",
                ));
            }
            return Ok(None);
        }
        let mut c = CompressConfig::default();
        let codec = |t: &str| {
            Codec::from_token(t)
                .ok_or_else(|| format!("'{t}' is not a coding the proxy makes (br, zstd, gzip)"))
        };
        if let Some(p) = &r.compress_prefer {
            c.prefer = s.check(p, |list| {
                let prefer = list
                    .iter()
                    .map(|t| codec(t))
                    .collect::<Result<Vec<_>, _>>()?;
                if prefer.is_empty() {
                    Err("compress_prefer names no coding".to_string())
                } else {
                    Ok(prefer)
                }
            })?;
        }
        if let Some(t) = &r.compress_types {
            c.types = s.check(t, |list| {
                list.iter()
                    .map(|t| {
                        let t = t.trim().to_ascii_lowercase();
                        match t.split_once('/') {
                            Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok(t),
                            _ => Err(format!("compress_types: '{t}' is not a media type")),
                        }
                    })
                    .collect()
            })?;
        }
        if let Some(m) = r.compress_min_bytes {
            c.min_bytes = m;
        }
        if let Some(l) = &r.compress_levels {
            c.levels = s.check(l, |map| {
                map.iter()
                    .map(|(t, &level)| {
                        let k = codec(t)?;
                        if k.levels().contains(&level) {
                            Ok((k, level))
                        } else {
                            Err(format!(
                                "compress_levels.{t} {level} is out of range {:?}",
                                k.levels()
                            ))
                        }
                    })
                    .collect()
            })?;
        }
        Ok(Some(c))
    }

    fn tls(&self, t: &Spanned<raw::Tls>) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        let tls = t.get_ref();
        let default = self.certified_key(&tls.cert, &tls.key)?;
        let mut by_name = HashMap::new();
        for sni in &tls.sni {
            let name = self.source.check(&sni.name, |n| {
                rustls::pki_types::DnsName::try_from(n.as_str())
                    .map(|_| n.to_ascii_lowercase())
                    .map_err(|_| format!("tls.sni.name '{n}' is not a DNS name"))
            })?;
            by_name.insert(name, self.certified_key(&sni.cert, &sni.key)?);
        }
        crate::tls::server_config(default, by_name).map_err(|e| self.source.invalid(t.span(), e))
    }

    fn certified_key(
        &self,
        cert: &Spanned<String>,
        key: &Spanned<String>,
    ) -> Result<Arc<rustls::sign::CertifiedKey>, ConfigError> {
        let chain = crate::tls::parse_certs(&self.file(cert, "tls.cert")?)
            .map_err(|e| self.source.invalid(cert.span(), format!("tls.cert: {e}")))?;
        let key_der = crate::tls::parse_key(&self.file(key, "tls.key")?)
            .map_err(|e| self.source.invalid(key.span(), format!("tls.key: {e}")))?;
        crate::tls::certified_key(chain, key_der)
            .map_err(|e| self.source.invalid(key.span(), format!("tls.key: {e}")))
    }

    fn pools(&self, raw: &[raw::Pool]) -> Result<Vec<PoolConfig>, ConfigError> {
        let s = &self.source;
        let mut pools: Vec<PoolConfig> = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for p in raw {
            let name = s.check(&p.name, |n| {
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
                    Err(format!(
                        "pool.name '{n}' must be printable ASCII without '/' or spaces"
                    ))
                } else {
                    Ok(n.clone())
                }
            })?;
            if let Some(first) = names.insert(name.clone(), p.name.span().start) {
                return Err(s.invalid(
                    p.name.span(),
                    format!(
                        "duplicate pool name '{name}' (first defined at line {})",
                        s.locate(first).line
                    ),
                ));
            }
            let owner = format!("pool '{name}'");
            if p.backend.is_empty() {
                return Err(s.invalid(p.name.span(), format!("{owner} has no [[pool.backend]]")));
            }
            if p.backend.len() > MAX_POOL_BACKENDS {
                return Err(s.invalid(
                    p.backend[MAX_POOL_BACKENDS].address.span(),
                    format!("{owner}: at most {MAX_POOL_BACKENDS} backends"),
                ));
            }
            let mut backends = Vec::new();
            let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
            for b in &p.backend {
                let address = s.check(&b.address, |a| {
                    let addr = parse_addr(a, "backend.address")?;
                    if addr.port() == 0 {
                        return Err(format!("backend.address '{a}' needs a port"));
                    }
                    Ok(addr)
                })?;
                if let Some(first) = seen.insert(address, b.address.span().start) {
                    return Err(s.invalid(
                        b.address.span(),
                        format!(
                            "duplicate backend {address} in {owner} (first at line {})",
                            s.locate(first).line
                        ),
                    ));
                }
                let weight = match &b.weight {
                    Some(w) => s.check(w, |&w| {
                        if w <= flowgate_driver::config::MAX_WEIGHT {
                            Ok(w)
                        } else {
                            Err(format!(
                                "backend.weight {w} is over {}",
                                flowgate_driver::config::MAX_WEIGHT
                            ))
                        }
                    })?,
                    None => 1,
                };
                backends.push(BackendConfig { address, weight });
            }
            let hash = match &p.hash {
                Some(h) => s.check(h, |h| parse_hash(h))?,
                None => HashOn::ClientIp,
            };
            let cookie = match &p.cookie {
                Some(c) => Some(CookieConfig {
                    name: s.check(&c.name, |n| {
                        // RFC 6265 cookie-name is an RFC 9110 token.
                        if !n.is_empty() && HeaderName::from_str(n).is_ok() {
                            Ok(n.clone())
                        } else {
                            Err(format!("cookie.name '{n}' is not a token"))
                        }
                    })?,
                    key: s.check(&c.key, |k| {
                        if k.len() >= 16 {
                            Ok(k.as_bytes().to_vec())
                        } else {
                            Err("cookie.key must be at least 16 bytes".to_string())
                        }
                    })?,
                }),
                None => None,
            };
            let hide_headers = p
                .hide_headers
                .iter()
                .map(|h| {
                    s.check(h, |h| {
                        HeaderName::from_str(h)
                            .map_err(|_| format!("hide_headers: '{h}' is not a header name"))
                    })
                })
                .collect::<Result<_, _>>()?;
            let health = match &p.health {
                // Port 0: each backend is probed on its own port.
                Some(h) => Some(s.health_check(h, &owner, 0)?),
                None => None,
            };
            let small = |v: &Option<Spanned<u32>>, key: &str, max: u32, default: u32| match v {
                Some(v) => s.check(v, |&x| {
                    if x <= max {
                        Ok(x)
                    } else {
                        Err(format!("{owner}: {key} {x} is over {max}"))
                    }
                }),
                None => Ok(default),
            };
            pools.push(PoolConfig {
                retries: small(&p.retries, "retries", 10, 2)?,
                max_fails: small(&p.max_fails, "max_fails", 1000, 3)?,
                eject_ms: small(&p.eject_ms, "eject_ms", 3_600_000, 10_000)?,
                name,
                balance: p.balance,
                hash,
                upstream: p.protocol.unwrap_or(Upstream::Http1),
                backends,
                health,
                cookie,
                hide_headers,
            });
        }
        Ok(pools)
    }

    fn limits(&self, raw: &raw::Limits) -> Result<Limits, ConfigError> {
        let s = &self.source;
        let d = Limits::default();
        let count = |v: &Option<Spanned<u32>>, key: &str, default: usize| match v {
            Some(v) => s.check(v, |&x| {
                if x >= 1 {
                    Ok(x as usize)
                } else {
                    Err(format!("limits.{key} must be at least 1"))
                }
            }),
            None => Ok(default),
        };
        let positive = |v: &Spanned<f64>, key: &str| {
            s.check(v, |&x| {
                if x.is_finite() && x > 0.0 {
                    Ok(x)
                } else {
                    Err(format!("limits.{key} must be a positive number"))
                }
            })
        };
        let rate = match (&raw.rate_per_second, &raw.rate_burst) {
            (Some(r), burst) => {
                let per_second = positive(r, "rate_per_second")?;
                let burst = match burst {
                    Some(b) => positive(b, "rate_burst")?.max(1.0),
                    None => per_second.max(1.0),
                };
                Some(Rate { per_second, burst })
            }
            (None, Some(b)) => {
                return Err(s.invalid(b.span(), "limits.rate_burst needs limits.rate_per_second"))
            }
            (None, None) => None,
        };
        Ok(Limits {
            rate,
            max_connections: count(&raw.max_connections, "max_connections", d.max_connections)?,
            max_connections_per_client: count(
                &raw.max_connections_per_client,
                "max_connections_per_client",
                d.max_connections_per_client,
            )?,
            max_header_bytes: match &raw.max_header_bytes {
                // hyper's smallest read buffer.
                Some(v) => s.check(v, |&x| {
                    if (8192..=1 << 20).contains(&x) {
                        Ok(x as usize)
                    } else {
                        Err(format!(
                            "limits.max_header_bytes {x} is out of range 8192..=1048576"
                        ))
                    }
                })?,
                None => d.max_header_bytes,
            },
            max_headers: count(&raw.max_headers, "max_headers", d.max_headers)?,
            max_uri_bytes: count(&raw.max_uri_bytes, "max_uri_bytes", d.max_uri_bytes)?,
            max_body_bytes: raw
                .max_body_bytes
                .as_ref()
                .map_or(d.max_body_bytes, |v| *v.get_ref()),
        })
    }

    fn timeouts(&self, raw: &raw::Timeouts) -> Result<Timeouts, ConfigError> {
        let d = Timeouts::default();
        let ms = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
            Some(v) => self.source.check(v, |&x| {
                if x >= 1 {
                    Ok(x)
                } else {
                    Err(format!("timeouts.{key} must be at least 1 ms"))
                }
            }),
            None => Ok(default),
        };
        Ok(Timeouts {
            header_read_ms: ms(&raw.header_read_ms, "header_read_ms", d.header_read_ms)?,
            idle_ms: ms(&raw.idle_ms, "idle_ms", d.idle_ms)?,
            connect_ms: ms(&raw.connect_ms, "connect_ms", d.connect_ms)?,
            response_ms: ms(&raw.response_ms, "response_ms", d.response_ms)?,
            shutdown_ms: ms(&raw.shutdown_ms, "shutdown_ms", d.shutdown_ms)?,
            park_ms: ms(&raw.park_ms, "park_ms", d.park_ms)?,
        })
    }
}

fn parse_addr(s: &str, key: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(s).map_err(|_| format!("{key}: bad address '{s}' (expected IP:PORT)"))
}

fn parse_hash(s: &str) -> Result<HashOn, String> {
    match s.split_once(':') {
        None if s == "client-ip" => Ok(HashOn::ClientIp),
        Some(("header", name)) => HeaderName::from_str(name)
            .map(HashOn::Header)
            .map_err(|_| format!("hash: '{name}' is not a header name")),
        Some(("cookie", name)) if !name.is_empty() => Ok(HashOn::Cookie(name.to_string())),
        _ => Err(format!(
            "hash '{s}': expected client-ip, header:NAME or cookie:NAME"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
[[listener]]
address = \"127.0.0.1:0\"
[[route]]
path_prefix = \"/\"
pool = \"web\"
[[pool]]
name = \"web\"
balance = \"round-robin\"
  [pool.health]
  kind = \"http\"
  path = \"/health\"
  interval_ms = 500
  [[pool.backend]]
  address = \"127.0.0.1:8081\"
  weight = 1
";

    fn parse(text: &str) -> Result<ProxyConfig, ConfigError> {
        parse_str(text, "p.toml", Path::new("."))
    }

    #[test]
    fn the_fixed_keys_parse() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.admin.to_string(), DEFAULT_ADMIN);
        assert_eq!(c.listeners.len(), 1);
        assert!(c.listeners[0].tls.is_none());
        assert_eq!(c.routes[0].pool, 0);
        let pool = &c.pools[0];
        assert_eq!(pool.balance, Balance::RoundRobin);
        let health = pool.health.as_ref().unwrap();
        assert_eq!(health.interval_ms, 500);
        assert_eq!(health.port, 0, "probed on each backend's own port");
        assert_eq!(pool.backends[0].address.to_string(), "127.0.0.1:8081");
    }

    /// Each broken rule: the text replaced in MINIMAL, the line it is reported on, and a
    /// phrase of the reason.
    #[test]
    fn errors_name_line_and_reason() {
        let cases = [
            (
                "pool = \"web\"",
                "pool = \"nope\"",
                5,
                "no [[pool]] named 'nope'",
            ),
            (
                "balance = \"round-robin\"",
                "balance = \"fastest\"",
                8,
                "unknown variant",
            ),
            (
                "address = \"127.0.0.1:8081\"",
                "address = \"127.0.0.1\"",
                14,
                "bad address",
            ),
            (
                "interval_ms = 500",
                "interval_ms = 0",
                12,
                "pool 'web': health.interval_ms 0",
            ),
            (
                "path_prefix = \"/\"",
                "path_prefix = \"x\"",
                4,
                "must start with '/'",
            ),
            ("weight = 1", "weigth = 1", 15, "unknown field"),
        ];
        for (from, to, line, phrase) in cases {
            let text = MINIMAL.replace(from, to);
            let e = parse(&text).unwrap_err();
            assert_eq!(e.location().unwrap().line, line, "{e}");
            assert!(e.to_string().starts_with(&format!("p.toml:{line}:")), "{e}");
            assert!(e.to_string().contains(phrase), "{e}");
        }
    }

    #[test]
    fn acceleration_keys_parse_and_bad_ones_are_refused_at_their_line() {
        use crate::compress::Codec;
        let route = "pool = \"web\"\n";
        let with = |keys: &str| MINIMAL.replacen(route, &format!("{route}{keys}\n"), 1);
        let c = parse(&with(
            "cache = true\ncompress = true\ncompress_prefer = [\"gzip\", \"br\"]\n\
             compress_levels = { gzip = 9 }\ncompress_min_bytes = 10",
        ))
        .unwrap();
        assert!(c.routes[0].cache);
        let z = c.routes[0].compress.clone().unwrap();
        assert_eq!(z.prefer, [Codec::Gzip, Codec::Brotli]);
        assert_eq!((z.level(Codec::Gzip), z.level(Codec::Zstd)), (9, 3));
        assert_eq!(z.min_bytes, 10);
        let defaults = parse(MINIMAL).unwrap();
        assert!(!defaults.routes[0].cache && defaults.routes[0].compress.is_none());
        assert_eq!(defaults.cache, CacheConfig::default());
        let cases = [
            (
                "compress = true\ncompress_levels = { gzip = 12 }",
                7,
                "out of range",
            ),
            (
                "compress = true\ncompress_prefer = [\"lzma\"]",
                7,
                "not a coding",
            ),
            ("compress_min_bytes = 1", 4, "not compress = true"),
            (
                "[cache]\nmax_bytes = 4096\nmax_object_bytes = 8192",
                8,
                "over cache.max_bytes",
            ),
        ];
        for (keys, line, phrase) in cases {
            let e = parse(&with(keys)).unwrap_err();
            assert_eq!(e.location().unwrap().line, line, "{keys}: {e}");
            assert!(e.to_string().contains(phrase), "{e}");
        }
    }

    #[test]
    fn a_missing_certificate_is_refused_at_its_key() {
        let text = MINIMAL.replace(
            "address = \"127.0.0.1:0\"",
            "address = \"127.0.0.1:0\"\ntls = { cert = \"missing.pem\", key = \"k.pem\" }",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.location().unwrap().line, 3, "{e}");
        assert!(e.reason().contains("tls.cert: cannot read"), "{e}");
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proxy.toml");
        let c = load(&path).unwrap();
        assert_eq!(c.pools.len(), 2);
        assert_eq!(
            c.pools[1].hash,
            HashOn::Header(HeaderName::from_static("x-user"))
        );
        assert!(c.pools[0].cookie.is_some());
        assert_eq!(c.routes[1].host.as_deref(), Some("api.example.com"));
    }

    #[test]
    fn hash_keys() {
        assert_eq!(parse_hash("client-ip"), Ok(HashOn::ClientIp));
        assert_eq!(
            parse_hash("header:X-User"),
            Ok(HashOn::Header(HeaderName::from_static("x-user")))
        );
        assert_eq!(parse_hash("cookie:sid"), Ok(HashOn::Cookie("sid".into())));
        assert!(parse_hash("cookie:").is_err());
        assert!(parse_hash("url").is_err());
    }
}
