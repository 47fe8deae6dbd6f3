//! Every audit event name and every reason a record carries, defined once with its wire
//! name. vigild and the module write them, `vigilctl` and the audit readers match them:
//! a new event or reason is added here or nowhere, and a reader's exhaustive `match`
//! then says where it still needs a word. Wire names are what AUDIT.md documents and
//! the end-to-end tests assert: never rename one.

use std::fmt;
use std::str::FromStr;

/// A name that is none of a kind's wire names (a newer vigild's, or a forged line's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind}: {name:?}")]
pub struct UnknownName {
    /// Which kind of name (`event`, `reauth reason`, ...).
    pub kind: &'static str,
    pub name: String,
}

/// An enum of wire names: each variant with its name, `ALL` in order, `as_str`,
/// `FromStr`, `Display`, and `AsRef<[u8]>` so that a variant is a record value as is.
macro_rules! wire_names {
    ($(#[$meta:meta])* pub enum $name:ident ($kind:literal) { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(name: &str) -> Result<Self, UnknownName> {
                match name {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownName { kind: $kind, name: name.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                self.as_str().as_bytes()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

wire_names! {
    /// The `event=` of a record (AUDIT.md, "Events").
    pub enum Event ("event") {
        DaemonStart = "daemon_start",
        DaemonStop = "daemon_stop",
        ConfigReload = "config_reload",
        ConfigWarning = "config_warning",
        SessionOpen = "session_open",
        SessionClose = "session_close",
        SessionRestored = "session_restored",
        SessionAdopted = "session_adopted",
        SessionFileUnreadable = "session_file_unreadable",
        SessionSaveFailed = "session_save_failed",
        ActivitySuspect = "activity_suspect",
        /// A login claimed a tty that another session claimed but no longer held.
        TtyTakenOver = "tty_taken_over",
        /// Another policy block applies to a session now: a tty claimed or given up
        /// (blocks may match on `tty`), or a reload.
        SessionPolicyChanged = "session_policy_changed",
        TerminateFailed = "terminate_failed",
        LogindTerminateFailed = "logind_terminate_failed",
        SessionEnd = "session_end",
        IdleWarning = "idle_warning",
        InhibitStart = "inhibit_start",
        InhibitEnd = "inhibit_end",
        IdleLimitReached = "idle_limit_reached",
        ReauthGranted = "reauth_granted",
        ReauthRequired = "reauth_required",
        ReauthRecorded = "reauth_recorded",
        ReauthFailed = "reauth_failed",
        ReauthRevoked = "reauth_revoked",
        CallRefused = "call_refused",
        ClockStep = "clock_step",
        ConnectionRefused = "connection_refused",
        MessageRefused = "message_refused",
        RefusalsUnreported = "refusals_unreported",
        AuditKeyInit = "audit_key_init",
        Seal = "seal",
        RecordsDropped = "records_dropped",
        /// Something vigild sees as it happens that an admin should look at now
        /// (`kind=`, [`AlertKind`]); written at syslog severity warning.
        Alert = "alert",
        /// The module's (tag `pam_vigil`): nobody answered at open or close.
        DaemonUnreachable = "daemon_unreachable",
        /// The module's: an argument in /etc/pam.d it does not know.
        ModuleArgumentIgnored = "module_argument_ignored",
        /// `vigilctl lock`: a user locked.
        LockStart = "lock_start",
        /// A lock expired or was lifted.
        LockEnd = "lock_end",
        /// The module refused a login (or sudo, su, cron) of a locked user.
        LoginRefused = "login_refused",
    }
}

wire_names! {
    /// Why a session's registration ended (`reason=` of `session_close`/`session_end`;
    /// also `by=` of `terminate_failed`).
    pub enum EndReason ("end reason") {
        /// close_session from the module.
        Closed = "closed",
        /// The leader process exited without close_session.
        LeaderGone = "leader_gone",
        /// An admin's TerminateSession.
        Admin = "admin",
        /// The idle supervisor: no activity for the idle timeout.
        Idle = "idle",
        /// The idle supervisor: older than max_session_age.
        MaxAge = "max_age",
        /// `on_reauth_failures = "end"`: a burst of failed re-authentications in the
        /// session (the `alert kind=reauth_failures` before it says which).
        ReauthFailures = "reauth_failures",
        /// The user was locked (`vigilctl lock`).
        Lock = "lock",
    }
}

wire_names! {
    /// Why a lock ended (`reason=` of `lock_end`).
    pub enum LockEndReason ("lock end reason") {
        /// Its `--for` ran out.
        Expired = "expired",
        /// `vigilctl unlock`.
        Lifted = "lifted",
    }
}

/// The `reason=` of `login_refused` (the one reason the module refuses a login for).
pub const LOGIN_REFUSED_LOCKED: &str = "locked";

impl EndReason {
    /// `session_close` for the module's own close, `session_end` for everything else.
    pub fn event(self) -> Event {
        if self == EndReason::Closed { Event::SessionClose } else { Event::SessionEnd }
    }
}

wire_names! {
    /// Which limit a session reached (`limit=` of `idle_warning`, `idle_limit_reached`).
    pub enum Limit ("limit") {
        /// No activity for the idle timeout.
        Idle = "idle",
        /// Older than max_session_age.
        MaxAge = "max_age",
    }
}

wire_names! {
    /// Why the password is asked (`reason=` of `reauth_required`; the `reason` of
    /// `CheckReauth`'s answer and `MyStatus`'s `reauth_reason` when not [`REAUTH_FRESH`]).
    pub enum ReauthReason ("reauth reason") {
        /// No proof for this session and terminal.
        NoProof = "none",
        /// Older than reauth_window.
        Expired = "expired",
        /// The session sat idle longer than reauth_after_idle since the proof.
        Idle = "idle",
        /// Revoked (idle warning, the user, an admin).
        Revoked = "revoked",
        /// reauth_window = 0: always ask.
        Always = "always",
        /// The password asked is another user's (su bob).
        OtherUser = "other_user",
        /// The service is not one of the policy's sensitive services.
        NotSensitive = "not_sensitive",
        /// The caller is in no session vigild knows.
        UnknownSession = "unknown_session",
        /// The module's: vigild did not answer.
        DaemonUnreachable = "daemon_unreachable",
    }
}

/// The `reason` of a `CheckReauth` or `MyStatus` answer when no password is needed.
pub const REAUTH_FRESH: &str = "fresh";

wire_names! {
    /// Why proofs of identity were dropped (`reason=` of `reauth_revoked`).
    pub enum RevokeReason ("revoke reason") {
        /// The user's `vigilctl reauth --revoke`.
        User = "user",
        /// The idle warning was written.
        IdleWarning = "idle_warning",
    }
}

wire_names! {
    /// Why an idle inhibitor ended (`reason=` of `inhibit_end`).
    pub enum InhibitEndReason ("inhibit end reason") {
        Expired = "expired",
        Cancelled = "cancelled",
        /// Its session ended.
        SessionEnd = "session_end",
    }
}

wire_names! {
    /// Who cancelled an idle inhibitor (`by=` of `inhibit_end reason=cancelled`).
    pub enum InhibitCancelledBy ("inhibit canceller") {
        User = "user",
        Root = "root",
        /// A new inhibitor took its place.
        Replaced = "replaced",
    }
}

wire_names! {
    /// Which rule an `alert` record reports (`kind=`; AUDIT.md, "Alerts").
    pub enum AlertKind ("alert kind") {
        /// Failed re-authentications in one session, in a burst.
        ReauthFailures = "reauth_failures",
        /// An `activity_suspect` record was written.
        ActivitySuspect = "activity_suspect",
        /// Refused calls from one uid, in a burst.
        RefusedCalls = "refused_calls",
        /// A locked user tried to log in (or sudo, su): the first refusal of each
        /// minute per locked user.
        LockedLogin = "locked_login",
    }
}

wire_names! {
    /// Why a tty time was not taken as input (`reason=` of `activity_suspect`).
    pub enum SuspectReason ("suspect reason") {
        /// Later than now.
        Future = "future",
        /// Later than the last input inotify saw.
        AheadOfInput = "ahead_of_input",
        /// An access event on the tty (IN_ACCESS: a read, or an atime-only `utimensat`
        /// such as `touch -a`) while no process of its foreground process group read.
        NotARead = "not_a_read",
        /// Input read at a fixed period with no output after it: counted, and noted.
        Periodic = "periodic",
    }
}

wire_names! {
    /// What a session's last activity was measured by (`activity_by=` of the idle
    /// records, `vigilctl show`).
    #[derive(Default)]
    pub enum ActivitySource ("activity source") {
        /// Nothing since the session started (or since vigild took it over again).
        #[default]
        Start = "start",
        /// Input read from a tty by a process of its foreground process group.
        TtyRead = "tty_read",
        /// An access to a tty that could not be checked (/proc unreadable): taken as input.
        TtyAccess = "tty_access",
        /// Output on a tty, where `output_is_activity` says it counts.
        TtyOutput = "tty_output",
        /// A tty's atime or mtime (the fallback when inotify does not watch it).
        TtyTime = "tty_time",
        /// I/O of the session's processes (a session without a tty).
        ProcessIo = "process_io",
    }
}

wire_names! {
    /// Why vigild could not end a session's processes (`reason=` of `terminate_failed`).
    pub enum TerminateFailure ("terminate failure") {
        CannotListProcesses = "cannot_list_processes",
        CannotHoldProcess = "cannot_hold_process",
    }
}

wire_names! {
    /// Why vigild refused a D-Bus call (`reason=` of vigild's `call_refused`; the module's
    /// own `call_refused` names the D-Bus error instead, see [`ModuleFailure`]).
    pub enum CallRefusal ("call refusal") {
        /// The method is root's (OpenSession, Reload, TerminateSession, ...).
        RootOnly = "root_only",
        /// A user's record-writing calls (RevokeReauth, Inhibit, CancelInhibit) over the
        /// minute's allowance.
        RateLimited = "rate_limited",
        /// The calling process is in another user's session.
        NotCallersSession = "not_callers_session",
        /// OpenSession: `leader_pid` is not the calling process.
        LeaderNotCaller = "leader_not_caller",
        /// OpenSession: `audit_session_id` is not the caller's in /proc.
        AuditSessionMismatch = "audit_session_mismatch",
        /// OpenSession: a field over the wire limit (`field=`, `bytes=`).
        FieldTooLong = "field_too_long",
        /// OpenSession: a user the name service does not know.
        UnknownUser = "unknown_user",
        /// Inhibit: the session's inhibited time since its last activity would go past
        /// the policy's `max_inhibit_total`.
        InhibitBudgetSpent = "inhibit_budget_spent",
        /// An admin verb on the system bus from a user polkit did not authorise for it
        /// (or polkit did not answer: the verb stays root's).
        NotAuthorized = "not_authorized",
    }
}

impl CallRefusal {
    /// The words of the D-Bus error the caller gets (after `Method: `).
    pub const fn describe(self) -> &'static str {
        match self {
            CallRefusal::RootOnly => "root only",
            CallRefusal::RateLimited => "too many calls this minute; try again later",
            CallRefusal::NotCallersSession => "not the caller's session",
            CallRefusal::LeaderNotCaller => "leader_pid is not the calling process",
            CallRefusal::AuditSessionMismatch => "audit_session_id does not match /proc",
            CallRefusal::FieldTooLong => "a field is over the wire limit",
            CallRefusal::UnknownUser => "unknown user",
            CallRefusal::InhibitBudgetSpent => "the session's idle inhibitors since its last activity reached max_inhibit_total",
            CallRefusal::NotAuthorized => "not authorized by polkit",
        }
    }
}

wire_names! {
    /// Why the private socket refused a connection (`reason=` of `connection_refused`).
    pub enum ConnectionRefusal ("connection refusal") {
        PerUidLimit = "per_uid_limit",
        TotalLimit = "total_limit",
    }
}

wire_names! {
    /// Why the private socket's guard closed a connection (`reason=` of `message_refused`).
    pub enum MessageRefusal ("message refusal") {
        TooLarge = "too_large",
        Malformed = "malformed",
        HandshakeTooLong = "handshake_too_long",
        /// The peer kept sending calls without reading the answers, past the bound on
        /// calls held unanswered for one connection.
        RepliesUnread = "replies_unread",
        /// A user's calls on the bus past their share of vigild's bus connection were
        /// passed over, unanswered.
        BusShare = "bus_share",
    }
}

wire_names! {
    /// Whether a reload took the file (`result=` of `config_reload`).
    pub enum ReloadResult ("reload result") {
        Ok = "ok",
        Failed = "failed",
    }
}

wire_names! {
    /// The module's call that failed (`call=` of its `daemon_unreachable`, `call_refused`).
    pub enum ModuleCall ("module call") {
        OpenSession = "open_session",
        CloseSession = "close_session",
        CheckReauth = "check_reauth",
        RecordAuth = "record_auth",
        RecordAuthFailure = "record_auth_failure",
    }
}

wire_names! {
    /// Why a module's call got no answer, or was not made (`reason=` of its records; a
    /// refusal's reason is instead its D-Bus error name's last part in snake case).
    pub enum ModuleFailure ("module failure") {
        /// No answer within `timeout=`.
        Timeout = "timeout",
        /// vigild could not be reached.
        Unreachable = "unreachable",
        /// PAM_USER was empty: vigild was not called.
        NoUser = "no_user",
        /// PAM_USER was over the wire limit: vigild was not called.
        UserTooLong = "user_too_long",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every wire name of every kind, with its kind.
    fn all_names() -> Vec<(&'static str, Vec<&'static str>)> {
        fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
            all.iter().map(|v| name(*v)).collect()
        }
        vec![
            ("event", names(Event::ALL, Event::as_str)),
            ("end reason", names(EndReason::ALL, EndReason::as_str)),
            ("limit", names(Limit::ALL, Limit::as_str)),
            ("reauth reason", names(ReauthReason::ALL, ReauthReason::as_str)),
            ("revoke reason", names(RevokeReason::ALL, RevokeReason::as_str)),
            ("inhibit end reason", names(InhibitEndReason::ALL, InhibitEndReason::as_str)),
            ("inhibit canceller", names(InhibitCancelledBy::ALL, InhibitCancelledBy::as_str)),
            ("suspect reason", names(SuspectReason::ALL, SuspectReason::as_str)),
            ("alert kind", names(AlertKind::ALL, AlertKind::as_str)),
            ("activity source", names(ActivitySource::ALL, ActivitySource::as_str)),
            ("terminate failure", names(TerminateFailure::ALL, TerminateFailure::as_str)),
            ("call refusal", names(CallRefusal::ALL, CallRefusal::as_str)),
            ("connection refusal", names(ConnectionRefusal::ALL, ConnectionRefusal::as_str)),
            ("message refusal", names(MessageRefusal::ALL, MessageRefusal::as_str)),
            ("reload result", names(ReloadResult::ALL, ReloadResult::as_str)),
            ("module call", names(ModuleCall::ALL, ModuleCall::as_str)),
            ("module failure", names(ModuleFailure::ALL, ModuleFailure::as_str)),
        ]
    }

    /// The identifiers written in AUDIT.md's code spans (`event`, `reason=a/b`, ...).
    fn documented() -> HashSet<&'static str> {
        const AUDIT_MD: &str = include_str!("../../AUDIT.md");
        AUDIT_MD
            .split('`')
            .skip(1)
            .step_by(2)
            .flat_map(|span| span.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')))
            .filter(|word| !word.is_empty())
            .collect()
    }

    #[test]
    fn audit_md_documents_every_wire_name() {
        let documented = documented();
        let missing: Vec<String> = all_names()
            .into_iter()
            .flat_map(|(kind, names)| names.into_iter().map(move |n| (kind, n)))
            .filter(|(_, name)| !documented.contains(name))
            .map(|(kind, name)| format!("{kind} {name}"))
            .collect();
        assert!(missing.is_empty(), "AUDIT.md does not mention: {missing:?}");
    }

    #[test]
    fn every_event_has_a_row_in_audit_md_events_table() {
        const AUDIT_MD: &str = include_str!("../../AUDIT.md");
        for event in Event::ALL {
            assert!(AUDIT_MD.contains(&format!("| `{event}` |")), "no row for {event} in AUDIT.md");
        }
    }

    #[test]
    fn wire_names_are_unique_identifiers_that_parse_back() {
        for (kind, names) in all_names() {
            let unique: HashSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{kind}: a wire name twice");
            for name in names {
                assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{kind} {name:?}");
            }
        }
        for event in Event::ALL {
            assert_eq!(event.as_str().parse::<Event>(), Ok(*event));
        }
        for reason in ReauthReason::ALL {
            assert_eq!(reason.to_string().parse::<ReauthReason>(), Ok(*reason));
        }
        assert_eq!("fresh".parse::<ReauthReason>(), Err(UnknownName { kind: "reauth reason", name: "fresh".into() }));
    }

    #[test]
    fn end_reasons_pick_their_event() {
        assert_eq!(EndReason::Closed.event(), Event::SessionClose);
        for reason in [EndReason::LeaderGone, EndReason::Admin, EndReason::Idle, EndReason::MaxAge] {
            assert_eq!(reason.event(), Event::SessionEnd);
        }
    }
}
