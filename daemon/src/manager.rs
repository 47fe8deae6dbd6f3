//! The operations behind `org.vigil1.Manager`: who may do what, what gets registered,
//! and the record each decision leaves.
//!
//! Every change follows one order: decide and change the registry under its lock (no
//! I/O inside), then, with the lock released, save the session's file (the PAM reply
//! waits for this), queue the audit record, and tell the hooks (leader watch,
//! supervisor, bus objects).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use vigil_config::{Config, NssAccounts};
use vigil_protocol::audit::Record;
use vigil_protocol::events::{ActivitySource, CallRefusal, Event, ReloadResult};
use vigil_protocol::{SessionInfo, StatusReply, VigilError};

use crate::admission::{CallBudget, REPORT_PERIOD, ReportThrottle};
use crate::audit_log::AuditLog;
use crate::caller::Caller;
use crate::clock;
use crate::ids::IdAllocator;
use crate::logind;
use crate::records::{EndReason, activity_evidence, policy_changed, session_record};
use crate::registry::{Evidence, Registry, SavedSession, Session};
use crate::store::SessionStore;
use crate::terminate;
use crate::ttys::TtyNr;
use crate::users;

/// Most `config_warning` records one load writes (a `kind=more` record counts the rest).
const MAX_WARNING_RECORDS: usize = 32;

/// What happened on a tty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtyActivity {
    /// Input its foreground read (`tty_input.rs`), or an access that could not be checked.
    Input(Evidence),
    Output,
}

/// Callbacks to the layers around the registry (leader watches, the supervisor, bus
/// objects), so that the manager stays testable without them.
pub trait Hooks: Send + Sync {
    fn session_added(&self, id: u64, leader_pid: u32);
    fn session_removed(&self, id: u64);
    /// The policy of live sessions may have changed (reload).
    fn policy_changed(&self) {}
    /// One session's deadlines may have changed (an idle inhibitor taken or dropped).
    fn session_changed(&self, _id: u64) {}
    /// The wall clock was stepped; the sessions' times moved with it (to
    /// `Manager::clock_offset`).
    fn clock_stepped(&self) {}
}

pub struct Manager {
    registry: Mutex<Registry>,
    pub(crate) ids: Mutex<IdAllocator>,
    config: RwLock<Arc<Config>>,
    config_path: PathBuf,
    pub audit: Arc<AuditLog>,
    pub(crate) store: SessionStore,
    hooks: RwLock<Vec<Arc<dyn Hooks>>>,
    pub(crate) accounts: users::AccountCache,
    /// Refused calls of unprivileged users are recorded once per user and method a
    /// minute: a user looping on a refused call must not flood the trail.
    refusals: Mutex<ReportThrottle<(u32, &'static str)>>,
    /// Calls of unprivileged users that each write a record (Inhibit, CancelInhibit,
    /// RevokeReauth): at most `USER_CALLS_PER_MINUTE` per user.
    user_calls: Mutex<CallBudget<u32>>,
    /// Per claimed tty: the session and the POSIX session that held it at the claim
    /// (`tty_claims.rs`).
    pub(crate) tty_holders: Mutex<crate::tty_claims::TtyHolders>,
    /// The bus logind is asked on (`--bus`); `None`: the system bus.
    logind_bus: RwLock<Option<String>>,
}

/// How many record-writing calls (Inhibit, CancelInhibit, RevokeReauth) a user may make
/// a minute: far more than anyone types, few enough that a loop cannot flood syslog.
pub const USER_CALLS_PER_MINUTE: u32 = 30;

pub use vigil_protocol::time::now_usec;

impl Manager {
    pub fn new(config: Config, config_path: PathBuf, audit: Arc<AuditLog>, ids: IdAllocator, store: SessionStore) -> Self {
        let mut registry = Registry::default();
        registry.set_clock_offset(clock::offset_usec());
        Self {
            registry: Mutex::new(registry),
            ids: Mutex::new(ids),
            config: RwLock::new(Arc::new(config)),
            config_path,
            audit,
            store,
            hooks: RwLock::new(Vec::new()),
            accounts: users::AccountCache::new(),
            refusals: Mutex::new(ReportThrottle::new(REPORT_PERIOD)),
            user_calls: Mutex::new(CallBudget::new(USER_CALLS_PER_MINUTE, Duration::from_secs(60))),
            tty_holders: Mutex::new(std::collections::HashMap::new()),
            logind_bus: RwLock::new(None),
        }
    }

