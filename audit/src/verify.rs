//! `vigilctl audit verify`: checks the hash chain of vigild's records in syslog files.
//!
//! Files are streamed line by line (never held whole). Only lines tagged `vigild` are
//! chained; `pam_vigil` records (the module's own, without a mac) are warnings: listed
//! with their lines as unauthenticated, failing only `--strict` ([`Report::passes`]). For each sealed
//! record the mac is recomputed with the key of the chain it claims to belong to; the
//! authentic records then give the chain: per host, seq must go up by exactly one in file
//! order (files in the order given) and `prev=` must match the mac of the record before.
//!
//! What is reported, each finding with `FILE:LINE`: records that do not verify (edited
//! or forged), missing seqs, records out of order, duplicates, `prev` mismatches,
//! records no given key covers, records without a mac, lines tagged `vigild` that are not
//! records, and records sealed with a key the chain had already left. Notes (not
//! failures): where records may be missing after the last one, seqs vigild itself
//! reported as dropped (`records_dropped`), a new key, a new chain.
//!
//! Hostile input: every line may have been written by any local user (`logger -t
//! vigild ...`). Nothing here panics on input, memory stays bounded by the number of
//! genuine gaps and hosts, and key derivation has a work budget so that a forged
//! `seq=4000000000` cannot keep the verifier busy for an hour.

// Nested `if let`s: let chains need Rust 1.88, the workspace declares 1.85.
#![allow(clippy::collapsible_if)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use vigil_protocol::audit::parse_kv_line;
use vigil_protocol::events::Event;

use crate::chain::{Encoding, Key, KeyDeriver, KeyFile, MAX_SEQ_SPAN, NO_PREV, PREV_HEX, split_mac};
use crate::display::{display_path, escaped};
use crate::syslog_line::{MAX_LINE_BYTES, for_each_line, parse_line};

mod module_records;

pub use module_records::{ModuleRecord, ModuleRecords};

/// The tag of vigild's records (chained).
pub const DAEMON_TAG: &str = "vigild";
/// The tag of the PAM module's records (not chained).
pub const MODULE_TAG: &str = "pam_vigil";
/// Events after which nothing is expected: the chain's end is known.
pub const END_EVENTS: [Event; 2] = [Event::Seal, Event::DaemonStop];
/// Events that start a run (or mark a point): a gap just before one of them means the
/// end of the previous run was cut.
pub const RUN_START_EVENTS: [Event; 2] = [Event::DaemonStart, Event::Seal];

/// Key evolutions allowed up front (a file may start far into a chain: rotated logs).
pub const WORK_BASE: u64 = 1 << 24;
/// Key evolutions added to the budget per line read.
pub const WORK_PER_LINE: u64 = 16;
/// Detailed findings kept per host and kind; more are counted.
pub const MAX_FINDINGS_PER_KIND: usize = 200;
/// Hosts followed at once; lines of further hosts are reported, not checked.
pub const MAX_HOSTS: usize = 4096;
/// `KeyDeriver` keeps a key every this many seqs (chain.rs); used to estimate costs only.
const DERIVER_CHECKPOINT: u64 = 4096;
/// Unverified claims kept for matching with a gap (see `pending`).
const MAX_PENDING: usize = 1024;

/// Where something is: index into the files given, and 1-based line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub file: usize,
    pub line: u64,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// A sealed record whose mac does not verify.
    EditedOrForged,
    /// Seqs absent from the chain.
    MissingSeqs,
    /// An authentic record after one with a higher seq.
    Reordered,
    /// An authentic record whose seq was already seen.
    DuplicateSeq,
    /// An authentic record whose `prev=` does not match the record before it.
    PrevMismatch,
    /// A sealed record no given key covers.
    NoKey,
    /// A `vigild` record without a mac.
    Unsealed,
    /// A `vigild` line that is not a record at all.
    NotARecord,
    /// An authentic record under a key the host's chain had already left.
    RetiredKey,
    /// An authentic record under a key of a different chain than the host's current one.
    OtherChain,
    /// An authentic record under a key, at a seq where a later key given starts, and
    /// that later key verified none of this host's records.
    PastNextKey,
    /// A sealed record not checked: deriving its key would exceed the work budget.
    NotChecked,
    /// A `vigild` line from a host beyond [`MAX_HOSTS`].
    TooManyHosts,
    /// Note: the last record is not a seal or daemon_stop.
    TailMayBeMissing,
    /// Note: seqs vigild reported as dropped (its spool was full).
    DroppedByDaemon,
    /// Note: a new key takes over within the chain.
    KeyChange,
    /// Note: a new chain starts (the chain state was reset).
    NewChain,
}

impl FindingKind {
    /// Whether this makes the verification fail.
    pub fn is_failure(self) -> bool {
        !matches!(self, FindingKind::TailMayBeMissing | FindingKind::DroppedByDaemon | FindingKind::KeyChange | FindingKind::NewChain)
    }

    /// A short stable name.
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::EditedOrForged => "edited or forged",
            FindingKind::MissingSeqs => "missing seqs",
            FindingKind::Reordered => "reordered",
            FindingKind::DuplicateSeq => "duplicate seq",
            FindingKind::PrevMismatch => "prev mismatch",
            FindingKind::NoKey => "not verifiable with the keys given",
            FindingKind::Unsealed => "unsealed record",
            FindingKind::NotARecord => "not a record",
            FindingKind::RetiredKey => "sealed with a retired key",
            FindingKind::OtherChain => "record of another chain",
            FindingKind::PastNextKey => "sealed with a key past the next key's start",
            FindingKind::NotChecked => "not checked",
            FindingKind::TooManyHosts => "too many hosts",
            FindingKind::TailMayBeMissing => "end not sealed",
            FindingKind::DroppedByDaemon => "dropped by vigild",
            FindingKind::KeyChange => "new key",
            FindingKind::NewChain => "new chain",
        }
    }
}

