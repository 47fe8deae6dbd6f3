//! The supervisor's deadlines: one entry per session, pending pty scan and input
//! check, earliest first, so that the task sleeps until the next one.

use std::collections::{BTreeSet, HashMap};

use crate::sys::clock;
use crate::sys::ttys::TtyNr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    Session(u64),
    PtsScan {
        n: u32,
        attempt: usize,
    },
    /// Whether the accesses to a tty since the last look were reads (`tty_input.rs`).
    InputCheck(TtyNr),
}

/// Deadlines, earliest first; one entry per session or pending pty scan.
#[derive(Default)]
pub struct Timers {
    queue: BTreeSet<(u64, Entry)>,
    at: HashMap<Entry, u64>,
}

impl Timers {
    pub fn set(&mut self, entry: Entry, when: u64) {
        if let Some(old) = self.at.insert(entry, when) {
            self.queue.remove(&(old, entry));
        }
        self.queue.insert((when, entry));
    }

    pub fn remove(&mut self, entry: Entry) {
        if let Some(old) = self.at.remove(&entry) {
            self.queue.remove(&(old, entry));
        }
    }

    pub fn next(&self) -> Option<u64> {
        self.queue.first().map(|&(when, _)| when)
    }

    /// Moves every deadline by a step of the wall clock.
    pub fn shift(&mut self, delta: i64) {
        let queue = std::mem::take(&mut self.queue);
        self.at.clear();
        for (when, entry) in queue {
            self.set(entry, clock::shift(when, delta));
        }
    }

    /// The first `max` entries due at `now`, left in place.
    pub fn due(&self, now: u64, max: usize) -> Vec<Entry> {
        self.queue.iter().take_while(|&&(when, _)| when <= now).take(max).map(|&(_, entry)| entry).collect()
    }

    pub fn pop_due(&mut self, now: u64) -> Option<Entry> {
        let &(when, entry) = self.queue.first()?;
        if when > now {
            return None;
        }
        self.queue.remove(&(when, entry));
        self.at.remove(&entry);
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_clock_step_moves_every_deadline() {
        let mut timers = Timers::default();
        timers.set(Entry::Session(1), 100 * S);
        timers.set(Entry::PtsScan { n: 3, attempt: 0 }, 50 * S);
        timers.shift(3600 * S as i64);
        assert_eq!(timers.next(), Some(3650 * S));
        assert_eq!(timers.due(3650 * S, 8), vec![Entry::PtsScan { n: 3, attempt: 0 }]);
        assert_eq!(timers.due(3700 * S, 1), vec![Entry::PtsScan { n: 3, attempt: 0 }], "at most `max`");
        assert_eq!(timers.due(3700 * S, 8).len(), 2);
        assert_eq!(timers.pop_due(3650 * S), Some(Entry::PtsScan { n: 3, attempt: 0 }));
        assert_eq!(timers.pop_due(3699 * S), None);
        timers.shift(-3600 * S as i64);
        assert_eq!(timers.pop_due(100 * S), Some(Entry::Session(1)));
        assert!(timers.at.is_empty() && timers.queue.is_empty());
    }
}
