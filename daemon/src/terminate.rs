//! Ending every process of a session: SIGHUP, then SIGKILL after a grace period.
//!
//! The session's processes are the leader's process tree, every process on the
//! session's ttys, and every process of its kernel audit session when the session owns
//! one (set by pam_loginuid for this login, not inherited). vigild never signals
//! itself, its ancestors or PID 1. Processes are held by pidfd from the moment they are
//! chosen, so a reused pid is never hit.

use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::pidfd;
use crate::procfs;
use crate::ttys::TtyNr;

/// Which processes belong to a session.
#[derive(Debug, Clone)]
pub struct SessionScope {
    pub leader_pid: u32,
    /// The session's own audit session id, if it has one.
    pub audit_session: Option<u32>,
    /// The session's ttys: every process on them belongs to it (nohup'd jobs whose
    /// shell is gone included).
    pub ttys: Vec<TtyNr>,
}

/// The pids of the session now, minus anything vigild must never signal.
pub fn session_pids(scope: SessionScope) -> Vec<u32> {
    let stats = procfs::all_stats();
    let mut pids = procfs::process_tree(scope.leader_pid, &stats);
    for s in &stats {
        if s.tty_nr != 0 && scope.ttys.contains(&s.tty_nr) && !pids.contains(&s.pid) {
            pids.push(s.pid);
        }
    }
    if let Some(ses) = scope.audit_session {
        for s in &stats {
            if !pids.contains(&s.pid) && procfs::audit_session_id(s.pid) == ses {
                pids.push(s.pid);
            }
        }
    }
    let protected = protected_pids(&stats);
    pids.retain(|p| !protected.contains(p));
    pids
}

/// vigild, its ancestors, and PID 1.
fn protected_pids(stats: &[procfs::Stat]) -> Vec<u32> {
    let mut protected = vec![1, std::process::id()];
    let mut pid = std::process::id();
    for _ in 0..64 {
        match stats.iter().find(|s| s.pid == pid) {
            Some(s) if s.ppid > 1 => {
                protected.push(s.ppid);
                pid = s.ppid;
            }
            _ => break,
        }
    }
    protected
}

/// SIGHUP (and SIGCONT, so stopped jobs see it) to every process, SIGKILL to the
/// survivors after `grace`. Returns how many processes were signalled.
pub async fn end_processes(pids: &[u32], grace: Duration) -> usize {
    let handles: Vec<OwnedFd> = pids.iter().filter_map(|&p| pidfd::open(p).ok()).collect();
    for fd in &handles {
        pidfd::send_signal(fd, libc::SIGHUP);
        pidfd::send_signal(fd, libc::SIGCONT);
    }
    let deadline = tokio::time::Instant::now() + grace;
    // Bounded: ends at the grace deadline at the latest.
    while tokio::time::Instant::now() < deadline && handles.iter().any(|fd| !pidfd::has_exited(fd)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for fd in handles.iter().filter(|fd| !pidfd::has_exited(fd)) {
        pidfd::send_signal(fd, libc::SIGKILL);
    }
    handles.len()
}
