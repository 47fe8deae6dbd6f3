//! When a session is warned and ended: a pure function of the session's clock and its
//! policy, so that every rule is unit-tested without a terminal or a timer.
//!
//! Times are microseconds since the Unix epoch (tty atimes are wall-clock too).

use std::time::Duration;

use vigil_config::{IdleAction, ResolvedPolicy};

/// Why a session ends (its wire name is the records' `limit=`).
pub use vigil_protocol::events::Limit;

/// What the supervisor should do for a session now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No limit applies (exempt, or every limit is off): no timer at all.
    NoDeadline,
    /// Check again at this time.
    SleepUntil(u64),
    /// Write the warning on the session's terminals; the session ends at `ends_at`.
    Warn { limit: Limit, ends_at: u64 },
    /// End the session (or, with `idle_action = "none"`, only record that it would be).
    /// `deadline` is when it was due, to measure how late the end is.
    End { limit: Limit, action: IdleAction, deadline: u64 },
}

/// The facts about one session that the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct IdleFacts {
    pub now: u64,
    pub started: u64,
    /// Last input (or output, where it counts) seen on any of the session's ttys, or
    /// I/O by its processes for a session without a tty.
    pub last_activity: u64,
    /// The last warning written: for which limit, and when.
    pub warned: Option<(Limit, u64)>,
    /// The session has a terminal (else the notty timeout applies and no warning can
    /// be shown).
    pub has_tty: bool,
    /// With `idle_action = "none"`, the idle end already recorded for this stretch of
    /// idleness: not recorded again until new activity.
    pub idle_reported: bool,
    /// The user's idle inhibitor holds off the idle end until then (0: none).
    pub inhibited_until: u64,
}

fn usec(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// How often a session without a tty has its processes' I/O sampled: its activity has
/// no event to wake vigild, so it is read at a quarter of the timeout (at least 1 s),
/// which ends an idle session within 1.25 × its timeout.
pub fn notty_sample_interval(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_secs(1))
}

fn idle_timeout(policy: &ResolvedPolicy, c: &IdleFacts) -> Option<Duration> {
    if c.has_tty { policy.idle_timeout } else { policy.notty_idle_timeout }
}

/// The next limit the session runs into, and when, if no activity comes first.
pub fn next_end(policy: &ResolvedPolicy, c: &IdleFacts) -> Option<(Limit, u64)> {
    if policy.exempt {
        return None;
    }
    let idle_end =
        idle_timeout(policy, c).filter(|_| !c.idle_reported).map(|t| c.last_activity.saturating_add(usec(t)).max(c.inhibited_until));
    let age_end = policy.max_session_age.map(|a| c.started.saturating_add(usec(a)));
    match (idle_end, age_end) {
        (None, None) => None,
        (Some(i), Some(a)) if a <= i => Some((Limit::MaxAge, a)),
        (Some(i), _) => Some((Limit::Idle, i)),
        (None, Some(a)) => Some((Limit::MaxAge, a)),
    }
}

/// When the session ends if no activity comes first, by what is known of it now (what
/// `vigilctl list` shows): the next limit's end, or the end a warning already written
/// announced for it, whichever is later. 0 when no limit applies.
pub fn deadline(policy: &ResolvedPolicy, c: &IdleFacts) -> u64 {
    let Some((limit, end)) = next_end(policy, c) else { return 0 };
    let warning =
        if c.has_tty && (limit == Limit::MaxAge || policy.idle_action != IdleAction::None) { usec(policy.idle_warning) } else { 0 };
    let warned_at = c.warned.filter(|&(l, at)| l == limit && (l == Limit::MaxAge || at >= c.last_activity)).map(|(_, at)| at);
    end.max(warned_at.map_or(0, |w| w + warning))
}

