//! The module's calls to vigild, each under one deadline.
//!
//! A PAM module lives in someone else's process (sshd, sudo). Each call, on vigild's
//! private socket (the default) or through a bus, is one blocking exchange on the
//! calling thread (`socket_call.rs`): no executor, no thread, and no descriptor
//! outlives it. zbus only builds and parses the messages.

use std::time::Duration;

use vigil_protocol::ReauthAnswer;

use crate::args::Target;
use crate::endpoint::Endpoint;
use crate::error::ClientError;

pub use vigil_protocol::OpenRequest;

/// The calls the session logic makes; a fake implements it in unit tests.
pub trait Daemon {
    fn open_session(&self, request: &OpenRequest) -> Result<u64, ClientError>;
    fn close_session(&self, id: u64) -> Result<(), ClientError>;
    fn check_reauth(&self, service: &str, user: &str) -> Result<ReauthAnswer, ClientError>;
    fn record_auth(&self, service: &str, user: &str) -> Result<(), ClientError>;
    fn record_auth_failure(&self, service: &str) -> Result<(), ClientError>;
}

/// vigild over D-Bus, reached as the module arguments say.
pub struct DbusDaemon {
    pub target: Target,
    pub timeout: Duration,
}

impl DbusDaemon {
    /// `member(body)` as one exchange with vigild, its reply's body read as `R`.
    fn call<B, R>(&self, member: &str, body: &B) -> Result<R, ClientError>
    where
        B: serde::Serialize + zbus::wire::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::wire::Type,
    {
        let endpoint = Endpoint::of(&self.target)?;
        let reply = crate::socket_call::call(&endpoint, member, body, self.timeout)?;
        reply.body().deserialize::<R>().map_err(|e| ClientError::Unreachable(format!("{member}: vigild's reply does not parse: {e}")))
    }
}

impl Daemon for DbusDaemon {
    fn open_session(&self, r: &OpenRequest) -> Result<u64, ClientError> {
        let truncated: Vec<&str> = r.truncated.iter().map(String::as_str).collect();
        let (user, service, tty, rhost, ruser) = (r.user.as_str(), r.service.as_str(), r.tty.as_str(), r.rhost.as_str(), r.ruser.as_str());
        let ex = (user, service, tty, rhost, ruser, r.leader_pid, r.audit_session_id, truncated);
        self.call("OpenSessionEx", &ex)
    }

    fn close_session(&self, id: u64) -> Result<(), ClientError> {
        self.call("CloseSession", &(id,))
    }

    fn check_reauth(&self, service: &str, user: &str) -> Result<ReauthAnswer, ClientError> {
        self.call("CheckReauth", &(service, user))
    }

    fn record_auth(&self, service: &str, user: &str) -> Result<(), ClientError> {
        self.call("RecordAuth", &(service, user))
    }

    fn record_auth_failure(&self, service: &str) -> Result<(), ClientError> {
        self.call("RecordAuthFailure", &(service,))
    }
}

impl crate::lock_check::RefusalReport for DbusDaemon {
    fn login_refused(&self, user: &str, pam_user: &str, service: &str, rhost: &str, tty: &str) -> Result<(), ClientError> {
        self.call("RecordLoginRefused", &(user, pam_user, service, rhost, tty))
    }
}
