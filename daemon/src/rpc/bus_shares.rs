//! Fair shares of vigild's one bus connection: what any one user's calls may hold of it.
//!
//! Every caller on the bus reaches vigild through one socket each way, in the bus's
//! order. The way back is the narrow part: the bus daemon reads vigild's replies in turn
//! with every other connection it serves, so when one user pipelines calls, their
//! replies queue up in front of every other reply, root's PAM calls' among them, until
//! the module's opens over the bus miss their deadline (BENCHMARKS.md).
//!
//! So each unprivileged uid may have at most [`CALLS_IN_FLIGHT_PER_UID`] calls read and
//! not yet answered. A call past that is not served at all: it is passed over before
//! zbus dispatches it, and its caller gets no reply. That is the bus's own way of
//! throttling a flood: the bus holds a caller to 128 calls awaiting replies
//! (`max_replies_per_connection`) until its reply timeout, so a user who floods is slowed
//! by the bus, not by vigild. A well-behaved client has one call in flight. Root's calls
//! (the module, admin verbs) are never held back. Passing over calls is recorded at most
//! once per uid a minute (`message_refused reason=bus_share`).
//!
//! A sender's first call is how vigild learns who it is (`caller`), and its next calls
//! may be read before that is known: a sender not known yet may have at most
//! [`CALLS_IN_FLIGHT_UNKNOWN`] calls in flight (the module makes one call per connection),
//! so that a flood's opening burst is held back too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use vigil_protocol::audit::Record;
use vigil_protocol::events::{Event, MessageRefusal};

use crate::rpc::caller::Caller;
use crate::rpc::throttle::{REPORT_PERIOD, ReportThrottle};

/// Calls of one unprivileged uid read from the bus and not yet answered, at most.
pub const CALLS_IN_FLIGHT_PER_UID: usize = 32;
/// Calls in flight of one sender whose caller is not known yet, at most.
pub const CALLS_IN_FLIGHT_UNKNOWN: usize = 4;
/// Senders not known yet with calls in flight, at most (the bus bounds its connections
/// far below this).
const UNKNOWN_SENDERS: usize = 4096;

/// Where a passed-over call is recorded.
pub type Recorder = Box<dyn Fn(Record) + Send + Sync>;

/// Each unprivileged uid's calls in flight on the bus connection.
pub struct BusShares {
    in_flight: Mutex<HashMap<u32, usize>>,
    /// Calls in flight by senders not known when they were read, by unique name.
    unknown: Mutex<HashMap<String, usize>>,
    throttle: Mutex<ReportThrottle<u32>>,
    record: Recorder,
}

impl BusShares {
    pub fn new(record: Recorder) -> Self {
        Self { in_flight: Mutex::default(), unknown: Mutex::default(), throttle: Mutex::new(ReportThrottle::new(REPORT_PERIOD)), record }
    }

    /// A call of `caller` that expects a reply was read: whether to serve it (its slot is
    /// then taken until [`BusShares::answered`]).
    pub fn admit(&self, caller: Caller) -> bool {
        if caller.is_root() {
            return true;
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let count = in_flight.entry(caller.uid).or_insert(0);
        if *count < CALLS_IN_FLIGHT_PER_UID {
            *count += 1;
            return true;
        }
        drop(in_flight);
        let report = self.throttle.lock().unwrap_or_else(|p| p.into_inner()).should_report(caller.uid, Instant::now());
        if let Some(suppressed) = report {
            (self.record)(
                Record::new(Event::MessageRefused)
                    .number("uid", caller.uid)
                    .number("pid", caller.pid)
                    .text("reason", MessageRefusal::BusShare)
                    .number("limit", CALLS_IN_FLIGHT_PER_UID as u64)
                    .number("suppressed", suppressed),
            );
        }
        false
    }

    /// A call that expects a reply was read from `sender`, whose caller is not known
    /// yet: whether to serve it (its slot is then taken until [`BusShares::answered`]).
    pub fn admit_unknown(&self, sender: &str) -> bool {
        let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        if unknown.len() >= UNKNOWN_SENDERS && !unknown.contains_key(sender) {
            return false;
        }
        let count = unknown.entry(sender.to_string()).or_insert(0);
        if *count < CALLS_IN_FLIGHT_UNKNOWN {
            *count += 1;
            return true;
        }
        false
    }

    /// A reply to `destination` was written; `caller` is who that is, when known.
    pub fn answered(&self, destination: &str, caller: Option<Caller>) {
        {
            let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = unknown.get_mut(destination) {
                *count -= 1;
                if *count == 0 {
                    unknown.remove(destination);
                }
                return;
            }
        }
        let Some(caller) = caller else { return };
        if caller.is_root() {
            return;
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = in_flight.get_mut(&caller.uid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&caller.uid);
            }
        }
    }

