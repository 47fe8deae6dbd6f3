//! Sessions whose leader process exits without close_session (sshd killed, a crashed
//! login) are ended by vigild.
//!
//! A leader is watched by a pidfd (one per leader process, however many sessions it
//! leads), up to a budget of descriptors ([`budget_for`]): the descriptor limit less a
//! reserve for what vigild must always be able to open (the module's connections, the
//! session files, the trail, the bus, the processes an end holds). Leaders beyond it, and
//! any whose pidfd cannot be had (out of descriptors), are looked at by one sweep every
//! [`SWEEP_EVERY`] for all of them: a leader whose pid no longer exists (`kill(pid, 0)`,
//! no descriptor needed) is gone; each pass also reads `/proc/PID/stat` of the next
//! [`VERIFY_PER_PASS`] of them in turn, and a leader whose pid now names a process with
//! another start time (the pid was reused) or a zombie is gone too. A swept leader takes
//! a pidfd as soon as the budget has room again. Either way a leader gone ends its
//! sessions the same way ([`end_sessions`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;
use vigil_protocol::events::Event;

use crate::audit::records::{EndReason, session_record};
use crate::sessions::manager::{Hooks, Manager};
use crate::supervise::terminate::Targets;
use crate::sys::{pidfd, procfs};

/// Descriptors vigild keeps out of the leader watches' budget: root's connection pool
/// (1,024) and the users' (256), which admission control holds them to, then about
/// 2,800 for everything else at once: the bus connections, the trail and syslog, inotify,
/// a session file being written, /proc reads, and the pidfds an end holds on a session's
/// processes through its `kill_grace` (a storm ends thousands of sessions at once). A
/// small limit keeps half of it instead.
pub const RESERVE: u64 = 4096;
/// How often the leaders without a pidfd are looked at.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How many of them a pass reads `/proc/PID/stat` of (a pid reused, a zombie): at
/// about 10 µs a read, some 40 ms of a blocking thread.
pub const VERIFY_PER_PASS: usize = 4096;

/// How many swept leaders a pass gives a pidfd at most (each a /proc read on vigild's
/// thread, to check its pid still names it): 10 ms or so.
pub const PROMOTE_PER_PASS: usize = 1024;

/// How many leaders vigild watches by pidfd with a soft RLIMIT_NOFILE of `nofile`.
pub fn budget_for(nofile: u64) -> usize {
    usize::try_from(nofile.saturating_sub(RESERVE.min(nofile / 2))).unwrap_or(usize::MAX)
}

/// A leader: its pid and its start time (0 when unknown), which name it for good.
type Leader = (u32, u64);

struct Watch {
    ids: BTreeSet<u64>,
    /// The task awaiting the leader's pidfd; `None`: the sweep looks at it.
    pidfd_task: Option<AbortHandle>,
}

struct Watches {
    by_leader: BTreeMap<Leader, Watch>,
    leader_of: HashMap<u64, Leader>,
    /// Watches with a pidfd task: at most `budget`.
    held: usize,
    budget: usize,
    verify_per_pass: usize,
    promote_per_pass: usize,
    /// Where the sweep's reads of /proc/PID/stat go on from.
    verified_up_to: Option<Leader>,
}

struct Shared {
    core: Weak<Manager>,
    watches: Mutex<Watches>,
}

