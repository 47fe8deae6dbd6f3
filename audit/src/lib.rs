//! vigil's audit records: the hash chain that seals them, the writer that sends them to
//! syslog, and what `vigilctl audit` reads back (verify, show, report).

pub mod chain;
mod display;
pub mod duplicates;
mod ids;
pub mod report;
#[cfg(test)]
mod robustness;
/// Sealed sample logs with a fixed key: for tests, benchmarks and the fuzz corpus only
/// (the `test-fixtures` feature), never in a shipped vigilctl.
#[cfg(any(test, feature = "test-fixtures"))]
pub mod sample;
pub mod syslog_line;
pub mod timeline;
mod trail;
pub mod verify;
pub mod writer;
