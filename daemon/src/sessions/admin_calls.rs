//! The calls of `org.vigil1.Manager` that read or change vigild as a whole rather than
//! one login: ListSessions, GetSession, Status, TerminateSession, Reload (SIGHUP too),
//! AuditInit and AuditSeal.

use std::path::PathBuf;
use std::sync::Arc;

use vigil_config::{Config, ConfigError, NssAccounts};
use vigil_protocol::audit::Record;
use vigil_protocol::events::{Event, ReloadResult};
use vigil_protocol::{SessionInfo, StatusReply, VigilError};

use crate::audit::records::{EndReason, policy_changed, session_record};
use crate::rpc::caller::Caller;
use crate::sessions::by::By;
use crate::sessions::manager::Manager;
use crate::sessions::session::Session;
use crate::supervise::terminate;

/// Most `config_warning` records one load writes (a `kind=more` record counts the rest).
const MAX_WARNING_RECORDS: usize = 32;

/// Why a reload kept the running policy.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load (its error names the file, line and column).
    #[error(transparent)]
    Invalid(ConfigError),
    /// An `[audit]` key the writer takes only at start changed.
    #[error("{}: [audit] {key} changed: the audit writer takes it only at start (systemctl restart vigild)", path.display())]
    NeedsRestart { path: PathBuf, key: &'static str },
}

impl Manager {
    /// Root, and a user polkit authorised to list sessions, see every session; any
    /// other user their own.
    fn visible(caller: &Caller, session: &Session) -> bool {
        caller.is_admin() || caller.uid == session.who.uid
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

    /// TerminateSession: root, or a user polkit authorised. Ends the session's processes
    /// (SIGHUP, SIGKILL after the policy's kill_grace) and its registration, recorded
    /// with who asked. A session whose processes cannot be seen or signalled is kept,
    /// and the call fails saying why.
    pub async fn terminate_session(&self, caller: Caller, id: u64) -> Result<(), VigilError> {
        self.require_admin(&caller, "TerminateSession")?;
        let by = By::of(&caller).await;
        self.terminate(id, EndReason::Admin, Some(&by)).map(|_| ())
    }

    /// Ends session `id`'s processes and its registration for `reason` (an admin's
    /// TerminateSession, named by `by`; a lock). Returns how many processes were
    /// signalled.
    pub(crate) fn terminate(&self, id: u64, reason: EndReason, by: Option<&By>) -> Result<usize, VigilError> {
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
                        .text("by", reason),
                );
                return Err(VigilError::Failed(format!("session {id} kept: {why}")));
            }
        };
        let processes = targets.len();
        self.end_with(id, reason, |record| {
            let record = record.number("processes", processes as u64);
            match by {
                Some(by) => by.write(record),
                None => record,
            }
        });
        // The answer says the session is ended; the SIGKILL after kill_grace (5 s by
        // default, any length by policy) goes on without the caller waiting for it.
        // (Unit tests of the calls that end sessions run without a runtime.)
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(targets.end(session.policy.kill_grace));
        }
        Ok(processes)
    }

    /// Reload over D-Bus: root, or a user polkit authorised; SIGHUP calls
    /// `reload_config` directly.
    pub async fn reload(&self, caller: Caller) -> Result<String, VigilError> {
        self.require_admin(&caller, "Reload")?;
        let by = By::of(&caller).await;
        self.reload_config("dbus", Some(&by)).await.map_err(|e| VigilError::ConfigInvalid(format!("{e}; the running policy is unchanged")))
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

    /// Re-reads the configuration. A bad file keeps the running policy. `by`: who asked
    /// over D-Bus (none for SIGHUP: a signal does not say who sent it).
    pub async fn reload_config(&self, trigger: &'static str, by: Option<&By>) -> Result<String, ReloadError> {
        let named = |record: Record| match by {
            Some(by) => by.write(record),
            None => record,
        };
        let path = self.config_path.as_os_str().as_encoded_bytes();
        let loaded = Config::load(&self.config_path).map_err(ReloadError::Invalid).and_then(|config| {
            match needs_restart(self.config().audit(), config.audit()) {
                Some(key) => Err(ReloadError::NeedsRestart { path: self.config_path.clone(), key }),
                None => Ok(config),
            }
        });
        match loaded {
            Ok(config) => {
                let summary = format!("{} loaded, {} policy block(s)", self.config_path.display(), config.policy_count());
                self.audit.write(named(
                    Record::new(Event::ConfigReload)
                        .text("result", ReloadResult::Ok)
                        .text("trigger", trigger)
                        .text("path", path)
                        .number("policies", config.policy_count() as i128),
                ));
                self.audit.set_format(config.audit().format);
                let config = Arc::new(config);
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = config.clone();
                let changed: Vec<(Session, String)> = self
                    .registry()
                    .values_mut()
                    .filter_map(|session| session.resolve_policy(&config).map(|was| (session.clone(), was)))
                    .collect();
                // Every deadline is computed again under the new file, also where the
                // policy's name stays (a shorter timeout in the same block).
                self.lateness.reloaded();
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
                self.audit.write(named(
                    Record::new(Event::ConfigReload)
                        .text("result", ReloadResult::Failed)
                        .text("trigger", trigger)
                        .text("path", path)
                        .text("error", error.to_string())
                        .text("kept", "previous"),
                ));
                Err(error)
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
}

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
