//! Activity: what the supervisor makes of tty events (input read or not, output, new
//! ptys to claim) and how a check measures a session's last activity (inotify, tty
//! times, process I/O), with the times that cannot be input set aside.

use std::collections::HashMap;

use vigil_protocol::events::{ActivitySource, SuspectReason};

use crate::sessions::manager::{TtyActivity, now_usec};
use crate::sessions::ownership;
use crate::sessions::session::{Evidence, Session};
use crate::sessions::tty_claims::Claim;
use crate::supervise::supervisor::{SUSPECT_REPORT_USEC, Task};
use crate::supervise::timers::Entry;
use crate::supervise::tty_input::{self, Outcome};
use crate::sys::clock;
use crate::sys::procfs;
use crate::sys::ttys::{self, TtyEvent, TtyNr};

/// When to look for the owner of a new pty: its first process may take a moment to
/// make it its controlling tty.
pub(super) const PTS_SCAN_DELAYS_MS: [u64; 5] = [20, 100, 400, 1500, 5000];
/// A tty time later than this past "now", or past the last input inotify saw, is not
/// activity (clock grain and event delivery stay within it).
pub(super) const TIME_SLACK_USEC: u64 = 1_000_000;

impl Task {
    pub(super) fn on_tty_events(&mut self, events: Vec<TtyEvent>) {
        // `now` is stored as activity: in the registry's clock, so a step the watch has
        // not passed on yet is followed first (else a key pressed just after a step
        // would be moved by the step once more, and keep an idle session for its length).
        let offset = self.core.clock_changed();
        self.follow_clock(offset);
        let now = now_usec();
        for event in events {
            let woken = match event {
                // An access is input only once a look at the tty's foreground says it
                // was read.
                TtyEvent::Input(tty) => {
                    if self.core.tty_claimed(tty)
                        && let Some(when) = self.inputs.access(tty, now)
                    {
                        self.timers.set(Entry::InputCheck(tty), when);
                    }
                    None
                }
                TtyEvent::Output(tty) => {
                    self.inputs.output(tty, now);
                    self.core.note_tty_activity(tty, TtyActivity::Output, now)
                }
                TtyEvent::Gone(tty) => {
                    self.inputs.forget(tty);
                    self.timers.remove(Entry::InputCheck(tty));
                    self.core.drop_tty(tty);
                    None
                }
                TtyEvent::NewPts(n) => {
                    self.timers.set(Entry::PtsScan { n, attempt: 0 }, now + PTS_SCAN_DELAYS_MS[0] * 1000);
                    None
                }
            };
            if let Some((id, true)) = woken {
                self.timers.set(Entry::Session(id), now);
            }
        }
    }

    /// Looks at a tty's foreground for the accesses since the last look: input when a
    /// process of it read (the session's activity, with what read it), else not input
    /// (`activity_suspect reason=not_a_read`, at most once a minute per session). Input
    /// at a fixed period with no echo is noted (`reason=periodic`).
    pub(super) fn check_input(&mut self, tty: TtyNr) {
        // The registry's lock is let go before the session is copied (it is not reentrant).
        let owner = self.core.registry().owner_of_tty(tty);
        let Some(session) = owner.and_then(|id| self.core.session(id)) else {
            self.inputs.forget(tty);
            return;
        };
        let look = tty_input::look(&self.look_roots(&session, tty), tty, self.inputs.seen(tty));
        let Some(outcome) = self.inputs.judge(tty, look, now_usec()) else { return };
        let (at, evidence, periodic) = match outcome {
            Outcome::Read { at, reader, periodic } => (at, Evidence::new(ActivitySource::TtyRead, tty, reader), periodic),
            Outcome::Unverified { at } => (at, Evidence::new(ActivitySource::TtyAccess, tty, String::new()), None),
            Outcome::Ignored { at, events, foreground, report } => {
                if let Some((session, accesses)) = self.core.note_ignored_access(tty, at, events, report, SUSPECT_REPORT_USEC) {
                    self.core.activity_suspect(&session, |record| {
                        record
                            .text("source", "tty_access")
                            .text("suspect_tty", ttys::short_name(tty))
                            .text("reason", SuspectReason::NotARead)
                            .text("foreground", &foreground)
                            .number("accesses", accesses)
                    });
                }
                return;
            }
        };
        let reader = evidence.reader.clone();
        if let Some((id, true)) = self.core.note_tty_activity(tty, TtyActivity::Input(evidence), at) {
            self.timers.set(Entry::Session(id), now_usec());
        }
        if let Some(period) = periodic
            && at.saturating_sub(session.activity.periodic_reported_usec) >= SUSPECT_REPORT_USEC
        {
            self.core.update_session(session.id, |s| s.activity.periodic_reported_usec = at);
            self.core.activity_suspect(&session, |record| {
                record
                    .text("source", "tty_read")
                    .text("suspect_tty", ttys::short_name(tty))
                    .text("reason", SuspectReason::Periodic)
                    .number("period_ms", period / 1000)
                    .text("reader", &reader)
            });
        }
    }

