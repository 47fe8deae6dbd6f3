//! The inhibitor methods of `org.vigil1.Manager` (Inhibit, CancelInhibit,
//! ListInhibitors) and the supervisor's expiry: which session a caller's inhibitor is
//! for, and the records it leaves. The rules themselves are `inhibit.rs`.

use std::time::Duration;

use vigil_protocol::audit::Record;
use vigil_protocol::events::{CallRefusal, Event, InhibitCancelledBy, InhibitEndReason};
// `until` as RFC 3339 (UTC, seconds): bare in a record, readable by an admin.
use vigil_protocol::time::rfc3339_seconds as rfc3339;
use vigil_protocol::{InhibitorInfo, MAX_INHIBIT_WHY_BYTES, VigilError};

use crate::audit::records::session_record;
use crate::rpc::caller::Caller;
use crate::sessions::inhibit::{Inhibitor, Refusal, check};
use crate::sessions::manager::{Manager, now_usec};
use crate::sessions::session::Session;

fn inhibit_end(session: &Session, inhibitor: &Inhibitor, reason: InhibitEndReason) -> Record {
    session_record(Event::InhibitEnd, session)
        .text("reason", reason)
        .text("why", &inhibitor.why)
        .text("until", rfc3339(inhibitor.until_usec))
}

