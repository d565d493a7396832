//! One config for every node, from etcd: `flowgate run --config etcd://HOST:PORT[,HOST:PORT…]/KEY`.
//!
//! The node reads the key at start, then watches it: each new revision is validated and
//! applied as one reload (the same atomic swap as SIGHUP), a bad one is refused (reason
//! logged, the running config kept, the revision and reason shown in `/status`). When etcd
//! cannot be reached the node keeps its last config and tries the next endpoint with a
//! growing pause, resuming the watch after the last revision it saw, so no revision is
//! missed across a reconnect.
//!
//! The client speaks etcd's v3 API through the JSON gateway every etcd v3 server serves on
//! its client port (`/v3/kv/range`, `/v3/kv/put`, `/v3/watch`, the gRPC messages mapped
//! to JSON): it rides on the HTTP client the crate already has (`reqwest`) instead of a
//! gRPC stack (tonic, prost and a `protoc` at build time) for three calls.

use crate::control::ControlPlane;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The first pause after every endpoint failed; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest pause between reconnection attempts.
const MAX_RETRY: Duration = Duration::from_secs(2);
/// How long a request (not the watch stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{url}: not an etcd URL (etcd://HOST:PORT[,HOST:PORT...]/KEY)")]
    BadUrl { url: String },
    #[error("etcd {endpoint}: {reason}")]
    Request { endpoint: String, reason: String },
    #[error("no etcd endpoint answered ({0})")]
    Unreachable(String),
    #[error("etcd key {key} holds no config: write one with `flowgate ctl push FILE --etcd URL`")]
    Missing { key: String },
    #[error("etcd key {key} at revision {revision}: the value is not UTF-8 text")]
    NotText { key: String, revision: i64 },
}

/// Where a config lives in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdKey {
    /// `host:port` of each member's client URL (plain HTTP).
    pub endpoints: Vec<String>,
    /// The key, without the leading `/` of the URL's path.
    pub key: String,
}

impl EtcdKey {
    /// Is `s` meant as an etcd URL (rather than a file path)?
    pub fn is_url(s: &str) -> bool {
        s.starts_with("etcd://")
    }

    /// `etcd://HOST:PORT[,HOST:PORT...]/KEY`.
    pub fn parse(url: &str) -> Result<EtcdKey, EtcdError> {
        let bad = || EtcdError::BadUrl { url: url.into() };
        let rest = url.strip_prefix("etcd://").ok_or_else(bad)?;
        let (hosts, key) = rest.split_once('/').ok_or_else(bad)?;
        let endpoints: Vec<String> = hosts.split(',').map(str::to_string).collect();
        let well_formed = |e: &String| {
            e.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        };
        if key.is_empty() || endpoints.is_empty() || !endpoints.iter().all(well_formed) {
            return Err(bad());
        }
        Ok(EtcdKey {
            endpoints,
            key: key.to_string(),
        })
    }

    /// The URL again (for logs and `/status`).
    pub fn url(&self) -> String {
        format!("etcd://{}/{}", self.endpoints.join(","), self.key)
    }
}

/// One revision of the key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The key's `mod_revision`.
    pub revision: i64,
    pub text: String,
}

/// The v3 JSON gateway's client for one key.
#[derive(Clone)]
pub struct EtcdClient {
    key: EtcdKey,
    http: reqwest::Client,
}

impl EtcdClient {
    pub fn new(key: EtcdKey) -> EtcdClient {
        EtcdClient {
            key,
            http: reqwest::Client::new(),
        }
    }

    pub fn key(&self) -> &EtcdKey {
        &self.key
    }

    /// `path` on the first endpoint that answers, in the order given.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut failures = Vec::new();
        for endpoint in &self.key.endpoints {
            match self.call_one(endpoint, path, body).await {
                Ok(v) => return Ok(v),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(EtcdError::Unreachable(failures.join("; ")))
    }

    async fn call_one(&self, endpoint: &str, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let failed = |reason: String| EtcdError::Request {
            endpoint: endpoint.into(),
            reason,
        };
        let answer = self
            .http
            .post(format!("http://{endpoint}{path}"))
            .timeout(REQUEST_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = answer.status();
        let v: Value = answer.json().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!("{status}: {v}")));
        }
        Ok(v)
    }

    /// The key's current value, or `None` when it does not exist.
    pub async fn get(&self) -> Result<Option<Revision>, EtcdError> {
        let v = self
            .call("/v3/kv/range", &json!({ "key": B64.encode(&self.key.key) }))
            .await?;
        match v["kvs"].get(0) {
            None => Ok(None),
            Some(kv) => self.revision_of(kv).map(Some),
        }
    }

    /// Write `text`; returns the revision it got.
    pub async fn put(&self, text: &str) -> Result<i64, EtcdError> {
        let v = self
            .call(
                "/v3/kv/put",
                &json!({ "key": B64.encode(&self.key.key), "value": B64.encode(text) }),
            )
            .await?;
        Ok(int(&v["header"]["revision"]))
    }

    fn revision_of(&self, kv: &Value) -> Result<Revision, EtcdError> {
        let revision = int(&kv["mod_revision"]);
        let bytes = B64
            .decode(kv["value"].as_str().unwrap_or(""))
            .unwrap_or_default();
        let text = String::from_utf8(bytes).map_err(|_| EtcdError::NotText {
            key: self.key.key.clone(),
            revision,
        })?;
        Ok(Revision { revision, text })
    }

    /// Watch one endpoint from `start` on, calling `each` with every new revision of the
    /// key in order, until the stream ends or fails (`Err`), or the server says it
    /// compacted past `start` ([`Compacted`]: read the key afresh).
    async fn watch_one(
        &self,
        endpoint: &str,
        start: i64,
        each: &mut (impl FnMut(Result<Revision, EtcdError>) + Send),
    ) -> Result<Compacted, EtcdError> {
        let failed = |reason: String| EtcdError::Request {
            endpoint: endpoint.into(),
            reason,
        };
        let body = json!({ "create_request": {
            "key": B64.encode(&self.key.key), "start_revision": start.to_string(),
        }});
        let mut answer = self
            .http
            .post(format!("http://{endpoint}/v3/watch"))
            .json(&body)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !answer.status().is_success() {
            return Err(failed(answer.status().to_string()));
        }
        // The gateway streams one JSON message per watch response; a chunk may hold part
        // of one or several.
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| failed(e.to_string()))? {
            pending.extend_from_slice(&chunk);
            let mut stream = serde_json::Deserializer::from_slice(&pending).into_iter::<Value>();
            let mut used = 0;
            while let Some(Ok(message)) = stream.next() {
                used = stream.byte_offset();
                let result = &message["result"];
                if result.is_null() {
                    return Err(failed(format!("watch: {message}")));
                }
                if int(&result["compact_revision"]) > 0 {
                    return Ok(Compacted);
                }
                let events = result["events"].as_array().map_or(&[][..], Vec::as_slice);
                for event in events {
                    if event["type"].as_str() == Some("DELETE") {
                        tracing::warn!(key = %self.key.key, "config key deleted in etcd; the running config stays");
                        continue;
                    }
                    each(self.revision_of(&event["kv"]));
                }
            }
            pending.drain(..used);
        }
        Err(failed("watch stream ended".into()))
    }
}

