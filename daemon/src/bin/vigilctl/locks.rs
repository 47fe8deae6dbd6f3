//! `vigilctl lock`, `unlock` and `locks`: user locks (root, or a user polkit allows).

use std::time::Duration;

use vigil_protocol::LockInfo;
use vigil_protocol::time::{human, rfc3339_seconds};

use super::admin::AdminCalls;
use super::{explain, printable};

/// `lock --user NAME --why TEXT [--for DURATION]`.
pub async fn lock(admin: &AdminCalls<'_>, user: &str, why: &str, duration: Option<Duration>) -> Result<(), String> {
    let usec = match duration {
        Some(d) if d.is_zero() => return Err("--for 0 would end the lock at once; leave --for out for a lock until unlock".into()),
        Some(d) => u64::try_from(d.as_micros()).map_err(|_| "--for is too long".to_string())?,
        None => 0,
    };
    let (lock, ended): (LockInfo, u32) = admin.call("LockUser", &(user, why, usec)).await.map_err(explain)?;
    println!("{} (uid {}) is locked {}; {ended} session(s) ended", printable(&lock.user), lock.uid, until_words(&lock));
    Ok(())
}

/// `unlock --user NAME [--why TEXT]`.
pub async fn unlock(admin: &AdminCalls<'_>, user: &str, why: Option<&str>) -> Result<(), String> {
    if admin.call::<_, bool>("UnlockUser", &(user, why.unwrap_or_default())).await.map_err(explain)? {
        println!("{} is unlocked", printable(user));
        Ok(())
    } else {
        Err(format!("{} is not locked", printable(user)))
    }
}

/// `locks [--json]`.
pub async fn list(admin: &AdminCalls<'_>, json: bool) -> Result<(), String> {
    let locks: Vec<LockInfo> = admin.call("ListLocks", &()).await.map_err(explain)?;
    if json {
        let values: Vec<_> = locks
            .iter()
            .map(|l| {
                serde_json::json!({
                    "user": l.user, "uid": l.uid, "by": l.by, "why": l.why,
                    "since": l.since_usec / 1_000_000,
                    "until": (l.until_usec != 0).then_some(l.until_usec / 1_000_000),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&values).map_err(|e| e.to_string())?);
        return Ok(());
    }
    if locks.is_empty() {
        println!("no user is locked");
        return Ok(());
    }
    println!("{:<16} {:>7}  {:<22} {:<10} WHY", "USER", "UID", "UNTIL", "BY");
    for l in &locks {
        let until = if l.until_usec == 0 { "until unlock".to_string() } else { rfc3339_seconds(l.until_usec) };
        println!("{:<16} {:>7}  {:<22} {:<10} {}", printable(&l.user), l.uid, until, printable(&l.by), printable(&l.why));
    }
    Ok(())
}

fn until_words(lock: &LockInfo) -> String {
    match lock.until_usec {
        0 => "until `vigilctl unlock`".to_string(),
        until => format!(
            "for {} (until {})",
            human(Duration::from_secs(until.saturating_sub(lock.since_usec).div_ceil(1_000_000))),
            rfc3339_seconds(until)
        ),
    }
}