/// One finding (or note: see [`FindingKind::is_failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// Index into [`Report::hosts`].
    pub host: usize,
    pub at: Location,
    /// The seq concerned (the first of a range), when there is one.
    pub seq: Option<u64>,
    /// The last seq, for a range.
    pub seq_end: Option<u64>,
    /// The last line, for findings merged over consecutive lines.
    pub end_line: Option<u64>,
    /// The sentence, with line references; values from the file are escaped.
    pub detail: String,
}

/// Consecutive authentic records, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRange {
    pub first_seq: u64,
    pub last_seq: u64,
    pub from: Location,
    pub to: Location,
    /// Index of the key (in the order given).
    pub key: usize,
}

/// What was verified for one host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostReport {
    /// The host name as in the files (raw; escape before printing).
    pub host: String,
    pub ranges: Vec<VerifiedRange>,
    /// Authentic records (in order, reordered or duplicate).
    pub authentic: u64,
    /// The highest seq verified in order.
    pub last_seq: Option<u64>,
}

/// Per file counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileStats {
    pub path: PathBuf,
    pub lines: u64,
    /// Lines tagged `vigild`.
    pub daemon_lines: u64,
    /// Records tagged `pam_vigil` (not chained: unauthenticated).
    pub module_records: u64,
    /// Syslog lines of other programs (and `pam_vigil` lines that are not records).
    pub other_lines: u64,
    /// Lines that are not syslog lines.
    pub not_syslog: u64,
    /// Lines longer than `MAX_LINE_BYTES`.
    pub overlong: u64,
}

/// The outcome of `verify`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files: Vec<FileStats>,
    pub hosts: Vec<HostReport>,
    /// Start seqs of the keys given, in the order given.
    pub key_starts: Vec<u64>,
    findings: Vec<Finding>,
    /// Findings not kept in detail: (host, kind, how many).
    suppressed: Vec<(usize, FindingKind, u64)>,
    module_records: ModuleRecords,
}

impl Report {
    /// True when every record verifies: no failure at all (notes and warnings allowed).
    pub fn is_clean(&self) -> bool {
        !self.findings.iter().any(|f| f.kind.is_failure()) && !self.suppressed.iter().any(|(_, k, n)| k.is_failure() && *n > 0) && !self.hosts.is_empty()
    }

    /// Whether `verify` exits 0: clean, and with `strict` also no unauthenticated record.
    pub fn passes(&self, strict: bool) -> bool {
        self.is_clean() && !(strict && self.module_records.count() > 0)
    }

    /// The warnings: records tagged `pam_vigil`, which carry no mac.
    pub fn unauthenticated(&self) -> &ModuleRecords {
        &self.module_records
    }

    /// Failures and notes, by host then place.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Failures only.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.kind.is_failure())
    }

    /// Notes only.
    pub fn notes(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.kind.is_failure())
    }

    /// Failures, counting those not kept in detail.
    pub fn failure_count(&self) -> u64 {
        self.failures().count() as u64 + self.suppressed.iter().filter(|(_, k, _)| k.is_failure()).map(|(_, _, n)| n).sum::<u64>()
    }

    fn file_name(&self, file: usize) -> String {
        self.files.get(file).map(|f| display_path(&f.path)).unwrap_or_else(|| "?".into())
    }

    /// `FILE:LINE`
    pub fn place(&self, at: Location) -> String {
        format!("{}:{}", self.file_name(at.file), at.line)
    }

    /// [`Report::render_with`] without `--strict`.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// Human text: per file counts, per host the verified ranges and the findings, each
    /// with `FILE:LINE`, the unauthenticated records (warnings), then the result (which
    /// with `strict` fails on warnings). The wording is stable (scripts and tests read it).
    pub fn render_with(&self, strict: bool) -> String {
        let mut out = String::new();
        for f in &self.files {
            let _ = writeln!(
                out,
                "{}: {} lines: {} vigild, {} unchained module records (pam_vigil), {} other, {} not syslog{}",
                display_path(&f.path),
                f.lines,
                f.daemon_lines,
                f.module_records,
                f.other_lines,
                f.not_syslog,
                if f.overlong > 0 { format!(", {} longer than {} bytes", f.overlong, MAX_LINE_BYTES) } else { String::new() }
            );
        }
        if self.hosts.is_empty() {
            let _ = writeln!(out, "no vigild records found");
        }
        let several_keys = self.key_starts.len() > 1;
        for (index, host) in self.hosts.iter().enumerate() {
            let _ = writeln!(out, "host {}:", escaped(host.host.as_bytes()));
            if host.ranges.is_empty() {
                let _ = writeln!(out, "  no record verified");
            }
            for r in &host.ranges {
                let lines = if r.from.file == r.to.file {
                    format!("{} lines {}..{}", self.file_name(r.from.file), r.from.line, r.to.line)
                } else {
                    format!("{} .. {}", self.place(r.from), self.place(r.to))
                };
                let key = if several_keys { format!(", key {}", r.key + 1) } else { String::new() };
                let _ = writeln!(out, "  seq {}..{} verified ({lines}{key})", r.first_seq, r.last_seq);
            }
            for f in self.findings.iter().filter(|f| f.host == index) {
                let _ = writeln!(out, "  {}: {}: {}", self.place(f.at), if f.kind.is_failure() { "FAIL" } else { "note" }, f.detail);
            }
            for (h, kind, n) in &self.suppressed {
                if *h == index && *n > 0 {
                    let _ = writeln!(out, "  {}: ... and {n} more \"{}\" findings, not listed", if kind.is_failure() { "FAIL" } else { "note" }, kind.label());
                }
            }
        }
        self.module_records.render(&mut out, |at| self.place(at));
        let failures = self.failure_count();
        let warned = self.module_records.count() > 0;
        let warnings = if warned { format!(" (warnings: {})", self.module_records.summary()) } else { String::new() };
        if self.is_clean() && strict && warned {
            let _ = writeln!(out, "result: FAILED (--strict): every vigild record verifies, but {}", self.module_records.summary());
        } else if self.is_clean() {
            let _ = writeln!(out, "result: OK: every vigild record verifies{warnings}");
        } else if failures == 0 {
            let _ = writeln!(out, "result: FAILED: no vigild record to verify{warnings}");
        } else {
            let _ = writeln!(out, "result: FAILED: {failures} finding{}{warnings}", if failures == 1 { "" } else { "s" });
        }
        out
    }
}


