//! The audit writer: seals each record into the chain, persists the chain state, and
//! sends it to syslog (authpriv, tag `vigild`); when syslog cannot take it, the record
//! waits in a bounded spool on disk and is sent, in order, when syslog is back.
//!
//! Nothing is lost silently: when the spool is full, the oldest records are kept, the
//! newest are dropped and counted, and a `records_dropped count=N` record follows the
//! spooled ones once syslog is back.
//!
//! Every record goes at severity notice, but an `alert` record at warning
//! ([`severity_of`]): an rsyslog filter on `authpriv.warning` pages on alerts without
//! parsing a line. The severity follows the record's event, which every line begins
//! with, so a spooled alert is sent at warning too when the spool is replayed, and the
//! spool's format stays one sealed line per record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use syslog::{Facility, Formatter3164, LogFormat, Severity};
use vigil_protocol::audit::Record;
use vigil_protocol::events::Event;

use crate::chain::{ChainState, Encoding, Key, KeyFile};

/// How the writer is set up (from `[audit]` and vigild's flags).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub syslog_socket: PathBuf,
    pub encoding: Encoding,
    /// Where the chain state, the spool and the first key live (`/var/lib/vigil`);
    /// `None`: no chain, no spool (records go to syslog or stderr).
    pub state_dir: Option<PathBuf>,
    pub chain: bool,
    pub spool_max_bytes: u64,
    pub echo_stderr: bool,
    pub tag: String,
}

const STATE_FILE: &str = "audit-chain";
const SPOOL_FILE: &str = "audit-spool";
/// The first key of a chain vigild starts by itself, for the admin to take off the host.
pub const INITIAL_KEY_FILE: &str = "audit-initial.key";
/// How long a record waits for room in syslog's socket queue. The queue of a Unix
/// datagram socket is short (`net.unix.max_dgram_qlen`, 10 datagrams by default): a burst
/// fills it in microseconds and a live syslog daemon empties it as fast. Only a daemon
/// that stopped reading costs this wait, once: the records after it go to the spool.
pub const SEND_WAIT: Duration = Duration::from_millis(100);
/// One [`Writer::flush_spool`] pass sends for at most this long (vigild's event loop
/// waits meanwhile); the caller runs passes back to back while they make progress.
pub const FLUSH_PASS: Duration = Duration::from_millis(100);
const STATE_MAGIC: &[u8; 8] = b"VGLCHN01";
const STATE_LEN: usize = 8 + 8 + 32 + 32;

/// Where a record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Spooled,
    Dropped,
}

/// How many records the writer sent to syslog at once, spooled, and dropped since it
/// was opened: shared with other threads (vigild's metrics) without a lock.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: AtomicU64,
    pub spooled: AtomicU64,
    pub dropped: AtomicU64,
}

impl Tally {
    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Sent => &self.sent,
            Outcome::Spooled => &self.spooled,
            Outcome::Dropped => &self.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct Writer {
    tally: Arc<Tally>,
    config: WriterConfig,
    socket: Option<UnixDatagram>,
    chain: Option<(ChainState, File)>,
    spool_bytes: u64,
    dropped: u64,
    dropped_first_seq: Option<u64>,
    formatter: Formatter3164,
}

impl Writer {
    /// Opens the chain state (starting a chain when there is none: the returned key
    /// file is then also written to `INITIAL_KEY_FILE`, mode 0400) and the spool.
    pub fn open(config: WriterConfig) -> io::Result<(Writer, Option<KeyFile>)> {
        let formatter =
            Formatter3164 { facility: Facility::LOG_AUTHPRIV, hostname: None, process: config.tag.clone(), pid: std::process::id() };
        let mut new_key = None;
        let mut chain = None;
        let mut spool_bytes = 0;
        if let Some(dir) = &config.state_dir {
            fs::create_dir_all(dir)?;
            spool_bytes = fs::metadata(dir.join(SPOOL_FILE)).map(|m| m.len()).unwrap_or(0);
            if config.chain {
                let path = dir.join(STATE_FILE);
                let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)?;
                let state = match read_state(&file)? {
                    Some(state) => state,
                    None => {
                        let (state, key_file) = ChainState::start(1)?;
                        write_key_file(&dir.join(INITIAL_KEY_FILE), &key_file)?;
                        write_state(&file, &state)?;
                        new_key = Some(key_file);
                        state
                    }
                };
                chain = Some((state, file));
            }
        }
        let writer =
            Writer { tally: Arc::default(), config, socket: None, chain, spool_bytes, dropped: 0, dropped_first_seq: None, formatter };
        Ok((writer, new_key))
    }

