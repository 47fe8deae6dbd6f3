//! Whether a session's last proof of identity still stands: a pure function, unit-tested.
//!
//! A proof is recorded after a real password typed for a sensitive service, bound to the
//! session, the terminal it was typed on and the user. It is fresh while it is younger
//! than `reauth_window` and the session has not sat idle longer than
//! `reauth_after_idle` since it was recorded. An idle warning, the user's own
//! `vigilctl reauth --revoke` and the end of the session void it.

use std::time::Duration;

use vigil_config::ResolvedPolicy;
use vigil_protocol::events::ReauthReason;

/// A recorded proof of identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// When the password was accepted (µs since the epoch).
    pub at: u64,
    /// The longest stretch without activity seen since then (µs).
    pub longest_idle: u64,
}

impl Proof {
    pub fn new(at: u64) -> Self {
        Self { at, longest_idle: 0 }
    }

    /// Activity at `now` after `idle` µs without any.
    pub fn note_gap(&mut self, idle: u64) {
        self.longest_idle = self.longest_idle.max(idle);
    }
}

/// Why the password must be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    /// No proof for this session and terminal.
    NoProof,
    /// Older than reauth_window.
    Expired,
    /// The session sat idle longer than reauth_after_idle since the proof.
    Idle,
    /// Revoked (idle warning, the user, an admin).
    Revoked,
    /// reauth_window = 0: always ask.
    Always,
}

impl Required {
    /// The reason records and answers carry.
    pub fn reason(self) -> ReauthReason {
        match self {
            Required::NoProof => ReauthReason::NoProof,
            Required::Expired => ReauthReason::Expired,
            Required::Idle => ReauthReason::Idle,
            Required::Revoked => ReauthReason::Revoked,
            Required::Always => ReauthReason::Always,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Fresh { age: u64 },
    Required(Required),
}

/// A proof up to this far "ahead" of now is clock grain, not a step of the clock.
const FUTURE_SLACK_USEC: u64 = 1_000_000;

fn usec(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// `last_activity`: the session's last activity; the idle stretch still running counts
/// too. `revoked`: the proofs were dropped and none was recorded since.
pub fn judge(policy: &ResolvedPolicy, proof: Option<Proof>, last_activity: u64, revoked: bool, now: u64) -> Judgement {
    let Some(window) = policy.reauth_window else {
        return Judgement::Required(Required::Always);
    };
    let Some(proof) = proof else {
        return Judgement::Required(if revoked { Required::Revoked } else { Required::NoProof });
    };
    let age = now.saturating_sub(proof.at);
    // A proof from the future: the clock was set back and vigild has not followed yet
    // (`sys/clock.rs`). Its age is unknown: ask.
    if age > usec(window) || proof.at > now.saturating_add(FUTURE_SLACK_USEC) {
        return Judgement::Required(Required::Expired);
    }
    if let Some(limit) = policy.reauth_after_idle {
        let idle_now = if last_activity >= proof.at { now.saturating_sub(last_activity) } else { age };
        if proof.longest_idle.max(idle_now) > usec(limit) {
            return Judgement::Required(Required::Idle);
        }
    }
    Judgement::Fresh { age }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn policy() -> ResolvedPolicy {
        let mut p = crate::sessions::manager::policy_for_tests();
        p.reauth_window = Some(Duration::from_secs(60));
        p.reauth_after_idle = Some(Duration::from_secs(20));
        p
    }

    #[test]
    fn fresh_within_the_window_while_active() {
        let proof = Proof::new(100 * S);
        assert_eq!(judge(&policy(), Some(proof), 150 * S, false, 155 * S), Judgement::Fresh { age: 55 * S });
    }

    #[test]
    fn a_proof_from_the_future_is_no_proof() {
        // The clock was set back 10 minutes and the step not followed yet: ask.
        let proof = Proof::new(700 * S);
        assert_eq!(judge(&policy(), Some(proof), 100 * S, false, 101 * S), Judgement::Required(Required::Expired));
        // Within the clock's grain: a proof taken just now.
        assert_eq!(judge(&policy(), Some(Proof::new(101 * S + S / 2)), 101 * S, false, 101 * S), Judgement::Fresh { age: 0 });
    }

    #[test]
    fn expired_after_the_window() {
        let proof = Proof::new(100 * S);
        assert_eq!(judge(&policy(), Some(proof), 160 * S, false, 161 * S), Judgement::Required(Required::Expired));
    }

    #[test]
    fn idle_stretch_voids_it_even_inside_the_window() {
        // Idle right now for 25 s.
        assert_eq!(judge(&policy(), Some(Proof::new(100 * S)), 105 * S, false, 130 * S), Judgement::Required(Required::Idle));
        // Idle for 25 s earlier, active again now.
        let mut proof = Proof::new(100 * S);
        proof.note_gap(25 * S);
        assert_eq!(judge(&policy(), Some(proof), 139 * S, false, 140 * S), Judgement::Required(Required::Idle));
        // No activity at all since the proof counts as idle since the proof.
        assert_eq!(judge(&policy(), Some(Proof::new(100 * S)), 90 * S, false, 125 * S), Judgement::Required(Required::Idle));
    }

    #[test]
    fn no_proof_revoked_and_always() {
        assert_eq!(judge(&policy(), None, 0, false, S), Judgement::Required(Required::NoProof));
        assert_eq!(judge(&policy(), None, 0, true, S), Judgement::Required(Required::Revoked));
        let mut p = policy();
        p.reauth_window = None;
        assert_eq!(judge(&p, Some(Proof::new(S)), S, false, S), Judgement::Required(Required::Always));
    }

    #[test]
    fn idle_limit_off_means_only_the_window_counts() {
        let mut p = policy();
        p.reauth_after_idle = None;
        assert_eq!(judge(&p, Some(Proof::new(100 * S)), 100 * S, false, 150 * S), Judgement::Fresh { age: 50 * S });
    }
}
