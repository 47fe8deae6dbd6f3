//! The file's shape, as serde types. Every table refuses unknown keys; values are
//! checked while they are read (durations, patterns), so that the toml crate attaches
//! the value's position to any error.
//!
//! To add a top-level table (`[audit]`, ...): add a field to [`FileDoc`] with its own
//! `deny_unknown_fields` struct, and carry it into `Config`.

use serde::Deserialize;

use crate::matching::Criteria;
use crate::values::{AuditFormat, Dur, IdleAction, MetricsInterval, OnReauthFailures, TextfilePath};

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
    #[serde(default)]
    pub(crate) metrics: MetricsDoc,
}

/// The `[audit]` table: how records are written (global, not per policy).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditDoc {
    pub(crate) format: Option<AuditFormat>,
    pub(crate) chain: Option<bool>,
    pub(crate) spool_max_bytes: Option<u64>,
}

/// The `[metrics]` table: the Prometheus textfile vigild keeps (global, opt-in).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsDoc {
    pub(crate) textfile: Option<TextfilePath>,
    pub(crate) interval: Option<MetricsInterval>,
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
    on_reauth_failures: OnReauthFailures,
}
