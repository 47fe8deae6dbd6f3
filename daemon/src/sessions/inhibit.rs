//! Idle inhibitors: a user declares a long job (`vigilctl inhibit --for 2h --why
//! "db migration"`) and the session is neither warned nor ended for idleness until the
//! inhibitor expires. Bounded by the policy's `max_inhibit` (`"0"` forbids them) per
//! request, and by `max_inhibit_total` in all between two moments of activity, so
//! that a loop taking one inhibitor after another cannot keep a session that nobody
//! uses; `max_session_age` still applies. The inhibitor is part of the session (saved with it,
//! so it survives a restart of vigild) and its end is one more deadline of the idle
//! supervisor: nothing runs between deadlines.
//!
//! The rules, as pure functions; the calls that take, cancel and expire inhibitors are
//! `inhibit_calls.rs`. Records: `inhibit_start` (`why`, `until`, `duration_s`), `inhibit_end`
//! (`reason=expired|cancelled|session_end`). `why` is the user's text: bounded here and
//! escaped by the record encoding like every value.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_config::ResolvedPolicy;
use vigil_protocol::MAX_INHIBIT_WHY_BYTES;
use vigil_protocol::time::human;

use crate::supervise::idle::Decision;

/// A session's idle inhibitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inhibitor {
    pub since_usec: u64,
    pub until_usec: u64,
    pub why: String,
}

/// The inhibited time a session has had since its last activity. Inhibitors taken one
/// after another add up; one that ends early (replaced, cancelled) counts for the time
/// it ran. Activity starts a new count: someone at the keyboard needs no inhibitor.
/// Saved with the session, so a restart of vigild does not renew it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InhibitBudget {
    /// The activity the count starts from (µs since the epoch).
    pub since_usec: u64,
    /// Inhibited time granted since then (µs), less what ended early left unused.
    pub spent_usec: u64,
}

impl InhibitBudget {
    /// Activity at `at` starts a new count, holding what the running inhibitor still
    /// covers after it.
    pub fn renew(&mut self, at: u64, running: Option<&Inhibitor>) {
        if at <= self.since_usec {
            return;
        }
        self.since_usec = at;
        self.spent_usec = running.map_or(0, |i| i.until_usec.saturating_sub(at.max(i.since_usec)));
    }

    /// An inhibitor ended at `now`: what it would still have covered is given back.
    pub fn give_back(&mut self, ended: &Inhibitor, now: u64) {
        let unused = ended.until_usec.saturating_sub(now.max(ended.since_usec));
        self.spent_usec = self.spent_usec.saturating_sub(unused);
    }

    /// Whether `policy` leaves room for `duration` more.
    pub fn check(&self, policy: &ResolvedPolicy, duration: Duration) -> Result<(), Refusal> {
        let Some(total) = policy.max_inhibit_total else { return Ok(()) };
        let spent = Duration::from_micros(self.spent_usec);
        if spent.saturating_add(duration) <= total {
            return Ok(());
        }
        let left = total.saturating_sub(spent);
        let (max, spent, policy) = (human(total), human(whole_seconds(spent)), policy.policy_name.clone());
        if left < Duration::from_secs(1) {
            return Err(Refusal::BudgetSpent { spent, max, policy });
        }
        Err(Refusal::OverBudget { asked: human(duration), spent, left: human(whole_seconds(left)), max, policy })
    }

    /// Moves the start of the count by a step of the wall clock.
    pub fn shift_clock(&mut self, delta: i64) {
        self.since_usec = crate::sys::clock::shift(self.since_usec, delta);
    }
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// Why a request for an inhibitor is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("idle inhibitors are forbidden for this session (policy {policy:?} sets max_inhibit = \"0\")")]
    Forbidden { policy: String },
    #[error("{asked} is longer than max_inhibit ({max}, policy {policy:?}); ask for {max} or less")]
    TooLong { asked: String, max: String, policy: String },
    #[error(
        "this session has been inhibited for {spent} since its last activity, the most max_inhibit_total allows ({max}, \
         policy {policy:?}); no more until the session sees input again"
    )]
    BudgetSpent { spent: String, max: String, policy: String },
    #[error(
        "this session has been inhibited for {spent} since its last activity; {asked} more would pass max_inhibit_total \
         ({max}, policy {policy:?}); ask for {left} or less (input on the session starts a new count)"
    )]
    OverBudget { asked: String, spent: String, left: String, max: String, policy: String },
    #[error("the duration is 0; expected a duration like \"30m\" or \"2h\"")]
    Zero,
    #[error("the reason is empty; say what the session waits for (e.g. --why \"db migration\")")]
    NoWhy,
    #[error("the reason is {0} bytes long; expected at most {MAX_INHIBIT_WHY_BYTES} bytes")]
    WhyTooLong(usize),
}