    /// Asks logind on the bus at `address` rather than the system bus.
    pub fn set_logind_bus(&self, address: String) {
        *self.logind_bus.write().unwrap_or_else(|p| p.into_inner()) = Some(address);
    }

    pub fn add_hooks(&self, hooks: Arc<dyn Hooks>) {
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).push(hooks);
    }

    pub(crate) fn hooks(&self) -> Vec<Arc<dyn Hooks>> {
        self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The one lock. Never held across I/O or an await.
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session id (never reused, across restarts too).
    pub(crate) fn allocate_id(&self) -> u64 {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).allocate()
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Audits and returns an AccessDenied for `method` (an unprivileged caller's at
    /// most once per user and method a minute, with `suppressed=` the ones not recorded).
    pub(crate) fn refuse(&self, caller: &Caller, method: &'static str, why: CallRefusal) -> VigilError {
        let record =
            Record::new(Event::CallRefused).text("method", method).number("uid", caller.uid).number("pid", caller.pid).text("reason", why);
        if caller.is_root() {
            self.audit.write(record);
        } else if let Some(suppressed) =
            self.refusals.lock().unwrap_or_else(|p| p.into_inner()).should_report((caller.uid, method), Instant::now())
        {
            self.audit.write(record.number("suppressed", suppressed));
        }
        VigilError::AccessDenied(format!("{method}: {}", why.describe()))
    }

    /// Spends one of an unprivileged caller's record-writing calls for the minute;
    /// refused (and the refusal recorded, once a minute) when none is left. Root's calls
    /// are not counted.
    pub(crate) fn spend_user_call(&self, caller: &Caller, method: &'static str) -> Result<(), VigilError> {
        if caller.is_root() || self.user_calls.lock().unwrap_or_else(|p| p.into_inner()).spend(caller.uid, Instant::now()) {
            return Ok(());
        }
        self.refuse(caller, method, CallRefusal::RateLimited);
        Err(VigilError::AccessDenied(format!("{method}: more than {USER_CALLS_PER_MINUTE} calls a minute; try again later")))
    }

    pub(crate) fn require_root(&self, caller: &Caller, method: &'static str) -> Result<(), VigilError> {
        if caller.is_root() { Ok(()) } else { Err(self.refuse(caller, method, CallRefusal::RootOnly)) }
    }

    /// The clock offset the sessions' times are in (`clock.rs`).
    pub fn clock_offset(&self) -> i64 {
        self.registry().clock_offset()
    }

    /// The wall clock may have been set (`clock.rs`): when its offset from the boot
    /// clock moved by a second or more, every session's times move by as much, in the
    /// registry now and in each file at its next save (a file says which offset its
    /// times are in). Recorded as `clock_step`; the supervisor's timers follow.
    /// Returns the offset the sessions' times are in now.
    pub fn clock_changed(&self) -> i64 {
        let (delta, sessions, offset) = {
            let mut registry = self.registry();
            let delta = clock::offset_usec() - registry.clock_offset();
            if delta.abs() < clock::MIN_STEP_USEC {
                return registry.clock_offset();
            }
            registry.shift_clock(delta);
            (delta, registry.len(), registry.clock_offset())
        };
        self.audit.write(Record::new(Event::ClockStep).number("delta_ms", delta / 1000).number("sessions", sessions as u64));
        for hooks in self.hooks() {
            hooks.clock_stepped();
        }
        offset
    }

    /// Writes a session's file; a failure is reported, never fatal (the session stays
    /// supervised by this vigild).
    pub(crate) fn save(&self, saved: Option<SavedSession>) {
        let Some(saved) = saved else { return };
        if let Err(e) = self.store.save(&saved) {
            self.audit.write(Record::new(Event::SessionSaveFailed).number("session", saved.id).text("error", e.to_string()));
        }
    }

    /// Removes a session and audits why. False when it was not registered.
    pub fn end(&self, id: u64, reason: EndReason, extra: Option<(&'static str, i128)>) -> bool {
        let Some(session) = self.registry().remove(id) else { return false };
        let _ = self.store.remove(id);
        self.inhibitor_ended_with(&session);
        let duration = now_usec().saturating_sub(session.who.started_usec) / 1_000_000;
        let mut record = session_record(reason.event(), &session).text("reason", reason.as_str()).number("duration_s", duration);
        if let Some((key, value)) = extra {
            record = record.number(key, value);
        }
        if matches!(reason, EndReason::Idle) {
            record = activity_evidence(record, &session);
        }
        self.audit.write(record);
        // vigild ends the processes; logind, where it tracks the login, ends its session too.
        if matches!(reason, EndReason::Admin | EndReason::Idle | EndReason::MaxAge)
            && let Some(logind_id) = session.scope().audit_session.and_then(logind::session_of)
        {
            let bus = self.logind_bus.read().unwrap_or_else(|p| p.into_inner()).clone();
            logind::terminate(logind_id, id, self.audit.clone(), bus);
        }
        for hooks in self.hooks() {
            hooks.session_removed(id);
        }
        true
    }

    /// A tty device went away (pty closed).
    pub fn drop_tty(&self, tty: TtyNr) {
        let config = self.config();
        let (saved, changed) = {
            let mut registry = self.registry();
            let Some(session) = registry.drop_tty(tty).and_then(|id| registry.get_mut(id)) else { return };
            let was = session.resolve_policy(&config);
            (session.saved(), was.map(|was| (session.clone(), was)))
        };
        self.save(Some(saved));
        if let Some((session, was)) = changed {
            self.audit.write(policy_changed(&session, &was, "tty"));
        }
    }

    /// Records activity on a tty at `at`. Returns the session, and whether it needs a new
    /// check (it had stopped counting after an audit-only idle record).
    pub fn note_tty_activity(&self, tty: TtyNr, kind: TtyActivity, at: u64) -> Option<(u64, bool)> {
        let mut registry = self.registry();
        let id = registry.owner_of_tty(tty)?;
        let session = registry.get_mut(id)?;
        let evidence = match kind {
            TtyActivity::Input(evidence) => {
                session.activity.last_input_event_usec = session.activity.last_input_event_usec.max(at);
                evidence
            }
            TtyActivity::Output if !session.policy.output_is_activity || at <= session.activity.own_output_until => return None,
            TtyActivity::Output => Evidence::new(ActivitySource::TtyOutput, tty, String::new()),
        };
        session.raise_activity_by(at, evidence);
        let wake = std::mem::take(&mut session.activity.idle_reported);
        Some((id, wake))
    }

    /// Records `events` accesses to a tty, the latest at `at`, that were not input.
    /// Returns the session and the accesses to report when a `not_a_read` record is due
    /// (`report`, at most once per `period` per session).
    pub fn note_ignored_access(&self, tty: TtyNr, at: u64, events: u64, report: bool, period: u64) -> Option<(Session, u64)> {
        let mut registry = self.registry();
        let id = registry.owner_of_tty(tty)?;
        let session = registry.get_mut(id)?;
        let activity = &mut session.activity;
        activity.last_ignored_access_usec = activity.last_ignored_access_usec.max(at);
        if !report {
            return None;
        }
        activity.evidence.accesses_ignored += events;
        activity.accesses_unreported += events;
        if at.saturating_sub(activity.not_a_read_reported_usec) < period {
            return None;
        }
        activity.not_a_read_reported_usec = at;
        let accesses = std::mem::take(&mut activity.accesses_unreported);
        Some((session.clone(), accesses))
    }

    /// A copy of a session, for the supervisor.
    pub fn session(&self, id: u64) -> Option<Session> {
        self.registry().get(id).cloned()
    }

    /// Applies the supervisor's bookkeeping to a live session.
    pub fn update_session(&self, id: u64, f: impl FnOnce(&mut Session)) {
        if let Some(session) = self.registry().get_mut(id) {
            f(session);
        }
    }

    pub fn session_ids(&self) -> Vec<u64> {
        self.registry().ids()
    }

    fn visible(caller: &Caller, session: &Session) -> bool {
        caller.is_root() || caller.uid == session.who.uid
    }

    pub fn list_sessions(&self, caller: Caller) -> Vec<SessionInfo> {
        self.registry().values().filter(|s| Self::visible(&caller, s)).map(Session::info).collect()
    }

    pub fn get_session(&self, caller: Caller, id: u64) -> Result<SessionInfo, VigilError> {
        self.registry()
            .get(id)
            .filter(|s| Self::visible(&caller, s))
            .map(Session::info)
            // Same answer for "absent" and "not yours": ids of others are not disclosed.
            .ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))
    }

    /// Session data for the D-Bus session objects (no access check: properties are
    /// checked by the object layer).
    pub fn session_info(&self, id: u64) -> Option<SessionInfo> {
        self.registry().get(id).map(Session::info)
    }

    /// TerminateSession: root only. Ends the session's processes (SIGHUP, SIGKILL after
    /// the policy's kill_grace) and its registration. A session whose processes cannot
    /// be seen or signalled is kept, and the call fails saying why.
    pub async fn terminate_session(&self, caller: Caller, id: u64) -> Result<(), VigilError> {
        self.require_root(&caller, "TerminateSession")?;
        let Some(session) = self.session(id) else {
            return Err(VigilError::NoSuchSession(format!("no session {id}")));
        };
        let targets = match terminate::Targets::of(&self.end_scope(&session)) {
            Ok(targets) => targets,
            Err(why) => {
                self.audit.write(
                    session_record(Event::TerminateFailed, &session)
                        .text("reason", why.reason())
                        .text("error", why.to_string())
                        .text("by", EndReason::Admin),
                );
                return Err(VigilError::Failed(format!("session {id} kept: {why}")));
            }
        };
        self.end(id, EndReason::Admin, Some(("processes", targets.len() as i128)));
        // The answer says the session is ended; the SIGKILL after kill_grace (5 s by
        // default, any length by policy) goes on without the caller waiting for it.
        let grace = session.policy.kill_grace;
        tokio::spawn(async move { targets.end(grace).await });
        Ok(())
    }

    /// Reload: root only over D-Bus; SIGHUP calls `reload_config` directly.
    pub async fn reload(&self, caller: Caller) -> Result<String, VigilError> {
        self.require_root(&caller, "Reload")?;
        self.reload_config("dbus").await.map_err(VigilError::ConfigInvalid)
    }

    /// Records what in the running configuration probably does not do what its author
    /// meant (users and groups NSS does not know, blocks that match every session):
    /// `config_warning`, one record each up to `MAX_WARNING_RECORDS`. Returns them, for
    /// the reload's answer. NSS may block: the lookups run off the async thread.
    pub async fn audit_config_warnings(&self, config: Arc<Config>) -> Vec<String> {
        let warnings = tokio::task::spawn_blocking(move || config.warnings(&NssAccounts)).await.unwrap_or_default();
        for warning in warnings.iter().take(MAX_WARNING_RECORDS) {
            self.audit.write(
                Record::new(Event::ConfigWarning)
                    .text("path", warning.path.as_os_str().as_encoded_bytes())
                    .number("line", warning.line as u64)
                    .number("column", warning.column as u64)
                    .text("key", &warning.key)
                    .text("kind", warning.kind.name())
                    .text("message", &warning.message),
            );
        }
        if warnings.len() > MAX_WARNING_RECORDS {
            self.audit.write(
                Record::new(Event::ConfigWarning).text("kind", "more").number("count", (warnings.len() - MAX_WARNING_RECORDS) as u64),
            );
        }
        warnings.iter().map(ToString::to_string).collect()
    }

    /// Re-reads the configuration. A bad file keeps the running policy.
    pub async fn reload_config(&self, trigger: &'static str) -> Result<String, String> {
        let path = self.config_path.as_os_str().as_encoded_bytes();
        let loaded = Config::load(&self.config_path).map_err(|e| e.to_string()).and_then(|config| {
            match needs_restart(self.config().audit(), config.audit()) {
                Some(key) => Err(format!(
                    "{}: [audit] {key} changed: the audit writer takes it only at start (systemctl restart vigild)",
                    self.config_path.display()
                )),
                None => Ok(config),
            }
        });
        match loaded {
            Ok(config) => {
                let summary = format!("{} loaded, {} policy block(s)", self.config_path.display(), config.policy_count());
                self.audit.write(
                    Record::new(Event::ConfigReload)
                        .text("result", ReloadResult::Ok)
                        .text("trigger", trigger)
                        .text("path", path)
                        .number("policies", config.policy_count() as i128),
                );
                self.audit.set_format(config.audit().format);
                let config = Arc::new(config);
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = config.clone();
                let changed: Vec<(Session, String)> = self
                    .registry()
                    .values_mut()
                    .filter_map(|session| session.resolve_policy(&config).map(|was| (session.clone(), was)))
                    .collect();
                for (session, was) in changed {
                    self.audit.write(policy_changed(&session, &was, "reload"));
                }
                for hooks in self.hooks() {
                    hooks.policy_changed();
                }
                let warnings = self.audit_config_warnings(config).await;
                Ok(match warnings.len() {
                    0 => summary,
                    n => format!("{summary}, {n} warning(s):\n{}", warnings.join("\n")),
                })
            }
            Err(error) => {
                self.audit.write(
                    Record::new(Event::ConfigReload)
                        .text("result", ReloadResult::Failed)
                        .text("trigger", trigger)
                        .text("path", path)
                        .text("error", &error)
                        .text("kept", "previous"),
                );
                Err(format!("{error}; the running policy is unchanged"))
            }
        }
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
            session_count: self.session_count() as u32,
        }
    }

