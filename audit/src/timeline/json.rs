//! `audit show --json`: one object per block and line, through serde. The output is
//! ASCII only: everything outside printable ASCII is a `\uXXXX` escape, so a value from
//! the file cannot send terminal escapes or bidi overrides to whoever reads it.

use std::borrow::Cow;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::ser::{CharEscape, Formatter};

use super::{Block, Event, HEADER_KEYS, lasted};
use crate::verify::{DAEMON_TAG, MODULE_TAG};

/// Bytes from the file as a JSON string (not UTF-8: U+FFFD, as the record encoder does).
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Seconds with millisecond precision: an integer when whole, as `{}` of an f64 writes.
#[derive(Clone, Copy)]
struct Seconds(f64);

impl Seconds {
    fn of_millis(millis: i128) -> Self {
        Seconds(millis as f64 / 1000.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9e15 { s.serialize_i64(self.0 as i64) } else { s.serialize_f64(self.0) }
    }
}

/// Key-value pairs in their order (a record may repeat a key: it is shown as read).
struct Pairs<'a>(Vec<(&'a str, Cow<'a, str>)>);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct JsonBlock<'a> {
    host: &'a str,
    session: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon: Option<bool>,
    /// The session's header keys (user, uid, ...) that its records give.
    #[serde(flatten)]
    header: Pairs<'a>,
    // Outer `None`: a daemon block, where these are left out; inner `None`: null.
    #[serde(skip_serializing_if = "Option::is_none")]
    opened: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_s: Option<Option<Seconds>>,
    events: Vec<JsonEvent<'a>>,
}

#[derive(Serialize)]
pub(super) struct JsonEvent<'a> {
    time: &'a str,
    unix_time: Option<Seconds>,
    /// Only in session blocks; null when either time is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset_s: Option<Option<Seconds>>,
    event: Cow<'a, str>,
    tag: &'static str,
    /// false: no mac, nothing can authenticate it; null: it has a mac, which only
    /// `verify` checks.
    authenticated: Option<bool>,
    file: &'a str,
    line: u64,
    fields: Pairs<'a>,
}

fn unix_seconds(t: SystemTime) -> Option<Seconds> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| Seconds::of_millis(d.as_millis() as i128))
}

fn offset_seconds(from: SystemTime, to: SystemTime) -> Seconds {
    match to.duration_since(from) {
        Ok(d) => Seconds::of_millis(d.as_millis() as i128),
        Err(e) => Seconds::of_millis(-(e.duration().as_millis() as i128)),
    }
}

/// `event` as an object; `in_session`: it is shown in a session's block, with its
/// offset from `origin`.
pub(super) fn json_event<'a>(in_session: bool, origin: Option<SystemTime>, event: &'a Event, names: &'a [String]) -> JsonEvent<'a> {
    let fields = event.fields.iter().filter(|(key, _)| *key != "prev" && *key != "mac").map(|(key, value)| (key, text(value))).collect();
    JsonEvent {
        time: &event.time_text,
        unix_time: event.time.and_then(unix_seconds),
        offset_s: in_session.then(|| origin.zip(event.time).map(|(o, t)| offset_seconds(o, t))),
        event: text(&event.name),
        tag: if event.module { MODULE_TAG } else { DAEMON_TAG },
        authenticated: if event.unauthenticated() { Some(false) } else { None },
        file: names.get(event.file).map(String::as_str).unwrap_or("?"),
        line: event.line,
        fields: Pairs(fields),
    }
}

/// Appends `block`'s object (with the `selected` events) and a line break to `out`.
pub(super) fn render_json(out: &mut Vec<u8>, block: &Block, selected: &[&Event], names: &[String]) -> io::Result<()> {
    let origin = block.origin();
    let session = block.session.is_some();
    let header =
        if session { HEADER_KEYS.iter().filter_map(|&key| block.header(key).map(|v| (key, text(v)))).collect() } else { Vec::new() };
    let object = JsonBlock {
        host: &block.host,
        session: block.session,
        daemon: (!session).then_some(true),
        header: Pairs(header),
        opened: session.then(|| block.open().map(|e| e.time_text.as_str())),
        ended: session.then(|| block.end().map(|e| e.time_text.as_str())),
        duration_s: session.then(|| lasted(block).map(|d| Seconds::of_millis(d.as_millis() as i128))),
        events: selected.iter().map(|event| json_event(session, origin, event, names)).collect(),
    };
    write_ascii_line(out, &object)
}

/// Appends `value` as one line of ASCII-only JSON.
pub(super) fn write_ascii_line(out: &mut Vec<u8>, value: &impl Serialize) -> io::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut *out, AsciiFormatter))?;
    out.push(b'\n');
    Ok(())
}

/// serde_json's compact output with every character outside printable ASCII escaped
/// (`\u007f`, `\u00e9`, surrogate pairs beyond the BMP).
struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(|c: char| !(' '..='~').contains(&c)) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()> {
        // Same escapes as the record encoder (`\n`, `\r`, `\t`; others as \u00XX).
        let text: Cow<'static, str> = match escape {
            CharEscape::Quote => "\\\"".into(),
            CharEscape::ReverseSolidus => "\\\\".into(),
            CharEscape::LineFeed => "\\n".into(),
            CharEscape::CarriageReturn => "\\r".into(),
            CharEscape::Tab => "\\t".into(),
            CharEscape::Solidus => "/".into(),
            CharEscape::Backspace => "\\u0008".into(),
            CharEscape::FormFeed => "\\u000c".into(),
            CharEscape::AsciiControl(byte) => format!("\\u{byte:04x}").into(),
        };
        writer.write_all(text.as_bytes())
    }
}
