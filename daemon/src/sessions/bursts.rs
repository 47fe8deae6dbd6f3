//! Bursts: how many events of one key (a session, a uid) fell within a sliding window,
//! and, when that count reaches a threshold, one alert, then none for that key until a
//! whole window has passed. A pure rule: the caller says what the events are and writes
//! the alert.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Most event times kept per key: what an alert's count can say at most. Bounds memory
/// under a flood (a user looping on a refused call thousands of times a second costs
/// 16 KiB, not one entry per call), far above any threshold.
pub const MAX_COUNTED: usize = 1024;

#[derive(Debug)]
pub struct Bursts<K> {
    threshold: usize,
    window: Duration,
    entries: HashMap<K, Burst>,
    last_prune: Option<Instant>,
}

#[derive(Debug, Default)]
struct Burst {
    /// The key's events within the window, oldest first (at most `MAX_COUNTED`).
    times: VecDeque<Instant>,
    alerted_at: Option<Instant>,
}

impl<K: Hash + Eq> Bursts<K> {
    pub fn new(threshold: usize, window: Duration) -> Self {
        Self { threshold: threshold.clamp(1, MAX_COUNTED), window, entries: HashMap::new(), last_prune: None }
    }

    /// Counts one event of `key` at `now`. `Some(events of the key within the window)`
    /// when they reach the threshold and the key had no alert within the window.
    pub fn note(&mut self, key: K, now: Instant) -> Option<usize> {
        let window = self.window;
        let burst = self.entries.entry(key).or_default();
        while burst.times.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
            burst.times.pop_front();
        }
        if burst.times.len() == MAX_COUNTED {
            burst.times.pop_front();
        }
        burst.times.push_back(now);
        let quiet = burst.alerted_at.is_none_or(|at| now.saturating_duration_since(at) >= window);
        let alert = (burst.times.len() >= self.threshold && quiet).then(|| {
            burst.alerted_at = Some(now);
            burst.times.len()
        });
        self.prune(now);
        alert
    }

    /// Keys tracked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets keys with no event and no alert within the window (a pass at most once
    /// per window), so the map holds only keys seen lately, however many come and go.
    fn prune(&mut self, now: Instant) {
        if self.last_prune.is_some_and(|at| now.saturating_duration_since(at) < self.window) {
            return;
        }
        self.last_prune = Some(now);
        let window = self.window;
        let recent = |t: &Instant| now.saturating_duration_since(*t) < window;
        self.entries.retain(|_, burst| burst.times.back().is_some_and(recent) || burst.alerted_at.as_ref().is_some_and(recent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn under_at_and_over_the_threshold() {
        let (mut bursts, t0) = (Bursts::new(3, 10 * MINUTE), Instant::now());
        assert_eq!(bursts.note(1u64, t0), None);
        assert_eq!(bursts.note(1, t0 + MINUTE), None, "two: just under");
        assert_eq!(bursts.note(1, t0 + 2 * MINUTE), Some(3), "the third alerts");
        assert_eq!(bursts.note(1, t0 + 3 * MINUTE), None, "a fourth within the window: no second alert");
        assert_eq!(bursts.note(1, t0 + 9 * MINUTE), None);
        // A window after the alert, with three or more in the window ending now.
        assert_eq!(bursts.note(1, t0 + 12 * MINUTE), Some(3), "3, 9 and 12 minutes");
    }

    #[test]
    fn the_window_slides() {
        let (mut bursts, t0) = (Bursts::new(3, 10 * MINUTE), Instant::now());
        assert_eq!(bursts.note(7u64, t0), None);
        assert_eq!(bursts.note(7, t0 + 5 * MINUTE), None);
        assert_eq!(bursts.note(7, t0 + 10 * MINUTE), None, "the first is a whole window old: two in the window");
        assert_eq!(bursts.note(7, t0 + 11 * MINUTE), Some(3), "5, 10 and 11 minutes");
    }

    #[test]
    fn keys_are_counted_apart() {
        let (mut bursts, t0) = (Bursts::new(2, MINUTE), Instant::now());
        assert_eq!(bursts.note(1u32, t0), None);
        assert_eq!(bursts.note(2, t0), None);
        assert_eq!(bursts.note(1, t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(bursts.note(2, t0 + Duration::from_secs(1)), Some(2));
    }

    #[test]
    fn a_flood_is_one_alert_a_window_with_its_count_and_bounded_memory() {
        let (mut bursts, t0) = (Bursts::new(10, MINUTE), Instant::now());
        let mut alerts = Vec::new();
        // 100 events a second for 150 seconds.
        for i in 0..15_000u64 {
            if let Some(count) = bursts.note(1000u32, t0 + Duration::from_millis(i * 10)) {
                alerts.push((i / 100, count));
            }
        }
        assert_eq!(alerts, [(0, 10), (60, MAX_COUNTED), (120, MAX_COUNTED)]);
        assert!(bursts.entries[&1000].times.len() <= MAX_COUNTED);
    }

    #[test]
    fn quiet_keys_are_forgotten() {
        let (mut bursts, t0) = (Bursts::new(3, MINUTE), Instant::now());
        for key in 0..10_000u32 {
            bursts.note(key, t0);
        }
        assert_eq!(bursts.len(), 10_000);
        bursts.note(1, t0 + 2 * MINUTE);
        assert_eq!(bursts.len(), 1);
    }
}
