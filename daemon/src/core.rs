//! vigild's state and the operations the D-Bus methods map to: who may do what,
//! what gets registered, and the audit record each decision leaves.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use vigil_config::{Config, ResolvedPolicy, SessionFacts};
use vigil_protocol::audit::Record;
use vigil_protocol::{MAX_FIELD_BYTES, MyStatus, OpenRequest, ReauthAnswer, SessionInfo, StatusReply, VigilError};

use crate::audit_log::AuditLog;
use crate::caller::Caller;
use crate::ids::IdAllocator;
use crate::procfs::{self, NO_AUDIT_SESSION};
use crate::idle::Limit;
use crate::reauth::{self, Proof, Verdict};
use crate::terminate::{self, SessionScope};
use crate::ttys::{self, TtyNr};
use crate::users;

/// A registered session.
#[derive(Debug, Clone)]
pub struct Session {
    pub info: SessionInfo,
    pub ruser: String,
    pub groups: Vec<String>,
    pub policy: ResolvedPolicy,
    /// The audit session id belongs to this login (not inherited from its parent),
    /// so every process carrying it is part of the session.
    pub owns_audit_session: bool,
    /// The tty the leader inherited from outside the session (pam_host run from a
    /// terminal, a nested su): never adopted, never signalled.
    pub inherited_tty: TtyNr,
    /// The client's TCP port, when the leader holds the connection (sshd).
    pub rport: Option<u16>,
    /// The leader's start time (/proc/PID/stat): with its pid, it names the leader for
    /// good, so a restarted vigild does not mistake a reused pid for it.
    pub leader_start: u64,
    pub activity: Activity,
}

/// What the idle supervisor knows and has done about a session.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub ttys: BTreeSet<TtyNr>,
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
}

/// What happened on a tty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtyActivity {
    Input,
    Output,
}

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
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::LeaderGone => "leader_gone",
            EndReason::Admin => "admin",
            EndReason::Idle => "idle",
            EndReason::MaxAge => "max_age",
        }
    }
}


/// Callbacks to the D-Bus layer (object publication, leader watches), so that the
/// core stays testable without a bus.
pub trait Hooks: Send + Sync {
    fn session_added(&self, id: u64, leader_pid: u32);
    fn session_removed(&self, id: u64);
    /// The policy of live sessions may have changed (reload).
    fn policy_changed(&self) {}
}

pub struct Vigild {
    sessions: Mutex<BTreeMap<u64, Session>>,
    ids: Mutex<IdAllocator>,
    config: RwLock<Arc<Config>>,
    config_path: PathBuf,
    pub audit: Arc<AuditLog>,
    hooks: RwLock<Vec<Arc<dyn Hooks>>>,
    accounts: users::AccountCache,
    /// Which session each adopted tty belongs to.
    tty_owner: Mutex<HashMap<TtyNr, u64>>,
    /// Leader pid → the login (non-nested) sessions it leads, to place a process in
    /// its session without looking at every session.
    leaders: Mutex<HashMap<u32, BTreeSet<u64>>>,
}

pub fn now_usec() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn check_field(name: &str, value: &str) -> Result<(), VigilError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(VigilError::InvalidArgument(format!("{name} is longer than {MAX_FIELD_BYTES} bytes")));
    }
    Ok(())
}

impl Vigild {
    pub fn new(config: Config, config_path: PathBuf, audit: Arc<AuditLog>, ids: IdAllocator) -> Self {
        Self {
            sessions: Mutex::new(BTreeMap::new()),
            ids: Mutex::new(ids),
            config: RwLock::new(Arc::new(config)),
            config_path,
            audit,
            hooks: RwLock::new(Vec::new()),
            accounts: users::AccountCache::new(),
            tty_owner: Mutex::new(HashMap::new()),
            leaders: Mutex::new(HashMap::new()),
        }
    }

