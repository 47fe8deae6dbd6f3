//! Adoption: login sessions nobody registered are found and supervised.
//!
//! A login whose PAM call never reached vigild (vigild stopped, restarting, or slower
//! than the module's deadline during a burst) would otherwise run unsupervised. Logins
//! made through pam_loginuid carry a kernel audit session id (/proc/PID/sessionid) and
//! a login uid; vigild sweeps /proc at start and every few seconds for audit sessions no
//! session stands for, and supervises each under the policy for its user and ttys. Its
//! leader is the topmost process of that audit session (sshd's session process, login).
//!
//! Not adopted: vigild's own audit session (vigild started from an admin's shell), a
//! login not yet seen unheld by the previous sweep (its registration may be on its
//! way), and the services that are not logins (cron and at jobs, `systemd --user`
//! managers), told by the program their topmost process runs (see `not_a_login`).
//! An adopted login's ttys are claimed like any session's (`tty_claims.rs`): only those
//! a process of it has, taken over from a session that claims them without holding them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use vigil_protocol::events::Event;

use crate::audit::records::session_record;
use crate::sessions::manager::{Manager, now_usec};
use crate::sessions::session::{Identity, Session};
use crate::sys::procfs::{self, NO_AUDIT_SESSION, Stat};
use crate::sys::ttys::{self, TtyNr};

/// How often /proc is swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Programs whose PAM sessions are not logins, by the path the kernel gives for the
/// topmost process's executable (Debian's; `/lib` is `/usr/lib` on a merged /usr).
/// `root_only`: the program opens its sessions in a root process of its own (cron and
/// atd fork one per job); a user's own copy of it is no such thing.
const NOT_LOGINS: [(&str, bool); 4] =
    [("/usr/sbin/cron", true), ("/usr/sbin/atd", true), ("/usr/lib/systemd/systemd", false), ("/lib/systemd/systemd", false)];

/// Which logins the sweep may adopt.
#[derive(Debug, Clone)]
pub enum Scope {
    /// `--no-adopt`.
    Off,
    All,
    /// `--adopt-users`: only these users' logins (tests, and trying adoption out).
    Users(HashSet<String>),
}

/// A new session found by the sweep rather than registered (see `adopt.rs`).
#[derive(Debug, Clone)]
pub struct Orphan {
    pub audit_session_id: u32,
    pub leader_pid: u32,
    pub leader_start: u64,
    pub uid: u32,
    pub user: String,
    pub groups: Vec<String>,
    pub service: String,
    pub ttys: Vec<TtyNr>,
    /// The processes of the audit session, as the sweep listed them.
    pub pids: Vec<u32>,
}

impl Manager {
    /// Supervises a login nobody registered. False when a session holds its audit
    /// session by now.
    pub fn adopt_session(&self, orphan: Orphan) -> bool {
        let config = self.config();
        let now = now_usec();
        let who = Identity {
            user: orphan.user,
            uid: orphan.uid,
            groups: orphan.groups,
            service: orphan.service,
            tty: String::new(),
            rhost: String::new(),
            ruser: String::new(),
            rport: None,
            leader_pid: orphan.leader_pid,
            leader_start: orphan.leader_start,
            audit_session_id: orphan.audit_session_id,
            owns_audit_session: true,
            inherited_tty: 0,
            parent: 0,
            started_usec: now,
            adopted: true,
        };
        // Resolved again for each tty claimed.
        let policy = who.policy_in(&config, false);
        let id = self.allocate_id();
        {
            let mut registry = self.registry();
            if registry.holds_audit_session(orphan.audit_session_id) {
                return false;
            }
            registry.insert(Session::new(id, who, policy, now));
        }
        // The sweep's listing is seconds old: each tty is claimed only if a process of the
        // login has it now.
        for &tty in &orphan.ttys {
            self.claim_tty_unannounced(id, tty, &orphan.pids);
        }
        let Some(session) = self.session(id) else { return false };
        self.save(Some(session.saved()));
        self.metrics.adopted.inc();
        self.audit.write(session_record(Event::SessionAdopted, &session).text("exempt", if session.policy.exempt { "yes" } else { "no" }));
        for hooks in self.hooks() {
            hooks.session_added(session.id, session.who.leader_pid);
        }
        self.end_if_locked(&session);
        true
    }

