//! The idle supervisor: one task that sleeps until the next deadline of any session,
//! reacts to tty events as they happen, warns, and ends sessions.
//!
//! No session is scanned on a period: a session costs a timer entry and, when its
//! deadline comes, one look at /proc. Keystrokes only move the session's
//! `last_activity` (a map lookup); the timer finds the new time when it fires and
//! sleeps again. Sessions without a tty have no event to wake vigild, so their
//! processes' I/O is sampled at a quarter of their timeout.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use vigil_config::IdleAction;

use crate::core::{EndReason, Hooks, Session, TtyActivity, Vigild, now_usec, session_record};
use crate::idle::{self, Clock, Decision, Limit};
use crate::procfs;
use crate::terminate;
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

enum Command {
    /// A new session: first look after FIRST_CHECK_DELAY_USEC.
    Added(u64),
    Forget(u64),
    CheckAll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Entry {
    Session(u64),
    PtsScan { n: u32, attempt: usize },
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
}

/// Starts the supervisor task.
pub fn spawn(core: Arc<Vigild>) -> std::io::Result<Arc<Supervisor>> {
    let watcher = TtyWatcher::new()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(Task { core, watcher, timers: Timers::default() }.run(rx));
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
    core: Arc<Vigild>,
    watcher: TtyWatcher,
    timers: Timers,
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
                        for tty in self.core.session(id).map(|s| s.activity.ttys).unwrap_or_default() {
                            self.watcher.watch(tty);
                        }
                        self.timers.set(Entry::Session(id), now_usec() + FIRST_CHECK_DELAY_USEC);
                    }
                    Some(Command::Forget(id)) => self.timers.remove(Entry::Session(id)),
                    Some(Command::CheckAll) => {
                        for id in self.core.session_ids() {
                            self.check_session(id);
                        }
                    }
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
                    // Bounded: each pass removes one due entry.
                    while let Some(entry) = self.timers.pop_due(now) {
                        match entry {
                            Entry::Session(id) => self.check_session(id),
                            Entry::PtsScan { n, attempt } => self.scan_new_pts(n, attempt),
                        }
                    }
                }
            }
        }
    }

    fn on_tty_events(&mut self, events: Vec<TtyEvent>) {
        let now = now_usec();
        for event in events {
            let woken = match event {
                TtyEvent::Input(tty) => self.core.note_tty_activity(tty, TtyActivity::Input, now),
                TtyEvent::Output(tty) => self.core.note_tty_activity(tty, TtyActivity::Output, now),
                TtyEvent::Gone(tty) => {
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

    /// Finds which session a new pty belongs to: its processes' ancestry leads to a
    /// session leader.
    fn scan_new_pts(&mut self, n: u32, attempt: usize) {
        let tty = ttys::pts_tty_nr(n);
        let stats = procfs::all_stats();
        let owner = stats.iter().filter(|s| s.tty_nr == tty).find_map(|s| {
            self.core.enclosing_session(s.pid, |pid| stats.iter().find(|p| p.pid == pid).map(|p| p.ppid))
        });
        match owner {
            Some(id) => {
                if self.adopt(id, tty) {
                    self.check_session(id);
                }
            }
            None if attempt + 1 < PTS_SCAN_DELAYS_MS.len() => {
                let next = attempt + 1;
                self.timers.set(Entry::PtsScan { n, attempt: next }, now_usec() + PTS_SCAN_DELAYS_MS[next] * 1000);
            }
            // Not a session's pty (a local tmux, a container console): ignore it.
            None => {}
        }
    }

    /// Adds a tty to a session and watches it; the policy is resolved again when the
    /// session just became a tty session.
    fn adopt(&mut self, id: u64, tty: TtyNr) -> bool {
        if !self.core.adopt_tty(id, tty) {
            return false;
        }
        self.watcher.watch(tty);
        let config = self.core.config();
        self.core.update_session(id, |s| s.resolve_policy(&config));
        true
    }

    /// Looks at one session: its ttys, its activity, and what its policy says now.
    fn check_session(&mut self, id: u64) {
        let Some(session) = self.core.session(id) else {
            self.timers.remove(Entry::Session(id));
            return;
        };
        if session.info.parent != 0 {
            // Nested (su, sudo inside a login): its enclosing session is supervised.
            return;
        }
        let leader = session.info.leader_pid;
        let (tree, stats) = match procfs::descendants(leader) {
            Some(tree) => {
                let stats = procfs::stats_of(&tree);
                (tree, stats)
            }
            None => {
                let stats = procfs::all_stats();
                (procfs::process_tree(leader, &stats), stats)
            }
        };
        for tty in ttys::ttys_of(&tree, &stats) {
            self.adopt(id, tty);
        }
        for &tty in &session.activity.ttys {
            self.watcher.watch(tty);
        }
        let Some(session) = self.core.session(id) else { return };
        let now = now_usec();
        let (last_activity, io_total) = measure_activity(&session, &tree, now);
        let clock = Clock {
            now,
            started: session.info.started_usec,
            last_activity,
            warned: session.activity.warned,
            has_tty: !session.activity.ttys.is_empty(),
            idle_reported: session.activity.idle_reported,
            age_reported: false,
        };
        let deadline = idle::next_end(&session.policy, &clock).map_or(0, |(_, end)| end);
        self.core.update_session(id, |s| {
            s.raise_activity(last_activity);
            s.activity.io_total = io_total;
            s.info.deadline_usec = deadline;
        });
        match idle::decide(&session.policy, clock) {
            Decision::NoDeadline => self.timers.remove(Entry::Session(id)),
            Decision::SleepUntil(when) => self.timers.set(Entry::Session(id), when),
            Decision::Warn { limit, ends_at } => {
                self.warn(&session, limit, ends_at, now);
                self.timers.set(Entry::Session(id), ends_at);
            }
            Decision::End { limit, action: IdleAction::Terminate, deadline } => self.end(&session, limit, deadline, now),
            Decision::End { limit, action: IdleAction::None, deadline } => {
                self.core.audit.write(
                    &session_record("idle_limit_reached", &session)
                        .text("limit", limit.as_str())
                        .text("action", "none")
                        .number("idle_s", now.saturating_sub(last_activity) / 1_000_000)
                        .number("late_ms", now.saturating_sub(deadline) as i128 / 1000),
                );
                self.core.update_session(id, |s| match limit {
                    Limit::Idle => s.activity.idle_reported = true,
                    // Recorded once; the age limit does not come back.
                    Limit::MaxAge => s.policy.max_session_age = None,
                });
                self.check_session(id);
            }
        }
    }

    fn warn(&mut self, session: &Session, limit: Limit, ends_at: u64, now: u64) {
        let idle_for = Duration::from_secs(now.saturating_sub(session.info.last_activity_usec) / 1_000_000);
        let left = Duration::from_secs(ends_at.saturating_sub(now).div_ceil(1_000_000));
        let text = warning::text(limit, idle_for, left, session.policy.max_session_age);
        let written = warning::write_to_ttys(&session.activity.ttys, &text);
        // Someone who may have walked away must type the password again.
        if !session.activity.proofs.is_empty() {
            self.core.revoke_proofs(session.info.id, "idle_warning");
        }
        self.core.update_session(session.info.id, |s| {
            s.activity.warned = Some((limit, now));
            s.activity.own_output_until = now_usec() + OWN_OUTPUT_WINDOW_USEC;
        });
        self.core.audit.write(
            &session_record("idle_warning", session)
                .text("limit", limit.as_str())
                .number("idle_s", idle_for.as_secs())
                .number("ends_in_s", left.as_secs())
                .number("ttys_warned", written as i128),
        );
    }

    /// Ends the session: its registration and audit record first (the leader's exit
    /// would otherwise be recorded as `leader_gone`), then its processes.
    fn end(&mut self, session: &Session, limit: Limit, deadline: u64, now: u64) {
        let pids = terminate::session_pids(session.scope());
        let reason = match limit {
            Limit::Idle => EndReason::Idle,
            Limit::MaxAge => EndReason::MaxAge,
        };
        let late_ms = now.saturating_sub(deadline) as i128 / 1000;
        self.core.end(session.info.id, reason, Some(("late_ms", late_ms)));
        let grace = session.policy.kill_grace;
        tokio::spawn(async move {
            terminate::end_processes(&pids, grace).await;
        });
    }
}

/// The session's last activity as seen now: inotify's time (already in the session),
/// the ttys' atimes (and mtimes where output counts) as a fallback, or, without a
/// tty, a change in its processes' I/O counters since the last sample.
fn measure_activity(session: &Session, tree: &[u32], now: u64) -> (u64, Option<u64>) {
    let mut last = session.info.last_activity_usec;
    if !session.activity.ttys.is_empty() {
        for &tty in &session.activity.ttys {
            if let Some((atime, mtime)) = ttys::device_times(tty) {
                last = last.max(atime.min(now));
                // vigild's own warning moves mtime too: only output well after it counts.
                let own = session.activity.own_output_until;
                if session.policy.output_is_activity && mtime > own + 1_000_000 {
                    last = last.max(mtime.min(now));
                }
            }
        }
        return (last, None);
    }
    let total = tree.iter().filter_map(|&p| procfs::io_total(p)).fold(0u64, u64::saturating_add);
    // A change since the last sample is activity now. The first sample has nothing to
    // compare with, and comes FIRST_CHECK_DELAY_USEC after the open: the session's I/O
    // before it (starting its command) also counts as now, else an idle clock started
    // at the open would end the session before its timeout has passed since that I/O.
    if session.activity.io_total != Some(total) {
        last = now;
    }
    (last, Some(total))
}
