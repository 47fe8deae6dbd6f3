//! `vigilctl audit show --follow`: the records of a trail file as they arrive, like
//! `tail -F`, with `show`'s filters.
//!
//! A timeline block can only be printed once its session ended, so a followed trail is
//! printed one record per line, in file order: the records already in the files first,
//! then each new one as soon as its line is complete ([`tail`]). Values are escaped as
//! `show` escapes them; `--json` gives `show`'s event objects, one per line, with the
//! host, the session and an `alert` flag. vigild's live alerts (event `alert`, written
//! at syslog priority warning) start with `!` in text, so that they stand out.
//!
//! Memory stays bounded however long it runs and whatever the file holds: the follower
//! keeps one line (at most [`MAX_LINE_BYTES`](crate::syslog_line::MAX_LINE_BYTES)),
//! `--user` the users of the last
//! [`SESSIONS_KEPT`] sessions, for recognising a record delivered twice the last
//! records of the first hosts ([`crate::duplicates`]), and nothing else grows.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use vigil_protocol::audit::MAX_VALUE_BYTES;

use super::json::{JsonEvent, json_event, write_ascii_line};
use super::{CHAIN_KEYS, Filter, event_ok, time_ok};
use crate::display::{display_path, escaped};
use crate::duplicates::NamedHostCopies;
use crate::syslog_line::for_each_line;
use crate::trail::{Event, Line, MinuteCache, read_line};

mod tail;

use tail::Tail;

/// How long the followed file is left alone when it had nothing new.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// At most about this much is read before `pause` is asked again, so that an interrupt
/// is heard while a large file is read.
const READ_BUDGET: usize = 4 * 1024 * 1024;

/// Sessions whose user `--user` remembers (the latest ones).
pub const SESSIONS_KEPT: usize = 16_384;

/// The event of vigild's live alerts.
const ALERT_EVENT: &[u8] = vigil_protocol::events::Event::Alert.as_str().as_bytes();

/// Reads `paths` in order, printing each record the filter keeps, then follows the last
/// one: records appended to it are printed as their lines complete, through rotations
/// and truncations. Between looks at the file, `pause(d)` waits up to `d` (zero: a look
/// at once) and says whether to stop; the follow ends only then, or on an error.
pub fn follow_files(
    paths: &[PathBuf],
    filter: &Filter,
    json: bool,
    out: &mut impl Write,
    mut pause: impl FnMut(Duration) -> bool,
) -> io::Result<()> {
    let Some((followed, earlier)) = paths.split_last() else { return Ok(()) };
    // The followed file first: one that cannot be followed fails before any output.
    let mut tail = Tail::open(followed)?;
    let mut printer = Printer::new(filter, json, paths.iter().map(|p| display_path(p)).collect(), out);
    for (index, path) in earlier.iter().enumerate() {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", display_path(path)));
        let file = File::open(path).map_err(named)?;
        let now = SystemTime::now();
        for_each_line(BufReader::with_capacity(256 * 1024, file), |line, text, cut| printer.line(index, line, text, cut, now))
            .map_err(named)?;
        printer.flush()?;
    }
    let index = earlier.len();
    loop {
        let now = SystemTime::now();
        let caught_up = tail.poll(READ_BUDGET, &mut |line, text, cut| printer.line(index, line, text, cut, now))?;
        printer.flush()?;
        if pause(if caught_up { POLL_INTERVAL } else { Duration::ZERO }) {
            return Ok(());
        }
    }
}

/// Whether `event` is one of vigild's alerts. A `pam_vigil` line saying `alert` is
/// forged (the module writes none): not marked.
fn is_alert(event: &Event) -> bool {
    !event.module && event.name == ALERT_EVENT
}

/// One record in `--json`: `show`'s event object, with what a block would say around it.
#[derive(Serialize)]
struct JsonRecord<'a> {
    host: &'a str,
    session: Option<u64>,
    alert: bool,
    #[serde(flatten)]
    event: JsonEvent<'a>,
}

/// Filters and prints records one by one.
struct Printer<'a, W: Write> {
    filter: &'a Filter,
    json: bool,
    /// The files' names as shown.
    names: Vec<String>,
    clock: MinuteCache,
    users: SessionUsers,
    /// Records delivered twice are printed once.
    copies: NamedHostCopies,
    out: &'a mut W,
    /// The first write error: it ends the follow; later lines are not written.
    error: Option<io::Error>,
    text: String,
    object: Vec<u8>,
}

