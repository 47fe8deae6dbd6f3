//! The report's **unusual** section: records and patterns worth a look, each an item
//! naming its rule, the session and user, and the lines it rests on (file:line).
//!
//! The rules and their thresholds (AUDIT.md, "What the report finds unusual"; those in
//! [`Thresholds`] are `vigilctl audit report` flags, their defaults the constants here):
//! - `new_rhost`: a login (`session_open`) from a remote host the user had not logged in
//!   from earlier in the input, when the user had logged in before (the first login of a
//!   user in the input only sets what is known);
//! - `new_hour`: a login at an hour of day (the host's, as the line gives it) at which the
//!   user had not logged in, once the input holds [`HOUR_HISTORY`] of that user's logins
//!   (this login at least that long after the user's first in the input, and not the
//!   first itself);
//! - `reauth_failures`: [`REAUTH_FAILURES`] `reauth_failed` in one session within
//!   [`REAUTH_WINDOW`];
//! - `activity_suspect`, `call_refused` and `login_refused` (a locked user's login,
//!   sudo, su or cron job refused): every such record;
//! - `unauthenticated`: every line without a mac (`pam_vigil` records, `vigild` records
//!   without `mac=`); with keys, `chain`: every failure `verify` finds (gaps, edits,
//!   forgeries...), unsealed records aside (they are `unauthenticated` items already);
//! - `mostly_inhibited`: a user whose idle inhibitors cover more than half of their
//!   session time (summed over their sessions in the input);
//! - `long_session`: a session open for more than [`LONG_SESSION`] (ended, or still open
//!   at the input's last record).
//!
//! Only `vigild` records feed the rules (a `pam_vigil` line is anyone's: it is an
//! `unauthenticated` item and nothing else). Values from the file are escaped.
//!
//! Memory: per user, the remote hosts seen, a mask of hours and a few numbers; per open
//! session a few dozen bytes, dropped at its end; at most [`MAX_ITEMS`] items are listed
//! (every one is counted per rule).

// Nested `if let`s, as in `crate::trail`.
#![allow(clippy::collapsible_if)]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use vigil_protocol::events::Event as EventName;
use vigil_protocol::time::compact;

use crate::display::escaped;
use crate::ids::IdMap;
use crate::timeline::Filter;
use crate::trail::{Event, Place};

use crate::verify::{self, FindingKind};

/// A login at a new hour counts once the user's logins in the input span this long.
pub const HOUR_HISTORY: Duration = Duration::from_secs(7 * 86_400);
/// Failed re-authentications in one session that make an item...
pub const REAUTH_FAILURES: usize = 3;
/// ... within this long.
pub const REAUTH_WINDOW: Duration = Duration::from_secs(10 * 60);
/// A session open longer than this is an item.
pub const LONG_SESSION: Duration = Duration::from_secs(24 * 3600);
/// Items listed (all are counted).
pub const MAX_ITEMS: usize = 1000;
/// Lines given as evidence for one item.
pub const MAX_EVIDENCE: usize = 8;
/// The most `reauth_failed` a `reauth_failures` item may ask for (what one open session
/// keeps while it waits for them).
pub const MAX_REAUTH_FAILURES: usize = 1000;

/// The thresholds of the rules that have one (`vigilctl audit report --new-hour-after,
/// --reauth-failures, --reauth-window, --long-session`); the default is the documented
/// constants. `--json` gives them in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// `new_hour`: how long the user's logins in the input must span ([`HOUR_HISTORY`]).
    #[serde(rename = "new_hour_after_s", serialize_with = "seconds")]
    pub new_hour_after: Duration,
    /// `reauth_failures`: how many in one session ([`REAUTH_FAILURES`]; at least 1, at
    /// most [`MAX_REAUTH_FAILURES`], held there)...
    pub reauth_failures: usize,
    /// ... within this long ([`REAUTH_WINDOW`]).
    #[serde(rename = "reauth_window_s", serialize_with = "seconds")]
    pub reauth_window: Duration,
    /// `long_session`: a session open longer than this ([`LONG_SESSION`]).
    #[serde(rename = "long_session_s", serialize_with = "seconds")]
    pub long_session: Duration,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            new_hour_after: HOUR_HISTORY,
            reauth_failures: REAUTH_FAILURES,
            reauth_window: REAUTH_WINDOW,
            long_session: LONG_SESSION,
        }
    }
}

impl Thresholds {
    /// How many failures make an item, held to 1..=[`MAX_REAUTH_FAILURES`].
    fn failures(&self) -> usize {
        self.reauth_failures.clamp(1, MAX_REAUTH_FAILURES)
    }

