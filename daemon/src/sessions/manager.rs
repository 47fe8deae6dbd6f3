//! The manager: the registry under its one lock, the hooks to the layers around it, and
//! what every call shares (who may do what, saving a session, ending a registration).
//! The calls themselves are in `session_calls.rs`, `reauth_calls.rs`,
//! `inhibit_calls.rs` and `admin_calls.rs`, the tty claims in `tty_claims.rs`.
//!
//! Every change follows one order: decide and change the registry under its lock (no
//! I/O inside), then, with the lock released, save the session's file (the PAM reply
//! waits for this), queue the audit record, and tell the hooks (leader watch,
//! supervisor, bus objects).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use vigil_config::Config;
use vigil_protocol::audit::Record;
use vigil_protocol::events::{ActivitySource, CallRefusal, Event};
use vigil_protocol::{SessionInfo, VigilError};

use crate::audit::audit_log::AuditLog;
use crate::audit::records::{EndReason, activity_evidence, policy_changed, session_record_in_logind};
use crate::locks::book::LockBook;
use crate::metrics::counters::Counters;
use crate::rpc::caller::Caller;
use crate::rpc::throttle::{CallBudget, REPORT_PERIOD, ReportThrottle};
use crate::sessions::alerts::Alerts;
use crate::sessions::ids::IdAllocator;
use crate::sessions::lateness::Lateness;
use crate::sessions::registry::Registry;
use crate::sessions::session::{Evidence, SavedSession, Session};
use crate::sessions::store::SessionStore;
use crate::sys::clock;
use crate::sys::logind;
use crate::sys::ttys::TtyNr;
use crate::sys::users;

/// Per claimed tty: the session that claimed it, and the POSIX session (leader pid, its
/// start time) that held it then.
pub type TtyHolders = std::collections::HashMap<TtyNr, (u64, (u32, u64))>;

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
    pub(super) config: RwLock<Arc<Config>>,
    pub(super) config_path: PathBuf,
    pub audit: Arc<AuditLog>,
    pub(crate) store: SessionStore,
    /// Held while a session's file is written or removed: a save checks under it that
    /// the session is still registered, an end removes the file under it after taking
    /// the session out, so a copy taken before an end never writes its file back.
    store_files: Mutex<()>,
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
    pub(crate) tty_holders: Mutex<TtyHolders>,
    /// The bus logind is asked on (`--bus`); `None`: the system bus.
    logind_bus: RwLock<Option<String>>,
    /// The bursts that make `alert` records (`alerts.rs`).
    pub(crate) alerts: Alerts,
    /// The users locked out (`vigilctl lock`), kept on disk for the module.
    pub locks: LockBook,
    /// Logins refused for a lock, recorded per locked uid and minute up to
    /// `REFUSED_LOGINS_PER_MINUTE` (`lock_calls.rs`), and the ones left unrecorded.
    pub(crate) refused_logins: Mutex<(CallBudget<u32>, std::collections::HashMap<u32, u64>)>,
    /// What `vigilctl metrics` counts since vigild started (`metrics/`).
    pub metrics: Counters,
    /// When vigild started and last reloaded policies: why an end came late.
    pub lateness: Lateness,
}

/// How many record-writing calls (Inhibit, CancelInhibit, RevokeReauth) a user may make
/// a minute: far more than anyone types, few enough that a loop cannot flood syslog.
pub const USER_CALLS_PER_MINUTE: u32 = 30;

pub use vigil_protocol::time::now_usec;

