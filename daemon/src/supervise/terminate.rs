//! Ending every process of a session: SIGHUP, then SIGKILL after a grace period.
//!
//! A session's processes are what it owns (`ownership.rs`): the leader's process tree,
//! every process of its kernel audit session when the session owns one (set by
//! pam_loginuid for this login, not inherited), and the jobs on its ttys whose POSIX
//! session one of those leads. A process that is merely on a tty the session claims is
//! never one of them: the tty may be another login's by now. vigild never signals
//! itself, its ancestors or PID 1. Processes are held by pidfd from the moment they are
//! chosen, so a reused pid is never hit.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::time::Duration;

use vigil_protocol::events::TerminateFailure;

use crate::sessions::ownership::{self, SessionScope};
use crate::sys::pidfd;
use crate::sys::procfs;

/// Why a session's processes could not be ended: vigild could not see them (/proc
/// unreadable) or could not take hold of them (pidfd_open failed for a reason other
/// than the process having exited). The session is kept and the end retried: a failed
/// read must never pass for "no processes".
#[derive(Debug, thiserror::Error)]
pub enum TerminateError {
    #[error("cannot list processes: {0}")]
    CannotSee(std::io::Error),
    #[error("cannot hold process {pid}: {error}")]
    CannotHold { pid: u32, error: std::io::Error },
}

impl TerminateError {
    /// The word audit records use.
    pub fn reason(&self) -> TerminateFailure {
        match self {
            TerminateError::CannotSee(_) => TerminateFailure::CannotListProcesses,
            TerminateError::CannotHold { .. } => TerminateFailure::CannotHoldProcess,
        }
    }
}

/// The session's pids in a listing of every process, minus anything vigild must never
/// signal.
fn pids_in(scope: &SessionScope, stats: Vec<procfs::Stat>) -> std::io::Result<Vec<u32>> {
    // A leader gone (its pid perhaps another process's by now) leads nothing.
    let leader_lives = stats.iter().any(|s| s.pid == scope.leader_pid && (scope.leader_start == 0 || s.start_time == scope.leader_start));
    let mut pids = if leader_lives { procfs::process_tree(scope.leader_pid, &stats) } else { Vec::new() };
    if let Some(ses) = scope.audit_session {
        let tree: HashSet<u32> = pids.iter().copied().collect();
        pids.extend(stats.iter().filter(|s| !tree.contains(&s.pid) && procfs::audit_session_id(s.pid) == ses).map(|s| s.pid));
    }
    let members: HashSet<u32> = pids.iter().copied().collect();
    pids.extend(ownership::on_session_ttys(scope, &stats, &members));
    let protected = protected_pids(&stats);
    pids.retain(|p| !protected.contains(p));
    Ok(pids)
}

/// A session's processes, held by pidfd from the moment they are chosen.
pub struct Targets {
    handles: Vec<OwnedFd>,
}

impl Targets {
    /// Finds and holds every process of the session, or says why it cannot.
    pub fn of(scope: &SessionScope) -> Result<Self, TerminateError> {
        Self::of_listing(scope, procfs::all_stats())
    }

    /// As `of`, from a listing of every process (or the error listing them gave).
    fn of_listing(scope: &SessionScope, listing: std::io::Result<Vec<procfs::Stat>>) -> Result<Self, TerminateError> {
        let pids = listing.and_then(|stats| pids_in(scope, stats)).map_err(TerminateError::CannotSee)?;
        let mut handles = Vec::with_capacity(pids.len());
        for pid in pids {
            match pidfd::open(pid) {
                Ok(fd) => handles.push(fd),
                // Exited between the listing and now: nothing left to end.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(error) => return Err(TerminateError::CannotHold { pid, error }),
            }
        }
        Ok(Self { handles })
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// SIGHUP (and SIGCONT, so stopped jobs see it) to every process, SIGKILL to the
    /// survivors after `grace`.
    pub async fn end(self, grace: Duration) {
        end_held(&self.handles, grace).await;
    }
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

async fn end_held(handles: &[OwnedFd], grace: Duration) {
    for fd in handles {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process on a tty the session claims, but whose POSIX session is not the
    /// session's (the pty's number given to another login), is never signalled.
    #[test]
    fn a_process_on_a_claimed_tty_is_a_target_only_by_its_posix_session() {
        use crate::sessions::ownership::tests::{end, holder_of, open_pty};
        let (_master, slave, tty) = open_pty();
        let other_login = holder_of(&slave, &["sleep", "30"], "sleep");
        let mut leader = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let stale = SessionScope { leader_pid: leader.id(), leader_start: 0, audit_session: None, ttys: vec![tty], posix_sessions: vec![] };
        let pids = pids_in(&stale, procfs::all_stats().unwrap()).unwrap();
        assert!(pids.contains(&leader.id()) && !pids.contains(&other_login.id()), "{pids:?}");
        // The holder's own session (it leads its POSIX session): its process is a target.
        let own = SessionScope { leader_pid: other_login.id(), ..stale };
        assert!(pids_in(&own, procfs::all_stats().unwrap()).unwrap().contains(&other_login.id()));
        end(other_login);
        let _ = leader.kill();
        let _ = leader.wait();
    }

    #[test]
    fn a_listing_that_failed_is_never_taken_for_no_processes() {
        let scope = SessionScope { leader_pid: 4242, leader_start: 0, audit_session: None, ttys: vec![], posix_sessions: vec![] };
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let failed = Targets::of_listing(&scope, Err(emfile));
        assert!(matches!(&failed, Err(e) if e.reason() == TerminateFailure::CannotListProcesses), "{:?}", failed.as_ref().err());
    }
}