    /// `new_hour after 7days of a user's logins, reauth_failures 3 within 10m,
    /// long_session over 1day, mostly_inhibited over half`: the text's heading.
    pub fn describe(&self) -> String {
        format!(
            "new_hour after {} of a user's logins, reauth_failures {} within {}, long_session over {}, mostly_inhibited over half",
            compact(self.new_hour_after),
            self.failures(),
            compact(self.reauth_window),
            compact(self.long_session)
        )
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// One unusual thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The rule's name (`new_rhost`, `new_hour`, `reauth_failures`, `activity_suspect`,
    /// `call_refused`, `login_refused`, `unauthenticated`, `chain`, `mostly_inhibited`,
    /// `long_session`).
    pub rule: &'static str,
    /// The host, escaped.
    pub host: String,
    /// The session, when the item is about one.
    pub session: Option<u64>,
    /// The user (escaped), when known.
    pub user: Option<String>,
    /// The syslog time of the item's first record, as the line gives it.
    pub time: String,
    /// What was found, values escaped.
    pub detail: String,
    /// `file:line` of the records.
    pub evidence: Vec<String>,
}

/// The section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unusual {
    /// In the order of their first record.
    pub items: Vec<Item>,
    /// Items per rule, listed or not.
    pub counts: BTreeMap<&'static str, u64>,
    /// Items counted but not listed (over [`MAX_ITEMS`]).
    pub not_listed: u64,
    /// The thresholds the rules used.
    pub thresholds: Thresholds,
}

/// (file index, line).
type Line = (usize, u64);

/// An item before the files' names are known.
struct Raw {
    rule: &'static str,
    host: String,
    session: Option<u64>,
    user: Option<String>,
    time: String,
    detail: String,
    evidence: Vec<Line>,
}

#[derive(Default)]
struct UserWatch {
    logins: u64,
    first_login: Option<SystemTime>,
    rhosts: HashSet<Vec<u8>>,
    /// Bit h: a login at hour h.
    hours: u32,
    session_time: Duration,
    inhibited: Duration,
    sessions: u64,
    inhibit_lines: Vec<Line>,
    host: String,
}

/// What the rules keep for a session's block (held with the block by the reader): its
/// [`SessionWatch`] while it is open.
#[derive(Default)]
pub(super) struct SessionState(Option<Box<SessionWatch>>);

/// An open session: when it started, its failures in the window, its inhibitors.
struct SessionWatch {
    session: u64,
    host: u32,
    user: Option<u32>,
    start: Option<(SystemTime, Line)>,
    /// Boxed: most sessions have none, and an open session's state is kept small.
    #[allow(clippy::box_collection)]
    fails: Option<Box<VecDeque<(SystemTime, Line)>>>,
    inhibit: Option<Box<Inhibit>>,
}

#[derive(Default)]
struct Inhibit {
    since: Option<SystemTime>,
    total: Duration,
    lines: Vec<Line>,
}

impl Inhibit {
    fn stop(&mut self, at: SystemTime) {
        if let Some(since) = self.since.take() {
            self.total += at.duration_since(since).unwrap_or_default();
        }
    }
}

/// The rules' state as the records stream by; an open session's is its block's
/// ([`SessionState`]). Keyed by the readers' user numbers ([`IdMap`]); what the file
/// names (remote hosts) by SipHash keyed at random.
#[derive(Default)]
pub(super) struct Watch {
    users: IdMap<u32, UserWatch>,
    /// Escaped, by the readers' host numbers.
    host_names: Vec<String>,
    last_time: Option<SystemTime>,
    items: Vec<Raw>,
    counts: BTreeMap<&'static str, u64>,
    not_listed: u64,
    thresholds: Thresholds,
}

fn text(v: Option<&[u8]>) -> String {
    v.map_or_else(|| "-".to_owned(), escaped)
}

fn user_name(names: &[Vec<u8>], user: Option<u32>) -> Option<String> {
    user.and_then(|u| names.get(u as usize)).map(|u| escaped(u))
}

fn hours_text(d: Duration) -> String {
    format!("{:.1}h", d.as_secs_f64() / 3600.0)
}

/// A session's length: in hours, or under an hour (a threshold lowered) as `2m13s`.
fn length_text(d: Duration) -> String {
    if d >= Duration::from_secs(3600) { hours_text(d) } else { compact(Duration::from_millis(d.as_millis() as u64)) }
}

impl Watch {
    pub(super) fn new(thresholds: Thresholds) -> Watch {
        Watch { thresholds, ..Watch::default() }
    }