    /// Where a tty's foreground is looked for: the POSIX session that held the tty when
    /// the session claimed it (its shell), then the session's leader.
    pub(super) fn look_roots(&self, session: &Session, tty: TtyNr) -> Vec<u32> {
        let holders = self.core.tty_holders.lock().unwrap_or_else(|p| p.into_inner());
        let holder = holders.get(&tty).filter(|(id, _)| *id == session.id).map(|&(_, (sid, _))| sid);
        drop(holders);
        holder.into_iter().chain(std::iter::once(session.who.leader_pid)).collect()
    }

    /// Takes the first look at each of the session's ttys that has none: what their
    /// first access is compared with.
    pub(super) fn first_looks(&mut self, session: &Session) {
        for &tty in session.ttys() {
            if self.inputs.wants_first_look(tty)
                && let Ok(look) = tty_input::look(&self.look_roots(session, tty), tty, None)
            {
                self.inputs.first_look(tty, look, now_usec());
            }
        }
    }

    /// Finds which session each new pty belongs to: its processes' ancestry leads to a
    /// session leader. A pty is its user's (sshd and login chown it before the shell
    /// starts), so one owned by a user without sessions is nobody's here and costs no
    /// /proc walk (a burst of 100 sshpass clients makes 100 ptys of the caller's); one
    /// still owned by root may be about to be chowned and is looked at again later. The
    /// ptys due together share one walk.
    pub(super) fn scan_new_ptys(&mut self, due: &[(u32, usize)]) {
        let mut candidates = Vec::new();
        for &(n, attempt) in due {
            let owner = std::fs::metadata(format!("/dev/pts/{n}")).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
            match owner {
                // Gone already.
                Err(_) => {}
                Ok(uid) if self.core.registry().has_sessions_of(uid) => candidates.push((n, attempt)),
                Ok(0) => self.retry_pts(n, attempt),
                Ok(_) => {}
            }
        }
        if candidates.is_empty() {
            return;
        }
        // /proc unreadable (out of fds) is no answer: the next attempt looks again.
        let stats = procfs::all_stats().unwrap_or_default();
        let parents: HashMap<u32, u32> = stats.iter().map(|s| (s.pid, s.ppid)).collect();
        for (n, attempt) in candidates {
            let tty = ttys::pts_tty_nr(n);
            let owner = {
                let registry = self.core.registry();
                stats.iter().filter(|s| s.tty_nr == tty).find_map(|s| registry.enclosing_session(s.pid, |pid| parents.get(&pid).copied()))
            };
            match owner {
                Some(id) => {
                    if self.adopt(id, tty, &ownership::on_tty(&stats, tty)) {
                        self.check_session(id);
                    }
                }
                // Not (yet) a session's pty: a local tmux, a container console, or a
                // pty whose first process has not made it its controlling tty yet.
                None => self.retry_pts(n, attempt),
            }
        }
    }

