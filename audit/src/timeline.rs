//! `vigilctl audit show`: a readable timeline per session from syslog files.
//!
//! Records of `vigild` and `pam_vigil` (kv or JSON, told apart by the message's first
//! byte) are grouped by host and `session=`: per session a header (id, user, uid,
//! service, tty, rhost, ses, when it opened), then each event with its time and the time
//! since the open, then how it ended and how long it lasted. Records without a session
//! (daemon_start, config_reload, call_refused, ...) go to a per-host "daemon" block.
//!
//! Nothing from the file reaches the terminal raw: values are printed in their escaped
//! record form (plain ASCII), JSON output is ASCII with `\uXXXX` escapes. This does not
//! check the chain (that is `verify`): a record here may be forged. Records that carry
//! no mac at all (every `pam_vigil` record, and `vigild` lines without `mac=`) cannot be
//! authenticated even by `verify`: they are labelled `unauthenticated` (text) and
//! `"authenticated":false` (JSON), and never give a session its header, open or end.

// Nested `if let`s: let chains need Rust 1.88, the workspace declares 1.85.
#![allow(clippy::collapsible_if)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use vigil_protocol::audit::parse_kv_line;
use vigil_protocol::events::Event as EventName;

use crate::display::{display_path, escaped};
use crate::syslog_line::{Timestamp, for_each_line, local_year, parse_line};
use crate::verify::{DAEMON_TAG, MODULE_TAG};

mod json;

/// What to show. Every criterion given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Sessions of this user (the `user=` of the session's records); daemon records
    /// carrying this `user=`.
    pub user: Option<String>,
    /// Only this session (and no daemon block).
    pub session: Option<u64>,
    /// Only events of this name (blocks without one are left out).
    pub event: Option<String>,
    /// Only events at or after this time (by the syslog timestamp).
    pub since: Option<SystemTime>,
    /// Only events at or before this time.
    pub until: Option<SystemTime>,
}

/// Fields shown in a session's header (and left out of its event lines while equal).
const HEADER_KEYS: [&str; 6] = ["user", "uid", "service", "tty", "rhost", "ses"];
/// Fields repeated on every session record: left out of event lines while unchanged.
const REPEATED_KEYS: [&str; 5] = ["ruser", "leader_pid", "policy", "parent", "session"];
/// Chain fields: not shown in text (JSON keeps seq).
const CHAIN_KEYS: [&str; 3] = ["seq", "prev", "mac"];
const OPEN_EVENT: EventName = EventName::SessionOpen;
const END_EVENTS: [EventName; 2] = [EventName::SessionEnd, EventName::SessionClose];

pub(crate) struct Event {
    file: usize,
    line: u64,
    pub(crate) module: bool,
    time: Option<SystemTime>,
    time_text: String,
    /// The host's calendar day and hour as the line gives them (year guessed from the
    /// resolved time when the line has none), for `audit report`.
    pub(crate) stamp: Option<(i32, u8, u8, u8)>,
    pub(crate) name: Vec<u8>,
    fields: Vec<(String, Vec<u8>)>,
}

impl Event {
    /// File index and line number.
    pub(crate) fn position(&self) -> (usize, u64) {
        (self.file, self.line)
    }

    /// Whether this is a record of `event`.
    pub(crate) fn is(&self, event: EventName) -> bool {
        self.name == event.as_str().as_bytes()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// No mac to check: the module's own records (any local user can write one with
    /// `logger -t pam_vigil`), and vigild records written without the chain.
    pub(crate) fn unauthenticated(&self) -> bool {
        self.module || self.get("mac").is_none()
    }

    /// How the text timeline labels it, after the event name.
    fn label(&self) -> &'static str {
        match (self.module, self.unauthenticated()) {
            (true, _) => " (pam_vigil, unauthenticated)",
            (false, true) => " (no mac, unauthenticated)",
            (false, false) => "",
        }
    }
}

pub(crate) struct Block {
    pub(crate) host: String,
    pub(crate) session: Option<u64>,
    pub(crate) events: Vec<Event>,
}

