//! `vigilctl audit report`: aureport's view of the trail before ausearch's. Per day and
//! user: logins, idle / max-age / admin ends, re-authentication asked, granted and
//! failed, refused calls, inhibitors; per host the chain's state; a histogram of idle
//! ends by hour of day.
//!
//! The records are read by the timeline's own code (`crate::trail`) and filtered as
//! `show` filters them: every number here is a count of events `vigilctl audit show`
//! lists with the same `--since`/`--until` (and `--event`). Only `vigild` records count: the
//! module's (`pam_vigil`) have no mac and anyone can write one, so they are counted
//! per host as unauthenticated lines, never as what happened.
//!
//! Without keys the chain's state is what the seqs say (missing seqs, unverified);
//! with `--key` it is `verify`'s result for each host. The chain is about the files as
//! a whole: `--since`/`--until` do not apply to it.
//!
//! The **unusual** section lists what the rules of [`unusual`] find, each item with
//! its rule, session, user and the lines it rests on; the rules' thresholds are
//! [`Thresholds`] (`vigilctl audit report` flags; the default is the documented ones).
//!
//! Memory: the records stream by once and only counts stay (per day and user, per
//! host, per hour); a session's state (its user, and counts waiting for it) lasts while
//! its block takes records.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, BufRead};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use vigil_protocol::events::{EndReason, Event as EventName};

use crate::chain::KeyFile;
use crate::display::escaped;
use crate::ids::IdMap;
use crate::timeline::Filter;
use crate::trail::{BlockId, Event, Input, Place, Scan, Visit, open_files, scan, streams};
use crate::verify::{self, FindingKind};
pub use unusual::Thresholds;
use unusual::{SessionState, Unusual, Watch};

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

    fn bump(&mut self, column: usize) {
        if let Some(slot) = self.slots().into_iter().nth(column) {
            *slot += 1;
        }
    }

    fn merge(&mut self, other: Counts) {
        for (slot, value) in self.slots().into_iter().zip(other.values()) {
            *slot += value;
        }
    }
}

/// The column `event` is counted in, if any.
fn column(event: &Event) -> Option<usize> {
    COLUMNS
        .iter()
        .position(|&(_, name, reason)| event.is(name) && reason.is_none_or(|r| event.get("reason") == Some(r.as_str().as_bytes())))
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
    /// Exact copies of the host's last records (at-least-once forwarding), skipped:
    /// in no other count.
    pub duplicates: u64,
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
    /// Exact copies of records verified just before, skipped.
    pub duplicates: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub days: Vec<DayRow>,
    pub total: Counts,
    pub hosts: Vec<HostChain>,
    /// Idle ends (`session_end reason=idle`) by the hour of day the lines give.
    pub idle_ends_by_hour: [u64; 24],
    /// What the rules find unusual.
    pub unusual: Unusual,
}

/// Reads `paths` and summarises them; `keys` (may be empty) verify the chain;
/// `thresholds` are the unusual rules'.
///
/// With keys, `verify` reads the files on a second thread while the report reads them
/// on this one: the two readings share nothing but the files, and the report needs
/// verify's result only at the end.
pub fn report_files(paths: &[PathBuf], filter: &Filter, thresholds: Thresholds, keys: &[KeyFile]) -> io::Result<Report> {
    if keys.is_empty() {
        return report_inputs(open_files(paths)?, filter, thresholds, None, SystemTime::now());
    }
    std::thread::scope(|scope| {
        let verifying = scope.spawn(|| verify::verify_files(paths, keys));
        let now = SystemTime::now();
        let tallied = open_files(paths).and_then(|inputs| tally_inputs(inputs, filter, thresholds, now));
        let verified = verifying.join().map_err(|_| io::Error::other("verify stopped unexpectedly"))??;
        let (tally, scanned) = tallied?;
        Ok(tally.report(Some(&verified), &scanned.names))
    })
}

/// Like [`report_files`], from readers, with `verify`'s report when keys were given.
pub fn report_readers<R: BufRead>(
    inputs: Vec<(PathBuf, R)>,
    filter: &Filter,
    thresholds: Thresholds,
    verified: Option<&verify::Report>,
    now: SystemTime,
) -> io::Result<Report> {
    report_inputs(streams(inputs), filter, thresholds, verified, now)
}

fn report_inputs<R: BufRead>(
    inputs: Vec<Input<R>>,
    filter: &Filter,
    thresholds: Thresholds,
    verified: Option<&verify::Report>,
    now: SystemTime,
) -> io::Result<Report> {
    let (tally, scanned) = tally_inputs(inputs, filter, thresholds, now)?;
    Ok(tally.report(verified, &scanned.names))
}

fn tally_inputs<'f, R: BufRead>(
    inputs: Vec<Input<R>>,
    filter: &'f Filter,
    thresholds: Thresholds,
    now: SystemTime,
) -> io::Result<(Tally<'f>, Scan)> {
    let mut tally = Tally::new(filter, thresholds);
    let scanned = scan(inputs, now, false, &mut tally)?;
    Ok((tally, scanned))
}