impl Shared {
    fn watches(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct LeaderWatch {
    shared: Arc<Shared>,
}

impl LeaderWatch {
    /// Watches with the budget of vigild's descriptor limit as it is now.
    #[cfg(test)]
    pub fn new(core: &Arc<Manager>) -> Arc<Self> {
        let nofile = crate::sys::rlimit::nofile_soft().unwrap_or(1024);
        Self::with_budget(core, budget_for(nofile))
    }

    /// At most `budget` leaders watched by pidfd; starts the sweep for the others.
    pub fn with_budget(core: &Arc<Manager>, budget: usize) -> Arc<Self> {
        Self::with(core, budget, SWEEP_EVERY, VERIFY_PER_PASS)
    }

    fn with(core: &Arc<Manager>, budget: usize, every: Duration, verify_per_pass: usize) -> Arc<Self> {
        let watches = Watches {
            by_leader: BTreeMap::new(),
            leader_of: HashMap::new(),
            held: 0,
            budget,
            verify_per_pass,
            promote_per_pass: PROMOTE_PER_PASS,
            verified_up_to: None,
        };
        let shared = Arc::new(Shared { core: Arc::downgrade(core), watches: Mutex::new(watches) });
        tokio::spawn(sweep(Arc::downgrade(&shared), every));
        Arc::new(Self { shared })
    }

    /// Leaders watched by pidfd, and by the sweep.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let watches = self.shared.watches();
        (watches.held, watches.by_leader.len() - watches.held)
    }
}

impl Hooks for LeaderWatch {
    fn session_added(&self, id: u64, leader_pid: u32) {
        let Some(core) = self.shared.core.upgrade() else { return };
        // Ended already (a locked user's login): nothing to watch.
        let Some(start) = core.registry().get(id).map(|s| s.who.leader_start) else { return };
        let leader = (leader_pid, start);
        let mut watches = self.shared.watches();
        watches.leader_of.insert(id, leader);
        if let Some(watch) = watches.by_leader.get_mut(&leader) {
            watch.ids.insert(id);
            return;
        }
        let pidfd_task = (watches.held < watches.budget).then(|| {
            watches.held += 1;
            spawn_pidfd_watch(&self.shared, leader, false)
        });
        watches.by_leader.insert(leader, Watch { ids: BTreeSet::from([id]), pidfd_task });
    }

    fn session_removed(&self, id: u64) {
        let mut watches = self.shared.watches();
        let Some(leader) = watches.leader_of.remove(&id) else { return };
        let Some(watch) = watches.by_leader.get_mut(&leader) else { return };
        watch.ids.remove(&id);
        if watch.ids.is_empty()
            && let Some(watch) = watches.by_leader.remove(&leader)
            && let Some(task) = watch.pidfd_task
        {
            task.abort();
            watches.held -= 1;
        }
    }
}

/// Watches `leader` by pidfd: its sessions end when it exits. `verify`: the leader was
/// swept until now, so its pid may name another process by the time the pidfd is taken.
/// A pidfd that cannot be had (out of descriptors) hands the leader back to the sweep.
fn spawn_pidfd_watch(shared: &Arc<Shared>, leader: Leader, verify: bool) -> AbortHandle {
    let shared = shared.clone();
    let task = tokio::spawn(async move {
        let gone = match pidfd::open(leader.0) {
            Ok(fd) => match if verify { look_at(leader) } else { Look::Alive } {
                Look::Alive => pidfd::exited(fd).await.is_ok(),
                Look::Gone => true,
                Look::Unknown => false,
            },
            Err(e) => e.raw_os_error() == Some(libc::ESRCH),
        };
        let ids = {
            let mut watches = shared.watches();
            if !gone {
                if let Some(watch) = watches.by_leader.get_mut(&leader)
                    && watch.pidfd_task.take().is_some()
                {
                    watches.held -= 1;
                }
                return;
            }
            take_gone(&mut watches, leader)
        };
        if let Some(core) = shared.core.upgrade() {
            end_sessions(&core, ids).await;
        }
    });
    task.abort_handle()
}

/// Takes a leader gone out of the watches: its sessions.
fn take_gone(watches: &mut Watches, leader: Leader) -> BTreeSet<u64> {
    let Some(watch) = watches.by_leader.remove(&leader) else { return BTreeSet::new() };
    if watch.pidfd_task.is_some() {
        watches.held -= 1;
    }
    for id in &watch.ids {
        watches.leader_of.remove(id);
    }
    watch.ids
}

/// What a look at a swept leader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Alive,
    /// No such pid, another process under it, or a zombie.
    Gone,
    /// /proc could not be read (out of descriptors): no answer.
    Unknown,
}

/// `/proc/PID/stat` of a leader: is it still the process that registered?
fn look_at((pid, start): Leader) -> Look {
    match procfs::running_stat_checked(pid) {
        Ok(Some(stat)) if start == 0 || stat.start_time == start => Look::Alive,
        Ok(_) => Look::Gone,
        Err(_) => Look::Unknown,
    }
}

/// Whether a process has the pid (`kill(pid, 0)`: no descriptor, no /proc read).
fn pid_exists(pid: u32) -> bool {
    match i32::try_from(pid) {
        // 0 and -1 would name groups of processes: such a leader is never looked at.
        Ok(p) if p > 0 => !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None), Err(nix::errno::Errno::ESRCH)),
        _ => true,
    }
}

