//! Alerts: what vigild sees as it happens that an admin should look at now, written as
//! `alert` records at syslog severity warning, so that an rsyslog filter or a SIEM pages
//! on them without parsing (AUDIT.md, "Alerts"). The thresholds are here; the counting
//! is `bursts::Bursts`. Another alert is written with `records::alert_record`.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vigil_config::OnReauthFailures;
use vigil_protocol::audit::Record;
use vigil_protocol::events::{AlertKind, Event};
use vigil_protocol::lock::{LockInfo, NEVER_LOCKED_UID};

use crate::audit::records::{EndReason, alert_record, session_record};
use crate::rpc::caller::Caller;
use crate::sessions::bursts::Bursts;
use crate::sessions::by::By;
use crate::sessions::manager::{Manager, now_usec};
use crate::sessions::session::Session;

/// Failed re-authentications in one session that make an alert, within
/// [`REAUTH_FAILURES_WINDOW`]: sudo's `passwd_tries` and pam_faillock's `deny` are both 3
/// by default, so this is one sudo that ran out of tries, or several failing in a row.
/// Someone who mistypes once or twice and then gets it right is not paged. The same rule
/// as `audit report`'s unusual section, so the live alert and the report agree.
pub const REAUTH_FAILURES_ALERT: usize = 3;
/// Ten minutes: long enough to hold a person's retries (each wrong password costs sudo's
/// 2 s delay and a retype), short enough that three typos over a working day are not a
/// burst.
pub const REAUTH_FAILURES_WINDOW: Duration = Duration::from_secs(600);
/// Refused calls (`call_refused`, any reason) from one uid that make an alert, within
/// [`REFUSED_CALLS_WINDOW`]. A person meets a refusal once or twice (a verb that is
/// root's); ten a minute is a script probing vigild or looping on a call it may not
/// make. The `call_refused` records themselves are written once per user and method a
/// minute, so the alert's `count` also says how many there really were.
pub const REFUSED_CALLS_ALERT: usize = 10;
pub const REFUSED_CALLS_WINDOW: Duration = Duration::from_secs(60);
/// How long `on_reauth_failures = "lock"` locks the user: pam_faillock's `unlock_time`
/// default (600 s), long enough to stop a guessing script, short enough that a person
/// who mistyped waits rather than calls an admin.
pub const REAUTH_FAILURES_LOCK: Duration = Duration::from_secs(600);

