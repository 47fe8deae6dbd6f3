//! vigild's side of the audit trail: records go, in the order they were made, through a
//! queue to one writer thread (chain, syslog, spool), so that no login waits on syslog
//! and no lock of vigild is held while a record is sent.
//!
//! A record whose content is known only after the reply (the ssh client's port of a new
//! session) takes its place in the queue at once and is filled in later: the writer
//! waits for it, so a session's open record still comes before its close.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_audit::chain::{Encoding, KeyFile};
use vigil_audit::writer::{Outcome, Tally, Writer, WriterConfig};
use vigil_config::{AuditFormat, AuditSettings};
use vigil_protocol::audit::Record;
use vigil_protocol::events::Event;

/// How often the spool is retried while syslog is unreachable.
const SPOOL_RETRY: Duration = Duration::from_secs(1);
/// The pause between flush passes that made progress (a backlog drains).
const SPOOL_CONTINUE: Duration = Duration::from_millis(10);
/// Records queued for the writer beyond which new ones are dropped and counted (a
/// `records_dropped where=queue` record follows): memory stays bounded even if the
/// writer thread is stuck. Far above any burst vigild makes (limits throttle what users
/// can cause).
const MAX_QUEUED: usize = 200_000;
/// How long a deferred record may take to be filled in before the writer moves on.
const DEFERRED_WAIT: Duration = Duration::from_secs(5);
/// Once woken, the writer lets records gather this long before it writes them: records
/// queued meanwhile cost vigild's event loop no wake-up of the writer (a futex call and
/// a switch to the other CPU per record), and a login's deferred open record is usually
/// filled in by then. The trail lags
/// syslog by at most this much more.
const GATHER: Duration = Duration::from_micros(500);

type WriterCall = Box<dyn FnOnce(&mut Writer) -> Outcome + Send>;

enum Item {
    Record(Record),
    Deferred(mpsc::Receiver<Record>),
    Call(WriterCall),
    Stop,
}

pub struct AuditLog {
    queue: mpsc::Sender<Item>,
    /// Records made while a call's answer is being sent (`hold`), handed to the writer
    /// together once it is.
    held: Mutex<Held>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    /// Records dropped at the queue since vigild started (`dropped` is reset as each
    /// count is recorded).
    dropped_at_queue: AtomicU64,
    /// Where the writer's records went.
    tally: Arc<Tally>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Records since vigild started: sent to syslog at once, spooled (syslog away or behind;
/// sent later), dropped (the spool or the queue full).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub written: u64,
    pub spooled: u64,
    pub dropped: u64,
}

#[derive(Default)]
struct Held {
    holders: usize,
    items: Vec<Item>,
}

/// While one lives, records are queued in vigild but not yet handed to the writer thread
/// (`AuditLog::hold`).
pub struct Hold<'a>(&'a AuditLog);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        // Sent under the lock (sending never blocks): no record pushed meanwhile by
        // another thread can pass the held ones.
        let mut held = self.0.held.lock().unwrap_or_else(|p| p.into_inner());
        held.holders -= 1;
        if held.holders == 0 {
            for item in std::mem::take(&mut held.items) {
                self.0.send(item);
            }
        }
    }
}

/// A record's place in the trail, taken now and filled in by `send`. Dropped unsent,
/// it is skipped.
pub struct DeferredRecord(mpsc::SyncSender<Record>);

impl DeferredRecord {
    pub fn send(self, record: Record) {
        let _ = self.0.send(record);
    }
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
    pub fn open(
        syslog_socket: PathBuf,
        audit_dir: Option<PathBuf>,
        settings: &AuditSettings,
        echo_stderr: bool,
    ) -> std::io::Result<(Self, Option<KeyFile>)> {
        if let Some(dir) = &audit_dir {
            crate::sys::dirs::create_private_dir(dir)?;
        }
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
        let tally = writer.tally();
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = {
            let (queued, dropped) = (queued.clone(), dropped.clone());
            std::thread::Builder::new().name("audit-writer".into()).spawn(move || run_writer(writer, rx, &queued, &dropped))?
        };
        let log = Self {
            queue: tx,
            held: Mutex::default(),
            queued,
            dropped,
            dropped_at_queue: AtomicU64::new(0),
            tally,
            thread: Mutex::new(Some(thread)),
        };
        Ok((log, key))
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

    /// Holds the records made from now until the returned guard is dropped, in their
    /// order: a PAM call's records reach the writer thread (a futex wake-up and a switch to
    /// the other CPU) after its answer is sent, not before. Records other tasks make
    /// meanwhile wait with them (the order stays one). Admin calls that wait for the
    /// writer (`call`) hand the held records over first. Never held across a wait on a
    /// peer.
    pub fn hold(&self) -> Hold<'_> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).holders += 1;
        Hold(self)
    }

