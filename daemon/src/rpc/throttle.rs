//! Who may hold a connection to the private socket, and how often a refusal is audited.
//!
//! Any local user may connect to `/run/vigil/private`; each connection costs vigild a
//! descriptor and a task. A user gets at most `per_uid` connections, and all users
//! together `unprivileged_total`. Root (the PAM module calls as root) has a pool of its
//! own, so no flood by users can take the room a login needs. A slot is held by a
//! [`Permit`] and given back when it is dropped, that is when the connection closes.
//!
//! A refusal is audited at most once per uid per minute ([`ReportThrottle`]), with the
//! number of refusals not audited since, so a flood costs a few records, not one each.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How often a refusal is audited for one uid.
pub const REPORT_PERIOD: Duration = Duration::from_secs(60);

/// The limits, in the library: vigilctl names them when one refuses it.
pub use vigil_daemon::connection_limits::ConnectionLimits;

/// Which limit refused a connection.
pub use vigil_protocol::events::ConnectionRefusal as RefusedReason;

/// A connection refused: the caller closes it, and audits the refusal when `report` is
/// `Some(refusals for this uid not audited since the last report)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection refused: {} ({limit})", reason.as_str())]
pub struct Refused {
    pub reason: RefusedReason,
    pub limit: usize,
    pub report: Option<u64>,
}

#[derive(Debug)]
struct State {
    limits: ConnectionLimits,
    root: usize,
    unprivileged: usize,
    /// Connections per unprivileged uid; a uid leaves the map with its last one.
    per_uid: HashMap<u32, usize>,
    throttle: ReportThrottle<u32>,
}

impl State {
    fn release(&mut self, uid: u32) {
        if uid == 0 {
            self.root = self.root.saturating_sub(1);
            return;
        }
        self.unprivileged = self.unprivileged.saturating_sub(1);
        if let Some(count) = self.per_uid.get_mut(&uid) {
            *count -= 1;
            if *count == 0 {
                self.per_uid.remove(&uid);
            }
        }
    }
}

/// The private socket's admission control, shared by the accept loop and every
/// connection's [`Permit`].
#[derive(Debug, Clone)]
pub struct Admission {
    state: Arc<Mutex<State>>,
}

/// A lock that a panic elsewhere cannot turn into a panic here (a permit is given back
/// in `Drop`): the counts stay consistent, as every update is a single step.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Admission {
    pub fn new(limits: ConnectionLimits) -> Self {
        let state = State { limits, root: 0, unprivileged: 0, per_uid: HashMap::new(), throttle: ReportThrottle::new(REPORT_PERIOD) };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    /// Takes a slot for a new connection of `uid` (from SO_PEERCRED), or says which
    /// limit refused it.
    pub fn admit(&self, uid: u32, now: Instant) -> Result<Permit, Refused> {
        let mut state = lock(&self.state);
        let limits = state.limits;
        let refused = if uid == 0 {
            (state.root >= limits.root_total).then_some((RefusedReason::TotalLimit, limits.root_total))
        } else if state.per_uid.get(&uid).copied().unwrap_or(0) >= limits.per_uid {
            Some((RefusedReason::PerUidLimit, limits.per_uid))
        } else {
            (state.unprivileged >= limits.unprivileged_total).then_some((RefusedReason::TotalLimit, limits.unprivileged_total))
        };
        if let Some((reason, limit)) = refused {
            let report = state.throttle.should_report(uid, now);
            return Err(Refused { reason, limit, report });
        }
        if uid == 0 {
            state.root += 1;
        } else {
            state.unprivileged += 1;
            *state.per_uid.entry(uid).or_insert(0) += 1;
        }
        Ok(Permit { state: self.state.clone(), uid })
    }

    /// Connections held now: (root, unprivileged).
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.root, state.unprivileged)
    }

    /// Refusals never reported because their uid went quiet for a whole period (see
    /// [`ReportThrottle::take_unreported`]); for a periodic summary record.
    pub fn take_unreported(&self, now: Instant) -> u64 {
        lock(&self.state).throttle.take_unreported(now)
    }
}

/// One connection's slot; dropping it (the connection closed) gives the slot back.
#[derive(Debug)]
pub struct Permit {
    state: Arc<Mutex<State>>,
    uid: u32,
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.state).release(self.uid);
    }
}

/// Lets an event through at most once per key per period, counting the ones held back.
///
/// The first event of a key is reported (`Some(0)`); the next ones within the period
/// are counted; the first after the period is reported with that count. Keys without an
/// event for a whole period are pruned (a pass at most once per period, so the cost is
/// spread), and what they still held back is kept as a single total for
/// [`ReportThrottle::take_unreported`]: the map holds only the keys seen in about the
/// last two periods, however many keys come and go.
#[derive(Debug)]
pub struct ReportThrottle<K> {
    period: Duration,
    entries: HashMap<K, Entry>,
    last_prune: Option<Instant>,
    unreported: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    reported_at: Instant,
    last_event: Instant,
    suppressed: u64,
}

