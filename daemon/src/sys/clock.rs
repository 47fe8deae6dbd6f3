//! Steps of the system clock. vigild's times are wall-clock (µs since the epoch, the
//! clock tty atimes are written in), so a step (`date -s`, an NTP step, a restored VM)
//! would move every session's idle time by its length: a step forward would warn and
//! end every session at once, a step back would keep sessions and proofs of identity
//! alive for the step's length. The real time that passed is the boot clock's
//! (CLOCK_BOOTTIME: never set, counts suspend), so vigild keeps the offset between the
//! two and, when it changes, moves every stored time by the change: a session's idle
//! time, age, warning, inhibitor and proofs are what they were in real time.
//!
//! The kernel says when the clock is set: a CLOCK_REALTIME timerfd armed with
//! `TFD_TIMER_CANCEL_ON_SET` (as systemd's sd-event watches for clock changes). The
//! offset itself is kept in each session and its file, so that a step while vigild was
//! stopped is applied when it takes the sessions over.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::{ClockId as TimeClock, clock_gettime};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Offset changes smaller than this are not steps: the two clocks are read one after
/// the other, and the idle supervisor's own slack is larger (`TIME_SLACK_USEC`).
pub const MIN_STEP_USEC: i64 = 1_000_000;

/// The timerfd's alarm: never reached (2200-01-01), it only carries the cancel flag.
const NEVER_SECS: i64 = 7_258_118_400;

/// Wall clock minus boot clock, in µs: constant while nobody sets the clock.
pub fn offset_usec() -> i64 {
    let usec = |clock| clock_gettime(clock).map(|t: TimeSpec| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000).unwrap_or(0);
    usec(TimeClock::CLOCK_REALTIME) - usec(TimeClock::CLOCK_BOOTTIME)
}

/// The boot clock (CLOCK_BOOTTIME) in µs: real time since boot, never set, counting
/// suspend; the clock vigild's own moments (its start, its last reload) are kept in.
pub fn boot_usec() -> u64 {
    clock_gettime(TimeClock::CLOCK_BOOTTIME).map_or(0, |t: TimeSpec| (t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000).max(0) as u64)
}

/// A stored time moved by a clock step; 0 (no time) stays 0.
pub fn shift(time: u64, delta: i64) -> u64 {
    if time == 0 { 0 } else { time.saturating_add_signed(delta).max(1) }
}

/// The timerfd, for tokio's registration (nix's `TimerFd` lends only `AsFd`).
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Waits for the kernel's word that the wall clock was set.
pub struct StepWatch {
    timer: AsyncFd<Timer>,
}

impl StepWatch {
    pub fn new() -> io::Result<Self> {
        let timer = TimerFd::new(ClockId::CLOCK_REALTIME, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
        // SAFETY: the AsyncFd owns the timer, so the registration ends before it closes.
        let timer = unsafe { AsyncFd::register_with_interest(Timer(timer), Interest::READABLE)? };
        let watch = Self { timer };
        watch.arm()?;
        Ok(watch)
    }

    fn arm(&self) -> io::Result<()> {
        let flags = TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET;
        Ok(self.timer.get_ref().0.set(Expiration::OneShot(TimeSpec::new(NEVER_SECS, 0)), flags)?)
    }

    /// Returns once the clock was set (the timer is armed again).
    pub async fn next_set(&mut self) -> io::Result<()> {
        loop {
            let mut ready = self.timer.readable().await?;
            let mut expirations = [0u8; 8];
            match nix::unistd::read(self.timer.get_ref().0.as_fd(), &mut expirations) {
                Err(Errno::ECANCELED) => {
                    ready.clear_ready();
                    self.arm()?;
                    return Ok(());
                }
                Err(Errno::EAGAIN) => ready.clear_ready(),
                // The alarm itself (the year 2200): arm it again.
                Ok(_) => {
                    ready.clear_ready();
                    self.arm()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_keeps_no_time_as_no_time() {
        assert_eq!(shift(0, 3_600_000_000), 0);
        assert_eq!(shift(0, -3_600_000_000), 0);
        assert_eq!(shift(5_000_000, 3_000_000), 8_000_000);
        assert_eq!(shift(5_000_000, -3_000_000), 2_000_000);
        // Never before the epoch, and never 0 (which would mean "no time").
        assert_eq!(shift(5_000_000, -9_000_000), 1);
    }

    #[test]
    fn the_offset_holds_still_while_nobody_sets_the_clock() {
        let (a, b) = (offset_usec(), offset_usec());
        assert!(a > 0, "the wall clock is past the boot clock: {a}");
        assert!((a - b).abs() < MIN_STEP_USEC, "{a} then {b}");
    }
}
