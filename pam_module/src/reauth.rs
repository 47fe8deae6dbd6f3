//! Re-authentication for sudo, su and pkexec: the auth and account hooks.
//!
//! auth `reauth`: vigild says whether the calling session has a fresh proof of
//! identity. Fresh → PAM_SUCCESS, no prompt. Anything else — stale, unknown session,
//! vigild unreachable or slow, a bug — → PAM_IGNORE, and the next module asks the
//! password. Never the other way round.
//! account: after a real password (the auth hook let it be asked and the stack still
//! got to account), vigild records a proof. After a cached grant, nothing is recorded.
//! auth `authfail`: reached only when the password module failed; vigild records it.
//!
//! A proof is about the user who runs sudo/su/pkexec (the process's real uid, which is
//! also the uid vigild binds the proof to). When the password asked is someone else's
//! — `su bob`, `su -` (root), sudo with `targetpw`/`rootpw`/`runaspw` — PAM_USER is that
//! other user: the caller's proof must not stand in for it, and that user's password
//! proves nothing about the caller. So the module answers only when PAM_USER is the
//! real uid's user; otherwise it steps aside (the password is asked) and records nothing.

use vigil_host::users::uid_of_name;
use vigil_protocol::audit::Record;
use vigil_protocol::events::{Event, ModuleCall, ReauthReason};

use crate::args::ModuleArgs;
use crate::client::Daemon;
use crate::error::ClientError;
use crate::host_log::HostLog;
use crate::pam_io::{Item, Mark, PamIo};
use crate::session::{HookOutcome, failure};

fn pam_user(pam: &dyn PamIo) -> String {
    pam.item(Item::User).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn service(pam: &dyn PamIo) -> String {
    pam.item(Item::Service).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// Who runs the program whose PAM stack this is, and how user names map to uids.
pub struct Invoker<'a> {
    /// The real uid of the process (sudo, su and pkexec's helper keep the caller's).
    pub uid: u32,
    /// The uid of a user name (NSS), if it exists.
    pub uid_of: &'a dyn Fn(&[u8]) -> Option<u32>,
}

impl Invoker<'_> {
    /// The calling process's: getuid(2), and NSS for names.
    pub fn of_process() -> Invoker<'static> {
        // SAFETY: getuid cannot fail.
        Invoker { uid: unsafe { libc::getuid() }, uid_of: &uid_of_name }
    }

    /// True when PAM_USER is the user running the program: only then is a password
    /// typed here a proof about the caller, and the caller's proof enough here.
    fn is_pam_user(&self, pam: &dyn PamIo) -> bool {
        pam.item(Item::User).filter(|u| !u.is_empty()).and_then(|u| (self.uid_of)(&u)) == Some(self.uid)
    }
}

/// pam_sm_authenticate with `reauth`, for the calling process.
pub fn authenticate(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, args: &ModuleArgs) -> HookOutcome {
    authenticate_as(pam, daemon, log, args, &Invoker::of_process())
}

/// pam_sm_authenticate with `reauth`, for `invoker`.
pub fn authenticate_as(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, _args: &ModuleArgs, invoker: &Invoker) -> HookOutcome {
    let service = service(pam);
    if !invoker.is_pam_user(pam) {
        // Someone else's password is asked: no cached grant, and (no mark) no proof after.
        log.record(
            &Record::new(Event::ReauthRequired)
                .text("reason", ReauthReason::OtherUser)
                .text("service", &service)
                .text("user", pam.item(Item::User).unwrap_or_default())
                .number("uid", invoker.uid)
                .number("pid", std::process::id()),
        );
        return HookOutcome::Ignore;
    }
    match daemon.check_reauth(&service, &pam_user(pam)) {
        Ok(answer) if answer.fresh => {
            pam.set_mark(Mark::Granted);
            log.debug(&format!("reauth granted for {service}: proof {} s old", answer.proof_age_usec / 1_000_000));
            HookOutcome::Success
        }
        // A service vigil does not decide for: the password is asked as usual, and no
        // proof is offered after it (vigild would refuse one).
        Ok(answer) if answer.reason == ReauthReason::NotSensitive.as_str() => {
            log.debug(&format!("{service} is not a sensitive service: vigil leaves it to the stack"));
            HookOutcome::Ignore
        }
        Ok(answer) => {
            pam.set_mark(Mark::PasswordAsked);
            log.debug(&format!("reauth required for {service}: {}", answer.reason));
            HookOutcome::Ignore
        }
        Err(error) => {
            pam.set_mark(Mark::PasswordAsked);
            // Whatever went wrong, account does not call vigild again: a daemon that
            // did not answer would cost the deadline twice, one that refused would
            // refuse again.
            pam.set_mark(Mark::DaemonFailed);
            let record = if error.is_refusal() {
                refused(pam, ModuleCall::CheckReauth, &service, &error)
            } else {
                Record::new(Event::ReauthRequired)
                    .text("reason", ReauthReason::DaemonUnreachable)
                    .text("service", &service)
                    .text("user", pam.item(Item::User).unwrap_or_default())
                    .number("pid", std::process::id())
                    .text("error", error.to_string())
            };
            log.record(&record);
            HookOutcome::Ignore
        }
    }
}

