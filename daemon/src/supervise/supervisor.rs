//! The idle supervisor: one task that sleeps until the next deadline of any session,
//! reacts to tty events as they happen, warns, and ends sessions.
//!
//! No session is scanned on a period: a session costs a timer entry and, when its
//! deadline comes, one look at /proc. Keystrokes only move the session's
//! `last_activity` (a map lookup); the timer finds the new time when it fires and
//! sleeps again. Sessions without a tty have no event to wake vigild, so their
//! processes' I/O is sampled at a quarter of their timeout. The deadlines are
//! `timers.rs`; what tty events and a check make of activity, `activity.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use vigil_config::IdleAction;
use vigil_protocol::audit::Record;
use vigil_protocol::events::{Event, RevokeReason};

use crate::audit::records::{EndReason, activity_evidence, session_record};
use crate::sessions::inhibit;
use crate::sessions::lateness::LateCause;
use crate::sessions::manager::{Hooks, Manager, now_usec};
use crate::sessions::ownership;
use crate::sessions::session::Session;
use crate::supervise::idle::{self, Decision, IdleFacts, Limit};
use crate::supervise::terminate::{self, Listing, Targets};
use crate::supervise::timers::{Entry, Timers};
use crate::supervise::tty_input::InputChecks;
use crate::supervise::warning;
use crate::sys::procfs;
use crate::sys::ttys::{self, TtyNr, TtyWatcher};

/// The first look at a new session waits this long: a login's ttys appear after
/// pam_open_session returns (sshd creates the pty later; /dev/pts events catch it),
/// and a session that closes within it costs no /proc reads at all.
pub(super) const FIRST_CHECK_DELAY_USEC: u64 = 1_000_000;
/// How long after vigild's own warning an output event is taken to be that warning.
pub(super) const OWN_OUTPUT_WINDOW_USEC: u64 = 500_000;
/// When ending a session failed (vigild could not see or hold its processes), the
/// next try.
pub(super) const TERMINATE_RETRY_USEC: u64 = 5_000_000;
/// When /proc could not be read (vigild out of fds), the check comes again after this.
pub(super) const UNREADABLE_RETRY_USEC: u64 = 5_000_000;
/// `activity_suspect` is recorded at most this often per session.
pub(super) const SUSPECT_REPORT_USEC: u64 = 60_000_000;
/// Due timers handled before the thread is given to other work (logins, signals): a
/// storm of deadlines (a restart, a reload, a stalled host) is many passes, not one.
const DUE_PER_PASS: usize = 64;
/// From this many session checks due in one pass, what they read of /proc (each
/// session's processes, their I/O counters) is read at the pass's start on several
/// threads (`terminate::in_parallel`); fewer read as they go.
const READ_AHEAD_FROM: usize = 16;

/// What a check reads of a session's processes, read ahead for a pass (`read_ahead`).
pub(super) struct Readings {
    tree_and_stats: std::io::Result<Option<(Vec<u32>, Vec<procfs::Stat>)>>,
    /// The tree's I/O counters, for a session without a tty.
    io_total: Option<std::io::Result<u64>>,
}

impl Readings {
    fn of(leader: u32, has_tty: bool) -> Readings {
        let tree_and_stats = procfs::process_tree_and_stats_live(leader);
        let io_total = match &tree_and_stats {
            Ok(Some((tree, _))) if !has_tty => Some(procfs::io_total(tree)),
            _ => None,
        };
        Readings { tree_and_stats, io_total }
    }
}

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
    let task = Task::new(core)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(task.run(rx));
    Ok(Arc::new(Supervisor { tx }))
}

pub(super) struct Task {
    pub(super) core: Arc<Manager>,
    pub(super) watcher: TtyWatcher,
    pub(super) timers: Timers,
    /// Per session: since when its ttys are watched by inotify in this vigild.
    pub(super) watching_since: HashMap<u64, u64>,
    /// The clock offset the timers and watch times are in (the registry's, once
    /// `follow_clock` has run).
    pub(super) clock_offset: i64,
    /// Per tty: its (atime, mtime) when the wall clock was last stepped. Those are times
    /// of the clock before the step (after a step back, times "in the future"): until
    /// the tty is used again they are neither activity nor suspect.
    pub(super) stale_tty_times: HashMap<TtyNr, (u64, u64)>,
    /// The accesses to each watched tty waiting for a look, and what the last look saw.
    pub(super) inputs: InputChecks,
    /// The listing of /proc the ends of one pass share (`terminate.rs`).
    listing: Option<Listing>,
    /// What the checks of this pass read of /proc, read at its start; each check takes
    /// its own, and what is left is dropped with the pass.
    read_ahead: HashMap<u64, Readings>,
}

