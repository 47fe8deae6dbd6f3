//! The audit records vigild writes about sessions: the fields every session record
//! carries, so one grep links them, and why a registration ended.

use vigil_protocol::audit::Record;

use crate::registry::Session;

/// Why a session's registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// close_session from the module.
    Closed,
    /// The leader process exited without close_session.
    LeaderGone,
    /// An admin's TerminateSession.
    Admin,
    /// The idle supervisor: no activity for the idle timeout.
    Idle,
    /// The idle supervisor: older than max_session_age.
    MaxAge,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::LeaderGone => "leader_gone",
            EndReason::Admin => "admin",
            EndReason::Idle => "idle",
            EndReason::MaxAge => "max_age",
        }
    }

    /// `session_close` for the module's own close, `session_end` for everything else.
    pub fn event(self) -> &'static str {
        if self == EndReason::Closed { "session_close" } else { "session_end" }
    }
}

/// The fields every session record carries.
pub fn session_record(event: &'static str, s: &Session) -> Record {
    let ttys = s.tty_names();
    Record::new(event)
        .number("session", s.id)
        .number("ses", s.who.audit_session_id)
        .text("user", &s.who.user)
        .number("uid", s.who.uid)
        .text("service", &s.who.service)
        .text("tty", &s.who.tty)
        .text("rhost", &s.who.rhost)
        .number_opt("rport", s.who.rport)
        .text("ruser", &s.who.ruser)
        .number("leader_pid", s.who.leader_pid)
        .text("policy", &s.policy.policy_name)
        .number("parent", s.who.parent)
        .text_opt("ttys", (!ttys.is_empty()).then(|| ttys.join(",")))
        .text_opt("logind_session", crate::logind::session_of(s.who.audit_session_id))
}
