//! The calls of `org.vigil1.Manager` about user locks: LockUser, UnlockUser, ListLocks
//! (root only), and RecordLoginRefused (the module's word that it refused a locked
//! user). The locks themselves, on disk, are `locks/book.rs`.
//!
//! A lock, at once: its file is written (from then on the module refuses the user in
//! PAM's account stage, vigild up or not), `lock_start` is recorded, and every session
//! of the user is ended as an admin termination would end it (`session_end
//! reason=lock`).

use std::time::{Duration, Instant};

use vigil_protocol::audit::Record;
use vigil_protocol::events::{AlertKind, EndReason, Event, LOGIN_REFUSED_LOCKED, LockEndReason};
use vigil_protocol::lock::{LockInfo, MAX_LOCK_WHY_BYTES, NEVER_LOCKED_UID};
use vigil_protocol::time::rfc3339_seconds;
use vigil_protocol::{MAX_FIELD_BYTES, VigilError};

use crate::audit::records::alert_record;
use crate::rpc::caller::Caller;
use crate::sessions::by::By;
use crate::sessions::manager::{Manager, now_usec};
use crate::sessions::session::Session;

/// `login_refused` records per locked user and minute; the rest are counted in the next
/// one's `suppressed=`. A locked user's scripts may retry in a loop: the refusals must
/// not flood the trail, and the first ones of each minute are what an admin reads.
pub const REFUSED_LOGINS_PER_MINUTE: u32 = 20;

/// Longest lock: a hundred years is "until lifted" said with a date.
const MAX_LOCK_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `until=` of a lock record: the end, or `none` for a lock until lifted.
fn until_text(lock: &LockInfo) -> String {
    if lock.until_usec == 0 { "none".into() } else { rfc3339_seconds(lock.until_usec) }
}

/// A caller's text the manager takes: at most `max` bytes, no control character.
pub(crate) fn check_text(what: &str, value: &str, max: usize) -> Result<(), VigilError> {
    if value.len() > max {
        return Err(VigilError::InvalidArgument(format!("{what} is {} bytes; at most {max}", value.len())));
    }
    if value.chars().any(char::is_control) {
        return Err(VigilError::InvalidArgument(format!("{what} holds a control character")));
    }
    Ok(())
}

impl Manager {
    /// LockUser: root only. See the module comment.
    pub async fn lock_user(&self, caller: Caller, user: &str, why: &str, duration_usec: u64) -> Result<(LockInfo, u32), VigilError> {
        self.require_admin(&caller, "LockUser")?;
        check_text("the user name", user, MAX_FIELD_BYTES)?;
        check_text("why", why, MAX_LOCK_WHY_BYTES)?;
        if why.trim().is_empty() {
            return Err(VigilError::InvalidArgument("a lock needs a reason (--why): the user is shown it".into()));
        }
        // NSS through the manager's account cache (off the async thread, as logins are).
        let Some(uid) = self.accounts.get(user).await.map(|a| a.uid) else {
            return Err(VigilError::InvalidArgument(format!("no user {user:?}")));
        };
        let name = user.to_string();
        if uid == NEVER_LOCKED_UID {
            return Err(VigilError::InvalidArgument(format!("{name} has uid 0: vigil never locks out the admin")));
        }
        let now = now_usec();
        let until = match duration_usec {
            0 => 0,
            d => now.saturating_add(Duration::from_micros(d).min(MAX_LOCK_DURATION).as_micros() as u64),
        };
        let by = By::of(&caller).await;
        let lock = LockInfo { user: name, uid, by: by.name.clone(), why: why.to_string(), since_usec: now, until_usec: until };
        self.impose_lock(lock, &by)
    }

