//! The session registry: vigild's model of the login sessions it supervises, and the
//! indexes that find a session by leader, tty and audit session. No I/O here: the
//! manager holds the registry under one lock and does the saving, auditing and
//! signalling after releasing it.
//!
//! A session's ttys live in one place (`Session::ttys`), changed only through the
//! registry so the tty index can never disagree with them; the wire struct
//! (`SessionInfo`) is built from a session at the D-Bus edge and stored nowhere.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vigil_config::{Config, ResolvedPolicy, SessionFacts};
use vigil_protocol::SessionInfo;
use vigil_protocol::events::ActivitySource;

use crate::clock;
use crate::idle::{self, IdleFacts, Limit};
use crate::inhibit::{InhibitBudget, Inhibitor};
use crate::procfs::NO_AUDIT_SESSION;
use crate::reauth::Proof;
use crate::ttys::{self, TtyNr};

/// What a session is: fixed when it is registered, saved under `/run/vigil/sessions`
/// so that a restarted vigild knows it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub uid: u32,
    pub groups: Vec<String>,
    pub service: String,
    /// PAM_TTY as the module gave it (`ssh` under sshd).
    pub tty: String,
    pub rhost: String,
    pub ruser: String,
    /// The client's TCP port, when the leader holds the connection (sshd).
    pub rport: Option<u16>,
    pub leader_pid: u32,
    /// The leader's start time (/proc/PID/stat): with its pid, it names the leader for
    /// good, so a restarted vigild does not mistake a reused pid for it.
    pub leader_start: u64,
    pub audit_session_id: u32,
    /// The audit session id belongs to this login (not inherited from its parent), so
    /// every process carrying it is part of the session.
    pub owns_audit_session: bool,
    /// The tty the leader inherited from outside the session (pam_host run from a
    /// terminal, a nested su): never adopted, never signalled.
    pub inherited_tty: TtyNr,
    /// The tracked session this one runs inside (su, sudo in an ssh session); 0 for a
    /// login session of its own.
    pub parent: u64,
    pub started_usec: u64,
    /// Found by vigild's sweep rather than registered by the module.
    #[serde(default)]
    pub adopted: bool,
}

/// A registered session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u64,
    pub who: Identity,
    /// Shared with every session resolved to the same policy ([`resolve`]): change it
    /// through `Arc::make_mut`.
    pub policy: Arc<ResolvedPolicy>,
    /// Last activity seen (µs since the epoch).
    pub last_activity_usec: u64,
    /// When the session ends unless there is activity (0: no limit applies).
    pub deadline_usec: u64,
    pub activity: Activity,
    /// The session's terminals, found in /proc. Private: changed only through the
    /// registry, which keeps its tty index in step.
    ttys: BTreeSet<TtyNr>,
    /// The user's idle inhibitor (`vigilctl inhibit`), until it expires.
    pub inhibitor: Option<Inhibitor>,
    /// Inhibited time since the last activity (`max_inhibit_total`).
    pub inhibit_budget: InhibitBudget,
    /// The wall clock's offset from the boot clock that the times above are in (set by
    /// the registry; `clock.rs`).
    pub clock_offset_usec: i64,
}

/// What the idle supervisor knows and has done about a session.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub warned: Option<(Limit, u64)>,
    pub idle_reported: bool,
    /// rchar + wchar of the session's processes at the last sample (no-tty sessions).
    pub io_total: Option<u64>,
    /// Until when output events are vigild's own warning, not the session's.
    pub own_output_until: u64,
    /// Proofs of identity, per terminal the password was typed on (0: no tty).
    pub proofs: BTreeMap<TtyNr, Proof>,
    /// The proofs were revoked and none was recorded since.
    pub proofs_revoked: bool,
    /// When forged-looking activity was last recorded (`activity_suspect`, at most once
    /// a minute per session).
    pub suspect_reported_usec: u64,
    /// The latest tty input seen through inotify and found read by the tty's
    /// foreground: an atime ahead of it is not input.
    pub last_input_event_usec: u64,
    /// The latest access to one of its ttys that was not found to be such a read: an
    /// atime up to it is that access, not input (recorded as `not_a_read` already).
    pub last_ignored_access_usec: u64,
    /// When `activity_suspect reason=not_a_read` and `reason=periodic` were last
    /// recorded (each at most once a minute per session).
    pub not_a_read_reported_usec: u64,
    pub periodic_reported_usec: u64,
    /// Accesses found not to be reads since the last `not_a_read` record.
    pub accesses_unreported: u64,
    /// What the last activity was measured by.
    pub evidence: Evidence,
}

/// What a session's last activity was measured by, as `vigilctl show` and the idle
/// records say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub source: ActivitySource,
    /// The tty it was seen on (0: none).
    pub tty: TtyNr,
    /// For a read: the foreground process that read, as `comm[pid]`.
    pub reader: String,
    /// Accesses to the session's ttys since then that were not reads.
    pub accesses_ignored: u64,
}

