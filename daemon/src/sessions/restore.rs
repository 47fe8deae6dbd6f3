//! Sessions across a restart or a crash of vigild. Every session is on disk under
//! `<state-dir>/sessions` from the moment it is registered (`store.rs`); at start, each
//! saved session whose leader still runs (same pid and start time) is supervised again,
//! under the running configuration, with a `session_restored` record and no second
//! `session_open`. The others ended while vigild was away: `session_end
//! reason=leader_gone`, unless processes of the login's own audit session run on: then
//! the session is taken over under its id (`session_restored leader_gone=yes`) and
//! ended with them at once, as a leader's death is while vigild runs. Proofs of identity are not kept: after a restart the next sudo
//! asks the password (the safe side). A saved tty is kept only while a process of the
//! session still has it: a pty closed while vigild was away may be another login's now.

use std::sync::Arc;

use vigil_config::Config;
use vigil_protocol::audit::Record;
use vigil_protocol::events::{EndReason, Event};

use crate::audit::records::session_record;
use crate::sessions::manager::Manager;
use crate::sessions::ownership;
use crate::sessions::session::{SavedSession, Session};
use crate::sessions::tty_claims;
use crate::sys::clock;
use crate::sys::procfs::{self, Stat};
use crate::sys::ttys::TtyNr;

impl Manager {
    /// Registers a session saved by an earlier vigild whose leader still runs. Its
    /// times are moved by any step of the wall clock since its file was written
    /// (`saved_offset`: the clock offset the file's times are in; `sys/clock.rs`).
    /// `released`: saved ttys the session no longer held, named in its record.
    /// `leader_gone`: the leader exited while vigild was away but processes of the login
    /// were left; the session's record says so, and the leader watch ends it at once
    /// (`leaders.rs`), as it would have had vigild run.
    pub fn restore_session(&self, mut session: Session, saved_offset: i64, released: &[TtyNr], leader_gone: bool) {
        let (id, leader) = (session.id, session.who.leader_pid);
        // The client's port is not in the file: the leader still holds the connection.
        if !session.who.rhost.is_empty() && session.who.rport.is_none() {
            session.who.rport = procfs::remote_port(leader);
        }
        let (restored, shift) = {
            let mut registry = self.registry();
            let shift = Some(registry.clock_offset() - saved_offset).filter(|d| d.abs() >= clock::MIN_STEP_USEC);
            if let Some(delta) = shift {
                session.shift_clock(delta);
            }
            registry.insert(session);
            (registry.get(id).cloned(), shift)
        };
        let Some(restored) = restored else { return };
        self.save(Some(restored.saved()));
        self.audit.write(
            session_record(Event::SessionRestored, &restored)
                .number_opt("clock_step_ms", shift.map(|d| d / 1000))
                .text_opt("ttys_released", tty_claims::names(released))
                .text_opt("leader_gone", leader_gone.then_some("yes")),
        );
        for hooks in self.hooks() {
            hooks.session_added(id, leader);
        }
    }
}

/// What a start found: (restored, ended meanwhile, unreadable files).
pub fn restore(core: &Arc<Manager>) -> (usize, usize, usize) {
    let store = core.store();
    let (saved, unreadable) = store.load_all();
    for bad in &unreadable {
        core.audit.write(
            Record::new(Event::SessionFileUnreadable)
                .text("path", bad.path.as_os_str().as_encoded_bytes())
                .text("error", bad.why.to_string()),
        );
    }
    let config = core.config();
    let (mut restored, mut gone) = (0, 0);
    // One listing of /proc for every restored session's ttys, taken when the first needs it.
    let mut listing = None;
    for mut saved in by_deadline(saved, &config) {
        let saved_offset = saved.clock_offset_usec;
        let leader = &saved.who;
        let leader_lives = leader.leader_start != 0 && procfs::stat(leader.leader_pid).map(|s| s.start_time) == Some(leader.leader_start);
        if leader_lives || has_survivors(&saved, &mut listing) {
            let (held, released) = release_lost_ttys(&mut saved, &mut listing);
            let id = saved.id;
            core.restore_session(Session::from_saved(saved, &config), saved_offset, &released, !leader_lives);
            for (tty, holder) in held {
                core.note_tty_holder(id, tty, holder);
            }
            // A lock taken just before a SIGKILL, its sessions not all ended yet.
            if let Some(session) = core.session(id) {
                core.end_if_locked(&session);
            }
            restored += 1;
        } else {
            let session = Session::from_saved(saved, &config);
            let _ = store.remove(session.id);
            core.inhibitor_ended_with(&session);
            core.metrics.ended(EndReason::LeaderGone);
            core.audit.write(
                session_record(Event::SessionEnd, &session).text("reason", EndReason::LeaderGone).text("while", "vigild was stopped"),
            );
            gone += 1;
        }
    }
    (restored, gone, unreadable.len())
}

