//! A login session as vigild models it: who it is (`Identity`), what the supervisor
//! knows of its activity, its proofs and inhibitor, and the file it is saved as. No I/O
//! here; the registry (`registry.rs`) indexes sessions, the manager changes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vigil_config::{Config, ResolvedPolicy, SessionFacts};
use vigil_protocol::SessionInfo;
use vigil_protocol::events::ActivitySource;

use crate::sessions::inhibit::{InhibitBudget, Inhibitor};
use crate::sessions::ownership::SessionScope;
use crate::sessions::policy_cache;
use crate::sessions::reauth::Proof;
use crate::supervise::idle::{self, IdleFacts, Limit};
use crate::sys::clock;
use crate::sys::ttys::{self, TtyNr};

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
    pub adopted: bool,
}

impl Identity {
    /// The policy for a session of this identity, with or without a tty: one shared
    /// copy per distinct policy (`policy_cache.rs`).
    pub fn policy_in(&self, config: &Config, has_tty: bool) -> Arc<ResolvedPolicy> {
        policy_cache::shared(config.resolve(&SessionFacts {
            user: &self.user,
            groups: &self.groups,
            service: &self.service,
            has_tty,
            rhost: (!self.rhost.is_empty()).then_some(self.rhost.as_str()),
        }))
    }

    /// The scope of a session of this identity claiming `ttys`.
    pub fn scope(&self, ttys: Vec<TtyNr>) -> SessionScope {
        SessionScope {
            leader_pid: self.leader_pid,
            leader_start: self.leader_start,
            audit_session: self.owns_audit_session.then_some(self.audit_session_id),
            ttys,
            posix_sessions: Vec::new(),
        }
    }
}

/// A registered session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u64,
    pub who: Identity,
    /// Shared with every session resolved to the same policy (`policy_cache.rs`): change it
    /// through `Arc::make_mut`.
    pub policy: Arc<ResolvedPolicy>,
    /// Last activity seen (µs since the epoch).
    pub last_activity_usec: u64,
    /// When the session ends unless there is activity (0: no limit applies).
    pub deadline_usec: u64,
    pub activity: Activity,
    /// The session's terminals, found in /proc. Private: changed only through the
    /// registry, which keeps its tty index in step.
    pub(super) ttys: BTreeSet<TtyNr>,
    /// The user's idle inhibitor (`vigilctl inhibit`), until it expires. A call that
    /// takes or drops one on a registered session tells `Registry::inhibitor_count`.
    pub inhibitor: Option<Inhibitor>,
    /// Inhibited time since the last activity (`max_inhibit_total`).
    pub inhibit_budget: InhibitBudget,
    /// The wall clock's offset from the boot clock that the times above are in (set by
    /// the registry; `sys/clock.rs`).
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

    /// Whether the session holds a terminal now (a policy's `tty` fact).
    pub fn has_tty(&self) -> bool {
        !self.ttys.is_empty()
    }

    /// Which processes and ttys belong to the session (`ownership.rs`, `terminate.rs`).
    pub fn scope(&self) -> SessionScope {
        self.who.scope(self.ttys.iter().copied().collect())
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

    /// Moves every time the session holds by a step of the wall clock (`sys/clock.rs`), so
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
        let previous = std::mem::replace(&mut self.policy, self.who.policy_in(config, !self.ttys.is_empty()));
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
            clock_offset_usec: self.clock_offset_usec,
            io_total: self.activity.io_total,
        }
    }

    /// A saved session, its policy resolved against the running configuration.
    pub fn from_saved(saved: SavedSession, config: &Config) -> Self {
        let policy = saved.who.policy_in(config, !saved.ttys.is_empty());
        let mut session = Session::new(saved.id, saved.who, policy, saved.last_activity_usec);
        session.ttys = saved.ttys.into_iter().collect();
        session.inhibitor = saved.inhibitor;
        session.inhibit_budget = saved.inhibit_budget;
        session.clock_offset_usec = saved.clock_offset_usec;
        session.activity.io_total = saved.io_total;
        session
    }
}

/// One session's file under `/run/vigil/sessions/ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    pub version: u32,
    pub id: u64,
    pub who: Identity,
    pub ttys: Vec<TtyNr>,
    pub last_activity_usec: u64,
    pub inhibitor: Option<Inhibitor>,
    pub inhibit_budget: InhibitBudget,
    /// The clock offset the times above are in (`sys/clock.rs`): a step of the wall
    /// clock while vigild was away moves them when the session is taken over.
    pub clock_offset_usec: i64,
    /// A session without a tty: its processes' I/O counters at the sample that last
    /// looked (`Activity::io_total`), saved with `last_activity_usec` whenever a sample
    /// moves either. A vigild taking the session over compares its first sample with
    /// them, so that a session idle through the outage is ended at its deadline rather
    /// than given a new timeout. Absent in files of older vigild: the first sample then
    /// counts as activity, as it did.
    #[serde(default)]
    pub io_total: Option<u64>,
}

impl SavedSession {
    pub const VERSION: u32 = 2;
}
