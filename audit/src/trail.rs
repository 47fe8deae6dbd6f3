//! Reading a trail once, in file order, for `audit show` and `audit report`: every
//! `vigild`/`pam_vigil` record is parsed and given the block it belongs to (its host
//! and `session=`, or the host's daemon block), so that both count the same records.
//!
//! What stays in memory while reading is what is open: a session's block is live from
//! its first record until a while after vigild's end of it (`session_end`,
//! `session_close`). Records that follow an end closely (logind's answer, the module's
//! close) still join it: the blocks of the last [`CLOSED_KEPT`] ends stay joinable. A
//! record of a session whose block was let go starts a new block. Daemon blocks (no
//! `session=`) last until the files end. An exact copy of one of a host's last vigild
//! records (forwarding that delivers at least once) is skipped and counted
//! ([`crate::duplicates`]).

// Nested `if let`s: let chains need Rust 1.88, the workspace declares 1.85.
#![allow(clippy::collapsible_if)]

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use vigil_protocol::audit::parse_kv_fields;
use vigil_protocol::events::Event as EventName;

use crate::display::display_path;
use crate::duplicates::TrailCopies;
use crate::syslog_line::{Timestamp, for_each_line_at, local_year, parse_line};
use crate::verify::{DAEMON_TAG, MODULE_TAG};

mod fields;
pub(crate) mod reread;

pub(crate) use fields::Fields;
use reread::{Data, Sources};

/// Session blocks whose end was read that still take records: the last this many.
pub(crate) const CLOSED_KEPT: usize = 65_536;

const END_EVENTS: [EventName; 2] = [EventName::SessionEnd, EventName::SessionClose];

/// One record.
#[derive(Default)]
pub(crate) struct Event {
    pub(crate) file: usize,
    pub(crate) line: u64,
    pub(crate) module: bool,
    pub(crate) time: Option<SystemTime>,
    pub(crate) time_text: String,
    /// The host's calendar day and hour as the line gives them (year guessed from the
    /// resolved time when the line has none), for `audit report`.
    pub(crate) stamp: Option<(i32, u8, u8, u8)>,
    pub(crate) name: Vec<u8>,
    /// `name` as one of vigil's events, when it is one (asked many times a record).
    pub(crate) kind: Option<EventName>,
    pub(crate) fields: Fields,
}

impl Event {
    /// Whether this is a record of `event`.
    pub(crate) fn is(&self, event: EventName) -> bool {
        self.kind == Some(event)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields.get(key)
    }

    /// No mac to check: the module's own records (any local user can write one with
    /// `logger -t pam_vigil`), and vigild records written without the chain.
    pub(crate) fn unauthenticated(&self) -> bool {
        self.module || self.get("mac").is_none()
    }

    /// vigild's end of a session (only vigild ends sessions: a module line saying so is
    /// forged).
    pub(crate) fn is_end(&self) -> bool {
        !self.module && END_EVENTS.iter().any(|&end| self.is(end))
    }

    pub(crate) fn session(&self) -> Option<u64> {
        self.get("session").and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok())
    }
}

/// A block, numbered in the order of its first record.
pub(crate) type BlockId = usize;

/// Where a record is, across all the files read (lines and bytes counted on from one
/// file to the next), to read it again: see [`reread`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub(crate) line: u64,
    pub(crate) offset: u64,
}

/// Which block a record belongs to, and where it is.
pub(crate) struct Place<'a> {
    pub(crate) id: BlockId,
    /// The block's first record.
    pub(crate) fresh: bool,
    /// The host, numbered in the order the files name them.
    pub(crate) host: u32,
    pub(crate) host_name: &'a str,
    pub(crate) session: Option<u64>,
    pub(crate) at: At,
}

/// What the readers do with each record.
pub(crate) trait Visit {
    /// What the reader keeps for a block while it takes records, in the reader's own
    /// entry for it: a record costs one lookup, not one more per map of a reader.
    type Block: Default;