    pub(super) fn retry_pts(&mut self, n: u32, attempt: usize) {
        if attempt + 1 < PTS_SCAN_DELAYS_MS.len() {
            let next = attempt + 1;
            self.timers.set(Entry::PtsScan { n, attempt: next }, now_usec() + PTS_SCAN_DELAYS_MS[next] * 1000);
        }
    }

    /// Watches a session's tty; the first watch of the session starts the time from
    /// which every input is seen as an event (tty times after it must match one). A
    /// watch that cannot be set brings no IN_IGNORED when the tty goes: the tty is
    /// looked at now, and given up when the session no longer holds it.
    pub(super) fn watch(&mut self, id: u64, tty: TtyNr) {
        let watched = self.watcher.watch(tty);
        if watched || !self.watching_since.contains_key(&id) {
            self.watching_since.entry(id).or_insert_with(now_usec);
        }
        if watched {
            return;
        }
        let held = match self.core.session(id) {
            Some(session) if ownership::device_exists(tty) => match procfs::all_stats() {
                Ok(stats) => ownership::holds_tty(&session.scope(), tty, &ownership::on_tty(&stats, tty)),
                // Nothing is concluded from a failed read; the atime stays the evidence.
                Err(_) => true,
            },
            _ => false,
        };
        if !held {
            self.core.release_tty(id, tty);
        }
    }

    /// Claims a tty for a session (`tty_claims.rs`) and watches it. The watch is set
    /// before the claim is checked, so that a pty closed at any point is either refused
    /// or reported gone. `on_tty`: the pids a listing showed on the tty.
    pub(super) fn adopt(&mut self, id: u64, tty: TtyNr, on_tty: &[u32]) -> bool {
        if self.core.session(id).is_some_and(|s| s.ttys().contains(&tty)) {
            return false;
        }
        let watched = self.watcher.watch(tty);
        match self.core.claim_tty(id, tty, on_tty) {
            Claim::Already => false,
            Claim::Refused => {
                if !self.core.tty_claimed(tty) {
                    self.watcher.unwatch(tty);
                }
                false
            }
            Claim::Claimed | Claim::TakenOver { .. } => {
                if watched || !self.watching_since.contains_key(&id) {
                    self.watching_since.entry(id).or_insert_with(now_usec);
                }
                true
            }
        }
    }

    /// Gives up the session's ttys that no process of it has any more (`tree`: its
    /// process tree, read just now), and their watches.
    pub(super) fn release_lost_ttys(&mut self, session: &Session, tree: &[procfs::Stat]) {
        let Ok(lost) = ownership::lost_ttys(&session.scope(), tree) else { return };
        for tty in lost {
            if self.core.release_tty(session.id, tty) && !self.core.tty_claimed(tty) {
                self.watcher.unwatch(tty);
            }
        }
    }

    /// Follows the registry's clock `offset` after a step of the wall clock: the
    /// deadlines and watch times move with it, and the ttys' times written before it are
    /// set aside. Idempotent: the step's command and a check that found the step both
    /// call it.
    pub(super) fn follow_clock(&mut self, offset: i64) {
        let delta = offset - self.clock_offset;
        if delta == 0 {
            return;
        }
        self.clock_offset = offset;
        self.timers.shift(delta);
        self.inputs.shift_clock(delta);
        for since in self.watching_since.values_mut() {
            *since = clock::shift(*since, delta);
        }
        // Listed under the lock, looked at after it (no I/O under the lock).
        let ttys: Vec<TtyNr> = self.core.registry().values().flat_map(|s| s.ttys().iter().copied()).collect();
        self.stale_tty_times = ttys.into_iter().filter_map(|tty| Some((tty, ttys::device_times(tty)?))).collect();
    }
}

