//! vigil's policy file, `/etc/vigil/vigil.toml`: its schema, its validation (every
//! refusal names file, line, column and key), its warnings (accepted, but probably not
//! what was meant: [`Config::warnings`]), and the resolution of the policy that applies
//! to one session.
//!
//! ```no_run
//! use std::path::Path;
//! use vigil_config::{Config, SessionFacts, DEFAULT_PATH};
//!
//! let config = Config::load(Path::new(DEFAULT_PATH))?;
//! for warning in config.warnings(&vigil_config::NssAccounts) {
//!     eprintln!("warning: {warning}");
//! }
//! let groups = vec!["ops".to_owned()];
//! let policy = config.resolve(&SessionFacts {
//!     user: "alice",
//!     groups: &groups,
//!     service: "sshd",
//!     has_tty: true,
//!     rhost: Some("10.1.2.3"),
//! });
//! println!("{}: idle timeout {:?}", policy.policy_name, policy.idle_timeout);
//! # Ok::<(), vigil_config::ConfigError>(())
//! ```

mod document;
mod error;
mod explain;
mod keys;
mod matching;
mod parse;
mod resolve;
mod schema;
mod validate;
mod values;
mod warnings;

#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::Path;

pub use error::ConfigError;
pub use keys::accepted_keys;
pub use matching::SessionFacts;
pub use resolve::ResolvedPolicy;
pub use values::{AuditFormat, IdleAction, MIN_METRICS_INTERVAL, OnReauthFailures};
pub use warnings::{Accounts, ConfigWarning, MAX_LOOKUPS, NssAccounts, WarningKind};

use validate::Policy;
use warnings::Lint;

/// Where vigild and `vigilctl check-config` look when given no path.
pub const DEFAULT_PATH: &str = "/etc/vigil/vigil.toml";

/// A larger file is refused unread: no policy file is that long, and
/// `vigilctl check-config /dev/zero` must not eat the machine's memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The `[audit]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub format: AuditFormat,
    /// Seal records into the hash chain (`seq=`, `prev=`, `mac=`).
    pub chain: bool,
    /// Bound on the spool that keeps records while syslog is unreachable.
    pub spool_max_bytes: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { format: AuditFormat::Kv, chain: true, spool_max_bytes: 16 * 1024 * 1024 }
    }
}

/// The `[metrics]` settings: the Prometheus textfile vigild refreshes (none by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where to write the metrics (an absolute path ending in `.prom`); `None`: no file.
    pub textfile: Option<std::path::PathBuf>,
    /// How often the file is written again.
    pub interval: std::time::Duration,
}

impl MetricsSettings {
    pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { textfile: None, interval: Self::DEFAULT_INTERVAL }
    }
}

/// A checked configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    audit: AuditSettings,
    metrics: MetricsSettings,
    /// Built-in values overridden by `[defaults]`.
    defaults: ResolvedPolicy,
    /// `[[policy]]` blocks in file order, each already resolved against `defaults`.
    policies: Vec<Policy>,
    /// What [`Config::warnings`] reports.
    lint: Lint,
}

impl Config {
    /// Reads, parses and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES.saturating_add(1)).read_to_end(&mut bytes).map_err(read_error)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
            return Err(read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_FILE_BYTES} bytes; expected a vigil policy file"),
            )));
        }
        Self::from_bytes(&bytes, path)
    }

    /// Parses and checks `text`; `origin` names the file in errors and warnings.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        parse::parse(text, origin)
    }

    /// Like [`Config::parse`], from the file's bytes (which must be UTF-8): what
    /// [`Config::load`] does once it has read the file.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Config, ConfigError> {
        Self::parse(parse::utf8(bytes, origin)?, origin)
    }

    /// The configuration used when there is no file: built-in defaults, no policies.
    pub fn builtin() -> Config {
        Config {
            audit: AuditSettings::default(),
            metrics: MetricsSettings::default(),
            defaults: ResolvedPolicy::builtin(),
            policies: Vec::new(),
            lint: Lint::default(),
        }
    }

    /// The policy for `session`: the first `[[policy]]` block that matches it, over
    /// `[defaults]`, over the built-in values. A pure function of the file and the facts.
    pub fn resolve(&self, session: &SessionFacts<'_>) -> ResolvedPolicy {
        self.policies.iter().find(|policy| policy.criteria.matches(session)).map_or(&self.defaults, |policy| &policy.resolved).clone()
    }

    /// The `[audit]` settings.
    pub fn audit(&self) -> &AuditSettings {
        &self.audit
    }

    /// The `[metrics]` settings.
    pub fn metrics(&self) -> &MetricsSettings {
        &self.metrics
    }

    /// How many `[[policy]]` blocks the file has.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// What in this accepted file probably does not do what its author meant, in file
    /// order (see [`ConfigWarning`]): user and group names that `accounts` does not
    /// know, and blocks that match every session. Names are looked up at each call
    /// (with [`NssAccounts`] each may block on NSS: call it off an async runtime).
    pub fn warnings(&self, accounts: &dyn Accounts) -> Vec<ConfigWarning> {
        self.lint.warnings(accounts)
    }
}