    pub fn encoding(&self) -> Encoding {
        self.config.encoding
    }

    pub fn set_encoding(&mut self, encoding: Encoding) {
        self.config.encoding = encoding;
    }

    /// The seq the next record gets (None without a chain).
    pub fn next_seq(&self) -> Option<u64> {
        self.chain.as_ref().map(|(state, _)| state.next_seq)
    }

    /// Records waiting in the spool, in bytes.
    pub fn spooled_bytes(&self) -> u64 {
        self.spool_bytes
    }

    /// The writer's counts of where its records went (every [`Writer::write`]).
    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }

    /// Seals and sends (or spools) one record, at its event's severity ([`severity_of`]).
    pub fn write(&mut self, record: &Record) -> Outcome {
        let outcome = self.write_uncounted(record);
        self.tally.count(outcome);
        outcome
    }

    fn write_uncounted(&mut self, record: &Record) -> Outcome {
        let severity = severity_of(record.event());
        let line = self.seal(record);
        if self.config.echo_stderr {
            // One write (stderr is unbuffered: `eprintln!` made three per record).
            let _ = io::stderr().write_all(format!("audit: {line}\n").as_bytes());
        }
        // Records keep their order: while anything is spooled, new ones queue behind it.
        if self.spool_bytes == 0 && self.dropped == 0 && self.send(&line, severity, Instant::now() + SEND_WAIT).is_ok() {
            return Outcome::Sent;
        }
        self.spool(&line)
    }

    /// Starts a new key at the next seq (the chain goes on: seq and prev continue).
    /// Returns the key file for the admin.
    pub fn new_key(&mut self) -> io::Result<KeyFile> {
        let Some((state, file)) = &mut self.chain else {
            return Err(io::Error::other("the audit chain is off ([audit] chain = false)"));
        };
        let key = Key::random()?;
        state.key = key.clone();
        write_state(file, state)?;
        Ok(KeyFile { start_seq: state.next_seq, key })
    }

    fn seal(&mut self, record: &Record) -> String {
        let encoded = match self.config.encoding {
            Encoding::KeyValue => record.to_kv_line(),
            Encoding::Json => record.to_json_line(),
        };
        let Some((state, file)) = &mut self.chain else { return encoded };
        let line = state.seal(&encoded, self.config.encoding);
        // The evolved key replaces the old one on disk at once: the old key is gone
        // from memory (zeroized) and from the file.
        if let Err(e) = write_state(file, state) {
            eprintln!("vigild: cannot save the audit chain state: {e}");
        }
        line
    }

    /// Sends one record; while syslog's queue is full, waits for room until `deadline`.
    fn send(&mut self, line: &str, severity: Severity, deadline: Instant) -> io::Result<()> {
        let mut datagram = Vec::with_capacity(line.len() + 48);
        self.formatter.format(&mut datagram, severity, line).map_err(|e| io::Error::other(e.to_string()))?;
        for _attempt in 0..2 {
            if self.socket.is_none() {
                let socket = UnixDatagram::unbound()?;
                socket.connect(&self.config.syslog_socket)?;
                // A syslog daemon that stops reading must not stall vigild: the socket
                // never blocks; a full queue is waited on until `deadline` at most.
                socket.set_nonblocking(true)?;
                self.socket = Some(socket);
            }
            let Some(socket) = self.socket.as_ref() else { break };
            loop {
                match socket.send(&datagram) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() || !wait_writable(socket, left) {
                            return Err(io::Error::new(io::ErrorKind::WouldBlock, "syslog's socket queue stayed full"));
                        }
                    }
                    // The socket went away (syslog restarted): reconnect once.
                    Err(_) => break,
                }
            }
            self.socket = None;
        }
        Err(io::Error::other("syslog did not take the record"))
    }

    fn spool_path(&self) -> Option<PathBuf> {
        self.config.state_dir.as_ref().map(|d| d.join(SPOOL_FILE))
    }

    fn spool(&mut self, line: &str) -> Outcome {
        let Some(path) = self.spool_path() else {
            eprintln!("vigild: syslog at {} unreachable; record: {line}", self.config.syslog_socket.display());
            return Outcome::Dropped;
        };
        let size = line.len() as u64 + 1;
        if self.dropped > 0 || self.spool_bytes + size > self.config.spool_max_bytes {
            if self.dropped == 0 {
                // Only a sealed record's seq is vigild's: without the chain, a `seq`
                // found in the line would come from a value (a user name, a tty).
                self.dropped_first_seq = if self.chain.is_some() { seq_of(line) } else { None };
            }
            self.dropped += 1;
            return Outcome::Dropped;
        }
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        match appended {
            Ok(()) => {
                self.spool_bytes += size;
                Outcome::Spooled
            }
            Err(e) => {
                eprintln!("vigild: cannot spool an audit record to {}: {e}; record: {line}", path.display());
                Outcome::Dropped
            }
        }
    }

    /// Sends what the spool holds, in order, for at most [`FLUSH_PASS`]; then the
    /// `records_dropped` record if any were dropped. Returns true when nothing is left
    /// waiting (call it again soon when [`Writer::spooled_bytes`] went down).
    pub fn flush_spool(&mut self) -> bool {
        if self.spool_bytes == 0 && self.dropped == 0 {
            return true;
        }
        let Some(path) = self.spool_path() else { return true };
        let lines: Vec<String> = match File::open(&path) {
            Ok(f) => io::BufReader::new(f).lines().map_while(Result::ok).collect(),
            Err(_) => Vec::new(),
        };
        let mut sent = 0;
        let deadline = Instant::now() + FLUSH_PASS;
        for line in &lines {
            if self.send(line, severity_of_line(line), deadline).is_err() {
                break;
            }
            sent += 1;
        }
        if sent < lines.len() {
            let rest: String = lines[sent..].iter().map(|l| format!("{l}\n")).collect();
            let tmp = path.with_extension("tmp");
            let rewritten = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut f| f.write_all(rest.as_bytes()))
                .and_then(|()| fs::rename(&tmp, &path));
            if rewritten.is_ok() {
                self.spool_bytes = rest.len() as u64;
            }
            return false;
        }
        let _ = fs::remove_file(&path);
        self.spool_bytes = 0;
        if self.dropped > 0 {
            let count = std::mem::take(&mut self.dropped);
            let first = self.dropped_first_seq.take();
            let record = Record::new(Event::RecordsDropped)
                .number("count", count)
                .text("why", "syslog unreachable and the spool full")
                .number("first_seq", first.map_or(-1, i128::from));
            return self.write(&record) == Outcome::Sent;
        }
        true
    }
}