/// Verifies the chains in `paths` (read in that order) with `keys`.
pub fn verify_files(paths: &[PathBuf], keys: &[KeyFile]) -> io::Result<Report> {
    let mut inputs = Vec::with_capacity(paths.len());
    for path in paths {
        let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", display_path(path))))?;
        inputs.push((path.clone(), BufReader::with_capacity(256 * 1024, file)));
    }
    verify_readers(inputs, keys)
}

/// Like [`verify_files`], from readers (each with the name to report).
pub fn verify_readers<R: BufRead>(inputs: Vec<(PathBuf, R)>, keys: &[KeyFile]) -> io::Result<Report> {
    verify_readers_limited(inputs, keys, WORK_BASE)
}

/// Like [`verify_readers`] with another up-front work budget (key evolutions; the fuzz
/// target uses a small one to stay fast).
pub fn verify_readers_limited<R: BufRead>(inputs: Vec<(PathBuf, R)>, keys: &[KeyFile], work_base: u64) -> io::Result<Report> {
    let mut verifier = Verifier::new(keys);
    verifier.budget = work_base;
    for (index, (path, reader)) in inputs.into_iter().enumerate() {
        verifier.files.push(FileStats { path, ..FileStats::default() });
        let read = for_each_line(reader, |line, text, cut| verifier.line(index, line, text, cut))?;
        if let Some(stats) = verifier.files.get_mut(index) {
            stats.lines = read.lines;
            stats.overlong = read.overlong;
        }
    }
    Ok(verifier.finish())
}

/// A sealed record's position fields, read from the end of its body.
struct Position<'a> {
    seq: u64,
    prev: &'a str,
    event: Option<&'a str>,
}

