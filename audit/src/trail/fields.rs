//! A record's fields as the readers hold them: every key and value in one buffer, so
//! that a record costs two allocations rather than two per field.

use std::ops::Range;

/// Keys and values, in the record's order (the event name aside).
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    bytes: Vec<u8>,
    /// Per field: where its key starts, where its value starts (the key's end), where
    /// its value ends.
    spans: Vec<[u32; 3]>,
}

impl Fields {
    pub(crate) fn with_capacity(fields: usize, bytes: usize) -> Fields {
        Fields { bytes: Vec::with_capacity(bytes), spans: Vec::with_capacity(fields) }
    }

    pub(crate) fn push(&mut self, key: &str, value: &[u8]) {
        let key_start = self.bytes.len();
        self.bytes.extend_from_slice(key.as_bytes());
        let value_start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.spans.push([at(key_start), at(value_start), at(self.bytes.len())]);
    }

    fn slice(&self, range: Range<u32>) -> &[u8] {
        self.bytes.get(range.start as usize..range.end as usize).unwrap_or_default()
    }

    /// (key, value) in order. Keys are the parsers' (`[a-z0-9_]`): always text.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.spans
            .iter()
            .map(|&[key, value, end]| (std::str::from_utf8(self.slice(key..value)).unwrap_or_default(), self.slice(value..end)))
    }

    /// (key, value) in order, as bytes.
    pub(crate) fn raw(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|&[key, value, end]| (self.slice(key..value), self.slice(value..end)))
    }

    /// The first value of `key` (asked several times of each record: bytes compared,
    /// no text made).
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        let wanted = key.as_bytes();
        self.spans.iter().find(|&&[k, v, _]| self.slice(k..v) == wanted).map(|&[_, v, end]| self.slice(v..end))
    }
}
