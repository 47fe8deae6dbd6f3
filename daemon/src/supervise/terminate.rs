//! Ending every process of a session: SIGHUP, then SIGKILL after a grace period.
//!
//! A session's processes are what it owns (`ownership.rs`): the leader's process tree,
//! every process of its kernel audit session when the session owns one (set by
//! pam_loginuid for this login, not inherited), and the jobs on its ttys whose POSIX
//! session one of those leads. A process that is merely on a tty the session claims is
//! never one of them: the tty may be another login's by now. vigild never signals
//! itself, its ancestors or PID 1. Processes are held by pidfd from the moment they are
//! chosen, and a pidfd counts only when the process behind it has the start time the
//! listing saw, so a reused pid is never hit.
//!
//! Many sessions ending at once (a storm of deadlines) share one listing of /proc
//! ([`Listing`]): a listing reads a file per process, and the audit-session search a
//! second, so a listing per end made a storm cost ends × processes reads.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

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

/// How long one listing serves the ends that follow it at least, and in multiples of
/// what taking it cost (a listing of 10,000 processes takes a few hundred ms: taken
/// anew every 250 ms it would be most of a storm's work). A process started later than
/// that before an end is not found by it (its parent, found, is signalled).
pub const LISTING_MIN_AGE: Duration = Duration::from_millis(250);
const LISTING_COST_FACTOR: u32 = 4;
/// A listing of at least this many processes reads /proc on several threads (a file per
/// process, twice with the audit sessions: 10,000 processes are 20,000 opens); below
/// it a thread costs more than it saves.
const PARALLEL_FROM: usize = 2048;
/// At most this many threads read one listing (the CPUs there are, up to this).
const MAX_LISTING_THREADS: usize = 4;

/// Every process at one moment, as the ends of a session need them.
pub struct Listing {
    taken: Instant,
    /// The work taking it took: the time of each thread that read /proc, summed, and
    /// the indexing (read on two threads, a listing serves as long as read on one).
    cost: Duration,
    stats: Vec<procfs::Stat>,
    start_of: HashMap<u32, u64>,
    children: HashMap<u32, Vec<u32>>,
    on_tty: HashMap<u32, Vec<procfs::Stat>>,
    /// The processes of each audit session, read on first need (a file per process).
    by_audit_session: Option<HashMap<u32, Vec<u32>>>,
    protected: HashSet<u32>,
}

impl Listing {
    pub fn take() -> std::io::Result<Listing> {
        let taken = Instant::now();
        let pids = procfs::all_pids()?;
        let listed = taken.elapsed();
        // The processes that vanish while reading are skipped (`procfs::all_stats`).
        let (stats, read) = read_in_parallel(&pids, procfs::stat);
        let indexed = Instant::now();
        let mut listing = Listing::of(stats.into_iter().flatten().collect(), taken);
        listing.cost = listed + read + indexed.elapsed();
        Ok(listing)
    }

    fn of(stats: Vec<procfs::Stat>, taken: Instant) -> Listing {
        let start_of = stats.iter().map(|s| (s.pid, s.start_time)).collect();
        let protected = protected_pids(&stats).into_iter().collect();
        let (mut children, mut on_tty): (HashMap<u32, Vec<u32>>, HashMap<u32, Vec<procfs::Stat>>) = Default::default();
        for s in &stats {
            if s.ppid != s.pid {
                children.entry(s.ppid).or_default().push(s.pid);
            }
            if s.tty_nr != 0 {
                on_tty.entry(s.tty_nr).or_default().push(*s);
            }
        }
        Listing { taken, cost: taken.elapsed(), stats, start_of, children, on_tty, by_audit_session: None, protected }
    }

    /// Young enough to serve an end: `LISTING_MIN_AGE`, or `LISTING_COST_FACTOR` times
    /// what it cost.
    pub fn is_fresh(&self) -> bool {
        self.taken.elapsed() < LISTING_MIN_AGE.max(self.cost * LISTING_COST_FACTOR)
    }

    /// The listing in `slot` while it is fresh, else a new one.
    pub fn reuse(slot: &mut Option<Listing>) -> std::io::Result<&mut Listing> {
        if slot.as_ref().is_none_or(|l| !l.is_fresh()) {
            *slot = None;
            *slot = Some(Listing::take()?);
        }
        slot.as_mut().ok_or_else(|| std::io::Error::other("no listing"))
    }