/// The leaders of `watches` that have no pidfd: the sweep's.
fn without_pidfd<'a>(watches: impl Iterator<Item = (&'a Leader, &'a Watch)>) -> impl Iterator<Item = Leader> {
    watches.filter(|(_, w)| w.pidfd_task.is_none()).map(|(&l, _)| l)
}

/// The sweep's work for one pass, planned under the lock: every leader without a
/// pidfd (is its pid there?), and the next `verify_per_pass` of them in turn (is it
/// still the same live process?).
fn plan(watches: &mut Watches) -> (Vec<Leader>, Vec<Leader>) {
    let swept: Vec<Leader> = without_pidfd(watches.by_leader.iter()).collect();
    let from = watches.verified_up_to.map_or(Bound::Unbounded, Bound::Excluded);
    let after = watches.by_leader.range((from, Bound::Unbounded));
    let verify: Vec<Leader> = without_pidfd(after.chain(watches.by_leader.iter())).take(watches.verify_per_pass.min(swept.len())).collect();
    watches.verified_up_to = verify.last().copied();
    (swept, verify)
}

/// Looks at the swept leaders; those gone.
fn sweep_pass(swept: &[Leader], verify: &[Leader]) -> BTreeSet<Leader> {
    let mut gone: BTreeSet<Leader> = swept.iter().copied().filter(|&(pid, _)| !pid_exists(pid)).collect();
    let found: Vec<Leader> = verify.iter().copied().filter(|l| !gone.contains(l) && look_at(*l) == Look::Gone).collect();
    gone.extend(found);
    gone
}

/// The sweep: every `every`, the leaders without a pidfd; then pidfds for as many of
/// them as the budget has room for. Bounded by the watches' life.
async fn sweep(shared: Weak<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(strong) = shared.upgrade() else { return };
        let (swept, verify) = plan(&mut strong.watches());
        if swept.is_empty() {
            continue;
        }
        drop(strong);
        // Reads and system calls, thousands of them at 100,000 sessions: off vigild's thread.
        let Ok(gone) = tokio::task::spawn_blocking(move || sweep_pass(&swept, &verify)).await else { continue };
        let Some(strong) = shared.upgrade() else { return };
        let ended: Vec<BTreeSet<u64>> = {
            let mut watches = strong.watches();
            let mut ended = Vec::new();
            for leader in gone {
                // Taken by a pidfd meanwhile: its task sees the exit.
                if watches.by_leader.get(&leader).is_some_and(|w| w.pidfd_task.is_none()) {
                    ended.push(take_gone(&mut watches, leader));
                }
            }
            promote(&strong, &mut watches);
            ended
        };
        if let Some(core) = strong.core.upgrade() {
            for ids in ended {
                let core = core.clone();
                tokio::spawn(async move { end_sessions(&core, ids).await });
            }
        }
    }
}

/// Gives pidfds to swept leaders while the budget has room, `PROMOTE_PER_PASS` at most.
fn promote(shared: &Arc<Shared>, watches: &mut Watches) {
    let room = watches.budget.saturating_sub(watches.held).min(watches.promote_per_pass);
    let chosen: Vec<Leader> = without_pidfd(watches.by_leader.iter()).take(room).collect();
    for leader in chosen {
        let task = spawn_pidfd_watch(shared, leader, true);
        if let Some(watch) = watches.by_leader.get_mut(&leader) {
            watch.pidfd_task = Some(task);
            watches.held += 1;
        }
    }
}

