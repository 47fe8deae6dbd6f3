//! One line of a syslog file, as rsyslog writes it, split into its parts.
//!
//! Three layouts are understood:
//!
//! - rsyslog's default, `RSYSLOG_TraditionalFileFormat`:
//!   `Nov 26 04:14:10 host vigild[812]: event=...` (no year, local time);
//! - the high-precision `RSYSLOG_FileFormat`:
//!   `2026-11-26T04:14:10.123456+00:00 host vigild[812]: event=...`;
//! - RFC 5424 (`RSYSLOG_SyslogProtocol23Format`):
//!   `<38>1 2026-11-26T04:14:10.123Z host vigild 812 - - event=...`, with or without
//!   structured data (`[id k="v"]...`) and a byte-order mark before the message.
//!
//! Either of the first two may also start with a `<PRI>`. Everything here reads lines
//! that any local user can write into (through `logger`): the parser takes any text,
//! never panics, and answers `None` for a line that is not a syslog line. Files are read
//! as bytes, one line at a time and never more than [`MAX_LINE_BYTES`] of a line; each
//! line is then converted to text lossily.

use std::io::{self, BufRead};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_protocol::time::{civil_from_days, days_from_civil};

/// The longest line kept; the rest of a longer line is read and dropped. A vigil record
/// is far shorter (values are cut at 256 bytes): a longer line is never a record.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Which layout a line was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Nov 26 04:14:10 host tag[pid]: message`
    Traditional,
    /// `2026-11-26T04:14:10.123456+00:00 host tag[pid]: message`
    HighPrecision,
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`
    Rfc5424,
}

/// A syslog timestamp as written. The traditional layout has no year and no zone (it is
/// the writer's local time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: Option<i32>,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanos: u32,
    /// Offset from UTC in seconds; `None`: local time.
    pub utc_offset_s: Option<i32>,
}

/// One parsed line. Everything borrows from the line's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    pub format: Format,
    /// `None` for RFC 5424's nil timestamp (`-`).
    pub timestamp: Option<Timestamp>,
    /// The timestamp as it appears in the line (checked by the parser: digits, letters of
    /// a month name, `:-.+TZ` and spaces only), for display.
    pub timestamp_text: &'a str,
    pub host: &'a str,
    /// The program name (`vigild`, `pam_vigil`); empty when the line has none.
    pub tag: &'a str,
    pub pid: Option<u32>,
    /// The message, without the separating spaces and without a byte-order mark.
    pub message: &'a str,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Parses one line (without its line break). `None` when it is not a syslog line.
pub fn parse_line(line: &str) -> Option<SyslogLine<'_>> {
    let (rest, rfc5424) = match strip_pri(line) {
        Some(after) => match after.strip_prefix("1 ") {
            Some(after_version) => (after_version, true),
            None => (after, false),
        },
        None => (line, false),
    };
    if rfc5424 { parse_rfc5424(rest) } else { parse_bsd(rest) }
}

/// `<N>` with 1 to 3 digits, N ≤ 191.
fn strip_pri(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pri: u16 = digits.parse().ok()?;
    (pri <= 191).then(|| &rest[end + 1..])
}

/// Splits at the first space: (word, rest after the space). The word is non-empty.
fn word(text: &str) -> Option<(&str, &str)> {
    let end = text.find(' ')?;
    (end > 0).then(|| (&text[..end], &text[end + 1..]))
}

fn parse_bsd(text: &str) -> Option<SyslogLine<'_>> {
    let (timestamp, format, after_ts, ts_len) = if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let (ts_text, after) = word(text)?;
        (parse_rfc3339(ts_text)?, Format::HighPrecision, after, ts_text.len())
    } else {
        let (ts, used) = parse_traditional(text)?;
        let after = text.get(used..)?.strip_prefix(' ')?;
        (ts, Format::Traditional, after, used)
    };
    let timestamp_text = &text[..ts_len];
    let (host, rest) = word(after_ts)?;
    let (tag, pid, message) = split_tag(rest);
    Some(SyslogLine { format, timestamp: Some(timestamp), timestamp_text, host, tag, pid, message })
}

/// `tag[pid]: message` or `tag: message`; anything else has no tag.
fn split_tag(text: &str) -> (&str, Option<u32>, &str) {
    let end = text.find([':', '[', ' ']).unwrap_or(text.len());
    let tag = &text[..end];
    let after = &text[end..];
    if tag.is_empty() {
        return ("", None, text.trim_start_matches(' '));
    }
    if let Some(colon) = after.strip_prefix(':') {
        return (tag, None, colon.trim_start_matches(' '));
    }
    let bracketed = after.strip_prefix('[').and_then(|b| {
        let close = b.find(']')?;
        Some((&b[..close], b[close + 1..].strip_prefix(':')?))
    });
    match bracketed {
        Some((pid_text, message)) => {
            let pid = if !pid_text.is_empty() && pid_text.len() <= 10 && pid_text.bytes().all(|b| b.is_ascii_digit()) {
                pid_text.parse().ok()
            } else {
                None
            };
            (tag, pid, message.trim_start_matches(' '))
        }
        None => ("", None, text.trim_start_matches(' ')),
    }
}

/// `Mmm dD HH:MM:SS` (the day padded with a space or a zero). Returns the timestamp and
/// the bytes it used.
fn parse_traditional(text: &str) -> Option<(Timestamp, usize)> {
    let b = text.as_bytes();
    let month = MONTHS.iter().position(|m| text.get(..3) == Some(m))? as u8 + 1;
    let mut i = 3;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let day_start = i;
    while i < b.len() && b[i].is_ascii_digit() && i - day_start < 2 {
        i += 1;
    }
    let day = number(&b[day_start..i])? as u8;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let (hour, minute, second) = clock(b.get(i..i + 8)?)?;
    i += 8;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some((Timestamp { year: None, month, day, hour, minute, second, nanos: 0, utc_offset_s: None }, i))
}

/// Decimal digits only, at most 9 of them.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')))
}

/// `HH:MM:SS`
fn clock(b: &[u8]) -> Option<(u8, u8, u8)> {
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let hour = number(&b[0..2])? as u8;
    let minute = number(&b[3..5])? as u8;
    let second = number(&b[6..8])? as u8;
    (hour < 24 && minute < 60 && second <= 60).then_some((hour, minute, second))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let year = number(&b[0..4])? as i32;
    let month = number(&b[5..7])? as u8;
    let day = number(&b[8..10])? as u8;
    let (hour, minute, second) = clock(&b[11..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &b[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        nanos = number(digits)? * 10u32.pow(9 - digits.len() as u32);
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = number(&[*h1, *h2])? as i32;
            let minutes = number(&[*m1, *m2])? as i32;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    Some(Timestamp { year: Some(year), month, day, hour, minute, second, nanos, utc_offset_s: Some(offset) })
}

fn parse_rfc5424(text: &str) -> Option<SyslogLine<'_>> {
    let (ts_text, rest) = word(text)?;
    let timestamp = if ts_text == "-" { None } else { Some(parse_rfc3339(ts_text)?) };
    let (host, rest) = word(rest)?;
    let (app, rest) = word(rest)?;
    let (procid, rest) = word(rest)?;
    let (_msgid, rest) = word(rest)?;
    let rest = skip_structured_data(rest)?;
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message).trim_start_matches(' ');
    let pid = if procid.len() <= 10 && procid.bytes().all(|b| b.is_ascii_digit()) { procid.parse().ok() } else { None };
    let tag = if app == "-" { "" } else { app };
    Some(SyslogLine { format: Format::Rfc5424, timestamp, timestamp_text: ts_text, host, tag, pid, message })
}

/// Skips `-` or one or more `[...]` elements (with quoted values where `\"`, `\\` and
/// `\]` are escapes). Returns what follows.
fn skip_structured_data(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix('-') {
        return (rest.is_empty() || rest.starts_with(' ')).then_some(rest);
    }
    let b = text.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let mut quoted = false;
        loop {
            match b.get(i)? {
                b'\\' if quoted => i += 2,
                b'"' => {
                    quoted = !quoted;
                    i += 1;
                }
                b']' if !quoted => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    let rest = text.get(i..)?;
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

const DAY: i64 = 86_400;

/// The calendar year of `t` in local time.
pub fn local_year(t: SystemTime) -> i32 {
    let secs = unix_secs(t);
    civil_year_of(secs.saturating_add(i64::from(local_offset(secs)))) as i32
}

fn civil_year_of(secs: i64) -> i64 {
    civil_from_days(secs.div_euclid(DAY)).0
}

fn to_unix(secs: i64, nanos: u32) -> Option<SystemTime> {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?.checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The local zone's offset from UTC (seconds) at about `secs`, from the C library.
fn local_offset(secs: i64) -> i32 {
    let t = secs as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let result = unsafe { libc::localtime_r(&t, &mut tm) };
    if result.is_null() { 0 } else { tm.tm_gmtoff as i32 }
}

impl Timestamp {
    /// Seconds since the epoch for this wall-clock time, taking `year` and `offset` as
    /// given.
    fn unix_with(&self, year: i64, offset: i64) -> i64 {
        days_from_civil(year, u32::from(self.month), u32::from(self.day)) * DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - offset
    }

    /// The time this timestamp stands for. Without a year (the traditional layout), the
    /// year of `now` is assumed, or the year before when that would be more than a day in
    /// the future. Without a zone, the local zone is assumed.
    pub fn to_system_time(&self, now: SystemTime) -> Option<SystemTime> {
        let year = match self.year {
            Some(y) => i64::from(y),
            None => civil_year_of(unix_secs(now)),
        };
        let resolve = |year: i64| -> i64 {
            match self.utc_offset_s {
                Some(offset) => self.unix_with(year, i64::from(offset)),
                None => {
                    let guess = self.unix_with(year, 0);
                    let first = i64::from(local_offset(guess));
                    // Around a DST change the offset at the guessed instant can differ
                    // from the one at the real instant: refine once.
                    let second = i64::from(local_offset(guess - first));
                    self.unix_with(year, second)
                }
            }
        };
        let mut secs = resolve(year);
        if self.year.is_none() && secs > unix_secs(now).saturating_add(DAY) {
            secs = resolve(year - 1);
        }
        to_unix(secs, self.nanos)
    }
}

/// How a file's lines were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub lines: u64,
    /// Lines longer than [`MAX_LINE_BYTES`] (only their start was kept).
    pub overlong: u64,
    /// Bytes read, line breaks included.
    pub bytes: u64,
}

/// Reads `reader` line by line, as bytes, keeping at most [`MAX_LINE_BYTES`] of each
/// line, and hands each line (1-based number, text converted lossily, whether it was
/// cut) to `each`. The line break (`\n`, and a `\r` before it) is not part of the text.
pub fn for_each_line<R: BufRead>(reader: R, mut each: impl FnMut(u64, &str, bool)) -> io::Result<ReadStats> {
    for_each_line_at(reader, |line, _, text, cut| each(line, text, cut))
}

/// Like [`for_each_line`], with the byte offset where each line starts (to read it
/// again later with [`line_at`]).
pub fn for_each_line_at<R: BufRead>(mut reader: R, mut each: impl FnMut(u64, u64, &str, bool)) -> io::Result<ReadStats> {
    let mut stats = ReadStats::default();
    let mut line: Vec<u8> = Vec::with_capacity(512);
    let mut cut = false;
    // A line begun in an earlier buffer is being gathered in `line`.
    let mut pending = false;
    let mut start = 0u64;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            break;
        }
        let mut used = 0;
        if !pending {
            // Lines whole in the buffer are handed over from it, not copied.
            while let Some(end) = buffer.get(used..).and_then(|rest| memchr::memchr(b'\n', rest)) {
                let whole = buffer.get(used..used + end).unwrap_or_default();
                let kept = whole.get(..MAX_LINE_BYTES).unwrap_or(whole);
                stats.lines += 1;
                let overlong = whole.len() > MAX_LINE_BYTES;
                if overlong {
                    stats.overlong += 1;
                }
                each(stats.lines, start, &line_text(kept), overlong);
                used += end + 1;
                stats.bytes += end as u64 + 1;
                start = stats.bytes;
            }
        }
        let rest = buffer.get(used..).unwrap_or_default();
        if rest.is_empty() {
            reader.consume(used);
            continue;
        }
        // The start of a line that goes on past this buffer, or more of one.
        let (chunk, consumed, ended) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], end + 1, true),
            None => (rest, rest.len(), false),
        };
        pending = true;
        let room = MAX_LINE_BYTES - line.len();
        if chunk.len() > room {
            line.extend_from_slice(&chunk[..room]);
            cut = true;
        } else {
            line.extend_from_slice(chunk);
        }
        reader.consume(used + consumed);
        stats.bytes += consumed as u64;
        if ended {
            emit(&mut stats, start, &mut line, &mut cut, &mut each);
            start = stats.bytes;
            pending = false;
        }
    }
    if pending {
        emit(&mut stats, start, &mut line, &mut cut, &mut each);
    }
    Ok(stats)
}

fn emit(stats: &mut ReadStats, start: u64, line: &mut Vec<u8>, cut: &mut bool, each: &mut impl FnMut(u64, u64, &str, bool)) {
    stats.lines += 1;
    if *cut {
        stats.overlong += 1;
    }
    let text = line_text(line);
    each(stats.lines, start, &text, *cut);
    line.clear();
    *cut = false;
}

/// A line's bytes as the readers see them: without a `\r` before the line break,
/// converted lossily.
pub fn line_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    // from_utf8's check is several times faster than the lossy walk, and nearly every
    // line is valid.
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests;
