//! What a session owns, read from /proc at the moment it matters (DESIGN.md, "What a
//! session owns"). A process belongs to a session while it is the leader or a
//! descendant of it, or carries the session's own audit session id; a tty while such a
//! process has it as its controlling terminal. The registry's ttys are a cache of this:
//! a claim, a warning and an end look here first.
//!
//! What decides is what a user cannot set: the parent links the kernel keeps, the audit
//! session id (writable only with CAP_AUDIT_CONTROL), the controlling tty (a pty closed
//! by its master is taken from every process that had it) and the POSIX session (a
//! process cannot join another one).

use std::collections::HashSet;

use crate::sys::procfs::{self, Stat};
use crate::sys::ttys::{self, TtyNr};

/// Which processes belong to a session.
#[derive(Debug, Clone)]
pub struct SessionScope {
    pub leader_pid: u32,
    /// The leader's start time (0: unknown): with the pid, it names the leader for good.
    pub leader_start: u64,
    /// The session's own audit session id, if it has one.
    pub audit_session: Option<u32>,
    /// The ttys the session claims: a process on them is its own only by its POSIX
    /// session (`ownership::on_session_ttys`).
    pub ttys: Vec<TtyNr>,
    /// The POSIX sessions (leader pid, its start time) that held the session's ttys when
    /// they were claimed.
    pub posix_sessions: Vec<(u32, u64)>,
}

/// How far up the process tree a descent is followed.
const MAX_DEPTH: usize = 4096;

/// Whether `pid` belongs to the session now.
pub fn belongs(scope: &SessionScope, pid: u32) -> bool {
    if scope.audit_session.is_some_and(|ses| procfs::audit_session_id(pid) == ses) {
        return true;
    }
    let mut current = pid;
    for _ in 0..MAX_DEPTH {
        let Some(stat) = procfs::stat(current) else { return false };
        if current == scope.leader_pid {
            // A leader pid taken by a new process is not the leader.
            return scope.leader_start == 0 || stat.start_time == scope.leader_start;
        }
        if stat.ppid <= 1 {
            return false;
        }
        current = stat.ppid;
    }
    false
}

/// Whether the tty's device is there (a closed pty's is removed at once).
pub fn device_exists(tty: TtyNr) -> bool {
    ttys::device_path(tty).is_some_and(|path| path.exists())
}

/// The processes of a listing with `tty` as their controlling terminal.
pub fn on_tty(stats: &[Stat], tty: TtyNr) -> Vec<u32> {
    stats.iter().filter(|s| s.tty_nr == tty).map(|s| s.pid).collect()
}

/// Whether the session holds `tty` now: the device is there, and one of `on_tty` (pids a
/// listing showed on it, each read again here) still has it and belongs to the session.
pub fn holds_tty(scope: &SessionScope, tty: TtyNr, on_tty: &[u32]) -> bool {
    holder(scope, tty, on_tty).is_some()
}

/// As `holds_tty`: the process of the session that has the tty.
pub fn holder(scope: &SessionScope, tty: TtyNr, on_tty: &[u32]) -> Option<u32> {
    if !device_exists(tty) {
        return None;
    }
    on_tty.iter().copied().find(|&pid| procfs::stat(pid).is_some_and(|s| s.tty_nr == tty) && belongs(scope, pid))
}

/// The POSIX session a process is in, as (its leader's pid, that leader's start time):
/// the one whose controlling terminal a tty is. A tty keeps it until that leader exits
/// (the kernel then takes the tty from every process of it), so a process later found on
/// the tty in that POSIX session was forked inside it.
pub fn posix_session_of(pid: u32) -> Option<(u32, u64)> {
    let sid = posix_session(pid)?;
    Some((sid, procfs::stat(sid)?.start_time))
}

