//! The module's calls to vigild, each under one deadline.
//!
//! A PAM module lives in someone else's process (sshd, sudo). On the private socket (the
//! default) each call is one blocking exchange (`socket_call.rs`). On a bus each call
//! connects, authenticates, calls and drops the connection inside one
//! `zruntime::block_on` on the calling thread: no thread and no descriptor outlives the call (zbus 6 hands a
//! connection that is still alive at the end of `block_on` to a helper thread, so the
//! connection never leaves the future). `zruntime::block_on` is used directly rather
//! than `zbus::block_on`, which switches to a process-wide Tokio runtime whenever
//! another crate in the build enables zbus's `tokio` feature.

use std::future::Future;
use std::time::Duration;

use vigil_protocol::events::ModuleFailure;
use vigil_protocol::{ManagerProxy, ReauthAnswer, VigilError};

use crate::args::Target;

/// Why a call to vigild did not give the answer the module wanted. `Timeout` and
/// `Unreachable` mean nobody answered (`daemon_unreachable` records); `Refused` and
/// `NoSuchSession` mean vigild (or the bus in front of it) answered with an error
/// (`call_refused` records), which is a different thing for an admin to look into.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer within the deadline (vigild hung, or the machine is overloaded).
    #[error("no answer from vigild within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// vigild could not be reached (not running, socket missing, not on the bus).
    #[error("vigild unreachable: {0}")]
    Unreachable(String),
    /// An error reply: `name` is its D-Bus error name (`org.vigil1.Error.InvalidArgument`).
    #[error("{name}: {message}")]
    Refused { name: String, message: String },
    /// vigild does not know the session (it already ended it: idle, admin, leader).
    #[error("vigild has no such session")]
    NoSuchSession,
    /// The module did not call: vigild would refuse the request (`reason`, why).
    #[error("{1}")]
    NotSent(ModuleFailure, &'static str),
}

/// Longest `reason` made from an error name; D-Bus names are at most 255 bytes.
const MAX_REASON_BYTES: usize = 64;

impl ClientError {
    /// True when vigild (or the bus) answered with an error, or would have.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { .. } | ClientError::NoSuchSession | ClientError::NotSent(..))
    }

    /// The word records use for this failure: `timeout`, `unreachable`, or for a
    /// refusal the last part of its error name in snake case
    /// (`org.vigil1.Error.InvalidArgument` → `invalid_argument`).
    pub fn reason(&self) -> String {
        match self {
            ClientError::Timeout(_) => ModuleFailure::Timeout.as_str().into(),
            ClientError::Unreachable(_) => ModuleFailure::Unreachable.as_str().into(),
            ClientError::Refused { name, .. } => snake_case(name.rsplit('.').next().unwrap_or(name)),
            ClientError::NoSuchSession => "no_such_session".into(),
            ClientError::NotSent(reason, _) => reason.as_str().into(),
        }
    }

    /// The D-Bus error name of a refusal.
    pub fn error_name(&self) -> Option<&str> {
        match self {
            ClientError::Refused { name, .. } => Some(name),
            ClientError::NoSuchSession => Some("org.vigil1.Error.NoSuchSession"),
            _ => None,
        }
    }
}

/// `InvalidArgument` → `invalid_argument`; anything but ASCII letters and digits is
/// dropped (the name comes from the peer).
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars().filter(char::is_ascii_alphanumeric) {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        if out.len() >= MAX_REASON_BYTES {
            break;
        }
    }
    if out.is_empty() { "unnamed".into() } else { out }
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

/// Error replies that mean nobody behind the bus took the call: vigild is not on the
/// bus, or the bus gave up on it. Every other error reply is an answer.
fn is_unanswered(error: &zbus::fdo::Error) -> bool {
    use zbus::fdo::Error as E;
    matches!(
        error,
        E::ServiceUnknown(_)
            | E::NameHasNoOwner(_)
            | E::NoReply(_)
            | E::Timeout(_)
            | E::TimedOut(_)
            | E::NoServer(_)
            | E::Disconnected(_)
            | E::NoNetwork(_)
            | E::LimitsExceeded(_)
            | E::NoMemory(_)
            | E::IOError(_)
    )
}