/// The module's record of a re-authentication call vigild answered with an error.
fn refused(pam: &dyn PamIo, call: ModuleCall, service: &str, error: &ClientError) -> Record {
    let record = Record::new(Event::CallRefused)
        .text("call", call)
        .text("service", service)
        .text("user", pam.item(Item::User).unwrap_or_default())
        .number("pid", std::process::id());
    failure(record, error)
}

/// pam_sm_authenticate with `authfail`: the password was wrong. Recorded only for a
/// program run by a logged-in user (`real_uid` not root: sudo, su, pkexec): a failed
/// password of sshd or login (which run as root) is a login attempt, not a
/// re-authentication, and a remote password-guessing flood must not reach vigild.
pub fn authentication_failed(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, real_uid: u32) -> HookOutcome {
    let service = service(pam);
    if real_uid == 0 {
        log.debug(&format!("{service}: a failed password of a program run by root is no re-authentication; nothing to record"));
        return HookOutcome::AuthError;
    }
    // This line is reached by any failure of the modules before it, a prompt left
    // unanswered (Ctrl-C, Ctrl-D) among them: only a password typed and refused is one.
    if !pam.password_typed() {
        log.debug(&format!("{service}: authentication failed without a password typed; nothing to record"));
        return HookOutcome::AuthError;
    }
    match daemon.record_auth_failure(&service) {
        Ok(()) => {}
        Err(error) if error.is_refusal() => log.record(&refused(pam, ModuleCall::RecordAuthFailure, &service, &error)),
        // vigild cannot record the wrong password: the module does.
        Err(error) => log.record(
            &Record::new(Event::ReauthFailed)
                .text("service", &service)
                .text("user", pam.item(Item::User).unwrap_or_default())
                .number("pid", std::process::id())
                .text("error", error.to_string()),
        ),
    }
    // This line sits where only a failed password leads: keep the stack failing.
    HookOutcome::AuthError
}