    fn push(&self, item: Item) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.holders > 0 && !matches!(item, Item::Call(_) | Item::Stop) {
            held.items.push(item);
            return true;
        }
        // A call waits for the writer's answer: what is held goes before it.
        for earlier in std::mem::take(&mut held.items) {
            self.send(earlier);
        }
        self.send(item)
    }

    fn send(&self, item: Item) -> bool {
        if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_at_queue.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        let sent = self.queue.send(item).is_ok();
        if !sent {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        sent
    }

    /// Where the records made since vigild started went (the metrics).
    pub fn counts(&self) -> RecordCounts {
        RecordCounts {
            written: self.tally.sent.load(Ordering::Relaxed),
            spooled: self.tally.spooled.load(Ordering::Relaxed),
            dropped: self.tally.dropped.load(Ordering::Relaxed) + self.dropped_at_queue.load(Ordering::Relaxed),
        }
    }

    /// Queues one record. Never blocks and never fails: syslog away, it is spooled.
    pub fn write(&self, record: Record) {
        self.push(Item::Record(record));
    }

    /// Takes the next place in the trail for a record made later.
    pub fn defer(&self) -> DeferredRecord {
        let (tx, rx) = mpsc::sync_channel(1);
        self.push(Item::Deferred(rx));
        DeferredRecord(tx)
    }

    /// Runs `call` on the writer after every record queued before it, and waits for
    /// its answer (admin calls only: a new key, a seal).
    fn call<T: Send + 'static>(&self, call: impl FnOnce(&mut Writer) -> (T, Outcome) + Send + 'static) -> Option<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let item = Item::Call(Box::new(move |writer: &mut Writer| {
            let (answer, outcome) = call(writer);
            let _ = tx.send(answer);
            outcome
        }));
        if !self.push(item) {
            return None;
        }
        rx.recv_timeout(Duration::from_secs(10)).ok()
    }

    pub fn set_format(&self, format: AuditFormat) {
        self.call(move |writer| {
            writer.set_encoding(encoding(format));
            ((), Outcome::Sent)
        });
    }

    /// Starts a new chain key at the next seq, recorded in the trail.
    pub fn new_key(&self) -> std::io::Result<KeyFile> {
        // One writer for both: no other record may take the new key's first seq.
        let answer = self.call(|writer| match writer.new_key() {
            Ok(key) => {
                let outcome =
                    writer.write(&Record::new(Event::AuditKeyInit).number("start_seq", key.start_seq).text("by", "vigilctl audit init"));
                (Ok(key), outcome)
            }
            Err(e) => (Err(e), Outcome::Sent),
        });
        answer.unwrap_or_else(|| Err(std::io::Error::other("the audit writer did not answer")))
    }

    /// Writes a `seal` record: verification can then tell a cut before it. Its seq.
    pub fn seal(&self) -> u64 {
        self.call(|writer| {
            let seq = writer.next_seq().unwrap_or(0);
            let outcome = writer.write(&Record::new(Event::Seal).number("last_seq", seq.saturating_sub(1) as i128));
            (seq, outcome)
        })
        .unwrap_or(0)
    }

    /// Writes everything queued (the spool gets one last try) and stops the writer.
    pub fn close(&self) {
        self.push(Item::Stop);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: records in queue order; while records wait in the spool, it is
/// retried between them.
fn run_writer(mut writer: Writer, rx: mpsc::Receiver<Item>, queued: &AtomicUsize, dropped: &AtomicU64) {
    let mut spool_pending = writer.spooled_bytes() > 0;
    let mut pause = SPOOL_RETRY;
    loop {
        let item = match rx.try_recv() {
            Ok(item) => Ok(item),
            Err(_) => {
                let woken =
                    if spool_pending { rx.recv_timeout(pause) } else { rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected) };
                if matches!(woken, Ok(Item::Record(_) | Item::Deferred(_))) {
                    std::thread::sleep(GATHER);
                }
                woken
            }
        };
        let outcome = match item {
            Ok(Item::Record(record)) => writer.write(&record),
            Ok(Item::Deferred(filled)) => match filled.recv_timeout(DEFERRED_WAIT) {
                Ok(record) => writer.write(&record),
                Err(_) => Outcome::Sent,
            },
            Ok(Item::Call(call)) => call(&mut writer),
            Ok(Item::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                writer.flush_spool();
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let before = writer.spooled_bytes();
                let done = writer.flush_spool();
                spool_pending = !done;
                pause = if writer.spooled_bytes() < before { SPOOL_CONTINUE } else { SPOOL_RETRY };
                continue;
            }
        };
        queued.fetch_sub(1, Ordering::Relaxed);
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            writer.write(&Record::new(Event::RecordsDropped).number("count", lost).text("where", "queue"));
        }
        if outcome != Outcome::Sent {
            spool_pending = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_wait_for_the_records_before_them_and_close_joins() {
        let log = AuditLog::for_tests();
        let deferred = log.defer();
        log.write(Record::new(Event::SessionOpen));
        std::thread::spawn(move || deferred.send(Record::new(Event::SessionClose)));
        // The seal comes after both; without a chain its seq is 0.
        assert_eq!(log.seal(), 0);
        log.close();
        assert!(log.thread.lock().unwrap().is_none());
    }

    #[test]
    fn held_records_go_to_the_writer_when_the_hold_ends_or_a_call_needs_them() {
        let log = AuditLog::for_tests();
        let outer = log.hold();
        let inner = log.hold();
        log.write(Record::new(Event::SessionOpen));
        drop(log.defer());
        assert_eq!(log.held.lock().unwrap().items.len(), 2);
        // A call that waits for the writer is not held up by the hold, nor the records
        // before it.
        assert_eq!(log.seal(), 0);
        assert!(log.held.lock().unwrap().items.is_empty());
        log.write(Record::new(Event::SessionClose));
        drop(inner);
        assert_eq!(log.held.lock().unwrap().items.len(), 1, "still held by the outer hold");
        drop(outer);
        assert!(log.held.lock().unwrap().items.is_empty());
        log.close();
    }

    /// The queue's bound, reached for real: the writer is held by a call while more
    /// records than MAX_QUEUED are queued; the ones past the bound are dropped and the
    /// next record syslog receives says how many (`records_dropped where=queue`). No
    /// end-to-end test can hold the writer thread (sends never block; tests/conformance.toml
    /// names this test for `where`).
    #[test]
    fn records_past_the_queue_bound_are_dropped_and_counted_where_queue() {
        use std::os::unix::net::UnixDatagram;
        let dir = std::env::temp_dir().join(format!("vigil-audit-queue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let syslog = UnixDatagram::bind(dir.join("log")).unwrap();
        syslog.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let settings = AuditSettings { chain: false, ..AuditSettings::default() };
        let (log, _) = AuditLog::open(dir.join("log"), None, &settings, false).unwrap();
        let log = Arc::new(log);

        let (release, released) = mpsc::channel::<()>();
        let holder = {
            let log = log.clone();
            std::thread::spawn(move || log.call(move |_| (released.recv().is_ok(), Outcome::Sent)))
        };
        // The call holds one place in the queue (until it returns) ...
        for _ in 0..1000 {
            if log.queued.load(Ordering::Relaxed) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(log.queued.load(Ordering::Relaxed), 1, "the call is queued");
        // ... and two records more than the rest of it are queued.
        for _ in 0..MAX_QUEUED + 1 {
            log.write(Record::new(Event::SessionOpen));
        }
        assert_eq!(log.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(log.counts().dropped, 2, "the metrics count the records dropped at the queue");
        release.send(()).unwrap();
        assert_eq!(holder.join().unwrap(), Some(true));

        // The first message after the call is the count.
        let mut buf = vec![0u8; 65536];
        let n = syslog.recv(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(first.contains("event=records_dropped") && first.contains("count=2") && first.contains("where=queue"), "{first}");
        drop(syslog);
        if let Ok(log) = Arc::try_unwrap(log) {
            log.close();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_audit_dir_is_created_0700_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vigil-audit-dir-{}", std::process::id())).join("audit");
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
        let settings = AuditSettings { chain: true, ..AuditSettings::default() };
        let (log, key) = AuditLog::open(PathBuf::from("/nonexistent/vigil-test-log"), Some(dir.clone()), &settings, false).unwrap();
        assert!(key.is_some(), "a new chain starts in a new directory");
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(dir.parent().unwrap()).unwrap().permissions().mode() & 0o777,
            0o700,
            "parents vigild creates are not left to the umask either"
        );
        log.close();
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
