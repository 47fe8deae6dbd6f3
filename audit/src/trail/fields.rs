//! A record's fields as the readers hold them: the record's text copied once, each
//! key and value a place in it (a value unescaped into other bytes goes after it), so
//! that a record costs two allocations rather than two per field.

use std::ops::Range;

/// Keys and values, in the record's order (the event name aside).
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    bytes: Vec<u8>,
    /// Per field: its key's start and end, its value's start and end in `bytes`.
    spans: Vec<[u32; 4]>,
    /// Where the copied text was (its address and length): a part borrowed from it is
    /// found there instead of copied again.
    source: (usize, usize),
}

fn at(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Fields {
    /// Fields of `text`, which the parts pushed mostly borrow from.
    pub(crate) fn of(text: &str, fields: usize) -> Fields {
        let mut bytes = Vec::with_capacity(text.len() + 64);
        bytes.extend_from_slice(text.as_bytes());
        Fields { bytes, spans: Vec::with_capacity(fields), source: (text.as_ptr() as usize, text.len()) }
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

    pub(crate) fn push(&mut self, key: &str, value: &[u8]) {
        let (key_start, key_end) = self.place(key.as_bytes());
        let (value_start, value_end) = self.place(value);
        self.spans.push([key_start, key_end, value_start, value_end]);
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
    /// no text made).
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        let wanted = key.as_bytes();
        self.spans.iter().find(|&&[k, key_end, _, _]| self.slice(k..key_end) == wanted).map(|&[_, _, v, end]| self.slice(v..end))
    }
}