/// Ends the sessions of a leader gone, in batches: one process may lead thousands of
/// sessions (a PAM broker, a test host), and logins and signals get the thread between.
async fn end_sessions(core: &Manager, ids: BTreeSet<u64>) {
    for (n, id) in ids.into_iter().enumerate() {
        end_leaderless(core, id).await;
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
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

    use super::*;
    use crate::sessions::tty_claims::tests::session_led_by;

    /// `n` processes (`sleep 600`), each the leader of a session registered with `core`.
    async fn sessions_of_new_leaders(core: &Arc<Manager>, n: usize) -> (Vec<std::process::Child>, Vec<u64>) {
        let leaders: Vec<std::process::Child> = (0..n).map(|_| std::process::Command::new("sleep").arg("600").spawn().unwrap()).collect();
        let mut ids = Vec::new();
        for leader in &leaders {
            ids.push(session_led_by(core, leader.id()).await);
        }
        (leaders, ids)
    }

    fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> impl std::future::Future<Output = ()> {
        let deadline = Instant::now() + timeout;
        let what = what.to_string();
        async move {
            // Bounded by the deadline.
            while !done() {
                assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    #[test]
    fn the_budget_is_the_limit_less_the_reserve_or_half_a_small_limit() {
        assert_eq!(budget_for(20_000), 15_904);
        assert_eq!(budget_for(65_536), 61_440);
        assert_eq!(budget_for(8_192), 4_096);
        assert_eq!(budget_for(1_024), 512);
        assert_eq!(budget_for(64), 32);
        assert_eq!(budget_for(1), 1);
        assert_eq!(budget_for(0), 0);
    }

    /// Four leaders, a budget of two: two pidfds, two swept. A swept leader that exits
    /// ends its session through the sweep, a watched one through its pidfd, and the
    /// budget freed goes to the swept leader left.
    #[tokio::test]
    async fn leaders_past_the_budget_are_swept_ended_the_same_way_and_take_a_pidfd_when_one_frees() {
        let core = crate::sessions::manager::manager_for_tests();
        let watch = LeaderWatch::with(&core, 2, Duration::from_millis(100), VERIFY_PER_PASS);
        core.add_hooks(watch.clone());
        let (mut leaders, ids) = sessions_of_new_leaders(&core, 4).await;
        assert_eq!(watch.counts(), (2, 2), "two pidfds, two swept");
        let pidfds = || {
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains("pidfd")))
                .count()
        };
        wait_until("the watched leaders' pidfds are held", Duration::from_secs(5), || pidfds() >= 2).await;

        // The last one opened is swept: ended by the sweep.
        leaders[3].kill().unwrap();
        leaders[3].wait().unwrap();
        wait_until("the swept leader's session ended", Duration::from_secs(5), || core.session(ids[3]).is_none()).await;
        assert!(core.session(ids[2]).is_some() && core.session(ids[0]).is_some());
        assert_eq!(watch.counts(), (2, 1));

        // A watched one: its pidfd ends it, and the swept one left takes the pidfd freed.
        leaders[0].kill().unwrap();
        leaders[0].wait().unwrap();
        wait_until("the watched leader's session ended", Duration::from_secs(5), || core.session(ids[0]).is_none()).await;
        wait_until("the swept leader promoted", Duration::from_secs(5), || watch.counts() == (2, 0)).await;
        leaders[2].kill().unwrap();
        leaders[2].wait().unwrap();
        wait_until("the promoted leader's session ended", Duration::from_secs(5), || core.session(ids[2]).is_none()).await;
        assert_eq!(core.session_ids(), vec![ids[1]]);
        assert_eq!(watch.counts(), (1, 0));
        leaders[1].kill().unwrap();
        leaders[1].wait().unwrap();
        wait_until("the last session ended", Duration::from_secs(5), || core.session_ids().is_empty()).await;
        assert_eq!(watch.counts(), (0, 0));
    }

    /// A budget of none: every leader is swept, and a session closed leaves no watch.
    #[tokio::test]
    async fn with_no_budget_every_leader_is_swept() {
        let core = crate::sessions::manager::manager_for_tests();
        let watch = LeaderWatch::with(&core, 0, Duration::from_millis(100), 1);
        core.add_hooks(watch.clone());
        let (mut leaders, ids) = sessions_of_new_leaders(&core, 3).await;
        assert_eq!(watch.counts(), (0, 3));
        assert!(core.end(ids[0], EndReason::Admin, None));
        assert_eq!(watch.counts(), (0, 2), "a session ended leaves no watch");
        for leader in &mut leaders {
            leader.kill().unwrap();
            leader.wait().unwrap();
        }
        wait_until("every swept leader's session ended", Duration::from_secs(5), || core.session_ids().is_empty()).await;
        assert_eq!(watch.counts(), (0, 0));
    }

    /// A look at a leader: the same live process, or gone (no pid, a reused pid, a zombie).
    #[test]
    fn a_leader_is_gone_when_its_pid_is_free_reused_or_a_zombie() {
        let me = std::process::id();
        let start = crate::sys::procfs::stat(me).unwrap().start_time;
        assert_eq!(look_at((me, start)), Look::Alive);
        assert_eq!(look_at((me, 0)), Look::Alive, "no start time saved: the pid alone");
        assert_eq!(look_at((me, start + 1)), Look::Gone, "another process under the pid");
        let mut child = std::process::Command::new("sleep").arg("600").spawn().unwrap();
        let pid = child.id();
        child.kill().unwrap();
        // Not reaped yet: a zombie (bounded wait for the kernel to make it one).
        let deadline = Instant::now() + Duration::from_secs(5);
        while look_at((pid, 0)) != Look::Gone && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(look_at((pid, 0)), Look::Gone, "a zombie");
        assert!(pid_exists(pid), "a zombie still has its pid: only the reads of /proc see it");
        child.wait().unwrap();
        assert_eq!(look_at((pid, 0)), Look::Gone);
        assert!(!pid_exists(pid));
        assert_eq!(sweep_pass(&[(pid, 0), (me, start)], &[(me, start + 1)]), BTreeSet::from([(pid, 0), (me, start + 1)]));
    }

    /// The reads of /proc/PID/stat per pass are bounded, and go round every swept leader
    /// in turn; a leader with a pidfd is never among them.
    #[tokio::test]
    async fn each_pass_verifies_at_most_its_share_in_turn() {
        let mut watches = Watches {
            by_leader: BTreeMap::new(),
            leader_of: HashMap::new(),
            held: 1,
            budget: 1,
            verify_per_pass: 2,
            promote_per_pass: PROMOTE_PER_PASS,
            verified_up_to: None,
        };
        let held = tokio::spawn(std::future::pending::<()>()).abort_handle();
        for pid in 1..=6 {
            let pidfd_task = (pid == 3).then(|| held.clone());
            watches.by_leader.insert((pid, 7), Watch { ids: BTreeSet::from([u64::from(pid)]), pidfd_task });
        }
        let passes: Vec<(Vec<Leader>, Vec<Leader>)> = (0..4).map(|_| plan(&mut watches)).collect();
        let swept = vec![(1, 7), (2, 7), (4, 7), (5, 7), (6, 7)];
        assert!(passes.iter().all(|(s, _)| *s == swept), "every swept leader's pid each pass");
        let verified: Vec<Vec<Leader>> = passes.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            verified,
            vec![vec![(1, 7), (2, 7)], vec![(4, 7), (5, 7)], vec![(6, 7), (1, 7)], vec![(2, 7), (4, 7)]],
            "two a pass, in turn, round again"
        );
        held.abort();
    }

    /// A leader of many sessions dies: its sessions are ended in batches, and other work
    /// (here a probe task, in vigild logins and signals) runs between the batches.
    #[tokio::test]
    async fn the_sessions_of_a_dead_leader_are_ended_in_batches_other_work_between() {
        const SESSIONS: usize = 4 * YIELD_EVERY;
        let core = crate::sessions::manager::manager_for_tests();
        core.add_hooks(LeaderWatch::new(&core));
        let mut leader = std::process::Command::new("sleep").arg("600").spawn().unwrap();
        let pid = leader.id();
        for _ in 0..SESSIONS {
            session_led_by(&core, pid).await;
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

    /// The budget frees all at once (a storm ended the watched leaders): each pass gives
    /// at most its share of pidfds, the budget's room never exceeded.
    #[tokio::test]
    async fn each_pass_gives_at_most_its_share_of_pidfds_within_the_budget() {
        let me = std::process::id();
        let watches = Watches {
            by_leader: (1..=5).map(|n| ((me, n), Watch { ids: BTreeSet::from([n]), pidfd_task: None })).collect(),
            leader_of: HashMap::new(),
            held: 0,
            budget: 3,
            verify_per_pass: VERIFY_PER_PASS,
            promote_per_pass: 2,
            verified_up_to: None,
        };
        let core = crate::sessions::manager::manager_for_tests();
        let shared = Arc::new(Shared { core: Arc::downgrade(&core), watches: Mutex::new(watches) });
        let held = |shared: &Shared| {
            let watches = shared.watches();
            (watches.held, watches.by_leader.values().filter(|w| w.pidfd_task.is_some()).count())
        };
        promote(&shared, &mut shared.watches());
        assert_eq!(held(&shared), (2, 2), "two a pass");
        promote(&shared, &mut shared.watches());
        assert_eq!(held(&shared), (3, 3), "then the budget's room: one");
        promote(&shared, &mut shared.watches());
        assert_eq!(held(&shared), (3, 3), "the budget is full");
    }
}