/// The saved sessions in the order of their deadlines (those without one last): each is
/// looked at first a moment after it is restored, in that order, so that sessions whose
/// deadlines passed while vigild was away are ended in the order they fell due.
fn by_deadline(saved: Vec<SavedSession>, config: &Config) -> Vec<SavedSession> {
    let mut keyed: Vec<(u64, SavedSession)> = saved
        .into_iter()
        .map(|s| {
            let deadline = Session::from_saved(s.clone(), config).deadline();
            (if deadline == 0 { u64::MAX } else { deadline }, s)
        })
        .collect();
    keyed.sort_by_key(|(deadline, s)| (*deadline, s.id));
    keyed.into_iter().map(|(_, s)| s).collect()
}

/// Whether processes of a session whose leader is gone still run: those of the
/// login's own audit session (set by pam_loginuid, kept by every process forked in the
/// login). Such a session is taken over under its id and ended as a leader's death is,
/// its leftovers with it, rather than recorded ended while they run on (and are adopted
/// by the sweep under a new id). Without an audit session of its own nothing outside the
/// dead leader's tree can be told to be the session's. When /proc cannot be listed:
/// none are assumed. Zombies are not survivors.
fn has_survivors(saved: &SavedSession, listing: &mut Option<std::io::Result<Vec<Stat>>>) -> bool {
    let ses = saved.who.audit_session_id;
    if !saved.who.owns_audit_session || ses == procfs::NO_AUDIT_SESSION {
        return false;
    }
    let Ok(stats) = listing.get_or_insert_with(procfs::all_stats) else { return false };
    // A zombie keeps its audit session but is nothing left running.
    stats.iter().any(|s| procfs::audit_session_id(s.pid) == ses && procfs::running_stat(s.pid).is_some())
}

/// Drops the saved ttys the session no longer holds (closed while vigild was away, their
/// numbers perhaps another login's by now) and returns (each tty kept with the process
/// holding it, the ttys dropped). When /proc cannot be listed they are kept: the
/// session's first check looks at them again.
type HeldAndLost = (Vec<(TtyNr, u32)>, Vec<TtyNr>);

fn release_lost_ttys(saved: &mut SavedSession, listing: &mut Option<std::io::Result<Vec<Stat>>>) -> HeldAndLost {
    if saved.ttys.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let Ok(stats) = listing.get_or_insert_with(procfs::all_stats) else { return (Vec::new(), Vec::new()) };
    let scope = saved.who.scope(saved.ttys.clone());
    let (mut held, mut lost) = (Vec::new(), Vec::new());
    for &tty in &saved.ttys {
        match ownership::holder(&scope, tty, &ownership::on_tty(stats, tty)) {
            Some(holder) => held.push((tty, holder)),
            None => lost.push(tty),
        }
    }
    saved.ttys = held.iter().map(|&(tty, _)| tty).collect();
    (held, lost)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::sessions::manager::{manager_for_tests, policy_for_tests};
    use crate::sessions::registry::tests::identity;
    use crate::sessions::session::Session;
    use crate::sys::procfs;

    const S: u64 = 1_000_000;

    fn saved_session(id: u64) -> Session {
        let mut session = Session::new(id, identity(4000 + id as u32, 70 + id as u32), Arc::new(policy_for_tests()), 2000 * S);
        session.who.started_usec = 1900 * S;
        session
    }

    #[test]
    fn a_session_saved_before_a_clock_step_is_taken_over_in_real_time() {
        let core = manager_for_tests();
        let running = core.registry().clock_offset();
        // Written by a vigild that ran while the clock was an hour behind.
        let hour = 3600 * S as i64;
        core.restore_session(saved_session(1), running - hour, &[], false);
        let restored = core.session(1).unwrap();
        assert_eq!((restored.who.started_usec, restored.last_activity_usec), (1900 * S + 3600 * S, 2000 * S + 3600 * S));
        assert_eq!(restored.clock_offset_usec, running);
        // A file in the running clock: as it is.
        core.restore_session(saved_session(2), running, &[], false);
        let restored = core.session(2).unwrap();
        assert_eq!((restored.who.started_usec, restored.last_activity_usec), (1900 * S, 2000 * S));
    }

    /// A login's process left behind is a survivor while it runs; killed and left
    /// unreaped (a zombie) it is not.
    #[test]
    fn a_zombie_of_the_login_is_no_survivor() {
        let mut child = crate::sessions::adopt::tests::login_process();
        let (pid, ses) = (child.id(), procfs::audit_session_id(child.id()));
        let mut session = saved_session(3);
        session.who.audit_session_id = ses;
        session.who.owns_audit_session = true;
        assert!(super::has_survivors(&session.saved(), &mut None), "the running process survives its leader");
        child.kill().unwrap();
        for _ in 0..200 {
            if procfs::running_stat(pid).is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(procfs::stat(pid).is_some(), "a zombie, in /proc until reaped");
        assert!(!super::has_survivors(&session.saved(), &mut None), "a zombie is no survivor");
        child.wait().unwrap();
    }
}
