//! `vigilctl audit report`: aureport's view of the trail before ausearch's. Per day and
//! user: logins, idle / max-age / admin ends, re-authentication asked, granted and
//! failed, refused calls, inhibitors; per host the chain's state; a histogram of idle
//! ends by hour of day.
//!
//! The records are read and filtered by the timeline's own code (`read_trail`,
//! `select`): every number here is a count of events `vigilctl audit show` lists with
//! the same `--since`/`--until` (and `--event`). Only `vigild` records count: the
//! module's (`pam_vigil`) have no mac and anyone can write one, so they are counted
//! per host as unauthenticated lines, never as what happened.
//!
//! Without keys the chain's state is what the seqs say (missing seqs, unverified);
//! with `--key` it is `verify`'s result for each host. The chain is about the files as
//! a whole: `--since`/`--until` do not apply to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use vigil_protocol::events::{EndReason, Event as EventName};

use crate::chain::KeyFile;
use crate::display::escaped;
use crate::timeline::{Block, Event, Filter, open_files, read_trail, select};
use crate::verify::{self, FindingKind};

/// What one day of one user (or the whole report) counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// `session_open`.
    pub logins: u64,
    /// `session_end reason=idle`.
    pub idle_ends: u64,
    /// `session_end reason=max_age`.
    pub max_age_ends: u64,
    /// `session_end reason=admin`.
    pub admin_ends: u64,
    /// `reauth_required`.
    pub reauth_asked: u64,
    /// `reauth_granted`.
    pub reauth_granted: u64,
    /// `reauth_failed`.
    pub reauth_failed: u64,
    /// `call_refused`.
    pub refused: u64,
    /// `inhibit_start`.
    pub inhibitors: u64,
}

/// The columns, in order: heading, and which events they count (name, and `reason=`
/// when it matters).
const COLUMNS: [(&str, EventName, Option<EndReason>); 9] = [
    ("LOGINS", EventName::SessionOpen, None),
    ("IDLE", EventName::SessionEnd, Some(EndReason::Idle)),
    ("MAXAGE", EventName::SessionEnd, Some(EndReason::MaxAge)),
    ("ADMIN", EventName::SessionEnd, Some(EndReason::Admin)),
    ("ASKED", EventName::ReauthRequired, None),
    ("GRANTED", EventName::ReauthGranted, None),
    ("FAILED", EventName::ReauthFailed, None),
    ("REFUSED", EventName::CallRefused, None),
    ("INHIBIT", EventName::InhibitStart, None),
];

impl Counts {
    fn slots(&mut self) -> [&mut u64; 9] {
        [
            &mut self.logins,
            &mut self.idle_ends,
            &mut self.max_age_ends,
            &mut self.admin_ends,
            &mut self.reauth_asked,
            &mut self.reauth_granted,
            &mut self.reauth_failed,
            &mut self.refused,
            &mut self.inhibitors,
        ]
    }

    fn values(mut self) -> [u64; 9] {
        self.slots().map(|v| *v)
    }

    /// Counts `event` in the column it belongs to; false when it belongs to none.
    fn add(&mut self, event: &Event) -> bool {
        let column = COLUMNS
            .iter()
            .position(|&(_, name, reason)| event.is(name) && reason.is_none_or(|r| event.get("reason") == Some(r.as_str().as_bytes())));
        let Some(column) = column else { return false };
        if let Some(slot) = self.slots().into_iter().nth(column) {
            *slot += 1;
        }
        true
    }
}

/// One day of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayRow {
    /// `YYYY-MM-DD`, the host's date as the lines give it.
    pub day: String,
    /// The session's user (escaped like a record value); `-` for records of no user.
    pub user: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The chain's state on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostChain {
    pub host: String,
    /// `vigild` records (all, not only those the filter keeps).
    pub records: u64,
    /// Lines without a mac: `pam_vigil` records and `vigild` records without `mac=`.
    pub unauthenticated: u64,
    /// Seqs missing between the records' own `seq=` values (unverified: any line may be
    /// forged; `verified` says what the keys prove).
    pub missing_seqs: u64,
    /// With keys: what `audit verify` found for this host.
    pub verified: Option<Verified>,
}

/// `verify`'s result for a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Records whose mac verifies.
    pub authentic: u64,
    /// Verified ranges of seqs.
    pub ranges: u64,
    /// Seqs the verified chain is missing.
    pub missing_seqs: u64,
    /// Failures of any kind (edited, forged, reordered...).
    pub failures: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub days: Vec<DayRow>,
    pub total: Counts,
    pub hosts: Vec<HostChain>,
    /// Idle ends (`session_end reason=idle`) by the hour of day the lines give.
    pub idle_ends_by_hour: [u64; 24],
}

/// Reads `paths` and summarises them; `keys` (may be empty) verify the chain.
pub fn report_files(paths: &[PathBuf], filter: &Filter, keys: &[KeyFile]) -> io::Result<Report> {
    let verified = if keys.is_empty() { None } else { Some(verify::verify_files(paths, keys)?) };
    report_readers(open_files(paths)?, filter, verified.as_ref(), SystemTime::now())
}