impl Block {
    /// A header value from vigild's records first: a forged module line placed before
    /// the open must not name the session's user.
    pub(crate) fn header(&self, key: &str) -> Option<&[u8]> {
        self.events.iter().filter(|e| !e.module).find_map(|e| e.get(key)).or_else(|| self.events.iter().find_map(|e| e.get(key)))
    }

    /// Only vigild opens and ends sessions: a `pam_vigil` line saying so is forged.
    fn open(&self) -> Option<&Event> {
        self.events.iter().find(|e| !e.module && e.is(OPEN_EVENT))
    }

    fn end(&self) -> Option<&Event> {
        self.events.iter().rev().find(|e| !e.module && END_EVENTS.iter().any(|&end| e.is(end)))
    }

    fn all_unauthenticated(&self) -> bool {
        self.events.iter().all(Event::unauthenticated)
    }

    /// The time offsets count from: the open, else the first record with a time.
    fn origin(&self) -> Option<SystemTime> {
        self.open().and_then(|e| e.time).or_else(|| self.events.iter().find_map(|e| e.time))
    }
}

type Minute = (Option<i32>, u8, u8, u8, u8, Option<i32>);

/// An event name and the other fields of a record, values decoded.
type Fields = (Vec<u8>, Vec<(String, Vec<u8>)>);

/// Resolving a local time asks the C library for the zone's offset: done once per
/// minute of timestamps (zone changes fall on whole minutes), not once per line.
#[derive(Default)]
struct MinuteCache {
    /// (year, month, day, hour, minute, offset) of `start`.
    minute: Option<Minute>,
    start: Option<SystemTime>,
}

impl MinuteCache {
    fn resolve(&mut self, t: Timestamp, now: SystemTime) -> Option<SystemTime> {
        let minute = (t.year, t.month, t.day, t.hour, t.minute, t.utc_offset_s);
        if self.minute != Some(minute) {
            self.start = Timestamp { second: 0, nanos: 0, ..t }.to_system_time(now);
            self.minute = Some(minute);
        }
        self.start?.checked_add(Duration::new(u64::from(t.second), t.nanos))
    }
}

#[derive(Default)]
struct Counts {
    lines: u64,
    not_syslog: u64,
    not_records: u64,
    records: u64,
    unauthenticated: u64,
}

/// Reads `paths` in order and renders the timeline (text, or one JSON object per line
/// and block).
pub fn show_files(paths: &[PathBuf], filter: &Filter, json: bool) -> io::Result<String> {
    show_readers(open_files(paths)?, filter, json, SystemTime::now())
}

/// The files given, read: records grouped by host and session, in file order. What
/// `show` and `report` both read, so that their numbers agree.
pub(crate) struct Trail {
    pub(crate) blocks: Vec<Block>,
    counts: Counts,
    names: Vec<String>,
}

/// Opens `paths`, in order, for [`read_trail`].
pub(crate) fn open_files(paths: &[PathBuf]) -> io::Result<Vec<(PathBuf, BufReader<File>)>> {
    let mut inputs = Vec::with_capacity(paths.len());
    for path in paths {
        let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", display_path(path))))?;
        inputs.push((path.clone(), BufReader::with_capacity(256 * 1024, file)));
    }
    Ok(inputs)
}

/// Like [`show_files`], from readers; `now` is used to guess the year of traditional
/// timestamps.
pub fn show_readers<R: BufRead>(inputs: Vec<(PathBuf, R)>, filter: &Filter, json: bool, now: SystemTime) -> io::Result<String> {
    let Trail { blocks, counts, names } = read_trail(inputs, now)?;
    render(&blocks, &counts, &names, filter, json)
}

