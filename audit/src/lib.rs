pub mod chain;
mod display;
pub mod writer;
pub mod syslog_line;
pub mod verify;
pub mod timeline;
pub mod report;
pub mod sample;
#[cfg(test)]
mod robustness;