/// A counted event, until its session's user is known.
#[derive(Debug, Clone, Copy)]
struct Counted {
    day: Option<(i32, u8, u8)>,
    hour: Option<u8>,
    column: usize,
}

/// What a session's block needs while it takes records: its header's user (vigild's
/// records first) and what waits for it.
#[derive(Default)]
struct OpenSession {
    vigild_user: Option<u32>,
    any_user: Option<u32>,
    pending: Vec<Counted>,
}

/// What the report keeps for a session's block while it takes records, held with the
/// block by the reader (`crate::trail`): its user and waiting counts, and the unusual
/// rules' state of it. Boxed, so that the reader's entry of every block (a daemon's
/// too, and the ended sessions it keeps joinable) stays a few words.
#[derive(Default)]
struct SessionTally {
    open: OpenSession,
    watch: SessionState,
}

/// A block's [`SessionTally`], once it is a session's.
type BlockTally = Option<Box<SessionTally>>;

/// Per host: records, unauthenticated lines, and the seqs missing between one record
/// and the next in file order.
#[derive(Default)]
struct HostTally {
    name: String,
    records: u64,
    unauthenticated: u64,
    last_seq: Option<u64>,
    missing_seqs: u64,
    duplicates: u64,
}

/// A row's day: (year, month, day), as the line gives it.
type Day = Option<(i32, u8, u8)>;

/// The counts per day and user: each day numbered as it is first read (by SipHash
/// keyed at random: the file chooses days), then per day by user number ([`IdMap`]).
/// Records come in about the order of their time: the day of the last count is asked
/// first, and a count costs no hash of what the file chose.
#[derive(Default)]
struct Days {
    numbers: HashMap<Day, usize>,
    rows: Vec<(Day, IdMap<Option<u32>, Counts>)>,
    last: Option<(Day, usize)>,
}

impl Days {
    /// Counts one event of `column` for `day` and `user`.
    fn bump(&mut self, day: Day, user: Option<u32>, column: usize) {
        let number = match self.last {
            Some((last, number)) if last == day => number,
            _ => {
                let next = self.rows.len();
                let number = *self.numbers.entry(day).or_insert(next);
                if number == next {
                    self.rows.push((day, IdMap::default()));
                }
                self.last = Some((day, number));
                number
            }
        };
        if let Some((_, users)) = self.rows.get_mut(number) {
            users.entry(user).or_default().bump(column);
        }
    }
}

/// The report's numbers as the records stream by: counts per day and user, per host
/// and per hour. What a session needs while it takes records is its block's
/// ([`BlockTally`]), kept by the reader.
///
/// `users` and `days` are keyed by what the file says (a user name; a day, whose year
/// may be any): SipHash keyed at random.
struct Tally<'f> {
    filter: &'f Filter,
    users: HashMap<Vec<u8>, u32>,
    user_names: Vec<Vec<u8>>,
    days: Days,
    total: Counts,
    by_hour: [u64; 24],
    hosts: Vec<HostTally>,
    watch: Watch,
}

impl<'f> Tally<'f> {
    fn new(filter: &'f Filter, thresholds: Thresholds) -> Tally<'f> {
        Tally {
            filter,
            users: HashMap::new(),
            user_names: Vec::new(),
            days: Days::default(),
            total: Counts::default(),
            by_hour: [0; 24],
            hosts: Vec::new(),
            watch: Watch::new(thresholds),
        }
    }

    fn user(&mut self, name: &[u8]) -> u32 {
        intern(&mut self.users, &mut self.user_names, name)
    }

    fn count(&mut self, counted: Counted, user: Option<u32>) {
        if let Some(wanted) = &self.filter.user
            && user.and_then(|u| self.user_names.get(u as usize)).map(Vec::as_slice) != Some(wanted.as_bytes())
        {
            return;
        }
        self.days.bump(counted.day, user, counted.column);
        self.total.bump(counted.column);
        if COLUMNS.get(counted.column).is_some_and(|&(_, name, reason)| name == EventName::SessionEnd && reason == Some(EndReason::Idle))
            && let Some(slot) = counted.hour.and_then(|h| self.by_hour.get_mut(usize::from(h)))
        {
            *slot += 1;
        }
    }

    fn report(self, verified: Option<&verify::Report>, file_names: &[String]) -> Report {
        let unusual = self.watch.into_unusual(file_names, &self.user_names, self.filter, verified);
        let mut days: BTreeMap<(String, String), Counts> = BTreeMap::new();
        for (day, user, counts) in
            self.days.rows.into_iter().flat_map(|(day, users)| users.into_iter().map(move |(user, c)| (day, user, c)))
        {
            let day = day.map_or_else(|| "?".to_owned(), |(y, m, d)| format!("{y:04}-{m:02}-{d:02}"));
            let user = user.and_then(|u| self.user_names.get(u as usize)).map_or_else(|| "-".to_owned(), |u| escaped(u));
            days.entry((day, user)).or_default().merge(counts);
        }
        let mut hosts = self.hosts;
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        Report {
            days: days.into_iter().map(|((day, user), counts)| DayRow { day, user, counts }).collect(),
            total: self.total,
            hosts: hosts
                .into_iter()
                .map(|h| HostChain {
                    host: escaped(h.name.as_bytes()),
                    records: h.records,
                    unauthenticated: h.unauthenticated,
                    missing_seqs: h.missing_seqs,
                    duplicates: h.duplicates,
                    verified: verified.and_then(|r| verified_host(r, &h.name)),
                })
                .collect(),
            idle_ends_by_hour: self.by_hour,
            unusual,
        }
    }
}

/// The number of user `name`, given out in the order names are first read.
fn intern(users: &mut HashMap<Vec<u8>, u32>, user_names: &mut Vec<Vec<u8>>, name: &[u8]) -> u32 {
    if let Some(&id) = users.get(name) {
        return id;
    }
    let id = user_names.len() as u32;
    user_names.push(name.to_vec());
    users.insert(name.to_vec(), id);
    id
}

impl Tally<'_> {
    fn host(&mut self, index: u32, name: &str) -> Option<&mut HostTally> {
        let index = index as usize;
        if index >= self.hosts.len() {
            self.hosts.resize_with(index + 1, HostTally::default);
        }
        let host = self.hosts.get_mut(index)?;
        if host.name.is_empty() {
            host.name = name.to_owned();
        }
        Some(host)
    }
}

