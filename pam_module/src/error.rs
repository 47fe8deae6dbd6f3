//! Why a call to vigild failed, told apart as records tell it: nobody answered
//! (timeout, unreachable) or vigild, or the bus in front of it, refused.

use std::time::Duration;

use vigil_protocol::VigilError;
use vigil_protocol::events::ModuleFailure;
use zbus::message::Message;

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

/// An error reply as the module reports it, by its name (zbus's reading of it: the
/// bus's own errors, vigild's).
pub(crate) fn error_reply(message: Message) -> ClientError {
    map_call_error(VigilError::from(zbus::Error::from(message)))
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

    /// An error reply as it comes off the wire, to a call of `member`.
    fn reply(member: &str, name: &str, text: &str) -> ClientError {
        let call = Message::method_call("/org/vigil1", member).build(&()).unwrap();
        error_reply(Message::error(&call.header(), name).build(&(text,)).unwrap())
    }

    #[test]
    fn error_replies_are_read_as_the_errors_they_name() {
        let e = reply("OpenSessionEx", "org.vigil1.Error.InvalidArgument", "rhost is longer than 1024 bytes");
        assert_eq!(e.to_string(), "org.vigil1.Error.InvalidArgument: rhost is longer than 1024 bytes");
        assert!(matches!(reply("CloseSession", "org.vigil1.Error.NoSuchSession", "x"), ClientError::NoSuchSession));
        for name in ["ServiceUnknown", "NameHasNoOwner", "NoReply", "LimitsExceeded"] {
            let e = reply("CloseSession", &format!("org.freedesktop.DBus.Error.{name}"), "");
            assert!(!e.is_refusal() && e.reason() == "unreachable", "{name}: {e:?}");
        }
        let e = reply("CloseSession", "org.freedesktop.DBus.Error.AccessDenied", "Rejected send message");
        assert_eq!((e.reason().as_str(), e.error_name()), ("access_denied", Some("org.freedesktop.DBus.Error.AccessDenied")));
        let e = reply("CloseSession", "com.example.Odd", "");
        assert!(e.is_refusal() && e.reason() == "odd", "{e:?}");
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
