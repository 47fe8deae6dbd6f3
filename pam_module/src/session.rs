//! What open_session and close_session do: plain Rust over the `PamIo`, `Daemon` and
//! `HostLog` doors, so that unit tests drive it with fakes.

use vigil_protocol::MAX_FIELD_BYTES;
use vigil_protocol::audit::Record;
use vigil_protocol::events::{Event, ModuleCall, ModuleFailure};

use crate::args::{FailMode, ModuleArgs};
use crate::client::{Daemon, OpenRequest};
use crate::error::ClientError;
use crate::host_log::HostLog;
use crate::pam_io::{Item, PamIo};

/// What a hook tells libpam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    Success,
    SessionError,
    Ignore,
    AuthError,
    /// The account stage refuses (a lock).
    PermissionDenied,
}

/// The environment variable that carries the vigil session id into the session.
pub const SESSION_ENV: &str = "VIGIL_SESSION_ID";

// The audit-session reader is vigild's too (vigil-host): one parser for both sides of
// the comparison vigild makes.
pub use vigil_host::procfs::own_audit_session_id;

fn text(pam: &dyn PamIo, item: Item) -> String {
    // D-Bus strings are UTF-8; a non-UTF-8 byte becomes U+FFFD on the wire. vigild's
    // audit writer escapes whatever arrives.
    pam.item(item).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// `text` cut to the wire limit at a character boundary; `name` joins `truncated`
/// when it was cut. vigild refuses a longer field, and a refusal would cost the
/// session its supervision (or, with `fail=closed`, the login): a PAM_RHOST is what a
/// remote peer makes it.
fn wire_text(pam: &dyn PamIo, item: Item, name: &str, truncated: &mut Vec<String>) -> String {
    let mut value = text(pam, item);
    if value.len() > MAX_FIELD_BYTES {
        value.truncate(value.floor_char_boundary(MAX_FIELD_BYTES));
        truncated.push(name.to_string());
    }
    value
}

/// What open_session sends. Every item but the user is cut to the wire limit; the
/// user is sent whole, because it names the account vigild supervises the session as
/// and a cut name could be another account's: an overlong one is not sent at all (no
/// account has such a name; vigild would refuse it, and a huge one would not even pass
/// its 64 KiB message bound).
fn open_request(pam: &dyn PamIo, pid: u32, ses: u32) -> OpenRequest {
    let mut truncated = Vec::new();
    let service = wire_text(pam, Item::Service, "service", &mut truncated);
    let tty = wire_text(pam, Item::Tty, "tty", &mut truncated);
    let rhost = wire_text(pam, Item::RHost, "rhost", &mut truncated);
    let ruser = wire_text(pam, Item::RUser, "ruser", &mut truncated);
    OpenRequest { user: text(pam, Item::User), service, tty, rhost, ruser, leader_pid: pid, audit_session_id: ses, truncated }
}

/// pam_sm_open_session.
pub fn open(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, args: &ModuleArgs, pid: u32, ses: u32) -> HookOutcome {
    if ignored(pam, args) {
        return HookOutcome::Ignore;
    }
    report_unknown_args(log, args);
    let request = open_request(pam, pid, ses);
    if request.user.is_empty() {
        // No user means a broken stack; vigild would refuse it anyway, so it is not asked.
        let error = ClientError::NotSent(ModuleFailure::NoUser, "PAM_USER is not set; vigild was not called");
        return not_registered(log, args, &request, &error);
    }
    if request.user.len() > vigil_protocol::MAX_FIELD_BYTES {
        let error = ClientError::NotSent(ModuleFailure::UserTooLong, "PAM_USER is longer than 1024 bytes; vigild was not called");
        return not_registered(log, args, &request, &error);
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
            HookOutcome::Success
        }
        Err(error) => not_registered(log, args, &request, &error),
    }
}

/// pam_sm_close_session. Never fails the logout: a session vigild does not close here,
/// it closes itself when the leader process ends.
pub fn close(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, args: &ModuleArgs) -> HookOutcome {
    if ignored(pam, args) {
        return HookOutcome::Ignore;
    }
    report_unknown_args(log, args);
    let Some(id) = pam.session_id() else {
        log.debug("close_session: no vigil session on this handle");
        return HookOutcome::Success;
    };
    match daemon.close_session(id) {
        Ok(()) => {}
        // vigild ended it already (idle, admin, max age): nothing is wrong.
        Err(ClientError::NoSuchSession) => log.debug(&format!("close_session: vigild had already ended session {id}")),
        Err(error) => log.record(&failure(
            Record::new(failure_event(&error))
                .text("call", ModuleCall::CloseSession)
                .number("session", id)
                .text("user", text(pam, Item::User))
                .text("service", text(pam, Item::Service)),
            &error,
        )),
    }
    HookOutcome::Success
}