    /// A record of the block `place` names, whose state `block` is.
    fn record(&mut self, place: Place<'_>, event: &Event, block: &mut Self::Block);
    /// An exact copy of one of the host's last records (at-least-once forwarding),
    /// skipped: never given to `record`.
    fn duplicate(&mut self, _host: u32, _host_name: &str) {}
    /// Block `id` takes no more records: its session ended a while ago, or the files
    /// ended.
    fn finished(&mut self, id: BlockId, block: Self::Block);
}

/// A file to read: a regular file is read again by position; anything else (a pipe)
/// has the records' lines kept in memory when they are to be read again.
pub(crate) enum Input<R> {
    File(PathBuf, File),
    Stream(PathBuf, R),
}

/// Opens `paths`, in order.
pub(crate) fn open_files(paths: &[PathBuf]) -> io::Result<Vec<Input<BufReader<File>>>> {
    let mut inputs = Vec::with_capacity(paths.len());
    for path in paths {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", display_path(path)));
        let file = File::open(path).map_err(named)?;
        let regular = file.metadata().map_err(named)?.is_file();
        inputs.push(if regular {
            Input::File(path.clone(), file)
        } else {
            Input::Stream(path.clone(), BufReader::with_capacity(256 * 1024, file))
        });
    }
    Ok(inputs)
}

/// Readers given as such (tests, the fuzzer): streams.
pub(crate) fn streams<R: BufRead>(inputs: Vec<(PathBuf, R)>) -> Vec<Input<R>> {
    inputs.into_iter().map(|(path, reader)| Input::Stream(path, reader)).collect()
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) lines: u64,
    pub(crate) not_syslog: u64,
    pub(crate) not_records: u64,
    pub(crate) records: u64,
    pub(crate) unauthenticated: u64,
    /// Exact copies skipped (not in `records`).
    pub(crate) duplicates: u64,
}

/// What reading the files left.
pub(crate) struct Scan {
    pub(crate) counts: Counts,
    /// The files' names as shown.
    pub(crate) names: Vec<String>,
    /// Where to read the records again.
    pub(crate) sources: Sources,
}

type Minute = (Option<i32>, u8, u8, u8, u8, Option<i32>);

/// Resolving a local time asks the C library for the zone's offset: done once per
/// minute of timestamps (zone changes fall on whole minutes), not once per line.
#[derive(Default)]
pub(crate) struct MinuteCache {
    /// (year, month, day, hour, minute, offset) of `start`.
    minute: Option<Minute>,
    start: Option<SystemTime>,
    /// The local year of the whole minute from `start` (`Some(None)`: the minute is not
    /// all in one year), once asked.
    year: Option<Option<i32>>,
}

impl MinuteCache {
    fn resolve(&mut self, t: Timestamp, now: SystemTime) -> Option<SystemTime> {
        let minute = (t.year, t.month, t.day, t.hour, t.minute, t.utc_offset_s);
        if self.minute != Some(minute) {
            self.start = Timestamp { second: 0, nanos: 0, ..t }.to_system_time(now);
            self.minute = Some(minute);
            self.year = None;
        }
        self.start?.checked_add(Duration::new(u64::from(t.second), t.nanos))
    }

    /// The calendar year of `t`, resolved by [`MinuteCache::resolve`] to `at`: its own,
    /// else the local year at `at`. That is asked of the C library once per minute:
    /// when the minute's first and last instants are in the same local year, so is
    /// every instant between (a leap second, `:60`, is in the next minute: asked alone).
    fn year(&mut self, t: Timestamp, at: SystemTime) -> i32 {
        if let Some(year) = t.year {
            return year;
        }
        if t.second < 60 {
            let start = self.start;
            let minute = *self.year.get_or_insert_with(|| {
                let start = start?;
                let last = start.checked_add(Duration::new(59, 999_999_999))?;
                let year = local_year(start);
                (local_year(last) == year).then_some(year)
            });
            if let Some(year) = minute {
                return year;
            }
        }
        local_year(at)
    }
}

/// What a line is to the readers.
// The record whole, not boxed: `show` reads each shown record so, once, and keeps it.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Line<'a> {
    /// Not a syslog line.
    NotSyslog,
    /// Another program's.
    Other,
    /// vigild's or pam_vigil's, but not a record.
    NotRecord,
    /// Its host, its message (the record as written), and the record.
    Record(&'a str, &'a str, Event),
}

/// Reads one line (`cut`: longer than the readers keep) of file `file`.
pub(crate) fn read_line<'a>(file: usize, line: u64, text: &'a str, cut: bool, clock: &mut MinuteCache, now: SystemTime) -> Line<'a> {
    let mut event = Event::default();
    match read_line_into(file, line, text, cut, clock, now, &mut event) {
        Read::NotSyslog => Line::NotSyslog,
        Read::Other => Line::Other,
        Read::NotRecord => Line::NotRecord,
        Read::Record(host, message) => Line::Record(host, message, event),
    }
}

/// [`Line`] without its event, which [`read_line_into`] wrote into the caller's.
pub(crate) enum Read<'a> {
    NotSyslog,
    Other,
    NotRecord,
    Record(&'a str, &'a str),
}