impl Evidence {
    pub fn new(source: ActivitySource, tty: TtyNr, reader: String) -> Self {
        Evidence { source, tty, reader, accesses_ignored: 0 }
    }

    /// `pts/3`, or `None` without a tty.
    pub fn tty_name(&self) -> Option<String> {
        (self.tty != 0).then(|| ttys::short_name(self.tty))
    }
}

impl Session {
    pub fn new(id: u64, who: Identity, policy: Arc<ResolvedPolicy>, now: u64) -> Self {
        Self {
            id,
            who,
            policy,
            last_activity_usec: now,
            deadline_usec: 0,
            activity: Activity::default(),
            ttys: BTreeSet::new(),
            inhibitor: None,
            inhibit_budget: InhibitBudget::default(),
            clock_offset_usec: 0,
        }
    }

    pub fn ttys(&self) -> &BTreeSet<TtyNr> {
        &self.ttys
    }

    pub fn is_nested(&self) -> bool {
        self.who.parent != 0
    }

    /// The session as `ListSessions` and `GetSession` return it.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id,
            user: self.who.user.clone(),
            uid: self.who.uid,
            service: self.who.service.clone(),
            tty: self.who.tty.clone(),
            rhost: self.who.rhost.clone(),
            leader_pid: self.who.leader_pid,
            audit_session_id: self.who.audit_session_id,
            started_usec: self.who.started_usec,
            last_activity_usec: self.last_activity_usec,
            policy: self.policy.policy_name.clone(),
            ttys: self.tty_names(),
            deadline_usec: self.deadline(),
            parent: self.who.parent,
            activity_by: self.activity.evidence.source.as_str().to_string(),
            activity_tty: self.activity.evidence.tty_name().unwrap_or_default(),
            activity_reader: self.activity.evidence.reader.clone(),
            accesses_ignored: self.activity.evidence.accesses_ignored,
        }
    }

    /// When the session ends unless there is activity, by its activity as known now: the
    /// supervisor's `deadline_usec` is as of its last check, and input or output seen
    /// since (which only moves `last_activity_usec`) moves it. 0: no limit applies.
    pub fn deadline(&self) -> u64 {
        let facts = IdleFacts {
            now: self.last_activity_usec,
            started: self.who.started_usec,
            last_activity: self.last_activity_usec,
            warned: self.activity.warned,
            has_tty: !self.ttys.is_empty(),
            idle_reported: self.activity.idle_reported,
            inhibited_until: self.inhibitor.as_ref().map_or(0, |i| i.until_usec),
        };
        idle::deadline(&self.policy, &facts)
    }

    pub fn tty_names(&self) -> Vec<String> {
        self.ttys.iter().map(|&t| ttys::short_name(t)).collect()
    }

    /// Activity at `at`, measured as `evidence` says: the idle stretch that ends here
    /// counts against every proof of identity.
    pub fn raise_activity_by(&mut self, at: u64, evidence: Evidence) {
        if at > self.last_activity_usec {
            self.activity.evidence = evidence;
            self.raise_activity(at);
        }
    }

    /// Activity at `at`: the idle stretch that ends here counts against every proof of
    /// identity (however the activity was seen: inotify, atime, process I/O).
    pub fn raise_activity(&mut self, at: u64) {
        let last = self.last_activity_usec;
        if at <= last {
            return;
        }
        for proof in self.activity.proofs.values_mut() {
            proof.note_gap(at.saturating_sub(last.max(proof.at)));
        }
        self.last_activity_usec = at;
        self.inhibit_budget.renew(at, self.inhibitor.as_ref());
    }

    /// Moves every time the session holds by a step of the wall clock (`clock.rs`), so
    /// that its idle time, age, warning, inhibitor and proofs stay what they were in
    /// real time.
    pub fn shift_clock(&mut self, delta: i64) {
        let shift = |time: &mut u64| *time = clock::shift(*time, delta);
        shift(&mut self.who.started_usec);
        shift(&mut self.last_activity_usec);
        shift(&mut self.deadline_usec);
        if let Some((_, at)) = &mut self.activity.warned {
            shift(at);
        }
        shift(&mut self.activity.own_output_until);
        shift(&mut self.activity.suspect_reported_usec);
        shift(&mut self.activity.last_input_event_usec);
        shift(&mut self.activity.last_ignored_access_usec);
        shift(&mut self.activity.not_a_read_reported_usec);
        shift(&mut self.activity.periodic_reported_usec);
        for proof in self.activity.proofs.values_mut() {
            shift(&mut proof.at);
        }
        if let Some(inhibitor) = &mut self.inhibitor {
            shift(&mut inhibitor.since_usec);
            shift(&mut inhibitor.until_usec);
        }
        self.inhibit_budget.shift_clock(delta);
        self.clock_offset_usec += delta;
    }

    /// Resolves the policy for the session as it is now (its tty-ness may have changed).
    /// The previous policy's name when another block applies now.
    pub fn resolve_policy(&mut self, config: &Config) -> Option<String> {
        let previous = std::mem::replace(&mut self.policy, resolve(config, &self.who, !self.ttys.is_empty()));
        (previous.policy_name != self.policy.policy_name).then(|| previous.policy_name.clone())
    }

    /// What is saved of the session: enough to supervise it again after a crash.
    pub fn saved(&self) -> SavedSession {
        SavedSession {
            version: SavedSession::VERSION,
            id: self.id,
            who: self.who.clone(),
            ttys: self.ttys.iter().copied().collect(),
            last_activity_usec: self.last_activity_usec,
            inhibitor: self.inhibitor.clone(),
            inhibit_budget: self.inhibit_budget,
            clock_offset_usec: Some(self.clock_offset_usec),
        }
    }

    /// A saved session, its policy resolved against the running configuration.
    pub fn from_saved(saved: SavedSession, config: &Config) -> Self {
        let policy = resolve(config, &saved.who, !saved.ttys.is_empty());
        let mut session = Session::new(saved.id, saved.who, policy, saved.last_activity_usec);
        session.ttys = saved.ttys.into_iter().collect();
        session.inhibitor = saved.inhibitor;
        session.inhibit_budget = saved.inhibit_budget;
        session.clock_offset_usec = saved.clock_offset_usec.unwrap_or(0);
        session
    }
}