/// Whether `policy` allows an inhibitor of `duration` with this reason.
pub fn check(policy: &ResolvedPolicy, duration: Duration, why: &str) -> Result<(), Refusal> {
    if why.len() > MAX_INHIBIT_WHY_BYTES {
        return Err(Refusal::WhyTooLong(why.len()));
    }
    if why.trim().is_empty() {
        return Err(Refusal::NoWhy);
    }
    let Some(max) = policy.max_inhibit else {
        return Err(Refusal::Forbidden { policy: policy.policy_name.clone() });
    };
    if duration.is_zero() {
        return Err(Refusal::Zero);
    }
    if duration > max {
        return Err(Refusal::TooLong { asked: human(duration), max: human(max), policy: policy.policy_name.clone() });
    }
    Ok(())
}

/// The supervisor's decision, with the inhibitor's expiry as one more deadline: the
/// session is looked at when its inhibitor ends, so that the end is recorded on time
/// even when no idle limit would wake vigild.
pub fn with_expiry(decision: Decision, inhibitor: Option<&Inhibitor>) -> Decision {
    match (decision, inhibitor) {
        (Decision::NoDeadline, Some(i)) => Decision::SleepUntil(i.until_usec),
        (Decision::SleepUntil(when), Some(i)) => Decision::SleepUntil(when.min(i.until_usec)),
        (decision, _) => decision,
    }
}

/// The earlier of `when` and the inhibitor's expiry.
pub fn earliest(when: u64, inhibitor: Option<&Inhibitor>) -> u64 {
    inhibitor.map_or(when, |i| when.min(i.until_usec))
}

