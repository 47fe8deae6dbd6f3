//! Exact copies of a record: forwarding that delivers at least once (rsyslog's RELP
//! sends again what the central host had not acknowledged when the link broke) writes
//! some records twice, the copy shortly after the original. The readers skip such a
//! copy and count it; a record with the same seq but other content is still an edit.
//!
//! Memory stays bounded: each host keeps only its last [`DUPLICATE_WINDOW`] records,
//! a few dozen bytes each, so a copy further back than that is not recognised as one
//! (`verify` then reports it as a duplicate seq, as it reports any other).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

use crate::chain::MAC_HEX;
use crate::trail::Event;
use crate::verify::MAX_HOSTS;

/// Records of one host remembered for recognising a copy: RELP re-sends at most its
/// window of unacknowledged frames (librelp's default: 128), so a copy comes within
/// that many records of its original, plus those of the batch rsyslog retries.
pub const DUPLICATE_WINDOW: usize = 256;

/// A record's `mac=` as written (32 hex digits): compared, never parsed.
pub(crate) type Mac = [u8; MAC_HEX];

/// A host's last records, oldest first: (seq, mac, what else must match).
pub(crate) struct Recent<T> {
    entries: VecDeque<(u64, Mac, T)>,
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
    pub(crate) fn push(&mut self, seq: u64, mac: Mac, proof: T) {
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

    /// What was kept for (seq, mac), when that record is among the last ones.
    pub(crate) fn find(&self, seq: u64, mac: &Mac) -> Option<&T> {
        if !self.may_hold(seq) {
            return None;
        }
        self.entries.iter().rev().find(|(s, m, _)| *s == seq && m == mac).map(|(_, _, proof)| proof)
    }
}

/// A `mac=` value, `None` when it does not have a mac's length.
pub(crate) fn mac_of(value: &[u8]) -> Option<Mac> {
    value.try_into().ok()
}

/// `show` and `report`, which check no mac: a copy is a vigild record with the host,
/// seq, mac and text of one of the host's last records. The texts are compared by a
/// hash keyed at random in each run, so no line can be written to collide with
/// another's.
#[derive(Default)]
pub(crate) struct TrailCopies {
    hasher: RandomState,
    /// By host number (the trail's).
    hosts: Vec<Recent<u64>>,
}

impl TrailCopies {
    /// Whether `event` (written as `message`) of host `host` is a copy; remembers it
    /// when it is not.
    pub(crate) fn is_copy(&mut self, host: u32, message: &str, event: &Event) -> bool {
        if event.module {
            return false;
        }
        let seq = event.get("seq").and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok());
        let (Some(seq), Some(mac)) = (seq, event.get("mac").and_then(mac_of)) else { return false };
        let index = host as usize;
        if self.hosts.len() <= index {
            self.hosts.resize_with(index + 1, Recent::default);
        }
        let Some(recent) = self.hosts.get_mut(index) else { return false };
        let digest = self.hasher.hash_one(message.as_bytes());
        if recent.find(seq, &mac) == Some(&digest) {
            return true;
        }
        recent.push(seq, mac, digest);
        false
    }
}

/// [`TrailCopies`] for a reader that has no host numbers of its own (`show --follow`):
/// hosts numbered by name as they come, the first [`MAX_HOSTS`] only, so that a file
/// of ever new host names cannot grow it.
#[derive(Default)]
pub(crate) struct NamedHostCopies {
    hosts: HashMap<String, u32>,
    copies: TrailCopies,
}

impl NamedHostCopies {
    pub(crate) fn is_copy(&mut self, host: &str, message: &str, event: &Event) -> bool {
        let id = match self.hosts.get(host) {
            Some(&id) => id,
            None if self.hosts.len() < MAX_HOSTS => {
                let id = self.hosts.len() as u32;
                self.hosts.insert(host.to_owned(), id);
                id
            }
            None => return false,
        };
        self.copies.is_copy(id, message, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Mac {
        [b'a' + n % 6; MAC_HEX]
    }

    #[test]
    fn finds_only_records_within_the_window() {
        let mut recent = Recent::new(3);
        for seq in 1..=5u8 {
            recent.push(u64::from(seq), mac(seq), seq * 10);
        }
        assert_eq!(recent.find(5, &mac(5)), Some(&50));
        assert_eq!(recent.find(3, &mac(3)), Some(&30));
        assert_eq!(recent.find(2, &mac(2)), None, "fell out of the window");
        assert_eq!(recent.find(4, &mac(1)), None, "same seq, another mac");
        assert_eq!(recent.find(6, &mac(6)), None, "ahead of everything seen");
    }

    #[test]
    fn a_window_of_zero_remembers_nothing() {
        let mut recent = Recent::new(0);
        recent.push(1, mac(1), ());
        assert_eq!(recent.find(1, &mac(1)), None);
    }

    #[test]
    fn a_mac_is_taken_only_at_its_length() {
        assert_eq!(mac_of(b"0123456789abcdef0123456789abcdef"), Some(*b"0123456789abcdef0123456789abcdef"));
        assert_eq!(mac_of(b"fff"), None);
        assert_eq!(mac_of(b"0123456789abcdef0123456789abcdef0"), None);
    }
}