    /// Adds an item when the filter keeps it (`filtered`: the item is about what
    /// happened, so `--user`, `--session`, `--since` and `--until` apply).
    #[allow(clippy::too_many_arguments)]
    fn add(&mut self, filter: &Filter, filtered: bool, time: Option<SystemTime>, user_bytes: Option<&[u8]>, raw: Raw) {
        if filtered {
            if filter.session.is_some_and(|id| raw.session != Some(id)) {
                return;
            }
            if filter.user.as_ref().is_some_and(|u| user_bytes != Some(u.as_bytes())) {
                return;
            }
            if let Some(t) = time {
                if filter.since.is_some_and(|s| t < s) || filter.until.is_some_and(|u| t > u) {
                    return;
                }
            }
        }
        *self.counts.entry(raw.rule).or_default() += 1;
        if self.items.len() < MAX_ITEMS {
            self.items.push(raw);
        } else {
            self.not_listed += 1;
        }
    }

    /// One record, whatever the filter: `session_user` is its session's user (vigild's).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &mut self,
        place: &Place<'_>,
        event: &Event,
        state: &mut SessionState,
        session_user: Option<u32>,
        names: &[Vec<u8>],
        filter: &Filter,
    ) {
        let line = (event.file, event.line);
        let host = place.host as usize;
        if host >= self.host_names.len() {
            self.host_names.resize_with(host + 1, String::new);
        }
        if let Some(name) = self.host_names.get_mut(host) {
            if name.is_empty() {
                *name = escaped(place.host_name.as_bytes());
            }
        }
        if let Some(t) = event.time {
            self.last_time = Some(self.last_time.map_or(t, |l| l.max(t)));
        }
        if event.unauthenticated() {
            let what = if event.module { "a pam_vigil record (anyone can write one)" } else { "a vigild record without mac" };
            let raw = Raw {
                rule: "unauthenticated",
                host: self.host_names.get(host).cloned().unwrap_or_default(),
                session: event.session(),
                user: event.get("user").map(escaped),
                time: event.time_text.clone(),
                detail: format!("{what}: event={}", escaped(&event.name)),
                evidence: vec![line],
            };
            self.add(filter, false, event.time, None, raw);
        }
        if event.module {
            return;
        }
        let user_bytes = session_user.and_then(|u| names.get(u as usize)).map(Vec::as_slice).or_else(|| event.get("user"));
        let session = place.session;
        if let Some(id) = session {
            if place.fresh || event.is(EventName::SessionOpen) {
                let watch = state.0.get_or_insert_with(|| {
                    Box::new(SessionWatch { session: id, host: place.host, user: session_user, start: None, fails: None, inhibit: None })
                });
                if let Some(t) = event.time {
                    if watch.start.is_none() || event.is(EventName::SessionOpen) {
                        watch.start = Some((t, line));
                    }
                }
            }
            if let Some(watch) = state.0.as_deref_mut() {
                if watch.user.is_none() {
                    watch.user = session_user;
                }
            }
        }
        let makes_items =
            [EventName::SessionOpen, EventName::ActivitySuspect, EventName::CallRefused, EventName::LoginRefused, EventName::ReauthFailed]
                .iter()
                .any(|&e| event.is(e));
        let host_name = if makes_items { self.host_names.get(host).cloned().unwrap_or_default() } else { String::new() };
        let raw = |rule: &'static str, detail: String, evidence: Vec<Line>| Raw {
            rule,
            host: host_name.clone(),
            session,
            user: user_bytes.map(escaped),
            time: event.time_text.clone(),
            detail,
            evidence,
        };
        if event.is(EventName::SessionOpen) {
            self.login(event, session_user, user_bytes, line, filter, &raw);
        } else if let Some((rule, keys)) = [
            (EventName::ActivitySuspect, ["source", "reason", "suspect_tty"]),
            (EventName::CallRefused, ["method", "reason", "uid"]),
            (EventName::LoginRefused, ["service", "rhost", "locked_by"]),
        ]
        .into_iter()
        .find(|&(name, _)| event.is(name))
        {
            let mut detail = rule.as_str().to_owned();
            for key in keys {
                detail.push_str(&format!(" {key}={}", text(event.get(key))));
            }
            self.add(filter, true, event.time, user_bytes, raw(rule.as_str(), detail, vec![line]));
        } else if event.is(EventName::ReauthFailed) {
            let (needed, window) = (self.thresholds.failures(), self.thresholds.reauth_window);
            let burst = match (state.0.as_deref_mut(), event.time) {
                (Some(watch), Some(t)) => {
                    let fails = watch.fails.get_or_insert_with(Box::default);
                    fails.push_back((t, line));
                    while fails.front().is_some_and(|&(first, _)| t.duration_since(first).unwrap_or_default() > window) {
                        fails.pop_front();
                    }
                    if fails.len() >= needed {
                        // The evidence: the first MAX_EVIDENCE of them (all of the default 3).
                        let n = fails.len();
                        let lines: Vec<Line> = fails.drain(..).take(MAX_EVIDENCE).map(|(_, l)| l).collect();
                        Some((n, lines))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some((n, lines)) = burst {
                let detail = format!(
                    "{n} failed re-authentication(s) within {} (last: reauth_service={})",
                    compact(window),
                    text(event.get("reauth_service"))
                );
                self.add(filter, true, event.time, user_bytes, raw("reauth_failures", detail, lines));
            }
        } else if event.is(EventName::InhibitStart) {
            if let (Some(watch), Some(t)) = (state.0.as_deref_mut(), event.time) {
                let inhibit = watch.inhibit.get_or_insert_with(Box::default);
                inhibit.stop(t);
                inhibit.since = Some(t);
                if inhibit.lines.len() < MAX_EVIDENCE {
                    inhibit.lines.push(line);
                }
            }
        } else if event.is(EventName::InhibitEnd) {
            if let (Some(watch), Some(t)) = (state.0.as_deref_mut(), event.time) {
                if let Some(inhibit) = watch.inhibit.as_mut() {
                    inhibit.stop(t);
                }
            }
        }
        if event.is_end() && session.is_some() {
            if let Some(watch) = state.0.take() {
                self.session_over(*watch, event.time, Some(line), names, filter);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn login(
        &mut self,
        event: &Event,
        session_user: Option<u32>,
        user_bytes: Option<&[u8]>,
        line: Line,
        filter: &Filter,
        raw: &dyn Fn(&'static str, String, Vec<Line>) -> Raw,
    ) {
        let Some(uid) = session_user else { return };
        let history = self.thresholds.new_hour_after;
        let u = self.users.entry(uid).or_default();
        let mut found = Vec::new();
        if let Some(rhost) = event.get("rhost").filter(|r| !r.is_empty()) {
            if !u.rhosts.contains(rhost) {
                if u.logins > 0 {
                    let detail = format!(
                        "first login from rhost={} (the user's earlier logins: from {} other remote host(s))",
                        escaped(rhost),
                        u.rhosts.len()
                    );
                    found.push(raw("new_rhost", detail, vec![line]));
                }
                u.rhosts.insert(rhost.to_vec());
            }
        }
        if let (Some((_, _, _, hour)), Some(t)) = (event.stamp, event.time) {
            let bit = 1u32 << u32::from(hour.min(23));
            let first = *u.first_login.get_or_insert(t);
            if u.logins > 0 && u.hours & bit == 0 && t.duration_since(first).unwrap_or_default() >= history {
                let detail = format!(
                    "login at {hour:02}h, an hour of day with no login of the user's in {} day(s) of their logins",
                    t.duration_since(first).unwrap_or_default().as_secs() / 86_400
                );
                found.push(raw("new_hour", detail, vec![line]));
            }
            u.hours |= bit;
        }
        u.logins += 1;
        for item in found {
            self.add(filter, true, event.time, user_bytes, item);
        }
    }

    /// A session ended at `end` (or the input did): its length and inhibited time.
    fn session_over(&mut self, watch: SessionWatch, end: Option<SystemTime>, end_line: Option<Line>, names: &[Vec<u8>], filter: &Filter) {
        let host = self.host_names.get(watch.host as usize).cloned().unwrap_or_default();
        let Some((start, start_line)) = watch.start else { return };
        let end = end.or(self.last_time).unwrap_or(start);
        let length = end.duration_since(start).unwrap_or_default();
        let user_bytes = watch.user.and_then(|u| names.get(u as usize)).map(Vec::as_slice);
        if length > self.thresholds.long_session {
            let (how, evidence) = match end_line {
                Some(l) => ("ended after", vec![start_line, l]),
                None => ("still open at the input's last record after", vec![start_line]),
            };
            let raw = Raw {
                rule: "long_session",
                host: host.clone(),
                session: Some(watch.session),
                user: user_name(names, watch.user),
                time: String::new(),
                detail: format!("{how} {} (more than {})", length_text(length), compact(self.thresholds.long_session)),
                evidence,
            };
            self.add(filter, true, Some(start), user_bytes, raw);
        }
        if let Some(uid) = watch.user {
            let u = self.users.entry(uid).or_default();
            u.session_time += length;
            u.sessions += 1;
            if u.host.is_empty() {
                u.host = host;
            }
            if let Some(mut inhibit) = watch.inhibit {
                inhibit.stop(end);
                u.inhibited += inhibit.total.min(length);
                for l in inhibit.lines {
                    if u.inhibit_lines.len() < MAX_EVIDENCE {
                        u.inhibit_lines.push(l);
                    }
                }
            }
        }
    }

    /// A block takes no more records (a session that never ended: counted to the
    /// input's last record).
    pub(super) fn finished(&mut self, state: SessionState, names: &[Vec<u8>], filter: &Filter) {
        if let Some(watch) = state.0 {
            self.session_over(*watch, None, None, names, filter);
        }
    }

    /// The section: user-wide rules, `verify`'s failures, and the files' names.
    pub(super) fn into_unusual(
        mut self,
        file_names: &[String],
        names: &[Vec<u8>],
        filter: &Filter,
        verified: Option<&verify::Report>,
    ) -> Unusual {
        let mut users: Vec<(u32, UserWatch)> = self.users.drain().collect();
        users.sort_by_key(|(uid, _)| *uid);
        for (uid, u) in users {
            if u.session_time > Duration::ZERO && u.inhibited.saturating_mul(2) > u.session_time {
                let raw = Raw {
                    rule: "mostly_inhibited",
                    host: if u.host.is_empty() { "?".to_owned() } else { u.host.clone() },
                    session: None,
                    user: user_name(names, Some(uid)),
                    time: String::new(),
                    detail: format!(
                        "idle inhibitors cover {} of {} of session time in {} session(s) (more than half)",
                        hours_text(u.inhibited),
                        hours_text(u.session_time),
                        u.sessions
                    ),
                    evidence: u.inhibit_lines,
                };
                let user_bytes = names.get(uid as usize).map(Vec::as_slice);
                // User-wide: the filter's user applies, its times do not.
                let filter = Filter { since: None, until: None, session: None, ..filter.clone() };
                self.add(&filter, true, None, user_bytes, raw);
            }
        }
        if let Some(report) = verified {
            for f in report.failures() {
                if f.kind == FindingKind::Unsealed {
                    continue;
                }
                let mut evidence = vec![(f.at.file, f.at.line)];
                if let Some(end) = f.end_line.filter(|&e| e != f.at.line) {
                    evidence.push((f.at.file, end));
                }
                let raw = Raw {
                    rule: "chain",
                    host: report.hosts.get(f.host).map_or_else(|| "?".to_owned(), |h| escaped(h.host.as_bytes())),
                    session: None,
                    user: None,
                    time: String::new(),
                    detail: format!("{}: {}", f.kind.label(), f.detail),
                    evidence,
                };
                self.add(filter, false, None, None, raw);
            }
        }
        let mut items = self.items;
        items.sort_by_key(|r| r.evidence.first().copied().unwrap_or((usize::MAX, u64::MAX)));
        let place = |(file, line): Line| format!("{}:{line}", file_names.get(file).map_or("?", String::as_str));
        Unusual {
            items: items
                .into_iter()
                .map(|r| Item {
                    rule: r.rule,
                    host: r.host,
                    session: r.session,
                    user: r.user,
                    time: r.time,
                    detail: r.detail,
                    evidence: r.evidence.into_iter().map(place).collect(),
                })
                .collect(),
            counts: self.counts,
            not_listed: self.not_listed,
            thresholds: self.thresholds,
        }
    }
}

impl Unusual {
    /// The section as a terminal shows it: one line per item.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "\nunusual ({}; rules: AUDIT.md, \"What the report finds unusual\"):", self.thresholds.describe());
        if self.items.is_empty() {
            out.push_str("  nothing\n");
            return;
        }
        for i in &self.items {
            let _ = write!(out, "  {}: host {}", i.rule, i.host);
            if let Some(s) = i.session {
                let _ = write!(out, " session {s}");
            }
            if let Some(u) = &i.user {
                let _ = write!(out, " user {u}");
            }
            if !i.time.is_empty() {
                let _ = write!(out, " at {}", i.time);
            }
            let _ = writeln!(out, ": {} [{}]", i.detail, i.evidence.join(" "));
        }
        if self.not_listed > 0 {
            let _ = writeln!(out, "  ... and {} more not listed (first {MAX_ITEMS} shown)", self.not_listed);
        }
        let counts: Vec<String> = self.counts.iter().map(|(rule, n)| format!("{rule} {n}")).collect();
        let _ = writeln!(out, "  per rule: {}", counts.join(", "));
    }
}
