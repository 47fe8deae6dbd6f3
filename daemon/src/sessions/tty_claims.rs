//! Which session a tty is counted for. A session claims a tty only once a process it
//! owns has it as its controlling terminal, checked at that moment (`ownership.rs`);
//! it gives it up when that stops being true. Two sessions never claim the same tty: a
//! login that holds a tty another session still claims but no longer holds takes it
//! over, with a `tty_taken_over` record, so that the other session's warning and end
//! never reach it and input on it counts for its holder only.

use vigil_protocol::events::Event;

use crate::audit::records::{policy_changed, session_record};
use crate::sessions::manager::Manager;
use crate::sessions::ownership::{self, SessionScope};
use crate::sessions::session::Session;
use crate::sys::procfs;
use crate::sys::ttys::{self, TtyNr};

/// What a claim on a tty came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The session claimed it already.
    Already,
    Claimed,
    /// Claimed, from the session that claimed it before without holding it.
    TakenOver {
        from: u64,
    },
    /// Not the session's: no process of it has the tty (closed, or another login's), the
    /// tty is the one its leader inherited, the session is nested or gone, or another
    /// session holds it.
    Refused,
}

impl Manager {
    /// Claims `tty` for session `id` when a process of the session has it now. `on_tty`:
    /// the pids a listing of /proc showed on it (each is read again).
    pub fn claim_tty(&self, id: u64, tty: TtyNr, on_tty: &[u32]) -> Claim {
        self.claim(id, tty, on_tty, true)
    }

    /// As `claim_tty`, for a session not announced yet (adoption): its first record
    /// names the policy it has once its ttys are claimed, so no change is recorded.
    pub fn claim_tty_unannounced(&self, id: u64, tty: TtyNr, on_tty: &[u32]) -> Claim {
        self.claim(id, tty, on_tty, false)
    }

    fn claim(&self, id: u64, tty: TtyNr, on_tty: &[u32], announced: bool) -> Claim {
        let (scope, owner) = {
            let registry = self.registry();
            let Some(session) = registry.get(id) else { return Claim::Refused };
            if session.is_nested() || tty == session.who.inherited_tty {
                return Claim::Refused;
            }
            (session.scope(), registry.owner_of_tty(tty))
        };
        if owner == Some(id) {
            return Claim::Already;
        }
        let Some(holder) = ownership::holder(&scope, tty, on_tty) else { return Claim::Refused };
        let from = match owner {
            None => None,
            Some(other) => {
                let Some(other) = self.session(other) else { return Claim::Refused };
                // Every process on the tty, not only the listing given: the claimant may
                // hold it through one of its own the listing did not cover. A listing
                // that failed proves nothing, and the claim stays where it is.
                let Ok(stats) = procfs::all_stats() else { return Claim::Refused };
                if ownership::holds_tty(&other.scope(), tty, &ownership::on_tty(&stats, tty)) {
                    return Claim::Refused;
                }
                Some(other)
            }
        };
        let config = self.config();
        let (claimed, claimed_was, previous) = {
            let mut registry = self.registry();
            // Looked at again under the lock: the claim may have moved meanwhile.
            if registry.owner_of_tty(tty) != from.as_ref().map(|o| o.id) {
                return Claim::Refused;
            }
            let previous = from.as_ref().and_then(|old| {
                registry.release_tty(old.id, tty);
                let old = registry.get_mut(old.id)?;
                let was = old.resolve_policy(&config);
                Some((old.clone(), was))
            });
            if !registry.adopt_tty(id, tty) {
                return Claim::Refused;
            }
            let Some(claimed) = registry.get_mut(id) else { return Claim::Refused };
            let was = claimed.resolve_policy(&config);
            (claimed.clone(), was, previous)
        };
        self.save(Some(claimed.saved()));
        self.note_tty_holder(id, tty, holder);
        if announced && let Some(was) = claimed_was {
            self.audit.write(policy_changed(&claimed, &was, "tty"));
        }
        let Some((previous, previous_was)) = previous else { return Claim::Claimed };
        self.save(Some(previous.saved()));
        if let Some(was) = previous_was {
            self.audit.write(policy_changed(&previous, &was, "tty"));
        }
        self.audit.write(
            session_record(Event::TtyTakenOver, &claimed)
                .text("taken_tty", ttys::short_name(tty))
                .number("from_session", previous.id)
                .text("from_user", &previous.who.user),
        );
        for hooks in self.hooks() {
            hooks.session_changed(previous.id);
        }
        Claim::TakenOver { from: previous.id }
    }

    /// Takes `tty` from session `id`, which no longer holds it. False when it was not
    /// the session's.
    pub fn release_tty(&self, id: u64, tty: TtyNr) -> bool {
        let config = self.config();
        let (saved, changed) = {
            let mut registry = self.registry();
            if !registry.release_tty(id, tty) {
                return false;
            }
            let Some(session) = registry.get_mut(id) else { return true };
            let was = session.resolve_policy(&config);
            (session.saved(), was.map(|was| (session.clone(), was)))
        };
        self.save(Some(saved));
        if let Some((session, was)) = changed {
            self.audit.write(policy_changed(&session, &was, "tty"));
        }
        true
    }