impl<K: Hash + Eq> ReportThrottle<K> {
    pub fn new(period: Duration) -> Self {
        Self { period, entries: HashMap::new(), last_prune: None, unreported: 0 }
    }

    /// `Some(events held back since the last report)` when this event of `key` is to be
    /// reported, `None` when it is only counted.
    pub fn should_report(&mut self, key: K, now: Instant) -> Option<u64> {
        let period = self.period;
        let report = match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.last_event = now;
                if now.saturating_duration_since(entry.reported_at) < period {
                    entry.suppressed += 1;
                    None
                } else {
                    entry.reported_at = now;
                    Some(std::mem::take(&mut entry.suppressed))
                }
            }
            None => {
                self.entries.insert(key, Entry { reported_at: now, last_event: now, suppressed: 0 });
                Some(0)
            }
        };
        self.prune(now);
        report
    }

    /// Events held back for keys quiet for a whole period (pruned now, without waiting
    /// for another event to prune them) or pruned before another event reported them;
    /// resets the total.
    pub fn take_unreported(&mut self, now: Instant) -> u64 {
        self.last_prune = None;
        self.prune(now);
        std::mem::take(&mut self.unreported)
    }

    /// Keys tracked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn prune(&mut self, now: Instant) {
        if self.last_prune.is_some_and(|at| now.saturating_duration_since(at) < self.period) {
            return;
        }
        self.last_prune = Some(now);
        let (period, mut unreported) = (self.period, 0);
        self.entries.retain(|_, entry| {
            let keep = now.saturating_duration_since(entry.last_event) < period;
            if !keep {
                unreported += entry.suppressed;
            }
            keep
        });
        self.unreported += unreported;
    }
}

/// At most `per_period` calls per key and period. Unprivileged users' calls that write
/// an audit record each (Inhibit, CancelInhibit, RevokeReauth) spend from it, so a user
/// looping on them cannot flood the trail. The map holds only keys whose period is
/// current (pruned once a period).
#[derive(Debug)]
pub struct CallBudget<K> {
    per_period: u32,
    period: Duration,
    /// Key → (start of its period, calls spent in it).
    entries: HashMap<K, (Instant, u32)>,
    last_prune: Option<Instant>,
}

impl<K: Hash + Eq> CallBudget<K> {
    pub fn new(per_period: u32, period: Duration) -> Self {
        Self { per_period, period, entries: HashMap::new(), last_prune: None }
    }

