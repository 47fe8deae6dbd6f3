//! The module's own syslog records, for when vigild cannot write them.
//!
//! Written through a socket of the module's own (the `syslog` crate's unix logger),
//! never `openlog(3)`, which would change the host's (sshd's, sudo's) syslog ident.
//! The socket is closed when the logger is dropped at the end of the call.
//!
//! Every message is bounded ([`MAX_MESSAGE_BYTES`]): PAM items and vigild's or zbus's
//! error texts can be long, and a line cut by a relay on its way to the log host would
//! lose the fields after the cut (or pass half a field for a whole one).

use std::path::Path;

use vigil_protocol::audit::{MAX_VALUE_BYTES, Record, Value};

/// Longest message the module hands to syslog, in bytes. The RFC 3164 header the
/// module adds (`<PRI>Mmm dd hh:mm:ss pam_vigil[PID]: `) is under 48 bytes, and the
/// prefix rsyslog writes into a file (timestamp, a host name of at most 64 bytes,
/// `pam_vigil[PID]: `) under 110: a whole line, either way, stays under 2 KiB.
pub const MAX_MESSAGE_BYTES: usize = 1900;

/// Where the module's records go; a fake collects them in unit tests.
pub trait HostLog {
    fn record(&self, record: &Record);
    fn debug(&self, message: &str);
}

pub struct Syslog<'a> {
    pub socket: &'a Path,
    pub debug: bool,
}

impl Syslog<'_> {
    fn send(&self, severity_err: bool, message: &str) {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "pam_vigil".into(),
            pid: std::process::id(),
        };
        // A syslog outage must not disturb the login: errors are dropped.
        if let Ok(mut logger) = syslog::unix_custom(formatter, self.socket) {
            let _ = if severity_err { logger.err(message) } else { logger.debug(message) };
        }
    }
}

impl HostLog for Syslog<'_> {
    fn record(&self, record: &Record) {
        self.send(true, &bounded_line(record, MAX_MESSAGE_BYTES));
    }

    fn debug(&self, message: &str) {
        if self.debug {
            self.send(false, &bounded_text(message, MAX_MESSAGE_BYTES));
        }
    }
}

/// `record` as one key=value line of at most `max` bytes. When the whole record does
/// not fit, every text value longer than some length is cut to it (the longest
/// values lose most; short ones stay whole), and `truncated=` names the cut keys,
/// as it does for the record's own 256-byte cut.
pub fn bounded_line(record: &Record, max: usize) -> String {
    let line = record.to_kv_line();
    if line.len() <= max {
        return line;
    }
    // The longest per-value length that fits; an escaped byte takes up to 4.
    let (mut fits, mut too_long) = (0, MAX_VALUE_BYTES);
    while fits + 1 < too_long {
        let mid = (fits + too_long) / 2;
        if cut_values(record, mid).len() <= max { fits = mid } else { too_long = mid }
    }
    let line = cut_values(record, fits);
    if line.len() <= max {
        return line;
    }
    // Only reachable with far more fields than the module ever writes: cut the line
    // itself (it is ASCII, so any byte is a boundary) rather than exceed the bound.
    line[..max].to_string()
}

/// The record with every text value cut to `limit` bytes (at a character boundary
/// when the value is UTF-8) and `truncated=` naming the cut keys.
fn cut_values(record: &Record, limit: usize) -> String {
    let mut cut = Record::new(record.event());
    let mut truncated: Vec<&str> = Vec::new();
    for (key, value) in record.fields() {
        cut = match value {
            Value::Number(n) => cut.number(key, *n),
            Value::Text(bytes) if bytes.len() <= limit => cut.text(key, bytes),
            Value::Text(bytes) => {
                truncated.push(key);
                cut.text(key, &bytes[..char_boundary(bytes, limit)])
            }
        };
    }
    if !truncated.is_empty() {
        cut = cut.text("truncated", truncated.join(","));
    }
    cut.to_kv_line()
}

/// The largest cut ≤ `limit` that does not split a UTF-8 character (any cut for
/// bytes that are not UTF-8).
fn char_boundary(bytes: &[u8], limit: usize) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.floor_char_boundary(limit),
        Err(_) => limit.min(bytes.len()),
    }
}