/// The line put before an idle warning when the inhibitor ends before the session
/// would: the user took it, the user should know it is running out. The reason is
/// shown with control characters escaped.
pub fn warning_note(inhibitor: Option<&Inhibitor>, now: u64, ends_at: u64) -> Option<String> {
    let i = inhibitor.filter(|i| i.until_usec > now && i.until_usec <= ends_at)?;
    let why: String = i.why.chars().flat_map(char::escape_default).collect();
    let left = Duration::from_secs(i.until_usec.saturating_sub(now).div_ceil(1_000_000));
    Some(format!("\r\n*** vigil: your idle inhibitor (\"{why}\") expires in {}. ***", human(left)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::session::Session;

    const S: u64 = 1_000_000;

    fn policy(max: Option<u64>) -> ResolvedPolicy {
        let mut p = crate::sessions::manager::policy_for_tests();
        p.max_inhibit = max.map(Duration::from_secs);
        p
    }

    #[test]
    fn requests_are_bounded_by_max_inhibit_and_zero_forbids() {
        let p = policy(Some(3600));
        assert_eq!(check(&p, Duration::from_secs(3600), "migration"), Ok(()));
        let refusal = check(&p, Duration::from_secs(3601), "migration").unwrap_err();
        assert_eq!(refusal.to_string(), "1h 1s is longer than max_inhibit (1h, policy \"defaults\"); ask for 1h or less");
        assert_eq!(check(&p, Duration::ZERO, "x"), Err(Refusal::Zero));
        assert!(matches!(check(&policy(None), Duration::from_secs(1), "x"), Err(Refusal::Forbidden { .. })));
        assert!(check(&policy(None), Duration::from_secs(1), "x").unwrap_err().to_string().contains("max_inhibit = \"0\""));
    }

    fn inhibit(budget: &mut InhibitBudget, p: &ResolvedPolicy, running: &mut Option<Inhibitor>, now: u64, secs: u64) -> bool {
        if let Some(old) = running.as_ref() {
            let mut tried = *budget;
            tried.give_back(old, now);
            if tried.check(p, Duration::from_secs(secs)).is_err() {
                return false;
            }
            *budget = tried;
        } else if budget.check(p, Duration::from_secs(secs)).is_err() {
            return false;
        }
        budget.spent_usec += secs * S;
        *running = Some(Inhibitor { since_usec: now, until_usec: now + secs * S, why: "x".into() });
        true
    }

    #[test]
    fn back_to_back_inhibitors_add_up_to_max_inhibit_total() {
        // `while sleep 540; do vigilctl inhibit --for 10m; done`, max_inhibit_total = 1h.
        let mut p = policy(Some(600));
        p.max_inhibit_total = Some(Duration::from_secs(3600));
        let (mut budget, mut running) = (InhibitBudget::default(), None);
        budget.renew(1000 * S, None);
        let mut granted = 0;
        let mut now = 1000 * S;
        for _ in 0..100 {
            if !inhibit(&mut budget, &p, &mut running, now, 600) {
                break;
            }
            granted += 1;
            now += 540 * S;
        }
        // 9 minutes used of each replaced one: 5 × 9m + 10m = 55m, a sixth would be 64m.
        assert_eq!(granted, 6, "{budget:?}");
        assert_eq!(budget.spent_usec, (5 * 540 + 600) * S);
        let refusal = budget.check(&p, Duration::from_secs(600)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "this session has been inhibited for 55m since its last activity; 10m more would pass max_inhibit_total (1h, \
             policy \"defaults\"); ask for 5m or less (input on the session starts a new count)"
        );
        // Activity renews it, holding what the running one still covers after it.
        let mut renewed = budget;
        renewed.renew(now, running.as_ref());
        assert_eq!(renewed.spent_usec, 60 * S, "the running one ends a minute after the input");
        assert!(renewed.check(&p, Duration::from_secs(600)).is_ok());
        // An older time is no renewal.
        let mut same = budget;
        same.renew(900 * S, running.as_ref());
        assert_eq!(same, budget);
    }

    #[test]
    fn a_spent_budget_says_so_and_zero_is_no_bound() {
        let mut p = policy(Some(600));
        p.max_inhibit_total = Some(Duration::from_secs(600));
        let budget = InhibitBudget { since_usec: 1, spent_usec: 600 * S };
        let refusal = budget.check(&p, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(refusal, Refusal::BudgetSpent { .. }), "{refusal}");
        assert!(refusal.to_string().contains("no more until the session sees input again"), "{refusal}");
        p.max_inhibit_total = None;
        assert_eq!(budget.check(&p, Duration::from_secs(600)), Ok(()));
    }

    #[test]
    fn what_a_cancelled_or_replaced_inhibitor_did_not_use_is_given_back() {
        let i = Inhibitor { since_usec: 100 * S, until_usec: 700 * S, why: "x".into() };
        let mut budget = InhibitBudget { since_usec: 50 * S, spent_usec: 600 * S };
        budget.give_back(&i, 400 * S);
        assert_eq!(budget.spent_usec, 300 * S);
        budget.give_back(&i, 900 * S);
        assert_eq!(budget.spent_usec, 300 * S, "an expired one gives nothing back");
        let mut renewed = InhibitBudget { since_usec: 50 * S, spent_usec: 600 * S };
        renewed.renew(200 * S, Some(&i));
        renewed.give_back(&i, 300 * S);
        assert_eq!(renewed.spent_usec, 100 * S, "only what it ran after the activity stays counted");
    }

    #[test]
    fn the_reason_is_required_and_bounded() {
        let p = policy(Some(3600));
        assert_eq!(check(&p, Duration::from_secs(60), " "), Err(Refusal::NoWhy));
        let long = "x".repeat(MAX_INHIBIT_WHY_BYTES + 1);
        assert_eq!(check(&p, Duration::from_secs(60), &long), Err(Refusal::WhyTooLong(MAX_INHIBIT_WHY_BYTES + 1)));
        assert_eq!(check(&p, Duration::from_secs(60), &long[1..]), Ok(()));
    }

    #[test]
    fn the_expiry_is_a_deadline() {
        let i = Inhibitor { since_usec: 0, until_usec: 100 * S, why: "job".into() };
        assert_eq!(with_expiry(Decision::NoDeadline, Some(&i)), Decision::SleepUntil(100 * S));
        assert_eq!(with_expiry(Decision::SleepUntil(300 * S), Some(&i)), Decision::SleepUntil(100 * S));
        assert_eq!(with_expiry(Decision::SleepUntil(30 * S), Some(&i)), Decision::SleepUntil(30 * S));
        assert_eq!(with_expiry(Decision::NoDeadline, None), Decision::NoDeadline);
        assert_eq!(earliest(300 * S, Some(&i)), 100 * S);
    }

    #[test]
    fn the_warning_mentions_an_inhibitor_that_runs_out() {
        let i = Inhibitor { since_usec: 0, until_usec: 100 * S, why: "db\u{7}migration".into() };
        let note = warning_note(Some(&i), 40 * S, 100 * S).unwrap();
        assert!(note.contains("(\"db\\u{7}migration\") expires in 1m"), "{note}");
        assert_eq!(warning_note(Some(&i), 40 * S, 90 * S), None, "ends before the inhibitor: no note");
        assert_eq!(warning_note(Some(&i), 120 * S, 200 * S), None, "already over");
    }

    #[test]
    fn an_inhibitor_and_its_budget_survive_a_restart() {
        let mut session = Session::new(5, crate::sessions::registry::tests::identity(10, 4), std::sync::Arc::new(policy(Some(60))), 1);
        session.inhibitor = Some(Inhibitor { since_usec: 1, until_usec: 2, why: "w".into() });
        session.inhibit_budget = InhibitBudget { since_usec: 1, spent_usec: 7 };
        let text = serde_json::to_string(&session.saved()).unwrap();
        let restored = Session::from_saved(serde_json::from_str(&text).unwrap(), &vigil_config::Config::builtin());
        assert_eq!(restored.inhibitor, session.inhibitor);
        assert_eq!(restored.inhibit_budget, session.inhibit_budget, "a restart does not renew the budget");
    }
}