pub fn decide(policy: &ResolvedPolicy, c: IdleFacts) -> Decision {
    let idle_timeout = idle_timeout(policy, &c);
    let Some((limit, end)) = next_end(policy, &c) else {
        // A reported idle stretch waits for activity; a notty session must still be
        // sampled to notice it.
        return match (policy.exempt, c.idle_reported, idle_timeout, c.has_tty) {
            (false, true, Some(t), false) => Decision::SleepUntil(c.now + usec(notty_sample_interval(t))),
            _ => Decision::NoDeadline,
        };
    };
    // `idle_action = "none"` is a dry run of the idle limit: no warning (and so no proof
    // revoked by one), no end, a record of what would have happened. The age limit ends
    // a session whatever idle_action says: "idle or not".
    let action = if limit == Limit::MaxAge { IdleAction::Terminate } else { policy.idle_action };
    let dry_run = action == IdleAction::None;
    // Without a terminal there is nowhere to show a warning.
    let warning = if c.has_tty && !dry_run { usec(policy.idle_warning) } else { 0 };
    let warn_at = end.saturating_sub(warning);
    // A warning counts for the limit it announced; an idle warning is void once the
    // user came back.
    let warned_at = c.warned.filter(|&(l, at)| l == limit && (l == Limit::MaxAge || at >= c.last_activity)).map(|(_, at)| at);
    let warned = warned_at.is_some();

    if c.now >= warn_at && !warned && warning > 0 {
        // A late check (vigild was busy or restarted) still gives the full warning.
        return Decision::Warn { limit, ends_at: end.max(c.now + warning) };
    }
    let warned_long_enough = warning == 0 || warned_at.is_some_and(|w| c.now >= w + warning);
    if c.now >= end && warned_long_enough {
        // The deadline the session really had: a warning given late (an inhibitor that
        // expired, a check after a restart) moved it to the warning's end.
        let deadline = end.max(warned_at.map_or(0, |w| w + warning));
        return Decision::End { limit, action, deadline };
    }
    let mut wake = if c.now < warn_at { warn_at } else { end.max(warned_at.map_or(0, |w| w + warning)) };
    if !c.has_tty
        && let Some(t) = idle_timeout
    {
        wake = wake.min(c.now + usec(notty_sample_interval(t)));
    }
    Decision::SleepUntil(wake)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn policy() -> ResolvedPolicy {
        let mut p = crate::sessions::manager::policy_for_tests();
        p.idle_timeout = Some(Duration::from_secs(60));
        p.idle_warning = Duration::from_secs(10);
        p.max_session_age = None;
        p.notty_idle_timeout = Some(Duration::from_secs(40));
        p.idle_action = IdleAction::Terminate;
        p.exempt = false;
        p
    }

    fn clock(now: u64) -> IdleFacts {
        IdleFacts { now: now * S, started: 0, last_activity: 0, warned: None, has_tty: true, idle_reported: false, inhibited_until: 0 }
    }

    #[test]
    fn sleeps_until_the_warning_then_warns_then_ends() {
        let p = policy();
        assert_eq!(decide(&p, clock(5)), Decision::SleepUntil(50 * S));
        assert_eq!(decide(&p, clock(50)), Decision::Warn { limit: Limit::Idle, ends_at: 60 * S });
        let warned = IdleFacts { warned: Some((Limit::Idle, 50 * S)), ..clock(55) };
        assert_eq!(decide(&p, warned), Decision::SleepUntil(60 * S));
        let at_end = IdleFacts { warned: Some((Limit::Idle, 50 * S)), ..clock(60) };
        assert_eq!(decide(&p, at_end), Decision::End { limit: Limit::Idle, action: IdleAction::Terminate, deadline: 60 * S });
    }

    #[test]
    fn the_listed_deadline_follows_activity_and_a_late_warning() {
        let p = policy();
        assert_eq!(deadline(&p, &clock(5)), 60 * S);
        assert_eq!(deadline(&p, &IdleFacts { last_activity: 30 * S, ..clock(31) }), 90 * S);
        // Warned late (at 90 s): the end the warning announced.
        assert_eq!(deadline(&p, &IdleFacts { warned: Some((Limit::Idle, 90 * S)), ..clock(95) }), 100 * S);
        // A warning before the latest activity no longer counts.
        assert_eq!(deadline(&p, &IdleFacts { warned: Some((Limit::Idle, 90 * S)), last_activity: 92 * S, ..clock(95) }), 152 * S);
        let exempt = ResolvedPolicy { exempt: true, ..policy() };
        assert_eq!(deadline(&exempt, &clock(5)), 0);
    }

    #[test]
    fn activity_after_the_warning_starts_over() {
        let p = policy();
        let c = IdleFacts { warned: Some((Limit::Idle, 50 * S)), last_activity: 55 * S, ..clock(60) };
        assert_eq!(decide(&p, c), Decision::SleepUntil(105 * S));
    }

    #[test]
    fn a_late_check_still_gives_the_whole_warning() {
        let p = policy();
        assert_eq!(decide(&p, clock(90)), Decision::Warn { limit: Limit::Idle, ends_at: 100 * S });
        let c = IdleFacts { warned: Some((Limit::Idle, 90 * S)), ..clock(95) };
        assert_eq!(decide(&p, c), Decision::SleepUntil(100 * S));
    }

    #[test]
    fn exempt_and_disabled_sessions_have_no_deadline() {
        let mut p = policy();
        p.exempt = true;
        assert_eq!(decide(&p, clock(1000)), Decision::NoDeadline);
        let mut p = policy();
        p.idle_timeout = None;
        assert_eq!(decide(&p, clock(1000)), Decision::NoDeadline);
    }

    #[test]
    fn max_age_ends_an_active_session() {
        let mut p = policy();
        p.max_session_age = Some(Duration::from_secs(30));
        let active = IdleFacts { last_activity: 25 * S, ..clock(25) };
        assert_eq!(decide(&p, active), Decision::Warn { limit: Limit::MaxAge, ends_at: 35 * S });
        let c = IdleFacts { last_activity: 34 * S, warned: Some((Limit::MaxAge, 25 * S)), ..clock(35) };
        assert_eq!(decide(&p, c), Decision::End { limit: Limit::MaxAge, action: IdleAction::Terminate, deadline: 35 * S });
        let on_time = IdleFacts { last_activity: 34 * S, warned: Some((Limit::MaxAge, 20 * S)), ..clock(31) };
        assert_eq!(decide(&p, on_time), Decision::End { limit: Limit::MaxAge, action: IdleAction::Terminate, deadline: 30 * S });
    }

    #[test]
    fn an_end_after_a_late_warning_is_late_from_the_warnings_end() {
        let p = policy();
        // Warned only at 90 (a check after a restart, an inhibitor that expired): the
        // session had until 100, not until 60.
        let c = IdleFacts { warned: Some((Limit::Idle, 90 * S)), ..clock(100) };
        assert_eq!(decide(&p, c), Decision::End { limit: Limit::Idle, action: IdleAction::Terminate, deadline: 100 * S });
    }

    #[test]
    fn idle_action_none_is_a_dry_run_of_the_idle_limit_and_max_age_still_ends() {
        let mut p = policy();
        p.idle_action = IdleAction::None;
        assert_eq!(decide(&p, clock(55)), Decision::SleepUntil(60 * S), "no warning before the idle end");
        assert_eq!(decide(&p, clock(60)), Decision::End { limit: Limit::Idle, action: IdleAction::None, deadline: 60 * S });
        p.max_session_age = Some(Duration::from_secs(30));
        let active = IdleFacts { last_activity: 25 * S, ..clock(25) };
        assert_eq!(decide(&p, active), Decision::Warn { limit: Limit::MaxAge, ends_at: 35 * S }, "max age warns");
        let c = IdleFacts { last_activity: 34 * S, warned: Some((Limit::MaxAge, 20 * S)), ..clock(31) };
        assert_eq!(decide(&p, c), Decision::End { limit: Limit::MaxAge, action: IdleAction::Terminate, deadline: 30 * S });
    }

    #[test]
    fn notty_sessions_use_their_timeout_without_warning_and_are_sampled() {
        let p = policy();
        let c = IdleFacts { has_tty: false, ..clock(0) };
        assert_eq!(decide(&p, c), Decision::SleepUntil(10 * S));
        let c = IdleFacts { has_tty: false, ..clock(40) };
        assert_eq!(decide(&p, c), Decision::End { limit: Limit::Idle, action: IdleAction::Terminate, deadline: 40 * S });
    }

    #[test]
    fn an_inhibitor_holds_off_the_idle_end_not_the_max_age() {
        let mut p = policy();
        let c = IdleFacts { inhibited_until: 200 * S, ..clock(50) };
        // Warned a warning's length before the inhibitor expires, ended at its expiry.
        assert_eq!(decide(&p, c), Decision::SleepUntil(190 * S));
        assert_eq!(decide(&p, IdleFacts { now: 190 * S, ..c }), Decision::Warn { limit: Limit::Idle, ends_at: 200 * S });
        let warned = IdleFacts { now: 200 * S, warned: Some((Limit::Idle, 190 * S)), ..c };
        assert_eq!(decide(&p, warned), Decision::End { limit: Limit::Idle, action: IdleAction::Terminate, deadline: 200 * S });
        // Input after the expiry counts as ever.
        assert_eq!(decide(&p, IdleFacts { now: 210 * S, last_activity: 205 * S, ..c }), Decision::SleepUntil(255 * S));
        p.max_session_age = Some(Duration::from_secs(100));
        assert_eq!(decide(&p, IdleFacts { now: 90 * S, ..c }), Decision::Warn { limit: Limit::MaxAge, ends_at: 100 * S });
    }

    #[test]
    fn audit_only_reports_once_per_idle_stretch() {
        let mut p = policy();
        p.idle_action = IdleAction::None;
        let c = clock(60);
        assert_eq!(decide(&p, c), Decision::End { limit: Limit::Idle, action: IdleAction::None, deadline: 60 * S });
        let reported = IdleFacts { idle_reported: true, ..c };
        assert_eq!(decide(&p, reported), Decision::NoDeadline);
    }
}