/// [`read_line`] into `event`, reusing its memory (the first read parses every line
/// into the same one). `event` holds the record only when the answer is `Record`.
pub(crate) fn read_line_into<'a>(
    file: usize,
    line: u64,
    text: &'a str,
    cut: bool,
    clock: &mut MinuteCache,
    now: SystemTime,
    event: &mut Event,
) -> Read<'a> {
    let Some(parsed) = parse_line(text) else { return Read::NotSyslog };
    let module = parsed.tag == MODULE_TAG;
    if !module && parsed.tag != DAEMON_TAG {
        return Read::Other;
    }
    if cut || !parse_record_into(parsed.message, &mut event.name, &mut event.fields) {
        return Read::NotRecord;
    }
    let time = parsed.timestamp.and_then(|t| clock.resolve(t, now));
    event.stamp = parsed.timestamp.zip(time).map(|(t, at)| (clock.year(t, at), t.month, t.day, t.hour));
    event.time_text.clear();
    if parsed.timestamp_text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b':' | b'.' | b'+' | b'-')) {
        event.time_text.push_str(parsed.timestamp_text);
    } else {
        event.time_text.push('?');
    }
    event.kind = event_kind(&event.name);
    (event.file, event.line, event.module, event.time) = (file, line, module, time);
    Read::Record(parsed.host, parsed.message)
}

/// The event `name` names, if it is one of vigil's (the length and first byte compared
/// before the rest).
fn event_kind(name: &[u8]) -> Option<EventName> {
    let first = name.first()?;
    EventName::ALL.iter().copied().find(|e| {
        let wire = e.as_str().as_bytes();
        wire.len() == name.len() && wire.first() == Some(first) && wire == name
    })
}

/// The live blocks: by host and session, with the ends that keep them joinable a while,
/// and what the reader keeps for each (`B`). Keyed by what the file says (host names,
/// `session=`): SipHash keyed at random.
struct Live<B> {
    hosts: HashMap<String, u32>,
    host_names: Vec<String>,
    blocks: HashMap<(u32, Option<u64>), Slot<B>>,
    /// Ends read, oldest first: (block key, the end's number).
    closed: VecDeque<((u32, Option<u64>), u64)>,
    kept: usize,
    ends: u64,
    next_id: BlockId,
}

struct Slot<B> {
    id: BlockId,
    /// The number of its latest end, once vigild ended it.
    ended: Option<u64>,
    /// The reader's state for the block.
    state: B,
}

impl<B: Default> Live<B> {
    fn new(kept: usize) -> Live<B> {
        Live { hosts: HashMap::new(), host_names: Vec::new(), blocks: HashMap::new(), closed: VecDeque::new(), kept, ends: 0, next_id: 0 }
    }

    fn host(&mut self, host: &str) -> u32 {
        if let Some(&id) = self.hosts.get(host) {
            return id;
        }
        let id = self.host_names.len() as u32;
        self.host_names.push(host.to_owned());
        self.hosts.insert(host.to_owned(), id);
        id
    }

    fn record(&mut self, host_id: u32, event: &Event, at: At, visit: &mut impl Visit<Block = B>) {
        let session = event.session();
        let key = (host_id, session);
        let ends = event.is_end() && session.is_some();
        let (slot, fresh) = match self.blocks.entry(key) {
            Entry::Occupied(slot) => (slot.into_mut(), false),
            Entry::Vacant(vacant) => {
                let id = self.next_id;
                self.next_id += 1;
                (vacant.insert(Slot { id, ended: None, state: B::default() }), true)
            }
        };
        let id = slot.id;
        if ends {
            self.ends += 1;
            slot.ended = Some(self.ends);
        }
        let host_name = self.host_names.get(host_id as usize).map_or("", String::as_str);
        visit.record(Place { id, fresh, host: host_id, host_name, session, at }, event, &mut slot.state);
        if ends {
            self.closed.push_back((key, self.ends));
            while self.closed.len() > self.kept {
                let Some((old, end)) = self.closed.pop_front() else { break };
                // A later end of the same block keeps it a while longer.
                if self.blocks.get(&old).is_some_and(|slot| slot.ended == Some(end)) {
                    if let Some(slot) = self.blocks.remove(&old) {
                        visit.finished(slot.id, slot.state);
                    }
                }
            }
        }
    }

    /// The files ended: every block still live is finished, in block order.
    fn finish(self, visit: &mut impl Visit<Block = B>) {
        let mut slots: Vec<(BlockId, B)> = self.blocks.into_values().map(|slot| (slot.id, slot.state)).collect();
        slots.sort_unstable_by_key(|&(id, _)| id);
        for (id, state) in slots {
            visit.finished(id, state);
        }
    }
}