/// A service that opens no login session (`systemd-user`, `ignore_services=`): the
/// hook steps aside like pam_systemd does for it, with no record and no daemon call.
fn ignored(pam: &dyn PamIo, args: &ModuleArgs) -> bool {
    pam.item(Item::Service).is_some_and(|service| args.ignores(&service))
}

/// The module's record of a call that failed: `daemon_unreachable` when nobody
/// answered, `call_refused` when vigild (or the bus) answered with an error.
pub fn failure_event(error: &ClientError) -> Event {
    if error.is_refusal() { Event::CallRefused } else { Event::DaemonUnreachable }
}

/// Appends why a call failed: `reason`, the D-Bus `error_name` of a refusal, `error`.
pub fn failure(record: Record, error: &ClientError) -> Record {
    let message = match error {
        ClientError::Refused { message, .. } => message.clone(),
        other => other.to_string(),
    };
    record.text("reason", error.reason()).text_opt("error_name", error.error_name()).text("error", message)
}

/// A session vigild did not register: the record says why, and `fail=` decides. A
/// refusal follows `fail=` like an outage: with `fail=closed` no session exists that
/// vigild does not supervise, whatever the cause.
fn not_registered(log: &dyn HostLog, args: &ModuleArgs, r: &OpenRequest, error: &ClientError) -> HookOutcome {
    log.record(&failure(
        Record::new(failure_event(error))
            .text("call", ModuleCall::OpenSession)
            .text("user", &r.user)
            .text("service", &r.service)
            .text("tty", &r.tty)
            .text("rhost", &r.rhost)
            .number("pid", r.leader_pid)
            .number("ses", r.audit_session_id)
            .text("fail", args.fail.as_str()),
        error,
    ));
    match args.fail {
        FailMode::Open => HookOutcome::Success,
        FailMode::Closed => HookOutcome::SessionError,
    }
}

