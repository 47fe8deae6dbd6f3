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
//!
//! Memory: the files are read once (`crate::trail`), and each block the filter may
//! show keeps where its records are, a few bytes per record, not the records. Blocks
//! are then printed in the order of their first record, each read again from its file
//! and written out before the next: only the block being printed is held whole. (A
//! pipe cannot be read again: its records' lines are kept in memory.)

// Nested `if let`s: let chains need Rust 1.88, the workspace declares 1.85.
#![allow(clippy::collapsible_if)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use vigil_protocol::events::Event as EventName;

use crate::display::escaped;
use crate::ids::IdMap;
use crate::trail::reread::{Positions, Reread, Span, Stored};
use crate::trail::{At, BlockId, Input, Line, MinuteCache, Place, Visit, open_files, read_line, scan, streams};
pub(crate) use crate::trail::{Event, parse_record};

mod follow;
mod json;

pub use follow::{POLL_INTERVAL, SESSIONS_KEPT, follow_files};

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

impl Event {
    /// How the text timeline labels it, after the event name.
    fn label(&self) -> &'static str {
        match (self.module, self.unauthenticated()) {
            (true, _) => " (pam_vigil, unauthenticated)",
            (false, true) => " (no mac, unauthenticated)",
            (false, false) => "",
        }
    }
}

/// One block, read whole for printing.
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
        self.events.iter().rev().find(|e| e.is_end())
    }

    fn all_unauthenticated(&self) -> bool {
        self.events.iter().all(Event::unauthenticated)
    }

    /// The time offsets count from: the open, else the first record with a time.
    fn origin(&self) -> Option<SystemTime> {
        self.open().and_then(|e| e.time).or_else(|| self.events.iter().find_map(|e| e.time))
    }
}

/// Reads `paths` in order and writes the timeline to `out` (text, or one JSON object
/// per line and block).
pub fn show_files(paths: &[PathBuf], filter: &Filter, json: bool, out: &mut impl Write) -> io::Result<()> {
    show_inputs(open_files(paths)?, filter, json, SystemTime::now(), out)
}