/// Reads every record of `inputs` (files in that order).
pub(crate) fn read_trail<R: BufRead>(inputs: Vec<(PathBuf, R)>, now: SystemTime) -> io::Result<Trail> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut index: HashMap<(String, Option<u64>), usize> = HashMap::new();
    let mut counts = Counts::default();
    let mut clock = MinuteCache::default();
    let mut names = Vec::with_capacity(inputs.len());
    for (file, (path, reader)) in inputs.into_iter().enumerate() {
        names.push(display_path(&path));
        let read = for_each_line(reader, |line, text, cut| {
            let Some(parsed) = parse_line(text) else {
                counts.not_syslog += 1;
                return;
            };
            let module = parsed.tag == MODULE_TAG;
            if !module && parsed.tag != DAEMON_TAG {
                return;
            }
            let record = if cut { None } else { parse_record(parsed.message) };
            let Some((name, fields)) = record else {
                counts.not_records += 1;
                return;
            };
            counts.records += 1;
            let time = parsed.timestamp.and_then(|t| clock.resolve(t, now));
            let stamp = parsed.timestamp.zip(time).map(|(t, at)| (t.year.unwrap_or_else(|| local_year(at)), t.month, t.day, t.hour));
            let time_text = if parsed.timestamp_text.bytes().all(|b| b.is_ascii_alphanumeric() || b" :.+-".contains(&b)) {
                parsed.timestamp_text.to_string()
            } else {
                "?".into()
            };
            let event = Event { file, line, module, time, time_text, stamp, name, fields };
            if event.unauthenticated() {
                counts.unauthenticated += 1;
            }
            let session = event.get("session").and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok());
            let key = (parsed.host.to_string(), session);
            let slot = *index.entry(key).or_insert_with(|| {
                blocks.push(Block { host: parsed.host.to_string(), session, events: Vec::new() });
                blocks.len() - 1
            });
            if let Some(block) = blocks.get_mut(slot) {
                block.events.push(event);
            }
        })?;
        counts.lines += read.lines;
    }
    Ok(Trail { blocks, counts, names })
}

fn render(blocks: &[Block], counts: &Counts, names: &[String], filter: &Filter, json: bool) -> io::Result<String> {
    let mut out = String::new();
    let mut shown_sessions = 0u64;
    let mut shown_daemon = 0u64;
    for block in blocks {
        let Some(selected) = select(block, filter) else { continue };
        if block.session.is_some() {
            shown_sessions += 1;
        } else {
            shown_daemon += 1;
        }
        if json {
            let mut object = Vec::new();
            json::render_json(&mut object, block, &selected, names)?;
            out.push_str(&String::from_utf8_lossy(&object));
        } else {
            render_text(&mut out, block, &selected);
        }
    }
    if !json {
        let unauthenticated = match counts.unauthenticated {
            0 => String::new(),
            n => format!("; {n} unauthenticated (no mac: pam_vigil, or vigild without the chain)"),
        };
        let _ = writeln!(
            out,
            "{shown_sessions} session{}, {shown_daemon} daemon block{} shown; {} records in {} lines ({} not syslog, {} vigild/pam_vigil lines that are not records){unauthenticated}",
            plural(shown_sessions),
            plural(shown_daemon),
            counts.records,
            counts.lines,
            counts.not_syslog,
            counts.not_records
        );
    }
    Ok(out)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The events of `block` the filter keeps, or `None` when the block is left out.
pub(crate) fn select<'a>(block: &'a Block, filter: &Filter) -> Option<Vec<&'a Event>> {
    if let Some(id) = filter.session {
        if block.session != Some(id) {
            return None;
        }
    }
    let user_ok = |e: &Event| match &filter.user {
        None => true,
        Some(user) if block.session.is_some() => block.header("user") == Some(user.as_bytes()),
        Some(user) => e.get("user") == Some(user.as_bytes()),
    };
    let event_ok = |e: &Event| filter.event.as_ref().is_none_or(|name| e.name == name.as_bytes());
    let time_ok = |e: &Event| match (filter.since, filter.until, e.time) {
        (None, None, _) => true,
        (_, _, None) => false,
        (since, until, Some(t)) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u),
    };
    let selected: Vec<&Event> = block.events.iter().filter(|e| user_ok(e) && event_ok(e) && time_ok(e)).collect();
    (!selected.is_empty()).then_some(selected)
}