impl Task {
    fn new(core: Arc<Manager>) -> std::io::Result<Task> {
        let watcher = TtyWatcher::new()?;
        let clock_offset = core.clock_offset();
        Ok(Task {
            core,
            watcher,
            timers: Timers::default(),
            watching_since: HashMap::new(),
            clock_offset,
            stale_tty_times: HashMap::new(),
            inputs: InputChecks::default(),
            listing: None,
            read_ahead: HashMap::new(),
        })
    }

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
                    // Looked at by the timer, a pass at a time, in the order of their ids.
                    Some(Command::CheckAll) => {
                        let now = now_usec();
                        for id in self.core.session_ids() {
                            self.timers.set(Entry::Session(id), now);
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
                    // Bounded: each pass removes one due entry, DUE_PER_PASS at most. New
                    // ptys due together share one look at /proc.
                    let mut new_ptys = Vec::new();
                    self.read_ahead(&self.timers.due(now, DUE_PER_PASS));
                    for _ in 0..DUE_PER_PASS {
                        let Some(entry) = self.timers.pop_due(now) else { break };
                        match entry {
                            Entry::Session(id) => self.check_session(id),
                            Entry::PtsScan { n, attempt } => new_ptys.push((n, attempt)),
                            Entry::InputCheck(tty) => self.check_input(tty),
                        }
                    }
                    self.read_ahead.clear();
                    self.scan_new_ptys(&new_ptys);
                    // Ends that follow closely share a listing; none is kept once stale.
                    if self.listing.as_ref().is_some_and(|l| !l.is_fresh()) {
                        self.listing = None;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// Reads, for the session checks among `due`, what each will read of /proc, on
    /// several threads, when there are READ_AHEAD_FROM of them at least. A reading is
    /// taken by its check moments later in the same pass, as a listing serves the ends
    /// after it.
    fn read_ahead(&mut self, due: &[Entry]) {
        let ids: Vec<u64> = due.iter().filter_map(|e| if let Entry::Session(id) = e { Some(*id) } else { None }).collect();
        if ids.len() < READ_AHEAD_FROM {
            return;
        }
        let leaders = self.core.leaders_of(&ids);
        let (readings, _) = terminate::in_parallel(&leaders, READ_AHEAD_FROM, |&(id, leader, has_tty)| (id, Readings::of(leader, has_tty)));
        self.read_ahead = readings.into_iter().collect();
    }

    /// Looks at one session: its ttys, its activity, and what its policy says now.
    pub(super) fn check_session(&mut self, id: u64) {
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
        let (live, io_ahead) = match self.read_ahead.remove(&id) {
            Some(ahead) => (ahead.tree_and_stats, ahead.io_total),
            None => (procfs::process_tree_and_stats_live(leader), None),
        };
        let tree_and_stats = match live {
            Ok(Some(tree_and_stats)) => Ok(tree_and_stats),
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
        let Some(seen) = self.measure_activity(&session, &tree, now, io_ahead) else {
            self.timers.set(Entry::Session(id), now + UNREADABLE_RETRY_USEC);
            return;
        };
        if let Some((tty, reason)) = seen.suspect
            && now.saturating_sub(session.activity.suspect_reported_usec) >= SUSPECT_REPORT_USEC
        {
            self.core.activity_suspect(&session, |record| {
                record.text("source", "atime").text("suspect_tty", ttys::short_name(tty)).text("reason", reason)
            });
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
        // Without a tty nothing but this sample knows the session's activity: kept on
        // disk whenever it moves (at most once a sample, a quarter of the timeout), so
        // that a restarted vigild compares with it (`SavedSession::io_total`).
        if seen.io_total.is_some() && (seen.io_total != session.activity.io_total || last_activity > session.last_activity_usec) {
            self.core.save(self.core.session(id).map(|s| s.saved()));
        }
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
                    .number("idle_s", now.saturating_sub(last_activity) / 1_000_000);
                let record = self.late(record, deadline, now);
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
        let targets = match Targets::of_listing(&self.core.end_scope(session), Listing::reuse(&mut self.listing)) {
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
        self.core.end_with(session.id, reason, |record| self.late(record, deadline, now));
        let grace = session.policy.kill_grace;
        tokio::spawn(targets.end(grace));
    }

    /// `late_ms`: how long after its deadline a session is ended (or found past its idle
    /// limit), and `late_cause` when vigild knows why (`sessions/lateness.rs`).
    fn late(&self, record: Record, deadline: u64, now: u64) -> Record {
        let late_usec = now.saturating_sub(deadline);
        let cause = self.core.lateness.cause(late_usec);
        record.number("late_ms", late_usec as i128 / 1000).text_opt("late_cause", cause.map(LateCause::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::tty_claims::tests::session_led_by;

    /// Fewer than READ_AHEAD_FROM session checks due read /proc as they go; from
    /// READ_AHEAD_FROM on, each session's processes and counters are read at the pass's
    /// start, and each check takes its own reading (the same tree it would have read).
    #[tokio::test]
    async fn a_pass_of_many_checks_reads_their_processes_ahead() {
        let core = crate::sessions::manager::manager_for_tests();
        let mut leaders = Vec::new();
        for _ in 0..READ_AHEAD_FROM {
            let leader = std::process::Command::new("sleep").arg("600").spawn().unwrap();
            session_led_by(&core, leader.id()).await;
            leaders.push(leader);
        }
        let ids = core.session_ids();
        assert_eq!(ids.len(), READ_AHEAD_FROM);
        let mut task = Task::new(core.clone()).unwrap();
        let due: Vec<Entry> = ids.iter().map(|&id| Entry::Session(id)).collect();

        task.read_ahead(&due[1..]);
        assert!(task.read_ahead.is_empty(), "{} checks read as they go", READ_AHEAD_FROM - 1);

        task.read_ahead(&due);
        assert_eq!(task.read_ahead.len(), READ_AHEAD_FROM);
        for (&id, leader) in ids.iter().zip(&leaders) {
            let reading = &task.read_ahead[&id];
            let Ok(Some((tree, stats))) = &reading.tree_and_stats else { panic!("no tree read for session {id}") };
            assert_eq!((tree.as_slice(), stats.len()), (&[leader.id()][..], 1));
            assert!(matches!(reading.io_total, Some(Ok(_))), "a session without a tty has its counters read");
        }
        task.check_session(ids[0]);
        assert!(!task.read_ahead.contains_key(&ids[0]) && task.read_ahead.len() == READ_AHEAD_FROM - 1, "the check took its reading");
        assert!(core.session(ids[0]).is_some_and(|s| s.activity.io_total.is_some()), "and measured the session with it");
        for mut leader in leaders {
            let _ = leader.kill();
            let _ = leader.wait();
        }
    }
}