/// The session's ttys it no longer holds. `tree`: a fresh reading of the leader's
/// process tree, whose members hold their ttys without a further look. A tty none of them
/// has is looked for among all processes only when the session owns an audit session
/// (otherwise nobody outside the tree can hold it for the session). An error when /proc
/// could not be listed: nothing is concluded from a failed read.
pub fn lost_ttys(scope: &SessionScope, tree: &[Stat]) -> std::io::Result<Vec<TtyNr>> {
    let mut unseen: Vec<TtyNr> = scope.ttys.iter().copied().filter(|&t| !tree.iter().any(|s| s.tty_nr == t)).collect();
    if unseen.is_empty() || scope.audit_session.is_none() {
        return Ok(unseen);
    }
    let stats = procfs::all_stats()?;
    unseen.retain(|&tty| !holds_tty(scope, tty, &on_tty(&stats, tty)));
    Ok(unseen)
}

/// The processes of a listing that are on one of the session's ttys and belong to it: a
/// process whose POSIX session is led by one of `members` (the session's processes as
/// found by descent and audit session), or is the one that held the tty for the session
/// when it was claimed (`scope.posix_sessions`: what is left on a terminal when the
/// leader was killed is no descendant any more). A job left on the tty by a shell that is
/// gone from the tree (`(nohup job &)`) is found so; a process on a tty the session no
/// longer holds (its number given to another login) is not.
pub fn on_session_ttys(scope: &SessionScope, stats: &[Stat], members: &HashSet<u32>) -> Vec<u32> {
    stats
        .iter()
        .filter(|s| s.tty_nr != 0 && scope.ttys.contains(&s.tty_nr) && !members.contains(&s.pid))
        .filter(|s| {
            posix_session(s.pid).is_some_and(|sid| {
                members.contains(&sid)
                    || scope
                        .posix_sessions
                        .iter()
                        .any(|&(known, start)| known == sid && procfs::stat(sid).is_some_and(|l| l.start_time == start))
            })
        })
        .map(|s| s.pid)
        .collect()
}

