pub mod chain;
mod display;
pub mod writer;
pub mod syslog_line;
pub mod verify;
pub mod timeline;
pub mod report;
/// Sealed sample logs with a fixed key: for tests, benchmarks and the fuzz corpus only
/// (the `test-fixtures` feature), never in a shipped vigilctl.
#[cfg(any(test, feature = "test-fixtures"))]
pub mod sample;
#[cfg(test)]
mod robustness;