/// The syslog severity of a record: warning for an `alert` (what an admin is paged on),
/// notice for every other.
pub fn severity_of(event: Event) -> Severity {
    if event == Event::Alert { Severity::LOG_WARNING } else { Severity::LOG_NOTICE }
}

/// The severity of a sealed line read back from the spool: the event is the line's first
/// field in both encodings (`event=alert ...`, `{"event":"alert",...}`), and the seal
/// only appends to the line.
fn severity_of_line(line: &str) -> Severity {
    let name = line.strip_prefix("event=").and_then(|rest| rest.split(' ').next());
    let name = name.or_else(|| line.strip_prefix("{\"event\":\"").and_then(|rest| rest.split('"').next()));
    match name.map(str::parse::<Event>) {
        Some(Ok(event)) => severity_of(event),
        _ => Severity::LOG_NOTICE,
    }
}

/// Waits up to `timeout` for room in the peer's queue (poll(2) reports a connected Unix
/// datagram socket writable when its peer's queue has room).
fn wait_writable(socket: &UnixDatagram, timeout: Duration) -> bool {
    let mut fds = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fds, 1, ms) };
    n > 0 && fds.revents & libc::POLLOUT != 0
}

fn seq_of(line: &str) -> Option<u64> {
    let (_, rest) = line.rsplit_once("seq")?;
    rest.trim_start_matches(['=', '"', ':']).split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn read_state(file: &File) -> io::Result<Option<ChainState>> {
    let mut buffer = [0u8; STATE_LEN];
    let n = file.read_at(&mut buffer, 0)?;
    if n == 0 {
        return Ok(None);
    }
    if n < STATE_LEN || &buffer[..8] != STATE_MAGIC {
        return Err(io::Error::other("the audit chain state is damaged; move it away to start a new chain"));
    }
    let next_seq = u64::from_le_bytes(buffer[8..16].try_into().map_err(io::Error::other)?);
    let key = Key::from_bytes(buffer[16..48].try_into().map_err(io::Error::other)?);
    let mac = &buffer[48..80];
    let last_mac = if mac.iter().all(|&b| b == 0) { String::new() } else { String::from_utf8_lossy(mac).into_owned() };
    buffer.iter_mut().for_each(|b| *b = 0);
    Ok(Some(ChainState { next_seq, key, last_mac }))
}

/// One write at offset 0, overwriting the previous key in place.
fn write_state(file: &File, state: &ChainState) -> io::Result<()> {
    let mut buffer = [0u8; STATE_LEN];
    buffer[..8].copy_from_slice(STATE_MAGIC);
    buffer[8..16].copy_from_slice(&state.next_seq.to_le_bytes());
    buffer[16..48].copy_from_slice(state.key.as_bytes());
    let mac = state.last_mac.as_bytes();
    buffer[48..48 + mac.len().min(32)].copy_from_slice(&mac[..mac.len().min(32)]);
    let result = file.write_all_at(&buffer, 0);
    buffer.iter_mut().for_each(|b| *b = 0);
    result
}

/// Writes a key file readable by root only.
pub fn write_key_file(path: &Path, key: &KeyFile) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o400).open(path)?;
    file.write_all(key.render().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{KeyDeriver, split_mac};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-audit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config(dir: &Path, max: u64) -> WriterConfig {
        WriterConfig {
            syslog_socket: dir.join("log.sock"),
            encoding: Encoding::KeyValue,
            state_dir: Some(dir.join("state")),
            chain: true,
            spool_max_bytes: max,
            echo_stderr: false,
            tag: "vigild".into(),
        }
    }

    fn receive_all(socket: &UnixDatagram) -> Vec<String> {
        socket.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buffer = [0u8; 65536];
        while let Ok(n) = socket.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            out.push(text.split_once("]: ").map(|(_, m)| m.to_string()).unwrap_or(text));
        }
        out
    }

    #[test]
    fn records_chain_survive_a_restart_and_verify() {
        let dir = temp_dir("restart");
        let syslog = UnixDatagram::bind(dir.join("log.sock")).unwrap();
        let (mut w, key) = Writer::open(config(&dir, 1 << 20)).unwrap();
        let key = key.expect("a new chain gives its key");
        assert!(dir.join("state").join(INITIAL_KEY_FILE).exists());
        for i in 0..3 {
            assert_eq!(w.write(&Record::new(Event::Seal).number("n", i)), Outcome::Sent);
        }
        drop(w);
        let (mut w, again) = Writer::open(config(&dir, 1 << 20)).unwrap();
        assert!(again.is_none(), "the chain goes on after a restart");
        assert_eq!(w.next_seq(), Some(4));
        w.write(&Record::new(Event::Seal).number("n", 3));
        let lines = receive_all(&syslog);
        assert_eq!(lines.len(), 4);
        let mut deriver = KeyDeriver::new(&key);
        for (i, line) in lines.iter().enumerate() {
            let (body, mac, _) = split_mac(line).unwrap();
            assert_eq!(deriver.key(1 + i as u64).unwrap().mac(&body), mac, "{line}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The `<PRI>` of each datagram syslog received.
    fn priorities(socket: &UnixDatagram) -> Vec<(String, String)> {
        socket.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buffer = [0u8; 65536];
        while let Ok(n) = socket.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            let pri = text.split_once('>').map(|(p, _)| format!("{p}>")).unwrap_or_default();
            let event = text.split_once("]: ").map(|(_, m)| m.split([' ', ',']).next().unwrap_or("").to_string()).unwrap_or_default();
            out.push((pri, event));
        }
        out
    }

    #[test]
    fn an_alert_goes_at_authpriv_warning_and_every_other_record_at_notice() {
        let dir = temp_dir("severity");
        let syslog = UnixDatagram::bind(dir.join("log.sock")).unwrap();
        let (mut w, _) = Writer::open(config(&dir, 1 << 20)).unwrap();
        for event in [Event::SessionOpen, Event::Alert, Event::ActivitySuspect, Event::Alert, Event::SessionEnd] {
            assert_eq!(w.write(&Record::new(event).text("kind", "x")), Outcome::Sent);
        }
        // authpriv is facility 10: <10*8+4> for warning, <10*8+5> for notice.
        let expected = [
            ("<85>", "event=session_open"),
            ("<84>", "event=alert"),
            ("<85>", "event=activity_suspect"),
            ("<84>", "event=alert"),
            ("<85>", "event=session_end"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(p, e)| (p.to_string(), e.to_string())).collect();
        assert_eq!(priorities(&syslog), expected);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_spooled_alert_keeps_its_severity_when_the_spool_is_sent_in_both_encodings() {
        for encoding in [Encoding::KeyValue, Encoding::Json] {
            let dir = temp_dir("spooled-severity");
            let (mut w, _) = Writer::open(WriterConfig { encoding, ..config(&dir, 1 << 20) }).unwrap();
            for event in [Event::Alert, Event::Seal, Event::Alert] {
                assert_eq!(w.write(&Record::new(event).text("kind", "alert")), Outcome::Spooled);
            }
            let syslog = UnixDatagram::bind(dir.join("log.sock")).unwrap();
            assert!(w.flush_spool());
            let got: Vec<String> = priorities(&syslog).into_iter().map(|(pri, _)| pri).collect();
            assert_eq!(got, ["<84>", "<85>", "<84>"], "{encoding:?}");
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_line_that_only_mentions_alert_is_not_one() {
        assert_eq!(severity_of_line("event=alert kind=x seq=1") as u8, Severity::LOG_WARNING as u8);
        assert_eq!(severity_of_line("{\"event\":\"alert\",\"kind\":\"x\"}") as u8, Severity::LOG_WARNING as u8);
        for line in ["event=alerts x=1", "event=seal kind=alert", "{\"event\":\"seal\",\"kind\":\"alert\"}", "", "alert"] {
            assert_eq!(severity_of_line(line) as u8, Severity::LOG_NOTICE as u8, "{line}");
        }
    }

    #[test]
    fn syslog_down_spools_in_order_then_flushes() {
        let dir = temp_dir("spool");
        let (mut w, _) = Writer::open(config(&dir, 1 << 20)).unwrap();
        for i in 0..5 {
            assert_eq!(w.write(&Record::new(Event::Seal).number("n", i)), Outcome::Spooled);
        }
        let syslog = UnixDatagram::bind(dir.join("log.sock")).unwrap();
        // Still queued behind the spool until it is flushed.
        assert_eq!(w.write(&Record::new(Event::Seal).number("n", 5)), Outcome::Spooled);
        assert!(w.flush_spool());
        let lines = receive_all(&syslog);
        let ns: Vec<String> = lines.iter().map(|l| l.split_whitespace().nth(1).unwrap().to_string()).collect();
        assert_eq!(ns, ["n=0", "n=1", "n=2", "n=3", "n=4", "n=5"]);
        assert_eq!(w.spooled_bytes(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn full_spool_keeps_the_oldest_and_says_how_many_were_dropped() {
        let dir = temp_dir("full");
        let (mut w, _) = Writer::open(config(&dir, 400)).unwrap();
        let outcomes: Vec<Outcome> = (0..10).map(|i| w.write(&Record::new(Event::Seal).number("n", i))).collect();
        let kept = outcomes.iter().filter(|o| **o == Outcome::Spooled).count();
        assert!((1..10).contains(&kept), "{outcomes:?}");
        assert!(outcomes[..kept].iter().all(|o| *o == Outcome::Spooled));
        let syslog = UnixDatagram::bind(dir.join("log.sock")).unwrap();
        assert!(w.flush_spool());
        let lines = receive_all(&syslog);
        assert_eq!(lines.len(), kept + 1);
        let last = lines.last().unwrap();
        assert!(last.starts_with(&format!("event=records_dropped count={}", 10 - kept)), "{last}");
        // The tally counts each record once, where it went: the replayed spool is not
        // counted again, the records_dropped record is sent at once.
        let tally = w.tally();
        let counts = [&tally.sent, &tally.spooled, &tally.dropped].map(|c| c.load(Ordering::Relaxed));
        assert_eq!(counts, [1, kept as u64, 10 - kept as u64]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_the_chain_a_seq_in_a_value_is_not_taken_for_the_first_dropped_seq() {
        let dir = temp_dir("nochain");
        let (mut w, key) = Writer::open(WriterConfig { chain: false, ..config(&dir, 40) }).unwrap();
        assert!(key.is_none());
        let outcomes: Vec<Outcome> = (0..3).map(|_| w.write(&Record::new(Event::Seal).text("tty", "x seq=77"))).collect();
        assert!(outcomes.contains(&Outcome::Dropped), "{outcomes:?}");
        let syslog = UnixDatagram::bind(dir.join("log.sock")).unwrap();
        assert!(w.flush_spool());
        let lines = receive_all(&syslog);
        let last = lines.last().unwrap();
        assert!(last.starts_with("event=records_dropped ") && last.ends_with(" first_seq=-1"), "{last}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