/// A watch ended because etcd no longer holds the revisions asked for.
struct Compacted;

/// etcd's JSON gateway writes int64 fields as strings.
fn int(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
        .unwrap_or(0)
}

/// Read the key once (at start): its revision and text.
pub async fn fetch(client: &EtcdClient) -> Result<Revision, EtcdError> {
    client.get().await?.ok_or_else(|| EtcdError::Missing {
        key: client.key.key.clone(),
    })
}

/// Validate and apply one revision, recording it as applied or refused on `control`.
fn apply(control: &ControlPlane, key: &EtcdKey, rev: Revision) {
    if control.revisions().applied == Some(rev.revision) {
        return;
    }
    let origin = format!("{}@{}", key.url(), rev.revision);
    match control.reload_str(&rev.text, &origin) {
        Ok(_) => {
            tracing::info!(revision = rev.revision, "config revision from etcd applied");
            control.record_applied(rev.revision);
        }
        Err(e) => {
            tracing::error!(revision = rev.revision, error = %e, "config revision from etcd refused; the running config stays");
            control.record_refused(rev.revision, e.to_string());
        }
    }
}

/// Follow the key until `stopped`: every revision after the applied one goes through
/// [`ControlPlane::reload_str`]. Survives etcd going away (the running config stays) and
/// moves to the next endpoint when one fails.
pub async fn follow(
    control: Arc<ControlPlane>,
    client: EtcdClient,
    stopped: impl Future<Output = ()>,
) {
    tokio::pin!(stopped);
    let key = client.key.clone();
    let mut retry = FIRST_RETRY;
    let mut next = 0usize;
    loop {
        let endpoint = key.endpoints[next % key.endpoints.len()].clone();
        next += 1;
        // The last revision seen (applied or refused): the watch resumes after it.
        let seen = {
            let r = control.revisions();
            r.applied.max(r.refused.map(|(n, _)| n)).unwrap_or(0)
        };
        let c = control.clone();
        let k = key.clone();
        let mut each = move |rev: Result<Revision, EtcdError>| match rev {
            Ok(rev) => {
                // Maglev rebuilds take milliseconds: fine on this small runtime's thread.
                apply(&c, &k, rev);
            }
            Err(e) => tracing::error!(error = %e, "config revision from etcd unreadable"),
        };
        control.set_etcd_connected(Some(endpoint.clone()));
        let started = tokio::time::Instant::now();
        let watched = tokio::select! {
            _ = &mut stopped => return,
            r = client.watch_one(&endpoint, seen + 1, &mut each) => r,
        };
        control.set_etcd_connected(None);
        match watched {
            Ok(Compacted) => {
                // Compacted past what we saw: take the current value, then watch on.
                match client.get().await {
                    Ok(Some(rev)) => apply(&control, &key, rev),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "etcd"),
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "etcd watch lost; the running config stays, reconnecting")
            }
        }
        if started.elapsed() > MAX_RETRY {
            retry = FIRST_RETRY;
        }
        // The next endpoint right away; a pause (growing) only after a whole round failed.
        if next.is_multiple_of(key.endpoints.len()) {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(MAX_RETRY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_endpoints_and_a_key() {
        let k = EtcdKey::parse("etcd://10.0.0.1:2379,10.0.0.2:2379/flowgate/config").unwrap();
        assert_eq!(k.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(k.key, "flowgate/config");
        assert_eq!(
            k.url(),
            "etcd://10.0.0.1:2379,10.0.0.2:2379/flowgate/config"
        );
        for bad in [
            "etcd://host:2379",
            "etcd://host/key",
            "etcd://:2379/key",
            "etcd://h:99999/key",
            "etcd://h:1/",
            "http://h:1/k",
        ] {
            assert!(EtcdKey::parse(bad).is_err(), "{bad}");
        }
    }
}
