//! PAM's account stage: is the user locked (`vigilctl lock`)?
//!
//! The check reads vigild's lock files itself, one `open` per identity in
//! `<locks>/<uid>`, so that a lock holds while vigild is down, hung or restarting, and
//! an unlocked user costs one failed lookup. Only a lock in force refuses (PAM_PERM_DENIED,
//! with a message the user sees); anything else, a broken or foreign file and every
//! error included, is PAM_IGNORE: a bug must never lock anyone out, nor everyone.
//!
//! Who is checked: PAM_USER (the account logging in, or su's and sudo's target), the
//! real uid running the program (sudo, su and pkexec keep the caller's) and PAM_RUSER
//! (sudo and su set it to the caller): a locked user is refused sudo and su too. Never
//! the audit login uid: a daemon started by hand from an admin's shell carries it, and
//! a lock of that admin would refuse everyone that daemon serves. Never uid 0.

use std::path::Path;

use vigil_host::files::read_root_only;
use vigil_protocol::audit::Record;
use vigil_protocol::events::{Event, LOGIN_REFUSED_LOCKED};
use vigil_protocol::lock::{LockInfo, MAX_LOCK_FILE_BYTES, NEVER_LOCKED_UID};
use vigil_protocol::time::now_usec;

use crate::args::ModuleArgs;
use crate::error::ClientError;
use crate::host_log::HostLog;
use crate::pam_io::{Item, PamIo};
use crate::reauth::Invoker;

/// The module's word to vigild that it refused a locked user (vigild records it and
/// raises an alert); a fake stands in for it in unit tests.
pub trait RefusalReport {
    fn login_refused(&self, user: &str, pam_user: &str, service: &str, rhost: &str, tty: &str) -> Result<(), ClientError>;
}

