//! The idle supervisor: one task that sleeps until the next deadline of any session,
//! reacts to tty events as they happen, warns, and ends sessions.
//!
//! No session is scanned on a period: a session costs a timer entry and, when its
//! deadline comes, one look at /proc. Keystrokes only move the session's
//! `last_activity` (a map lookup); the timer finds the new time when it fires and
//! sleeps again. Sessions without a tty have no event to wake vigild, so their
//! processes' I/O is sampled at a quarter of their timeout.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use vigil_config::IdleAction;
use vigil_protocol::events::{ActivitySource, Event, RevokeReason, SuspectReason};

use crate::clock;
use crate::idle::{self, Decision, IdleFacts, Limit};
use crate::inhibit;
use crate::manager::{Hooks, Manager, TtyActivity, now_usec};
use crate::ownership;
use crate::procfs;
use crate::records::{EndReason, activity_evidence, session_record};
use crate::registry::{Evidence, Session};
use crate::terminate::Targets;
use crate::tty_claims::Claim;
use crate::tty_input::{self, InputChecks, Outcome};
use crate::ttys::{self, TtyEvent, TtyNr, TtyWatcher};
use crate::warning;

/// The first look at a new session waits this long: a login's ttys appear after
/// pam_open_session returns (sshd creates the pty later; /dev/pts events catch it),
/// and a session that closes within it costs no /proc reads at all.
const FIRST_CHECK_DELAY_USEC: u64 = 1_000_000;
/// How long after vigild's own warning an output event is taken to be that warning.
const OWN_OUTPUT_WINDOW_USEC: u64 = 500_000;
/// When to look for the owner of a new pty: its first process may take a moment to
/// make it its controlling tty.
const PTS_SCAN_DELAYS_MS: [u64; 5] = [20, 100, 400, 1500, 5000];
/// When ending a session failed (vigild could not see or hold its processes), the
/// next try.
const TERMINATE_RETRY_USEC: u64 = 5_000_000;
/// When /proc could not be read (vigild out of fds), the check comes again after this.
const UNREADABLE_RETRY_USEC: u64 = 5_000_000;
/// A tty time later than this past "now", or past the last input inotify saw, is not
/// activity (clock grain and event delivery stay within it).
const TIME_SLACK_USEC: u64 = 1_000_000;
/// `activity_suspect` is recorded at most this often per session.
const SUSPECT_REPORT_USEC: u64 = 60_000_000;

enum Command {
    /// A new session: first look after FIRST_CHECK_DELAY_USEC.
    Added(u64),
    /// Look at a session now (its inhibitor changed).
    Check(u64),
    Forget(u64),
    CheckAll,
    /// The wall clock was stepped (the sessions' times moved already).
    ClockStepped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Entry {
    Session(u64),
    PtsScan {
        n: u32,
        attempt: usize,
    },
    /// Whether the accesses to a tty since the last look were reads (`tty_input.rs`).
    InputCheck(TtyNr),
}

/// The supervisor's handle, registered as core hooks.
pub struct Supervisor {
    tx: mpsc::UnboundedSender<Command>,
}

impl Hooks for Supervisor {
    fn session_added(&self, id: u64, _leader_pid: u32) {
        let _ = self.tx.send(Command::Added(id));
    }
    fn session_removed(&self, id: u64) {
        let _ = self.tx.send(Command::Forget(id));
    }
    fn policy_changed(&self) {
        let _ = self.tx.send(Command::CheckAll);
    }
    fn session_changed(&self, id: u64) {
        let _ = self.tx.send(Command::Check(id));
    }
    fn clock_stepped(&self) {
        let _ = self.tx.send(Command::ClockStepped);
    }
}

/// Starts the supervisor task.
pub fn spawn(core: Arc<Manager>) -> std::io::Result<Arc<Supervisor>> {
    let watcher = TtyWatcher::new()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let clock_offset = core.clock_offset();
    let task = Task {
        core,
        watcher,
        timers: Timers::default(),
        watching_since: HashMap::new(),
        clock_offset,
        stale_tty_times: HashMap::new(),
        inputs: InputChecks::default(),
    };
    tokio::spawn(task.run(rx));
    Ok(Arc::new(Supervisor { tx }))
}

/// Deadlines, earliest first; one entry per session or pending pty scan.
#[derive(Default)]
struct Timers {
    queue: BTreeSet<(u64, Entry)>,
    at: HashMap<Entry, u64>,
}

impl Timers {
    fn set(&mut self, entry: Entry, when: u64) {
        if let Some(old) = self.at.insert(entry, when) {
            self.queue.remove(&(old, entry));
        }
        self.queue.insert((when, entry));
    }

