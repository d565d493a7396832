//! The access log: one line per request, in the common log format extended with the
//! pool, backend and duration, or as one JSON object per line.
//!
//! Request tasks hand lines to a writer task through a bounded channel, so a slow disk
//! never holds a request; when the channel is full the line is dropped and counted.

use crate::config::AccessLogConfig;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// One request as logged.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// RFC 3339 UTC time the request arrived.
    pub time: String,
    pub client: String,
    pub method: String,
    pub uri: String,
    pub version: String,
    pub status: u16,
    /// Response body length when known.
    pub bytes: Option<u64>,
    pub duration_ms: f64,
    pub host: Option<String>,
    pub pool: Option<String>,
    pub backend: Option<String>,
    pub user_agent: Option<String>,
}

impl Entry {
    fn line(&self, json: bool) -> String {
        if json {
            // An Entry holds only strings and numbers; serializing it cannot fail.
            return serde_json::to_string(self).unwrap_or_default() + "\n";
        }
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} pool={} backend={} {:.3}ms\n",
            self.client,
            self.time,
            self.method,
            self.uri,
            self.version,
            self.status,
            self.bytes.map_or("-".to_string(), |b| b.to_string()),
            dash(&self.pool),
            dash(&self.backend),
            self.duration_ms,
        )
    }
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<String>,
    json: bool,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Open the log and start its writer task (on the current tokio runtime); it ends
    /// when every sender is gone.
    pub async fn open(config: &AccessLogConfig) -> std::io::Result<AccessLog> {
        let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match &config.path {
            Some(path) => Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?,
            ),
            None => Box::new(tokio::io::stdout()),
        };
        let (tx, mut rx) = mpsc::channel::<String>(8192);
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let mut batch = line;
                while let Ok(more) = rx.try_recv() {
                    batch += &more;
                }
                if out.write_all(batch.as_bytes()).await.is_err() || out.flush().await.is_err() {
                    tracing::warn!("access log: write failed; lines are lost");
                }
            }
        });
        Ok(AccessLog {
            tx,
            json: config.json,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn log(&self, entry: &Entry) {
        if self.tx.try_send(entry.line(self.json)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Now as RFC 3339 UTC with milliseconds, without a date library: the civil-from-days
/// conversion of Howard Hinnant's date algorithms.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_are_one_line() {
        let e = Entry {
            time: "2026-01-01T00:00:00.000Z".into(),
            client: "192.0.2.1".into(),
            method: "GET".into(),
            uri: "/a?b".into(),
            version: "HTTP/1.1".into(),
            status: 200,
            bytes: Some(5),
            duration_ms: 1.5,
            host: None,
            pool: Some("web".into()),
            backend: Some("127.0.0.1:8081".into()),
            user_agent: None,
        };
        let common = e.line(false);
        assert_eq!(
            common,
            "192.0.2.1 - - [2026-01-01T00:00:00.000Z] \"GET /a?b HTTP/1.1\" 200 5 pool=web backend=127.0.0.1:8081 1.500ms\n"
        );
        let json: serde_json::Value = serde_json::from_str(e.line(true).trim_end()).unwrap();
        assert_eq!(json["status"], 200);
        assert_eq!(json["backend"], "127.0.0.1:8081");
    }

    #[test]
    fn rfc3339_has_the_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