    pub fn session_count(&self) -> usize {
        self.registry().len()
    }
}

impl Session {
    /// Which processes and ttys belong to the session (`ownership.rs`, `terminate.rs`).
    pub fn scope(&self) -> terminate::SessionScope {
        terminate::SessionScope::of(&self.who, self.ttys().iter().copied().collect())
    }
}

impl terminate::SessionScope {
    /// The scope of a session of `who` claiming `ttys`.
    pub fn of(who: &crate::registry::Identity, ttys: Vec<TtyNr>) -> Self {
        Self {
            leader_pid: who.leader_pid,
            leader_start: who.leader_start,
            audit_session: who.owns_audit_session.then_some(who.audit_session_id),
            ttys,
            posix_sessions: Vec::new(),
        }
    }
}

/// A manager for unit tests: the built-in policy, no files, an audit log that goes
/// nowhere, no hooks.
/// The `[audit]` key whose new value a reload cannot apply (the writer thread and the
/// chain are set up at start; a chain switched off or on mid-trail would read as a cut),
/// if any changed. `format` applies at once.
fn needs_restart(running: &vigil_config::AuditSettings, new: &vigil_config::AuditSettings) -> Option<&'static str> {
    if running.chain != new.chain {
        Some("chain")
    } else if running.spool_max_bytes != new.spool_max_bytes {
        Some("spool_max_bytes")
    } else {
        None
    }
}

#[cfg(test)]
pub fn manager_for_tests() -> Arc<Manager> {
    Arc::new(Manager::new(
        Config::builtin(),
        PathBuf::from("/nonexistent.toml"),
        Arc::new(AuditLog::for_tests()),
        IdAllocator::open(None),
        SessionStore::none(),
    ))
}

/// The built-in policy of an ordinary ssh session, for unit tests to adjust.
#[cfg(test)]
pub fn policy_for_tests() -> vigil_config::ResolvedPolicy {
    Config::builtin().resolve(&vigil_config::SessionFacts { user: "u", groups: &[], service: "sshd", has_tty: true, rhost: None })
}
