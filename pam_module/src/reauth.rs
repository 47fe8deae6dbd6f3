//! Re-authentication for sudo, su and pkexec: the auth and account hooks.
//!
//! auth `reauth`: vigild says whether the calling session has a fresh proof of
//! identity. Fresh → PAM_SUCCESS, no prompt. Anything else — stale, unknown session,
//! vigild unreachable or slow, a bug — → PAM_IGNORE, and the next module asks the
//! password. Never the other way round.
//! account: after a real password (the auth hook let it be asked and the stack still
//! got to account), vigild records a proof. After a cached grant, nothing is recorded.
//! auth `authfail`: reached only when the password module failed; vigild records it.

use vigil_protocol::audit::Record;

use crate::args::ModuleArgs;
use crate::client::Daemon;
use crate::host_log::HostLog;
use crate::pam_io::{Item, Mark, PamIo};
use crate::session::Verdict;

fn service(pam: &dyn PamIo) -> String {
    pam.item(Item::Service).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// pam_sm_authenticate with `reauth`.
pub fn authenticate(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog, _args: &ModuleArgs) -> Verdict {
    let service = service(pam);
    match daemon.check_reauth(&service) {
        Ok(answer) if answer.fresh => {
            pam.set_mark(Mark::Granted);
            log.debug(&format!("reauth granted for {service}: proof {} s old", answer.proof_age_usec / 1_000_000));
            Verdict::Success
        }
        Ok(answer) => {
            pam.set_mark(Mark::PasswordAsked);
            log.debug(&format!("reauth required for {service}: {}", answer.reason));
            Verdict::Ignore
        }
        Err(error) => {
            pam.set_mark(Mark::PasswordAsked);
            log.record(
                &Record::new("reauth_required")
                    .text("reason", "daemon_unreachable")
                    .text("service", &service)
                    .text("user", pam.item(Item::User).unwrap_or_default())
                    .number("pid", std::process::id())
                    .text("error", error.to_string()),
            );
            Verdict::Ignore
        }
    }
}

/// pam_sm_authenticate with `authfail`: the password was wrong.
pub fn authentication_failed(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog) -> Verdict {
    let service = service(pam);
    if let Err(error) = daemon.record_auth_failure(&service) {
        log.record(
            &Record::new("reauth_failed")
                .text("service", &service)
                .text("user", pam.item(Item::User).unwrap_or_default())
                .number("pid", std::process::id())
                .text("error", error.to_string()),
        );
    }
    // This line sits where only a failed password leads: keep the stack failing.
    Verdict::AuthError
}

/// pam_sm_acct_mgmt: record the proof when a password was just accepted. Never
/// changes the account decision.
pub fn account(pam: &mut dyn PamIo, daemon: &dyn Daemon, log: &dyn HostLog) -> Verdict {
    if pam.has_mark(Mark::PasswordAsked) && !pam.has_mark(Mark::Granted) {
        let service = service(pam);
        if let Err(error) = daemon.record_auth(&service) {
            log.debug(&format!("could not record the proof for {service}: {error}"));
        }
    }
    Verdict::Ignore
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use vigil_protocol::ReauthAnswer;

    use super::*;
    use crate::client::{ClientError, OpenRequest};

    #[derive(Default)]
    struct Pam {
        marks: Vec<Mark>,
    }
    impl PamIo for Pam {
        fn item(&self, item: Item) -> Option<Vec<u8>> {
            Some(match item {
                Item::Service => b"sudo".to_vec(),
                _ => b"alice".to_vec(),
            })
        }
        fn put_env(&mut self, _: &str, _: &str) -> bool {
            true
        }
        fn store_session_id(&mut self, _: u64) -> bool {
            true
        }
        fn session_id(&self) -> Option<u64> {
            None
        }
        fn set_mark(&mut self, mark: Mark) -> bool {
            self.marks.push(mark);
            true
        }
        fn has_mark(&self, mark: Mark) -> bool {
            self.marks.contains(&mark)
        }
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
        fn check_reauth(&self, _: &str) -> Result<ReauthAnswer, ClientError> {
            (self.answer)()
        }
        fn record_auth(&self, _: &str) -> Result<(), ClientError> {
            self.recorded.borrow_mut().push("proof");
            Ok(())
        }
        fn record_auth_failure(&self, _: &str) -> Result<(), ClientError> {
            self.recorded.borrow_mut().push("failure");
            Ok(())
        }
    }

    #[derive(Default)]
    struct Log(RefCell<Vec<String>>);
    impl HostLog for Log {
        fn record(&self, r: &Record) {
            self.0.borrow_mut().push(r.to_kv_line());
        }
        fn debug(&self, _: &str) {}
    }

    fn answer(fresh: bool) -> ReauthAnswer {
        ReauthAnswer { fresh, reason: if fresh { "fresh" } else { "expired" }.into(), proof_age_usec: 5, session: 1 }
    }

    #[test]
    fn fresh_grants_and_records_nothing() {
        let (mut pam, log) = (Pam::default(), Log::default());
        let d = Daemon2 { answer: || Ok(answer(true)), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), Verdict::Success);
        assert_eq!(account(&mut pam, &d, &log), Verdict::Ignore);
        assert!(d.recorded.borrow().is_empty(), "a cached grant must not make a new proof");
    }

    #[test]
    fn stale_asks_the_password_then_records_the_proof() {
        let (mut pam, log) = (Pam::default(), Log::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), Verdict::Ignore);
        assert_eq!(account(&mut pam, &d, &log), Verdict::Ignore);
        assert_eq!(*d.recorded.borrow(), vec!["proof"]);
    }

    #[test]
    fn unreachable_daemon_asks_the_password_and_says_so() {
        let (mut pam, log) = (Pam::default(), Log::default());
        let d = Daemon2 { answer: || Err(ClientError::Unreachable("down".into())), recorded: RefCell::default() };
        assert_eq!(authenticate(&mut pam, &d, &log, &ModuleArgs::default()), Verdict::Ignore);
        assert!(log.0.borrow()[0].starts_with("event=reauth_required reason=daemon_unreachable service=sudo"));
    }

    #[test]
    fn account_without_auth_records_nothing() {
        // sudo with NOPASSWD calls account without authenticate.
        let (mut pam, log) = (Pam::default(), Log::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(account(&mut pam, &d, &log), Verdict::Ignore);
        assert!(d.recorded.borrow().is_empty());
    }

    #[test]
    fn authfail_records_and_keeps_failing() {
        let (mut pam, log) = (Pam::default(), Log::default());
        let d = Daemon2 { answer: || Ok(answer(false)), recorded: RefCell::default() };
        assert_eq!(authentication_failed(&mut pam, &d, &log), Verdict::AuthError);
        assert_eq!(*d.recorded.borrow(), vec!["failure"]);
    }
}