impl Manager {
    pub fn new(config: Config, config_path: PathBuf, audit: Arc<AuditLog>, ids: IdAllocator, store: SessionStore, locks: LockBook) -> Self {
        let mut registry = Registry::default();
        registry.set_clock_offset(clock::offset_usec());
        Self {
            registry: Mutex::new(registry),
            ids: Mutex::new(ids),
            config: RwLock::new(Arc::new(config)),
            config_path,
            audit,
            store,
            store_files: Mutex::new(()),
            hooks: RwLock::new(Vec::new()),
            accounts: users::AccountCache::new(),
            refusals: Mutex::new(ReportThrottle::new(REPORT_PERIOD)),
            user_calls: Mutex::new(CallBudget::new(USER_CALLS_PER_MINUTE, Duration::from_secs(60))),
            tty_holders: Mutex::new(std::collections::HashMap::new()),
            logind_bus: RwLock::new(None),
            alerts: Alerts::default(),
            locks,
            refused_logins: Mutex::new((
                CallBudget::new(crate::sessions::lock_calls::REFUSED_LOGINS_PER_MINUTE, Duration::from_secs(60)),
                std::collections::HashMap::new(),
            )),
            metrics: Counters::default(),
            lateness: Lateness::default(),
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
        self.metrics.refused_calls.inc();
        self.count_refused_call(caller, method);
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

    /// True at most once a minute per `(uid, what)`: for alerts that a user repeating
    /// the same thing must not turn into a flood (the refusals' own throttle).
    pub(crate) fn should_alert_once_a_minute(&self, uid: u32, what: &'static str) -> bool {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).should_report((uid, what), Instant::now()).is_some()
    }

    pub(crate) fn require_root(&self, caller: &Caller, method: &'static str) -> Result<(), VigilError> {
        if caller.is_root() { Ok(()) } else { Err(self.refuse(caller, method, CallRefusal::RootOnly)) }
    }

    /// An admin verb polkit may delegate (`rpc/polkit.rs`): root, or a caller the bus
    /// interface had polkit authorise for this call.
    pub(crate) fn require_admin(&self, caller: &Caller, method: &'static str) -> Result<(), VigilError> {
        if caller.is_admin() { Ok(()) } else { Err(self.refuse(caller, method, CallRefusal::RootOnly)) }
    }

    /// The clock offset the sessions' times are in (`sys/clock.rs`).
    pub fn clock_offset(&self) -> i64 {
        self.registry().clock_offset()
    }

    /// The wall clock may have been set (`sys/clock.rs`): when its offset from the boot
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
        let _files = self.store_files.lock().unwrap_or_else(|p| p.into_inner());
        // Ended since the copy was taken: its file is gone and stays gone.
        if self.registry().get(saved.id).is_none() {
            return;
        }
        if let Err(e) = self.store.save(&saved) {
            self.audit.write(Record::new(Event::SessionSaveFailed).number("session", saved.id).text("error", e.to_string()));
        }
    }

    /// Removes the file of a session no longer registered (see `store_files`).
    pub(crate) fn remove_file(&self, id: u64) {
        let _files = self.store_files.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.store.remove(id);
    }

    /// Removes a session and audits why. False when it was not registered.
    pub fn end(&self, id: u64, reason: EndReason, extra: Option<(&'static str, i128)>) -> bool {
        self.end_with(id, reason, |record| match extra {
            Some((key, value)) => record.number(key, value),
            None => record,
        })
    }

    /// `end`, with `add` putting the fields of this end's reason on its `session_end`.
    pub fn end_with(&self, id: u64, reason: EndReason, add: impl FnOnce(Record) -> Record) -> bool {
        let Some(session) = self.registry().remove(id) else { return false };
        self.metrics.ended(reason);
        self.remove_file(id);
        self.inhibitor_ended_with(&session);
        let duration = now_usec().saturating_sub(session.who.started_usec) / 1_000_000;
        // Looked up once, for the record and for logind's end.
        let logind_session = logind::session_of(session.who.audit_session_id);
        let record = session_record_in_logind(reason.event(), &session, logind_session.clone());
        let mut record = add(record.text("reason", reason.as_str()).number("duration_s", duration));
        if matches!(reason, EndReason::Idle) {
            record = activity_evidence(record, &session);
        }
        self.audit.write(record);
        // vigild ends the processes; logind, where it tracks the login, ends its session too.
        if matches!(reason, EndReason::Admin | EndReason::Idle | EndReason::MaxAge | EndReason::Lock | EndReason::ReauthFailures)
            && let Some(logind_id) = session.scope().audit_session.and(logind_session)
        {
            let bus = self.logind_bus.read().unwrap_or_else(|p| p.into_inner()).clone();
            let audit = self.audit.clone();
            logind::terminate(logind_id, bus, move |logind_id, error| {
                audit.write(
                    Record::new(Event::LogindTerminateFailed).number("session", id).text("logind_session", logind_id).text("error", error),
                );
            });
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

    /// Each of `ids` still registered and not nested, with its leader's pid and whether
    /// it has a tty: what the supervisor reads ahead for a pass of checks (one lock).
    pub fn leaders_of(&self, ids: &[u64]) -> Vec<(u64, u32, bool)> {
        let registry = self.registry();
        ids.iter()
            .filter_map(|&id| registry.get(id))
            .filter(|s| !s.is_nested())
            .map(|s| (s.id, s.who.leader_pid, !s.ttys().is_empty()))
            .collect()
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

    /// Session data for the D-Bus session objects (no access check: properties are
    /// checked by the object layer).
    pub fn session_info(&self, id: u64) -> Option<SessionInfo> {
        self.registry().get(id).map(Session::info)
    }

    pub fn session_count(&self) -> usize {
        self.registry().len()
    }
}

/// A manager for unit tests: the built-in policy, no files, an audit log that goes
/// nowhere, no hooks.
#[cfg(test)]
pub fn manager_for_tests() -> Arc<Manager> {
    manager_with_store(SessionStore::none())
}

/// [`manager_for_tests`], its sessions saved in `store`.
#[cfg(test)]
pub fn manager_with_store(store: SessionStore) -> Arc<Manager> {
    Arc::new(Manager::new(
        Config::builtin(),
        PathBuf::from("/nonexistent.toml"),
        Arc::new(AuditLog::for_tests()),
        IdAllocator::open(None),
        store,
        LockBook::in_memory(),
    ))
}

/// The built-in policy of an ordinary ssh session, for unit tests to adjust.
#[cfg(test)]
pub fn policy_for_tests() -> vigil_config::ResolvedPolicy {
    Config::builtin().resolve(&vigil_config::SessionFacts { user: "u", groups: &[], service: "sshd", has_tty: true, rhost: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::registry::tests::identity;
    use vigil_protocol::events::EndReason;

    /// A copy of a session taken before its end (the idle supervisor's sample, an
    /// inhibitor call) never writes its file back after the end removed it: a restarted
    /// vigild would end the session a second time.
    #[test]
    fn a_save_after_the_end_does_not_bring_the_file_back() {
        let dir = std::env::temp_dir().join(format!("vigil-manager-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let core = manager_with_store(SessionStore::open(dir.clone()).unwrap());
        let session = Session::new(5, identity(4242, crate::sys::procfs::NO_AUDIT_SESSION), Arc::new(policy_for_tests()), 1);
        core.registry().insert(session);
        let copy = core.session(5).map(|s| s.saved());
        core.save(copy.clone());
        assert!(dir.join("5").exists(), "saved while registered");
        assert!(core.end(5, EndReason::Idle, None));
        assert!(!dir.join("5").exists(), "removed at the end");
        core.save(copy);
        assert!(!dir.join("5").exists(), "a stale copy wrote the file back");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
