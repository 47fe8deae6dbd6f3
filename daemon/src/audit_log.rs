//! vigild's side of the audit trail: one writer (chain, syslog, spool) behind a lock,
//! and a task that retries the spool while syslog is away.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use vigil_audit::chain::{Encoding, KeyFile};
use vigil_audit::writer::{Outcome, Writer, WriterConfig};
use vigil_config::{AuditFormat, AuditSettings};
use vigil_protocol::audit::Record;

/// How often the spool is retried while syslog is unreachable.
const SPOOL_RETRY: Duration = Duration::from_secs(1);
/// The pause between flush passes that made progress (syslog is back, a backlog drains):
/// other tasks run in between.
const SPOOL_CONTINUE: Duration = Duration::from_millis(10);

pub struct AuditLog {
    writer: Mutex<Writer>,
    spool_waiting: Arc<Notify>,
}

pub fn encoding(format: AuditFormat) -> Encoding {
    match format {
        AuditFormat::Kv => Encoding::KeyValue,
        AuditFormat::Json => Encoding::Json,
    }
}

impl AuditLog {
    /// `audit_dir`: chain state and spool (`/var/lib/vigil`); `None` in unit tests.
    /// Returns the first key when a new chain was started.
    pub fn open(syslog_socket: PathBuf, audit_dir: Option<PathBuf>, settings: &AuditSettings, echo_stderr: bool) -> std::io::Result<(Self, Option<KeyFile>)> {
        let config = WriterConfig {
            syslog_socket,
            encoding: encoding(settings.format),
            state_dir: audit_dir,
            chain: settings.chain,
            spool_max_bytes: settings.spool_max_bytes,
            echo_stderr,
            tag: "vigild".into(),
        };
        let (writer, key) = Writer::open(config)?;
        Ok((Self { writer: Mutex::new(writer), spool_waiting: Arc::new(Notify::new()) }, key))
    }

    /// For unit tests: no chain, no spool, syslog somewhere that does not exist.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        let settings = AuditSettings { chain: false, ..AuditSettings::default() };
        match Self::open(PathBuf::from("/nonexistent/vigil-test-log"), None, &settings, false) {
            Ok((log, _)) => log,
            Err(e) => panic!("audit log for tests: {e}"),
        }
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one record. Never fails: a record syslog cannot take is spooled.
    pub fn write(&self, record: &Record) {
        let outcome = self.writer().write(record);
        self.after_write(outcome);
    }

    /// A record that could not be sent wakes the spool retry task.
    fn after_write(&self, outcome: Outcome) {
        if outcome != Outcome::Sent {
            self.spool_waiting.notify_one();
        }
    }

    pub fn set_format(&self, format: AuditFormat) {
        self.writer().set_encoding(encoding(format));
    }

    /// Starts a new chain key at the next seq, recorded in the trail.
    pub fn new_key(&self) -> std::io::Result<KeyFile> {
        // One lock for both: no other record may take the new key's first seq.
        let mut writer = self.writer();
        let key = writer.new_key()?;
        let outcome = writer.write(&Record::new("audit_key_init").number("start_seq", key.start_seq).text("by", "vigilctl audit init"));
        drop(writer);
        self.after_write(outcome);
        Ok(key)
    }

    /// Writes a `seal` record: verification can then tell a cut before it.
    pub fn seal(&self) -> u64 {
        let mut writer = self.writer();
        let seq = writer.next_seq().unwrap_or(0);
        let outcome = writer.write(&Record::new("seal").number("last_seq", seq.saturating_sub(1) as i128));
        drop(writer);
        self.after_write(outcome);
        seq
    }

    /// Retries the spool while records wait in it; sleeps otherwise. A pass that sent
    /// records is followed by the next one at once (after [`SPOOL_CONTINUE`]), so that a
    /// backlog drains at syslog's pace rather than one pass per second.
    pub fn spawn_spool_retry(self: &Arc<Self>) {
        let log = self.clone();
        tokio::spawn(async move {
            loop {
                // Bounded pass (FLUSH_PASS); records may have been spooled at start.
                let (done, progressed) = {
                    let mut writer = log.writer();
                    let before = writer.spooled_bytes();
                    let done = writer.flush_spool();
                    (done, writer.spooled_bytes() < before)
                };
                if done {
                    log.spool_waiting.notified().await;
                }
                tokio::time::sleep(if progressed && !done { SPOOL_CONTINUE } else { SPOOL_RETRY }).await;
            }
        });
    }
}
