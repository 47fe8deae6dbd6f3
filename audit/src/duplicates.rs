//! Exact copies of a record: forwarding that delivers at least once (rsyslog's RELP
//! sends again what the central host had not acknowledged when the link broke) writes
//! some records twice, the copy shortly after the original. The readers skip such a
//! copy and count it; a record with the same seq but other content is still an edit.
//!
//! Memory stays bounded: each host keeps only its last [`DUPLICATE_WINDOW`] records,
//! a few dozen bytes each, so a copy further back than that is not recognised as one
//! (`verify` then reports it as a duplicate seq, as it reports any other).

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use crate::chain::MAC_HEX;
use crate::trail::Event;

/// Records of one host remembered for recognising a copy: RELP re-sends at most its
/// window of unacknowledged frames (librelp's default: 128), so a copy comes within
/// that many records of its original, plus those of the batch rsyslog retries.
pub const DUPLICATE_WINDOW: usize = 256;

/// A host's last records, oldest first: (seq, mac, what proves the rest identical).
pub(crate) struct Recent<T> {
    entries: VecDeque<(u64, u128, T)>,
    window: usize,
    highest: Option<u64>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent::new(DUPLICATE_WINDOW)
    }
}

impl<T> Recent<T> {
    pub(crate) fn new(window: usize) -> Self {
        Recent { entries: VecDeque::new(), window, highest: None }
    }

    /// Remembers a record; the oldest goes when the window is full.
    pub(crate) fn push(&mut self, seq: u64, mac: u128, proof: T) {
        if self.window == 0 {
            return;
        }
        if self.entries.len() == self.window {
            self.entries.pop_front();
        }
        self.entries.push_back((seq, mac, proof));
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
    }

    /// Whether a record at `seq` may be a copy: not above every seq seen. Records
    /// arrive mostly in order, so this is what nearly every record is asked, and no more.
    pub(crate) fn may_hold(&self, seq: u64) -> bool {
        self.highest.is_some_and(|h| seq <= h)
    }

    /// The proof kept for (seq, mac), when that record is among the last ones.
    pub(crate) fn find(&self, seq: u64, mac: u128) -> Option<&T> {
        if !self.may_hold(seq) {
            return None;
        }
        self.entries.iter().rev().find(|(s, m, _)| *s == seq && *m == mac).map(|(_, _, proof)| proof)
    }
}

/// A `mac=` value as a number (the 128 bits it writes), `None` when it is not one.
pub(crate) fn mac_bits(mac: &[u8]) -> Option<u128> {
    if mac.len() != MAC_HEX {
        return None;
    }
    mac.iter().try_fold(0u128, |bits, &digit| Some(bits << 4 | u128::from(char::from(digit).to_digit(16)? as u8)))
}

/// `show` and `report`, which check no mac: a copy is a vigild record with the host,
/// seq, mac and every field of one of the host's last records. The fields are compared
/// by a hash keyed at random in each run, so no line can be written to collide with
/// another's.
#[derive(Default)]
pub(crate) struct TrailCopies {
    hasher: RandomState,
    /// By host number (the trail's).
    hosts: Vec<Recent<u64>>,
    /// A record's name and fields, each with its length, hashed in one call (a call
    /// per field costs more than the bytes).
    fields: Vec<u8>,
}

impl TrailCopies {
    /// Whether `event` of host `host` is a copy; remembers it when it is not.
    pub(crate) fn is_copy(&mut self, host: u32, event: &Event) -> bool {
        if event.module {
            return false;
        }
        let seq = event.get("seq").and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok());
        let (Some(seq), Some(mac)) = (seq, event.get("mac").and_then(mac_bits)) else { return false };
        let index = host as usize;
        if self.hosts.len() <= index {
            self.hosts.resize_with(index + 1, Recent::default);
        }
        let digest = self.digest(event);
        let Some(recent) = self.hosts.get_mut(index) else { return false };
        if recent.find(seq, mac) == Some(&digest) {
            return true;
        }
        recent.push(seq, mac, digest);
        false
    }

    /// The hash of the record's name and fields, every one with its length before it:
    /// records with other fields give other bytes.
    fn digest(&mut self, event: &Event) -> u64 {
        let bytes = &mut self.fields;
        bytes.clear();
        let mut put = |part: &[u8]| {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part);
        };
        put(&event.name);
        for (key, value) in event.fields.raw() {
            put(key);
            put(value);
        }
        self.hasher.hash_one(bytes.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_records_within_the_window() {
        let mut recent = Recent::new(3);
        for seq in 1..=5u64 {
            recent.push(seq, u128::from(seq) * 7, seq * 10);
        }
        assert_eq!(recent.find(5, 35), Some(&50));
        assert_eq!(recent.find(3, 21), Some(&30));
        assert_eq!(recent.find(2, 14), None, "fell out of the window");
        assert_eq!(recent.find(4, 99), None, "same seq, another mac");
        assert_eq!(recent.find(6, 42), None, "ahead of everything seen");
    }

    #[test]
    fn a_window_of_zero_remembers_nothing() {
        let mut recent = Recent::new(0);
        recent.push(1, 1, ());
        assert_eq!(recent.find(1, 1), None);
    }

    #[test]
    fn macs_are_read_as_their_128_bits() {
        assert_eq!(mac_bits(b"0000000000000000000000000000000a"), Some(10));
        assert_eq!(mac_bits(b"ffffffffffffffffffffffffffffffff"), Some(u128::MAX));
        assert_eq!(mac_bits(b"fff"), None);
        assert_eq!(mac_bits(b"+fffffffffffffffffffffffffffffff"), None);
    }
}