    #[cfg(test)]
    fn in_flight(&self, uid: u32) -> usize {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).get(&uid).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn shares() -> (BusShares, Arc<Mutex<Vec<String>>>) {
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = records.clone();
        let shares = BusShares::new(Box::new(move |record: Record| sink.lock().unwrap().push(format!("{record:?}"))));
        (shares, records)
    }

    const USER: Caller = Caller::new(1000, 7);
    const OTHER: Caller = Caller::new(1001, 8);
    const ROOT: Caller = Caller::new(0, 1);

    #[test]
    fn a_user_gets_at_most_the_bound_in_flight_and_a_slot_back_per_reply() {
        let (shares, records) = shares();
        for _ in 0..CALLS_IN_FLIGHT_PER_UID {
            assert!(shares.admit(USER));
        }
        assert!(!shares.admit(USER), "one past the bound is passed over");
        assert!(!shares.admit(USER));
        assert_eq!(records.lock().unwrap().len(), 1, "recorded once a minute per uid");
        assert!(shares.admit(OTHER), "another user has a share of their own");
        shares.answered(":1.9", Some(USER));
        assert!(shares.admit(USER), "a reply frees a slot");
        assert_eq!(shares.in_flight(USER.uid), CALLS_IN_FLIGHT_PER_UID);
    }

    #[test]
    fn a_sender_not_known_yet_has_a_few_calls_in_flight_and_its_replies_free_them() {
        let (shares, _) = shares();
        for _ in 0..CALLS_IN_FLIGHT_UNKNOWN {
            assert!(shares.admit_unknown(":1.5"));
        }
        assert!(!shares.admit_unknown(":1.5"), "an unknown sender's burst is held back");
        assert!(shares.admit_unknown(":1.6"), "another sender is not");
        // Known by the time its reply goes out: the slot it took as unknown is freed.
        shares.answered(":1.5", Some(USER));
        assert!(shares.admit_unknown(":1.5"));
        assert_eq!(shares.in_flight(USER.uid), 0, "the uid's share was never taken");
        for _ in 0..CALLS_IN_FLIGHT_UNKNOWN {
            shares.answered(":1.5", Some(USER));
        }
        assert!(shares.unknown.lock().unwrap().get(":1.5").is_none(), "a sender leaves the map with its last call");
    }

    #[test]
    fn root_is_never_held_back_and_counts_for_nothing() {
        let (shares, _) = shares();
        for _ in 0..10 * CALLS_IN_FLIGHT_PER_UID {
            assert!(shares.admit(ROOT));
        }
        assert_eq!(shares.in_flight(0), 0);
    }

    #[test]
    fn replies_to_calls_never_counted_do_not_make_room() {
        let (shares, _) = shares();
        for _ in 0..5 {
            shares.answered(":1.9", Some(USER));
        }
        for _ in 0..CALLS_IN_FLIGHT_PER_UID {
            assert!(shares.admit(USER));
        }
        assert!(!shares.admit(USER));
        assert_eq!(shares.in_flight(USER.uid), CALLS_IN_FLIGHT_PER_UID, "a uid leaves the map with its last call");
    }
}