    pub fn add_hooks(&self, hooks: Arc<dyn Hooks>) {
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).push(hooks);
    }

    fn hooks(&self) -> Vec<Arc<dyn Hooks>> {
        self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn leaders(&self) -> MutexGuard<'_, HashMap<u32, BTreeSet<u64>>> {
        self.leaders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tty_owner(&self) -> MutexGuard<'_, HashMap<TtyNr, u64>> {
        self.tty_owner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> MutexGuard<'_, BTreeMap<u64, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Audits and returns an AccessDenied for `method`.
    fn refuse(&self, caller: &Caller, method: &'static str, why: &str) -> VigilError {
        self.audit.write(
            &Record::new("call_refused")
                .text("method", method)
                .number("uid", caller.uid)
                .number("pid", caller.pid)
                .text("reason", why),
        );
        VigilError::AccessDenied(format!("{method}: {why}"))
    }

    fn require_root(&self, caller: &Caller, method: &'static str) -> Result<(), VigilError> {
        if caller.is_root() { Ok(()) } else { Err(self.refuse(caller, method, "root only")) }
    }

    /// OpenSession: root only; the leader is the calling process.
    pub async fn open_session(self: &Arc<Self>, caller: Caller, r: OpenRequest) -> Result<u64, VigilError> {
        self.require_root(&caller, "OpenSession")?;
        for (name, value) in [("user", &r.user), ("service", &r.service), ("tty", &r.tty), ("rhost", &r.rhost), ("ruser", &r.ruser)] {
            if let Err(error) = check_field(name, value) {
                self.audit.write(
                    &Record::new("call_refused")
                        .text("method", "OpenSession")
                        .number("uid", caller.uid)
                        .number("pid", caller.pid)
                        .text("reason", "field_too_long")
                        .text("field", name)
                        .number("bytes", value.len() as i128),
                );
                return Err(error);
            }
        }
        if r.leader_pid != caller.pid {
            return Err(self.refuse(&caller, "OpenSession", "leader_pid is not the calling process"));
        }
        let ses = procfs::audit_session_id(caller.pid);
        if r.audit_session_id != ses {
            return Err(self.refuse(&caller, "OpenSession", "audit_session_id does not match /proc"));
        }
        let Some(account) = self.accounts.get(&r.user).await else {
            self.audit.write(
                &Record::new("call_refused")
                    .text("method", "OpenSession")
                    .number("uid", caller.uid)
                    .number("pid", caller.pid)
                    .text("reason", "unknown_user")
                    .text("user", &r.user)
                    .text("service", &r.service)
                    .text("tty", &r.tty)
                    .text("rhost", &r.rhost),
            );
            return Err(VigilError::InvalidArgument(format!("unknown user {:?}", r.user)));
        };
        // Only the leader and its ancestors are read: an open must not cost a walk of
        // the whole process table.
        // The leader's stat is read once, for its parent, its start time and the walk.
        let leader = procfs::stat(caller.pid);
        let parent = leader.and_then(|l| procfs::stat(l.ppid));
        let parent_ses = parent.map(|p| procfs::audit_session_id(p.pid));
        let owns_audit_session = ses != NO_AUDIT_SESSION && parent_ses != Some(ses);
        let inherited_tty = parent.map_or(0, |p| p.tty_nr);
        let nested_in = self.enclosing_session(caller.pid, |pid| match (leader, parent) {
            (Some(l), _) if l.pid == pid => Some(l.ppid),
            (_, Some(p)) if p.pid == pid => Some(p.ppid),
            _ => procfs::stat(pid).map(|s| s.ppid),
        });
        // The tty PAM names, when it is a device of its own (login on tty1).
        let pam_tty = ttys::tty_nr_of_name(&r.tty).filter(|&t| t != inherited_tty);

        let config = self.config();
        let rhost = (!r.rhost.is_empty()).then_some(r.rhost.as_str());
        let policy = config.resolve(&SessionFacts {
            user: &r.user,
            groups: &account.groups,
            service: &r.service,
            has_tty: pam_tty.is_some(),
            rhost,
        });
        let id = self.ids.lock().unwrap_or_else(|p| p.into_inner()).allocate();
        let now = now_usec();
        let session = Session {
            info: SessionInfo {
                id,
                user: r.user.clone(),
                uid: account.uid,
                service: r.service.clone(),
                tty: r.tty.clone(),
                rhost: r.rhost.clone(),
                leader_pid: caller.pid,
                audit_session_id: ses,
                started_usec: now,
                last_activity_usec: now,
                policy: policy.policy_name.clone(),
                ttys: Vec::new(),
                deadline_usec: 0,
                parent: nested_in.unwrap_or(0),
            },
            ruser: r.ruser.clone(),
            groups: account.groups,
            policy,
            owns_audit_session,
            inherited_tty,
            rport: if r.rhost.is_empty() { None } else { procfs::remote_port(caller.pid) },
            leader_start: leader.map_or(0, |l| l.start_time),
            activity: Activity::default(),
        };
        self.audit.write(&session_record("session_open", &session).text("exempt", if session.policy.exempt { "yes" } else { "no" }));
        if nested_in.is_none() {
            self.leaders().entry(caller.pid).or_default().insert(id);
        }
        self.sessions().insert(id, session);
        if let Some(tty) = pam_tty.filter(|_| nested_in.is_none()) {
            self.adopt_tty(id, tty);
        }
        for hooks in self.hooks() {
            hooks.session_added(id, caller.pid);
        }
        Ok(id)
    }

    /// CloseSession: root only.
    pub fn close_session(&self, caller: Caller, id: u64) -> Result<(), VigilError> {
        self.require_root(&caller, "CloseSession")?;
        if self.end(id, EndReason::Closed, None) {
            Ok(())
        } else {
            Err(VigilError::NoSuchSession(format!("no session {id}")))
        }
    }

    /// Removes a session and audits why. False when it was not registered.
    pub fn end(&self, id: u64, reason: EndReason, extra: Option<(&'static str, i128)>) -> bool {
        let Some(session) = self.sessions().remove(&id) else {
            return false;
        };
        let event = if reason == EndReason::Closed { "session_close" } else { "session_end" };
        let duration = now_usec().saturating_sub(session.info.started_usec) / 1_000_000;
        let mut record = session_record(event, &session).text("reason", reason.as_str()).number("duration_s", duration);
        if let Some((key, value)) = extra {
            record = record.number(key, value);
        }
        self.audit.write(&record);
        {
            let mut owners = self.tty_owner();
            for tty in &session.activity.ttys {
                owners.remove(tty);
            }
        }
        {
            let mut leaders = self.leaders();
            if let Some(ids) = leaders.get_mut(&session.info.leader_pid) {
                ids.remove(&id);
                if ids.is_empty() {
                    leaders.remove(&session.info.leader_pid);
                }
            }
        }
        for hooks in self.hooks() {
            hooks.session_removed(id);
        }
        true
    }

    /// The registered, non-nested session whose leader is `pid` or an ancestor of it.
    /// `parent_of` gives a process's parent (from /proc, or from a snapshot).
    pub fn enclosing_session(&self, pid: u32, parent_of: impl Fn(u32) -> Option<u32>) -> Option<u64> {
        let leaders = self.leaders();
        if leaders.is_empty() {
            return None;
        }
        let mut current = pid;
        // Bounded by the depth of the process tree (and 4096 for a corrupt snapshot).
        for _ in 0..4096 {
            // A process that leads several sessions (a test host) gives its latest.
            if let Some(&id) = leaders.get(&current).and_then(|ids| ids.last()) {
                return Some(id);
            }
            match parent_of(current) {
                Some(ppid) if ppid > 1 => current = ppid,
                _ => return None,
            }
        }
        None
    }

    /// Adds a tty to a session (once; a tty belongs to one session). True when new.
    pub fn adopt_tty(&self, id: u64, tty: TtyNr) -> bool {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get_mut(&id) else { return false };
        if tty == session.inherited_tty || session.info.parent != 0 {
            return false;
        }
        let mut owners = self.tty_owner();
        if owners.contains_key(&tty) {
            return false;
        }
        owners.insert(tty, id);
        session.activity.ttys.insert(tty);
        session.info.ttys = session.activity.ttys.iter().map(|&t| ttys::short_name(t)).collect();
        true
    }

    /// A tty device went away (pty closed).
    pub fn drop_tty(&self, tty: TtyNr) {
        let Some(id) = self.tty_owner().remove(&tty) else { return };
        if let Some(session) = self.sessions().get_mut(&id) {
            session.activity.ttys.remove(&tty);
            session.info.ttys = session.activity.ttys.iter().map(|&t| ttys::short_name(t)).collect();
        }
    }

    /// Records activity on a tty. Returns the session, and whether it needs a new
    /// check (it had stopped counting after an audit-only idle record).
    pub fn note_tty_activity(&self, tty: TtyNr, kind: TtyActivity, now: u64) -> Option<(u64, bool)> {
        let id = *self.tty_owner().get(&tty)?;
        let mut sessions = self.sessions();
        let session = sessions.get_mut(&id)?;
        if kind == TtyActivity::Output && (!session.policy.output_is_activity || now <= session.activity.own_output_until) {
            return None;
        }
        session.raise_activity(now);
        let wake = std::mem::take(&mut session.activity.idle_reported);
        Some((id, wake))
    }

    /// Every registered session, for saving at shutdown.
    pub fn snapshot(&self) -> Vec<Session> {
        self.sessions().values().cloned().collect()
    }

    /// Registers a session saved by the previous vigild (its leader checked alive).
    /// Its policy was resolved by the caller against the running configuration.
    pub fn restore_session(&self, mut session: Session) {
        let id = session.info.id;
        if session.info.parent == 0 {
            self.leaders().entry(session.info.leader_pid).or_default().insert(id);
        }
        {
            let mut owners = self.tty_owner();
            session.activity.ttys.retain(|tty| owners.insert(*tty, id).is_none());
        }
        self.audit.write(&session_record("session_restored", &session));
        let leader = session.info.leader_pid;
        self.sessions().insert(id, session);
        for hooks in self.hooks() {
            hooks.session_added(id, leader);
        }
    }

    /// A copy of a session, for the supervisor.
    pub fn session(&self, id: u64) -> Option<Session> {
        self.sessions().get(&id).cloned()
    }

    /// Applies the supervisor's bookkeeping to a live session.
    pub fn update_session(&self, id: u64, f: impl FnOnce(&mut Session)) {
        if let Some(session) = self.sessions().get_mut(&id) {
            f(session);
        }
    }

    pub fn session_ids(&self) -> Vec<u64> {
        self.sessions().keys().copied().collect()
    }

    fn visible(caller: &Caller, session: &Session) -> bool {
        caller.is_root() || caller.uid == session.info.uid
    }

    pub fn list_sessions(&self, caller: Caller) -> Vec<SessionInfo> {
        self.sessions().values().filter(|s| Self::visible(&caller, s)).map(|s| s.info.clone()).collect()
    }

    pub fn get_session(&self, caller: Caller, id: u64) -> Result<SessionInfo, VigilError> {
        self.sessions()
            .get(&id)
            .filter(|s| Self::visible(&caller, s))
            .map(|s| s.info.clone())
            // Same answer for "absent" and "not yours": ids of others are not disclosed.
            .ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))
    }

    /// Session data for the D-Bus session objects (no access check: properties are
    /// checked by the object layer).
    pub fn session_info(&self, id: u64) -> Option<SessionInfo> {
        self.sessions().get(&id).map(|s| s.info.clone())
    }

    /// TerminateSession: root only. Ends the session's processes (SIGHUP, SIGKILL after
    /// the policy's kill_grace) and its registration.
    pub async fn terminate_session(&self, caller: Caller, id: u64) -> Result<(), VigilError> {
        self.require_root(&caller, "TerminateSession")?;
        let Some(session) = self.sessions().get(&id).cloned() else {
            return Err(VigilError::NoSuchSession(format!("no session {id}")));
        };
        let pids = terminate::session_pids(session.scope());
        self.end(id, EndReason::Admin, Some(("processes", pids.len() as i128)));
        terminate::end_processes(&pids, session.policy.kill_grace).await;
        Ok(())
    }

    /// Reload: root only over D-Bus; SIGHUP calls `reload_config` directly.
    pub fn reload(&self, caller: Caller) -> Result<String, VigilError> {
        self.require_root(&caller, "Reload")?;
        self.reload_config("dbus").map_err(VigilError::ConfigInvalid)
    }

    /// Re-reads the configuration. A bad file keeps the running policy.
    pub fn reload_config(&self, trigger: &'static str) -> Result<String, String> {
        match Config::load(&self.config_path) {
            Ok(config) => {
                let summary = format!("{} loaded, {} policy block(s)", self.config_path.display(), config.policy_count());
                self.audit.write(
                    &Record::new("config_reload")
                        .text("result", "ok")
                        .text("trigger", trigger)
                        .text("path", self.config_path.as_os_str().as_encoded_bytes())
                        .number("policies", config.policy_count() as i128),
                );
                self.audit.set_format(config.audit().format);
                let config = Arc::new(config);
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = config.clone();
                self.reresolve(&config);
                for hooks in self.hooks() {
                    hooks.policy_changed();
                }
                Ok(summary)
            }
            Err(error) => {
                self.audit.write(
                    &Record::new("config_reload")
                        .text("result", "failed")
                        .text("trigger", trigger)
                        .text("path", self.config_path.as_os_str().as_encoded_bytes())
                        .text("error", error.to_string())
                        .text("kept", "previous"),
                );
                Err(format!("{error}; the running policy is unchanged"))
            }
        }
    }

    /// Resolves the policy of every live session again after a reload.
    fn reresolve(&self, config: &Config) {
        for session in self.sessions().values_mut() {
            session.resolve_policy(config);
        }
    }

    /// The login session a process belongs to: the session that owns its kernel audit
    /// session, else the nearest session leader among its ancestors. The process's
    /// real uid must be the session's user.
    fn session_of_process(&self, me: &procfs::Stat) -> Option<u64> {
        let pid = me.pid;
        let ses = procfs::audit_session_id(pid);
        let by_ses = (ses != NO_AUDIT_SESSION)
            .then(|| {
                self.sessions()
                    .values()
                    .find(|s| s.owns_audit_session && s.info.parent == 0 && s.info.audit_session_id == ses)
                    .map(|s| s.info.id)
            })
            .flatten();
        let parent_of = |p: u32| if p == pid { Some(me.ppid) } else { procfs::stat(p).map(|s| s.ppid) };
        let id = by_ses.or_else(|| self.enclosing_session(pid, parent_of))?;
        let uid = procfs::real_uid(pid)?;
        self.sessions().get(&id).filter(|s| s.info.uid == uid).map(|s| s.info.id)
    }

    /// CheckReauth: root only (sudo, su, pkexec run as root).
    pub fn check_reauth(&self, caller: Caller, service: &str, user: &str) -> Result<ReauthAnswer, VigilError> {
        self.require_root(&caller, "CheckReauth")?;
        check_field("service", service)?;
        check_field("user", user)?;
        let me = procfs::stat(caller.pid);
        let tty = me.map_or(0, |s| s.tty_nr);
        let answer = |fresh: bool, reason: &str, age: u64, session: u64| ReauthAnswer { fresh, reason: reason.into(), proof_age_usec: age, session };
        let Some(id) = me.and_then(|me| self.session_of_process(&me)) else {
            self.audit.write(
                &Record::new("reauth_required")
                    .text("reason", "unknown_session")
                    .text("service", service)
                    .number("pid", caller.pid)
                    .number("uid", procfs::real_uid(caller.pid).map_or(-1, i128::from))
                    .text("tty", ttys::short_name(tty)),
            );
            return Ok(answer(false, "unknown_session", 0, 0));
        };
        let now = now_usec();
        let sessions = self.sessions();
        let Some(session) = sessions.get(&id) else { return Ok(answer(false, "unknown_session", 0, 0)) };
        let record = |event| session_record(event, session).text("reauth_service", service).text("reauth_tty", ttys::short_name(tty)).number("pid", caller.pid);
        if user != session.info.user {
            // The password asked is someone else's (su bob): this session's proof does
            // not stand for it.
            self.audit.write(&record("reauth_required").text("reason", "other_user").text("target_user", user));
            return Ok(answer(false, "other_user", 0, id));
        }
        if !session.policy.is_sensitive(service) {
            self.audit.write(&record("reauth_required").text("reason", "not_sensitive"));
            return Ok(answer(false, "not_sensitive", 0, id));
        }
        let proof = session.activity.proofs.get(&tty).copied();
        let age = proof.map_or(0, |p| now.saturating_sub(p.at));
        match reauth::judge(&session.policy, proof, session.info.last_activity_usec, session.activity.proofs_revoked, now) {
            Verdict::Fresh { age } => {
                self.audit.write(&record("reauth_granted").number("proof_age_s", age / 1_000_000));
                Ok(answer(true, "fresh", age, id))
            }
            Verdict::Required(why) => {
                self.audit.write(&record("reauth_required").text("reason", why.as_str()).number("proof_age_s", age / 1_000_000));
                Ok(answer(false, why.as_str(), age, id))
            }
        }
    }

    /// RecordAuth (root only): a real password was accepted for `service`.
    pub fn record_auth(&self, caller: Caller, service: &str, user: &str) -> Result<(), VigilError> {
        self.require_root(&caller, "RecordAuth")?;
        check_field("service", service)?;
        check_field("user", user)?;
        let me = procfs::stat(caller.pid);
        let tty = me.map_or(0, |s| s.tty_nr);
        let id = me.and_then(|me| self.session_of_process(&me)).ok_or_else(|| VigilError::NoSuchSession("the caller is in no vigil session".into()))?;
        let mut sessions = self.sessions();
        let session = sessions.get_mut(&id).ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))?;
        if !session.policy.is_sensitive(service) {
            return Err(VigilError::InvalidArgument(format!("{service} is not a sensitive service")));
        }
        if user != session.info.user {
            return Err(VigilError::InvalidArgument(format!("a password of {user:?} proves nothing about {:?}", session.info.user)));
        }
        session.activity.proofs.insert(tty, Proof::new(now_usec()));
        session.activity.proofs_revoked = false;
        self.audit.write(&session_record("reauth_recorded", session).text("reauth_service", service).text("reauth_tty", ttys::short_name(tty)).number("pid", caller.pid));
        Ok(())
    }

    /// RecordAuthFailure (root only): a wrong password for `service`. No proof.
    pub fn record_auth_failure(&self, caller: Caller, service: &str) -> Result<(), VigilError> {
        self.require_root(&caller, "RecordAuthFailure")?;
        check_field("service", service)?;
        let me = procfs::stat(caller.pid);
        let tty = me.map_or(0, |s| s.tty_nr);
        let record = match me.and_then(|me| self.session_of_process(&me)).and_then(|id| self.session(id)) {
            Some(session) => session_record("reauth_failed", &session),
            None => Record::new("reauth_failed").number("uid", procfs::real_uid(caller.pid).map_or(-1, i128::from)),
        };
        self.audit.write(&record.text("reauth_service", service).text("reauth_tty", ttys::short_name(tty)).number("pid", caller.pid));
        Ok(())
    }

    /// Drops every proof of a session (idle warning, the user, an admin).
    pub fn revoke_proofs(&self, id: u64, reason: &'static str) -> u32 {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get_mut(&id) else { return 0 };
        let dropped = session.activity.proofs.len() as u32;
        session.activity.proofs.clear();
        session.activity.proofs_revoked = true;
        self.audit.write(&session_record("reauth_revoked", session).text("reason", reason).number("proofs", dropped));
        dropped
    }

    /// RevokeReauth: any user, for the session they call from.
    pub fn revoke_reauth(&self, caller: Caller) -> Result<u32, VigilError> {
        let (id, _) = self.caller_session(&caller, "RevokeReauth")?;
        Ok(self.revoke_proofs(id, "user"))
    }

    /// The session the caller runs in (its user must be the caller), and the caller's
    /// tty.
    fn caller_session(&self, caller: &Caller, method: &'static str) -> Result<(u64, TtyNr), VigilError> {
        let me = procfs::stat(caller.pid);
        let id = me
            .and_then(|me| self.session_of_process(&me))
            .ok_or_else(|| VigilError::NoSuchSession("this process is in no vigil session".into()))?;
        match self.session(id) {
            Some(s) if caller.is_root() || s.info.uid == caller.uid => Ok((id, me.map_or(0, |m| m.tty_nr))),
            _ => Err(self.refuse(caller, method, "not the caller's session")),
        }
    }

    /// MyStatus: any user, about the session they call from.
    pub fn my_status(&self, caller: Caller) -> Result<MyStatus, VigilError> {
        let (id, tty) = self.caller_session(&caller, "MyStatus")?;
        let now = now_usec();
        let session = self.session(id).ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))?;
        let proof = session.activity.proofs.get(&tty).copied();
        let verdict = reauth::judge(&session.policy, proof, session.info.last_activity_usec, session.activity.proofs_revoked, now);
        let (asks, reason) = match verdict {
            Verdict::Fresh { .. } => (false, "fresh"),
            Verdict::Required(why) => (true, why.as_str()),
        };
        Ok(MyStatus {
            idle_usec: now.saturating_sub(session.info.last_activity_usec),
            next_sudo_asks: asks,
            reauth_reason: reason.into(),
            proof_age_usec: proof.map_or(0, |p| now.saturating_sub(p.at)),
            session: session.info,
        })
    }

    /// AuditInit (root only): a new chain key from the next record on.
    pub fn audit_init(&self, caller: Caller) -> Result<String, VigilError> {
        self.require_root(&caller, "AuditInit")?;
        self.audit.new_key().map(|key| key.render()).map_err(|e| VigilError::Failed(e.to_string()))
    }

    /// AuditSeal (root only): a `seal` record; returns its seq.
    pub fn audit_seal(&self, caller: Caller) -> Result<u64, VigilError> {
        self.require_root(&caller, "AuditSeal")?;
        Ok(self.audit.seal())
    }

    pub fn status(&self, _caller: Caller) -> StatusReply {
        StatusReply {
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_path: self.config_path.display().to_string(),
            policy_count: self.config().policy_count() as u32,
            session_count: self.sessions().len() as u32,
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }
}

