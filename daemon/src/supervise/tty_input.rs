//! Whether an access to a tty was input read by the side of it a person types on.
//!
//! inotify reports a read of a tty and an atime-only `utimensat` on it (`touch -a`, which
//! its user may do at will) as the same IN_ACCESS. A keystroke is read by a process of the
//! tty's foreground process group (a background job that reads gets SIGTTIN), so an access
//! counts as input only when such a process made read system calls (`syscr` of
//! /proc/PID/io) since the previous look at that tty. The counters are per process, not
//! per descriptor: a foreground process that read a file or a pipe meanwhile passes too
//! (docs/security.md, "Forged activity", says what that leaves open).
//!
//! A look reads the tty's POSIX session (a shell and its jobs: a few small /proc files)
//! and comes a little after the first event it is for, at most every `MIN_LOOK_GAP_USEC`
//! per tty: the kernel queues the event before it counts the read, and idleness is
//! judged at the grain of seconds. Input read at a fixed period with no output after it
//! is noted here too (`periodic`), for the records.

use std::collections::{HashMap, VecDeque};
use std::fs;

use crate::sys::procfs;
use crate::sys::ttys::TtyNr;

/// How long after an access its look comes (the read is counted after the event is
/// queued).
const LOOK_DELAY_USEC: u64 = 20_000;
/// Looks at one tty are at least this far apart; the accesses in between share one.
const MIN_LOOK_GAP_USEC: u64 = 100_000;
/// A look also finds the reads whose events were still queued: an access that comes this
/// soon after a look and finds nothing new is one of those, neither input nor suspect.
const COVER_USEC: u64 = 500_000;
/// Reads further apart than this are separate bursts of input.
const BURST_GAP_USEC: u64 = 1_000_000;
/// Output this soon after a burst of input is its echo.
const ECHO_WINDOW_USEC: u64 = 1_000_000;
/// How many unechoed bursts at a fixed period make the input `periodic`.
const PERIODIC_BURSTS: usize = 5;
/// How far apart the periods may be (at least; else a twentieth of the period).
const PERIOD_TOLERANCE_USEC: u64 = 150_000;

/// One process of a tty's foreground process group, at a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub pid: u32,
    /// With the pid, names the process for good.
    pub start_time: u64,
    /// Read system calls so far (`syscr`).
    pub read_calls: u64,
    pub comm: String,
}

impl Reader {
    /// `bash[812]`.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.comm, self.pid)
    }
}

/// A tty's foreground process group, at a look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Foreground {
    pub readers: Vec<Reader>,
    /// The previous look's foreground processes that have left the foreground since
    /// (still running), read again now: a shell reads a command line, then hands the
    /// terminal to the command it starts, and its reads are the keystrokes'.
    pub former: Vec<Reader>,
    /// The processes on the tty that started a process of the foreground (the shell
    /// that ran the command now in front), which may have read the command line
    /// between two looks that both found another group in front.
    pub launchers: Vec<Reader>,
    /// Every process of the session on the tty at this look, for the next look to
    /// compare launchers with.
    pub on_tty: Vec<Reader>,
}

impl Foreground {
    /// The foreground's command names, for a record (`bash`, `vim,less`).
    pub fn names(&self) -> String {
        let mut names: Vec<&str> = self.readers.iter().map(|r| r.comm.as_str()).collect();
        names.dedup();
        names.join(",")
    }
}

/// What two looks at a tty's foreground say about the accesses between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This process of the foreground read.
    Read(Reader),
    /// The same foreground as before, and none of it read.
    NotARead,
    /// A process of the foreground was not there at the previous look: nothing to compare.
    Unknown,
}

/// Compares a look with the previous one.
pub fn judge(before: &Foreground, now: &Foreground) -> Verdict {
    let mut unknown = now.readers.is_empty();
    let read_since = |reader: &Reader, then: &[Reader]| {
        then.iter().any(|b| b.pid == reader.pid && b.start_time == reader.start_time && reader.read_calls > b.read_calls)
    };
    for reader in &now.former {
        if read_since(reader, &before.readers) {
            return Verdict::Read(reader.clone());
        }
    }
    for reader in &now.launchers {
        if read_since(reader, &before.on_tty) {
            return Verdict::Read(reader.clone());
        }
    }
    for reader in &now.readers {
        match before.readers.iter().find(|b| b.pid == reader.pid && b.start_time == reader.start_time) {
            Some(b) if reader.read_calls > b.read_calls => return Verdict::Read(reader.clone()),
            Some(_) => {}
            None => unknown = true,
        }
    }
    if unknown { Verdict::Unknown } else { Verdict::NotARead }
}