impl Visit for Tally<'_> {
    type Block = BlockTally;

    fn duplicate(&mut self, host: u32, host_name: &str) {
        if let Some(host) = self.host(host, host_name) {
            host.duplicates += 1;
        }
    }

    fn record(&mut self, place: Place<'_>, event: &Event, block: &mut BlockTally) {
        if let Some(host) = self.host(place.host, place.host_name) {
            if event.unauthenticated() {
                host.unauthenticated += 1;
            }
            if !event.module {
                host.records += 1;
                if let Some(seq) = event.get("seq").and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok()) {
                    if let Some(last) = host.last_seq {
                        host.missing_seqs = host.missing_seqs.saturating_add(seq.saturating_sub(last).saturating_sub(1));
                    }
                    host.last_seq = Some(seq);
                }
            }
        }
        // A session's user is its header's: vigild's first `user=`, else any record's.
        let mut session_user = None;
        let user = if place.session.is_some() {
            let open = &mut block.get_or_insert_with(Box::default).open;
            // Most records of a session name the user its first one named: that user's
            // number, without hashing the name again.
            let user = event.get("user").map(|u| match open.any_user {
                Some(id) if self.user_names.get(id as usize).is_some_and(|known| known.as_slice() == u) => id,
                _ => intern(&mut self.users, &mut self.user_names, u),
            });
            if open.any_user.is_none() {
                open.any_user = user;
            }
            if open.vigild_user.is_none() && !event.module {
                open.vigild_user = user;
            }
            session_user = open.vigild_user;
            user
        } else {
            event.get("user").map(|u| self.user(u))
        };
        let mut none = SessionState::default();
        let state = block.as_deref_mut().map_or(&mut none, |b| &mut b.watch);
        self.watch.record(&place, event, state, session_user, &self.user_names, self.filter);
        let filter = self.filter;
        if filter.session.is_some_and(|id| place.session != Some(id)) || event.module {
            return;
        }
        let time_ok = match (filter.since, filter.until, event.time) {
            (None, None, _) => true,
            (_, _, None) => false,
            (since, until, Some(t)) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u),
        };
        if !time_ok || filter.event.as_ref().is_some_and(|name| event.name != name.as_bytes()) {
            return;
        }
        let Some(column) = column(event) else { return };
        let counted = Counted { day: event.stamp.map(|(y, m, d, _)| (y, m, d)), hour: event.stamp.map(|(_, _, _, h)| h), column };
        if place.session.is_none() {
            self.count(counted, user);
            return;
        }
        let Some(open) = block.as_deref_mut().map(|b| &mut b.open) else { return };
        match open.vigild_user {
            Some(user) => self.count(counted, Some(user)),
            None => open.pending.push(counted),
        }
    }

    fn finished(&mut self, _id: BlockId, block: BlockTally) {
        let Some(block) = block else { return };
        let SessionTally { open, watch } = *block;
        self.watch.finished(watch, &self.user_names, self.filter);
        let user = open.vigild_user.or(open.any_user);
        for counted in open.pending {
            self.count(counted, user);
        }
    }
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
    Some(Verified { authentic: h.authentic, ranges: h.ranges.len() as u64, missing_seqs: missing, failures, duplicates: h.duplicates })
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
            if h.duplicates > 0 {
                let _ = write!(out, ", {} duplicates (exact copies, skipped)", h.duplicates);
            }
            match &h.verified {
                Some(v) => {
                    let verdict = if v.failures == 0 { "OK" } else { "FAILED" };
                    let _ = writeln!(
                        out,
                        "\n    verified with the keys given: {verdict}: {} authentic records in {} range(s), {} missing seqs, {} failure(s), {} duplicates (details: vigilctl audit verify)",
                        v.authentic, v.ranges, v.missing_seqs, v.failures, v.duplicates
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
        self.unusual.render(&mut out);
        out
    }
}

pub mod unusual;

#[cfg(test)]
mod tests;
