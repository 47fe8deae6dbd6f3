//! The file's shape, as serde types. Every table refuses unknown keys; values are
//! checked while they are read (durations, patterns), so that the toml crate attaches
//! the value's position to any error.
//!
//! To add a top-level table (`[audit]`, ...): add a field to [`FileDoc`] with its own
//! `deny_unknown_fields` struct, and carry it into `Config`.

use std::time::Duration;

use serde::Deserialize;

use crate::matching::Criteria;
use crate::resolve::IdleAction;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDoc {
    #[serde(default)]
    pub(crate) defaults: Layer,
    #[serde(default)]
    pub(crate) policy: Vec<PolicyDoc>,
    #[serde(default)]
    pub(crate) audit: AuditDoc,
}

/// The `[audit]` table: how records are written (global, not per policy).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditDoc {
    pub(crate) format: Option<crate::AuditFormat>,
    pub(crate) chain: Option<bool>,
    pub(crate) spool_max_bytes: Option<u64>,
}

/// Declares the settings once: [`Layer`] (the `[defaults]` table, and the settings part
/// of a policy), [`PolicyDoc`] (the same keys plus `name` and `match`) and
/// [`SETTING_KEYS`].
macro_rules! settings {
    ($($field:ident: $ty:ty,)*) => {
        /// The settings one block sets; `None` means "not set here, inherit".
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct Layer {
            $(pub(crate) $field: Option<$ty>,)*
        }

        /// One `[[policy]]` block.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct PolicyDoc {
            pub(crate) name: Option<String>,
            #[serde(rename = "match")]
            pub(crate) criteria: Option<Criteria>,
            $($field: Option<$ty>,)*
        }

        impl PolicyDoc {
            /// The settings part of the block.
            pub(crate) fn layer(&self) -> Layer {
                Layer { $($field: self.$field.clone(),)* }
            }
        }

        /// Every key `[defaults]` accepts, in file order.
        pub(crate) const SETTING_KEYS: &[&str] = &[$(stringify!($field),)*];
    };
}

settings! {
    idle_timeout: Dur,
    idle_warning: Dur,
    idle_action: IdleAction,
    output_is_activity: bool,
    max_session_age: Dur,
    notty_idle_timeout: Dur,
    kill_grace: Dur,
    reauth_window: Dur,
    reauth_after_idle: Dur,
    sensitive_services: Vec<String>,
    exempt: bool,
    max_inhibit: Dur,
    max_inhibit_total: Dur,
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