/// A free-text debug line: control characters (a newline from an error text) escaped,
/// cut at a character boundary to `max` bytes.
pub fn bounded_text(message: &str, max: usize) -> String {
    let escaped: String = message.escape_debug().collect();
    escaped[..escaped.floor_char_boundary(max)].to_string()
}

#[cfg(test)]
mod tests {
    use vigil_protocol::audit::parse_kv_line;
    use vigil_protocol::events::{Event, ModuleCall, ModuleFailure};

    use super::*;

    fn record(rhost: &[u8], error: &str) -> Record {
        Record::new(Event::CallRefused)
            .text("call", ModuleCall::OpenSession)
            .text("user", "alice")
            .text("service", "sshd")
            .text("tty", "\u{20ac}".repeat(700))
            .text("rhost", rhost)
            .number("pid", 4242)
            .number("ses", u32::MAX)
            .text("fail", "open")
            .text("reason", "invalid_argument")
            .text("error_name", "org.vigil1.Error.InvalidArgument")
            .text("error", error)
    }

    fn field<'a>(fields: &'a [(String, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
        fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    #[test]
    fn short_records_are_unchanged() {
        let r = Record::new(Event::DaemonUnreachable).text("call", ModuleCall::OpenSession).text("reason", ModuleFailure::Timeout);
        assert_eq!(bounded_line(&r, MAX_MESSAGE_BYTES), r.to_kv_line());
    }

    #[test]
    fn long_rhost_and_error_stay_within_the_bound() {
        // 3000 bytes of rhost that escape to 4 bytes each, a 10 KiB error with newlines.
        let rhost = vec![0xffu8; 3000];
        let error = "vigild said: \n".repeat(10 * 1024 / 14);
        let r = record(&rhost, &error);
        assert!(r.to_kv_line().len() > MAX_MESSAGE_BYTES, "the test needs an overlong record");
        let line = bounded_line(&r, MAX_MESSAGE_BYTES);
        assert!(line.len() <= MAX_MESSAGE_BYTES, "{} bytes", line.len());
        assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "one printable line: {line}");
        let fields = parse_kv_line(&line).expect("a whole record");
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["event", "call", "user", "service", "tty", "rhost", "pid", "ses", "fail", "reason", "error_name", "error", "truncated"]
        );
        assert_eq!(field(&fields, "truncated"), Some(&b"tty,rhost,error"[..]));
        // Short values are whole; the cut ones are prefixes, the tty at a character boundary.
        assert_eq!(field(&fields, "error_name"), Some(&b"org.vigil1.Error.InvalidArgument"[..]));
        assert_eq!(field(&fields, "pid"), Some(&b"4242"[..]));
        let tty = std::str::from_utf8(field(&fields, "tty").unwrap()).expect("cut between characters");
        assert!(!tty.is_empty() && tty.chars().all(|c| c == '\u{20ac}'), "{tty}");
        let cut_rhost = field(&fields, "rhost").unwrap();
        assert!(!cut_rhost.is_empty() && cut_rhost.iter().all(|&b| b == 0xff));
        assert!(error.as_bytes().starts_with(field(&fields, "error").unwrap()));
    }

    #[test]
    fn the_whole_syslog_line_stays_under_2_kib() {
        let r = record(&[b'h'; 3000], &"e".repeat(10 * 1024));
        let message = bounded_line(&r, MAX_MESSAGE_BYTES);
        // What rsyslog writes: timestamp, a 64-byte host name, the tag with the largest pid.
        let line = format!("Nov 26 04:14:10 {} pam_vigil[4294967295]: {message}", "h".repeat(64));
        assert!(line.len() < 2048, "{} bytes", line.len());
    }

    #[test]
    fn debug_text_is_one_bounded_line() {
        let text = bounded_text(&format!("could not record the proof: {}", "\u{e9}\n".repeat(5000)), 100);
        assert!(text.len() <= 100 && !text.contains('\n'), "{text:?}");
        assert!(text.starts_with("could not record the proof: \u{e9}\\n"));
    }
}
