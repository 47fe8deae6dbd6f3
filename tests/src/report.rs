//! The JSON report of `pam_host --json`, one definition for the program that writes it
//! and the tests that read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many cycles keep their individual return codes and session ids.
pub const FIRST_N: usize = 10;

/// `pam_host --json` prints exactly one of these, on one line, as its last line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PamHostReport {
    pub pid: u32,
    pub service: String,
    pub user: String,
    /// pam_start's return; nothing else ran when it is not 0.
    pub start_rc: i32,
    /// Present with `--auth`.
    pub auth: Option<AuthReport>,
    /// Cycles requested.
    pub cycles: u32,
    pub open_rc: RcSummary,
    /// close_session runs only after a successful open_session, as in sshd and login.
    pub close_rc: RcSummary,
    /// `VIGIL_SESSION_ID` from the PAM environment after each of the first 10 opens.
    pub session_ids: Vec<Option<String>>,
    /// pam_end's return (`None` when pam_start failed).
    pub end_rc: Option<i32>,
    /// Threads of the process before pam_start and after pam_end.
    pub threads_before: u32,
    pub threads_after: u32,
    /// Names of threads present after pam_end that were not there before.
    pub new_threads: Vec<String>,
    /// Open descriptors before pam_start and after pam_end.
    pub fds_before: u32,
    pub fds_after: u32,
    /// `fd -> target` for descriptors open after pam_end that were not before.
    pub new_fds: Vec<String>,
    /// Per cycle: open_session alone, close_session alone, and both (µs, waiting on
    /// stdin excluded).
    pub open_us: Stats,
    pub close_us: Stats,
    pub cycle_us: Stats,
    /// With `--account`: each cycle's pam_acct_mgmt return and time (µs); the session
    /// fields stay empty.
    #[serde(default)]
    pub acct_rc: RcSummary,
    #[serde(default)]
    pub acct_us: Stats,
    /// Wall time from pam_start to pam_end (ms).
    pub total_ms: f64,
    /// pam_strerror of every return code seen.
    pub rc_text: BTreeMap<String, String>,
    /// Conversation messages (style and text), the first 20.
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthReport {
    pub authenticate_rc: i32,
    /// pam_acct_mgmt's return; it runs only when pam_authenticate succeeded.
    pub acct_mgmt_rc: Option<i32>,
    /// Prompts the stack asked through the conversation.
    pub prompts: Vec<String>,
}

/// Return codes of many calls: the first 10 in order, and how often each occurred.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcSummary {
    pub first: Vec<i32>,
    /// rc (as a string: JSON object keys are strings) → count.
    pub counts: BTreeMap<String, u32>,
}

impl RcSummary {
    pub fn record(&mut self, rc: i32) {
        if self.first.len() < FIRST_N {
            self.first.push(rc);
        }
        *self.counts.entry(rc.to_string()).or_insert(0) += 1;
    }

    pub fn total(&self) -> u32 {
        self.counts.values().sum()
    }

    pub fn count(&self, rc: i32) -> u32 {
        self.counts.get(&rc.to_string()).copied().unwrap_or(0)
    }

    /// True when there was at least one call and every call returned `rc`.
    pub fn all(&self, rc: i32) -> bool {
        self.total() > 0 && self.count(rc) == self.total()
    }
}

/// Latency summary in microseconds (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub n: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Stats {
    pub fn from_samples(samples: &[u64]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats { n: sorted.len() as u64, p50: rank(0.50), p99: rank(0.99), max: *sorted.last().unwrap() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(Stats::from_samples(&samples), Stats { n: 100, p50: 50, p99: 99, max: 100 });
        assert_eq!(Stats::from_samples(&[7]), Stats { n: 1, p50: 7, p99: 7, max: 7 });
        assert_eq!(Stats::from_samples(&[]), Stats::default());
    }

    #[test]
    fn rc_summary_counts() {
        let mut s = RcSummary::default();
        for i in 0..15 {
            s.record(if i == 3 { 14 } else { 0 });
        }
        assert_eq!(s.first.len(), FIRST_N);
        assert_eq!(s.count(0), 14);
        assert_eq!(s.count(14), 1);
        assert!(!s.all(0));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""counts":{"0":14,"14":1}"#), "{json}");
    }
}
