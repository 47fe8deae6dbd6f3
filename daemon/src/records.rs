//! The audit records vigild writes about sessions: the fields every session record
//! carries, so one grep links them. Why a registration ended is `EndReason`, in the
//! protocol crate with every other event and reason.

use vigil_protocol::audit::Record;
pub use vigil_protocol::events::EndReason;
use vigil_protocol::events::Event;

use crate::registry::Session;

/// The fields every session record carries.
pub fn session_record(event: Event, s: &Session) -> Record {
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
