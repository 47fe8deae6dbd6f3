//! A record's fields as the readers hold them: the record's text copied once, each
//! key and value a place in it (a value unescaped into other bytes goes after it), so
//! that a record costs two allocations rather than two per field, and none at all when
//! the readers parse each record into the same `Fields` ([`Fields::reset`]).

use std::ops::Range;

/// The keys the readers ask of every record: where each one's first field is is kept
/// as the fields are pushed, so that asking is not a walk over the record.
const HOT_KEYS: [&str; 6] = ["seq", "mac", "session", "user", "reason", "rhost"];

/// The slot of `key` in [`HOT_KEYS`] (asked of every field: bytes compared in line, no
/// call to `memcmp`).
#[inline(always)]
fn hot(key: &str) -> Option<usize> {
    match *key.as_bytes() {
        [b's', b'e', b'q'] => Some(0),
        [b'm', b'a', b'c'] => Some(1),
        [b's', b'e', b's', b's', b'i', b'o', b'n'] => Some(2),
        [b'u', b's', b'e', b'r'] => Some(3),
        [b'r', b'e', b'a', b's', b'o', b'n'] => Some(4),
        [b'r', b'h', b'o', b's', b't'] => Some(5),
        _ => None,
    }
}

/// Keys and values, in the record's order (the event name aside).
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    bytes: Vec<u8>,
    /// Per field: its key's start and end, its value's start and end in `bytes`.
    spans: Vec<[u32; 4]>,
    /// Where the copied text was (its address and length): a part borrowed from it is
    /// found there instead of copied again.
    source: (usize, usize),
    /// Per key of [`HOT_KEYS`]: 1 + the index in `spans` of its first field; 0 when the
    /// record has none.
    first: [u32; HOT_KEYS.len()],
}

fn at(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Fields {
    /// Empties these fields for those of `text` (which the parts pushed then mostly
    /// borrow from), keeping the memory.
    pub(crate) fn reset(&mut self, text: &str) {
        // One allocation for new fields (a record read again, one at a time), none for
        // fields used before.
        self.bytes.clear();
        self.bytes.reserve(text.len() + 64);
        self.bytes.extend_from_slice(text.as_bytes());
        self.spans.clear();
        self.spans.reserve(24);
        self.source = (text.as_ptr() as usize, text.len());
        self.first = [0; HOT_KEYS.len()];
    }

    /// Where `part` is in `bytes`: in the copied text when it was borrowed from it,
    /// else appended.
    fn place(&mut self, part: &[u8]) -> (u32, u32) {
        let (base, len) = self.source;
        let start = part.as_ptr() as usize;
        if start >= base && start - base + part.len() <= len {
            let offset = start - base;
            return (at(offset), at(offset + part.len()));
        }
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(part);
        (at(offset), at(self.bytes.len()))
    }

    #[inline]
    pub(crate) fn push(&mut self, key: &str, value: &[u8]) {
        let (key_start, key_end) = self.place(key.as_bytes());
        let (value_start, value_end) = self.place(value);
        self.spans.push([key_start, key_end, value_start, value_end]);
        if let Some(first) = hot(key).and_then(|slot| self.first.get_mut(slot)) {
            if *first == 0 {
                *first = at(self.spans.len());
            }
        }
    }

    fn slice(&self, range: Range<u32>) -> &[u8] {
        self.bytes.get(range.start as usize..range.end as usize).unwrap_or_default()
    }

    /// (key, value) in order. Keys are the parsers' (`[a-z0-9_]`): always text.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.raw().map(|(key, value)| (std::str::from_utf8(key).unwrap_or_default(), value))
    }

    /// (key, value) in order, as bytes.
    pub(crate) fn raw(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|&[key, key_end, value, end]| (self.slice(key..key_end), self.slice(value..end)))
    }

    /// The first value of `key` (asked several times of each record: bytes compared,
    /// no text made; one of [`HOT_KEYS`] is found where the push kept it). In line, so
    /// that a key written out picks its slot when compiled.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        if let Some(slot) = hot(key) {
            let first = self.first.get(slot).copied().unwrap_or(0) as usize;
            let &[_, _, v, end] = self.spans.get(first.checked_sub(1)?)?;
            return Some(self.slice(v..end));
        }
        let wanted = key.as_bytes();
        self.spans.iter().find(|&&[k, key_end, _, _]| self.slice(k..key_end) == wanted).map(|&[_, _, v, end]| self.slice(v..end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first value of `key` by walking every field: what `get` answers.
    fn walked<'a>(fields: &'a Fields, key: &str) -> Option<&'a [u8]> {
        fields.raw().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| v)
    }

    #[test]
    fn the_hot_slots_are_the_keys_in_order() {
        for (slot, key) in HOT_KEYS.iter().enumerate() {
            assert_eq!(hot(key), Some(slot));
        }
        for other in ["", "se", "seqq", "Seq", "sessio", "sessions", "users", "event", "reasons"] {
            assert_eq!(hot(other), None, "{other}");
        }
    }

    #[test]
    fn hot_keys_answer_as_a_walk_does() {
        let text = "seq=1 user=a user=b session=7 x=1 mac=m seq=2 reason=idle";
        let mut fields = Fields::default();
        fields.reset(text);
        for (key, value) in [("seq", "1"), ("user", "a"), ("user", "b"), ("session", "7"), ("x", "1"), ("mac", "m"), ("seq", "2")] {
            fields.push(key, value.as_bytes());
        }
        fields.push("reason", b"unescaped \"elsewhere\"");
        for key in HOT_KEYS.iter().chain(&["x", "absent", ""]) {
            assert_eq!(fields.get(key), walked(&fields, key), "{key}");
        }
        assert_eq!(fields.get("seq"), Some(&b"1"[..]), "the first of a duplicated key");
        assert_eq!(fields.get("user"), Some(&b"a"[..]));
        assert_eq!(fields.get("rhost"), None);
        assert_eq!(fields.get("reason"), Some(&b"unescaped \"elsewhere\""[..]));
    }

    #[test]
    fn a_reset_forgets_the_record_before() {
        let mut fields = Fields::default();
        fields.reset("user=a mac=m");
        fields.push("user", b"a");
        fields.push("mac", b"m");
        fields.reset("seq=3");
        fields.push("seq", b"3");
        assert_eq!(fields.get("user"), None);
        assert_eq!(fields.get("mac"), None);
        assert_eq!(fields.get("seq"), Some(&b"3"[..]));
        assert_eq!(fields.raw().collect::<Vec<_>>(), vec![(&b"seq"[..], &b"3"[..])]);
    }
}