/// What a check saw of a session's activity.
pub(super) struct Seen {
    pub(super) last: u64,
    /// What measured `last`, when this check moved it.
    pub(super) by: Option<Evidence>,
    pub(super) io_total: Option<u64>,
    /// A tty time that cannot be input (in the future, or ahead of every input event
    /// inotify delivered): ignored, and recorded.
    pub(super) suspect: Option<(TtyNr, SuspectReason)>,
}

impl Task {
    /// The session's last activity as seen now (`measure`); `None` when its processes'
    /// counters could not be read.
    /// `io_ahead`: the tree's I/O counters when read ahead with it (`Readings`).
    pub(super) fn measure_activity(
        &mut self,
        session: &Session,
        tree: &[u32],
        now: u64,
        io_ahead: Option<std::io::Result<u64>>,
    ) -> Option<Seen> {
        let watching_since = self.watching_since.get(&session.id).copied();
        measure(session, tree, now, watching_since, &mut self.stale_tty_times, io_ahead)
    }
}

/// The session's last activity as seen now: inotify's time (already in the session),
/// the ttys' atimes (and mtimes where output counts) as a fallback, or, without a
/// tty, a change in its processes' I/O counters since the last sample.
///
/// A tty's times are set by its own user for free (`touch -a -d 2099-01-01`): a time
/// in the future, or later than the last input inotify saw once it watches the tty, is
/// not activity. What remains forgeable is real: a user who types, or reads from their
/// tty, is active.
fn measure(
    session: &Session,
    tree: &[u32],
    now: u64,
    watching_since: Option<u64>,
    stale_tty_times: &mut HashMap<TtyNr, (u64, u64)>,
    io_ahead: Option<std::io::Result<u64>>,
) -> Option<Seen> {
    let mut last = session.last_activity_usec;
    let mut by = None;
    let mut suspect = None;
    if !session.ttys().is_empty() {
        let input_seen = watching_since.map(|since| since.max(session.activity.last_input_event_usec));
        let ignored = session.activity.last_ignored_access_usec;
        let mut raise = |at: u64, tty: TtyNr| {
            if at > last {
                last = at;
                by = Some(Evidence::new(ActivitySource::TtyTime, tty, String::new()));
            }
        };
        for &tty in session.ttys() {
            let Some((atime, mtime)) = ttys::device_times(tty) else { continue };
            let (atime_fresh, mtime_fresh) = fresh_since_clock_step(stale_tty_times, tty, (atime, mtime));
            if atime_fresh {
                match credible(atime, now, input_seen, ignored) {
                    Ok(at) => raise(at, tty),
                    // That access was looked at, and recorded, when it came.
                    Err(SuspectReason::NotARead) => {}
                    Err(reason) => suspect = Some((tty, reason)),
                }
            }
            // vigild's own warning moves mtime too: only output well after it counts.
            let own = session.activity.own_output_until;
            if mtime_fresh && session.policy.output_is_activity && mtime > own + 1_000_000 {
                match credible(mtime, now, None, 0) {
                    Ok(at) => raise(at, tty),
                    Err(reason) => suspect = Some((tty, reason)),
                }
            }
        }
        return Some(Seen { last, by, io_total: None, suspect });
    }
    // Counters that could not be read are no sample: `None`, and the check is retried.
    let total = io_ahead.unwrap_or_else(|| procfs::io_total(tree)).ok()?;
    // A change since the last sample is activity now. The first sample has nothing to
    // compare with, and comes FIRST_CHECK_DELAY_USEC after the open: the session's I/O
    // before it (starting its command) also counts as now, else an idle clock started
    // at the open would end the session before its timeout has passed since that I/O.
    if session.activity.io_total != Some(total) && now > last {
        last = now;
        by = Some(Evidence::new(ActivitySource::ProcessIo, 0, String::new()));
    }
    Some(Seen { last, by, io_total: Some(total), suspect })
}