/// Like [`report_files`], from readers, with `verify`'s report when keys were given.
pub fn report_readers<R: BufRead>(
    inputs: Vec<(PathBuf, R)>,
    filter: &Filter,
    verified: Option<&verify::Report>,
    now: SystemTime,
) -> io::Result<Report> {
    let trail = read_trail(inputs, now)?;
    let mut days: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut total = Counts::default();
    let mut by_hour = [0u64; 24];
    for block in &trail.blocks {
        let Some(selected) = select(block, filter) else { continue };
        for event in selected.into_iter().filter(|e| !e.module) {
            let user = user_of(block, event);
            let day = event.stamp.map_or_else(|| "?".to_owned(), |(y, m, d, _)| format!("{y:04}-{m:02}-{d:02}"));
            let mut row = days.get(&(day.clone(), user.clone())).copied().unwrap_or_default();
            if !row.add(event) {
                continue;
            }
            days.insert((day, user), row);
            total.add(event);
            if event.is(EventName::SessionEnd)
                && event.get("reason") == Some(EndReason::Idle.as_str().as_bytes())
                && let Some(slot) = event.stamp.and_then(|(_, _, _, h)| by_hour.get_mut(usize::from(h)))
            {
                *slot += 1;
            }
        }
    }
    Ok(Report {
        days: days.into_iter().map(|((day, user), counts)| DayRow { day, user, counts }).collect(),
        total,
        hosts: chains(&trail.blocks, verified),
        idle_ends_by_hour: by_hour,
    })
}

/// A session's user is its header's; a daemon record's, its own `user=` if any.
fn user_of(block: &Block, event: &Event) -> String {
    let user = if block.session.is_some() { block.header("user") } else { event.get("user") };
    user.map_or_else(|| "-".to_owned(), escaped)
}

/// Per host: records, unauthenticated lines, and the (block, seq, line) of each record.
type HostTally<'a> = BTreeMap<&'a str, (u64, u64, Vec<(usize, u64, u64)>)>;

fn chains(blocks: &[Block], verified: Option<&verify::Report>) -> Vec<HostChain> {
    // Per host: the records' seqs in file order (blocks keep it within each block).
    let mut hosts: HostTally = BTreeMap::new();
    for block in blocks {
        let entry = hosts.entry(block.host.as_str()).or_default();
        for event in &block.events {
            if event.unauthenticated() {
                entry.1 += 1;
            }
            if event.module {
                continue;
            }
            entry.0 += 1;
            if let Some(seq) = event.get("seq").and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok()) {
                let (file, line) = event.position();
                entry.2.push((file, line, seq));
            }
        }
    }
    hosts
        .into_iter()
        .map(|(host, (records, unauthenticated, mut seqs))| {
            seqs.sort_unstable();
            let missing_seqs = seqs.windows(2).map(|w| w[1].2.saturating_sub(w[0].2).saturating_sub(1)).fold(0u64, u64::saturating_add);
            HostChain {
                host: escaped(host.as_bytes()),
                records,
                unauthenticated,
                missing_seqs,
                verified: verified.and_then(|r| verified_host(r, host)),
            }
        })
        .collect()
}

fn verified_host(report: &verify::Report, host: &str) -> Option<Verified> {
    let index = report.hosts.iter().position(|h| h.host == host)?;
    let h = report.hosts.get(index)?;
    let findings = report.findings().iter().filter(|f| f.host == index);
    let (mut missing, mut failures) = (0u64, 0u64);
    for f in findings {
        if f.kind == FindingKind::MissingSeqs {
            missing = missing.saturating_add(f.seq_end.unwrap_or(0).saturating_sub(f.seq.unwrap_or(0)).saturating_add(1));
        }
        if f.kind.is_failure() {
            failures += 1;
        }
    }
    Some(Verified { authentic: h.authentic, ranges: h.ranges.len() as u64, missing_seqs: missing, failures })
}

impl Report {
    /// The report as a terminal shows it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let width = self.days.iter().map(|r| r.user.len()).max().unwrap_or(0).max(16);
        let _ = write!(out, "{:<10}  {:<width$}", "DAY", "USER");
        for (heading, _, _) in COLUMNS {
            let _ = write!(out, " {heading:>7}");
        }
        out.push('\n');
        let row = |out: &mut String, day: &str, user: &str, counts: Counts| {
            let _ = write!(out, "{day:<10}  {user:<width$}");
            for value in counts.values() {
                let _ = write!(out, " {value:>7}");
            }
            out.push('\n');
        };
        for r in &self.days {
            row(&mut out, &r.day, &r.user, r.counts);
        }
        row(&mut out, "total", "", self.total);
        out.push_str("\nchain per host (all records of the files):\n");
        for h in &self.hosts {
            let _ = write!(
                out,
                "  {}: {} vigild records, {} missing seqs by their seq= (unverified), {} unauthenticated lines",
                h.host, h.records, h.missing_seqs, h.unauthenticated
            );
            match &h.verified {
                Some(v) => {
                    let verdict = if v.failures == 0 { "OK" } else { "FAILED" };
                    let _ = writeln!(
                        out,
                        "\n    verified with the keys given: {verdict}: {} authentic records in {} range(s), {} missing seqs, {} failure(s) (details: vigilctl audit verify)",
                        v.authentic, v.ranges, v.missing_seqs, v.failures
                    );
                }
                None => out.push_str("; not verified (give --key)\n"),
            }
        }
        if self.hosts.is_empty() {
            out.push_str("  no vigild records\n");
        }
        out.push_str("\nidle ends by hour of day:\n");
        let most = self.idle_ends_by_hour.iter().copied().max().unwrap_or(0);
        for (hour, &n) in self.idle_ends_by_hour.iter().enumerate() {
            // At most 50 columns: scaled when an hour has more.
            let width = if most <= 50 { n } else { n.saturating_mul(50).div_ceil(most) };
            let bar = "#".repeat(usize::try_from(width).unwrap_or(50));
            let _ = writeln!(out, "  {hour:02} {bar}{}", if n > 0 { format!(" {n}") } else { String::new() });
        }
        out
    }
}

#[cfg(test)]
mod tests;