impl Manager {
    /// Inhibit: any user, for the session they call from.
    pub fn inhibit(&self, caller: Caller, duration_usec: u64, why: &str) -> Result<u64, VigilError> {
        // Checked before anything is looked up: a megabyte of reason costs nothing.
        if why.len() > MAX_INHIBIT_WHY_BYTES {
            return Err(VigilError::InvalidArgument(Refusal::WhyTooLong(why.len()).to_string()));
        }
        self.spend_user_call(&caller, "Inhibit")?;
        let (id, _) = self.caller_session(&caller, "Inhibit")?;
        let now = now_usec();
        let duration = Duration::from_micros(duration_usec);
        let granted = {
            let mut registry = self.registry();
            let session = registry.get_mut(id).ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))?;
            check(&session.policy, duration, why).map_err(|refusal| VigilError::InvalidArgument(refusal.to_string()))?;
            let mut budget = session.inhibit_budget;
            budget.renew(session.last_activity_usec, session.inhibitor.as_ref());
            if let Some(running) = &session.inhibitor {
                budget.give_back(running, now);
            }
            match budget.check(&session.policy, duration) {
                Ok(()) => {
                    budget.spent_usec = budget.spent_usec.saturating_add(duration_usec);
                    session.inhibit_budget = budget;
                    let new = Inhibitor { since_usec: now, until_usec: now.saturating_add(duration_usec), why: why.to_owned() };
                    let old = session.inhibitor.replace(new);
                    let granted = (old, session.clone());
                    if granted.0.is_none() {
                        registry.inhibitor_count(true);
                    }
                    Ok(granted)
                }
                Err(refusal) => Err(refusal),
            }
        };
        let (old, session) = match granted {
            Ok(granted) => granted,
            Err(refusal) => {
                self.refuse(&caller, "Inhibit", CallRefusal::InhibitBudgetSpent);
                return Err(VigilError::InvalidArgument(refusal.to_string()));
            }
        };
        self.save(Some(session.saved()));
        if let Some(old) = &old {
            self.audit.write(inhibit_end(&session, old, InhibitEndReason::Cancelled).text("by", InhibitCancelledBy::Replaced));
        }
        let until = session.inhibitor.as_ref().map_or(now, |i| i.until_usec);
        self.audit.write(
            session_record(Event::InhibitStart, &session)
                .text("why", why)
                .text("until", rfc3339(until))
                .number("duration_s", duration.as_secs())
                .number("inhibited_s", session.inhibit_budget.spent_usec / 1_000_000)
                .number("pid", caller.pid),
        );
        self.session_changed(id);
        Ok(until)
    }

    /// CancelInhibit: `id` 0 is the caller's own session; another session only for root
    /// or its user (anyone else is told it does not exist, as with GetSession).
    pub fn cancel_inhibit(&self, caller: Caller, id: u64) -> Result<bool, VigilError> {
        self.spend_user_call(&caller, "CancelInhibit")?;
        let id = if id == 0 { self.caller_session(&caller, "CancelInhibit")?.0 } else { id };
        let by = if caller.is_root() { InhibitCancelledBy::Root } else { InhibitCancelledBy::User };
        let (old, session) = {
            let mut registry = self.registry();
            let session = registry
                .get_mut(id)
                .filter(|s| caller.is_root() || s.who.uid == caller.uid)
                .ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))?;
            let Some(old) = session.inhibitor.take() else { return Ok(false) };
            session.inhibit_budget.give_back(&old, now_usec());
            let cancelled = (old, session.clone());
            registry.inhibitor_count(false);
            cancelled
        };
        self.save(Some(session.saved()));
        self.audit.write(inhibit_end(&session, &old, InhibitEndReason::Cancelled).text("by", by).number("pid", caller.pid));
        self.session_changed(id);
        Ok(true)
    }

    /// ListInhibitors: like ListSessions, root sees all, a user their own.
    pub fn list_inhibitors(&self, caller: Caller) -> Vec<InhibitorInfo> {
        self.registry()
            .values()
            .filter(|s| caller.is_root() || caller.uid == s.who.uid)
            .filter_map(|s| {
                let i = s.inhibitor.as_ref()?;
                Some(InhibitorInfo { session: s.id, since_usec: i.since_usec, until_usec: i.until_usec, why: i.why.clone() })
            })
            .collect()
    }

    /// Drops the session's inhibitor once it has expired (the supervisor's check).
    pub fn expire_inhibitor(&self, id: u64, now: u64) {
        let expired = {
            let mut registry = self.registry();
            let Some(session) = registry.get_mut(id) else { return };
            if session.inhibitor.as_ref().is_none_or(|i| i.until_usec > now) {
                return;
            }
            let expired = session.inhibitor.take().map(|old| (old, session.clone()));
            registry.inhibitor_count(false);
            expired
        };
        let Some((old, session)) = expired else { return };
        self.save(Some(session.saved()));
        self.audit.write(inhibit_end(&session, &old, InhibitEndReason::Expired));
    }

    /// The session ended with its inhibitor still running: recorded before its end.
    pub fn inhibitor_ended_with(&self, session: &Session) {
        if let Some(old) = &session.inhibitor {
            self.audit.write(inhibit_end(session, old, InhibitEndReason::SessionEnd));
        }
    }

    fn session_changed(&self, id: u64) {
        for hooks in self.hooks() {
            hooks.session_changed(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_hostile_reason_cannot_forge_a_record() {
        let mut session = Session::new(
            3,
            crate::sessions::registry::tests::identity(10, 4),
            std::sync::Arc::new(crate::sessions::manager::policy_for_tests()),
            1,
        );
        let why = "x\" reason=expired\nevent=session_end session=3 \u{1b}[2J";
        session.inhibitor = Some(Inhibitor { since_usec: 0, until_usec: 60 * S, why: why.into() });
        let line = inhibit_end(&session, session.inhibitor.as_ref().unwrap(), InhibitEndReason::Cancelled).to_kv_line();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        let fields = vigil_protocol::audit::parse_kv_line(&line).unwrap();
        let get = |k: &str| fields.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
        assert_eq!(get("why"), vec![why.as_bytes().to_vec()]);
        assert_eq!(get("reason"), vec![b"cancelled".to_vec()]);
        assert_eq!(get("event"), vec![b"inhibit_end".to_vec()]);
        assert_eq!(get("until"), vec![b"1970-01-01T00:01:00Z".to_vec()]);
    }
}