/// Whether a tty's atime and mtime were written after the last step of the wall clock:
/// each is not the one set aside at the step (the entry goes once both moved; the two
/// move apart, as when vigild's warning writes to a terminal nobody types on).
fn fresh_since_clock_step(stale_tty_times: &mut HashMap<TtyNr, (u64, u64)>, tty: TtyNr, (atime, mtime): (u64, u64)) -> (bool, bool) {
    let Some(&(stale_atime, stale_mtime)) = stale_tty_times.get(&tty) else { return (true, true) };
    let fresh = (atime != stale_atime, mtime != stale_mtime);
    if fresh == (true, true) {
        stale_tty_times.remove(&tty);
    }
    fresh
}

/// Whether a tty time can be activity: not in the future, and, once inotify watches the
/// tty (`input_seen`: the later of the watch's start and the last input read), not
/// later than what it saw. A time up to the last access found not to be a read
/// (`ignored`) is that access.
fn credible(time: u64, now: u64, input_seen: Option<u64>, ignored: u64) -> Result<u64, SuspectReason> {
    if time > now + TIME_SLACK_USEC {
        return Err(SuspectReason::Future);
    }
    match input_seen {
        Some(seen) if time > seen + TIME_SLACK_USEC && time <= ignored + TIME_SLACK_USEC => Err(SuspectReason::NotARead),
        Some(seen) if time > seen + TIME_SLACK_USEC => Err(SuspectReason::AheadOfInput),
        _ => Ok(time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn tty_times_from_before_a_clock_step_are_set_aside_until_the_tty_is_used() {
        let mut stale = HashMap::from([(34816, (900 * S, 800 * S))]);
        // Unchanged since the step: neither activity nor suspect.
        assert_eq!(fresh_since_clock_step(&mut stale, 34816, (900 * S, 800 * S)), (false, false));
        assert_eq!(fresh_since_clock_step(&mut stale, 34816, (900 * S, 800 * S)), (false, false));
        // Another tty, never set aside.
        assert_eq!(fresh_since_clock_step(&mut stale, 34817, (900 * S, 800 * S)), (true, true));
        // vigild's warning written (mtime moves), nobody typed: the atime stays aside.
        assert_eq!(fresh_since_clock_step(&mut stale, 34816, (900 * S, 130 * S)), (false, true));
        // Typed on after the step: both count again, for good.
        assert_eq!(fresh_since_clock_step(&mut stale, 34816, (140 * S, 130 * S)), (true, true));
        assert!(stale.is_empty());
        assert_eq!(fresh_since_clock_step(&mut stale, 34816, (900 * S, 800 * S)), (true, true));
    }

    #[test]
    fn tty_times_that_cannot_be_input_are_not_activity() {
        // In the future: never, watched or not.
        assert_eq!(credible(4_000_000_000 * S, 100 * S, None, 0), Err(SuspectReason::Future));
        // Unwatched (inotify failed): the atime is all there is.
        assert_eq!(credible(90 * S, 100 * S, None, 0), Ok(90 * S));
        // Watched since 50 s with the last input event at 70 s: a later atime was set,
        // not read.
        assert_eq!(credible(90 * S, 100 * S, Some(70 * S), 0), Err(SuspectReason::AheadOfInput));
        assert_eq!(credible(70 * S + S / 2, 100 * S, Some(70 * S), 0), Ok(70 * S + S / 2));
        // Before the watch began (a restored session): believed.
        assert_eq!(credible(40 * S, 100 * S, Some(50 * S), 0), Ok(40 * S));
        // Set by an access that was looked at and found not to be a read (`touch -a`):
        // that access, recorded when it came.
        assert_eq!(credible(90 * S, 100 * S, Some(70 * S), 90 * S), Err(SuspectReason::NotARead));
        assert_eq!(credible(95 * S, 100 * S, Some(70 * S), 90 * S), Err(SuspectReason::AheadOfInput));
        assert_eq!(credible(4_000_000_000 * S, 100 * S, Some(70 * S), 4_000_000_000 * S), Err(SuspectReason::Future));
    }
}
