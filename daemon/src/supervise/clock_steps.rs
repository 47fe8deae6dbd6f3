//! Following steps of the system clock: a task that waits for the kernel's word that the
//! wall clock was set (`sys/clock.rs`) and has the manager move every session's times.

use std::sync::Arc;

use crate::sessions::manager::Manager;
use crate::sys::clock::StepWatch;

/// Watches for clock steps for as long as vigild runs; each one moves the sessions'
/// times (`Manager::clock_changed`). Without a timerfd vigild runs on, and a step moves idle times by its length.
pub fn spawn(core: Arc<Manager>) {
    let mut watch = match StepWatch::new() {
        Ok(watch) => watch,
        Err(e) => {
            eprintln!("vigild: cannot watch for clock steps ({e}); a step of the system clock moves idle times by its length");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            if let Err(e) = watch.next_set().await {
                eprintln!("vigild: the clock-step watch failed ({e}); a step of the system clock moves idle times by its length");
                return;
            }
            let _ = core.clock_changed();
        }
    });
}