/// The uids to check: PAM_USER's, PAM_RUSER's and the real uid, without duplicates
/// and without uid 0.
fn uids(pam: &dyn PamIo, who: &Invoker) -> Vec<u32> {
    let named = [Item::User, Item::RUser].into_iter().filter_map(|item| pam.item(item)).filter(|n| !n.is_empty());
    let mut uids: Vec<u32> = named.filter_map(|n| (who.uid_of)(&n)).collect();
    uids.push(who.uid);
    uids.retain(|&uid| uid != NEVER_LOCKED_UID);
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// The lock in force on one of the transaction's identities, if any. Errors are
/// reported to the debug log and count as "not locked".
pub fn lock_in_force(pam: &dyn PamIo, dir: &Path, who: &Invoker, log: &dyn HostLog) -> Option<LockInfo> {
    let now = now_usec();
    uids(pam, who).into_iter().find_map(|uid| match read_lock(dir, uid) {
        Ok(lock) => lock.filter(|l| l.in_force_at(now)),
        Err(why) => {
            log.debug(&format!("lock file of uid {uid} in {} ignored: {why}", dir.display()));
            None
        }
    })
}

/// `<dir>/<uid>`: `Ok(None)` when there is none. A file that is not a regular file of
/// root's, writable by root only, of a lock's size, that parses and names `uid`, is an
/// error (ignored by the caller).
fn read_lock(dir: &Path, uid: u32) -> Result<Option<LockInfo>, String> {
    let Some(text) = read_root_only(&dir.join(LockInfo::file_name(uid)), MAX_LOCK_FILE_BYTES as u64).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let lock = LockInfo::parse_file(&text).map_err(|e| e.to_string())?;
    if lock.uid != uid {
        return Err(format!("it names uid {}", lock.uid));
    }
    Ok(Some(lock))
}

fn item(pam: &dyn PamIo, item: Item) -> String {
    pam.item(item).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The account hook's lock check: `Some(refusal)` when the transaction must be refused.
/// The user is told why; vigild is told (or, when it does not answer, the module
/// records the refusal itself).
pub fn check(pam: &mut dyn PamIo, args: &ModuleArgs, who: &Invoker, report: &dyn RefusalReport, log: &dyn HostLog) -> Option<LockInfo> {
    let lock = lock_in_force(pam, &args.locks, who, log)?;
    pam.tell(&lock.message());
    let (pam_user, service, rhost, tty) = (item(pam, Item::User), item(pam, Item::Service), item(pam, Item::RHost), item(pam, Item::Tty));
    if let Err(error) = report.login_refused(&lock.user, &pam_user, &service, &rhost, &tty) {
        log.record(
            &Record::new(Event::LoginRefused)
                .text("reason", LOGIN_REFUSED_LOCKED)
                .text("user", &lock.user)
                .number("uid", lock.uid)
                .text_opt("pam_user", (pam_user != lock.user).then_some(pam_user.as_str()))
                .text("service", &service)
                .text("rhost", &rhost)
                .text("tty", &tty)
                .number("pid", std::process::id())
                .text("locked_by", &lock.by)
                .text("error", error.to_string()),
        );
    }
    Some(lock)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;
    use crate::test_doubles::{FakeLog, FakePam};

    struct Reports(RefCell<Vec<String>>, bool);
    impl RefusalReport for Reports {
        fn login_refused(&self, user: &str, pam_user: &str, service: &str, _: &str, _: &str) -> Result<(), ClientError> {
            self.0.borrow_mut().push(format!("{user} {pam_user} {service}"));
            if self.1 { Ok(()) } else { Err(ClientError::Unreachable("down".into())) }
        }
    }

    fn uid_of(name: &[u8]) -> Option<u32> {
        match name {
            b"alice" => Some(1001),
            b"bob" => Some(1002),
            b"root" => Some(0),
            _ => None,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-lockcheck-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn lock_file(dir: &Path, uid: u32, until_usec: u64) {
        let lock = LockInfo { user: format!("user{uid}"), uid, by: "root".into(), why: "test".into(), since_usec: 1, until_usec };
        std::fs::write(dir.join(uid.to_string()), lock.to_file()).unwrap();
        std::fs::set_permissions(dir.join(uid.to_string()), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn args(dir: &Path) -> ModuleArgs {
        ModuleArgs { locks: dir.to_path_buf(), ..ModuleArgs::default() }
    }

    #[test]
    fn pam_user_the_caller_and_ruser_are_each_checked_and_root_never() {
        let dir = scratch("who");
        lock_file(&dir, 1001, 0);
        let log = FakeLog::default();
        let as_root = Invoker { uid: 0, uid_of: &uid_of };
        let as_alice = Invoker { uid: 1001, uid_of: &uid_of };
        // alice logs in / root runs su - alice: PAM_USER.
        assert!(lock_in_force(&FakePam::with(&[("user", b"alice")]), &dir, &as_root, &log).is_some());
        // alice runs sudo (PAM_USER root), su bob: the real uid, PAM_RUSER.
        assert!(lock_in_force(&FakePam::with(&[("user", b"root")]), &dir, &as_alice, &log).is_some());
        assert!(lock_in_force(&FakePam::with(&[("user", b"bob"), ("ruser", b"alice")]), &dir, &as_root, &log).is_some());
        // bob, and root: not locked.
        assert!(lock_in_force(&FakePam::with(&[("user", b"bob")]), &dir, &as_root, &log).is_none());
        lock_file(&dir, 0, 0);
        assert!(lock_in_force(&FakePam::with(&[("user", b"root")]), &dir, &as_root, &log).is_none(), "uid 0 is never locked");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_expired_lock_a_broken_file_and_a_missing_dir_refuse_nobody() {
        let dir = scratch("broken");
        let (log, root) = (FakeLog::default(), Invoker { uid: 0, uid_of: &uid_of });
        let alice = FakePam::with(&[("user", b"alice")]);
        lock_file(&dir, 1001, 5);
        assert!(lock_in_force(&alice, &dir, &root, &log).is_none(), "expired");
        std::fs::write(dir.join("1001"), "event=garbage\n").unwrap();
        assert!(lock_in_force(&alice, &dir, &root, &log).is_none(), "garbage");
        lock_file(&dir, 1002, 0);
        std::fs::rename(dir.join("1002"), dir.join("1001")).unwrap();
        assert!(lock_in_force(&alice, &dir, &root, &log).is_none(), "another uid's file");
        lock_file(&dir, 1001, 0);
        std::fs::set_permissions(dir.join("1001"), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(lock_in_force(&alice, &dir, &root, &log).is_none(), "writable by others: not vigild's");
        std::fs::remove_file(dir.join("1001")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("1001")).unwrap();
        assert!(lock_in_force(&alice, &dir, &root, &log).is_none(), "a symlink");
        assert!(lock_in_force(&alice, &dir.join("missing"), &root, &log).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refusal_tells_the_user_and_vigild_or_else_records_it_itself() {
        let dir = scratch("refusal");
        lock_file(&dir, 1001, 0);
        let root = Invoker { uid: 0, uid_of: &uid_of };
        let mut pam = FakePam::with(&[("user", b"alice"), ("service", b"sshd")]);
        let (log, up) = (FakeLog::default(), Reports(RefCell::default(), true));
        assert!(check(&mut pam, &args(&dir), &root, &up, &log).is_some());
        assert_eq!(*up.0.borrow(), ["user1001 alice sshd"]);
        assert!(log.0.borrow().is_empty());
        assert_eq!(pam.told.len(), 1);
        assert!(pam.told[0].contains("is locked by root until an admin lifts it: test"), "{:?}", pam.told);
        let down = Reports(RefCell::default(), false);
        assert!(check(&mut pam, &args(&dir), &root, &down, &log).is_some());
        let lines = log.0.borrow();
        assert!(lines[0].starts_with("event=login_refused reason=locked user=user1001 uid=1001 pam_user=alice service=sshd"), "{lines:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