/// Like [`show_files`], from readers, into a string; `now` is used to guess the year of
/// traditional timestamps.
pub fn show_readers<R: BufRead>(inputs: Vec<(PathBuf, R)>, filter: &Filter, json: bool, now: SystemTime) -> io::Result<String> {
    let mut out = Vec::new();
    show_inputs(streams(inputs), filter, json, now, &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Reads the inputs once, keeping where each shown block's records are (see
/// [`Holder`]), then prints the blocks in the order of their first record, reading
/// each one's lines again.
fn show_inputs<R: BufRead>(inputs: Vec<Input<R>>, filter: &Filter, json: bool, now: SystemTime, out: &mut impl Write) -> io::Result<()> {
    let mut holder = Holder::new(filter);
    let scan = scan(inputs, now, true, &mut holder)?;
    let Holder { blocks, hosts, stored, .. } = holder;
    let mut reread = Reread::new(&scan.sources);
    let mut clock = MinuteCache::default();
    let mut shown_sessions = 0u64;
    let mut shown_daemon = 0u64;
    let mut text = String::new();
    for held in blocks {
        if held.refused || !held.maybe || held.span.is_empty() {
            continue;
        }
        let host = hosts.get(held.host as usize).cloned().unwrap_or_default();
        let mut block = Block { host, session: held.session, events: Vec::new() };
        for at in stored.iter(held.span) {
            let Some((file, line, line_text, cut)) = reread.line(at)? else { continue };
            if let Line::Record(_, _, event) = read_line(file, line, &line_text, cut, &mut clock, now) {
                block.events.push(event);
            }
        }
        let Some(selected) = select(&block, filter) else { continue };
        if block.session.is_some() {
            shown_sessions += 1;
        } else {
            shown_daemon += 1;
        }
        if json {
            let mut object = Vec::new();
            json::render_json(&mut object, &block, &selected, &scan.names)?;
            out.write_all(&object)?;
        } else {
            text.clear();
            render_text(&mut text, &block, &selected);
            out.write_all(text.as_bytes())?;
        }
    }
    if !json {
        let counts = scan.counts;
        let unauthenticated = match counts.unauthenticated {
            0 => String::new(),
            n => format!("; {n} unauthenticated (no mac: pam_vigil, or vigild without the chain)"),
        };
        let duplicates = match counts.duplicates {
            0 => String::new(),
            n => format!("; {n} duplicates (exact copies, skipped)"),
        };
        writeln!(
            out,
            "{shown_sessions} session{}, {shown_daemon} daemon block{} shown; {} records in {} lines ({} not syslog, {} vigild/pam_vigil lines that are not records){unauthenticated}{duplicates}",
            plural(shown_sessions),
            plural(shown_daemon),
            counts.records,
            counts.lines,
            counts.not_syslog,
            counts.not_records
        )?;
    }
    out.flush()
}

/// A block as the first read leaves it: where its records are, not the records.
struct Held {
    host: u32,
    session: Option<u64>,
    /// Where its records are, once it is finished.
    span: Span,
    /// Some record passes the event and time filters (the user is checked on printing).
    maybe: bool,
    /// Left out by `--session`, or by `--user` once vigild's records name its user.
    refused: bool,
    /// A vigild record of the session named its user (the header's `user`).
    user_known: bool,
}

/// The first read of `show`: what each block needs to be printed, and no more.
/// Session blocks keep every record's position (the header, open and end come from
/// any of them); daemon blocks only those of records the filter shows.
struct Holder<'f> {
    filter: &'f Filter,
    blocks: Vec<Held>,
    hosts: Vec<String>,
    /// The positions of each block that still takes records, and the last of them.
    live: IdMap<BlockId, (At, Positions)>,
    stored: Stored,
}

impl<'f> Holder<'f> {
    fn new(filter: &'f Filter) -> Holder<'f> {
        Holder { filter, blocks: Vec::new(), hosts: Vec::new(), live: IdMap::default(), stored: Stored::default() }
    }
}

impl Visit for Holder<'_> {
    type Block = ();

    fn record(&mut self, place: Place<'_>, event: &Event, _block: &mut ()) {
        if place.host as usize >= self.hosts.len() {
            self.hosts.push(place.host_name.to_owned());
        }
        if place.fresh {
            let refused = self.filter.session.is_some_and(|id| place.session != Some(id));
            self.blocks.push(Held {
                host: place.host,
                session: place.session,
                span: Span::default(),
                maybe: false,
                refused,
                user_known: false,
            });
        }
        let filter = self.filter;
        let Some(held) = self.blocks.get_mut(place.id) else { return };
        if held.refused {
            return;
        }
        let wanted = event_ok(filter, event) && time_ok(filter, event);
        if held.session.is_some() {
            if !held.user_known && !event.module {
                if let Some(user) = event.get("user") {
                    held.user_known = true;
                    if filter.user.as_ref().is_some_and(|u| u.as_bytes() != user) {
                        held.refused = true;
                        self.live.remove(&place.id);
                        return;
                    }
                }
            }
        } else if !(wanted && filter.user.as_ref().is_none_or(|u| event.get("user") == Some(u.as_bytes()))) {
            return;
        }
        held.maybe |= wanted;
        match self.live.get_mut(&place.id) {
            Some((last, positions)) => {
                positions.push(place.at, Some(*last));
                *last = place.at;
            }
            None => {
                let mut positions = Positions::default();
                positions.push(place.at, None);
                self.live.insert(place.id, (place.at, positions));
            }
        }
    }

    fn finished(&mut self, id: BlockId, _block: ()) {
        if let Some((_, positions)) = self.live.remove(&id) {
            if let Some(held) = self.blocks.get_mut(id) {
                held.span = self.stored.keep(positions);
            }
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn event_ok(filter: &Filter, e: &Event) -> bool {
    filter.event.as_ref().is_none_or(|name| e.name == name.as_bytes())
}

fn time_ok(filter: &Filter, e: &Event) -> bool {
    match (filter.since, filter.until, e.time) {
        (None, None, _) => true,
        (_, _, None) => false,
        (since, until, Some(t)) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u),
    }
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
    let selected: Vec<&Event> = block.events.iter().filter(|e| user_ok(e) && event_ok(filter, e) && time_ok(filter, e)).collect();
    (!selected.is_empty()).then_some(selected)
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
        for (key, value) in event.fields.iter() {
            if CHAIN_KEYS.contains(&key) || (block.session.is_some() && key == "session") {
                continue;
            }
            if block.session.is_some() {
                if header.iter().any(|(k, v)| *k == key && *v == value) {
                    continue;
                }
                if REPEATED_KEYS.contains(&key) && repeated.get(key) == Some(&value) {
                    continue;
                }
                if REPEATED_KEYS.contains(&key) {
                    repeated.insert(key, value);
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
