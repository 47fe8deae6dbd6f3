//! vigild's state and the operations the D-Bus methods map to: who may do what,
//! what gets registered, and the audit record each decision leaves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use vigil_config::{Config, ResolvedPolicy, SessionFacts};
use vigil_protocol::audit::Record;
use vigil_protocol::{MAX_FIELD_BYTES, SessionInfo, StatusReply, VigilError};

use crate::audit_log::AuditLog;
use crate::caller::Caller;
use crate::ids::IdAllocator;
use crate::procfs::{self, NO_AUDIT_SESSION};
use crate::terminate::{self, SessionScope};
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
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::LeaderGone => "leader_gone",
            EndReason::Admin => "admin",
        }
    }
}

/// The request of OpenSession, as it came off the wire.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub user: String,
    pub service: String,
    pub tty: String,
    pub rhost: String,
    pub ruser: String,
    pub leader_pid: u32,
    pub audit_session_id: u32,
}

/// Callbacks to the D-Bus layer (object publication, leader watches), so that the
/// core stays testable without a bus.
pub trait Hooks: Send + Sync {
    fn session_added(&self, id: u64, leader_pid: u32);
    fn session_removed(&self, id: u64);
}

pub struct Vigild {
    sessions: Mutex<BTreeMap<u64, Session>>,
    ids: Mutex<IdAllocator>,
    config: RwLock<Arc<Config>>,
    config_path: PathBuf,
    pub audit: AuditLog,
    hooks: RwLock<Option<Arc<dyn Hooks>>>,
}

pub fn now_usec() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn has_tty(tty: &str) -> bool {
    // sshd sets PAM_TTY to the word "ssh"; a real tty is a device name. The idle
    // supervisor finds the session's ptys from /proc as they appear.
    !tty.is_empty() && tty != "ssh"
}

fn check_field(name: &str, value: &str) -> Result<(), VigilError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(VigilError::InvalidArgument(format!("{name} is longer than {MAX_FIELD_BYTES} bytes")));
    }
    Ok(())
}

impl Vigild {
    pub fn new(config: Config, config_path: PathBuf, audit: AuditLog, ids: IdAllocator) -> Self {
        Self {
            sessions: Mutex::new(BTreeMap::new()),
            ids: Mutex::new(ids),
            config: RwLock::new(Arc::new(config)),
            config_path,
            audit,
            hooks: RwLock::new(None),
        }
    }

    pub fn set_hooks(&self, hooks: Arc<dyn Hooks>) {
        *self.hooks.write().unwrap_or_else(|p| p.into_inner()) = Some(hooks);
    }

    fn hooks(&self) -> Option<Arc<dyn Hooks>> {
        self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone()
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
            check_field(name, value)?;
        }
        if r.leader_pid != caller.pid {
            return Err(self.refuse(&caller, "OpenSession", "leader_pid is not the calling process"));
        }
        let ses = procfs::audit_session_id(caller.pid);
        if r.audit_session_id != ses {
            return Err(self.refuse(&caller, "OpenSession", "audit_session_id does not match /proc"));
        }
        let user = r.user.clone();
        let account = tokio::task::spawn_blocking(move || users::lookup(&user)).await.ok().flatten();
        let Some(account) = account else {
            return Err(VigilError::InvalidArgument(format!("unknown user {:?}", r.user)));
        };
        let parent_ses = procfs::stat(caller.pid).map(|s| procfs::audit_session_id(s.ppid));
        let owns_audit_session = ses != NO_AUDIT_SESSION && parent_ses != Some(ses);

        let config = self.config();
        let rhost = (!r.rhost.is_empty()).then_some(r.rhost.as_str());
        let policy = config.resolve(&SessionFacts {
            user: &r.user,
            groups: &account.groups,
            service: &r.service,
            has_tty: has_tty(&r.tty),
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
            },
            ruser: r.ruser.clone(),
            groups: account.groups,
            policy,
            owns_audit_session,
        };
        self.audit.write(&session_record("session_open", &session));
        self.sessions().insert(id, session);
        if let Some(hooks) = self.hooks() {
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
        if let Some(hooks) = self.hooks() {
            hooks.session_removed(id);
        }
        true
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
        let scope = SessionScope {
            leader_pid: session.info.leader_pid,
            audit_session: session.owns_audit_session.then_some(session.info.audit_session_id),
        };
        let pids = terminate::session_pids(scope);
        let signalled = terminate::end_processes(&pids, session.policy.kill_grace).await;
        self.end(id, EndReason::Admin, Some(("signalled", signalled as i128)));
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
                let config = Arc::new(config);
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = config.clone();
                self.reresolve(&config);
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
            let rhost = (!session.info.rhost.is_empty()).then_some(session.info.rhost.as_str());
            session.policy = config.resolve(&SessionFacts {
                user: &session.info.user,
                groups: &session.groups,
                service: &session.info.service,
                has_tty: has_tty(&session.info.tty),
                rhost,
            });
            session.info.policy = session.policy.policy_name.clone();
        }
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

/// The fields every session record carries, so one grep links them.
fn session_record(event: &'static str, s: &Session) -> Record {
    Record::new(event)
        .number("session", s.info.id)
        .number("ses", s.info.audit_session_id)
        .text("user", &s.info.user)
        .number("uid", s.info.uid)
        .text("service", &s.info.service)
        .text("tty", &s.info.tty)
        .text("rhost", &s.info.rhost)
        .text("ruser", &s.ruser)
        .number("leader_pid", s.info.leader_pid)
        .text("policy", &s.info.policy)
}