    /// `pid` and all its descendants, parents before children (`procfs::process_tree`).
    fn tree(&self, pid: u32) -> Vec<u32> {
        let mut tree = vec![pid];
        let mut i = 0;
        // Bounded: each pid enters the tree once at most (a pid has one parent), and the
        // listing is finite.
        while i < tree.len() && tree.len() <= self.stats.len() {
            tree.extend(self.children.get(&tree[i]).map_or(&[][..], Vec::as_slice));
            i += 1;
        }
        tree
    }

    fn audit_session(&mut self, ses: u32) -> &[u32] {
        let stats = &self.stats;
        let map = self.by_audit_session.get_or_insert_with(|| {
            let pids: Vec<u32> = stats.iter().map(|s| s.pid).collect();
            let (sessions, _) = read_in_parallel(&pids, procfs::audit_session_id);
            let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
            for (pid, ses) in pids.into_iter().zip(sessions) {
                map.entry(ses).or_default().push(pid);
            }
            map
        });
        map.get(&ses).map_or(&[], Vec::as_slice)
    }

    /// The session's pids, minus anything vigild must never signal.
    fn pids_of(&mut self, scope: &SessionScope) -> Vec<u32> {
        // A leader gone (its pid perhaps another process's by now) leads nothing.
        let leader_lives =
            self.start_of.get(&scope.leader_pid).is_some_and(|&start| scope.leader_start == 0 || start == scope.leader_start);
        let mut pids = if leader_lives { self.tree(scope.leader_pid) } else { Vec::new() };
        if let Some(ses) = scope.audit_session {
            let tree: HashSet<u32> = pids.iter().copied().collect();
            pids.extend(self.audit_session(ses).iter().filter(|p| !tree.contains(p)));
        }
        let members: HashSet<u32> = pids.iter().copied().collect();
        let on_ttys: Vec<procfs::Stat> = scope.ttys.iter().filter_map(|tty| self.on_tty.get(tty)).flatten().copied().collect();
        pids.extend(ownership::on_session_ttys(scope, &on_ttys, &members));
        pids.retain(|p| !self.protected.contains(p));
        pids
    }
}

/// A session's processes, held by pidfd from the moment they are chosen.
pub struct Targets {
    handles: Vec<OwnedFd>,
}

impl Targets {
    /// Finds and holds every process of the session, from a listing of its own, or says
    /// why it cannot.
    pub fn of(scope: &SessionScope) -> Result<Self, TerminateError> {
        match Listing::take() {
            Ok(mut listing) => Self::of_listing(scope, Ok(&mut listing)),
            Err(e) => Self::of_listing(scope, Err(e)),
        }
    }

