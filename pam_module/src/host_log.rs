//! The module's own syslog records, for when vigild cannot write them.
//!
//! Written through a socket of the module's own (the `syslog` crate's unix logger),
//! never `openlog(3)`, which would change the host's (sshd's, sudo's) syslog ident.
//! The socket is closed when the logger is dropped at the end of the call.

use std::path::Path;

use vigil_protocol::audit::Record;

/// Where the module's records go; a fake collects them in unit tests.
pub trait HostLog {
    fn record(&self, record: &Record);
    fn debug(&self, message: &str);
}

pub struct Syslog<'a> {
    pub socket: &'a Path,
    pub debug: bool,
}

impl Syslog<'_> {
    fn send(&self, severity_err: bool, message: &str) {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "pam_vigil".into(),
            pid: std::process::id(),
        };
        // A syslog outage must not disturb the login: errors are dropped.
        if let Ok(mut logger) = syslog::unix_custom(formatter, self.socket) {
            let _ = if severity_err { logger.err(message) } else { logger.debug(message) };
        }
    }
}

impl HostLog for Syslog<'_> {
    fn record(&self, record: &Record) {
        self.send(true, &record.to_kv_line());
    }

    fn debug(&self, message: &str) {
        if self.debug {
            self.send(false, message);
        }
    }
}
