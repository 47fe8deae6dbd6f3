//! Ends each lock when its `--for` runs out: sleeps until the nearest end (or a new
//! lock), then lets the manager end what ran out. The ends are wall-clock times (a
//! lock "until 18:00" means 18:00 after a clock step too), so the sleep is never
//! longer than `MAX_SLEEP`: a stepped clock is noticed within it.

use std::sync::Arc;
use std::time::Duration;

use crate::sessions::manager::{Manager, now_usec};

/// Longest sleep between two looks at the clock.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub fn spawn(core: Arc<Manager>) {
    tokio::spawn(async move {
        loop {
            core.end_expired_locks();
            let sleep = match core.locks.next_end() {
                // A millisecond past the end, so that the end has passed when it wakes.
                Some(end) => (Duration::from_micros(end.saturating_sub(now_usec())) + Duration::from_millis(1)).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = core.locks.changed.notified() => {}
            }
        }
    });
}