    /// Takes `lock` (replacing the user's lock, if any), records `lock_start` and ends
    /// every session of the user (`session_end reason=lock`). `by` is who asked (the
    /// admin's vigilctl, or vigild itself for `on_reauth_failures = "lock"`). Returns
    /// the lock and how many sessions were ended.
    pub(crate) fn impose_lock(&self, lock: LockInfo, by: &By) -> Result<(LockInfo, u32), VigilError> {
        let uid = lock.uid;
        let replaced = self.locks.put(lock.clone()).map_err(|e| VigilError::Failed(format!("cannot write the lock: {e}")))?;
        let ids: Vec<u64> = self.registry().values().filter(|s| s.who.uid == uid).map(|s| s.id).collect();
        self.audit.write(
            by.write(Record::new(Event::LockStart).text("user", &lock.user).number("uid", uid))
                .text("why", &lock.why)
                .text("until", until_text(&lock))
                .number("sessions", ids.len() as u64)
                .text_opt("replaced_until", replaced.as_ref().map(until_text)),
        );
        // A session whose processes cannot be seen stays registered (its
        // terminate_failed record says why); the lock holds either way.
        let ended = ids.into_iter().filter(|&id| self.terminate(id, EndReason::Lock, None).is_ok()).count();
        Ok((lock, ended as u32))
    }

    /// The second wall: a session registered or adopted for a locked user is ended at
    /// once (`session_end reason=lock`). The account stage refuses locked users, but a
    /// stack can skip it: pam_unix's `new_authtok_reqd=done` ends common-account before
    /// the lock check for a user whose password has expired, and sshd then opens a
    /// session to ask for a new one.
    pub(crate) fn end_if_locked(&self, session: &Session) {
        if self.locks.in_force(session.who.uid, now_usec()) {
            let _ = self.terminate(session.id, EndReason::Lock, None);
        }
    }

    /// UnlockUser: root only. Returns whether `user` was locked.
    pub async fn unlock_user(&self, caller: Caller, user: &str, why: &str) -> Result<bool, VigilError> {
        self.require_admin(&caller, "UnlockUser")?;
        check_text("the user name", user, MAX_FIELD_BYTES)?;
        check_text("why", why, MAX_LOCK_WHY_BYTES)?;
        // By name first: a user NSS no longer knows can still be unlocked.
        let uid = match self.locks.by_name(user) {
            Some(lock) => lock.uid,
            None => match self.accounts.get(user).await {
                Some(account) => account.uid,
                None => return Ok(false),
            },
        };
        let Some(lock) = self.locks.remove(uid).map_err(|e| VigilError::Failed(format!("cannot remove the lock: {e}")))? else {
            return Ok(false);
        };
        self.audit.write(
            By::of(&caller)
                .await
                .write(Record::new(Event::LockEnd).text("user", &lock.user).number("uid", uid).text("reason", LockEndReason::Lifted))
                .text_opt("why", (!why.is_empty()).then_some(why))
                .number("duration_s", now_usec().saturating_sub(lock.since_usec) / 1_000_000),
        );
        Ok(true)
    }

    /// ListLocks: root only.
    pub fn list_locks(&self, caller: Caller) -> Result<Vec<LockInfo>, VigilError> {
        self.require_admin(&caller, "ListLocks")?;
        Ok(self.locks.list())
    }

    /// Ends the locks whose time ran out (`lock_end reason=expired`); the expiry task
    /// calls it, and so does the start (locks that ran out while vigild was down).
    pub fn end_expired_locks(&self) {
        let now = now_usec();
        for lock in self.locks.expired(now) {
            match self.locks.remove(lock.uid) {
                Ok(_) => self.audit.write(
                    Record::new(Event::LockEnd)
                        .text("user", &lock.user)
                        .number("uid", lock.uid)
                        .text("reason", LockEndReason::Expired)
                        .text("until", until_text(&lock))
                        .number("duration_s", now.saturating_sub(lock.since_usec) / 1_000_000),
                ),
                // The module no longer refuses it (it reads the end too); the next
                // look tries the removal again.
                Err(e) => eprintln!("vigild: cannot remove the expired lock of {}: {e}", lock.user),
            }
        }
    }