    /// As `of`, from a listing shared with other ends (`Listing::reuse`), or the error
    /// taking it gave.
    pub fn of_listing(scope: &SessionScope, listing: std::io::Result<&mut Listing>) -> Result<Self, TerminateError> {
        let listing = listing.map_err(TerminateError::CannotSee)?;
        let pids = listing.pids_of(scope);
        let mut handles = Vec::with_capacity(pids.len());
        for pid in pids {
            match pidfd::open(pid) {
                Ok(fd) => match procfs::stat_checked(pid).map(|s| s.map(|s| s.start_time)) {
                    // The process the listing saw, not one that took its pid since.
                    Ok(start) if start == listing.start_of.get(&pid).copied() => handles.push(fd),
                    Ok(_) => {}
                    Err(error) => return Err(TerminateError::CannotSee(error)),
                },
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

/// The CPUs vigild may run on, asked once (the question reads cgroup files).
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many threads read `n` things, when reading on several pays from `from` on, on
/// a machine of `cpus` CPUs.
fn reading_threads(n: usize, from: usize, cpus: usize) -> usize {
    if n < from { 1 } else { cpus.clamp(1, MAX_LISTING_THREADS) }
}

/// `read` of every pid, in their order, on `reading_threads` threads (a listing).
fn read_in_parallel<T: Send>(pids: &[u32], read: fn(u32) -> T) -> (Vec<T>, Duration) {
    in_parallel(pids, PARALLEL_FROM, |&pid| read(pid))
}

/// `read` of every item, in their order, on `reading_threads` threads (this one and the
/// others; a thread that cannot be started leaves its part to this one), and the time
/// the threads took, summed.
pub(super) fn in_parallel<I: Sync, T: Send>(items: &[I], from: usize, read: impl Fn(&I) -> T + Sync) -> (Vec<T>, Duration) {
    let threads = reading_threads(items.len(), from, cpus());
    let part = items.len().div_ceil(threads).max(1);
    let read = &read;
    let read_part = move |part: &[I]| {
        let started = Instant::now();
        let values: Vec<T> = part.iter().map(read).collect();
        (values, started.elapsed())
    };
    std::thread::scope(|scope| {
        let mut parts = items.chunks(part);
        let first = parts.next().unwrap_or(&[]);
        let others: Vec<_> = parts
            .map(|part| (part, std::thread::Builder::new().name("listing".into()).spawn_scoped(scope, move || read_part(part))))
            .collect();
        let (mut values, mut work) = read_part(first);
        for (part, thread) in others {
            let (more, took) = match thread.map_err(drop).and_then(|t| t.join().map_err(drop)) {
                Ok(done) => done,
                Err(()) => read_part(part),
            };
            values.extend(more);
            work += took;
        }
        (values, work)
    })
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
        let pids = Listing::take().unwrap().pids_of(&stale);
        assert!(pids.contains(&leader.id()) && !pids.contains(&other_login.id()), "{pids:?}");
        // The holder's own session (it leads its POSIX session): its process is a target.
        let own = SessionScope { leader_pid: other_login.id(), ..stale };
        assert!(Listing::take().unwrap().pids_of(&own).contains(&other_login.id()));
        end(other_login);
        let _ = leader.kill();
        let _ = leader.wait();
    }

    /// Below PARALLEL_FROM processes one thread reads a listing; from it, as many as
    /// there are CPUs, MAX_LISTING_THREADS at most, each reading its part, the values in
    /// the pids' order.
    #[test]
    fn a_large_listing_is_read_on_several_threads_in_order() {
        assert_eq!(reading_threads(PARALLEL_FROM - 1, PARALLEL_FROM, 8), 1);
        assert_eq!(reading_threads(PARALLEL_FROM, PARALLEL_FROM, 1), 1);
        assert_eq!(reading_threads(PARALLEL_FROM, PARALLEL_FROM, 2), 2);
        assert_eq!(reading_threads(100_000, PARALLEL_FROM, 64), MAX_LISTING_THREADS);
        fn on_which_thread(pid: u32) -> (u32, String) {
            (pid, format!("{:?}", std::thread::current().id()))
        }
        let pids: Vec<u32> = (1..=PARALLEL_FROM as u32 + 1).collect();
        let (read, _) = read_in_parallel(&pids, on_which_thread);
        assert_eq!(read.iter().map(|(pid, _)| *pid).collect::<Vec<_>>(), pids, "every pid once, in order");
        let threads: HashSet<&str> = read.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(threads.len(), reading_threads(pids.len(), PARALLEL_FROM, cpus()), "{threads:?}");
        let here = format!("{:?}", std::thread::current().id());
        let (few, _) = read_in_parallel(&pids[..10], on_which_thread);
        assert!(few.iter().all(|(_, thread)| *thread == here), "a small listing is read here");
        // A real listing: the same processes as `all_stats` finds (give or take the ones
        // that come and go meanwhile), this one among them.
        let listing = Listing::take().unwrap();
        assert!(listing.start_of.contains_key(&std::process::id()) && listing.cost > Duration::ZERO);
    }

    #[test]
    fn a_listing_that_failed_is_never_taken_for_no_processes() {
        let scope = SessionScope { leader_pid: 4242, leader_start: 0, audit_session: None, ttys: vec![], posix_sessions: vec![] };
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let failed = Targets::of_listing(&scope, Err(emfile));
        assert!(matches!(&failed, Err(e) if e.reason() == TerminateFailure::CannotListProcesses), "{:?}", failed.as_ref().err());
    }
}
