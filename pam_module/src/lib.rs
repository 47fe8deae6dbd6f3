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
pub mod host_log;
pub mod pam_io;
pub mod session;

use args::{FailMode, ModuleArgs};
use client::DbusDaemon;
use host_log::Syslog;
use pam_io::RealPam;
use session::Verdict;

struct PamVigil;
pam::pam_hooks!(PamVigil);

fn to_code(verdict: Verdict) -> PamResultCode {
    match verdict {
        Verdict::Success => PamResultCode::PAM_SUCCESS,
        Verdict::SessionError => PamResultCode::PAM_SESSION_ERR,
        Verdict::Ignore => PamResultCode::PAM_IGNORE,
    }
}

/// Runs a session hook with its panic guard. A panic counts as a vigild failure:
/// the login follows `fail=`.
fn guarded(args: &[&CStr], hook: impl FnOnce(&ModuleArgs) -> Verdict) -> PamResultCode {
    let args = ModuleArgs::parse(args.iter().map(|a| a.to_bytes()));
    match catch_unwind(AssertUnwindSafe(|| hook(&args))) {
        Ok(verdict) => to_code(verdict),
        Err(payload) => {
            // Dropping a panic payload can itself panic; forget it instead.
            std::mem::forget(payload);
            match args.fail {
                FailMode::Open => PamResultCode::PAM_SUCCESS,
                FailMode::Closed => PamResultCode::PAM_SESSION_ERR,
            }
        }
    }
}

impl PamHooks for PamVigil {
    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guarded(&args, |args| {
            let daemon = DbusDaemon { target: args.target.clone(), timeout: args.timeout };
            let log = Syslog { socket: &args.syslog_socket, debug: args.debug };
            session::open(&mut RealPam(pamh), &daemon, &log, args, std::process::id(), session::own_audit_session_id())
        })
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guarded(&args, |args| {
            let daemon = DbusDaemon { target: args.target.clone(), timeout: args.timeout };
            let log = Syslog { socket: &args.syslog_socket, debug: args.debug };
            session::close(&mut RealPam(pamh), &daemon, &log, args)
        })
    }
}