impl<'a, W: Write> Printer<'a, W> {
    fn new(filter: &'a Filter, json: bool, names: Vec<String>, out: &'a mut W) -> Self {
        Printer {
            filter,
            json,
            names,
            clock: MinuteCache::default(),
            users: SessionUsers::default(),
            copies: NamedHostCopies::default(),
            out,
            error: None,
            text: String::new(),
            object: Vec::new(),
        }
    }

    /// Line `number` of file `file`.
    fn line(&mut self, file: usize, number: u64, text: &str, cut: bool, now: SystemTime) {
        if self.error.is_some() {
            return;
        }
        let Line::Record(host, message, event) = read_line(file, number, text, cut, &mut self.clock, now) else { return };
        if self.copies.is_copy(host, message, &event) || !self.wanted(host, &event) {
            return;
        }
        let written = if self.json { self.write_json(host, &event) } else { self.write_text(host, &event) };
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    /// What `show` would list: the same criteria, the session's user as its header
    /// names it.
    fn wanted(&mut self, host: &str, event: &Event) -> bool {
        let session = event.session();
        // First, for every record of a session: `is_users` notes who the session is.
        let user_ok = match (&self.filter.user, session) {
            (None, _) => true,
            (Some(user), Some(id)) => self.users.is_users(host, id, event, user.as_bytes()),
            (Some(user), None) => event.get("user") == Some(user.as_bytes()),
        };
        user_ok && self.filter.session.is_none_or(|id| session == Some(id)) && event_ok(self.filter, event) && time_ok(self.filter, event)
    }

    /// `! TIME  HOST  EVENT (label) key=value ...`: the mark column is `!` for an alert,
    /// a space otherwise; the chain's fields are left out, as in `show`.
    fn write_text(&mut self, host: &str, event: &Event) -> io::Result<()> {
        let text = &mut self.text;
        text.clear();
        let mark = if is_alert(event) { '!' } else { ' ' };
        let _ = write!(text, "{mark} {:<15}  {}  {}{}", event.time_text, escaped(host.as_bytes()), escaped(&event.name), event.label());
        for (key, value) in event.fields.iter().filter(|(key, _)| !CHAIN_KEYS.contains(key)) {
            let _ = write!(text, " {key}={}", escaped(value));
        }
        text.push('\n');
        self.out.write_all(text.as_bytes())
    }

    fn write_json(&mut self, host: &str, event: &Event) -> io::Result<()> {
        self.object.clear();
        let record =
            JsonRecord { host, session: event.session(), alert: is_alert(event), event: json_event(false, None, event, &self.names) };
        write_ascii_line(&mut self.object, &record)?;
        self.out.write_all(&self.object)
    }

    /// Hands what was printed on (a follow's output is read as it comes); the first
    /// write error, if any.
    fn flush(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        }
    }
}

/// The user of each session as vigild's first record of it names it, which is what
/// `show`'s header says: a `pam_vigil` line naming someone else for the session (anyone
/// can write one) does not move it to another user. Kept for the latest
/// [`SESSIONS_KEPT`] sessions; for an older one, a record's own `user=` decides.
#[derive(Default)]
struct SessionUsers {
    users: HashMap<(String, u64), Vec<u8>>,
    /// Oldest first.
    order: VecDeque<(String, u64)>,
}

impl SessionUsers {
    /// Whether session `session` of `host` is `user`'s, after noting `event`'s user if
    /// it is vigild's first record of the session.
    fn is_users(&mut self, host: &str, session: u64, event: &Event, user: &[u8]) -> bool {
        let key = (host.to_owned(), session);
        // vigild cuts values at MAX_VALUE_BYTES: a longer one is no vigild record, and is
        // not kept (so that each entry stays small).
        if !event.module
            && !self.users.contains_key(&key)
            && let Some(named) = event.get("user").filter(|u| u.len() <= MAX_VALUE_BYTES && host.len() <= MAX_VALUE_BYTES)
        {
            if self.order.len() >= SESSIONS_KEPT
                && let Some(oldest) = self.order.pop_front()
            {
                self.users.remove(&oldest);
            }
            self.order.push_back(key.clone());
            self.users.insert(key.clone(), named.to_vec());
        }
        match self.users.get(&key) {
            Some(known) => known == user,
            None => event.get("user") == Some(user),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod test_dir;
#[cfg(test)]
mod tests;
