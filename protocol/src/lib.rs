//! vigil's contract, defined once: the D-Bus names, the `org.vigil1.Manager` method
//! signatures (as a client proxy), the wire structs, the error names, and the audit
//! record format. The module, the daemon and `vigilctl` all use this crate; the daemon's
//! tests call its served interface through [`ManagerProxy`], so a drift breaks a test.

pub mod audit;
pub mod events;
pub mod frame;
pub mod lock;
mod target;
pub mod time;
mod wire;

pub use target::{Target, system_bus_address};

pub use lock::LockInfo;

pub use wire::{InhibitorInfo, MAX_INHIBIT_WHY_BYTES, MyStatus, OpenRequest, ReauthAnswer, SessionInfo, StatusReply};

/// Well-known name vigild owns on the system bus.
pub const BUS_NAME: &str = "org.vigil1";
/// Object path of the manager object.
pub const MANAGER_PATH: &str = "/org/vigil1";
/// Interface of the manager object.
pub const MANAGER_INTERFACE: &str = "org.vigil1.Manager";
/// Interface of each session object.
pub const SESSION_INTERFACE: &str = "org.vigil1.Session";
/// Session objects live at `SESSION_PATH_PREFIX/<id>`.
pub const SESSION_PATH_PREFIX: &str = "/org/vigil1/session";
/// vigild's private peer-to-peer D-Bus socket (like systemd's /run/systemd/private).
pub const DEFAULT_SOCKET: &str = "/run/vigil/private";
/// Prefix of the D-Bus error names vigild replies with.
pub const ERROR_PREFIX: &str = "org.vigil1.Error";

/// Longest string field vigild accepts from a peer, in bytes. PAM items (user, tty,
/// rhost) are far shorter in practice. vigild refuses anything longer; the module cuts
/// an overlong item to this length itself (at a character boundary) and says so in
/// `OpenSessionEx`'s `truncated`, so a hostile PAM_RHOST never costs supervision and a
/// cut is never silent.
pub const MAX_FIELD_BYTES: usize = 1024;

/// The object path of session `id`.
pub fn session_path(id: u64) -> String {
    format!("{SESSION_PATH_PREFIX}/{id}")
}

/// Errors vigild replies with; their D-Bus names are `org.vigil1.Error.<Variant>`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.vigil1.Error")]
pub enum VigilError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller's credentials do not allow this call.
    AccessDenied(String),
    /// No session with that id (or not one the caller may see).
    NoSuchSession(String),
    /// An argument was malformed or too long.
    InvalidArgument(String),
    /// The configuration file was refused; the running policy is unchanged.
    ConfigInvalid(String),
    /// Something on vigild's side failed.
    Failed(String),
}

/// `org.vigil1.Manager`, as clients call it. The daemon serves the same methods.
#[zbus::proxy(interface = "org.vigil1.Manager", default_service = "org.vigil1", default_path = "/org/vigil1")]
pub trait Manager {
    /// Registers a login session led by the calling process (root only). `leader_pid`
    /// and `audit_session_id` must match what the transport and /proc say about the
    /// caller; `truncated` names the fields the module cut to [`MAX_FIELD_BYTES`]
    /// (recorded as `truncated=` in the `session_open` record). Returns the new session id.
    #[allow(clippy::too_many_arguments)]
    fn open_session_ex(
        &self,
        user: &str,
        service: &str,
        tty: &str,
        rhost: &str,
        ruser: &str,
        leader_pid: u32,
        audit_session_id: u32,
        truncated: &[&str],
    ) -> Result<u64, VigilError>;

    /// Ends the registration of a session (root only).
    fn close_session(&self, id: u64) -> Result<(), VigilError>;

    /// Sessions visible to the caller: all for root, the caller's own otherwise.
    fn list_sessions(&self) -> Result<Vec<SessionInfo>, VigilError>;

    /// One session, if visible to the caller.
    fn get_session(&self, id: u64) -> Result<SessionInfo, VigilError>;

    /// Ends a session's processes and its registration (root only).
    fn terminate_session(&self, id: u64) -> Result<(), VigilError>;

