//! Why an idle or age end came late. `late_ms` on `session_end` and
//! `idle_limit_reached` says how long after its deadline a session was ended; a few ms
//! is the timer's own slack, seconds or more have a cause an admin wants named:
//!
//! - `vigild_stopped`: the deadline passed before this vigild started (it was stopped,
//!   crashed, or the host was down), and the session was ended when it was taken over;
//! - `reload`: the deadline passed before a reload (which computes every deadline
//!   again: a shorter `idle_timeout` makes sessions overdue at once).
//!
//! Any other lateness (a paused VM, a stalled host, vigild behind on a storm of ends)
//! carries no cause: vigild cannot tell them apart, and says nothing rather than guess.
//! The moments are kept in the boot clock, which no clock step moves: a deadline is
//! placed on it as `now − late`, so a step of the wall clock changes nothing here.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::clock;

/// The cause of a late end, as the `late_cause` field writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateCause {
    VigildStopped,
    Reload,
}

impl LateCause {
    pub fn as_str(self) -> &'static str {
        match self {
            LateCause::VigildStopped => "vigild_stopped",
            LateCause::Reload => "reload",
        }
    }
}

/// When this vigild started and when it last reloaded its configuration, in boot-clock
/// µs.
#[derive(Debug)]
pub struct Lateness {
    started_boot_usec: u64,
    /// 0: no reload yet.
    reloaded_boot_usec: AtomicU64,
}

impl Default for Lateness {
    fn default() -> Self {
        Self { started_boot_usec: clock::boot_usec(), reloaded_boot_usec: AtomicU64::new(0) }
    }
}

impl Lateness {
    /// The configuration was reloaded now.
    pub fn reloaded(&self) {
        self.reloaded_boot_usec.store(clock::boot_usec(), Ordering::Relaxed);
    }

    /// The cause of an end `late_usec` after its deadline, decided now.
    pub fn cause(&self, late_usec: u64) -> Option<LateCause> {
        let reloaded = self.reloaded_boot_usec.load(Ordering::Relaxed);
        cause_at(clock::boot_usec(), late_usec, self.started_boot_usec, reloaded)
    }
}

/// The cause of a deadline that fell `late_usec` before `now` (all in boot-clock µs).
/// The timer's slack is no cause: a deadline within `MIN_LATE_USEC` of the moment is
/// not "before" it.
fn cause_at(now: u64, late_usec: u64, started: u64, reloaded: u64) -> Option<LateCause> {
    if late_usec < MIN_LATE_USEC {
        return None;
    }
    let deadline = now.saturating_sub(late_usec);
    if deadline < started {
        Some(LateCause::VigildStopped)
    } else if reloaded != 0 && deadline < reloaded {
        Some(LateCause::Reload)
    } else {
        None
    }
}

/// Lateness below this is the timer's slack and a check's own time, never a cause.
const MIN_LATE_USEC: u64 = 500_000;

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_deadline_before_the_start_was_passed_while_vigild_was_stopped() {
        // Started at 100 s; now 101 s; the deadline was at 40 s.
        assert_eq!(cause_at(101 * S, 61 * S, 100 * S, 0), Some(LateCause::VigildStopped));
        // Also after a later reload: the start came first.
        assert_eq!(cause_at(101 * S, 61 * S, 100 * S, 100 * S + 1), Some(LateCause::VigildStopped));
    }

    #[test]
    fn a_deadline_before_a_reload_after_the_start_is_the_reload() {
        assert_eq!(cause_at(201 * S, 5 * S, 100 * S, 200 * S), Some(LateCause::Reload));
    }

    #[test]
    fn lateness_after_both_has_no_cause_named() {
        // Deadline at 196 s, after the start (100 s) and the reload (150 s): a stall.
        assert_eq!(cause_at(201 * S, 5 * S, 100 * S, 150 * S), None);
        assert_eq!(cause_at(201 * S, 5 * S, 100 * S, 0), None);
    }

    #[test]
    fn the_timers_slack_is_never_a_cause() {
        // 3 ms late, 1 ms after a reload: the reload did not make it late.
        assert_eq!(cause_at(201 * S, 3_000, 100 * S, 201 * S - 1_000), None);
        assert_eq!(cause_at(S / 10, 3_000, S / 10, 0), None);
    }

    #[test]
    fn a_lateness_larger_than_the_boot_clock_is_before_the_start() {
        assert_eq!(cause_at(5 * S, 10 * S, S, 0), Some(LateCause::VigildStopped));
    }
}
