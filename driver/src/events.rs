//! Control events for a replay: backend down/up, weight changes and table swaps (a
//! reload of another config), each applied at a frame time, so that health failover and
//! reconfiguration are replayed the same way by every engine (`flowgate replay --events`).
//!
//! ```toml
//! # Times are milliseconds after the trace's first frame; an event applies before the
//! # first frame at or after its time. Events must be in time order.
//! [[event]]
//! at_ms = 1000
//! action = "down"              # down | up | weight | reload
//! vip = "web"
//! backend = "198.51.100.1"
//!
//! [[event]]
//! at_ms = 2500
//! action = "weight"
//! vip = "web"
//! backend = "198.51.100.3"
//! weight = 5
//!
//! [[event]]
//! at_ms = 4000
//! action = "reload"
//! config = "other.toml"        # relative to the events file
//! ```
//!
//! Errors name the file, line and column, as config errors do.

use crate::config::Location;
use crate::control::{BackendKey, ControlError, ControlPlane};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// What an event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The backend fails (its up bit clears at once; its flows move to their secondaries).
    Down(BackendKey),
    /// The backend comes back.
    Up(BackendKey),
    /// New Maglev weight (0 drains); the table is rebuilt and swapped.
    Weight(BackendKey, u32),
    /// Swap in the tables of another config file.
    Reload(PathBuf),
}

/// One event: `action` before the first frame at or after `at` (after the first frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlEvent {
    pub at: Duration,
    pub action: Action,
    /// Where it is written, for messages.
    pub location: Location,
}

/// Why an events file was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{origin}: cannot read events: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {reason}")]
    Invalid { at: Location, reason: String },
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {source}")]
pub struct ApplyError {
    pub at: Location,
    #[source]
    pub source: ControlError,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    event: Vec<Spanned<RawEvent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_ms: u64,
    action: Spanned<String>,
    vip: Option<String>,
    backend: Option<IpAddr>,
    weight: Option<u32>,
    config: Option<PathBuf>,
}

fn locate(text: &str, origin: &str, offset: usize) -> Location {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    Location {
        origin: origin.to_string(),
        line,
        column,
    }
}

/// Read the events file at `path`.
pub fn load(path: &Path) -> Result<Vec<ControlEvent>, EventsError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EventsError::Read {
        origin: origin.clone(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_str(&text, &origin, base)
}

/// Parse events `text`; `origin` names it in errors, `base` resolves reload paths.
pub fn parse_str(text: &str, origin: &str, base: &Path) -> Result<Vec<ControlEvent>, EventsError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| EventsError::Invalid {
        at: locate(text, origin, e.span().map_or(0, |s| s.start)),
        reason: e.message().trim_end().to_string(),
    })?;
    let mut events = Vec::with_capacity(raw.event.len());
    let mut last = 0;
    for spanned in raw.event {
        let at = locate(text, origin, spanned.span().start);
        let e = spanned.into_inner();
        let invalid = |reason: String| EventsError::Invalid {
            at: at.clone(),
            reason,
        };
        if e.at_ms < last {
            return Err(invalid(format!(
                "at_ms = {} is before the previous event's {last}: events must be in time order",
                e.at_ms
            )));
        }
        last = e.at_ms;
        let key = || -> Result<BackendKey, EventsError> {
            match (&e.vip, e.backend) {
                (Some(vip), Some(address)) => Ok(BackendKey {
                    vip: vip.clone(),
                    address,
                }),
                _ => Err(invalid(format!(
                    "action \"{}\" needs `vip` and `backend`",
                    e.action.get_ref()
                ))),
            }
        };
        let action = match e.action.get_ref().as_str() {
            "down" => Action::Down(key()?),
            "up" => Action::Up(key()?),
            "weight" => {
                let weight = e
                    .weight
                    .ok_or_else(|| invalid("action \"weight\" needs `weight`".into()))?;
                Action::Weight(key()?, weight)
            }
            "reload" => {
                let config = e
                    .config
                    .as_ref()
                    .ok_or_else(|| invalid("action \"reload\" needs `config`".into()))?;
                Action::Reload(base.join(config))
            }
            other => {
                return Err(EventsError::Invalid {
                    at: locate(text, origin, e.action.span().start),
                    reason: format!(
                        "unknown action \"{other}\" (expected down, up, weight or reload)"
                    ),
                })
            }
        };
        events.push(ControlEvent {
            at: Duration::from_millis(e.at_ms),
            action,
            location: at,
        });
    }
    Ok(events)
}

/// Apply `event` to the control plane, which checks it as the admin API does and
/// publishes the new tables (a down/up flips the up bit, then rebuilds the VIP's Maglev
/// table around it). Engines then take `control.tables()`.
pub fn apply(control: &ControlPlane, event: &ControlEvent) -> Result<(), ApplyError> {
    let err = |source| ApplyError {
        at: event.location.clone(),
        source,
    };
    match &event.action {
        Action::Down(key) => control.set_up(key, false).map(drop).map_err(err),
        Action::Up(key) => control.set_up(key, true).map(drop).map_err(err),
        Action::Weight(key, weight) => control.set_weight(key, *weight).map_err(err),
        Action::Reload(path) => {
            let config = crate::config::load(path).map_err(|e| err(ControlError::from(e)))?;
            control.reload_config(config).map(drop).map_err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_in_order_with_their_locations() {
        let text =
            "[[event]]\nat_ms = 5\naction = \"down\"\nvip = \"web\"\nbackend = \"10.0.0.1\"\n\n\
                    [[event]]\nat_ms = 9\naction = \"reload\"\nconfig = \"b.toml\"\n";
        let events = parse_str(text, "e.toml", Path::new("/cfg")).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].at, Duration::from_millis(5));
        assert!(matches!(&events[0].action, Action::Down(k) if k.vip == "web"));
        assert_eq!(
            events[1].action,
            Action::Reload(PathBuf::from("/cfg/b.toml"))
        );
        assert_eq!(events[1].location.line, 7);
    }

    #[test]
    fn bad_events_are_refused_with_file_line_and_reason() {
        let cases = [
            (
                "[[event]]\nat_ms = 5\naction = \"explode\"\n",
                3,
                "unknown action",
            ),
            (
                "[[event]]\nat_ms = 5\naction = \"down\"\n",
                1,
                "needs `vip` and `backend`",
            ),
            (
                "[[event]]\nat_ms = 5\naction = \"weight\"\nvip = \"a\"\nbackend = \"::1\"\n",
                1,
                "needs `weight`",
            ),
            (
                "[[event]]\nat_ms = 5\naction = \"up\"\nvip = \"a\"\nbackend = \"::1\"\n\
                 [[event]]\nat_ms = 4\naction = \"up\"\nvip = \"a\"\nbackend = \"::1\"\n",
                6,
                "time order",
            ),
            (
                "[[event]]\nat_ms = 5\naction = \"up\"\ncolour = 1\n",
                4,
                "unknown field",
            ),
        ];
        for (text, line, reason) in cases {
            let err = parse_str(text, "e.toml", Path::new(".")).unwrap_err();
            let EventsError::Invalid { at, reason: got } = &err else {
                panic!("{err}")
            };
            assert_eq!((at.origin.as_str(), at.line), ("e.toml", line), "{err}");
            assert!(got.contains(reason), "{err}");
        }
    }
}
