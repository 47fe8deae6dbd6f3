//! The session registry: every registered session, and the indexes that find one by
//! leader, tty and audit session. No I/O here: the manager holds the registry under one
//! lock and does the saving, auditing and signalling after releasing it.
//!
//! A session's ttys live in one place (`Session::ttys`), changed only through the
//! registry so the tty index can never disagree with them; the wire struct
//! (`SessionInfo`) is built from a session at the D-Bus edge and stored nowhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::sessions::session::Session;
use crate::sys::procfs::NO_AUDIT_SESSION;
use crate::sys::ttys::TtyNr;

/// Every session, and the indexes over them.
#[derive(Default)]
pub struct Registry {
    /// Boxed: a B-tree node holds 11 entries and is about half full when ids come in
    /// order, so inline sessions (some 400 bytes) would waste that much again.
    sessions: BTreeMap<u64, Box<Session>>,
    /// (leader pid, session id) of every login (non-nested) session: one set for all
    /// leaders rather than one per leader (a set each cost a tree node per session).
    by_leader: BTreeSet<(u32, u64)>,
    /// Which session each adopted tty belongs to.
    by_tty: HashMap<TtyNr, u64>,
    /// The wall clock's offset from the boot clock that every session's times are in.
    clock_offset_usec: i64,
    /// Audit session id → the login session that owns it.
    by_audit_session: HashMap<u32, u64>,
    /// Audit session id → how many sessions carry it (owned or inherited).
    audit_session_refs: HashMap<u32, usize>,
    /// Uid → how many sessions its user has (a new pty owned by a user with none cannot
    /// be a session's).
    uid_refs: HashMap<u32, usize>,
    /// PAM service → sessions without and with a tty (the metrics' `vigil_sessions`),
    /// kept as sessions come and go and claim or give up ttys: a scrape reads this, not
    /// every session (10,000 sessions walked cold cost a millisecond).
    by_service: HashMap<String, [u64; 2]>,
    /// Sessions holding an idle inhibitor: counted at insert and remove, and by
    /// [`Registry::inhibitor_count`] where a call takes or drops one.
    inhibited: u64,
}

/// The metrics' gauges the registry keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// (service, holds a tty) → sessions, sorted.
    pub sessions: Vec<((String, bool), u64)>,
    pub inhibitors: u64,
}

impl Registry {
    /// Registers a session and indexes it. Its ttys already claimed by another session
    /// are dropped from it (a tty belongs to one session).
    pub fn insert(&mut self, mut session: Session) {
        let id = session.id;
        session.clock_offset_usec = self.clock_offset_usec;
        *self.uid_refs.entry(session.who.uid).or_default() += 1;
        if session.who.audit_session_id != NO_AUDIT_SESSION {
            *self.audit_session_refs.entry(session.who.audit_session_id).or_default() += 1;
        }
        if !session.is_nested() {
            self.by_leader.insert((session.who.leader_pid, id));
            if session.who.owns_audit_session && session.who.audit_session_id != NO_AUDIT_SESSION {
                self.by_audit_session.insert(session.who.audit_session_id, id);
            }
        }
        let by_tty = &mut self.by_tty;
        session.ttys.retain(|&tty| match by_tty.get(&tty) {
            Some(&owner) if owner != id => false,
            _ => {
                by_tty.insert(tty, id);
                true
            }
        });
        self.count_kind(&session.who.service, session.has_tty(), true);
        self.inhibited += u64::from(session.inhibitor.is_some());
        self.sessions.insert(id, Box::new(session));
    }

    /// One session more (`add`) or less of `service` with or without a tty.
    fn count_kind(&mut self, service: &str, tty: bool, add: bool) {
        let slot = usize::from(tty);
        match self.by_service.get_mut(service) {
            Some(counts) if add => counts[slot] += 1,
            Some(counts) => {
                counts[slot] = counts[slot].saturating_sub(1);
                if counts == &[0, 0] {
                    self.by_service.remove(service);
                }
            }
            None if add => {
                let mut counts = [0, 0];
                counts[slot] = 1;
                self.by_service.insert(service.to_string(), counts);
            }
            None => {}
        }
    }

    /// A session's tty count went from none to some (`true`) or back.
    fn tty_kind_changed(&mut self, id: u64, has_tty: bool) {
        let Some(service) = self.sessions.get(&id).map(|s| s.who.service.clone()) else { return };
        self.count_kind(&service, !has_tty, false);
        self.count_kind(&service, has_tty, true);
    }

    /// An inhibitor taken (`true`) or dropped on a registered session: for the calls that
    /// change `Session::inhibitor` through [`Registry::get_mut`].
    pub fn inhibitor_count(&mut self, taken: bool) {
        if taken {
            self.inhibited += 1;
        } else {
            self.inhibited = self.inhibited.saturating_sub(1);
        }
    }