fn map_call_error(error: VigilError) -> ClientError {
    use zbus::DBusError;
    match error {
        VigilError::NoSuchSession(_) => ClientError::NoSuchSession,
        VigilError::ZBus(zbus::Error::FDO(e)) if is_unanswered(&e) => ClientError::Unreachable(e.to_string()),
        VigilError::ZBus(zbus::Error::FDO(e)) => {
            ClientError::Refused { name: e.name().to_string(), message: e.description().unwrap_or_default().to_string() }
        }
        VigilError::ZBus(zbus::Error::MethodError(name, message, _)) => {
            ClientError::Refused { name: name.to_string(), message: message.unwrap_or_default() }
        }
        VigilError::ZBus(e) => ClientError::Unreachable(e.to_string()),
        other => ClientError::Refused { name: other.name().to_string(), message: other.description().unwrap_or_default().to_string() },
    }
}

/// A vigild from before `OpenSessionEx` (an upgrade whose restart has not happened
/// yet) answers UnknownMethod; it still takes `OpenSession`, so a login keeps its
/// supervision. Only the `truncated=` note is lost in that vigild's record.
fn is_unknown_method(error: &VigilError) -> bool {
    matches!(error, VigilError::ZBus(zbus::Error::FDO(e)) if matches!(**e, zbus::fdo::Error::UnknownMethod(_)))
}

impl DbusDaemon {
    /// vigild's private socket, when that is the target: each call is one blocking
    /// exchange (`socket_call`) instead of a zbus connection.
    fn socket(&self) -> Option<&std::path::Path> {
        match &self.target {
            Target::Socket(path) => Some(path),
            Target::Bus(_) => None,
        }
    }

    /// `member(body)` over the private socket, its reply's body read as `R`.
    fn direct<B, R>(&self, path: &std::path::Path, member: &str, body: &B) -> Result<R, ClientError>
    where
        B: serde::Serialize + zbus::wire::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::wire::Type,
    {
        let reply = crate::socket_call::call(path, member, body, self.timeout)?;
        reply.body().deserialize::<R>().map_err(|e| ClientError::Unreachable(format!("{member}: vigild's reply does not parse: {e}")))
    }

    fn open_direct(&self, path: &std::path::Path, r: &OpenRequest) -> Result<u64, ClientError> {
        let truncated: Vec<&str> = r.truncated.iter().map(String::as_str).collect();
        let (user, service, tty, rhost, ruser) = (r.user.as_str(), r.service.as_str(), r.tty.as_str(), r.rhost.as_str(), r.ruser.as_str());
        let ex = (user, service, tty, rhost, ruser, r.leader_pid, r.audit_session_id, truncated);
        match self.direct(path, "OpenSessionEx", &ex) {
            Err(ClientError::Refused { name, .. }) if name == UNKNOWN_METHOD => {
                self.direct(path, "OpenSession", &(user, service, tty, rhost, ruser, r.leader_pid, r.audit_session_id))
            }
            answer => answer,
        }
    }
}

/// The error name of a call to a method the peer does not have.
const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";

impl Daemon for DbusDaemon {
    fn open_session(&self, r: &OpenRequest) -> Result<u64, ClientError> {
        if let Some(path) = self.socket() {
            return self.open_direct(path, r);
        }
        let r = r.clone();
        self.with_manager(move |m| async move {
            let truncated: Vec<&str> = r.truncated.iter().map(String::as_str).collect();
            let (user, service, tty, rhost, ruser) = (&r.user, &r.service, &r.tty, &r.rhost, &r.ruser);
            match m.open_session_ex(user, service, tty, rhost, ruser, r.leader_pid, r.audit_session_id, &truncated).await {
                Err(e) if is_unknown_method(&e) => m.open_session(user, service, tty, rhost, ruser, r.leader_pid, r.audit_session_id).await,
                answer => answer,
            }
        })
    }

