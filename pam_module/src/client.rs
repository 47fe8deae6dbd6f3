//! The module's calls to vigild, each under one deadline.
//!
//! A PAM module lives in someone else's process (sshd, sudo). Each call connects,
//! authenticates, calls and drops the connection inside one `zruntime::block_on` on the
//! calling thread: no thread and no descriptor outlives the call (zbus 6 hands a
//! connection that is still alive at the end of `block_on` to a helper thread, so the
//! connection never leaves the future). `zruntime::block_on` is used directly rather
//! than `zbus::block_on`, which switches to a process-wide Tokio runtime whenever
//! another crate in the build enables zbus's `tokio` feature.

use std::future::Future;
use std::time::Duration;

use vigil_protocol::{ManagerProxy, ReauthAnswer, VigilError};

use crate::args::Target;

/// Why a call to vigild did not give an answer.
#[derive(Debug)]
pub enum ClientError {
    /// No answer within the deadline (vigild hung, or the machine is overloaded).
    Timeout(Duration),
    /// vigild could not be reached (not running, socket missing, bus refused).
    Unreachable(String),
    /// vigild answered with an error.
    Refused(String),
    /// vigild does not know the session (it already ended it: idle, admin, leader).
    NoSuchSession,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Timeout(d) => write!(f, "no answer from vigild within {}", humantime::format_duration(*d)),
            ClientError::Unreachable(why) => write!(f, "vigild unreachable: {why}"),
            ClientError::Refused(why) => write!(f, "vigild refused: {why}"),
            ClientError::NoSuchSession => write!(f, "vigild has no such session"),
        }
    }
}

impl ClientError {
    /// The word audit records use for this failure.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Timeout(_) => "timeout",
            ClientError::Unreachable(_) => "unreachable",
            ClientError::Refused(_) => "refused",
            ClientError::NoSuchSession => "no_such_session",
        }
    }
}

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
    /// Runs `call` against a fresh connection, all within the deadline, on this thread.
    fn with_manager<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: FnOnce(ManagerProxy<'static>) -> Fut,
        Fut: Future<Output = Result<T, VigilError>>,
    {
        let deadline = self.timeout;
        zruntime::block_on(async move {
            let runtime = zruntime::SharedRuntime::current().map_err(|e| ClientError::Unreachable(e.to_string()))?;
            let exchange = async {
                let connection = self.target.connect().await.map_err(|e| ClientError::Unreachable(e.to_string()))?;
                // No property cache: it would subscribe to signals and fetch properties
                // the module never reads.
                let proxy = ManagerProxy::builder(&connection)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await
                    .map_err(|e| ClientError::Unreachable(e.to_string()))?;
                let answer = call(proxy).await.map_err(map_call_error);
                // Dropped here, inside block_on, so that no helper thread inherits it.
                drop(connection);
                answer
            };
            match runtime.timeout(deadline, exchange).await {
                Ok(answer) => answer,
                Err(_) => Err(ClientError::Timeout(deadline)),
            }
        })
    }

}

fn map_call_error(error: VigilError) -> ClientError {
    match error {
        VigilError::ZBus(e) => ClientError::Unreachable(e.to_string()),
        VigilError::NoSuchSession(_) => ClientError::NoSuchSession,
        other => ClientError::Refused(format!("{other:?}")),
    }
}

impl Daemon for DbusDaemon {
    fn open_session(&self, r: &OpenRequest) -> Result<u64, ClientError> {
        let r = r.clone();
        self.with_manager(move |m| async move {
            m.open_session(&r.user, &r.service, &r.tty, &r.rhost, &r.ruser, r.leader_pid, r.audit_session_id)
                .await
        })
    }

    fn close_session(&self, id: u64) -> Result<(), ClientError> {
        self.with_manager(move |m| async move { m.close_session(id).await })
    }

    fn check_reauth(&self, service: &str, user: &str) -> Result<ReauthAnswer, ClientError> {
        let (service, user) = (service.to_string(), user.to_string());
        self.with_manager(move |m| async move { m.check_reauth(&service, &user).await })
    }

    fn record_auth(&self, service: &str, user: &str) -> Result<(), ClientError> {
        let (service, user) = (service.to_string(), user.to_string());
        self.with_manager(move |m| async move { m.record_auth(&service, &user).await })
    }

    fn record_auth_failure(&self, service: &str) -> Result<(), ClientError> {
        let service = service.to_string();
        self.with_manager(move |m| async move { m.record_auth_failure(&service).await })
    }
}
