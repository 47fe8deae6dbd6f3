//! The only door to libpam: items, environment and per-handle data.

use std::ffi::{CStr, CString, c_char, c_int};

use pam::constants::PamResultCode;
use pam::module::PamHandle;

/// What the session logic needs from libpam; a scripted fake implements it in tests.
pub trait PamIo {
    /// A PAM item as raw bytes (PAM items are C strings, not necessarily UTF-8).
    fn item(&self, item: Item) -> Option<Vec<u8>>;
    /// Sets `NAME=value` in the PAM environment (`pam_putenv`).
    fn put_env(&mut self, name: &str, value: &str) -> bool;
    /// Remembers the session id between open_session and close_session.
    fn store_session_id(&mut self, id: u64) -> bool;
    fn session_id(&self) -> Option<u64>;
    /// Marks this handle (between auth and account of one PAM transaction).
    fn set_mark(&mut self, mark: Mark) -> bool;
    fn has_mark(&self, mark: Mark) -> bool;
    /// Shows `text` to the user (a PAM_ERROR_MSG through the application's
    /// conversation: sshd sends it as a banner, su and sudo print it). Best effort.
    fn tell(&mut self, text: &str);
    /// Whether a module before this one took a password (PAM_AUTHTOK is set and not
    /// empty). The secret itself is never copied.
    fn password_typed(&self) -> bool;
}

/// What the auth hook tells the account hook of the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// vigil granted without a password: no new proof may come of it.
    Granted,
    /// vigil let the password be asked: if account is reached, a password was accepted.
    PasswordAsked,
    /// vigild did not answer in auth, or refused: account does not call it again.
    DaemonFailed,
}

impl Mark {
    fn key(self) -> &'static str {
        match self {
            Mark::Granted => "pam_vigil_granted",
            Mark::PasswordAsked => "pam_vigil_password_asked",
            Mark::DaemonFailed => "pam_vigil_daemon_failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    User,
    Service,
    Tty,
    RHost,
    RUser,
}

const SESSION_DATA_KEY: &str = "pam_vigil_session_id";

unsafe extern "C" {
    // libpam's pam_putenv; pam-bindings 0.4 does not wrap it.
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
}

pub struct RealPam<'a>(pub &'a mut PamHandle);

fn bytes(c: &CStr) -> Vec<u8> {
    c.to_bytes().to_vec()
}

impl PamIo for RealPam<'_> {
    fn item(&self, item: Item) -> Option<Vec<u8>> {
        use pam::items;
        let h = &*self.0;
        match item {
            Item::User => h.get_item::<items::User>().ok().flatten().map(|i| bytes(i.0)),
            Item::Service => h.get_item::<items::Service>().ok().flatten().map(|i| bytes(i.0)),
            Item::Tty => h.get_item::<items::Tty>().ok().flatten().map(|i| bytes(i.0)),
            Item::RHost => h.get_item::<items::RHost>().ok().flatten().map(|i| bytes(i.0)),
            Item::RUser => h.get_item::<items::RUser>().ok().flatten().map(|i| bytes(i.0)),
        }
    }

    fn put_env(&mut self, name: &str, value: &str) -> bool {
        let Ok(pair) = CString::new(format!("{name}={value}")) else {
            return false;
        };
        // SAFETY: the handle is the one libpam gave this hook; pam_putenv copies the string.
        let rc = unsafe { pam_putenv(self.0 as *mut PamHandle, pair.as_ptr()) };
        rc == PamResultCode::PAM_SUCCESS as c_int
    }

    fn store_session_id(&mut self, id: u64) -> bool {
        self.0.set_data(SESSION_DATA_KEY, Box::new(id)).is_ok()
    }

    fn session_id(&self) -> Option<u64> {
        // SAFETY: only this module writes this key, always with a u64.
        unsafe { self.0.get_data::<u64>(SESSION_DATA_KEY) }.ok().copied()
    }

    fn set_mark(&mut self, mark: Mark) -> bool {
        self.0.set_data(mark.key(), Box::new(true)).is_ok()
    }

    fn has_mark(&self, mark: Mark) -> bool {
        // SAFETY: only this module writes these keys, always with a bool.
        unsafe { self.0.get_data::<bool>(mark.key()) }.ok().copied().unwrap_or(false)
    }

    fn tell(&mut self, text: &str) {
        if let Ok(Some(conv)) = self.0.get_item::<pam::conv::Conv>() {
            // An application without a way to show it (cron) answers with an error: the
            // refusal stands all the same.
            let _ = conv.send(pam::constants::PAM_ERROR_MSG, text);
        }
    }

    fn password_typed(&self) -> bool {
        self.0.get_item::<pam::items::AuthTok>().ok().flatten().is_some_and(|token| !token.as_bytes().is_empty())
    }
}