    fn close_session(&self, id: u64) -> Result<(), ClientError> {
        if let Some(path) = self.socket() {
            return self.direct(path, "CloseSession", &(id,));
        }
        self.with_manager(move |m| async move { m.close_session(id).await })
    }

    fn check_reauth(&self, service: &str, user: &str) -> Result<ReauthAnswer, ClientError> {
        if let Some(path) = self.socket() {
            return self.direct(path, "CheckReauth", &(service, user));
        }
        let (service, user) = (service.to_string(), user.to_string());
        self.with_manager(move |m| async move { m.check_reauth(&service, &user).await })
    }

    fn record_auth(&self, service: &str, user: &str) -> Result<(), ClientError> {
        if let Some(path) = self.socket() {
            return self.direct(path, "RecordAuth", &(service, user));
        }
        let (service, user) = (service.to_string(), user.to_string());
        self.with_manager(move |m| async move { m.record_auth(&service, &user).await })
    }

    fn record_auth_failure(&self, service: &str) -> Result<(), ClientError> {
        if let Some(path) = self.socket() {
            return self.direct(path, "RecordAuthFailure", &(service,));
        }
        let service = service.to_string();
        self.with_manager(move |m| async move { m.record_auth_failure(&service).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vigild_errors_are_refusals_named_after_their_error() {
        let e = map_call_error(VigilError::InvalidArgument("rhost is longer than 1024 bytes".into()));
        assert!(e.is_refusal());
        assert_eq!(e.reason(), "invalid_argument");
        assert_eq!(e.error_name(), Some("org.vigil1.Error.InvalidArgument"));
        assert_eq!(e.to_string(), "org.vigil1.Error.InvalidArgument: rhost is longer than 1024 bytes");
        assert_eq!(map_call_error(VigilError::AccessDenied("x".into())).reason(), "access_denied");
        assert!(matches!(map_call_error(VigilError::NoSuchSession("x".into())), ClientError::NoSuchSession));
    }

    #[test]
    fn bus_errors_that_mean_nobody_answered_are_outages() {
        use zbus::fdo::Error as Fdo;
        for e in [Fdo::ServiceUnknown("".into()), Fdo::NameHasNoOwner("".into()), Fdo::NoReply("".into())] {
            let e = map_call_error(VigilError::ZBus(zbus::Error::FDO(Box::new(e))));
            assert!(!e.is_refusal() && e.reason() == "unreachable", "{e:?}");
        }
        // The bus policy, or a vigild without the method: an answer.
        let e = map_call_error(VigilError::ZBus(zbus::Error::FDO(Box::new(Fdo::AccessDenied("Rejected send message".into())))));
        assert!(e.is_refusal());
        assert_eq!((e.reason().as_str(), e.error_name()), ("access_denied", Some("org.freedesktop.DBus.Error.AccessDenied")));
        let e =
            map_call_error(VigilError::ZBus(zbus::Error::InputOutput(std::sync::Arc::new(std::io::ErrorKind::ConnectionRefused.into()))));
        assert!(!e.is_refusal() && e.reason() == "unreachable", "{e:?}");
        assert_eq!(ClientError::Timeout(Duration::from_secs(2)).reason(), "timeout");
    }

    #[test]
    fn unknown_method_is_recognised_for_the_open_session_fallback() {
        let unknown = VigilError::ZBus(zbus::Error::FDO(Box::new(zbus::fdo::Error::UnknownMethod("OpenSessionEx".into()))));
        assert!(is_unknown_method(&unknown));
        assert!(!is_unknown_method(&VigilError::InvalidArgument("x".into())));
    }

    #[test]
    fn reasons_are_short_snake_case_identifiers() {
        assert_eq!(snake_case("InvalidArgument"), "invalid_argument");
        assert_eq!(snake_case("Failed"), "failed");
        assert_eq!(snake_case("Bad Name\n\"x\""), "bad_namex");
        assert_eq!(snake_case(""), "unnamed");
        assert!(snake_case(&"Ab".repeat(200)).len() <= MAX_REASON_BYTES + 1);
    }
}