fn report_unknown_args(log: &dyn HostLog, args: &ModuleArgs) {
    for arg in &args.unknown {
        log.record(&Record::new(Event::ModuleArgumentIgnored).text("argument", arg));
    }
    for (arg, used) in &args.overridden {
        log.record(&Record::new(Event::ModuleArgumentIgnored).text("argument", arg).text("used", used));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;
    use crate::test_doubles::{FakeLog, FakePam};

    /// Answers from a script; records the calls it got.
    struct FakeDaemon {
        open_answer: fn() -> Result<u64, ClientError>,
        calls: RefCell<Vec<String>>,
        requests: RefCell<Vec<OpenRequest>>,
    }

    impl Daemon for FakeDaemon {
        fn open_session(&self, r: &OpenRequest) -> Result<u64, ClientError> {
            self.calls.borrow_mut().push(format!("open {} {} {} {} {}", r.user, r.service, r.tty, r.rhost, r.leader_pid));
            self.requests.borrow_mut().push(r.clone());
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

    fn pam() -> FakePam {
        FakePam::with(&[("user", b"alice"), ("service", b"sshd"), ("tty", b"ssh"), ("rhost", b"203.0.113.7")])
    }

    fn daemon(answer: fn() -> Result<u64, ClientError>) -> FakeDaemon {
        FakeDaemon { open_answer: answer, calls: RefCell::default(), requests: RefCell::default() }
    }

    #[test]
    fn open_registers_and_exports_the_id_then_close_closes_it() {
        let (mut p, d, log, args) = (pam(), daemon(|| Ok(42)), FakeLog::default(), ModuleArgs::default());
        assert_eq!(open(&mut p, &d, &log, &args, 1234, 7), HookOutcome::Success);
        assert_eq!(p.env, vec!["VIGIL_SESSION_ID=42"]);
        assert_eq!(close(&mut p, &d, &log, &args), HookOutcome::Success);
        assert_eq!(*d.calls.borrow(), vec!["open alice sshd ssh 203.0.113.7 1234", "close 42"]);
        assert!(log.0.borrow().is_empty());
    }

    #[test]
    fn unreachable_daemon_follows_fail_mode_and_logs_why() {
        for (fail, verdict) in [(FailMode::Open, HookOutcome::Success), (FailMode::Closed, HookOutcome::SessionError)] {
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
    fn ignored_services_open_and_close_nothing() {
        let args = ModuleArgs::parse([b"ignore_services=cron".as_slice(), b"typo".as_slice()]);
        for service in ["systemd-user", "cron"] {
            let (mut p, d, log) = (pam(), daemon(|| Ok(5)), FakeLog::default());
            p.items.insert("service", service.as_bytes().to_vec());
            assert_eq!(open(&mut p, &d, &log, &args, 1, 1), HookOutcome::Ignore);
            p.id = Some(5);
            assert_eq!(close(&mut p, &d, &log, &args), HookOutcome::Ignore);
            assert!(d.calls.borrow().is_empty() && p.env.is_empty(), "{service}");
            assert!(log.0.borrow().is_empty(), "not even the unknown argument: {:?}", log.0.borrow());
        }
    }

    #[test]
    fn close_without_open_does_nothing() {
        let (mut p, d, log) = (pam(), daemon(|| Ok(1)), FakeLog::default());
        assert_eq!(close(&mut p, &d, &log, &ModuleArgs::default()), HookOutcome::Success);
        assert!(d.calls.borrow().is_empty());
    }

    #[test]
    fn an_overlong_user_is_not_sent_and_recorded_as_a_refusal() {
        let (mut p, d, log) = (pam(), daemon(|| Ok(1)), FakeLog::default());
        p.items.insert("user", vec![b'a'; vigil_protocol::MAX_FIELD_BYTES + 1]);
        assert_eq!(open(&mut p, &d, &log, &ModuleArgs::default(), 1, 1), HookOutcome::Success);
        assert!(d.calls.borrow().is_empty());
        let lines = log.0.borrow();
        assert!(lines[0].starts_with("event=call_refused call=open_session") && lines[0].contains("reason=user_too_long"), "{}", lines[0]);
    }

    #[test]
    fn missing_user_is_not_sent() {
        let (mut p, d, log) = (pam(), daemon(|| Ok(1)), FakeLog::default());
        p.items.remove("user");
        let args = ModuleArgs { fail: FailMode::Closed, ..ModuleArgs::default() };
        assert_eq!(open(&mut p, &d, &log, &args, 1, 1), HookOutcome::SessionError);
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

    /// The request open() sent with these items.
    fn sent(items: &[(&'static str, Vec<u8>)]) -> OpenRequest {
        let mut p = pam();
        p.items.extend(items.iter().cloned());
        let d = daemon(|| Ok(1));
        assert_eq!(open(&mut p, &d, &FakeLog::default(), &ModuleArgs::default(), 1, 1), HookOutcome::Success);
        d.requests.borrow()[0].clone()
    }

    #[test]
    fn an_overlong_ascii_rhost_is_cut_to_the_wire_limit_and_named() {
        let r = sent(&[("rhost", vec![b'a'; 3000])]);
        assert_eq!(r.rhost, "a".repeat(MAX_FIELD_BYTES));
        assert_eq!(r.truncated, ["rhost"]);
        assert_eq!((r.user.as_str(), r.tty.as_str()), ("alice", "ssh"), "the other items are untouched");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // 3-byte characters: the limit (1024 = 3 * 341 + 1) falls inside the 342nd.
        let r = sent(&[("tty", "\u{20ac}".repeat(400).into_bytes()), ("rhost", "\u{e9}".repeat(1000).into_bytes())]);
        assert_eq!(r.tty, "\u{20ac}".repeat(341));
        assert_eq!(r.rhost, "\u{e9}".repeat(512), "2-byte characters: the limit is a boundary");
        assert_eq!(r.truncated, ["tty", "rhost"], "in the order of the request's fields");
        // Bytes that are not UTF-8 are converted (U+FFFD, 3 bytes each), then cut the same way.
        let r = sent(&[("ruser", vec![0xff; 2000])]);
        assert_eq!(r.ruser, "\u{fffd}".repeat(341));
        assert_eq!(r.truncated, ["ruser"]);
    }

    #[test]
    fn an_item_exactly_at_the_limit_is_not_cut() {
        let r = sent(&[("rhost", vec![b'h'; MAX_FIELD_BYTES]), ("tty", "\u{e9}".repeat(MAX_FIELD_BYTES / 2).into_bytes())]);
        assert_eq!(r.rhost.len(), MAX_FIELD_BYTES);
        assert_eq!(r.tty.len(), MAX_FIELD_BYTES);
        assert!(r.truncated.is_empty(), "{:?}", r.truncated);
    }

    #[test]
    fn the_user_is_never_cut() {
        // A cut name could be another account: the request keeps it whole, and an
        // overlong one is not sent (an_overlong_user_is_not_sent_and_recorded_as_a_refusal).
        let mut p = pam();
        p.items.insert("user", vec![b'u'; 3000]);
        let r = open_request(&p, 1, 1);
        assert_eq!(r.user.len(), 3000);
        assert!(r.truncated.is_empty());
    }

    #[test]
    fn a_refusal_is_recorded_as_a_refusal_and_follows_fail_mode() {
        for (fail, verdict) in [(FailMode::Open, HookOutcome::Success), (FailMode::Closed, HookOutcome::SessionError)] {
            let (mut p, log) = (pam(), FakeLog::default());
            let d = daemon(|| {
                Err(ClientError::Refused { name: "org.vigil1.Error.InvalidArgument".into(), message: "unknown user \"alice\"".into() })
            });
            let args = ModuleArgs { fail, ..ModuleArgs::default() };
            assert_eq!(open(&mut p, &d, &log, &args, 1, 1), verdict);
            let lines = log.0.borrow();
            assert_eq!(lines.len(), 1);
            assert!(lines[0].starts_with("event=call_refused call=open_session user=alice"), "{}", lines[0]);
            assert!(
                lines[0].ends_with(&format!(
                    "fail={} reason=invalid_argument error_name=org.vigil1.Error.InvalidArgument error=\"unknown user \\\"alice\\\"\"",
                    fail.as_str()
                )),
                "{}",
                lines[0]
            );
            assert!(!lines[0].contains("daemon_unreachable"));
        }
    }

    #[test]
    fn a_missing_user_is_recorded_as_not_sent() {
        let (mut p, d, log) = (pam(), daemon(|| Ok(1)), FakeLog::default());
        p.items.remove("user");
        open(&mut p, &d, &log, &ModuleArgs::default(), 1, 1);
        let line = &log.0.borrow()[0];
        assert!(line.starts_with("event=call_refused call=open_session user=\"\""), "{line}");
        assert!(line.contains(" reason=no_user error="), "{line}");
        assert!(!line.contains("error_name"), "vigild was not asked: {line}");
    }

    #[test]
    fn close_records_a_refusal_and_an_outage_apart() {
        struct Closing(fn() -> Result<(), ClientError>);
        impl Daemon for Closing {
            fn open_session(&self, _: &OpenRequest) -> Result<u64, ClientError> {
                Ok(9)
            }
            fn close_session(&self, _: u64) -> Result<(), ClientError> {
                (self.0)()
            }
            fn check_reauth(&self, _: &str, _: &str) -> Result<vigil_protocol::ReauthAnswer, ClientError> {
                unreachable!()
            }
            fn record_auth(&self, _: &str, _: &str) -> Result<(), ClientError> {
                unreachable!()
            }
            fn record_auth_failure(&self, _: &str) -> Result<(), ClientError> {
                unreachable!()
            }
        }
        let refused = Closing(|| Err(ClientError::Refused { name: "org.vigil1.Error.AccessDenied".into(), message: "no".into() }));
        let down = Closing(|| Err(ClientError::Unreachable("connection refused".into())));
        let gone = Closing(|| Err(ClientError::NoSuchSession));
        let mut lines = Vec::new();
        for d in [refused, down, gone] {
            let (mut p, log, args) = (pam(), FakeLog::default(), ModuleArgs::default());
            open(&mut p, &d, &log, &args, 1, 1);
            close(&mut p, &d, &log, &args);
            lines.push(log.0.borrow().clone());
        }
        assert!(lines[0][0].starts_with("event=call_refused call=close_session session=9"), "{:?}", lines[0]);
        assert!(lines[0][0].contains(" reason=access_denied error_name=org.vigil1.Error.AccessDenied "), "{:?}", lines[0]);
        assert!(lines[1][0].starts_with("event=daemon_unreachable call=close_session session=9"), "{:?}", lines[1]);
        assert!(lines[1][0].contains(" reason=unreachable error="), "{:?}", lines[1]);
        assert!(lines[2].is_empty(), "a session vigild already ended is no failure: {:?}", lines[2]);
    }
}
