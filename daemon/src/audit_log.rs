//! The audit writer: one syslog line per record, facility authpriv, tag `vigild`.
//!
//! Records are formatted by `vigil_protocol::audit` (one definition of the escaping).
//! The syslog socket is reconnected when a send fails (rsyslog restarted); when syslog
//! stays unreachable the record goes to stderr (the journal, under systemd) so that it
//! is not silently lost. The on-disk spool and the hash chain come with the audit-trail
//! issue.

use std::path::PathBuf;
use std::sync::Mutex;

use syslog::{Formatter3164, Logger, LoggerBackend};
use vigil_protocol::audit::Record;

type SyslogLogger = Logger<LoggerBackend, Formatter3164>;

pub struct AuditLog {
    socket: PathBuf,
    logger: Mutex<Option<SyslogLogger>>,
    echo_to_stderr: bool,
}

impl AuditLog {
    pub fn new(socket: PathBuf, echo_to_stderr: bool) -> Self {
        Self { socket, logger: Mutex::new(None), echo_to_stderr }
    }

    fn connect(&self) -> Option<SyslogLogger> {
        let formatter = Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "vigild".into(),
            pid: std::process::id(),
        };
        syslog::unix_custom(formatter, &self.socket).ok()
    }

    /// Writes one record. Never fails: a record syslog cannot take goes to stderr.
    pub fn write(&self, record: &Record) {
        let line = record.to_kv_line();
        if self.echo_to_stderr {
            eprintln!("audit: {line}");
        }
        let mut slot = self.logger.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for _attempt in 0..2 {
            if slot.is_none() {
                *slot = self.connect();
            }
            match slot.as_mut() {
                Some(logger) => match logger.notice(&line) {
                    Ok(()) => return,
                    // The socket went away (syslog restarted): reconnect once.
                    Err(_) => *slot = None,
                },
                None => break,
            }
        }
        if !self.echo_to_stderr {
            eprintln!("vigild: syslog at {} unreachable; record: {line}", self.socket.display());
        }
    }
}