/// The policy for a session of `who`, with or without a tty: one shared copy per
/// distinct policy, so 100,000 sessions under three policies hold three (each copy has
/// a policy name and a list of services on the heap).
pub fn resolve(config: &Config, who: &Identity, has_tty: bool) -> Arc<ResolvedPolicy> {
    let policy = config.resolve(&SessionFacts {
        user: &who.user,
        groups: &who.groups,
        service: &who.service,
        has_tty,
        rhost: (!who.rhost.is_empty()).then_some(who.rhost.as_str()),
    });
    shared(policy)
}

/// Policies seen; those no session holds any more are dropped when the set grows past
/// this (a reload leaves the previous configuration's behind).
const SHARED_POLICIES_PRUNE_AT: usize = 256;

fn shared(policy: ResolvedPolicy) -> Arc<ResolvedPolicy> {
    static POLICIES: Mutex<Option<HashSet<Arc<ResolvedPolicy>>>> = Mutex::new(None);
    let mut guard = POLICIES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(known) = set.get(&policy) {
        return Arc::clone(known);
    }
    if set.len() >= SHARED_POLICIES_PRUNE_AT {
        set.retain(|p| Arc::strong_count(p) > 1);
    }
    let policy = Arc::new(policy);
    set.insert(Arc::clone(&policy));
    policy
}

/// One session's file under `/run/vigil/sessions/ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    pub version: u32,
    pub id: u64,
    pub who: Identity,
    pub ttys: Vec<TtyNr>,
    pub last_activity_usec: u64,
    /// Absent in files written before inhibitors existed, and when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibitor: Option<Inhibitor>,
    /// Absent in files written before the budget existed (renewed from the last
    /// activity then), and while nothing was spent.
    #[serde(default, skip_serializing_if = "InhibitBudget::is_unused")]
    pub inhibit_budget: InhibitBudget,
    /// The clock offset the times above are in (`clock.rs`); absent in files written
    /// before vigild followed clock steps (taken as the running offset: no shift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_usec: Option<i64>,
}

impl SavedSession {
    pub const VERSION: u32 = 2;
}

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
        self.sessions.insert(id, Box::new(session));
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
        session.ttys.insert(tty);
        true
    }

    /// Takes a tty from a session that no longer holds it. False when it was not the
    /// session's.
    pub fn release_tty(&mut self, id: u64, tty: TtyNr) -> bool {
        if self.by_tty.get(&tty) != Some(&id) {
            return false;
        }
        self.by_tty.remove(&tty);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.ttys.remove(&tty);
        }
        true
    }

    /// A tty device went away (pty closed): the session that had it.
    pub fn drop_tty(&mut self, tty: TtyNr) -> Option<u64> {
        let id = self.by_tty.remove(&tty)?;
        if let Some(session) = self.sessions.get_mut(&id) {
            session.ttys.remove(&tty);
        }
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
    use super::*;

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
        Session::new(id, identity(leader, ses), Arc::new(crate::manager::policy_for_tests()), 1)
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
        assert_eq!(s.saved().clock_offset_usec, Some(500 * S as i64 + hour as i64));
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