/// The POSIX session id of a process (field 6 of its stat line).
fn posix_session(pid: u32) -> Option<u32> {
    let text = procfs::stat_text(pid)?;
    let line = vigil_host::procfs::parse_stat_line(&text)?;
    u32::try_from(line.session).ok().filter(|&sid| sid > 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use super::*;

    /// A pty pair opened by this process: master, slave, and the slave as a tty_nr. Both
    /// close on exec, so that no child of a test running beside keeps the pty open.
    pub fn open_pty() -> (OwnedFd, OwnedFd, TtyNr) {
        use std::os::fd::FromRawFd;
        // SAFETY: plain libc calls on a descriptor owned by the OwnedFd at once; ptsname_r
        // writes at most the buffer's length.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(master >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let master = OwnedFd::from_raw_fd(master);
            assert!(libc::grantpt(master.as_raw_fd()) == 0 && libc::unlockpt(master.as_raw_fd()) == 0);
            let mut name = [0 as libc::c_char; 64];
            assert_eq!(libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()), 0);
            let name = std::ffi::CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
            let slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(&name)
                .expect("the slave");
            let tty = ttys::tty_nr_of_name(&name).expect("a pts device");
            (master, OwnedFd::from(slave), tty)
        }
    }

    /// `argv` (whose command name is `comm`) in a POSIX session of its own whose
    /// controlling terminal is `slave` (util-linux `setsid --ctty` takes it from stdin).
    pub fn holder_of(slave: &OwnedFd, argv: &[&str], comm: &str) -> Child {
        let stdin = slave.try_clone().expect("dup");
        let child = Command::new("setsid").arg("--ctty").args(argv).stdin(Stdio::from(stdin)).spawn().expect("setsid");
        for _ in 0..400 {
            if procfs::stat(child.id()).is_some_and(|s| s.tty_nr != 0) && procfs::comm(child.id()).as_deref() == Some(comm) {
                return child;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        end(child);
        panic!("setsid --ctty never gave the child its tty (fd {})", slave.as_raw_fd());
    }

    pub fn end(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    fn scope(leader_pid: u32, ttys: Vec<TtyNr>) -> SessionScope {
        SessionScope { leader_pid, leader_start: 0, audit_session: None, ttys, posix_sessions: vec![] }
    }

    #[test]
    fn a_tty_is_held_while_a_process_of_the_session_has_it() {
        let (master, slave, tty) = open_pty();
        let holder = holder_of(&slave, &["sleep", "30"], "sleep");
        let pid = holder.id();
        // The holder's own session (it leads it), and this process's (its parent).
        assert!(holds_tty(&scope(pid, vec![tty]), tty, &[pid]));
        assert!(holds_tty(&scope(std::process::id(), vec![tty]), tty, &[pid]));
        // Another session's leader: the same process is not its.
        assert!(!holds_tty(&scope(1, vec![tty]), tty, &[pid]));
        // A leader pid whose start time differs is another process.
        let other_start = SessionScope { leader_start: 1, ..scope(pid, vec![tty]) };
        assert!(!holds_tty(&other_start, tty, &[pid]));
        assert_eq!(lost_ttys(&scope(pid, vec![tty]), &procfs::stats_of(&[pid])).unwrap(), Vec::<TtyNr>::new());
        assert_eq!(lost_ttys(&scope(pid, vec![tty]), &[]).unwrap(), vec![tty], "no audit session: only the tree can hold it");

        // The master closed: the device goes, and the kernel takes the tty from its holder.
        drop(slave);
        drop(master);
        for _ in 0..200 {
            if !device_exists(tty) && procfs::stat(pid).is_some_and(|s| s.tty_nr == 0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!holds_tty(&scope(pid, vec![tty]), tty, &[pid]));
        assert_eq!(lost_ttys(&scope(pid, vec![tty]), &procfs::stats_of(&[pid])).unwrap(), vec![tty]);
        end(holder);
    }

    #[test]
    fn only_jobs_of_the_sessions_own_posix_sessions_count_on_its_ttys() {
        let (_master, slave, tty) = open_pty();
        let shell = holder_of(&slave, &["sh", "-c", "sleep 30 & wait"], "sh");
        let sh = shell.id();
        let mut job = None;
        for _ in 0..400 {
            job = procfs::all_stats().unwrap().into_iter().find(|s| s.ppid == sh && s.tty_nr == tty).map(|s| s.pid);
            if job.is_some_and(|pid| procfs::comm(pid).as_deref() == Some("sleep")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let job = job.expect("the shell's job");
        let stats = procfs::stats_of(&[sh, job]);
        // The shell, leader of the job's POSIX session, is a member: the job on the tty is
        // the session's too, even where the tree no longer leads to it.
        assert_eq!(on_session_ttys(&scope(1, vec![tty]), &stats, &HashSet::from([sh])), vec![job]);
        // A POSIX session led by a process that is not a member, or a tty not the session's.
        assert_eq!(on_session_ttys(&scope(1, vec![tty]), &stats, &HashSet::from([std::process::id()])), Vec::<u32>::new());
        assert_eq!(on_session_ttys(&scope(1, vec![]), &stats, &HashSet::from([sh])), Vec::<u32>::new());
        // The POSIX session that held the tty when it was claimed, its leader no member
        // any more (the session's leader killed): still the session's.
        let known = SessionScope { posix_sessions: vec![posix_session_of(job).unwrap()], ..scope(1, vec![tty]) };
        let mut found = on_session_ttys(&known, &procfs::stats_of(&[sh, job]), &HashSet::new());
        found.sort_unstable();
        assert_eq!(found, {
            let mut both = vec![sh, job];
            both.sort_unstable();
            both
        });
        let other = SessionScope { posix_sessions: vec![(sh, 1)], ..scope(1, vec![tty]) };
        assert_eq!(on_session_ttys(&other, &stats, &HashSet::new()), Vec::<u32>::new(), "another process with that pid");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(job as i32), nix::sys::signal::Signal::SIGKILL);
        end(shell);
    }
}
