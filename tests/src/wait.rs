//! Bounded waiting. Every wait in the harness goes through here: it polls a probe with a
//! growing interval (2 ms up to 100 ms), stops after `timeout` or after as many polls
//! as the timeout allows at the longest interval (plus a few), whichever comes first,
//! and panics with what it waited for and the last state seen.

use std::thread::sleep;
use std::time::{Duration, Instant};

const FIRST_INTERVAL: Duration = Duration::from_millis(2);
const MAX_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `probe` until it returns `Ok`, for at most `timeout`. `Err(state)` describes
/// what was seen; the last one is returned when time runs out.
pub fn try_wait_for<T>(timeout: Duration, probe: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    try_wait_for_polling(timeout, MAX_INTERVAL, probe)
}

/// Like [`try_wait_for`] with the poll interval capped at `max_interval` (for waits
/// whose end is being timed).
pub fn try_wait_for_polling<T>(
    timeout: Duration,
    max_interval: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let max_interval = max_interval.max(Duration::from_millis(1));
    let max_polls = 64 + timeout.as_micros() / max_interval.as_micros();
    let start = Instant::now();
    let mut interval = FIRST_INTERVAL;
    let mut last = String::from("(probe never ran)");
    for _ in 0..max_polls {
        match probe() {
            Ok(value) => return Ok(value),
            Err(state) => last = state,
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            break;
        }
        sleep(interval.min(timeout - elapsed));
        interval = (interval * 2).min(max_interval);
    }
    Err(last)
}

/// Like [`try_wait_for`], but panics on timeout with `what` and the last state.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, probe: impl FnMut() -> Result<T, String>) -> T {
    match try_wait_for(timeout, probe) {
        Ok(value) => value,
        Err(last) => panic!("timed out after {timeout:?} waiting for {what}; last state: {last}"),
    }
}

/// Waits until `cond` is true; panics with `what` on timeout.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || if cond() { Ok(()) } else { Err("condition still false".to_string()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_when_probe_succeeds() {
        let mut n = 0;
        let v = wait_for(Duration::from_secs(1), "n to reach 3", || {
            n += 1;
            if n >= 3 { Ok(n) } else { Err(format!("n={n}")) }
        });
        assert_eq!(v, 3);
    }

    #[test]
    fn times_out_with_last_state() {
        let start = Instant::now();
        let err = try_wait_for::<()>(Duration::from_millis(50), || Err("still 7".into()));
        assert_eq!(err.unwrap_err(), "still 7");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "waiting for the moon")]
    fn wait_until_panics_with_what() {
        wait_until(Duration::from_millis(20), "the moon", || false);
    }
}
