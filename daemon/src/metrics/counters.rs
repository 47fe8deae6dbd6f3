//! Counters since vigild started, bumped where each event happens (atomics: no lock,
//! never held across I/O). Each counts the records of its event, so that a dashboard's
//! figure and `vigilctl audit report` over the same stretch of trail agree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use vigil_protocol::events::EndReason;

/// One monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Counters {
    /// When vigild started (`vigil_daemon_start_time_seconds`).
    pub started: SystemTime,
    /// `session_open`: logins the module registered.
    pub logins: Counter,
    /// `session_adopted`: logins vigild found unregistered and took in.
    pub adopted: Counter,
    /// `session_end` / `session_close`, by `reason=` (in `EndReason::ALL`'s order).
    ends: [Counter; EndReason::ALL.len()],
    /// `reauth_required`: CheckReauth answered "ask the password".
    pub reauth_asked: Counter,
    /// `reauth_granted`: a fresh proof let the command through without a password.
    pub reauth_granted: Counter,
    /// `reauth_recorded`: a password typed and accepted.
    pub reauth_recorded: Counter,
    /// `reauth_failed`: a wrong password.
    pub reauth_failed: Counter,
    /// Every call refused by `Manager::refuse` (`call_refused`, including the ones the
    /// once-a-minute throttle leaves out of the trail and counts in `suppressed=`).
    pub refused_calls: Counter,
    /// Every login of a locked user the module refused (`login_refused`, including the
    /// ones past the per-minute bound counted in `refusals_unreported`).
    pub logins_refused: Counter,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            started: SystemTime::now(),
            logins: Counter::default(),
            adopted: Counter::default(),
            ends: Default::default(),
            reauth_asked: Counter::default(),
            reauth_granted: Counter::default(),
            reauth_recorded: Counter::default(),
            reauth_failed: Counter::default(),
            refused_calls: Counter::default(),
            logins_refused: Counter::default(),
        }
    }
}

impl Counters {
    fn end_slot(reason: EndReason) -> usize {
        EndReason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
    }

    /// A registration ended for `reason`.
    pub fn ended(&self, reason: EndReason) {
        self.ends[Self::end_slot(reason)].inc();
    }

    pub fn ends(&self, reason: EndReason) -> u64 {
        self.ends[Self::end_slot(reason)].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_reason_counts_on_its_own() {
        let counters = Counters::default();
        for (n, reason) in EndReason::ALL.iter().enumerate() {
            for _ in 0..=n {
                counters.ended(*reason);
            }
        }
        for (n, reason) in EndReason::ALL.iter().enumerate() {
            assert_eq!(counters.ends(*reason), n as u64 + 1, "{reason}");
        }
        counters.logins.inc();
        counters.logins.inc();
        assert_eq!((counters.logins.get(), counters.adopted.get()), (2, 0));
    }
}
