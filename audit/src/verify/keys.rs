//! The keys given to `verify` and the work budget of deriving them: a forged
//! `seq=4000000000` must not keep the verifier busy for an hour.

use crate::chain::{Key, KeyDeriver, KeyFile, MAX_SEQ_SPAN};

/// `KeyDeriver` keeps a key every this many seqs (chain.rs); used to estimate costs only.
pub(super) const DERIVER_CHECKPOINT: u64 = 4096;

/// One key file and the ways to its keys: `anchor` is the key of the last authentic
/// record (moves forward only on authentic records, so forged lines cannot push it away
/// from the chain), `ahead` the furthest key derived forward, `deriver` random access
/// (with checkpoints) for records behind the anchor.
pub(super) struct KeySlot {
    pub(super) start: u64,
    pub(super) anchor: (u64, Key),
    pub(super) ahead: (u64, Key),
    pub(super) deriver: KeyDeriver,
    pub(super) deriver_at: u64,
    pub(super) deriver_reached: u64,
    /// The host whose records this key verified first.
    pub(super) host: Option<usize>,
}

pub(super) enum Derived {
    Key(Key),
    /// Too much work: this many evolutions would be needed.
    OverBudget(u64),
    Implausible,
}

impl KeySlot {
    pub(super) fn new(file: &KeyFile) -> Self {
        KeySlot {
            start: file.start_seq,
            anchor: (file.start_seq, file.key.clone()),
            ahead: (file.start_seq, file.key.clone()),
            deriver: KeyDeriver::new(file),
            deriver_at: file.start_seq,
            deriver_reached: file.start_seq,
            host: None,
        }
    }

    pub(super) fn deriver_cost(&self, seq: u64) -> u64 {
        if seq >= self.deriver_at {
            return seq - self.deriver_at;
        }
        let index = ((seq - self.start) / DERIVER_CHECKPOINT).min((self.deriver_reached - self.start) / DERIVER_CHECKPOINT);
        seq - (self.start + index * DERIVER_CHECKPOINT)
    }

    /// The key of `seq`, within `budget` evolutions (which it spends).
    pub(super) fn derive(&mut self, seq: u64, budget: &mut u64) -> Derived {
        if seq < self.start || seq - self.start > MAX_SEQ_SPAN {
            return Derived::Implausible;
        }
        if seq >= self.ahead.0 {
            let cost = seq - self.ahead.0;
            if cost > *budget {
                return Derived::OverBudget(cost);
            }
            *budget -= cost;
            while self.ahead.0 < seq {
                self.ahead.1.evolve();
                self.ahead.0 += 1;
            }
            return Derived::Key(self.ahead.1.clone());
        }
        if seq >= self.anchor.0 {
            let cost = seq - self.anchor.0;
            if cost > *budget {
                return Derived::OverBudget(cost);
            }
            *budget -= cost;
            let mut key = self.anchor.1.clone();
            for _ in 0..cost {
                key.evolve();
            }
            return Derived::Key(key);
        }
        let cost = self.deriver_cost(seq);
        if cost > *budget {
            return Derived::OverBudget(cost);
        }
        *budget -= cost;
        match self.deriver.key(seq) {
            Some(key) => {
                self.deriver_at = seq;
                self.deriver_reached = self.deriver_reached.max(seq);
                Derived::Key(key.clone())
            }
            None => Derived::Implausible,
        }
    }

    /// An authentic record at `seq` with `key`: the anchor moves up to it.
    pub(super) fn confirm(&mut self, seq: u64, key: Key) {
        if seq > self.anchor.0 {
            self.anchor = (seq, key);
        }
    }
}

pub(super) fn no_key_detail(first: u64, last: u64, first_line: u64, last_line: u64, keys: &[KeySlot], any_usable: bool) -> String {
    let seqs = if first == last { format!("seq {first}") } else { format!("seqs {first}..{last} (lines {first_line}..{last_line})") };
    if !any_usable {
        return format!("{seqs}: not verifiable with the keys given (every key given belongs to another host)");
    }
    let lowest = keys.iter().map(|k| k.start).min();
    match lowest {
        Some(start) => format!("{seqs}: before the key's start (seq {start}): not verifiable with the keys given"),
        None => format!("{seqs}: not verifiable: no key given"),
    }
}