/// The bursts vigild counts, each under its own lock (never held across I/O).
#[derive(Debug)]
pub struct Alerts {
    /// Failed re-authentications per session id.
    reauth_failures: Mutex<Bursts<u64>>,
    /// Refused calls per caller uid.
    refused_calls: Mutex<Bursts<u32>>,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            reauth_failures: Mutex::new(Bursts::new(REAUTH_FAILURES_ALERT, REAUTH_FAILURES_WINDOW)),
            refused_calls: Mutex::new(Bursts::new(REFUSED_CALLS_ALERT, REFUSED_CALLS_WINDOW)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Manager {
    /// Counts a failed re-authentication in `session` (after its `reauth_failed`
    /// record). At the threshold: an `alert kind=reauth_failures`, and with
    /// `on_reauth_failures = "end"` the session is ended (never an exempt one).
    pub(crate) fn count_reauth_failure(&self, session: &Session, service: &str, tty: &str, pid: u32) {
        let Some(failures) = lock(&self.alerts.reauth_failures).note(session.id, Instant::now()) else { return };
        self.audit.write(
            alert_record(AlertKind::ReauthFailures, Some(session))
                .number("failures", failures as u64)
                .number("window_s", REAUTH_FAILURES_WINDOW.as_secs())
                .text("reauth_service", service)
                .text("reauth_tty", tty)
                .number("pid", pid),
        );
        if session.policy.exempt {
            return;
        }
        match session.policy.on_reauth_failures {
            OnReauthFailures::Off => {}
            OnReauthFailures::End => self.end_now(session, EndReason::ReauthFailures),
            OnReauthFailures::Lock if session.who.uid == NEVER_LOCKED_UID => {}
            OnReauthFailures::Lock => {
                let now = now_usec();
                let lock = LockInfo {
                    user: session.who.user.clone(),
                    uid: session.who.uid,
                    by: "vigild".into(),
                    why: format!("{failures} failed re-authentications in session {} (on_reauth_failures)", session.id),
                    since_usec: now,
                    until_usec: now + REAUTH_FAILURES_LOCK.as_micros() as u64,
                };
                // A lock that cannot be written is recorded by the call (no lock_start):
                // the alert above stands either way.
                let _ = self.impose_lock(lock, &By::vigild());
            }
        }
    }

    /// Counts a refused call of `caller` (after its `call_refused` record, or in its
    /// place when that one is held back). At the threshold: an `alert kind=refused_calls`.
    pub(crate) fn count_refused_call(&self, caller: &Caller, method: &'static str) {
        let Some(count) = lock(&self.alerts.refused_calls).note(caller.uid, Instant::now()) else { return };
        self.audit.write(
            alert_record(AlertKind::RefusedCalls, None)
                .number("uid", caller.uid)
                .number("pid", caller.pid)
                .text("method", method)
                .number("count", count as u64)
                .number("window_s", REFUSED_CALLS_WINDOW.as_secs()),
        );
    }

    /// Writes an `activity_suspect` record about `session` with `fields`, and an
    /// `alert kind=activity_suspect` with the same fields. Callers throttle it (each
    /// reason at most once a minute per session).
    pub(crate) fn activity_suspect(&self, session: &Session, fields: impl Fn(Record) -> Record) {
        self.audit.write(fields(session_record(Event::ActivitySuspect, session)));
        self.audit.write(fields(alert_record(AlertKind::ActivitySuspect, Some(session))));
    }

    /// Ends a session now, as an admin's TerminateSession does (SIGHUP, SIGKILL after
    /// kill_grace, logind's TerminateSession), for `reason`. A session whose processes
    /// cannot be seen or held is kept, recorded `terminate_failed by=REASON`.
    pub(crate) fn end_now(&self, session: &Session, reason: EndReason) {
        let _ = self.terminate(session.id, reason, None);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::path::PathBuf;
    use std::sync::Arc;

    use vigil_config::{AuditSettings, Config, ResolvedPolicy};
    use vigil_protocol::events::CallRefusal;

    use super::*;
    use crate::audit::audit_log::AuditLog;
    use crate::sessions::ids::IdAllocator;
    use crate::sessions::registry::tests::identity;
    use crate::sessions::session::Identity;
    use crate::sessions::store::SessionStore;
    use crate::sys::procfs::NO_AUDIT_SESSION;

    /// `<PRI>` of authpriv (10) at warning (4), and at notice (5).
    const AUTHPRIV_WARNING: &str = "<84>";
    const AUTHPRIV_NOTICE: &str = "<85>";

    /// A manager whose audit log goes to a real syslog socket the test reads.
    struct Fixture {
        manager: Arc<Manager>,
        syslog: UnixDatagram,
        dir: PathBuf,
    }

    impl Fixture {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("vigil-alerts-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let syslog = UnixDatagram::bind(dir.join("log")).unwrap();
            let settings = AuditSettings { chain: false, ..AuditSettings::default() };
            let (log, _) = AuditLog::open(dir.join("log"), None, &settings, false).unwrap();
            let manager = Arc::new(Manager::new(
                Config::builtin(),
                PathBuf::from("/nonexistent.toml"),
                Arc::new(log),
                IdAllocator::open(None),
                SessionStore::none(),
                crate::locks::book::LockBook::in_memory(),
            ));
            Self { manager, syslog, dir }
        }

        /// The datagrams syslog received within `wait` after the last one.
        fn received(&self, wait: Duration) -> Vec<String> {
            self.syslog.set_read_timeout(Some(wait)).unwrap();
            let mut out = Vec::new();
            let mut buffer = vec![0u8; 65536];
            while let Ok(n) = self.syslog.recv(&mut buffer) {
                out.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
            out
        }

        fn session(&self, id: u64, leader_pid: u32, policy: ResolvedPolicy) -> Session {
            let who = Identity { rport: None, leader_start: 0, ..identity(leader_pid, NO_AUDIT_SESSION) };
            let session = Session::new(id, who, Arc::new(policy), 1);
            self.manager.registry().insert(session.clone());
            session
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.manager.audit.close();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const SHORT: Duration = Duration::from_millis(300);

    #[test]
    fn the_thresholds_are_the_documented_ones() {
        const AUDIT_MD: &str = include_str!("../../../AUDIT.md");
        assert_eq!((REAUTH_FAILURES_ALERT, REAUTH_FAILURES_WINDOW.as_secs()), (3, 600));
        assert_eq!((REFUSED_CALLS_ALERT, REFUSED_CALLS_WINDOW.as_secs()), (10, 60));
        assert!(AUDIT_MD.contains("**3** or more `reauth_failed` in one session within **10 minutes**"));
        assert!(AUDIT_MD.contains("**10** or more refused calls (`call_refused`) from one uid within **a minute**"));
    }

    #[test]
    fn the_third_failed_reauthentication_is_one_alert_at_warning() {
        let f = Fixture::new("reauth");
        let session = f.session(41, std::process::id(), crate::sessions::manager::policy_for_tests());
        for _ in 0..REAUTH_FAILURES_ALERT - 1 {
            f.manager.count_reauth_failure(&session, "sudo", "pts/3", 77);
        }
        assert_eq!(f.received(SHORT), Vec::<String>::new(), "two failures: no alert");
        f.manager.count_reauth_failure(&session, "sudo", "pts/3", 77);
        let got = f.received(SHORT);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with(AUTHPRIV_WARNING), "{}", got[0]);
        assert!(got[0].contains("]: event=alert kind=reauth_failures session=41 "), "{}", got[0]);
        assert!(got[0].contains(" failures=3 window_s=600 reauth_service=sudo reauth_tty=pts/3 pid=77"), "{}", got[0]);
        f.manager.count_reauth_failure(&session, "sudo", "pts/3", 77);
        assert_eq!(f.received(SHORT), Vec::<String>::new(), "a fourth within the window: no second alert");
        assert!(f.manager.session(41).is_some(), "on_reauth_failures is off by default: the session stays");
    }

    #[test]
    fn on_reauth_failures_end_ends_the_session_and_never_an_exempt_one() {
        let f = Fixture::new("end");
        let mut leader = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let mut policy = crate::sessions::manager::policy_for_tests();
        policy.on_reauth_failures = OnReauthFailures::End;
        let exempt = f.session(8, leader.id(), ResolvedPolicy { exempt: true, ..policy.clone() });
        for _ in 0..REAUTH_FAILURES_ALERT {
            f.manager.count_reauth_failure(&exempt, "sudo", "pts/3", 77);
        }
        assert!(f.manager.session(8).is_some(), "an exempt session is never ended");
        f.manager.registry().remove(8);
        let session = f.session(9, leader.id(), policy);
        for _ in 0..REAUTH_FAILURES_ALERT {
            f.manager.count_reauth_failure(&session, "sudo", "pts/3", 77);
        }
        assert!(f.manager.session(9).is_none(), "ended");
        let got = f.received(SHORT);
        let ended: Vec<&String> = got.iter().filter(|l| l.contains("event=session_end")).collect();
        assert_eq!(ended.len(), 1, "{got:?}");
        assert!(ended[0].starts_with(AUTHPRIV_NOTICE) && ended[0].contains(" session=9 "), "{}", ended[0]);
        assert!(ended[0].contains(" reason=reauth_failures duration_s=") && ended[0].contains(" processes=1"), "{}", ended[0]);
        let _ = leader.kill();
        let _ = leader.wait();
    }

    #[test]
    fn on_reauth_failures_lock_locks_the_user_for_ten_minutes_and_ends_the_session() {
        let f = Fixture::new("lock");
        let mut leader = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let mut policy = crate::sessions::manager::policy_for_tests();
        policy.on_reauth_failures = OnReauthFailures::Lock;
        let session = f.session(9, leader.id(), policy);
        let before = now_usec();
        for _ in 0..REAUTH_FAILURES_ALERT {
            f.manager.count_reauth_failure(&session, "sudo", "pts/3", 77);
        }
        assert!(f.manager.session(9).is_none(), "the lock ended the session");
        let locks = f.manager.locks.list();
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert_eq!((locks[0].uid, locks[0].by.as_str()), (session.who.uid, "vigild"));
        let length = locks[0].until_usec - locks[0].since_usec;
        assert_eq!(length, REAUTH_FAILURES_LOCK.as_micros() as u64);
        assert!(locks[0].since_usec >= before);
        let got = f.received(SHORT);
        assert!(got.iter().any(|l| l.contains("event=lock_start") && l.contains(" by=vigild ")), "{got:?}");
        assert!(got.iter().any(|l| l.contains("event=session_end") && l.contains(" reason=lock ")), "{got:?}");
        let _ = leader.kill();
        let _ = leader.wait();
    }

    #[test]
    fn the_tenth_refused_call_of_a_uid_in_a_minute_is_one_alert_at_warning() {
        let f = Fixture::new("refused");
        let user = Caller::new(1000, 4242);
        for _ in 0..REFUSED_CALLS_ALERT - 1 {
            f.manager.refuse(&user, "Reload", CallRefusal::RootOnly);
        }
        let got = f.received(SHORT);
        assert_eq!(got.len(), 1, "one call_refused record a minute per user and method: {got:?}");
        assert!(got[0].starts_with(AUTHPRIV_NOTICE) && got[0].contains("event=call_refused"), "{}", got[0]);
        // Another user's refusals are counted apart.
        f.manager.refuse(&Caller::new(1001, 1), "Reload", CallRefusal::RootOnly);
        f.manager.refuse(&user, "Reload", CallRefusal::RootOnly);
        let got = f.received(SHORT);
        let alerts: Vec<&String> = got.iter().filter(|l| l.contains("event=alert")).collect();
        assert_eq!(alerts.len(), 1, "{got:?}");
        assert!(alerts[0].starts_with(AUTHPRIV_WARNING), "{}", alerts[0]);
        assert!(
            alerts[0].contains("]: event=alert kind=refused_calls uid=1000 pid=4242 method=Reload count=10 window_s=60"),
            "{}",
            alerts[0]
        );
        f.manager.refuse(&user, "Reload", CallRefusal::RootOnly);
        assert_eq!(f.received(SHORT), Vec::<String>::new(), "an eleventh: no second alert within the minute");
    }

    #[test]
    fn every_activity_suspect_record_comes_with_an_alert_at_warning() {
        let f = Fixture::new("suspect");
        let session = f.session(5, std::process::id(), crate::sessions::manager::policy_for_tests());
        f.manager.activity_suspect(&session, |r| r.text("source", "atime").text("suspect_tty", "pts/9").text("reason", "future"));
        let got = f.received(SHORT);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with(AUTHPRIV_NOTICE) && got[0].contains("]: event=activity_suspect session=5 "), "{}", got[0]);
        assert!(got[1].starts_with(AUTHPRIV_WARNING) && got[1].contains("]: event=alert kind=activity_suspect session=5 "), "{}", got[1]);
        assert!(got[1].ends_with(" source=atime suspect_tty=pts/9 reason=future"), "{}", got[1]);
    }
}
