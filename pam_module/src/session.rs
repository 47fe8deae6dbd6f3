//! What open_session and close_session do: plain Rust over the `PamIo`, `Daemon` and
//! `HostLog` doors, so that unit tests drive it with fakes.

use vigil_protocol::audit::Record;

use crate::args::{FailMode, ModuleArgs};
use crate::client::{ClientError, Daemon, OpenRequest};
use crate::host_log::HostLog;
use crate::pam_io::{Item, PamIo};

/// What a hook tells libpam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    SessionError,
    Ignore,
    AuthError,
}

/// The environment variable that carries the vigil session id into the session.
pub const SESSION_ENV: &str = "VIGIL_SESSION_ID";

/// The kernel's "no audit session" value in /proc/PID/sessionid.
pub const NO_AUDIT_SESSION: u32 = u32::MAX;

/// This process's kernel audit session id, `u32::MAX` when unset or unreadable.
pub fn own_audit_session_id() -> u32 {
    std::fs::read_to_string("/proc/self/sessionid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NO_AUDIT_SESSION)
}

fn text(pam: &dyn PamIo, item: Item) -> String {
    // D-Bus strings are UTF-8; a non-UTF-8 byte becomes U+FFFD on the wire. vigild's
    // audit writer escapes whatever arrives.
    pam.item(item).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// pam_sm_open_session.
pub fn open(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, args: &ModuleArgs, pid: u32, ses: u32) -> Verdict {
    report_unknown_args(log, args);
    let request = OpenRequest {
        user: text(pam, Item::User),
        service: text(pam, Item::Service),
        tty: text(pam, Item::Tty),
        rhost: text(pam, Item::RHost),
        ruser: text(pam, Item::RUser),
        leader_pid: pid,
        audit_session_id: ses,
        truncated: Vec::new(),
    };
    if request.user.is_empty() {
        // No user means a broken stack; vigild would refuse it anyway.
        return unreachable_verdict(log, args, &request, "open_session", &ClientError::Refused("PAM_USER is not set".into()));
    }
    match daemon.open_session(&request) {
        Ok(id) => {
            // Both are best effort: the session is registered either way, and vigild
            // notices the end of the leader if close_session cannot find the id.
            if !pam.store_session_id(id) {
                log.debug("pam_set_data failed; close_session will not know the session id");
            }
            if !pam.put_env(SESSION_ENV, &id.to_string()) {
                log.debug("pam_putenv VIGIL_SESSION_ID failed");
            }
            log.debug(&format!("registered session {id}"));
            Verdict::Success
        }
        Err(error) => unreachable_verdict(log, args, &request, "open_session", &error),
    }
}

/// pam_sm_close_session. Never fails the logout: a session vigild does not close here,
/// it closes itself when the leader process ends.
pub fn close(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, args: &ModuleArgs) -> Verdict {
    report_unknown_args(log, args);
    let Some(id) = pam.session_id() else {
        log.debug("close_session: no vigil session on this handle");
        return Verdict::Success;
    };
    match daemon.close_session(id) {
        Ok(()) => {}
        // vigild ended it already (idle, admin, max age): nothing is wrong.
        Err(ClientError::NoSuchSession) => log.debug(&format!("close_session: vigild had already ended session {id}")),
        Err(error) => log.record(
            &Record::new("daemon_unreachable")
                .text("call", "close_session")
                .number("session", id)
                .text("user", text(pam, Item::User))
                .text("service", text(pam, Item::Service))
                .text("reason", error.kind())
                .text("error", error.to_string()),
        ),
    }
    Verdict::Success
}

fn unreachable_verdict(log: &dyn HostLog, args: &ModuleArgs, r: &OpenRequest, call: &str, error: &ClientError) -> Verdict {
    log.record(
        &Record::new("daemon_unreachable")
            .text("call", call)
            .text("user", &r.user)
            .text("service", &r.service)
            .text("tty", &r.tty)
            .text("rhost", &r.rhost)
            .number("pid", r.leader_pid)
            .number("ses", r.audit_session_id)
            .text("fail", args.fail.as_str())
            .text("reason", error.kind())
            .text("error", error.to_string()),
    );
    match args.fail {
        FailMode::Open => Verdict::Success,
        FailMode::Closed => Verdict::SessionError,
    }
}

fn report_unknown_args(log: &dyn HostLog, args: &ModuleArgs) {
    for arg in &args.unknown {
        log.record(&Record::new("module_argument_ignored").text("argument", arg));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct FakePam {
        items: HashMap<&'static str, Vec<u8>>,
        env: Vec<String>,
        id: Option<u64>,
    }

    impl PamIo for FakePam {
        fn item(&self, item: Item) -> Option<Vec<u8>> {
            let key = match item {
                Item::User => "user",
                Item::Service => "service",
                Item::Tty => "tty",
                Item::RHost => "rhost",
                Item::RUser => "ruser",
            };
            self.items.get(key).cloned()
        }
        fn put_env(&mut self, name: &str, value: &str) -> bool {
            self.env.push(format!("{name}={value}"));
            true
        }
        fn store_session_id(&mut self, id: u64) -> bool {
            self.id = Some(id);
            true
        }
        fn session_id(&self) -> Option<u64> {
            self.id
        }
        fn set_mark(&mut self, _: crate::pam_io::Mark) -> bool {
            true
        }
        fn has_mark(&self, _: crate::pam_io::Mark) -> bool {
            false
        }
    }

    /// Answers from a script; records the calls it got.
    struct FakeDaemon {
        open_answer: fn() -> Result<u64, ClientError>,
        calls: RefCell<Vec<String>>,
    }

    impl Daemon for FakeDaemon {
        fn open_session(&self, r: &OpenRequest) -> Result<u64, ClientError> {
            self.calls.borrow_mut().push(format!("open {} {} {} {} {}", r.user, r.service, r.tty, r.rhost, r.leader_pid));
            (self.open_answer)()
        }
        fn close_session(&self, id: u64) -> Result<(), ClientError> {
            self.calls.borrow_mut().push(format!("close {id}"));
            Ok(())
        }
        fn check_reauth(&self, _: &str, _: &str) -> Result<vigil_protocol::ReauthAnswer, ClientError> {
            unreachable!("not a reauth test")
        }
        fn record_auth(&self, _: &str, _: &str) -> Result<(), ClientError> {
            unreachable!("not a reauth test")
        }
        fn record_auth_failure(&self, _: &str) -> Result<(), ClientError> {
            unreachable!("not a reauth test")
        }
    }

    #[derive(Default)]
    struct FakeLog(RefCell<Vec<String>>);
    impl HostLog for FakeLog {
        fn record(&self, record: &Record) {
            self.0.borrow_mut().push(record.to_kv_line());
        }
        fn debug(&self, _: &str) {}
    }

    fn pam() -> FakePam {
        let mut p = FakePam::default();
        p.items.insert("user", b"alice".to_vec());
        p.items.insert("service", b"sshd".to_vec());
        p.items.insert("tty", b"ssh".to_vec());
        p.items.insert("rhost", b"203.0.113.7".to_vec());
        p
    }

    fn daemon(answer: fn() -> Result<u64, ClientError>) -> FakeDaemon {
        FakeDaemon { open_answer: answer, calls: RefCell::default() }
    }

    #[test]
    fn open_registers_and_exports_the_id_then_close_closes_it() {
        let (mut p, d, log, args) = (pam(), daemon(|| Ok(42)), FakeLog::default(), ModuleArgs::default());
        assert_eq!(open(&mut p, &d, &log, &args, 1234, 7), Verdict::Success);
        assert_eq!(p.env, vec!["VIGIL_SESSION_ID=42"]);
        assert_eq!(close(&mut p, &d, &log, &args), Verdict::Success);
        assert_eq!(*d.calls.borrow(), vec!["open alice sshd ssh 203.0.113.7 1234", "close 42"]);
        assert!(log.0.borrow().is_empty());
    }

    #[test]
    fn unreachable_daemon_follows_fail_mode_and_logs_why() {
        for (fail, verdict) in [(FailMode::Open, Verdict::Success), (FailMode::Closed, Verdict::SessionError)] {
            let (mut p, log) = (pam(), FakeLog::default());
            let d = daemon(|| Err(ClientError::Timeout(Duration::from_secs(2))));
            let args = ModuleArgs { fail, ..ModuleArgs::default() };
            assert_eq!(open(&mut p, &d, &log, &args, 1, 1), verdict);
            assert!(p.env.is_empty() && p.id.is_none());
            let lines = log.0.borrow();
            assert_eq!(lines.len(), 1);
            assert!(lines[0].starts_with("event=daemon_unreachable call=open_session user=alice"), "{}", lines[0]);
            assert!(lines[0].contains(&format!("fail={} reason=timeout", fail.as_str())), "{}", lines[0]);
        }
    }

    #[test]
    fn close_without_open_does_nothing() {
        let (mut p, d, log) = (pam(), daemon(|| Ok(1)), FakeLog::default());
        assert_eq!(close(&mut p, &d, &log, &ModuleArgs::default()), Verdict::Success);
        assert!(d.calls.borrow().is_empty());
    }

    #[test]
    fn missing_user_is_not_sent() {
        let (mut p, d, log) = (pam(), daemon(|| Ok(1)), FakeLog::default());
        p.items.remove("user");
        let args = ModuleArgs { fail: FailMode::Closed, ..ModuleArgs::default() };
        assert_eq!(open(&mut p, &d, &log, &args, 1, 1), Verdict::SessionError);
        assert!(d.calls.borrow().is_empty());
    }

    #[test]
    fn hostile_items_cannot_forge_the_module_record() {
        let (mut p, log) = (pam(), FakeLog::default());
        p.items.insert("rhost", b"h\nevent=session_open fail=open".to_vec());
        let d = daemon(|| Err(ClientError::Unreachable("no".into())));
        open(&mut p, &d, &log, &ModuleArgs::default(), 1, 1);
        let line = &log.0.borrow()[0];
        assert!(!line.contains('\n'));
        let keys: Vec<String> = vigil_protocol::audit::parse_kv_line(line).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys.iter().filter(|k| *k == "event").count(), 1);
    }
}
