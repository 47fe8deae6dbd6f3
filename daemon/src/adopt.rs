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
//! way), and the services that are not logins (cron jobs, `systemd --user` managers).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::manager::{Manager, Orphan};
use crate::procfs::{self, NO_AUDIT_SESSION, Stat};
use crate::ttys;

/// How often /proc is swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Leaders whose command is one of these are not login sessions.
const NOT_LOGINS: [&str; 4] = ["cron", "CRON", "atd", "systemd"];

/// Which logins the sweep may adopt.
#[derive(Debug, Clone)]
pub enum Scope {
    /// `--no-adopt`.
    Off,
    All,
    /// `--adopt-users`: only these users' logins (tests, and trying adoption out).
    Users(HashSet<String>),
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
        loop {
            // NSS lookups and the /proc walk run off the async thread.
            let (scope, sweeper, previous) = (scope.clone(), core.clone(), std::mem::take(&mut seen_before));
            let swept = tokio::task::spawn_blocking(move || orphans(&sweeper, own, &scope, &previous)).await;
            if let Ok((found, unheld)) = swept {
                seen_before = unheld;
                for orphan in found {
                    core.adopt_session(orphan);
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
    let mut found = Vec::new();
    for &ses in unheld.iter().filter(|ses| seen_before.contains(ses)) {
        let stats: Vec<Stat> = procfs::stats_of(&by_ses[&ses]);
        let Some(leader) = topmost(&stats) else { continue };
        let Some(orphan) = describe(ses, leader, &stats) else { continue };
        if NOT_LOGINS.contains(&orphan.service.as_str()) {
            continue;
        }
        if let Scope::Users(users) = scope {
            if !users.contains(&orphan.user) {
                continue;
            }
        }
        found.push(orphan);
    }
    (found, unheld.into_iter().collect())
}

/// The process of the audit session whose parent is outside it (the oldest, if
/// several are).
fn topmost(stats: &[Stat]) -> Option<Stat> {
    let members: HashSet<u32> = stats.iter().map(|s| s.pid).collect();
    stats.iter().filter(|s| !members.contains(&s.ppid)).min_by_key(|s| (s.start_time, s.pid)).copied()
}

fn describe(ses: u32, leader: Stat, stats: &[Stat]) -> Option<Orphan> {
    let uid = procfs::login_uid(leader.pid)?;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    let account = crate::users::lookup(&user.name)?;
    let pids: Vec<u32> = stats.iter().map(|s| s.pid).collect();
    Some(Orphan {
        audit_session_id: ses,
        leader_pid: leader.pid,
        leader_start: leader.start_time,
        uid,
        user: user.name,
        groups: account.groups,
        service: procfs::comm(leader.pid).unwrap_or_default(),
        ttys: ttys::ttys_of(&pids, stats),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
