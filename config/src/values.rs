//! The values a setting takes in the file (durations, the idle action, the audit format),
//! each checked while it is read, so that toml places an error on the value itself.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// What happens when a session reaches its idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleAction {
    /// Warn, then end the session (SIGHUP, then SIGKILL after `kill_grace`).
    Terminate,
    /// Audit only: record that the session went idle, end nothing.
    None,
}

impl fmt::Display for IdleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Terminate => "terminate",
            Self::None => "none",
        })
    }
}

/// What vigild does, besides the `alert` record, when a session's failed
/// re-authentications reach the alert's threshold (`on_reauth_failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnReauthFailures {
    /// Only the alert.
    #[default]
    Off,
    /// End the session as an admin's `vigilctl terminate` would.
    End,
    /// Lock the user for a while (`vigilctl lock --for`): every session of theirs ends,
    /// and their logins, sudo and su are refused until the lock runs out.
    Lock,
}

impl fmt::Display for OnReauthFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::End => "end",
            Self::Lock => "lock",
        })
    }
}

impl<'de> Deserialize<'de> for OnReauthFailures {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_str_with(deserializer, r#""off", "end" or "lock""#, |text| match text {
            "off" => Ok(Self::Off),
            "end" => Ok(Self::End),
            "lock" => Ok(Self::Lock),
            other => Err(format!(r#"invalid value {other:?}; expected "off", "end" or "lock""#)),
        })
    }
}

/// How audit records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// `key=value` (the default, for auth.log readers).
    Kv,
    /// One JSON object per line (for log pipelines).
    Json,
}

/// `[metrics] textfile`: an absolute path whose file name ends in `.prom`, the only
/// files node_exporter's textfile collector reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextfilePath(pub(crate) std::path::PathBuf);

impl<'de> Deserialize<'de> for TextfilePath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expecting = r#"an absolute path ending in ".prom", like "/var/lib/prometheus/node-exporter/vigil.prom""#;
        deserialize_str_with(deserializer, expecting, |text| {
            let path = std::path::Path::new(text);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !path.is_absolute() {
                Err(format!("{text:?} is not an absolute path; expected {expecting}"))
            } else if text.ends_with('/') || name.len() <= ".prom".len() || !name.ends_with(".prom") {
                Err(format!("{text:?}: node_exporter's textfile collector reads only files named *.prom; expected {expecting}"))
            } else if text.contains('\0') {
                Err(format!("{text:?} holds a NUL byte; expected {expecting}"))
            } else {
                Ok(Self(path.to_path_buf()))
            }
        })
    }
}

/// The shortest `[metrics] interval`: the file is rewritten at most once a second.
pub const MIN_METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// `[metrics] interval`: a duration of at least [`MIN_METRICS_INTERVAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetricsInterval(pub(crate) Duration);

impl<'de> Deserialize<'de> for MetricsInterval {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_str_with(deserializer, r#"a duration string like "30s" or "1m" (at least "1s")"#, |text| {
            let Dur(interval) = parse_duration(text)?;
            if interval < MIN_METRICS_INTERVAL {
                return Err(format!(
                    r#"interval {text:?} is shorter than a second; expected a duration like "30s" or "1m" (at least "1s")"#
                ));
            }
            Ok(Self(interval))
        })
    }
}

/// A human duration such as `"15m"`, `"1h30m"` or `"90s"`; `"0"` is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Duration);

pub(crate) const DURATION_EXAMPLES: &str = r#"expected a duration like "15m", "1h30m", "90s""#;

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expecting = r#"a duration string like "15m", "1h30m", "90s" ("0" disables)"#;
        deserialize_str_with(deserializer, expecting, parse_duration)
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Dur, String> {
    humantime::parse_duration(text.trim()).map(Dur).map_err(|_| format!("invalid duration {text:?}: {DURATION_EXAMPLES}"))
}

/// Deserializes a string through `parse`. The check runs inside the value's own
/// deserializer, so toml places an error on that value (not on its enclosing array).
pub(crate) fn deserialize_str_with<'de, D, T, F>(deserializer: D, expecting: &'static str, parse: F) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    deserializer.deserialize_str(StrVisitor { expecting, parse })
}

struct StrVisitor<F> {
    expecting: &'static str,
    parse: F,
}

impl<T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'_> for StrVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let parse = |s: &str| parse_duration(s).map(|d| d.0);
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert!(parse("15 minuts").is_err());
        assert!(parse("-5m").is_err());
        assert!(parse("").is_err());
        assert!(parse("99999999999999999999h").is_err());
    }
}
