//! `pam_vigil.so`: registers login sessions with vigild.
//!
//! This file only names the hooks. Every hook runs inside `catch_unwind` twice over:
//! pam-bindings guards its `extern "C"` entries (a panic becomes PAM_ABORT), and each
//! hook here catches its own panics first so that a bug follows the admin's `fail=`
//! choice instead of aborting a login. The decisions live in `session.rs`.

use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};

pub mod args;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod host_log;
pub mod lock_check;
pub mod pam_io;
pub mod reauth;
pub mod session;
pub mod socket_call;
#[cfg(test)]
mod test_doubles;

use args::{FailMode, ModuleArgs};
use client::DbusDaemon;
use host_log::Syslog;
use pam_io::RealPam;
use reauth::Invoker;
use session::HookOutcome;

struct PamVigil;
pam::pam_hooks!(PamVigil);

fn to_code(verdict: HookOutcome) -> PamResultCode {
    match verdict {
        HookOutcome::Success => PamResultCode::PAM_SUCCESS,
        HookOutcome::SessionError => PamResultCode::PAM_SESSION_ERR,
        HookOutcome::Ignore => PamResultCode::PAM_IGNORE,
        HookOutcome::AuthError => PamResultCode::PAM_AUTH_ERR,
        HookOutcome::PermissionDenied => PamResultCode::PAM_PERM_DENIED,
    }
}

/// Runs a hook with its panic guard; `on_panic` is what a bug turns into. The
/// arguments are parsed inside the guard, so a bug in the parser follows `fail=` too.
fn guarded(args: &[&CStr], on_panic: impl FnOnce(FailMode) -> HookOutcome, hook: impl FnOnce(&ModuleArgs) -> HookOutcome) -> PamResultCode {
    let run = || hook(&ModuleArgs::parse(args.iter().map(|a| a.to_bytes())));
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(verdict) => to_code(verdict),
        Err(payload) => {
            // Dropping a panic payload can itself panic; forget it instead.
            std::mem::forget(payload);
            to_code(on_panic(fail_mode_of(args)))
        }
    }
}

/// `fail=` read again without the parser (which may be what panicked): `fail=closed`
/// anywhere on the line wins, as the stricter choice.
fn fail_mode_of(args: &[&CStr]) -> FailMode {
    if args.iter().any(|a| a.to_bytes() == b"fail=closed") { FailMode::Closed } else { FailMode::Open }
}

/// A session hook's bug counts as a vigild failure: the login follows `fail=`.
fn session_fallback(fail: FailMode) -> HookOutcome {
    match fail {
        FailMode::Open => HookOutcome::Success,
        FailMode::Closed => HookOutcome::SessionError,
    }
}

/// An auth or account hook's bug never grants: the password is asked.
fn ask_password(_: FailMode) -> HookOutcome {
    HookOutcome::Ignore
}

fn daemon_for(args: &ModuleArgs) -> DbusDaemon {
    DbusDaemon { target: args.target.clone(), timeout: args.timeout }
}

impl PamHooks for PamVigil {
    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guarded(&args, session_fallback, |args| {
            let daemon = daemon_for(args);
            let log = Syslog { socket: &args.syslog_socket, debug: args.debug };
            session::open(&mut RealPam(pamh), &daemon, &log, args, std::process::id(), session::own_audit_session_id())
        })
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guarded(
            &args,
            |_| HookOutcome::Success,
            |args| {
                let log = Syslog { socket: &args.syslog_socket, debug: args.debug };
                session::close(&mut RealPam(pamh), &daemon_for(args), &log, args)
            },
        )
    }

    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guarded(&args, ask_password, |args| {
            let log = Syslog { socket: &args.syslog_socket, debug: args.debug };
            if args.authfail {
                reauth::authentication_failed(&mut RealPam(pamh), &daemon_for(args), &log, Invoker::of_process().uid)
            } else if args.reauth {
                reauth::authenticate(&mut RealPam(pamh), &daemon_for(args), &log, args)
            } else {
                HookOutcome::Ignore
            }
        })
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guarded(&args, ask_password, |args| {
            let log = Syslog { socket: &args.syslog_socket, debug: args.debug };
            let (daemon, mut pam, invoker) = (daemon_for(args), RealPam(pamh), Invoker::of_process());
            // A locked user is refused before anything else; `ask_password` makes a
            // bug here PAM_IGNORE, never a refusal.
            if lock_check::check(&mut pam, args, &invoker, &daemon, &log).is_some() {
                return HookOutcome::PermissionDenied;
            }
            reauth::account_as(&mut pam, &daemon, &log, &invoker)
        })
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        // auth sufficient pam_vigil.so reauth makes libpam call setcred on it.
        PamResultCode::PAM_IGNORE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_session_hook_follows_fail() {
        let closed = [c"socket=/x", c"fail=closed"];
        assert_eq!(guarded(&closed, session_fallback, |_| panic!("a bug")), PamResultCode::PAM_SESSION_ERR);
        let open = [c"fail=open"];
        assert_eq!(guarded(&open, session_fallback, |_| panic!("a bug")), PamResultCode::PAM_SUCCESS);
        assert_eq!(guarded(&[], session_fallback, |_| panic!("a bug")), PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn a_panic_in_an_auth_hook_asks_the_password() {
        assert_eq!(guarded(&[c"fail=open"], ask_password, |_| panic!("a bug")), PamResultCode::PAM_IGNORE);
    }

    #[test]
    fn the_hook_sees_the_parsed_arguments() {
        let code = guarded(&[c"fail=closed", c"timeout=1s"], session_fallback, |args| {
            assert_eq!((args.fail, args.timeout), (FailMode::Closed, std::time::Duration::from_secs(1)));
            HookOutcome::Success
        });
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }
}