/// Reads `tty`'s foreground process group among the processes of `roots` (each with its
/// descendants; the next root is walked only when the first has no process on the tty).
/// An error when /proc could not be read for another reason than a process being gone.
/// The processes of `previous` (the last look's foreground) that left the foreground are
/// read again too ([`Foreground::former`]).
pub fn look(roots: &[u32], tty: TtyNr, previous: Option<&Foreground>) -> std::io::Result<Foreground> {
    let mut found = look_foreground(roots, tty)?;
    for before in previous.map_or(&[][..], |p| p.readers.as_slice()) {
        if found.readers.iter().any(|r| r.pid == before.pid && r.start_time == before.start_time) {
            continue;
        }
        let Some(text) = procfs::stat_text(before.pid) else { continue };
        let same = procfs::parse_stat_line(&text).is_some_and(|l| l.start_time == before.start_time);
        if same && let Some(read_calls) = read_calls(before.pid)? {
            found.former.push(Reader { read_calls, ..before.clone() });
        }
    }
    Ok(found)
}

fn look_foreground(roots: &[u32], tty: TtyNr) -> std::io::Result<Foreground> {
    for &root in roots {
        let tree = match procfs::process_tree_live(root)? {
            Some(tree) => tree,
            None => procfs::process_tree(root, &procfs::all_stats()?),
        };
        let mut on_tty = Vec::new();
        for pid in tree {
            let Some(text) = procfs::stat_text(pid) else { continue };
            if let Some(line) = procfs::parse_stat_line(&text).filter(|l| l.tty_nr == tty) {
                on_tty.push((line.pid, line.pgrp, line.tpgid, line.start_time, line.comm.to_string(), line.ppid));
            }
        }
        let Some(&(_, _, tpgid, _, _, _)) = on_tty.first() else { continue };
        // The group's leader may have left the tree (its parent gone): read it by pid.
        if tpgid > 0 && !on_tty.iter().any(|p| p.0 as i32 == tpgid) {
            let text = procfs::stat_text(tpgid as u32).unwrap_or_default();
            if let Some(line) = procfs::parse_stat_line(&text).filter(|l| l.tty_nr == tty) {
                on_tty.push((line.pid, line.pgrp, line.tpgid, line.start_time, line.comm.to_string(), line.ppid));
            }
        }
        let in_front = |p: &(u32, i32, i32, u64, String, u32)| tpgid > 0 && p.1 == tpgid;
        let parents: Vec<u32> = on_tty.iter().filter(|p| in_front(p)).map(|p| p.5).collect();
        let mut found = Foreground::default();
        for (pid, pgrp, _, start_time, comm, _) in on_tty {
            let Some(read_calls) = read_calls(pid)? else { continue };
            let reader = Reader { pid, start_time, read_calls, comm };
            if tpgid > 0 && pgrp == tpgid {
                found.readers.push(reader.clone());
            } else if parents.contains(&pid) {
                found.launchers.push(reader.clone());
            }
            found.on_tty.push(reader);
        }
        return Ok(found);
    }
    Ok(Foreground::default())
}

/// `syscr` of /proc/PID/io; `None` when the process is gone.
fn read_calls(pid: u32) -> std::io::Result<Option<u64>> {
    let text = match fs::read_to_string(format!("/proc/{pid}/io")) {
        Ok(text) => text,
        Err(e) if procfs::is_gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(text.lines().find_map(|l| l.strip_prefix("syscr:")).and_then(|v| v.trim().parse().ok()))
}

/// Accesses not looked at yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    first: u64,
    last: u64,
    events: u64,
    echoed: bool,
}

/// One tty's accesses, looks and rhythm of input.
#[derive(Debug, Default)]
struct TtyInput {
    pending: Option<Pending>,
    /// The foreground at the last look.
    seen: Option<Foreground>,
    looked_at: u64,
    rhythm: Rhythm,
}

/// What a look made of the accesses it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Input, read by `reader` (`bash[812]`), at `at` (the latest access). `periodic`:
    /// the period, when the input has come at a fixed one with no output after it.
    Read { at: u64, reader: String, periodic: Option<u64> },
    /// /proc could not be read: nothing is concluded, the access counts as input as it
    /// did before it could be checked.
    Unverified { at: u64 },
    /// Not input. `report`: no process of an unchanged foreground read (`not_a_read`,
    /// with `events` accesses and the foreground's names); else the look had nothing to
    /// compare with, or the accesses' reads were already counted.
    Ignored { at: u64, events: u64, foreground: String, report: bool },
}

/// Every watched tty's accesses, the looks they wait for, and the rhythm of its input.
#[derive(Debug, Default)]
pub struct InputChecks {
    ttys: HashMap<TtyNr, TtyInput>,
}

impl InputChecks {
    /// An access to `tty` at `now`. Returns when to look, when no look is due yet.
    pub fn access(&mut self, tty: TtyNr, now: u64) -> Option<u64> {
        let state = self.ttys.entry(tty).or_default();
        if let Some(pending) = &mut state.pending {
            pending.last = pending.last.max(now);
            pending.events += 1;
            return None;
        }
        state.pending = Some(Pending { first: now, last: now, events: 1, echoed: false });
        Some((now + LOOK_DELAY_USEC).max(state.looked_at + MIN_LOOK_GAP_USEC))
    }

