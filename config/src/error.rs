//! The crate's one error type.

use std::path::PathBuf;

/// Why a configuration file was refused.
///
/// `Invalid` always names the file, the 1-based line and column of the offending
/// text, the key it belongs to (`defaults.idle_timeout`, `policy[2].match.rhosts`)
/// and what was expected there, so that an admin can fix it without reading code.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all (missing, permissions, too large).
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is refused.
    #[error("{path}:{line}:{column}: {key}: {message}")]
    Invalid { path: PathBuf, line: usize, column: usize, key: String, message: String },
}
