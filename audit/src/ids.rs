//! Maps keyed by numbers the readers give out themselves (a block's number, in the order
//! of its first record; a user's, in the order its name is first read), hashed by a
//! multiply (FxHash's) instead of SipHash: a lookup per record in each of several maps
//! made SipHash a tenth of `audit report`'s time.
//!
//! Only for such keys. A file chooses nothing about them but how many there are, and
//! they are given out one after another: an odd multiplier maps consecutive numbers to
//! distinct low bits (the table's bucket), so no input can pile them into one bucket.
//! A key that comes from the file (a host name, a user name, a `session=`, a day) must
//! go to a map keyed at random (std's `RandomState`, SipHash): a crafted trail could
//! otherwise make every key collide and each lookup walk them all.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash's step over whole words.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by a number the readers gave out (see the module's text).
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn consecutive_numbers_fill_distinct_buckets() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let mask = (1u64 << 16) - 1;
        let mut buckets: Vec<u64> = (0..1usize << 16).map(|n| build.hash_one(n) & mask).collect();
        buckets.sort_unstable();
        buckets.dedup();
        assert_eq!(buckets.len(), 1 << 16);
    }

    #[test]
    fn a_map_keyed_by_block_numbers_works_as_any() {
        let mut map: IdMap<usize, u32> = IdMap::default();
        for n in 0..10_000usize {
            map.insert(n, n as u32 * 2);
        }
        assert_eq!(map.get(&4321), Some(&8642));
        assert_eq!(map.remove(&0), Some(0));
        assert_eq!(map.len(), 9_999);
    }
}