    /// Remembers the POSIX session through which session `id` holds `tty` (its process
    /// `holder`): what is left on the tty is found by it when the leader is gone.
    pub fn note_tty_holder(&self, id: u64, tty: TtyNr, holder: u32) {
        if let Some(posix_session) = ownership::posix_session_of(holder) {
            self.tty_holders.lock().unwrap_or_else(|p| p.into_inner()).insert(tty, (id, posix_session));
        }
    }

    /// The scope an end signals: the session's, with the POSIX sessions that held its
    /// ttys when they were claimed.
    pub fn end_scope(&self, session: &Session) -> SessionScope {
        let mut scope = session.scope();
        let holders = self.tty_holders.lock().unwrap_or_else(|p| p.into_inner());
        scope.posix_sessions =
            scope.ttys.iter().filter_map(|tty| holders.get(tty)).filter(|(id, _)| *id == session.id).map(|&(_, ps)| ps).collect();
        scope
    }

    /// Whether a session claims `tty`.
    pub fn tty_claimed(&self, tty: TtyNr) -> bool {
        self.registry().owner_of_tty(tty).is_some()
    }
}

/// The session's ttys as a record lists them (`pts/3,pts/4`), or `None` for none.
pub fn names(ttys: &[TtyNr]) -> Option<String> {
    (!ttys.is_empty()).then(|| ttys.iter().map(|&t| ttys::short_name(t)).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
pub(crate) mod tests {
    use vigil_protocol::OpenRequest;

    use super::*;
    use crate::rpc::caller::Caller;
    use crate::sessions::ownership::tests::{end, holder_of, open_pty};

    /// A session led by `pid` (no audit session of its own).
    pub(crate) async fn session_led_by(core: &std::sync::Arc<Manager>, pid: u32) -> u64 {
        let request = OpenRequest {
            user: "root".into(),
            service: "vigil-unit".into(),
            tty: String::new(),
            rhost: String::new(),
            ruser: String::new(),
            leader_pid: pid,
            audit_session_id: procfs::audit_session_id(pid),
            truncated: vec![],
        };
        core.open_session(Caller::new(0, pid), request).await.expect("registered")
    }

    #[tokio::test]
    async fn a_tty_is_claimed_by_its_holder_and_taken_from_a_claimant_that_lost_it() {
        let core = crate::sessions::manager::manager_for_tests();
        let (_master, slave, tty) = open_pty();
        // B's process holds the tty; A's leader (another process) does not.
        let b_holder = holder_of(&slave, &["sleep", "30"], "sleep");
        let mut a_leader = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let b = session_led_by(&core, b_holder.id()).await;
        let a = session_led_by(&core, a_leader.id()).await;

        // A cannot claim what none of its processes has.
        assert_eq!(core.claim_tty(a, tty, &[b_holder.id()]), Claim::Refused);
        assert!(!core.tty_claimed(tty));
        // A stale claim, as a closed pty whose number came back would leave it.
        assert!(core.registry().adopt_tty(a, tty));

        // B holds it: the claim moves to B.
        assert_eq!(core.claim_tty(b, tty, &[b_holder.id()]), Claim::TakenOver { from: a });
        assert_eq!(core.registry().owner_of_tty(tty), Some(b));
        assert!(core.session(b).unwrap().ttys().contains(&tty) && !core.session(a).unwrap().ttys().contains(&tty));
        assert_eq!(core.claim_tty(b, tty, &[b_holder.id()]), Claim::Already);
        // And A, which still does not hold it, cannot take it back.
        assert_eq!(core.claim_tty(a, tty, &[b_holder.id()]), Claim::Refused);

        assert!(core.release_tty(b, tty) && !core.release_tty(b, tty));
        assert!(!core.tty_claimed(tty));
        end(b_holder);
        let _ = a_leader.kill();
        let _ = a_leader.wait();
    }

    #[tokio::test]
    async fn a_claimant_that_still_holds_its_tty_keeps_it() {
        let core = crate::sessions::manager::manager_for_tests();
        let (_master, slave, tty) = open_pty();
        let holder = holder_of(&slave, &["sleep", "30"], "sleep");
        let a = session_led_by(&core, holder.id()).await;
        assert_eq!(core.claim_tty(a, tty, &[holder.id()]), Claim::Claimed);
        // A session led by this process, the holder's parent: it holds the tty too, and
        // still the first claimant keeps it.
        let b = session_led_by(&core, std::process::id()).await;
        assert_eq!(core.claim_tty(b, tty, &[holder.id()]), Claim::Refused);
        assert_eq!(core.registry().owner_of_tty(tty), Some(a));
        end(holder);
    }
}