/// Reads `inputs` in order and hands every record to `visit`. With `reread`, the
/// lines of streams' records are kept so that [`Scan::sources`] can give them again.
pub(crate) fn scan<R: BufRead>(inputs: Vec<Input<R>>, now: SystemTime, reread: bool, visit: &mut impl Visit) -> io::Result<Scan> {
    scan_keeping(inputs, now, reread, CLOSED_KEPT, visit)
}

pub(crate) fn scan_keeping<R: BufRead>(
    inputs: Vec<Input<R>>,
    now: SystemTime,
    reread: bool,
    kept: usize,
    visit: &mut impl Visit,
) -> io::Result<Scan> {
    let mut counts = Counts::default();
    let mut clock = MinuteCache::default();
    let mut live = Live::new(kept);
    let mut copies = TrailCopies::default();
    let mut names = Vec::with_capacity(inputs.len());
    let mut sources = Sources::default();
    // Every record is parsed into this one, its memory kept from one to the next.
    let mut event = Event::default();
    for (file, input) in inputs.into_iter().enumerate() {
        let (line_base, offset_base) = sources.bases();
        let mut each = |kept_lines: Option<&mut Vec<u8>>, line: u64, offset: u64, text: &str, cut: bool| {
            counts.lines += 1;
            match read_line_into(file, line, text, cut, &mut clock, now, &mut event) {
                Read::NotSyslog => counts.not_syslog += 1,
                Read::Other => {}
                Read::NotRecord => counts.not_records += 1,
                Read::Record(host, message) => {
                    let host_id = live.host(host);
                    if copies.is_copy(host_id, message, &event) {
                        counts.duplicates += 1;
                        visit.duplicate(host_id, host);
                        return;
                    }
                    counts.records += 1;
                    if event.unauthenticated() {
                        counts.unauthenticated += 1;
                    }
                    let offset = match kept_lines {
                        Some(kept) => {
                            let at = kept.len() as u64;
                            kept.extend_from_slice(text.as_bytes());
                            kept.push(b'\n');
                            at
                        }
                        None => offset,
                    };
                    live.record(host_id, &event, At { line: line_base + line, offset: offset_base + offset }, visit);
                }
            }
        };
        match input {
            Input::File(path, handle) => {
                names.push(display_path(&path));
                let read = for_each_line_at(BufReader::with_capacity(256 * 1024, &handle), |line, offset, text, cut| {
                    each(None, line, offset, text, cut)
                })?;
                sources.push(Data::File(handle), read.lines, read.bytes);
            }
            Input::Stream(path, reader) => {
                names.push(display_path(&path));
                let mut kept = Vec::new();
                let read = for_each_line_at(reader, |line, offset, text, cut| each(reread.then_some(&mut kept), line, offset, text, cut))?;
                let bytes = kept.len() as u64;
                sources.push(if reread { Data::Memory(kept) } else { Data::Gone }, read.lines, bytes);
            }
        }
    }
    live.finish(visit);
    Ok(Scan { counts, names, sources })
}

/// A record's event name (its first `event` field) and its other fields, from kv or
/// JSON; `None` when it is not a record (hostile lines included). The fields borrow
/// nothing: `message` is copied into them once.
pub(crate) fn parse_record(message: &str) -> Option<(Vec<u8>, Fields)> {
    let (mut name, mut fields) = (Vec::new(), Fields::default());
    parse_record_into(message, &mut name, &mut fields).then_some((name, fields))
}

/// [`parse_record`] into `name` and `fields`, reusing their memory; `false` when it is
/// not a record (what they then hold is no record's).
pub(crate) fn parse_record_into(message: &str, name: &mut Vec<u8>, fields: &mut Fields) -> bool {
    name.clear();
    fields.reset(message);
    let mut named = false;
    let mut take = |key: &str, value: &[u8]| {
        if !named && key == "event" {
            name.extend_from_slice(value);
            named = true;
        } else {
            fields.push(key, value);
        }
    };
    if message.starts_with('{') {
        let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(message) else { return false };
        for (key, value) in &object {
            if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return false;
            }
            match value {
                serde_json::Value::String(s) => take(key, s.as_bytes()),
                other => take(key, other.to_string().as_bytes()),
            }
        }
    } else if parse_kv_fields(message, &mut take).is_err() {
        return false;
    }
    named && !name.is_empty()
}

#[cfg(test)]
mod tests;