/// pam_sm_acct_mgmt for `invoker`: record the proof when a password was just accepted;
/// never changes the account decision. The auth hook marks only a password of the caller's
/// own; PAM_USER is checked again in case a module changed it in between.
pub fn account_as(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, invoker: &Invoker) -> HookOutcome {
    // A vigild that did not answer (or refused) in auth is not called again (sudo
    // would pay the deadline twice); the proof is simply not recorded.
    let proof_due = pam.has_mark(Mark::PasswordAsked)
        && !pam.has_mark(Mark::Granted)
        && !pam.has_mark(Mark::DaemonFailed)
        && !pam.has_mark(Mark::ProofSent);
    if proof_due && invoker.is_pam_user(pam) {
        // Whatever vigild answers, a second account line of this stack does not ask again.
        pam.set_mark(Mark::ProofSent);
        let service = service(pam);
        match daemon.record_auth(&service, &pam_user(pam)) {
            Ok(()) => {}
            // An answer that refuses is vigild's word on the module's call: recorded.
            Err(error) if error.is_refusal() => log.record(&refused(pam, ModuleCall::RecordAuth, &service, &error)),
            Err(error) => log.debug(&format!("could not record the proof for {service}: {error}")),
        }
    }
    HookOutcome::Ignore
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use vigil_protocol::ReauthAnswer;

    use super::*;
    use crate::client::OpenRequest;
    use crate::test_doubles::{FakeLog, FakePam};

    /// sudo run by alice; PAM_USER is `user`.
    /// sudo's handle, after pam_unix took a password (PAM_AUTHTOK set).
    fn sudo_pam(user: &[u8]) -> FakePam {
        FakePam::with(&[
            ("service", b"sudo"),
            ("user", user),
            ("tty", b"alice"),
            ("rhost", b"alice"),
            ("ruser", b"alice"),
            ("authtok", b"typed"),
        ])
    }

    struct Daemon2 {
        answer: fn() -> Result<ReauthAnswer, ClientError>,
        recorded: RefCell<Vec<&'static str>>,
    }
    impl Daemon for Daemon2 {
        fn open_session(&self, _: &OpenRequest) -> Result<u64, ClientError> {
            unreachable!("not a session test")
        }
        fn close_session(&self, _: u64) -> Result<(), ClientError> {
            unreachable!("not a session test")
        }
        fn check_reauth(&self, _: &str, _: &str) -> Result<ReauthAnswer, ClientError> {
            (self.answer)()
        }
        fn record_auth(&self, _: &str, _: &str) -> Result<(), ClientError> {
            self.recorded.borrow_mut().push("proof");
            Ok(())
        }
        fn record_auth_failure(&self, _: &str) -> Result<(), ClientError> {
            self.recorded.borrow_mut().push("failure");
            Ok(())
        }
    }

    /// alice (uid 1000) runs the program; bob is 1001; nobody else exists.
    fn uid_of(name: &[u8]) -> Option<u32> {
        match name {
            b"alice" => Some(1000),
            b"bob" => Some(1001),
            _ => None,
        }
    }
    const ALICE: Invoker<'static> = Invoker { uid: 1000, uid_of: &uid_of };

    fn authenticate(pam: &mut FakePam, d: &Daemon2, log: &FakeLog, args: &ModuleArgs) -> HookOutcome {
        authenticate_as(pam, d, log, args, &ALICE)
    }

    fn account(pam: &mut FakePam, d: &Daemon2, log: &FakeLog) -> HookOutcome {
        account_as(pam, d, log, &ALICE)
    }

    fn answer(fresh: bool) -> ReauthAnswer {
        ReauthAnswer { fresh, reason: if fresh { "fresh" } else { "expired" }.into(), proof_age_usec: 5, session: 1 }
    }

    #[test]
    fn fresh_grants_and_records_nothing() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Ok(answer(true)), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), HookOutcome::Success);
        assert_eq!(account(&mut pam, &d, &log), HookOutcome::Ignore);
        assert!(d.recorded.borrow().is_empty(), "a cached grant must not make a new proof");
    }

    #[test]
    fn stale_asks_the_password_then_records_the_proof() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), HookOutcome::Ignore);
        assert_eq!(account(&mut pam, &d, &log), HookOutcome::Ignore);
        assert_eq!(*d.recorded.borrow(), vec!["proof"]);
    }

    #[test]
    fn unreachable_daemon_asks_the_password_and_says_so() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Err(ClientError::Unreachable("down".into())), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), HookOutcome::Ignore);
        assert!(log.0.borrow()[0].starts_with("event=reauth_required reason=daemon_unreachable service=sudo"));
    }

    #[test]
    fn unreachable_in_auth_is_not_waited_for_again_in_account() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Err(ClientError::Timeout(std::time::Duration::from_secs(1))), recorded: RefCell::default() };
        assert_eq!(authenticate_as(&mut pam, &d, &log, &ModuleArgs::default(), &ALICE), HookOutcome::Ignore);
        assert_eq!(account_as(&mut pam, &d, &log, &ALICE), HookOutcome::Ignore);
        assert!(d.recorded.borrow().is_empty(), "account must not call a daemon that just timed out");
    }

    #[test]
    fn a_refusal_in_auth_is_recorded_as_one_and_asks_the_password() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 {
            answer: || Err(ClientError::Refused { name: "org.vigil1.Error.AccessDenied".into(), message: "CheckReauth: root only".into() }),
            recorded: RefCell::default(),
        };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), HookOutcome::Ignore);
        assert_eq!(account(&mut pam, &d, &log), HookOutcome::Ignore);
        assert!(d.recorded.borrow().is_empty(), "vigild refused once: account does not ask again");
        let lines = log.0.borrow();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("event=call_refused call=check_reauth service=sudo user=alice pid="), "{}", lines[0]);
        assert!(lines[0].contains(" reason=access_denied error_name=org.vigil1.Error.AccessDenied error="), "{}", lines[0]);
        assert!(!lines[0].contains("daemon_unreachable"), "{}", lines[0]);
    }

    #[test]
    fn refused_proof_and_failure_records_say_refused() {
        struct Refusing;
        impl Daemon for Refusing {
            fn open_session(&self, _: &OpenRequest) -> Result<u64, ClientError> {
                unreachable!()
            }
            fn close_session(&self, _: u64) -> Result<(), ClientError> {
                unreachable!()
            }
            fn check_reauth(&self, _: &str, _: &str) -> Result<ReauthAnswer, ClientError> {
                Ok(answer(false))
            }
            fn record_auth(&self, _: &str, _: &str) -> Result<(), ClientError> {
                Err(ClientError::Refused { name: "org.vigil1.Error.InvalidArgument".into(), message: "x".into() })
            }
            fn record_auth_failure(&self, _: &str) -> Result<(), ClientError> {
                Err(ClientError::Refused { name: "org.vigil1.Error.Failed".into(), message: "y".into() })
            }
        }
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        assert_eq!(authenticate_as(&mut pam, &Refusing, &log, &ModuleArgs::default(), &ALICE), HookOutcome::Ignore);
        assert_eq!(account_as(&mut pam, &Refusing, &log, &ALICE), HookOutcome::Ignore);
        assert_eq!(authentication_failed(&mut pam, &Refusing, &log, 1001), HookOutcome::AuthError);
        let lines = log.0.borrow();
        assert!(lines[0].starts_with("event=call_refused call=record_auth service=sudo"), "{lines:?}");
        assert!(lines[0].contains(" reason=invalid_argument "), "{lines:?}");
        assert!(lines[1].starts_with("event=call_refused call=record_auth_failure service=sudo"), "{lines:?}");
        assert!(lines[1].contains(" reason=failed error_name=org.vigil1.Error.Failed error=y"), "{lines:?}");
    }

    #[test]
    fn a_service_that_is_not_sensitive_asks_the_password_and_offers_no_proof() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 {
            answer: || Ok(ReauthAnswer { fresh: false, reason: ReauthReason::NotSensitive.as_str().into(), ..answer(false) }),
            recorded: RefCell::default(),
        };
        assert_eq!(authenticate_as(&mut pam, &d, &log, &ModuleArgs::default(), &ALICE), HookOutcome::Ignore);
        assert_eq!(account_as(&mut pam, &d, &log, &ALICE), HookOutcome::Ignore);
        assert!(d.recorded.borrow().is_empty(), "no RecordAuth for a service vigild would refuse it for");
        assert!(log.0.borrow().is_empty(), "no record at all: {:?}", log.0.borrow());
    }

    #[test]
    fn two_account_lines_record_one_proof() {
        // sudo including vigil-reauth, with vigil-lock's line in common-account.
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authenticate_as(&mut pam, &d, &log, &ModuleArgs::default(), &ALICE), HookOutcome::Ignore);
        assert_eq!(account_as(&mut pam, &d, &log, &ALICE), HookOutcome::Ignore);
        assert_eq!(account_as(&mut pam, &d, &log, &ALICE), HookOutcome::Ignore);
        assert_eq!(*d.recorded.borrow(), vec!["proof"]);
    }

    #[test]
    fn account_without_auth_records_nothing() {
        // sudo with NOPASSWD calls account without authenticate.
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(account(&mut pam, &d, &log), HookOutcome::Ignore);
        assert!(d.recorded.borrow().is_empty());
    }

    #[test]
    fn authfail_without_a_password_typed_records_nothing_and_keeps_failing() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        pam.items.remove("authtok");
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authentication_failed(&mut pam, &d, &log, 1001), HookOutcome::AuthError);
        assert!(d.recorded.borrow().is_empty(), "a prompt left unanswered is no wrong password");
        assert!(log.0.borrow().is_empty());
    }

    #[test]
    fn authfail_records_and_keeps_failing() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authentication_failed(&mut pam, &d, &log, 1001), HookOutcome::AuthError);
        assert_eq!(*d.recorded.borrow(), vec!["failure"]);
    }

    #[test]
    fn authfail_in_a_program_run_by_root_sends_nothing() {
        // sshd and login run as root: their failed passwords are login attempts.
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authentication_failed(&mut pam, &d, &log, 0), HookOutcome::AuthError);
        assert!(d.recorded.borrow().is_empty());
        assert!(log.0.borrow().is_empty());
    }

    #[test]
    fn another_users_password_is_asked_and_proves_nothing() {
        // `su bob` by alice: alice's fresh proof must not let her in as bob...
        let (mut pam, log) = (sudo_pam(b"bob"), FakeLog::default());
        let d = Daemon2 { answer: || panic!("vigild must not be asked about another user"), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), HookOutcome::Ignore);
        assert!(
            log.0.borrow()[0].starts_with("event=reauth_required reason=other_user service=sudo user=bob uid=1000"),
            "{:?}",
            log.0.borrow()
        );
        // ...and bob's password, accepted, is no proof about alice.
        assert_eq!(account(&mut pam, &d, &log), HookOutcome::Ignore);
        assert!(d.recorded.borrow().is_empty());
        // Unknown and empty user names are someone else too.
        for user in [&b"mallory"[..], b""] {
            let mut pam = sudo_pam(user);
            assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), HookOutcome::Ignore);
        }
    }

    #[test]
    fn pam_user_changed_after_auth_records_nothing() {
        let (mut pam, log) = (sudo_pam(b"alice"), FakeLog::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), HookOutcome::Ignore);
        pam.items.insert("user", b"bob".to_vec());
        assert_eq!(account(&mut pam, &d, &log), HookOutcome::Ignore);
        assert!(d.recorded.borrow().is_empty());
    }

    #[test]
    fn looks_up_real_users() {
        assert_eq!(uid_of_name(b"root"), Some(0));
        assert_eq!(uid_of_name(b"no-such-user-vigil-test"), None);
        assert_eq!(uid_of_name(b"ro\0ot"), None);
    }
}
