//! What `verify` found: findings with their places, verified ranges per host, counts
//! per file, and the report's text.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::ModuleRecords;
use crate::display::{display_path, escaped};
use crate::syslog_line::MAX_LINE_BYTES;

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
    /// Exact copies of records verified just before (at-least-once forwarding),
    /// skipped: not counted in `authentic`.
    pub duplicates: u64,
    /// Where the first of them is.
    pub first_duplicate: Option<Location>,
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
    pub(super) findings: Vec<Finding>,
    /// Findings not kept in detail: (host, kind, how many).
    pub(super) suppressed: Vec<(usize, FindingKind, u64)>,
    pub(super) module_records: ModuleRecords,
}

impl Report {
    /// True when every record verifies: no failure at all (notes and warnings allowed).
    pub fn is_clean(&self) -> bool {
        !self.findings.iter().any(|f| f.kind.is_failure())
            && !self.suppressed.iter().any(|(_, k, n)| k.is_failure() && *n > 0)
            && !self.hosts.is_empty()
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

    /// Exact copies skipped, all hosts.
    pub fn duplicates(&self) -> u64 {
        self.hosts.iter().map(|h| h.duplicates).sum()
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
            if let Some(first) = host.first_duplicate {
                let _ = writeln!(
                    out,
                    "  duplicates: {} exact cop{} of records verified just before, skipped (forwarding that delivers at least once); the first at {}",
                    host.duplicates,
                    if host.duplicates == 1 { "y" } else { "ies" },
                    self.place(first)
                );
            }
            for f in self.findings.iter().filter(|f| f.host == index) {
                let _ = writeln!(out, "  {}: {}: {}", self.place(f.at), if f.kind.is_failure() { "FAIL" } else { "note" }, f.detail);
            }
            for (h, kind, n) in &self.suppressed {
                if *h == index && *n > 0 {
                    let _ = writeln!(
                        out,
                        "  {}: ... and {n} more \"{}\" findings, not listed",
                        if kind.is_failure() { "FAIL" } else { "note" },
                        kind.label()
                    );
                }
            }
        }
        self.module_records.render(&mut out, |at| self.place(at));
        let failures = self.failure_count();
        let warned = self.module_records.count() > 0;
        let mut asides = Vec::new();
        if warned {
            asides.push(format!("warnings: {}", self.module_records.summary()));
        }
        let duplicates = self.duplicates();
        if duplicates > 0 {
            asides.push(format!("duplicates: {duplicates} skipped"));
        }
        let warnings = if asides.is_empty() { String::new() } else { format!(" ({})", asides.join("; ")) };
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