    /// The metrics' gauges, without a look at any session.
    pub fn census(&self) -> Census {
        let mut sessions: Vec<((String, bool), u64)> = self
            .by_service
            .iter()
            .flat_map(|(service, counts)| {
                [false, true]
                    .into_iter()
                    .filter(|&tty| counts[usize::from(tty)] > 0)
                    .map(|tty| ((service.clone(), tty), counts[usize::from(tty)]))
            })
            .collect();
        sessions.sort_unstable();
        Census { sessions, inhibitors: self.inhibited }
    }

    /// The clock offset the sessions' times are in.
    pub fn clock_offset(&self) -> i64 {
        self.clock_offset_usec
    }

    /// Sets the clock offset, before any session is registered.
    pub fn set_clock_offset(&mut self, offset: i64) {
        self.clock_offset_usec = offset;
    }

    /// Moves every session's times by a step of the wall clock; the offset they are in
    /// moves with them.
    pub fn shift_clock(&mut self, delta: i64) {
        for session in self.values_mut() {
            session.shift_clock(delta);
        }
        self.clock_offset_usec += delta;
    }

    /// Removes a session and every index entry of it.
    pub fn remove(&mut self, id: u64) -> Option<Session> {
        let session = *self.sessions.remove(&id)?;
        self.count_kind(&session.who.service, session.has_tty(), false);
        self.inhibited = self.inhibited.saturating_sub(u64::from(session.inhibitor.is_some()));
        for tty in &session.ttys {
            if self.by_tty.get(tty) == Some(&id) {
                self.by_tty.remove(tty);
            }
        }
        self.by_leader.remove(&(session.who.leader_pid, id));
        let ses = session.who.audit_session_id;
        if self.by_audit_session.get(&ses) == Some(&id) {
            self.by_audit_session.remove(&ses);
        }
        release(&mut self.audit_session_refs, ses);
        release(&mut self.uid_refs, session.who.uid);
        Some(session)
    }

