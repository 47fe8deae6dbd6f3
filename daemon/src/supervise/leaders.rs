//! Sessions whose leader process exits without close_session (sshd killed, a crashed
//! login) are ended by vigild. One pidfd watch per leader process, however many
//! sessions it leads.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::task::AbortHandle;
use vigil_protocol::events::Event;

use crate::audit::records::{EndReason, session_record};
use crate::sessions::manager::{Hooks, Manager};
use crate::supervise::terminate::Targets;
use crate::sys::pidfd;

#[derive(Default)]
struct Watches {
    by_pid: HashMap<u32, (AbortHandle, BTreeSet<u64>)>,
    pid_of: HashMap<u64, u32>,
}

pub struct LeaderWatch {
    core: Weak<Manager>,
    watches: Arc<Mutex<Watches>>,
}

impl LeaderWatch {
    pub fn new(core: &Arc<Manager>) -> Arc<Self> {
        Arc::new(Self { core: Arc::downgrade(core), watches: Arc::default() })
    }

    fn watches(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Hooks for LeaderWatch {
    fn session_added(&self, id: u64, leader_pid: u32) {
        let mut watches = self.watches();
        watches.pid_of.insert(id, leader_pid);
        if let Some((_, ids)) = watches.by_pid.get_mut(&leader_pid) {
            ids.insert(id);
            return;
        }
        let (core, all) = (self.core.clone(), self.watches.clone());
        let task = tokio::spawn(async move {
            // A leader already gone ends its sessions now. A pidfd refused for another
            // reason (out of file descriptors) is no proof of anything: try again later.
            // Bounded by the leader's life: each pass sleeps RETRY_EVERY.
            loop {
                match pidfd::open(leader_pid) {
                    Ok(fd) => {
                        let _ = pidfd::exited(fd).await;
                        break;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => break,
                    Err(_) => tokio::time::sleep(RETRY_EVERY).await,
                }
            }
            let ids = {
                let mut watches = all.lock().unwrap_or_else(|p| p.into_inner());
                let ids = watches.by_pid.remove(&leader_pid).map(|(_, ids)| ids).unwrap_or_default();
                for id in &ids {
                    watches.pid_of.remove(id);
                }
                ids
            };
            let Some(core) = core.upgrade() else { return };
            for (n, id) in ids.into_iter().enumerate() {
                end_leaderless(&core, id).await;
                // One process may lead thousands of sessions (a PAM broker, a test
                // host): logins and signals get the thread between batches of ends.
                if n % YIELD_EVERY == YIELD_EVERY - 1 {
                    tokio::task::yield_now().await;
                }
            }
        });
        watches.by_pid.insert(leader_pid, (task.abort_handle(), BTreeSet::from([id])));
    }

    fn session_removed(&self, id: u64) {
        let mut watches = self.watches();
        let Some(pid) = watches.pid_of.remove(&id) else { return };
        let now_unwatched = match watches.by_pid.get_mut(&pid) {
            Some((_, ids)) => {
                ids.remove(&id);
                ids.is_empty()
            }
            None => false,
        };
        if now_unwatched && let Some((task, _)) = watches.by_pid.remove(&pid) {
            task.abort();
        }
    }
}

/// How often, and how many times, ending what a dead leader left behind is retried when
/// vigild cannot see or hold the processes (out of file descriptors).
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
const RETRIES: usize = 60;
/// Sessions of one dead leader ended before the thread is given to other work.
const YIELD_EVERY: usize = 64;

/// The leader died without closing (sshd's monitor killed): what is left on the
/// session's terminals (or in its own audit session) would run on unsupervised, so it is
/// ended with the session. Until vigild can see those processes, the session is kept.
async fn end_leaderless(core: &Manager, id: u64) {
    for attempt in 1..=RETRIES {
        let Some(session) = core.session(id) else { return };
        if session.ttys().is_empty() && !session.who.owns_audit_session {
            core.end(id, EndReason::LeaderGone, Some(("processes", 0)));
            return;
        }
        match Targets::of(&core.end_scope(&session)) {
            Ok(leftovers) => {
                core.end(id, EndReason::LeaderGone, Some(("processes", leftovers.len() as i128)));
                leftovers.end(session.policy.kill_grace).await;
                return;
            }
            Err(error) => {
                core.audit.write(
                    session_record(Event::TerminateFailed, &session)
                        .text("reason", error.reason())
                        .text("error", error.to_string())
                        .number("attempt", attempt as u64)
                        .text("by", EndReason::LeaderGone),
                );
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use vigil_protocol::OpenRequest;

    use super::*;
    use crate::rpc::caller::Caller;

    /// A leader of many sessions dies: its sessions are ended in batches, and other work
    /// (here a probe task, in vigild logins and signals) runs between the batches.
    #[tokio::test]
    async fn the_sessions_of_a_dead_leader_are_ended_in_batches_other_work_between() {
        const SESSIONS: usize = 4 * YIELD_EVERY;
        let core = crate::sessions::manager::manager_for_tests();
        core.add_hooks(LeaderWatch::new(&core));
        let mut leader = std::process::Command::new("sleep").arg("600").spawn().unwrap();
        let pid = leader.id();
        let ses = crate::sys::procfs::audit_session_id(pid);
        for _ in 0..SESSIONS {
            let request = OpenRequest {
                user: "root".into(),
                service: "vigil-unit".into(),
                tty: String::new(),
                rhost: String::new(),
                ruser: String::new(),
                leader_pid: pid,
                audit_session_id: ses,
                truncated: vec![],
            };
            core.open_session(Caller::new(0, pid), request).await.expect("registered");
        }
        assert_eq!(core.session_ids().len(), SESSIONS);

        leader.kill().unwrap();
        leader.wait().unwrap();
        // The probe looks at the registry each time it gets the thread.
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let left = core.session_ids().len();
            seen.insert(left);
            if left == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(seen.contains(&0), "every session ended: {seen:?}");
        let between: Vec<usize> = seen.iter().copied().filter(|&n| n > 0 && n < SESSIONS).collect();
        assert!(!between.is_empty(), "the probe ran while the sessions were being ended: {seen:?}");
        assert!(between.iter().all(|n| n % YIELD_EVERY == 0), "it ran between batches of {YIELD_EVERY}: {between:?}");
    }
}
