//! The position fields of a sealed record (`seq`, `prev`), read from the end of its
//! body where vigild puts them, and the claim of a `records_dropped` record.

use vigil_protocol::audit::parse_kv_line;

use crate::chain::{Encoding, PREV_HEX, split_at_tail};

/// A sealed record's position fields, read from the end of its body.
pub(super) struct Position<'a> {
    pub(super) seq: u64,
    pub(super) prev: &'a str,
    pub(super) event: Option<&'a str>,
}

pub(super) fn is_prev(text: &str) -> bool {
    text.len() == PREV_HEX && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(super) fn parse_seq(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn is_event_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `... seq=N prev=HEX` (kv) or `...,"seq":N,"prev":"HEX"}` (JSON): where `with_position`
/// puts them. A record whose end is anything else cannot have been sealed by vigild.
pub(super) fn position(body: &str, encoding: Encoding) -> Option<Position<'_>> {
    match encoding {
        Encoding::KeyValue => {
            let (head, prev) = split_at_tail(body, " prev=", PREV_HEX)?;
            let (_, seq) = last_after(head, " seq=", b' ')?;
            let event = body.strip_prefix("event=").map(|rest| rest.split(' ').next().unwrap_or(rest)).filter(|e| is_event_name(e));
            Some(Position { seq: parse_seq(seq)?, prev: Some(prev).filter(|p| is_prev(p))?, event })
        }
        Encoding::Json => {
            let open = body.strip_suffix("\"}")?;
            let (head, prev) = split_at_tail(open, ",\"prev\":\"", PREV_HEX)?;
            let (_, seq) = last_after(head, ",\"seq\":", b',')?;
            let event = body.strip_prefix("{\"event\":\"").and_then(|rest| rest.split('"').next()).filter(|e| is_event_name(e));
            Some(Position { seq: parse_seq(seq)?, prev: Some(prev).filter(|p| is_prev(p))?, event })
        }
    }
}

/// Like `rsplit_once(separator)` where what follows must hold no `first` byte (the
/// separator's own first byte): then the separator can only start at the last `first`.
fn last_after<'a>(text: &'a str, separator: &str, first: u8) -> Option<(&'a str, &'a str)> {
    let at = memchr::memrchr(first, text.as_bytes())?;
    Some((text.get(..at)?, text.get(at..)?.strip_prefix(separator)?))
}

/// `first_seq` and `count` of a `records_dropped` record.
pub(super) fn dropped_claim(body: &str, encoding: Encoding) -> Option<(u64, u64)> {
    match encoding {
        Encoding::KeyValue => {
            let fields = parse_kv_line(body).ok()?;
            let get = |key: &str| fields.iter().find(|(k, _)| k == key).and_then(|(_, v)| std::str::from_utf8(v).ok()).and_then(parse_seq);
            Some((get("first_seq")?, get("count")?))
        }
        Encoding::Json => {
            let value: serde_json::Value = serde_json::from_str(body).ok()?;
            Some((value.get("first_seq")?.as_u64()?, value.get("count")?.as_u64()?))
        }
    }
}