    /// Which of `candidates` (audit session ids) no session stands for.
    pub fn unheld_audit_sessions(&self, candidates: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let registry = self.registry();
        candidates.into_iter().filter(|&ses| !registry.holds_audit_session(ses)).collect()
    }
}

/// Starts the sweep: once now, then every `SWEEP_EVERY`.
pub fn spawn(core: Arc<Manager>, scope: Scope) {
    if matches!(scope, Scope::Off) {
        return;
    }
    tokio::spawn(async move {
        let own = procfs::audit_session_id(std::process::id());
        // Audit sessions seen unheld by the last sweep: adopted when seen again, so a
        // registration on its way (the module's deadline is 2 s by default) is not raced.
        let mut seen_before: HashSet<u32> = HashSet::new();
        let mut last_pid_swept = None;
        loop {
            // A login that could be used has forked since its audit session began (its
            // shell, sshd's user process): when nothing was forked since the last sweep
            // and no login waits for its second sighting, there is nothing new to find,
            // and an idle server pays one small read every 5 s. Read before the walk,
            // so that a fork during it brings the next sweep.
            let last_pid = procfs::last_pid();
            let nothing_new = last_pid.is_some() && last_pid == last_pid_swept && seen_before.is_empty();
            if !nothing_new {
                last_pid_swept = last_pid;
                // NSS lookups and the /proc walk run off the async thread.
                let (scope, sweeper, previous) = (scope.clone(), core.clone(), std::mem::take(&mut seen_before));
                let swept = tokio::task::spawn_blocking(move || orphans(&sweeper, own, &scope, &previous)).await;
                if let Ok((found, unheld)) = swept {
                    seen_before = unheld;
                    for orphan in found {
                        core.adopt_session(orphan);
                    }
                }
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    });
}

/// The audit sessions in /proc that no session holds and that the previous sweep saw
/// unheld too, each with its topmost process; and every unheld one, for the next sweep.
fn orphans(core: &Manager, own: u32, scope: &Scope, seen_before: &HashSet<u32>) -> (Vec<Orphan>, HashSet<u32>) {
    let Ok(pids) = procfs::all_pids() else { return (Vec::new(), seen_before.clone()) };
    let mut by_ses: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for pid in pids {
        let ses = procfs::audit_session_id(pid);
        if ses != NO_AUDIT_SESSION && ses != own {
            by_ses.entry(ses).or_default().push(pid);
        }
    }
    let unheld = core.unheld_audit_sessions(by_ses.keys().copied());
    // `--adopt-users` as uids, looked up once a sweep (a handful of names).
    let allowed: Option<HashSet<u32>> = match scope {
        Scope::Users(names) => Some(names.iter().filter_map(|n| vigil_host::users::by_name(n)).map(|u| u.uid.as_raw()).collect()),
        _ => None,
    };
    let mut found = Vec::new();
    for &ses in unheld.iter().filter(|ses| seen_before.contains(ses)) {
        let stats = running_stats(&by_ses[&ses]);
        let Some(leader) = topmost(&stats) else { continue };
        // The cheap tests first: NSS is asked only about logins that may be adopted.
        let Some(uid) = procfs::login_uid(leader.pid) else { continue };
        if allowed.as_ref().is_some_and(|uids| !uids.contains(&uid)) || not_a_login(leader.pid) {
            continue;
        }
        let comm = procfs::comm(leader.pid).unwrap_or_default();
        let Some(orphan) = describe(ses, leader, uid, comm, &stats) else { continue };
        found.push(orphan);
    }
    (found, unheld.into_iter().collect())
}

/// The stats of the pids that still run. A zombie (exited, not yet reaped by its
/// parent) keeps its audit session in /proc but is no login: an audit session made only
/// of zombies, under a parent that never reaps, would otherwise be adopted and ended at
/// once (`leader_gone`) at every sweep, a listing of /proc each time.
fn running_stats(pids: &[u32]) -> Vec<Stat> {
    pids.iter().filter_map(|&pid| procfs::running_stat(pid)).collect()
}

/// Whether the audit session led by `pid` is a service's rather than a login: decided by
/// what a user cannot set. The command name (`comm`) is not that: any process sets its
/// own with prctl(PR_SET_NAME). The executable's path is: a user's process shows
/// `/usr/sbin/cron` only by running that binary (a file only root can put there), and
/// cron and atd open their job's session in a root process, which a user's copy of
/// them is not. A user who runs the systemd binary gets a user service manager, which
/// is what the module also leaves alone (`systemd-user`).
fn not_a_login(pid: u32) -> bool {
    procfs::exe(pid).is_some_and(|exe| is_service_program(&exe, || procfs::real_uid(pid)))
}

/// Whether `exe` (a `/proc/PID/exe` target) run by `uid` is one of `NOT_LOGINS`.
fn is_service_program(exe: &str, uid: impl Fn() -> Option<u32>) -> bool {
    // A program replaced by an upgrade while it runs: still the one root installed.
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    NOT_LOGINS.iter().any(|&(path, root_only)| exe == path && (!root_only || uid() == Some(0)))
}

/// The process of the audit session whose parent is outside it (the oldest, if
/// several are).
fn topmost(stats: &[Stat]) -> Option<Stat> {
    let members: HashSet<u32> = stats.iter().map(|s| s.pid).collect();
    stats.iter().filter(|s| !members.contains(&s.ppid)).min_by_key(|s| (s.start_time, s.pid)).copied()
}

fn describe(ses: u32, leader: Stat, uid: u32, comm: String, stats: &[Stat]) -> Option<Orphan> {
    let user = vigil_host::users::by_uid(uid)?;
    let account = crate::sys::users::lookup(&user.name)?;
    let pids: Vec<u32> = stats.iter().map(|s| s.pid).collect();
    Some(Orphan {
        audit_session_id: ses,
        leader_pid: leader.pid,
        leader_start: leader.start_time,
        uid,
        user: user.name,
        groups: account.groups,
        service: comm,
        ttys: ttys::ttys_of(&pids, stats),
        pids,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use vigil_protocol::OpenRequest;

    use crate::rpc::caller::Caller;

    /// A process with an audit session of its own, as pam_loginuid gives a login.
    pub(crate) fn login_process() -> std::process::Child {
        let mut child = std::process::Command::new("sh").args(["-c", "echo 0 > /proc/self/loginuid && exec sleep 30"]).spawn().expect("sh");
        for _ in 0..200 {
            if procfs::audit_session_id(child.id()) != NO_AUDIT_SESSION && procfs::comm(child.id()).as_deref() == Some("sleep") {
                return child;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("no audit session for the child: this test needs root (CAP_AUDIT_CONTROL)");
    }

    #[tokio::test]
    async fn an_adopted_login_is_taken_over_by_its_late_registration() {
        let core = crate::sessions::manager::manager_for_tests();
        let mut child = login_process();
        let (pid, ses) = (child.id(), procfs::audit_session_id(child.id()));
        let leader = procfs::stat(pid).unwrap();
        let orphan = Orphan {
            audit_session_id: ses,
            leader_pid: pid,
            leader_start: leader.start_time,
            uid: 0,
            user: "root".into(),
            groups: vec![],
            service: "sleep".into(),
            ttys: vec![],
            pids: vec![pid],
        };
        assert_eq!(core.unheld_audit_sessions([ses, ses + 1]), vec![ses, ses + 1]);
        assert!(core.adopt_session(orphan.clone()));
        assert!(!core.adopt_session(orphan), "an audit session is adopted once");
        assert_eq!(core.unheld_audit_sessions([ses]), Vec::<u32>::new());
        let adopted = core.session_ids()[0];
        assert!(core.session(adopted).unwrap().who.adopted);
        // The module's call, late: it replaces the adopted session.
        let request = OpenRequest {
            user: "root".into(),
            service: "sshd".into(),
            tty: "ssh".into(),
            rhost: String::new(),
            ruser: String::new(),
            leader_pid: pid,
            audit_session_id: ses,
            truncated: vec![],
        };
        let id = core.open_session(Caller::new(0, pid), request).await.expect("registered");
        assert_eq!(core.session_ids(), vec![id]);
        let session = core.session(id).unwrap();
        assert!(!session.who.adopted && session.who.owns_audit_session);
        assert_eq!(core.registry().by_audit_session(ses), Some(id));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A login whose every process exited but was not reaped (its parent never waits)
    /// is no login to adopt; the same login running is.
    #[test]
    fn an_audit_session_of_zombies_is_not_adopted() {
        let core = crate::sessions::manager::manager_for_tests();
        let own = procfs::audit_session_id(std::process::id());
        let mut child = login_process();
        let (pid, ses) = (child.id(), procfs::audit_session_id(child.id()));
        let seen_before = HashSet::from([ses]);
        let (found, unheld) = orphans(&core, own, &Scope::All, &seen_before);
        assert!(unheld.contains(&ses) && found.iter().any(|o| o.audit_session_id == ses), "a running login is found");
        // Killed and left unreaped: a zombie with its audit session still in /proc.
        child.kill().unwrap();
        for _ in 0..200 {
            if procfs::stat_text(pid).is_some_and(|t| procfs::parse_stat_line(&t).is_some_and(|l| l.state == 'Z')) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(procfs::audit_session_id(pid), ses, "the zombie keeps its audit session");
        assert_eq!(procfs::stats_of(&[pid]).len(), 1, "and is in /proc");
        let (found, _) = orphans(&core, own, &Scope::All, &seen_before);
        assert!(found.iter().all(|o| o.audit_session_id != ses), "a zombie adopted: {found:?}");
        assert!(running_stats(&[pid]).is_empty());
        child.wait().unwrap();
    }

    /// A process that names itself `cron` (its comm, which any process may set) is a
    /// login all the same: only the program it runs, and who runs it, can say otherwise.
    #[test]
    fn a_process_named_cron_is_no_cron_job() {
        let dir = std::env::temp_dir().join(format!("vigil-adopt-comm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // exec through a link named `cron`: the kernel takes the comm from that name.
        let fake = dir.join("cron");
        let _ = std::fs::remove_file(&fake);
        std::os::unix::fs::symlink("/bin/sleep", &fake).unwrap();
        let mut child = std::process::Command::new(&fake).arg("30").spawn().unwrap();
        let pid = child.id();
        for _ in 0..200 {
            if procfs::comm(pid).as_deref() == Some("cron") {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(procfs::comm(pid).as_deref(), Some("cron"), "the comm a name-based rule would have skipped");
        assert!(!not_a_login(pid), "adopted: its executable is {:?}", procfs::exe(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!not_a_login(u32::MAX), "a process gone is no service");
        // The programs themselves: cron's and atd's job processes are root's; a user's own
        // copy of cron is a login's process.
        assert!(is_service_program("/usr/sbin/cron", || Some(0)));
        assert!(is_service_program("/usr/sbin/cron (deleted)", || Some(0)), "upgraded while it runs");
        assert!(!is_service_program("/usr/sbin/cron", || Some(1000)));
        assert!(is_service_program("/usr/sbin/atd", || Some(0)));
        assert!(is_service_program("/usr/lib/systemd/systemd", || Some(1000)), "a user's service manager");
        assert!(!is_service_program("/home/u/cron", || Some(0)) && !is_service_program("/usr/bin/sleep", || Some(0)));
    }

    #[test]
    fn the_leader_is_the_process_whose_parent_is_outside() {
        let s = |pid, ppid, start_time| Stat { pid, ppid, tty_nr: 0, start_time };
        // sshd (500, child of the listener 400) → shell 501 → job 502; a nohup'd 503
        // re-parented to PID 1 is also outside, but started later.
        let stats = [s(501, 500, 11), s(502, 501, 12), s(500, 400, 10), s(503, 1, 13)];
        assert_eq!(topmost(&stats).map(|l| l.pid), Some(500));
        assert_eq!(topmost(&[]), None);
    }
}
