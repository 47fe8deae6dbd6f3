//! Steps of the machine's real wall clock, for the tests of vigild's clock-step handling
//! (`daemon/src/sys/clock.rs`). The clock is the whole machine's: every step is undone when
//! the guard drops, on a panic too, and tests step by minutes, not hours, so that a
//! test killed in between leaves the machine little off. Only the wall clock moves;
//! every wait in the harness is on the monotonic clock.

use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime, clock_settime};

/// Steps the wall clock and undoes the net step on drop.
#[derive(Debug, Default)]
pub struct ClockSteps {
    /// The sum of the steps taken, in µs (negative: set back).
    net_usec: i64,
}

impl ClockSteps {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the wall clock `by` ahead.
    #[track_caller]
    pub fn forward(&mut self, by: Duration) {
        self.step(by.as_micros() as i64);
    }

    /// Sets the wall clock `by` back.
    #[track_caller]
    pub fn back(&mut self, by: Duration) {
        self.step(-(by.as_micros() as i64));
    }

    #[track_caller]
    fn step(&mut self, usec: i64) {
        set_by(usec).unwrap_or_else(|e| panic!("cannot set the clock by {usec} µs: {e}"));
        self.net_usec += usec;
    }
}

impl Drop for ClockSteps {
    fn drop(&mut self) {
        if self.net_usec != 0 && set_by(-self.net_usec).is_err() {
            eprintln!("vigil-e2e: could not undo a clock step of {} µs: the wall clock is off by that much", self.net_usec);
        }
    }
}

/// One `clock_settime`, the current time plus `usec` (the microseconds between the read
/// and the set are the only error).
fn set_by(usec: i64) -> nix::Result<()> {
    let now = clock_gettime(ClockId::CLOCK_REALTIME)?;
    let delta = TimeSpec::from_duration(Duration::from_micros(usec.unsigned_abs()));
    clock_settime(ClockId::CLOCK_REALTIME, if usec >= 0 { now + delta } else { now - delta })
}