    /// Spends one call of `key`'s budget; false when none is left this period.
    pub fn spend(&mut self, key: K, now: Instant) -> bool {
        let period = self.period;
        let entry = self.entries.entry(key).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= period {
            *entry = (now, 0);
        }
        let allowed = entry.1 < self.per_period;
        if allowed {
            entry.1 += 1;
        }
        if self.last_prune.is_none_or(|at| now.saturating_duration_since(at) >= period) {
            self.last_prune = Some(now);
            self.entries.retain(|_, (start, _)| now.saturating_duration_since(*start) < period);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: ConnectionLimits = ConnectionLimits { per_uid: 2, unprivileged_total: 3, root_total: 4 };

    fn admit_n(admission: &Admission, uid: u32, n: usize, now: Instant) -> Vec<Permit> {
        (0..n).map(|i| admission.admit(uid, now).unwrap_or_else(|e| panic!("uid {uid} #{i}: {e}"))).collect()
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        assert_eq!(ConnectionLimits::DEFAULT, ConnectionLimits { per_uid: 16, unprivileged_total: 256, root_total: 1024 });
        assert_eq!(RefusedReason::PerUidLimit.as_str(), "per_uid_limit");
        assert_eq!(RefusedReason::TotalLimit.as_str(), "total_limit");
    }

    #[test]
    fn a_uid_gets_at_most_per_uid_connections() {
        let (admission, now) = (Admission::new(SMALL), Instant::now());
        let _held = admit_n(&admission, 1000, 2, now);
        let refused = admission.admit(1000, now).expect_err("a third");
        assert_eq!(refused, Refused { reason: RefusedReason::PerUidLimit, limit: 2, report: Some(0) });
        assert_eq!(admission.counts(), (0, 2));
        // Another user still has room.
        let _other = admission.admit(1001, now).expect("another uid");
    }

    #[test]
    fn users_share_the_unprivileged_total_and_root_has_its_own_pool() {
        let (admission, now) = (Admission::new(SMALL), Instant::now());
        let _users = [admit_n(&admission, 1000, 2, now), admit_n(&admission, 1001, 1, now)];
        let refused = admission.admit(1002, now).expect_err("over the users' total");
        assert_eq!((refused.reason, refused.limit), (RefusedReason::TotalLimit, 3));
        // Root is not held back by the users, nor by the per-uid limit.
        let _root = admit_n(&admission, 0, 4, now);
        let refused = admission.admit(0, now).expect_err("over root's pool");
        assert_eq!((refused.reason, refused.limit), (RefusedReason::TotalLimit, 4));
        assert_eq!(admission.counts(), (4, 3));
    }

    #[test]
    fn a_dropped_permit_gives_its_slot_back() {
        let (admission, now) = (Admission::new(SMALL), Instant::now());
        let mut held = admit_n(&admission, 1000, 2, now);
        let root = admission.admit(0, now).expect("root");
        assert!(admission.admit(1000, now).is_err());
        held.pop();
        assert_eq!(admission.counts(), (1, 1));
        held.push(admission.admit(1000, now).expect("the slot is free again"));
        drop(held);
        drop(root);
        assert_eq!(admission.counts(), (0, 0));
        let state = lock(&admission.state);
        assert!(state.per_uid.is_empty(), "a uid leaves the map with its last connection");
    }

    #[test]
    fn a_permit_dropped_on_another_thread_is_given_back() {
        let (admission, now) = (Admission::new(SMALL), Instant::now());
        let permit = admission.admit(1000, now).expect("admitted");
        std::thread::spawn(move || drop(permit)).join().expect("thread");
        assert_eq!(admission.counts(), (0, 0));
    }

    #[test]
    fn refusals_are_reported_once_per_uid_per_minute_with_the_count_held_back() {
        let (admission, t0) = (Admission::new(SMALL), Instant::now());
        let _held = admit_n(&admission, 1000, 2, t0);
        let report = |at: Instant| admission.admit(1000, at).expect_err("full").report;
        assert_eq!(report(t0), Some(0), "the first refusal is reported");
        for s in 1..60 {
            assert_eq!(report(t0 + Duration::from_secs(s)), None, "second {s}");
        }
        // Another uid is throttled apart.
        let _other = admit_n(&admission, 1001, 1, t0);
        assert_eq!(admission.admit(1002, t0 + Duration::from_secs(30)).expect_err("total").report, Some(0));
        assert_eq!(report(t0 + Duration::from_secs(60)), Some(59), "a minute later, with the 59 held back");
        assert_eq!(report(t0 + Duration::from_secs(61)), None);
        assert_eq!(report(t0 + Duration::from_secs(120)), Some(1));
        // uid 1000 goes quiet with one refusal held back: a later prune keeps its count.
        assert_eq!(report(t0 + Duration::from_secs(121)), None);
        assert_eq!(admission.admit(1002, t0 + Duration::from_secs(300)).expect_err("total").report, Some(0));
        assert_eq!(admission.take_unreported(t0 + Duration::from_secs(300)), 1);
    }

    #[test]
    fn the_throttle_forgets_quiet_keys_and_keeps_what_they_held_back() {
        let mut throttle = ReportThrottle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for key in 0..100_000u32 {
            assert_eq!(throttle.should_report(key, t0), Some(0));
        }
        assert_eq!(throttle.should_report(7, t0 + Duration::from_secs(1)), None);
        assert_eq!(throttle.len(), 100_000);
        // A period later, one event prunes every quiet key.
        assert_eq!(throttle.should_report(5, t0 + Duration::from_secs(61)), Some(0));
        assert_eq!(throttle.len(), 1);
        assert_eq!(throttle.take_unreported(t0 + Duration::from_secs(61)), 1, "key 7's event held back");
        assert_eq!(throttle.take_unreported(t0 + Duration::from_secs(61)), 0);
        // A key that goes quiet with events held back, and no event after it: the
        // summary itself finds it a period after its last event, not before.
        assert_eq!(throttle.should_report(9, t0 + Duration::from_secs(70)), Some(0));
        assert_eq!(throttle.should_report(9, t0 + Duration::from_secs(71)), None);
        assert_eq!(throttle.take_unreported(t0 + Duration::from_secs(130)), 0, "not quiet for a period yet");
        assert_eq!(throttle.take_unreported(t0 + Duration::from_secs(132)), 1);
        // A steady stream of new keys keeps about two periods of them, never more.
        let mut most = 0;
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_secs(100) + Duration::from_millis(i * 10);
            throttle.should_report(1_000_000 + i as u32, now);
            most = most.max(throttle.len());
        }
        assert!(most <= 2 * 6_000 + 1, "{most} keys tracked for 6,000 new keys per period");
    }

    #[test]
    fn a_call_budget_refuses_past_its_count_until_the_period_turns() {
        let t0 = Instant::now();
        let mut budget = CallBudget::new(3, Duration::from_secs(60));
        assert!((0..3).all(|_| budget.spend(1000u32, t0)));
        assert!(!budget.spend(1000, t0 + Duration::from_secs(59)), "a fourth call in the minute");
        assert!(budget.spend(1001, t0), "another user has a budget of their own");
        assert!(budget.spend(1000, t0 + Duration::from_secs(60)), "a new period");
        // Keys whose period is over are dropped: the map does not grow with users.
        for uid in 0..10_000u32 {
            budget.spend(uid, t0 + Duration::from_secs(120));
        }
        budget.spend(1, t0 + Duration::from_secs(200));
        assert!(budget.entries.len() <= 2, "{}", budget.entries.len());
    }
}
