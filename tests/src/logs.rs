//! Reading what rsyslogd wrote: lines in the traditional file format
//! (`Nov 26 03:45:00 host tag[pid]: message`) and the `key=value` fields of audit
//! messages, whose values are bare or double-quoted with backslash escapes.
//!
//! The parser here is written from the format's description, independently of the
//! daemon's writer, so a writer that quotes wrongly fails the tests.

use std::path::Path;

use crate::process::read_lossy;

/// One line of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line as written, without its newline.
    pub raw: String,
    /// The syslog tag without its `[pid]` (e.g. `vigild`, `pam_vigil`); "" if unparsed.
    pub tag: String,
    /// The pid in the tag, when there is one.
    pub pid: Option<u32>,
    /// The message after `tag[pid]: `; the whole line if the line did not parse.
    pub message: String,
}

impl LogLine {
    pub fn parse(raw: &str) -> LogLine {
        let raw = raw.trim_end_matches(['\n', '\r']).to_string();
        let Some((tag, pid, message)) = split_traditional(&raw) else {
            return LogLine { message: raw.clone(), raw, tag: String::new(), pid: None };
        };
        LogLine { tag, pid, message, raw }
    }

    /// All `key=value` fields of the message, in order, values unescaped.
    pub fn fields(&self) -> Vec<(String, String)> {
        parse_fields(&self.message)
    }

    /// The value of the first field named `key`.
    pub fn field(&self, key: &str) -> Option<String> {
        self.fields().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// True when the field `key` is present with exactly `value`.
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.field(key).as_deref() == Some(value)
    }

    /// The `event` field.
    pub fn event(&self) -> Option<String> {
        self.field("event")
    }

    /// True when the tag is `tag` and the `event` field is `event`.
    pub fn is_event(&self, tag: &str, event: &str) -> bool {
        self.tag == tag && self.has("event", event)
    }

    /// The second of the day of the line's timestamp (`Nov 26 04:20:41`: 15,641), as
    /// rsyslogd wrote it (whole seconds); None when the line has no such timestamp.
    pub fn second_of_day(&self) -> Option<u32> {
        let mut parts = self.raw.get(7..15)?.split(':').map(|p| p.parse::<u32>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        (h < 24 && m < 60 && s < 61).then_some(h * 3600 + m * 60 + s)
    }
}

/// Reads a log file as lines (a missing file is empty).
pub fn read_log(path: &Path) -> Vec<LogLine> {
    read_lossy(path).lines().map(LogLine::parse).collect()
}

/// "Mmm dd hh:mm:ss host tag[pid]: msg" → (tag, pid, msg).
fn split_traditional(raw: &str) -> Option<(String, Option<u32>, String)> {
    // The timestamp is 15 characters ("Nov  6 03:45:00"), then a space.
    let rest = raw.get(16..)?;
    if raw.as_bytes().get(15) != Some(&b' ') {
        return None;
    }
    let (_host, rest) = rest.split_once(' ')?;
    let colon = rest.find(':')?;
    let (syslogtag, msg) = (&rest[..colon], &rest[colon + 1..]);
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    let (tag, pid) = match syslogtag.split_once('[') {
        Some((tag, pid)) => (tag, pid.strip_suffix(']').and_then(|p| p.parse().ok())),
        None => (syslogtag, None),
    };
    Some((tag.to_string(), pid, msg.to_string()))
}

/// Parses `k=v k2="quoted \"value\""` pairs; words without `=` are skipped.
pub fn parse_fields(message: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut chars = message.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue; // a bare word, not a field
        }
        chars.next(); // '='
        // Bytes, since `\xHH` may encode any byte; shown lossily as UTF-8.
        let mut value: Vec<u8> = Vec::new();
        let push = |value: &mut Vec<u8>, c: char| value.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push(b'\n'),
                        Some('t') => value.push(b'\t'),
                        Some('r') => value.push(b'\r'),
                        Some('x') => {
                            let hex: String = [chars.next(), chars.next()].into_iter().flatten().collect();
                            match u8::from_str_radix(&hex, 16) {
                                Ok(b) if hex.len() == 2 => value.push(b),
                                _ => {
                                    push(&mut value, 'x');
                                    hex.chars().for_each(|c| push(&mut value, c));
                                }
                            }
                        }
                        Some(other) => push(&mut value, other),
                        None => break,
                    },
                    c => push(&mut value, c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                push(&mut value, c);
                chars.next();
            }
        }
        if is_key(&key) {
            fields.push((key, String::from_utf8_lossy(&value).into_owned()));
        }
    }
    fields
}

fn is_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_traditional_line() {
        let l = LogLine::parse("Nov 26 03:45:00 box vigild[123]: event=session_open session=42 user=\"a b\"\n");
        assert_eq!(l.tag, "vigild");
        assert_eq!(l.pid, Some(123));
        assert_eq!(l.message, "event=session_open session=42 user=\"a b\"");
        assert!(l.is_event("vigild", "session_open"));
        assert_eq!(l.field("user").as_deref(), Some("a b"));
        assert_eq!(l.field("session").as_deref(), Some("42"));
        assert_eq!(l.second_of_day(), Some(3 * 3600 + 45 * 60));
        assert_eq!(LogLine::parse("Nov  6 23:59:59 box x: y").second_of_day(), Some(86_399));
        assert_eq!(LogLine::parse("not a syslog line at all").second_of_day(), None);
    }

    #[test]
    fn parses_single_digit_day_and_no_pid() {
        let l = LogLine::parse("Nov  6 03:45:00 box vigil-e2e-probe: READY-1");
        assert_eq!(l.tag, "vigil-e2e-probe");
        assert_eq!(l.pid, None);
        assert_eq!(l.message, "READY-1");
    }

    #[test]
    fn unescapes_quoted_values() {
        let f = parse_fields(r#"a=1 b="x \"y\" \\ z=2" word c="" d=e=f"#);
        assert_eq!(
            f,
            vec![("a".into(), "1".into()), ("b".into(), r#"x "y" \ z=2"#.into()), ("c".into(), "".into()), ("d".into(), "e=f".into()),]
        );
    }

    #[test]
    fn decodes_hex_escapes() {
        let f = parse_fields(r#"user="a\x1bb\xc3\xa9" bad="\xZZ""#);
        assert_eq!(f[0].1, "a\u{1b}b\u{e9}");
        assert_eq!(f[1].1, "xZZ");
    }

    #[test]
    fn unparsable_line_keeps_raw_message() {
        let l = LogLine::parse("garbage");
        assert_eq!(l.tag, "");
        assert_eq!(l.message, "garbage");
    }
}
