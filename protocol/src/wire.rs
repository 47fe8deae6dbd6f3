//! Structures that cross the wire. Field order is the D-Bus signature: append only.

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

/// The arguments of `OpenSessionEx`: what the module sends and vigild checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    pub user: String,
    pub service: String,
    pub tty: String,
    pub rhost: String,
    pub ruser: String,
    pub leader_pid: u32,
    pub audit_session_id: u32,
    /// Fields the module cut to [`crate::MAX_FIELD_BYTES`] (`rhost`, `tty`, ...): vigild
    /// records them as `truncated=` so the cut is never silent.
    pub truncated: Vec<String>,
}

/// A registered session, as `ListSessions`/`GetSession` return it.
/// Empty strings mean "not set"; `audit_session_id` is `u32::MAX` when the kernel
/// has none for the session (the kernel's own "unset" value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SessionInfo {
    pub id: u64,
    pub user: String,
    pub uid: u32,
    pub service: String,
    pub tty: String,
    pub rhost: String,
    pub leader_pid: u32,
    pub audit_session_id: u32,
    /// Start, in microseconds since the Unix epoch.
    pub started_usec: u64,
    /// Last activity seen, in microseconds since the Unix epoch.
    pub last_activity_usec: u64,
    /// Name of the policy block that matched (`defaults` when none did).
    pub policy: String,
    /// The terminals vigild found for the session (`pts/3`), from /proc.
    pub ttys: Vec<String>,
    /// When the session will be ended unless there is activity, in microseconds since
    /// the Unix epoch; 0 when no limit applies.
    pub deadline_usec: u64,
    /// Id of the tracked session this one runs inside (su, sudo in an ssh session);
    /// 0 when it is a login session of its own.
    pub parent: u64,
    /// What the last activity was measured by (`ActivitySource`'s wire name:
    /// `tty_read`, `process_io`, `start`, ...).
    pub activity_by: String,
    /// The tty it was seen on (`pts/3`); empty for none.
    pub activity_tty: String,
    /// For `tty_read`: the foreground process that read (`bash[812]`); else empty.
    pub activity_reader: String,
    /// Accesses to the session's ttys since the last activity that were not reads by
    /// their foreground (`touch -a`), not counted as input.
    pub accesses_ignored: u64,
}

/// What `Status` reports about the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct StatusReply {
    pub version: String,
    pub config_path: String,
    pub policy_count: u32,
    pub session_count: u32,
}

/// What `CheckReauth` answers about the calling process's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ReauthAnswer {
    /// A fresh proof of identity exists: no password needed.
    pub fresh: bool,
    /// Why not (`none`, `expired`, `idle`, `revoked`, `always`, `unknown_session`,
    /// `not_sensitive`), or `fresh`.
    pub reason: String,
    /// Age of the proof that was used or looked at, in microseconds (0 when none).
    pub proof_age_usec: u64,
    /// The session vigild found for the caller (0 when none).
    pub session: u64,
}

/// What `MyStatus` tells a user about their own session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct MyStatus {
    pub session: SessionInfo,
    /// How long the session has had no activity, in microseconds.
    pub idle_usec: u64,
    /// Whether the next sudo (or su, pkexec) from this terminal will ask the password,
    /// and why.
    pub next_sudo_asks: bool,
    pub reauth_reason: String,
    /// Age of this terminal's proof of identity, in microseconds (0 when none).
    pub proof_age_usec: u64,
}

/// Longest `why` an idle inhibitor may carry, in bytes: it is the user's own text,
/// written into every `inhibit_start` record and shown in `vigilctl list`.
pub const MAX_INHIBIT_WHY_BYTES: usize = 200;

/// An idle inhibitor, as `ListInhibitors` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct InhibitorInfo {
    /// The inhibited session.
    pub session: u64,
    /// When it was taken, in microseconds since the Unix epoch.
    pub since_usec: u64,
    /// When it expires, in microseconds since the Unix epoch.
    pub until_usec: u64,
    /// The user's reason (at most [`MAX_INHIBIT_WHY_BYTES`] bytes).
    pub why: String,
}
