//! The audit records vigild writes about sessions: the fields every session record
//! carries, so one grep links them. Why a registration ended is `EndReason`, in the
//! protocol crate with every other event and reason.

use vigil_protocol::audit::Record;
pub use vigil_protocol::events::EndReason;
use vigil_protocol::events::{AlertKind, Event};

use crate::sessions::session::Session;

/// The fields every session record carries.
pub fn session_record(event: Event, s: &Session) -> Record {
    with_session_fields(Record::new(event), s)
}

/// `session_record`, with logind's id for the session looked up already
/// (`logind::session_of` of its audit session).
pub fn session_record_in_logind(event: Event, s: &Session, logind_session: Option<String>) -> Record {
    with_fields(Record::new(event), s, logind_session)
}

/// An `alert` record (written at syslog severity warning): `kind=` first, then the
/// session's fields when the alert is about a session. The caller adds what triggered
/// it and writes it with `audit.write`.
pub fn alert_record(kind: AlertKind, session: Option<&Session>) -> Record {
    let record = Record::new(Event::Alert).text("kind", kind);
    match session {
        Some(s) => with_session_fields(record, s),
        None => record,
    }
}

fn with_session_fields(record: Record, s: &Session) -> Record {
    with_fields(record, s, crate::sys::logind::session_of(s.who.audit_session_id))
}

fn with_fields(record: Record, s: &Session, logind_session: Option<String>) -> Record {
    let ttys = s.tty_names();
    record
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
        .text_opt("logind_session", logind_session)
}

/// What the session's last activity was measured by (the idle records): `activity_by`,
/// the tty and the foreground process that read, and the accesses to its ttys since then
/// that were not reads.
pub fn activity_evidence(record: Record, s: &Session) -> Record {
    let evidence = &s.activity.evidence;
    let ignored = evidence.accesses_ignored;
    record
        .text("activity_by", evidence.source)
        .text_opt("activity_tty", evidence.tty_name())
        .text_opt("activity_reader", (!evidence.reader.is_empty()).then_some(evidence.reader.as_str()))
        .number_opt("accesses_ignored", (ignored > 0).then_some(ignored))
}

/// Another policy block applies to the session now (`cause=tty`: a tty claimed or given
/// up, `reload`); the session's fields name the new one.
pub fn policy_changed(s: &Session, previous: &str, cause: &str) -> Record {
    session_record(Event::SessionPolicyChanged, s).text("previous_policy", previous).text("cause", cause)
}