    /// Re-reads the configuration file (root only). Returns a one-line summary.
    fn reload(&self) -> Result<String, VigilError>;

    /// Daemon facts for `vigilctl`: version, config path, policy count, sessions.
    fn status(&self) -> Result<StatusReply, VigilError>;

    /// Re-authentication for a sensitive service (root only: the caller is sudo, su or
    /// pkexec running as root). vigild finds the session of the calling process from
    /// the transport's pid (audit session id, else its parent chain), never from the
    /// message; that process's real uid must be the session's user.
    /// `user` is PAM_USER, whose password would be asked: a proof only ever stands for
    /// the session's own user (su to another user always asks).
    fn check_reauth(&self, service: &str, user: &str) -> Result<ReauthAnswer, VigilError>;

    /// Records a proof of identity for the calling process's session and tty, after a
    /// real password (root only).
    fn record_auth(&self, service: &str, user: &str) -> Result<(), VigilError>;

    /// Records a failed password for the calling process's session (root only).
    fn record_auth_failure(&self, service: &str) -> Result<(), VigilError>;

    /// Drops the caller's own proofs of identity (any user, for their own session).
    /// Returns how many were dropped.
    fn revoke_reauth(&self) -> Result<u32, VigilError>;

    /// The caller's own session: idle time, deadline, whether sudo will ask.
    fn my_status(&self) -> Result<MyStatus, VigilError>;

    /// Starts a new audit chain key from the next record on (root only). Returns the
    /// key file's text, for the admin to keep off the host.
    fn audit_init(&self) -> Result<String, VigilError>;

    /// Writes a `seal` record now (root only), so that `vigilctl audit verify` can tell
    /// whether records before it were cut. Returns its seq.
    fn audit_seal(&self) -> Result<u64, VigilError>;

    /// Takes an idle inhibitor on the caller's own session (any user, for a session of
    /// theirs; found from the transport like `MyStatus`): the session is neither warned
    /// nor ended for idleness for `duration_usec` from now (max_session_age still
    /// applies). Refused over the policy's `max_inhibit`, or when it is `"0"`. A new
    /// inhibitor replaces the session's current one. Returns when it expires (µs since
    /// the epoch).
    fn inhibit(&self, duration_usec: u64, why: &str) -> Result<u64, VigilError>;

    /// Drops the idle inhibitor of session `id` (0: the caller's own session); root, or
    /// the session's user. Returns whether there was one.
    fn cancel_inhibit(&self, id: u64) -> Result<bool, VigilError>;

    /// Idle inhibitors of the sessions visible to the caller (all for root, the
    /// caller's own otherwise).
    fn list_inhibitors(&self) -> Result<Vec<InhibitorInfo>, VigilError>;

    /// Locks `user` (root only; never uid 0): ends every session of theirs as an admin
    /// termination would, and from now the module refuses them in PAM's account stage
    /// until the lock expires (`duration_usec` from now; 0: until it is lifted) or is
    /// lifted. A lock already there is replaced. Returns the lock and how many sessions
    /// were ended.
    fn lock_user(&self, user: &str, why: &str, duration_usec: u64) -> Result<(LockInfo, u32), VigilError>;

    /// Lifts `user`'s lock (root only). Returns whether there was one.
    fn unlock_user(&self, user: &str, why: &str) -> Result<bool, VigilError>;

    /// Every lock in force (root only).
    fn list_locks(&self) -> Result<Vec<LockInfo>, VigilError>;

    /// The module refused a login of a locked user in PAM's account stage (root only:
    /// the caller is sshd, login, su, sudo, cron as root): vigild records it and
    /// raises an alert. `user` is who was locked, `pam_user` PAM_USER.
    fn record_login_refused(&self, user: &str, pam_user: &str, service: &str, rhost: &str, tty: &str) -> Result<(), VigilError>;

    /// vigild's metrics in the Prometheus text exposition format (root only): sessions
    /// by service and tty, inhibitors, locks, counters since vigild started, vigild's
    /// own memory and descriptors.
    fn metrics(&self) -> Result<String, VigilError>;
}
