//! `vigilctl inhibit`: a time-boxed idle inhibitor on the caller's own session, and
//! how `status` shows it.

use std::time::Duration;

use vigil_protocol::time::{human, rfc3339_seconds};
use vigil_protocol::{InhibitorInfo, ManagerProxy};

use super::{explain, now_usec, printable};

/// `inhibit --for D --why TEXT`, `inhibit --cancel [--session ID]`.
pub async fn run(
    manager: &ManagerProxy<'_>,
    duration: Option<Duration>,
    why: Option<&str>,
    cancel: bool,
    session: Option<u64>,
) -> Result<(), String> {
    if cancel {
        let had = manager.cancel_inhibit(session.unwrap_or(0)).await.map_err(explain)?;
        println!("{}", if had { "idle inhibitor cancelled: idleness counts again" } else { "no idle inhibitor to cancel" });
        return Ok(());
    }
    let (Some(duration), Some(why)) = (duration, why) else {
        return Err("say for how long and why: vigilctl inhibit --for 2h --why \"db migration\" (or --cancel)".into());
    };
    let usec = u64::try_from(duration.as_micros()).map_err(|_| "duration too long".to_string())?;
    let until = manager.inhibit(usec, why).await.map_err(explain)?;
    println!(
        "this session will not be ended for idleness for {} (until {}); vigilctl inhibit --cancel ends it sooner",
        words(until),
        clock(until)
    );
    Ok(())
}

/// The caller's session's inhibitor, if the daemon has one (an older vigild has no
/// ListInhibitors: none).
pub async fn of_session(manager: &ManagerProxy<'_>, id: u64) -> Option<InhibitorInfo> {
    manager.list_inhibitors().await.ok()?.into_iter().find(|i| i.session == id)
}

/// One line for `status`.
pub fn describe(i: &InhibitorInfo) -> String {
    format!("for {} more (until {}): \"{}\"", words(i.until_usec), clock(i.until_usec), printable(&i.why))
}

fn words(until: u64) -> String {
    human(Duration::from_secs(until.saturating_sub(now_usec()).div_ceil(1_000_000)))
}

fn clock(usec: u64) -> String {
    rfc3339_seconds(usec)
}