    /// Output on `tty` at `now`: the echo of input, if any came just before.
    pub fn output(&mut self, tty: TtyNr, now: u64) {
        let Some(state) = self.ttys.get_mut(&tty) else { return };
        match &mut state.pending {
            Some(pending) => pending.echoed = true,
            None => state.rhythm.output(now),
        }
    }

    /// Whether `tty` has no look to compare the next access with, and none is due.
    pub fn wants_first_look(&self, tty: TtyNr) -> bool {
        self.ttys.get(&tty).is_none_or(|s| s.seen.is_none() && s.pending.is_none())
    }

    /// A look taken without an access (a tty just claimed): what the next access is
    /// compared with.
    pub fn first_look(&mut self, tty: TtyNr, look: Foreground, now: u64) {
        let state = self.ttys.entry(tty).or_default();
        if state.pending.is_none() {
            state.seen = Some(look);
            state.looked_at = now;
        }
    }

    /// The last look at `tty`'s foreground, what the next look reads again.
    pub fn seen(&self, tty: TtyNr) -> Option<&Foreground> {
        self.ttys.get(&tty).and_then(|s| s.seen.as_ref())
    }

    /// The look due for `tty`'s pending accesses; `None` when there were none.
    pub fn judge(&mut self, tty: TtyNr, look: std::io::Result<Foreground>, now: u64) -> Option<Outcome> {
        let state = self.ttys.get_mut(&tty)?;
        let pending = state.pending.take()?;
        let Ok(look) = look else {
            // The next look compares with the last one that could be read.
            return Some(Outcome::Unverified { at: pending.last });
        };
        let before = state.seen.replace(look.clone()).unwrap_or_default();
        let covered = pending.first <= state.looked_at + COVER_USEC;
        state.looked_at = now;
        Some(match judge(&before, &look) {
            Verdict::Read(reader) => {
                let periodic = state.rhythm.input(pending.first, pending.last, pending.echoed);
                Outcome::Read { at: pending.last, reader: reader.label(), periodic }
            }
            Verdict::NotARead => Outcome::Ignored { at: pending.last, events: pending.events, foreground: look.names(), report: !covered },
            Verdict::Unknown => Outcome::Ignored { at: pending.last, events: pending.events, foreground: look.names(), report: false },
        })
    }

    pub fn forget(&mut self, tty: TtyNr) {
        self.ttys.remove(&tty);
    }

    /// Moves every time held by a step of the wall clock.
    pub fn shift_clock(&mut self, delta: i64) {
        let shift = |t: &mut u64| *t = crate::sys::clock::shift(*t, delta);
        for state in self.ttys.values_mut() {
            if let Some(p) = &mut state.pending {
                shift(&mut p.first);
                shift(&mut p.last);
            }
            shift(&mut state.looked_at);
            for burst in &mut state.rhythm.bursts {
                shift(&mut burst.start);
                shift(&mut burst.last);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Burst {
    start: u64,
    last: u64,
    echoed: bool,
}

/// The last bursts of input read on a tty.
#[derive(Debug, Default)]
struct Rhythm {
    bursts: VecDeque<Burst>,
}

impl Rhythm {
    /// Input read from `first` to `last` (`echoed`: output came after it). Returns the
    /// period when the last bursts came at a fixed one, none of them echoed.
    fn input(&mut self, first: u64, last: u64, echoed: bool) -> Option<u64> {
        if let Some(current) = self.bursts.back_mut()
            && first <= current.last + BURST_GAP_USEC
        {
            current.last = current.last.max(last);
            current.echoed |= echoed;
            return None;
        }
        self.bursts.push_back(Burst { start: first, last, echoed });
        if self.bursts.len() > PERIODIC_BURSTS {
            self.bursts.pop_front();
        }
        periodic(&self.bursts)
    }

    fn output(&mut self, at: u64) {
        if let Some(current) = self.bursts.back_mut()
            && at >= current.start
            && at <= current.last + ECHO_WINDOW_USEC
        {
            current.echoed = true;
        }
    }
}

/// The period of `bursts` when there are enough of them, at starts a fixed period apart,
/// and none but the newest (whose echo may still come) was echoed.
fn periodic(bursts: &VecDeque<Burst>) -> Option<u64> {
    if bursts.len() < PERIODIC_BURSTS || bursts.iter().take(bursts.len() - 1).any(|b| b.echoed) {
        return None;
    }
    let starts: Vec<u64> = bursts.iter().map(|b| b.start).collect();
    let periods: Vec<u64> = starts.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    let (min, max) = (periods.iter().min()?, periods.iter().max()?);
    let mean = periods.iter().sum::<u64>() / periods.len() as u64;
    (max - min <= PERIOD_TOLERANCE_USEC.max(mean / 20)).then_some(mean)
}

#[cfg(test)]
mod tests;