impl Session {
    /// Activity at `at`: the idle stretch that ends here counts against every proof of
    /// identity (however the activity was seen: inotify, atime, process I/O).
    pub fn raise_activity(&mut self, at: u64) {
        let last = self.info.last_activity_usec;
        if at <= last {
            return;
        }
        for proof in self.activity.proofs.values_mut() {
            proof.note_gap(at.saturating_sub(last.max(proof.at)));
        }
        self.info.last_activity_usec = at;
    }

    /// Which processes belong to the session, for termination.
    pub fn scope(&self) -> SessionScope {
        SessionScope {
            leader_pid: self.info.leader_pid,
            audit_session: self.owns_audit_session.then_some(self.info.audit_session_id),
            ttys: self.activity.ttys.iter().copied().collect(),
        }
    }

    /// Re-resolves the policy when the session's tty-ness changed.
    pub fn resolve_policy(&mut self, config: &Config) {
        let rhost = (!self.info.rhost.is_empty()).then_some(self.info.rhost.as_str());
        self.policy = config.resolve(&SessionFacts {
            user: &self.info.user,
            groups: &self.groups,
            service: &self.info.service,
            has_tty: !self.activity.ttys.is_empty(),
            rhost,
        });
        self.info.policy = self.policy.policy_name.clone();
    }
}

/// The built-in policy of an ordinary ssh session, for unit tests to adjust.
#[cfg(test)]
pub fn policy_for_tests() -> ResolvedPolicy {
    Config::builtin().resolve(&SessionFacts { user: "u", groups: &[], service: "sshd", has_tty: true, rhost: None })
}

/// The fields every session record carries, so one grep links them.
pub fn session_record(event: &'static str, s: &Session) -> Record {
    Record::new(event)
        .number("session", s.info.id)
        .number("ses", s.info.audit_session_id)
        .text("user", &s.info.user)
        .number("uid", s.info.uid)
        .text("service", &s.info.service)
        .text("tty", &s.info.tty)
        .text("rhost", &s.info.rhost)
        .number_opt("rport", s.rport)
        .text("ruser", &s.ruser)
        .number("leader_pid", s.info.leader_pid)
        .text("policy", &s.info.policy)
        .number("parent", s.info.parent)
        .text_opt("ttys", (!s.info.ttys.is_empty()).then(|| s.info.ttys.join(",")))
}