    pub fn get(&self, id: u64) -> Option<&Session> {
        self.sessions.get(&id).map(|s| &**s)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Session> {
        self.sessions.get_mut(&id).map(|s| &mut **s)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.sessions.keys().copied().collect()
    }

    pub fn values(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values().map(|s| &**s)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Session> {
        self.sessions.values_mut().map(|s| &mut **s)
    }

    /// The login session that owns audit session `ses`.
    pub fn by_audit_session(&self, ses: u32) -> Option<u64> {
        self.by_audit_session.get(&ses).copied()
    }

    /// Whether some registered session stands for audit session `ses` (owns it, or
    /// inherited it): the sweep leaves those alone.
    pub fn holds_audit_session(&self, ses: u32) -> bool {
        self.audit_session_refs.contains_key(&ses)
    }

    /// Whether the user with this uid has any session.
    pub fn has_sessions_of(&self, uid: u32) -> bool {
        self.uid_refs.contains_key(&uid)
    }

    /// The latest login session led by `pid`.
    pub fn led_by(&self, pid: u32) -> Option<u64> {
        self.by_leader.range((pid, 0)..=(pid, u64::MAX)).next_back().map(|&(_, id)| id)
    }

    pub fn owner_of_tty(&self, tty: TtyNr) -> Option<u64> {
        self.by_tty.get(&tty).copied()
    }

    /// The registered, non-nested session whose leader is `pid` or an ancestor of it.
    /// `parent_of` gives a process's parent (from /proc, or from a snapshot).
    pub fn enclosing_session(&self, pid: u32, parent_of: impl Fn(u32) -> Option<u32>) -> Option<u64> {
        if self.by_leader.is_empty() {
            return None;
        }
        let mut current = pid;
        // Bounded by the depth of the process tree (and 4096 for a corrupt snapshot).
        for _ in 0..4096 {
            // A process that leads several sessions (a test host) gives its latest.
            if let Some(id) = self.led_by(current) {
                return Some(id);
            }
            match parent_of(current) {
                Some(ppid) if ppid > 1 => current = ppid,
                _ => return None,
            }
        }
        None
    }

    /// Adds a tty to a login session. False when the tty is the leader's inherited
    /// one, already someone's, or the session is nested or gone.
    pub fn adopt_tty(&mut self, id: u64, tty: TtyNr) -> bool {
        if self.by_tty.contains_key(&tty) {
            return false;
        }
        let Some(session) = self.sessions.get_mut(&id) else { return false };
        if tty == session.who.inherited_tty || session.is_nested() {
            return false;
        }
        self.by_tty.insert(tty, id);
        let first = session.ttys.is_empty();
        session.ttys.insert(tty);
        if first {
            self.tty_kind_changed(id, true);
        }
        true
    }

    /// Takes a tty from a session that no longer holds it. False when it was not the
    /// session's.
    pub fn release_tty(&mut self, id: u64, tty: TtyNr) -> bool {
        if self.by_tty.get(&tty) != Some(&id) {
            return false;
        }
        self.by_tty.remove(&tty);
        self.take_tty(id, tty);
        true
    }

    /// Removes `tty` from session `id`'s set (the index is the caller's).
    fn take_tty(&mut self, id: u64, tty: TtyNr) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if session.ttys.remove(&tty) && session.ttys.is_empty() {
            self.tty_kind_changed(id, false);
        }
    }

    /// A tty device went away (pty closed): the session that had it.
    pub fn drop_tty(&mut self, tty: TtyNr) -> Option<u64> {
        let id = self.by_tty.remove(&tty)?;
        self.take_tty(id, tty);
        Some(id)
    }
}

/// Drops one reference to `key`, and the key with its last one.
fn release(refs: &mut HashMap<u32, usize>, key: u32) {
    if let Some(n) = refs.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            refs.remove(&key);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use vigil_config::Config;

    use super::*;
    use crate::sessions::inhibit::Inhibitor;
    use crate::sessions::reauth::Proof;
    use crate::sessions::session::{Identity, SavedSession};
    use crate::supervise::idle::Limit;

    pub fn identity(leader_pid: u32, ses: u32) -> Identity {
        Identity {
            user: "alice".into(),
            uid: 1000,
            groups: vec!["alice".into()],
            service: "sshd".into(),
            tty: "ssh".into(),
            rhost: "203.0.113.7".into(),
            ruser: String::new(),
            rport: Some(50022),
            leader_pid,
            leader_start: 77,
            audit_session_id: ses,
            owns_audit_session: ses != NO_AUDIT_SESSION,
            inherited_tty: 0,
            parent: 0,
            started_usec: 1,
            adopted: false,
        }
    }

    fn session(id: u64, leader: u32, ses: u32) -> Session {
        Session::new(id, identity(leader, ses), Arc::new(crate::sessions::manager::policy_for_tests()), 1)
    }

    /// The census a walk over every session would give.
    fn walked(r: &Registry) -> Census {
        let mut by: std::collections::BTreeMap<(String, bool), u64> = std::collections::BTreeMap::new();
        for s in r.values() {
            *by.entry((s.who.service.clone(), s.has_tty())).or_default() += 1;
        }
        Census { sessions: by.into_iter().collect(), inhibitors: r.values().filter(|s| s.inhibitor.is_some()).count() as u64 }
    }

    #[test]
    fn the_census_follows_sessions_ttys_and_inhibitors() {
        let mut r = Registry::default();
        let check = |r: &Registry, sessions: &[(&str, bool, u64)], inhibitors: u64| {
            let census = r.census();
            assert_eq!(census, walked(r));
            let want: Vec<((String, bool), u64)> = sessions.iter().map(|(s, t, n)| ((s.to_string(), *t), *n)).collect();
            assert_eq!((census.sessions, census.inhibitors), (want, inhibitors));
        };
        r.insert(session(1, 100, 5));
        let mut cron = session(2, 101, 6);
        cron.who.service = "cron".into();
        cron.inhibitor = Some(Inhibitor { since_usec: 1, until_usec: 2, why: "w".into() });
        r.insert(cron);
        check(&r, &[("cron", false, 1), ("sshd", false, 1)], 1);
        assert!(r.adopt_tty(1, 34816) && r.adopt_tty(1, 34817));
        check(&r, &[("cron", false, 1), ("sshd", true, 1)], 1);
        assert!(r.release_tty(1, 34816));
        check(&r, &[("cron", false, 1), ("sshd", true, 1)], 1);
        assert_eq!(r.drop_tty(34817), Some(1));
        check(&r, &[("cron", false, 1), ("sshd", false, 1)], 1);
        r.get_mut(2).unwrap().inhibitor = None;
        r.inhibitor_count(false);
        check(&r, &[("cron", false, 1), ("sshd", false, 1)], 0);
        assert!(r.adopt_tty(1, 34818));
        r.remove(1);
        r.remove(2);
        check(&r, &[], 0);
        assert!(r.by_service.is_empty());
    }

    #[test]
    fn indexes_follow_insert_and_remove() {
        let mut r = Registry::default();
        r.insert(session(1, 100, 5));
        r.insert(session(2, 100, NO_AUDIT_SESSION));
        assert!(r.has_sessions_of(1000) && !r.has_sessions_of(0));
        assert!(r.adopt_tty(1, 34816));
        assert!(!r.adopt_tty(2, 34816), "a tty belongs to one session");
        assert_eq!(r.owner_of_tty(34816), Some(1));
        assert!(!r.release_tty(2, 34816), "only its claimant gives a tty up");
        assert!(r.release_tty(1, 34816) && r.owner_of_tty(34816).is_none() && r.get(1).unwrap().ttys().is_empty());
        assert!(r.adopt_tty(1, 34816));
        assert_eq!(r.by_audit_session(5), Some(1));
        assert_eq!(r.led_by(100), Some(2));
        assert_eq!(r.enclosing_session(300, |p| (p == 300).then_some(100)), Some(2));
        let removed = r.remove(1).unwrap();
        assert_eq!(removed.ttys().len(), 1);
        assert_eq!((r.owner_of_tty(34816), r.by_audit_session(5), r.led_by(100)), (None, None, Some(2)));
        r.remove(2);
        assert_eq!((r.len(), r.led_by(100)), (0, None));
        assert!(
            r.by_leader.is_empty()
                && r.by_tty.is_empty()
                && r.by_audit_session.is_empty()
                && r.audit_session_refs.is_empty()
                && r.uid_refs.is_empty()
        );
    }

    #[test]
    fn nested_sessions_take_no_tty_and_lead_nothing() {
        let mut r = Registry::default();
        let mut nested = session(3, 200, 6);
        nested.who.parent = 1;
        r.insert(nested);
        assert!(!r.adopt_tty(3, 34817));
        assert_eq!((r.led_by(200), r.by_audit_session(6)), (None, None));
        assert!(r.holds_audit_session(6) && !r.holds_audit_session(7));
        r.remove(3);
        assert!(!r.holds_audit_session(6));
    }

    #[test]
    fn a_clock_step_moves_every_time_a_session_holds_and_nothing_else() {
        const S: u64 = 1_000_000;
        let mut r = Registry::default();
        r.set_clock_offset(500 * S as i64);
        let mut s = session(6, 600, 9);
        s.who.started_usec = 1000 * S;
        s.last_activity_usec = 1100 * S;
        s.deadline_usec = 1400 * S;
        s.activity.warned = Some((Limit::Idle, 1390 * S));
        s.activity.last_input_event_usec = 1100 * S;
        s.activity.proofs.insert(0, Proof::new(1050 * S));
        s.inhibitor = Some(Inhibitor { since_usec: 1060 * S, until_usec: 1960 * S, why: "job".into() });
        r.insert(s);
        assert_eq!(r.get(6).unwrap().clock_offset_usec, 500 * S as i64, "a new session is in the registry's clock");
        // The wall clock is set 3600 s ahead: every time moves with it.
        let hour = 3600 * S;
        r.shift_clock(hour as i64);
        let s = r.get(6).unwrap();
        assert_eq!((s.who.started_usec, s.last_activity_usec, s.deadline_usec), (1000 * S + hour, 1100 * S + hour, 1400 * S + hour));
        assert_eq!(s.activity.warned, Some((Limit::Idle, 1390 * S + hour)));
        assert_eq!(s.activity.last_input_event_usec, 1100 * S + hour);
        assert_eq!(s.activity.proofs[&0].at, 1050 * S + hour);
        let inhibitor = s.inhibitor.as_ref().unwrap();
        assert_eq!((inhibitor.since_usec, inhibitor.until_usec), (1060 * S + hour, 1960 * S + hour));
        // Times that are not set stay unset.
        assert_eq!((s.activity.own_output_until, s.activity.suspect_reported_usec), (0, 0));
        assert_eq!((s.clock_offset_usec, r.clock_offset()), (500 * S as i64 + hour as i64, 500 * S as i64 + hour as i64));
        // Its file says which clock its times are in.
        assert_eq!(s.saved().clock_offset_usec, 500 * S as i64 + hour as i64);
    }

    #[test]
    fn saved_and_restored_session_keeps_identity_and_ttys() {
        let mut r = Registry::default();
        r.insert(session(4, 300, 7));
        r.adopt_tty(4, 34818);
        let saved = r.get(4).unwrap().saved();
        let text = serde_json::to_string(&saved).unwrap();
        let back: SavedSession = serde_json::from_str(&text).unwrap();
        assert_eq!(back, saved);
        let restored = Session::from_saved(back, &Config::builtin());
        assert_eq!((restored.id, &restored.who, restored.ttys().len()), (4, &r.get(4).unwrap().who, 1));
        // A restored session whose tty another session took meanwhile gives it up.
        let mut other = Registry::default();
        other.insert(session(5, 400, 8));
        other.adopt_tty(5, 34818);
        other.insert(restored);
        assert_eq!((other.get(4).unwrap().ttys().len(), other.owner_of_tty(34818)), (0, Some(5)));
    }
}