/// A record's event name and its other fields, from kv or JSON; `None` when it is not
/// a record (hostile lines included).
pub(crate) fn parse_record(message: &str) -> Option<Fields> {
    let mut fields: Vec<(String, Vec<u8>)> = if message.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(message).ok()?;
        let object = value.as_object()?;
        let mut fields = Vec::with_capacity(object.len());
        for (key, value) in object {
            if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return None;
            }
            let bytes = match value {
                serde_json::Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            };
            fields.push((key.clone(), bytes));
        }
        fields
    } else {
        parse_kv_line(message).ok()?
    };
    let position = fields.iter().position(|(k, _)| k == "event")?;
    let (_, name) = fields.remove(position);
    if name.is_empty() {
        return None;
    }
    Some((name, fields))
}

/// `+2m13s`, `-5s`, `+1h02m00s`, `+3d04h05m`.
fn signed_duration(from: SystemTime, to: SystemTime) -> String {
    match to.duration_since(from) {
        Ok(d) => format!("+{}", duration(d)),
        Err(e) => format!("-{}", duration(e.duration())),
    }
}

/// `0s`, `59s`, `2m13s`, `1h02m13s`, `3d04h05m`.
pub use vigil_protocol::time::padded as duration;

/// How long the session lasted: from its open to its end by the timestamps, else the
/// end record's own `duration_s` (when the open is not in these files).
fn lasted(block: &Block) -> Option<Duration> {
    let end = block.end()?;
    match (block.open().and_then(|e| e.time), end.time) {
        (Some(open), Some(close)) => Some(close.duration_since(open).unwrap_or_default()),
        _ => {
            let seconds = std::str::from_utf8(end.get("duration_s")?).ok()?.parse::<u64>().ok()?;
            Some(Duration::from_secs(seconds))
        }
    }
}

fn render_text(out: &mut String, block: &Block, selected: &[&Event]) {
    let host = escaped(block.host.as_bytes());
    let origin = block.origin();
    let mut header: Vec<(&str, &[u8])> = Vec::new();
    match block.session {
        Some(id) => {
            let _ = write!(out, "session {id} on {host}:");
            for key in HEADER_KEYS {
                if let Some(value) = block.header(key) {
                    header.push((key, value));
                    let _ = write!(out, " {key}={}", escaped(value));
                }
            }
            if block.all_unauthenticated() {
                out.push_str(" (only unauthenticated records)");
            }
            out.push('\n');
            match block.open() {
                Some(open) => {
                    let _ = writeln!(out, "  opened {}", open.time_text);
                }
                None => {
                    let first = block.events.first().map(|e| e.time_text.as_str()).unwrap_or("?");
                    let _ = writeln!(out, "  opened before these files (first record {first})");
                }
            }
        }
        None => {
            let _ = writeln!(out, "daemon on {host}:");
        }
    }
    let mut repeated: HashMap<&str, &[u8]> = HashMap::new();
    for event in selected {
        let offset = match (origin, event.time, block.session) {
            (Some(o), Some(t), Some(_)) => signed_duration(o, t),
            (_, _, Some(_)) => "+?".into(),
            _ => String::new(),
        };
        if block.session.is_some() {
            let _ = write!(out, "  {:<15}  {:<9} {}", event.time_text, offset, escaped(&event.name));
        } else {
            let _ = write!(out, "  {:<15}  {}", event.time_text, escaped(&event.name));
        }
        out.push_str(event.label());
        for (key, value) in &event.fields {
            let key = key.as_str();
            if CHAIN_KEYS.contains(&key) || (block.session.is_some() && key == "session") {
                continue;
            }
            if block.session.is_some() {
                if header.iter().any(|(k, v)| *k == key && *v == value.as_slice()) {
                    continue;
                }
                if REPEATED_KEYS.contains(&key) && repeated.get(key) == Some(&value.as_slice()) {
                    continue;
                }
                if REPEATED_KEYS.contains(&key) {
                    repeated.insert(key, value.as_slice());
                }
            }
            let _ = write!(out, " {key}={}", escaped(value));
        }
        out.push('\n');
    }
    if block.session.is_some() {
        match block.end() {
            Some(end) => {
                let lasted = match lasted(block) {
                    Some(d) => format!(", lasted {}", duration(d)),
                    None => String::new(),
                };
                let _ = writeln!(out, "  ended {} ({}){lasted}", end.time_text, escaped(&end.name));
            }
            None => {
                let _ = writeln!(out, "  still open at the end of these files");
            }
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests;
