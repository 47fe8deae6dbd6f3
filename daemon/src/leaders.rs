//! Sessions whose leader process exits without close_session (sshd killed, a crashed
//! login) are ended by vigild. One pidfd watch per leader process, however many
//! sessions it leads.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::task::AbortHandle;

use crate::core::{EndReason, Hooks, Vigild};
use crate::pidfd;

#[derive(Default)]
struct Watches {
    by_pid: HashMap<u32, (AbortHandle, BTreeSet<u64>)>,
    pid_of: HashMap<u64, u32>,
}

pub struct LeaderWatch {
    core: Weak<Vigild>,
    watches: Arc<Mutex<Watches>>,
}

impl LeaderWatch {
    pub fn new(core: &Arc<Vigild>) -> Arc<Self> {
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
            // A leader already gone (or a pidfd the kernel refuses) ends its sessions
            // now rather than never.
            if let Ok(fd) = pidfd::open(leader_pid) {
                let _ = pidfd::exited(fd).await;
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
            for id in ids {
                let Some(session) = core.session(id) else { continue };
                // The leader died without closing (sshd's monitor killed): what is left
                // on the session's terminals (or in its own audit session) would run on
                // unsupervised. It is ended with the session.
                let leftovers = if session.activity.ttys.is_empty() && !session.owns_audit_session {
                    Vec::new()
                } else {
                    crate::terminate::session_pids(session.scope())
                };
                core.end(id, EndReason::LeaderGone, Some(("processes", leftovers.len() as i128)));
                if !leftovers.is_empty() {
                    crate::terminate::end_processes(&leftovers, session.policy.kill_grace).await;
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
        if now_unwatched {
            if let Some((task, _)) = watches.by_pid.remove(&pid) {
                task.abort();
            }
        }
    }
}