    fn remove(&mut self, entry: Entry) {
        if let Some(old) = self.at.remove(&entry) {
            self.queue.remove(&(old, entry));
        }
    }

    fn next(&self) -> Option<u64> {
        self.queue.first().map(|&(when, _)| when)
    }

    /// Moves every deadline by a step of the wall clock.
    fn shift(&mut self, delta: i64) {
        let queue = std::mem::take(&mut self.queue);
        self.at.clear();
        for (when, entry) in queue {
            self.set(entry, clock::shift(when, delta));
        }
    }

    fn pop_due(&mut self, now: u64) -> Option<Entry> {
        let &(when, entry) = self.queue.first()?;
        if when > now {
            return None;
        }
        self.queue.remove(&(when, entry));
        self.at.remove(&entry);
        Some(entry)
    }
}

struct Task {
    core: Arc<Manager>,
    watcher: TtyWatcher,
    timers: Timers,
    /// Per session: since when its ttys are watched by inotify in this vigild.
    watching_since: HashMap<u64, u64>,
    /// The clock offset the timers and watch times are in (the registry's, once
    /// `follow_clock` has run).
    clock_offset: i64,
    /// Per tty: its (atime, mtime) when the wall clock was last stepped. Those are times
    /// of the clock before the step (after a step back, times "in the future"): until
    /// the tty is used again they are neither activity nor suspect.
    stale_tty_times: HashMap<TtyNr, (u64, u64)>,
    /// The accesses to each watched tty waiting for a look, and what the last look saw.
    inputs: InputChecks,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            let sleep = match self.timers.next() {
                Some(when) => Duration::from_micros(when.saturating_sub(now_usec())),
                // Nothing scheduled: sleep "forever" (until a command or tty event).
                None => Duration::from_secs(24 * 3600),
            };
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Added(id)) => {
                        // A tty PAM named (login on tty1) is watched at once.
                        for tty in self.core.session(id).map(|s| s.ttys().clone()).unwrap_or_default() {
                            self.watch(id, tty);
                        }
                        self.timers.set(Entry::Session(id), now_usec() + FIRST_CHECK_DELAY_USEC);
                    }
                    Some(Command::Check(id)) => self.check_session(id),
                    Some(Command::Forget(id)) => {
                        self.timers.remove(Entry::Session(id));
                        self.watching_since.remove(&id);
                    }
                    Some(Command::CheckAll) => {
                        for id in self.core.session_ids() {
                            self.check_session(id);
                        }
                    }
                    // The offset now, not one carried by the command: a later step may
                    // have been followed already.
                    Some(Command::ClockStepped) => self.follow_clock(self.core.clock_offset()),
                    None => return,
                },
                events = self.watcher.next_events() => match events {
                    Ok(events) => self.on_tty_events(events),
                    Err(e) => {
                        eprintln!("vigild: inotify failed: {e}; idle times now come from tty atimes only");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                () = tokio::time::sleep(sleep) => {
                    let now = now_usec();
                    // Bounded: each pass removes one due entry. New ptys due together
                    // share one look at /proc.
                    let mut new_ptys = Vec::new();
                    while let Some(entry) = self.timers.pop_due(now) {
                        match entry {
                            Entry::Session(id) => self.check_session(id),
                            Entry::PtsScan { n, attempt } => new_ptys.push((n, attempt)),
                            Entry::InputCheck(tty) => self.check_input(tty),
                        }
                    }
                    self.scan_new_ptys(&new_ptys);
                }
            }
        }
    }

    fn on_tty_events(&mut self, events: Vec<TtyEvent>) {
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
    fn check_input(&mut self, tty: TtyNr) {
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
                    self.core.audit.write(
                        session_record(Event::ActivitySuspect, &session)
                            .text("source", "tty_access")
                            .text("suspect_tty", ttys::short_name(tty))
                            .text("reason", SuspectReason::NotARead)
                            .text("foreground", foreground)
                            .number("accesses", accesses),
                    );
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
            self.core.audit.write(
                session_record(Event::ActivitySuspect, &session)
                    .text("source", "tty_read")
                    .text("suspect_tty", ttys::short_name(tty))
                    .text("reason", SuspectReason::Periodic)
                    .number("period_ms", period / 1000)
                    .text("reader", reader),
            );
        }
    }

    /// Where a tty's foreground is looked for: the POSIX session that held the tty when
    /// the session claimed it (its shell), then the session's leader.
    fn look_roots(&self, session: &Session, tty: TtyNr) -> Vec<u32> {
        let holders = self.core.tty_holders.lock().unwrap_or_else(|p| p.into_inner());
        let holder = holders.get(&tty).filter(|(id, _)| *id == session.id).map(|&(_, (sid, _))| sid);
        drop(holders);
        holder.into_iter().chain(std::iter::once(session.who.leader_pid)).collect()
    }

    /// Takes the first look at each of the session's ttys that has none: what their
    /// first access is compared with.
    fn first_looks(&mut self, session: &Session) {
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
    fn scan_new_ptys(&mut self, due: &[(u32, usize)]) {
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

    fn retry_pts(&mut self, n: u32, attempt: usize) {
        if attempt + 1 < PTS_SCAN_DELAYS_MS.len() {
            let next = attempt + 1;
            self.timers.set(Entry::PtsScan { n, attempt: next }, now_usec() + PTS_SCAN_DELAYS_MS[next] * 1000);
        }
    }

    /// Watches a session's tty; the first watch of the session starts the time from
    /// which every input is seen as an event (tty times after it must match one). A
    /// watch that cannot be set brings no IN_IGNORED when the tty goes: the tty is
    /// looked at now, and given up when the session no longer holds it.
    fn watch(&mut self, id: u64, tty: TtyNr) {
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
    fn adopt(&mut self, id: u64, tty: TtyNr, on_tty: &[u32]) -> bool {
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
    fn release_lost_ttys(&mut self, session: &Session, tree: &[procfs::Stat]) {
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
    fn follow_clock(&mut self, offset: i64) {
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

    /// Looks at one session: its ttys, its activity, and what its policy says now.
    fn check_session(&mut self, id: u64) {
        // A step of the clock that the watch has not passed on yet must not make this
        // look idle (two reads of the clock; nothing happens without a step).
        let offset = self.core.clock_changed();
        self.follow_clock(offset);
        let Some(session) = self.core.session(id) else {
            self.timers.remove(Entry::Session(id));
            return;
        };
        if session.is_nested() {
            // Nested (su, sudo inside a login): its enclosing session is supervised.
            return;
        }
        let leader = session.who.leader_pid;
        let tree_and_stats = match procfs::process_tree_live(leader) {
            Ok(Some(tree)) => {
                let stats = procfs::stats_of(&tree);
                Ok((tree, stats))
            }
            Ok(None) => procfs::all_stats().map(|stats| (procfs::process_tree(leader, &stats), stats)),
            Err(e) => Err(e),
        };
        // /proc unreadable (vigild out of fds) says nothing about the processes: a tty
        // session is still measured by its ttys' times (no new tty is found this time);
        // a session without one is looked at again soon, its activity neither counted
        // nor ended.
        let (tree, stats, readable) = match tree_and_stats {
            Ok((tree, stats)) => (tree, stats, true),
            Err(_) if !session.ttys().is_empty() => (Vec::new(), Vec::new(), false),
            Err(_) => {
                self.timers.set(Entry::Session(id), now_usec() + UNREADABLE_RETRY_USEC);
                return;
            }
        };
        for tty in ttys::ttys_of(&tree, &stats) {
            self.adopt(id, tty, &ownership::on_tty(&stats, tty));
        }
        for &tty in session.ttys() {
            self.watch(id, tty);
        }
        if let Some(session) = self.core.session(id) {
            self.first_looks(&session);
        }
        // What the warning is written on and the end reaches is what the session holds
        // now, not what it claimed once.
        if readable && let Some(session) = self.core.session(id) {
            let members: HashSet<u32> = tree.iter().copied().collect();
            let tree_stats: Vec<procfs::Stat> = stats.iter().filter(|s| members.contains(&s.pid)).copied().collect();
            self.release_lost_ttys(&session, &tree_stats);
        }
        self.core.expire_inhibitor(id, now_usec());
        let Some(session) = self.core.session(id) else { return };
        let now = now_usec();
        let watching_since = self.watching_since.get(&id).copied();
        let Some(seen) = measure_activity(&session, &tree, now, watching_since, &mut self.stale_tty_times) else {
            self.timers.set(Entry::Session(id), now + UNREADABLE_RETRY_USEC);
            return;
        };
        if let Some((tty, reason)) = seen.suspect
            && now.saturating_sub(session.activity.suspect_reported_usec) >= SUSPECT_REPORT_USEC
        {
            self.core.audit.write(
                session_record(Event::ActivitySuspect, &session)
                    .text("source", "atime")
                    .text("suspect_tty", ttys::short_name(tty))
                    .text("reason", reason),
            );
            self.core.update_session(id, |s| s.activity.suspect_reported_usec = now);
        }
        let last_activity = seen.last;
        let clock = IdleFacts {
            now,
            started: session.who.started_usec,
            last_activity,
            warned: session.activity.warned,
            has_tty: !session.ttys().is_empty(),
            idle_reported: session.activity.idle_reported,
            inhibited_until: session.inhibitor.as_ref().map_or(0, |i| i.until_usec),
        };
        let deadline = idle::next_end(&session.policy, &clock).map_or(0, |(_, end)| end);
        self.core.update_session(id, |s| {
            match seen.by {
                Some(by) => s.raise_activity_by(last_activity, by),
                None => s.raise_activity(last_activity),
            }
            s.activity.io_total = seen.io_total;
            s.deadline_usec = deadline;
        });
        match inhibit::with_expiry(idle::decide(&session.policy, clock), session.inhibitor.as_ref()) {
            Decision::NoDeadline => self.timers.remove(Entry::Session(id)),
            Decision::SleepUntil(when) => self.timers.set(Entry::Session(id), when),
            Decision::Warn { limit, ends_at } => {
                self.warn(&session, limit, ends_at, now);
                self.timers.set(Entry::Session(id), inhibit::earliest(ends_at, session.inhibitor.as_ref()));
            }
            Decision::End { limit, action: IdleAction::Terminate, deadline } => self.end(&session, limit, deadline, now),
            Decision::End { limit, action: IdleAction::None, deadline } => {
                let fresh = self.core.session(id);
                let record = session_record(Event::IdleLimitReached, &session)
                    .text("limit", limit.as_str())
                    .text("action", "none")
                    .number("idle_s", now.saturating_sub(last_activity) / 1_000_000)
                    .number("late_ms", now.saturating_sub(deadline) as i128 / 1000);
                self.core.audit.write(activity_evidence(record, fresh.as_ref().unwrap_or(&session)));
                // Only the idle limit has a dry run (`idle::decide`): recorded once for
                // this stretch of idleness.
                self.core.update_session(id, |s| s.activity.idle_reported = true);
                self.check_session(id);
            }
        }
    }

    fn warn(&mut self, session: &Session, limit: Limit, ends_at: u64, now: u64) {
        let idle_for = Duration::from_secs(now.saturating_sub(session.last_activity_usec) / 1_000_000);
        let left = Duration::from_secs(ends_at.saturating_sub(now).div_ceil(1_000_000));
        let mut text = warning::text(limit, idle_for, left, session.policy.max_session_age);
        let inhibitor_note = if limit == Limit::Idle { inhibit::warning_note(session.inhibitor.as_ref(), now, ends_at) } else { None };
        if let Some(note) = &inhibitor_note {
            text.insert_str(0, note);
        }
        let written = warning::write_to_ttys(session.ttys(), &text);
        // Someone who may have walked away must type the password again.
        if !session.activity.proofs.is_empty() {
            self.core.revoke_proofs(session.id, RevokeReason::IdleWarning);
        }
        self.core.update_session(session.id, |s| {
            s.activity.warned = Some((limit, now));
            s.activity.own_output_until = now_usec() + OWN_OUTPUT_WINDOW_USEC;
        });
        let record = session_record(Event::IdleWarning, session)
            .text("limit", limit.as_str())
            .number("idle_s", idle_for.as_secs())
            .number("ends_in_s", left.as_secs())
            .number("ttys_warned", written as i128)
            .text_opt("inhibitor", inhibitor_note.is_some().then_some("expiring"));
        let fresh = self.core.session(session.id);
        self.core.audit.write(activity_evidence(record, fresh.as_ref().unwrap_or(session)));
    }

    /// Ends the session: its registration and audit record first (the leader's exit
    /// would otherwise be recorded as `leader_gone`), then its processes. When its
    /// processes cannot be seen or held, nothing is ended: `terminate_failed` is
    /// recorded and the end is tried again.
    fn end(&mut self, session: &Session, limit: Limit, deadline: u64, now: u64) {
        let targets = match Targets::of(&self.core.end_scope(session)) {
            Ok(targets) => targets,
            Err(error) => {
                self.core.audit.write(
                    session_record(Event::TerminateFailed, session)
                        .text("reason", error.reason())
                        .text("error", error.to_string())
                        .text("by", limit.as_str()),
                );
                self.timers.set(Entry::Session(session.id), now + TERMINATE_RETRY_USEC);
                return;
            }
        };
        let reason = match limit {
            Limit::Idle => EndReason::Idle,
            Limit::MaxAge => EndReason::MaxAge,
        };
        let late_ms = now.saturating_sub(deadline) as i128 / 1000;
        self.core.end(session.id, reason, Some(("late_ms", late_ms)));
        let grace = session.policy.kill_grace;
        tokio::spawn(targets.end(grace));
    }
}

/// What a check saw of a session's activity.
struct Seen {
    last: u64,
    /// What measured `last`, when this check moved it.
    by: Option<Evidence>,
    io_total: Option<u64>,
    /// A tty time that cannot be input (in the future, or ahead of every input event
    /// inotify delivered): ignored, and recorded.
    suspect: Option<(TtyNr, SuspectReason)>,
}

/// The session's last activity as seen now: inotify's time (already in the session),
/// the ttys' atimes (and mtimes where output counts) as a fallback, or, without a
/// tty, a change in its processes' I/O counters since the last sample.
///
/// A tty's times are set by its own user for free (`touch -a -d 2099-01-01`): a time
/// in the future, or later than the last input inotify saw once it watches the tty, is
/// not activity. What remains forgeable is real: a user who types, or reads from their
/// tty, is active.
fn measure_activity(
    session: &Session,
    tree: &[u32],
    now: u64,
    watching_since: Option<u64>,
    stale_tty_times: &mut HashMap<TtyNr, (u64, u64)>,
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
    let total = procfs::io_total(tree).ok()?;
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
    fn a_clock_step_moves_every_deadline() {
        let mut timers = Timers::default();
        timers.set(Entry::Session(1), 100 * S);
        timers.set(Entry::PtsScan { n: 3, attempt: 0 }, 50 * S);
        timers.shift(3600 * S as i64);
        assert_eq!(timers.next(), Some(3650 * S));
        assert_eq!(timers.pop_due(3650 * S), Some(Entry::PtsScan { n: 3, attempt: 0 }));
        assert_eq!(timers.pop_due(3699 * S), None);
        timers.shift(-3600 * S as i64);
        assert_eq!(timers.pop_due(100 * S), Some(Entry::Session(1)));
        assert!(timers.at.is_empty() && timers.queue.is_empty());
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