fn is_prev(text: &str) -> bool {
    text.len() == PREV_HEX && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse_seq(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn is_event_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `... seq=N prev=HEX` (kv) or `...,"seq":N,"prev":"HEX"}` (JSON): where `with_position`
/// puts them. A record whose end is anything else cannot have been sealed by vigild.
fn position(body: &str, encoding: Encoding) -> Option<Position<'_>> {
    match encoding {
        Encoding::KeyValue => {
            let (head, prev) = body.rsplit_once(" prev=")?;
            let (_, seq) = head.rsplit_once(" seq=")?;
            let event = body.strip_prefix("event=").map(|rest| rest.split(' ').next().unwrap_or(rest)).filter(|e| is_event_name(e));
            Some(Position { seq: parse_seq(seq)?, prev: Some(prev).filter(|p| is_prev(p))?, event })
        }
        Encoding::Json => {
            let open = body.strip_suffix("\"}")?;
            let (head, prev) = open.rsplit_once(",\"prev\":\"")?;
            let (_, seq) = head.rsplit_once(",\"seq\":")?;
            let event = body.strip_prefix("{\"event\":\"").and_then(|rest| rest.split('"').next()).filter(|e| is_event_name(e));
            Some(Position { seq: parse_seq(seq)?, prev: Some(prev).filter(|p| is_prev(p))?, event })
        }
    }
}

/// `first_seq` and `count` of a `records_dropped` record.
fn dropped_claim(body: &str, encoding: Encoding) -> Option<(u64, u64)> {
    match encoding {
        Encoding::KeyValue => {
            let fields = parse_kv_line(body).ok()?;
            let get = |key: &str| fields.iter().find(|(k, _)| k == key).and_then(|(_, v)| std::str::from_utf8(v).ok()).and_then(parse_seq);
            Some((get("first_seq")?, get("count")?))
        }
        Encoding::Json => {
            let value: serde_json::Value = serde_json::from_str(body).ok()?;
            Some((value.get("first_seq")?.as_u64()?, value.get("count")?.as_u64()?))
        }
    }
}

/// One key file and the ways to its keys: `anchor` is the key of the last authentic
/// record (moves forward only on authentic records, so forged lines cannot push it away
/// from the chain), `ahead` the furthest key derived forward, `deriver` random access
/// (with checkpoints) for records behind the anchor.
struct KeySlot {
    start: u64,
    anchor: (u64, Key),
    ahead: (u64, Key),
    deriver: KeyDeriver,
    deriver_at: u64,
    deriver_reached: u64,
    /// The host whose records this key verified first.
    host: Option<usize>,
}

enum Derived {
    Key(Key),
    /// Too much work: this many evolutions would be needed.
    OverBudget(u64),
    Implausible,
}

impl KeySlot {
    fn new(file: &KeyFile) -> Self {
        KeySlot {
            start: file.start_seq,
            anchor: (file.start_seq, file.key.clone()),
            ahead: (file.start_seq, file.key.clone()),
            deriver: KeyDeriver::new(file),
            deriver_at: file.start_seq,
            deriver_reached: file.start_seq,
            host: None,
        }
    }

    fn deriver_cost(&self, seq: u64) -> u64 {
        if seq >= self.deriver_at {
            return seq - self.deriver_at;
        }
        let index = ((seq - self.start) / DERIVER_CHECKPOINT).min((self.deriver_reached - self.start) / DERIVER_CHECKPOINT);
        seq - (self.start + index * DERIVER_CHECKPOINT)
    }

    /// The key of `seq`, within `budget` evolutions (which it spends).
    fn derive(&mut self, seq: u64, budget: &mut u64) -> Derived {
        if seq < self.start || seq - self.start > MAX_SEQ_SPAN {
            return Derived::Implausible;
        }
        if seq >= self.ahead.0 {
            let cost = seq - self.ahead.0;
            if cost > *budget {
                return Derived::OverBudget(cost);
            }
            *budget -= cost;
            while self.ahead.0 < seq {
                self.ahead.1.evolve();
                self.ahead.0 += 1;
            }
            return Derived::Key(self.ahead.1.clone());
        }
        if seq >= self.anchor.0 {
            let cost = seq - self.anchor.0;
            if cost > *budget {
                return Derived::OverBudget(cost);
            }
            *budget -= cost;
            let mut key = self.anchor.1.clone();
            for _ in 0..cost {
                key.evolve();
            }
            return Derived::Key(key);
        }
        let cost = self.deriver_cost(seq);
        if cost > *budget {
            return Derived::OverBudget(cost);
        }
        *budget -= cost;
        match self.deriver.key(seq) {
            Some(key) => {
                self.deriver_at = seq;
                self.deriver_reached = self.deriver_reached.max(seq);
                Derived::Key(key.clone())
            }
            None => Derived::Implausible,
        }
    }

    /// An authentic record at `seq` with `key`: the anchor moves up to it.
    fn confirm(&mut self, seq: u64, key: Key) {
        if seq > self.anchor.0 {
            self.anchor = (seq, key);
        }
    }
}

/// A key the host's chain has left: at `until` (a new key in the same chain; records
/// before that seq are still fine) or entirely (`None`: a new chain replaced it).
struct Retired {
    key: usize,
    until: Option<u64>,
    at: Location,
}

struct Gap {
    end: u64,
    before: Location,
    after: Location,
    #[allow(dead_code)]
    after_seq: u64,
    after_event: String,
}

/// The chain since the last new chain on this host.
struct Segment {
    first: u64,
    first_at: Location,
    frontier: u64,
    frontier_at: Location,
    frontier_event: String,
    gaps: BTreeMap<u64, Gap>,
    /// VerifiedRange indexes by their first seq (ranges never overlap in seq).
    ranges_by_seq: BTreeMap<u64, usize>,
}

struct Last {
    seq: u64,
    mac_prefix: String,
}

#[derive(Default)]
struct HostChain {
    report: HostReport,
    current_key: Option<usize>,
    current_since: Location,
    retired: Vec<Retired>,
    segment: Option<Segment>,
    last: Option<Last>,
    /// Sealed records that did not verify since the last in-order authentic record:
    /// (claimed seq, where, index of the finding). A gap they fill was most likely
    /// edited rather than deleted.
    pending: Vec<(u64, Location, Option<usize>)>,
    /// Index of the last `NoKey` finding, to merge consecutive ones.
    last_no_key: Option<usize>,
    /// Records verified under a key at a seq where a later key (not yet seen) starts:
    /// (later key, key used, seq, where), the first per later key. Each key covers the
    /// seqs from its start to the next key's start: if the later key turns out to be
    /// this host's, these were forged with the old key (which an intruder may know).
    past_next_key: Vec<(usize, usize, u64, Location)>,
}

struct Verifier {
    keys: Vec<KeySlot>,
    budget: u64,
    hosts: Vec<HostChain>,
    host_index: HashMap<String, usize>,
    files: Vec<FileStats>,
    findings: Vec<Finding>,
    per_kind: HashMap<(usize, FindingKind), u64>,
    /// Lines of hosts beyond MAX_HOSTS (reported on the first such host).
    overflow_host: Option<usize>,
    module_records: ModuleRecords,
}

impl Verifier {
    fn new(keys: &[KeyFile]) -> Self {
        Verifier {
            keys: keys.iter().map(KeySlot::new).collect(),
            budget: WORK_BASE,
            hosts: Vec::new(),
            host_index: HashMap::new(),
            files: Vec::new(),
            findings: Vec::new(),
            per_kind: HashMap::new(),
            overflow_host: None,
            module_records: ModuleRecords::default(),
        }
    }

    fn place(&self, at: Location) -> String {
        let name = self.files.get(at.file).map(|f| display_path(&f.path)).unwrap_or_default();
        format!("{name}:{}", at.line)
    }

    /// `line N` in the same file as `from`, else `FILE:N`.
    fn line_ref(&self, at: Location, from: Location) -> String {
        if at.file == from.file { format!("line {}", at.line) } else { self.place(at) }
    }

    fn add(&mut self, kind: FindingKind, host: usize, at: Location, seq: Option<u64>, detail: String) -> Option<usize> {
        let count = self.per_kind.entry((host, kind)).or_insert(0);
        *count += 1;
        if *count as usize > MAX_FINDINGS_PER_KIND {
            return None;
        }
        self.findings.push(Finding { kind, host, at, seq, seq_end: None, end_line: None, detail });
        Some(self.findings.len() - 1)
    }

    fn host(&mut self, name: &str, at: Location) -> Option<usize> {
        if let Some(&index) = self.host_index.get(name) {
            return Some(index);
        }
        if self.hosts.len() >= MAX_HOSTS {
            let first = *self.overflow_host.get_or_insert(self.hosts.len() - 1);
            let detail = format!("vigild line from host {}: more than {MAX_HOSTS} hosts, not checked", escaped(name.as_bytes()));
            self.add(FindingKind::TooManyHosts, first, at, None, detail);
            return None;
        }
        self.hosts.push(HostChain { report: HostReport { host: name.to_string(), ..HostReport::default() }, ..HostChain::default() });
        self.host_index.insert(name.to_string(), self.hosts.len() - 1);
        Some(self.hosts.len() - 1)
    }

    fn line(&mut self, file: usize, line: u64, text: &str, cut: bool) {
        self.budget = self.budget.saturating_add(WORK_PER_LINE);
        let Some(stats) = self.files.get_mut(file) else { return };
        let Some(parsed) = parse_line(text) else {
            stats.not_syslog += 1;
            return;
        };
        let looks_like_record = |m: &str| m.starts_with("event=") || m.starts_with('{');
        if parsed.tag == MODULE_TAG && !cut && looks_like_record(parsed.message) {
            stats.module_records += 1;
            self.module_records.add(Location { file, line }, parsed.host, parsed.message);
            return;
        }
        if parsed.tag != DAEMON_TAG {
            stats.other_lines += 1;
            return;
        }
        stats.daemon_lines += 1;
        let at = Location { file, line };
        let Some(host) = self.host(parsed.host, at) else { return };
        let message = parsed.message;
        if cut {
            self.add(FindingKind::NotARecord, host, at, None, format!("vigild line longer than {MAX_LINE_BYTES} bytes: not a record"));
            return;
        }
        match split_mac(message) {
            Some((body, mac, encoding)) => self.sealed(host, at, &body, mac, encoding),
            None if looks_like_record(message) => {
                let event = message.strip_prefix("event=").map(|r| r.split(' ').next().unwrap_or(r)).filter(|e| is_event_name(e));
                let what = event.map(|e| format!(" ({e})")).unwrap_or_default();
                self.add(FindingKind::Unsealed, host, at, None, format!("unsealed record{what}: no mac (forged, or written before the chain existed)"));
            }
            None => {
                let excerpt: String = message.chars().take(60).collect();
                self.add(FindingKind::NotARecord, host, at, None, format!("vigild line that is not an audit record: {}", escaped(excerpt.as_bytes())));
            }
        }
    }

    /// Keys to try for `seq` on `host`, best first: the host's current key, keys not
    /// bound to another host (latest start first), then keys the host retired.
    fn candidates(&self, host: usize, seq: u64) -> (Vec<usize>, bool) {
        let chain = &self.hosts[host];
        let usable = |k: usize| self.keys[k].host.is_none() || self.keys[k].host == Some(host);
        let retired = |k: usize| chain.retired.iter().any(|r| r.key == k);
        let mut order: Vec<usize> = Vec::new();
        if let Some(k) = chain.current_key {
            if self.keys[k].start <= seq {
                order.push(k);
            }
        }
        let mut others: Vec<usize> = (0..self.keys.len()).filter(|&k| usable(k) && self.keys[k].start <= seq && Some(k) != chain.current_key).collect();
        others.sort_by_key(|&k| (retired(k), std::cmp::Reverse(self.keys[k].start), k));
        order.extend(others);
        let any_usable = (0..self.keys.len()).any(usable);
        (order, any_usable)
    }

    fn sealed(&mut self, host: usize, at: Location, body: &str, mac: &str, encoding: Encoding) {
        let Some(pos) = position(body, encoding) else {
            self.add(FindingKind::EditedOrForged, host, at, None, "edited or forged: a mac, but no readable seq= and prev= before it".into());
            return;
        };
        let (candidates, any_usable) = self.candidates(host, pos.seq);
        if candidates.is_empty() {
            self.no_key(host, at, pos.seq, any_usable);
            return;
        }
        self.hosts[host].last_no_key = None;
        let mut over_budget: Option<u64> = None;
        let mut implausible = false;
        let mut found = None;
        for k in candidates {
            match self.keys[k].derive(pos.seq, &mut self.budget) {
                Derived::Key(key) => {
                    if key.mac(body) == mac {
                        found = Some((k, key));
                        break;
                    }
                }
                Derived::OverBudget(cost) => over_budget = Some(over_budget.map_or(cost, |c| c.min(cost))),
                Derived::Implausible => implausible = true,
            }
        }
        let Some((k, key)) = found else {
            let seq = pos.seq;
            if let Some(cost) = over_budget {
                let detail = format!("not checked: claims seq {seq}, {cost} key steps away from what was derived so far (the work limit keeps forged seqs from stalling verify)");
                self.add(FindingKind::NotChecked, host, at, Some(seq), detail);
                return;
            }
            let far = if implausible { ", implausibly far from the key's start" } else { "" };
            let index = self.add(FindingKind::EditedOrForged, host, at, Some(seq), format!("edited or forged: does not verify (claims seq {seq}{far})"));
            let pending = &mut self.hosts[host].pending;
            if pending.len() < MAX_PENDING {
                pending.push((seq, at, index));
            }
            return;
        };
        self.authentic(host, at, k, key, &pos, mac, body, encoding);
    }

    fn no_key(&mut self, host: usize, at: Location, seq: u64, any_usable: bool) {
        // Consecutive records before the key's start make one finding.
        if let Some(index) = self.hosts[host].last_no_key {
            if let Some(f) = self.findings.get_mut(index) {
                let last_seq = f.seq_end.or(f.seq).unwrap_or(0);
                if f.at.file == at.file && seq == last_seq.wrapping_add(1) {
                    f.seq_end = Some(seq);
                    f.end_line = Some(at.line);
                    f.detail = no_key_detail(f.seq.unwrap_or(seq), seq, f.at.line, at.line, &self.keys, any_usable);
                    return;
                }
            }
        }
        let detail = no_key_detail(seq, seq, at.line, at.line, &self.keys, any_usable);
        let index = self.add(FindingKind::NoKey, host, at, Some(seq), detail);
        self.hosts[host].last_no_key = index;
    }

    #[allow(clippy::too_many_arguments)]
    fn authentic(&mut self, host: usize, at: Location, k: usize, key: Key, pos: &Position<'_>, mac: &str, body: &str, encoding: Encoding) {
        let seq = pos.seq;
        let event = pos.event.unwrap_or("?").to_string();
        self.hosts[host].report.authentic += 1;
        if self.keys[k].host.is_none() {
            self.keys[k].host = Some(host);
            self.key_bound(k, host, at);
        }
        // A key the host already left.
        if let Some(r) = self.hosts[host].retired.iter().find(|r| r.key == k) {
            if r.until.is_none_or(|until| seq >= until) {
                let since = self.place(r.at);
                let detail = format!("sealed with key {} (seq {seq}), which this host's chain left at {since}: forged with an old key, or files out of order", k + 1);
                self.add(FindingKind::RetiredKey, host, at, Some(seq), detail);
                self.remember_last(host, seq, mac);
                return;
            }
        }
        match self.hosts[host].current_key {
            None => {
                self.hosts[host].current_key = Some(k);
                self.hosts[host].current_since = at;
            }
            Some(current) if current == k => {}
            Some(current) => {
                let is_genesis = pos.prev == NO_PREV && seq == self.keys[k].start;
                if is_genesis {
                    self.close_segment(host);
                    let since = self.hosts[host].current_since;
                    self.hosts[host].retired.push(Retired { key: current, until: None, at });
                    self.hosts[host].current_key = Some(k);
                    self.hosts[host].current_since = at;
                    self.hosts[host].last = None;
                    let detail = format!("a new chain starts here (seq {seq}, key {}; the previous chain, key {}, began at {}): vigild's chain state was reset", k + 1, current + 1, self.place(since));
                    self.add(FindingKind::NewChain, host, at, Some(seq), detail);
                } else if self.keys[k].start > self.keys[current].start {
                    self.hosts[host].retired.push(Retired { key: current, until: Some(self.keys[k].start), at });
                    self.hosts[host].current_key = Some(k);
                    self.hosts[host].current_since = at;
                    let detail = format!("key {} takes over from key {} at seq {}", k + 1, current + 1, self.keys[k].start);
                    self.add(FindingKind::KeyChange, host, at, Some(seq), detail);
                } else {
                    let detail = format!("sealed with key {} (seq {seq}), but this host's chain uses key {} since {}: a second chain under the same host name", k + 1, current + 1, self.place(self.hosts[host].current_since));
                    self.add(FindingKind::OtherChain, host, at, Some(seq), detail);
                    return;
                }
            }
        }
        // prev links this record to the authentic record before it.
        let genesis = pos.prev == NO_PREV && seq == self.keys[k].start;
        if let Some(last) = &self.hosts[host].last {
            if last.seq.checked_add(1) == Some(seq) && last.mac_prefix != pos.prev && !genesis {
                let detail = format!("prev mismatch: seq {seq} has prev={} but seq {} before it has mac {}...", pos.prev, last.seq, last.mac_prefix);
                self.add(FindingKind::PrevMismatch, host, at, Some(seq), detail);
            }
        }
        self.remember_last(host, seq, mac);
        self.check_next_keys(host, k, seq, at);
        let dropped = if event == Event::RecordsDropped.as_str() { dropped_claim(body, encoding) } else { None };
        self.place_in_chain(host, at, k, seq, &event, dropped);
        self.keys[k].confirm(seq, key);
    }

    /// A record under key `k` at `seq`: notes any later key, not bound to a host yet,
    /// whose start it is past.
    fn check_next_keys(&mut self, host: usize, k: usize, seq: u64, at: Location) {
        let start = self.keys[k].start;
        for later in 0..self.keys.len() {
            let slot = &self.keys[later];
            if slot.host.is_none() && slot.start > start && slot.start <= seq && !self.hosts[host].past_next_key.iter().any(|(l, ..)| *l == later) {
                self.hosts[host].past_next_key.push((later, k, seq, at));
            }
        }
    }

    /// Key `k` verified its first record, on `host`.
    fn key_bound(&mut self, k: usize, host: usize, at: Location) {
        for h in 0..self.hosts.len() {
            let noted: Vec<(usize, usize, u64, Location)> = self.hosts[h].past_next_key.iter().filter(|(l, ..)| *l == k).copied().collect();
            self.hosts[h].past_next_key.retain(|(l, ..)| *l != k);
            if h != host {
                continue;
            }
            for (later, used, seq, when) in noted {
                let detail = format!(
                    "sealed with key {} at seq {seq}, but key {} starts at seq {} and verifies this host's records ({}): forged with the old key",
                    used + 1,
                    later + 1,
                    self.keys[later].start,
                    self.line_ref(at, when)
                );
                self.add(FindingKind::PastNextKey, host, when, Some(seq), detail);
            }
        }
    }

    fn remember_last(&mut self, host: usize, seq: u64, mac: &str) {
        self.hosts[host].last = Some(Last { seq, mac_prefix: mac.get(..PREV_HEX).unwrap_or(mac).to_string() });
    }

    /// Puts an authentic record into its host's chain: in order, after a gap, or out of
    /// order.
    fn place_in_chain(&mut self, host: usize, at: Location, k: usize, seq: u64, event: &str, dropped: Option<(u64, u64)>) {
        let Some(segment) = self.hosts[host].segment.as_ref() else {
            self.hosts[host].segment = Some(Segment {
                first: seq,
                first_at: at,
                frontier: seq,
                frontier_at: at,
                frontier_event: event.to_string(),
                gaps: BTreeMap::new(),
                ranges_by_seq: BTreeMap::new(),
            });
            self.extend_range(host, at, k, seq, true);
            self.hosts[host].pending.clear();
            self.hosts[host].report.last_seq = Some(seq);
            return;
        };
        let frontier = segment.frontier;
        let frontier_at = segment.frontier_at;
        if seq > frontier {
            if seq > frontier + 1 {
                self.open_gap(host, frontier + 1, seq - 1, frontier_at, at, seq, event, dropped);
            }
            let continues = seq == frontier + 1;
            if let Some(segment) = self.hosts[host].segment.as_mut() {
                segment.frontier = seq;
                segment.frontier_at = at;
                segment.frontier_event = event.to_string();
            }
            self.extend_range(host, at, k, seq, !continues);
            self.hosts[host].pending.clear();
            self.hosts[host].report.last_seq = Some(seq);
            return;
        }
        // Behind the frontier: a record out of order, or a copy.
        let frontier_ref = self.line_ref(frontier_at, at);
        enum Behind {
            InGap(Location, Location),
            BeforeFirst(u64, Location),
            Seen(Option<usize>),
        }
        let behind = {
            let Some(segment) = self.hosts[host].segment.as_mut() else { return };
            let gap_start = segment.gaps.range(..=seq).next_back().filter(|(_, g)| g.end >= seq).map(|(s, _)| *s);
            match gap_start.and_then(|start| Some((start, segment.gaps.remove(&start)?))) {
                Some((start, gap)) => {
                    let (before, after) = (gap.before, gap.after);
                    if start < seq {
                        segment.gaps.insert(start, Gap { end: seq - 1, before, after, after_seq: gap.after_seq, after_event: gap.after_event.clone() });
                    }
                    if seq < gap.end {
                        segment.gaps.insert(seq + 1, Gap { end: gap.end, before, after, after_seq: gap.after_seq, after_event: gap.after_event });
                    }
                    Behind::InGap(before, after)
                }
                None if seq < segment.first => Behind::BeforeFirst(segment.first, segment.first_at),
                None => Behind::Seen(segment.ranges_by_seq.range(..=seq).next_back().map(|(_, &i)| i)),
            }
        };
        let (kind, detail) = match behind {
            Behind::InGap(before, after) => (
                FindingKind::Reordered,
                format!("reordered: seq {seq} comes after seq {frontier} ({frontier_ref}); it belongs between {} and {}", self.line_ref(before, at), self.line_ref(after, at)),
            ),
            Behind::BeforeFirst(first, first_at) => (
                FindingKind::Reordered,
                format!("reordered: seq {seq} comes after seq {frontier} ({frontier_ref}); it belongs before seq {first} ({})", self.line_ref(first_at, at)),
            ),
            Behind::Seen(range) => {
                let seen = range.and_then(|i| self.hosts[host].report.ranges.get(i)).filter(|r| r.last_seq >= seq && r.first_seq <= seq).map(|r| (r.from, r.to));
                let detail = match seen {
                    Some((from, to)) if from.file == to.file => format!("duplicate seq {seq}: already verified in {} lines {}..{}", self.files.get(from.file).map(|f| display_path(&f.path)).unwrap_or_default(), from.line, to.line),
                    Some((from, to)) => format!("duplicate seq {seq}: already verified in {} .. {}", self.place(from), self.place(to)),
                    None => format!("duplicate seq {seq}: this seq was already accounted for earlier in the chain"),
                };
                (FindingKind::DuplicateSeq, detail)
            }
        };
        self.add(kind, host, at, Some(seq), detail);
    }

    #[allow(clippy::too_many_arguments)]
    fn open_gap(&mut self, host: usize, first: u64, last: u64, before: Location, after: Location, after_seq: u64, event: &str, dropped: Option<(u64, u64)>) {
        let mut last = last;
        // vigild's own account: `records_dropped first_seq=A count=N` right after A..A+N-1.
        if let Some((claimed_first, count)) = dropped {
            if claimed_first.checked_add(count) == Some(after_seq) && count > 0 {
                let from = claimed_first.max(first);
                let detail = format!("seqs {from}..{last} were dropped by vigild (its spool was full), as its records_dropped record here says");
                self.add(FindingKind::DroppedByDaemon, host, after, Some(from), detail);
                if from == first {
                    return;
                }
                last = from - 1;
            }
        }
        // Seqs claimed by records that did not verify, between the two: edited records.
        let mut edited: Vec<(u64, Option<usize>)> =
            self.hosts[host].pending.iter().filter(|(s, l, _)| (first..=last).contains(s) && *l > before && *l < after).map(|(s, _, i)| (*s, *i)).collect();
        edited.sort_unstable();
        edited.dedup_by_key(|(s, _)| *s);
        for (_, index) in &edited {
            if let Some(f) = index.and_then(|i| self.findings.get_mut(i)) {
                f.detail.push_str(": its seq is absent from the chain here, so this is most likely the original record, edited");
            }
        }
        let Some(segment) = self.hosts[host].segment.as_mut() else { return };
        let mut start = first;
        for (seq, _) in edited.iter().map(|(s, i)| (*s, *i)).chain(std::iter::once((last.saturating_add(1), None))) {
            if seq > start {
                segment.gaps.insert(start, Gap { end: seq - 1, before, after, after_seq, after_event: event.to_string() });
            }
            start = seq.saturating_add(1);
        }
    }

    fn extend_range(&mut self, host: usize, at: Location, k: usize, seq: u64, new_range: bool) {
        let chain = &mut self.hosts[host];
        if !new_range {
            if let Some(r) = chain.report.ranges.last_mut() {
                if r.last_seq.checked_add(1) == Some(seq) && r.to.file == at.file && r.key == k {
                    r.last_seq = seq;
                    r.to = at;
                    return;
                }
            }
        }
        chain.report.ranges.push(VerifiedRange { first_seq: seq, last_seq: seq, from: at, to: at, key: k });
        let index = chain.report.ranges.len() - 1;
        if let Some(segment) = chain.segment.as_mut() {
            segment.ranges_by_seq.insert(seq, index);
        }
    }

    /// Reports the open gaps of the host's current segment and whether its end is sealed.
    fn close_segment(&mut self, host: usize) {
        let Some(segment) = self.hosts[host].segment.take() else { return };
        for (first, gap) in &segment.gaps {
            let mut detail = format!("missing seqs {first}..{} (between {} and {})", gap.end, self.place(gap.before), self.line_ref(gap.after, gap.before));
            if RUN_START_EVENTS.iter().any(|e| e.as_str() == gap.after_event) {
                let _ = write!(detail, ": before {} at {}: the end of the previous run was cut", gap.after_event, self.line_ref(gap.after, gap.before));
            }
            if let Some(f) = self.add(FindingKind::MissingSeqs, host, gap.after, Some(*first), detail).and_then(|i| self.findings.get_mut(i)) {
                f.seq_end = Some(gap.end);
            }
        }
        if !END_EVENTS.iter().any(|e| e.as_str() == segment.frontier_event) {
            let detail = format!(
                "records after seq {} may be missing: run `vigilctl audit seal`, then verify again (the last record is {}, not a seal or daemon_stop)",
                segment.frontier,
                escaped(segment.frontier_event.as_bytes())
            );
            self.add(FindingKind::TailMayBeMissing, host, segment.frontier_at, Some(segment.frontier), detail);
        }
    }

    fn finish(mut self) -> Report {
        for host in 0..self.hosts.len() {
            self.close_segment(host);
            for (later, used, seq, at) in std::mem::take(&mut self.hosts[host].past_next_key) {
                let detail = format!(
                    "sealed with key {} at seq {seq}, past the start of key {} (seq {}), which verified no record: if key {} is this host's, the records from here on were forged with the old key; if it is another host's, verify without it",
                    used + 1,
                    later + 1,
                    self.keys[later].start,
                    later + 1
                );
                self.add(FindingKind::PastNextKey, host, at, Some(seq), detail);
            }
        }
        let mut findings = std::mem::take(&mut self.findings);
        findings.sort_by_key(|f| (f.host, f.at, !f.kind.is_failure()));
        let mut suppressed: Vec<(usize, FindingKind, u64)> =
            self.per_kind.iter().filter(|(_, n)| **n as usize > MAX_FINDINGS_PER_KIND).map(|((h, k), n)| (*h, *k, *n - MAX_FINDINGS_PER_KIND as u64)).collect();
        suppressed.sort();
        Report {
            files: self.files,
            hosts: self.hosts.into_iter().map(|h| h.report).collect(),
            key_starts: self.keys.iter().map(|k| k.start).collect(),
            findings,
            suppressed,
            module_records: self.module_records,
        }
    }
}

fn no_key_detail(first: u64, last: u64, first_line: u64, last_line: u64, keys: &[KeySlot], any_usable: bool) -> String {
    let seqs = if first == last { format!("seq {first}") } else { format!("seqs {first}..{last} (lines {first_line}..{last_line})") };
    if !any_usable {
        return format!("{seqs}: not verifiable with the keys given (every key given belongs to another host)");
    }
    let lowest = keys.iter().map(|k| k.start).min();
    match lowest {
        Some(start) => format!("{seqs}: before the key's start (seq {start}): not verifiable with the keys given"),
        None => format!("{seqs}: not verifiable: no key given"),
    }
}

#[cfg(test)]
mod tests;