    /// RecordLoginRefused: root only (the module runs in sshd, login, su, sudo, cron).
    pub fn record_login_refused(
        &self,
        caller: Caller,
        user: &str,
        pam_user: &str,
        service: &str,
        rhost: &str,
        tty: &str,
    ) -> Result<(), VigilError> {
        self.require_root(&caller, "RecordLoginRefused")?;
        for (what, value) in [("user", user), ("pam_user", pam_user), ("service", service), ("rhost", rhost), ("tty", tty)] {
            if value.len() > MAX_FIELD_BYTES {
                return Err(VigilError::InvalidArgument(format!("{what} is over {MAX_FIELD_BYTES} bytes")));
            }
        }
        let lock = self.locks.by_name(user);
        let uid = lock.as_ref().map(|l| l.uid);
        self.metrics.logins_refused.inc();
        let suppressed = {
            let mut guard = self.refused_logins.lock().unwrap_or_else(|p| p.into_inner());
            let (budget, unrecorded) = &mut *guard;
            let key = uid.unwrap_or(u32::MAX);
            if !budget.spend(key, Instant::now()) {
                *unrecorded.entry(key).or_default() += 1;
                return Ok(());
            }
            unrecorded.remove(&key).unwrap_or(0)
        };
        self.audit.write(
            Record::new(Event::LoginRefused)
                .text("reason", LOGIN_REFUSED_LOCKED)
                .text("user", user)
                .number_opt("uid", uid)
                .text_opt("pam_user", (pam_user != user).then_some(pam_user))
                .text("service", service)
                .text("rhost", rhost)
                .text("tty", tty)
                .number("pid", caller.pid)
                .text_opt("locked_by", lock.as_ref().map(|l| l.by.as_str()))
                .number_opt("suppressed", (suppressed > 0).then_some(suppressed)),
        );
        // A locked user trying again and again is one page a minute, not one per try.
        if self.should_alert_once_a_minute(uid.unwrap_or(u32::MAX), "locked_login") {
            self.audit.write(
                alert_record(AlertKind::LockedLogin, None)
                    .text("user", user)
                    .number_opt("uid", uid)
                    .text("service", service)
                    .text("rhost", rhost)
                    .text("tty", tty)
                    .number("pid", caller.pid),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Caller = Caller::new(0, 1);

    #[tokio::test]
    async fn a_reason_too_long_empty_or_with_a_control_character_is_refused_before_any_lookup() {
        let core = crate::sessions::manager::manager_for_tests();
        let long = "x".repeat(MAX_LOCK_WHY_BYTES + 1);
        for why in [long.as_str(), "", "  ", "line\nevent=forged"] {
            let refused = core.lock_user(ROOT, "root", why, 0).await;
            assert!(matches!(refused, Err(VigilError::InvalidArgument(_))), "{why:?}: {refused:?}");
        }
        let just = "x".repeat(MAX_LOCK_WHY_BYTES);
        let root = core.lock_user(ROOT, "root", &just, 0).await;
        assert!(matches!(&root, Err(VigilError::InvalidArgument(m)) if m.contains("never locks out the admin")), "{root:?}");
        assert!(core.locks.list().is_empty());
    }

    #[test]
    fn refused_logins_past_the_minutes_budget_are_counted_not_recorded() {
        let core = crate::sessions::manager::manager_for_tests();
        let extra = 5;
        for _ in 0..REFUSED_LOGINS_PER_MINUTE + extra {
            core.record_login_refused(ROOT, "alice", "alice", "sshd", "203.0.113.9", "ssh").unwrap();
        }
        let unrecorded = core.refused_logins.lock().unwrap().1.values().copied().sum::<u64>();
        assert_eq!(unrecorded, u64::from(extra));
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        assert!(matches!(core.record_login_refused(ROOT, "alice", "alice", "sshd", &long, ""), Err(VigilError::InvalidArgument(_))));
        assert!(matches!(
            core.record_login_refused(Caller::new(1000, 2), "alice", "alice", "sshd", "", ""),
            Err(VigilError::AccessDenied(_))
        ));
    }
}
