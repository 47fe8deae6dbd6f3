//! The policy one session gets: built-in defaults, overridden by `[defaults]`,
//! overridden by the first matching `[[policy]]` block.

use std::time::Duration;

use crate::schema::Layer;
use crate::values::{Dur, IdleAction, OnReauthFailures};

/// The settings that apply to one session. Durations that can be switched off are
/// `Option`s: `None` means disabled (the file says `"0"`).
/// `Hash`: vigild shares one copy of each distinct policy among its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedPolicy {
    /// Name of the `[[policy]]` block that matched, or `"defaults"` when none did.
    pub policy_name: String,
    /// Idle time after which the session ends (for sessions with a tty); `None` = never.
    pub idle_timeout: Option<Duration>,
    /// How long before the end the warning is written to the tty.
    pub idle_warning: Duration,
    pub idle_action: IdleAction,
    /// Whether output to the tty counts as activity (input always does).
    pub output_is_activity: bool,
    /// Absolute limit on a session's age, idle or not; `None` = no limit.
    pub max_session_age: Option<Duration>,
    /// Idle timeout for sessions without a tty; `None` = never.
    pub notty_idle_timeout: Option<Duration>,
    /// Delay between SIGHUP and SIGKILL when a session is ended.
    pub kill_grace: Duration,
    /// How long a password proves identity for re-auth; `None` = always ask.
    pub reauth_window: Option<Duration>,
    /// Idleness that voids a proof of identity even within the window; `None` = idleness
    /// does not void it.
    pub reauth_after_idle: Option<Duration>,
    /// PAM services (names or globs) whose `pam_vigil.so reauth` vigild answers; for
    /// any other service the module lets the password be asked.
    pub sensitive_services: Vec<String>,
    /// Exempt sessions are never ended by vigil (they are still audited).
    pub exempt: bool,
    /// Longest idle inhibitor a user may take on a session (`vigilctl inhibit --for`);
    /// `None` = inhibitors are forbidden (the file says `"0"`).
    pub max_inhibit: Option<Duration>,
    /// Most inhibited time a session may have between two moments of activity: a user
    /// who is present needs no inhibitor, so activity renews it. `None` = no bound
    /// beyond `max_inhibit` per request (the file says `"0"`).
    pub max_inhibit_total: Option<Duration>,
    /// What a burst of failed re-authentications in a session does besides its `alert`
    /// record (vigild's threshold: 3 within 10 minutes).
    pub on_reauth_failures: OnReauthFailures,
}

/// The name a session's policy carries when no `[[policy]]` block matched.
pub(crate) const DEFAULTS_NAME: &str = "defaults";

impl ResolvedPolicy {
    /// The built-in values, used for every key the file does not set.
    pub(crate) fn builtin() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            policy_name: DEFAULTS_NAME.to_owned(),
            idle_timeout: Some(minutes(15)),
            idle_warning: minutes(1),
            idle_action: IdleAction::Terminate,
            output_is_activity: false,
            max_session_age: None,
            notty_idle_timeout: None,
            kill_grace: Duration::from_secs(5),
            reauth_window: Some(minutes(5)),
            reauth_after_idle: Some(minutes(2)),
            // The PAM service names: `sudo -i` is sudo-i, `su -` is su-l, pkexec is polkit-1.
            sensitive_services: ["sudo", "sudo-i", "su", "su-l", "polkit-1"].map(String::from).to_vec(),
            exempt: false,
            max_inhibit: Some(minutes(240)),
            max_inhibit_total: Some(minutes(480)),
            on_reauth_failures: OnReauthFailures::Off,
        }
    }

    /// This policy with the settings `layer` sets replacing the current ones.
    pub(crate) fn overridden_by(mut self, layer: &Layer) -> Self {
        // Destructured so that a new setting that is not applied here fails to compile.
        let Layer {
            idle_timeout,
            idle_warning,
            idle_action,
            output_is_activity,
            max_session_age,
            notty_idle_timeout,
            kill_grace,
            reauth_window,
            reauth_after_idle,
            sensitive_services,
            exempt,
            max_inhibit,
            max_inhibit_total,
            on_reauth_failures,
        } = layer;
        let set = |target: &mut Option<Duration>, value: &Option<Dur>| {
            if let Some(Dur(d)) = value {
                *target = Some(*d).filter(|d| !d.is_zero());
            }
        };
        set(&mut self.idle_timeout, idle_timeout);
        set(&mut self.max_session_age, max_session_age);
        set(&mut self.notty_idle_timeout, notty_idle_timeout);
        set(&mut self.reauth_window, reauth_window);
        set(&mut self.reauth_after_idle, reauth_after_idle);
        set(&mut self.max_inhibit, max_inhibit);
        set(&mut self.max_inhibit_total, max_inhibit_total);
        if let Some(Dur(d)) = idle_warning {
            self.idle_warning = *d;
        }
        if let Some(Dur(d)) = kill_grace {
            self.kill_grace = *d;
        }
        if let Some(action) = idle_action {
            self.idle_action = *action;
        }
        if let Some(flag) = output_is_activity {
            self.output_is_activity = *flag;
        }
        if let Some(action) = on_reauth_failures {
            self.on_reauth_failures = *action;
        }
        if let Some(flag) = exempt {
            self.exempt = *flag;
        }
        if let Some(services) = sensitive_services {
            self.sensitive_services = services.clone();
        }
        self
    }

    /// Whether vigil decides re-authentication for `service`.
    pub fn is_sensitive(&self, service: &str) -> bool {
        self.sensitive_services.iter().any(|pattern| wildmatch::WildMatch::new(pattern).matches(service))
    }
}
