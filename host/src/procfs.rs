//! Processes as `/proc` shows them: the parsing of `/proc/PID/stat` and `status`, the
//! kernel audit session, and walks of the process tree.
//!
//! A read that fails because the process is gone is an answer (`None`, nothing, an
//! empty tree); where a caller could take a failed read for "no processes", the
//! function returns the error instead (see [`is_gone`]).

use std::fs;

/// The kernel's "unset" audit session id (and login uid).
pub const NO_AUDIT_SESSION: u32 = u32::MAX;

/// Reads a small /proc file with one read(2): these files are generated on each read,
/// and `read_to_string`'s growing buffer costs several system calls per file.
fn read_small(path: &str) -> Option<String> {
    read_small_checked(path).ok()
}

/// [`read_small`], with the error (see [`is_gone`]): open, one read, close.
fn read_small_checked(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut buffer = [0u8; 1024];
    let n = fs::File::open(path)?.read(&mut buffer)?;
    String::from_utf8(buffer[..n].to_vec()).map_err(std::io::Error::other)
}

/// A /proc file of any length, read until a read returns nothing (a file generated a
/// page at a time, as `children`, may return less than asked before its end), without
/// `read_to_string`'s size query and small first read.
fn read_all(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut text = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    // Bounded: /proc files end; a read of nothing is the end.
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(text).map_err(std::io::Error::other)
}

fn session_id_at(path: &str) -> u32 {
    read_small(path).and_then(|s| s.trim().parse().ok()).unwrap_or(NO_AUDIT_SESSION)
}

/// `/proc/PID/sessionid`, `NO_AUDIT_SESSION` when unset or unreadable.
pub fn audit_session_id(pid: u32) -> u32 {
    session_id_at(&format!("/proc/{pid}/sessionid"))
}

/// This process's audit session (`/proc/self/sessionid`), `NO_AUDIT_SESSION` when
/// unset or unreadable.
pub fn own_audit_session_id() -> u32 {
    session_id_at("/proc/self/sessionid")
}

/// The value of `Key:` in the text of `/proc/PID/status`, blanks around it cut.
pub fn status_value<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

/// The real and effective uids of the `Uid:` line of `/proc/PID/status`.
pub fn status_uids(status: &str) -> (Option<u32>, Option<u32>) {
    let mut ids = status_value(status, "Uid").unwrap_or("").split_whitespace().map(|w| w.parse().ok());
    (ids.next().flatten(), ids.next().flatten())
}

/// The real uid of a process: for sudo, the user who ran it, while its effective uid
/// (what a socket reports) is root.
pub fn real_uid(pid: u32) -> Option<u32> {
    status_uids(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?).0
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_value(&status, "VmRSS")?.strip_suffix("kB")?.trim().parse().ok()
}

/// The fields of `/proc/PID/stat` vigild uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub ppid: u32,
    pub tty_nr: u32,
    /// When the process started (clock ticks since boot): with the pid, it names one
    /// process for good (pids are reused, start times are not).
    pub start_time: u64,
}

/// `/proc/PID/stat` as far as vigil reads it, borrowing the command name from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatLine<'a> {
    pub pid: u32,
    /// Field 2 without its parentheses (at most 15 bytes, any characters).
    pub comm: &'a str,
    /// R, S, D, T, Z, ...
    pub state: char,
    pub ppid: u32,
    /// The process group and session; 0 if the kernel wrote something else.
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: u32,
    /// The process group in the foreground of the controlling terminal (field 8); -1
    /// without one.
    pub tpgid: i32,
    /// CPU time in clock ticks, user plus system (fields 14 and 15), all threads.
    pub cpu_ticks: u64,
    /// How many threads (field 20); 0 if the line stops before it.
    pub threads: u32,
    /// 0 if the line stops before field 22.
    pub start_time: u64,
}

impl From<StatLine<'_>> for Stat {
    fn from(l: StatLine<'_>) -> Self {
        Stat { pid: l.pid, ppid: l.ppid, tty_nr: l.tty_nr, start_time: l.start_time }
    }
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn parse_stat_line(text: &str) -> Option<StatLine<'_>> {
    let pid = text.split_once(' ')?.0.parse().ok()?;
    let close = text.rfind(')')?;
    let comm = text.find('(').and_then(|open| text.get(open + 1..close)).unwrap_or("");
    let mut fields = text[close + 1..].split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().unwrap_or(0);
    let session = fields.next()?.parse().unwrap_or(0);
    let tty_nr = fields.next()?.parse::<i64>().ok()? as u32;
    let tpgid = fields.next().and_then(|v| v.parse().ok()).unwrap_or(-1);
    // Fields 14 and 15 (utime, stime), then 22; the fields read so far are 3 to 8.
    let utime: u64 = fields.nth(5).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let cpu_ticks = utime.saturating_add(stime);
    // Field 20, then 22.
    let threads = fields.nth(4).and_then(|v| v.parse().ok()).unwrap_or(0);
    let start_time = fields.nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(StatLine { pid, comm, state, ppid, pgrp, session, tty_nr, tpgid, cpu_ticks, threads, start_time })
}

/// [`parse_stat_line`], the fields vigild uses.
pub fn parse_stat(text: &str) -> Option<Stat> {
    parse_stat_line(text).map(Stat::from)
}

/// The text of `/proc/PID/stat`. The fields vigil needs come well within the first
/// 1 KiB (the command name is at most 64 bytes).
pub fn stat_text(pid: u32) -> Option<String> {
    read_small(&format!("/proc/{pid}/stat"))
}

pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&stat_text(pid)?)
}

/// [`stat`], telling a process gone (`Ok(None)`) from a read that failed for another
/// reason (out of descriptors), which says nothing about the process.
pub fn stat_checked(pid: u32) -> std::io::Result<Option<Stat>> {
    match read_small_checked(&format!("/proc/{pid}/stat")) {
        Ok(text) => Ok(parse_stat(&text)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The process's stat while it runs: `Ok(None)` when it is gone or a zombie (exited, not
/// yet reaped by its parent: it keeps its pid, its audit session and nothing else); an
/// error when the read failed for another reason (out of descriptors) or the line does
/// not parse, which says nothing about the process.
pub fn running_stat_checked(pid: u32) -> std::io::Result<Option<Stat>> {
    let text = match read_small_checked(&format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let line = parse_stat_line(&text).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable stat line"))?;
    Ok((!matches!(line.state, 'Z' | 'X')).then(|| Stat::from(line)))
}

/// [`running_stat_checked`], any failure taken as `None`.
pub fn running_stat(pid: u32) -> Option<Stat> {
    running_stat_checked(pid).ok().flatten()
}

/// The pids in /proc. An error when /proc cannot be listed (out of file descriptors):
/// "no processes" must never be concluded from a failed read.
pub fn all_pids() -> std::io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")? {
        if let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The pid most recently handed out in this pid namespace (the last field of
/// /proc/loadavg): unchanged means nothing was forked since it was last read.
pub fn last_pid() -> Option<u32> {
    parse_last_pid(&read_small("/proc/loadavg")?)
}

fn parse_last_pid(loadavg: &str) -> Option<u32> {
    loadavg.split_ascii_whitespace().nth(4)?.parse().ok()
}

/// Every process's stat (the ones that vanish while reading are skipped).
pub fn all_stats() -> std::io::Result<Vec<Stat>> {
    Ok(all_pids()?.into_iter().filter_map(stat).collect())
}

/// `pid` and its ancestors, nearest first, up to `max` (stops below PID 1).
pub fn ancestors(pid: u32, max: usize) -> Vec<Stat> {
    let mut chain: Vec<Stat> = Vec::new();
    let mut next = pid;
    while chain.len() < max && next > 1 {
        let Some(s) = stat(next) else { break };
        next = s.ppid;
        chain.push(s);
    }
    chain
}

/// `/proc/PID/loginuid`: the uid the login was made as (pam_loginuid), if set.
pub fn login_uid(pid: u32) -> Option<u32> {
    read_small(&format!("/proc/{pid}/loginuid")).and_then(|s| s.trim().parse().ok()).filter(|&uid| uid != u32::MAX)
}

/// The process's command name (`/proc/PID/comm`, at most 15 bytes).
pub fn comm(pid: u32) -> Option<String> {
    read_small(&format!("/proc/{pid}/comm")).map(|s| s.trim_end_matches('\n').to_string())
}

/// Whether a failed /proc read says the process is gone, rather than that the reader
/// could not read (out of file descriptors or memory): only the first is an answer.
pub fn is_gone(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

/// `pid` and its descendants, walked through `/proc/PID/task/TID/children`: costs the
/// size of the tree, not of the whole process table. `Ok(None)` when the kernel has no
/// children files (CONFIG_PROC_CHILDREN off); then use `process_tree`. An empty tree
/// when `pid` is gone; an error when a read failed for another reason (EMFILE), so
/// that a failed read is never taken for "no processes".
pub fn process_tree_live(pid: u32) -> std::io::Result<Option<Vec<u32>>> {
    Ok(process_tree_and_stats_live(pid)?.map(|(tree, _)| tree))
}

/// [`process_tree_live`] and the stat of every process of the tree (a process gone
/// meanwhile stays in the tree, without a stat, as `stats_of` leaves it out), sorted by
/// pid. A process whose stat says it has one thread has its children read from that
/// one task, without listing `/proc/PID/task` (a thread started meanwhile is as unseen
/// as one started just after a listing). `Ok(None)` without children files.
pub fn process_tree_and_stats_live(pid: u32) -> std::io::Result<Option<(Vec<u32>, Vec<Stat>)>> {
    let mut tree = vec![pid];
    let mut stats = Vec::new();
    let mut i = 0;
    // Bounded: a pid is added once per parent read, and the walk stops at 100,000.
    while i < tree.len() && tree.len() < 100_000 {
        let parent = tree[i];
        i += 1;
        let line = match read_small_checked(&format!("/proc/{parent}/stat")) {
            Ok(text) => parse_stat_line(&text).map(|l| (Stat::from(l), l.threads)),
            Err(e) if is_gone(&e) && parent == pid => return Ok(Some((Vec::new(), Vec::new()))),
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let Some((stat, threads)) = line else { continue };
        stats.push(stat);
        if threads != 1 {
            // Several threads (or a stat without the field): each task's children.
            let tasks = match fs::read_dir(format!("/proc/{parent}/task")) {
                Ok(tasks) => tasks,
                Err(e) if is_gone(&e) && parent == pid => return Ok(Some((Vec::new(), Vec::new()))),
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            for task in tasks {
                let path = task?.path().join("children");
                match read_all(&path.to_string_lossy()) {
                    Ok(text) => tree.extend(text.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && parent == pid => return Ok(None),
                    Err(e) if is_gone(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            continue;
        }
        match read_all(&format!("/proc/{parent}/task/{parent}/children")) {
            Ok(text) => tree.extend(text.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok())),
            // No children files, or the leader gone since its stat: a listing says which.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && parent == pid => return Ok(None),
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    tree.sort_unstable();
    tree.dedup();
    stats.sort_unstable_by_key(|s| s.pid);
    stats.dedup_by_key(|s| s.pid);
    Ok(Some((tree, stats)))
}

/// The stats of the given pids (vanished ones are skipped).
pub fn stats_of(pids: &[u32]) -> Vec<Stat> {
    pids.iter().filter_map(|&p| stat(p)).collect()
}

/// `pid` and all its descendants, from one snapshot of /proc, parents before children.
pub fn process_tree(pid: u32, stats: &[Stat]) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    // Bounded: each pid enters the tree once, and the snapshot is finite.
    while i < tree.len() && tree.len() <= stats.len() {
        let parent = tree[i];
        tree.extend(stats.iter().filter(|s| s.ppid == parent && s.pid != parent).map(|s| s.pid));
        i += 1;
    }
    tree
}

/// Bytes read plus bytes written by the processes (`rchar + wchar` of /proc/PID/io):
/// their I/O on files, pipes, sockets and ttys alike. A process gone meanwhile adds
/// nothing; a read that failed otherwise (EMFILE) is an error, never a smaller sum
/// (a changed sum is activity).
pub fn io_total(pids: &[u32]) -> std::io::Result<u64> {
    let mut total = 0u64;
    for &pid in pids {
        // Seven short lines: one read.
        let text = match read_small_checked(&format!("/proc/{pid}/io")) {
            Ok(text) => text,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("rchar: ").or_else(|| line.strip_prefix("wchar: ")) {
                total = total.saturating_add(v.trim().parse().unwrap_or(0));
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_command_name() {
        let s = parse_stat("1234 (a) b ) (c) S 1 1234 1234 34817 0 0").unwrap();
        assert_eq!(s, Stat { pid: 1234, ppid: 1, tty_nr: 34817, start_time: 0 });
        let l = parse_stat_line("1234 (a) b ) (c) S 1 1234 1234 34817 0 0").unwrap();
        assert_eq!((l.comm, l.state, l.pgrp, l.session), ("a) b ) (c", 'S', 1234, 1234));
        let full = "42 (x) T 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 987654 0";
        let l = parse_stat_line(full).unwrap();
        assert_eq!((l.state, l.cpu_ticks, l.threads, l.start_time), ('T', 12, 3, 987654));
        assert_eq!(l.tpgid, -1, "no controlling terminal");
        let on_tty = parse_stat_line("7 (bash) S 6 7 7 34822 7 4194560 100 0 0 0 7 5 0 0 20 0 1 0 5 0").unwrap();
        assert_eq!((on_tty.tty_nr, on_tty.tpgid, on_tty.cpu_ticks, on_tty.start_time), (34822, 7, 12, 5));
        assert_eq!(parse_stat_line("12 (a) b)) T 1 2 3 0").map(|l| (l.state, l.start_time)), Some(('T', 0)));
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("").is_none());
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tsudo\nUid:\t1000\t0\t0\t0\nVmRSS:\t    4242 kB\n";
        assert_eq!(status_uids(status), (Some(1000), Some(0)));
        assert_eq!(status_value(status, "VmRSS"), Some("4242 kB"));
        assert_eq!(status_value(status, "Vm"), None, "a key is a whole word");
        assert_eq!(status_uids("Name:\tx\n"), (None, None));
        assert_eq!(real_uid(std::process::id()), Some(nix::unistd::getuid().as_raw()));
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn own_audit_session_is_this_process_s() {
        assert_eq!(own_audit_session_id(), audit_session_id(std::process::id()));
        assert_eq!(audit_session_id(u32::MAX), NO_AUDIT_SESSION);
    }

    #[test]
    fn live_tree_finds_a_child() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let tree = process_tree_live(std::process::id()).unwrap().expect("children files");
        assert!(tree.contains(&std::process::id()) && tree.contains(&child.id()), "{tree:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        // Reaped: gone is an answer (no processes), not an error.
        assert_eq!(process_tree_live(child.id()).unwrap(), Some(Vec::new()));
        assert_eq!(io_total(&[child.id()]).unwrap(), 0);
    }

    /// The walk that reads each process's stat on its way finds what a listing of /proc
    /// finds below a process of one thread (a shell with two children), and below one of
    /// several (this test's) the stats `stats_of` reads of its tree.
    #[test]
    fn tree_and_stats_live_find_what_the_two_step_walk_finds() {
        let mut shell = std::process::Command::new("sh").args(["-c", "sleep 30 & sleep 30; wait"]).spawn().unwrap();
        let shell_pid = shell.id();
        let mut grown = Vec::new();
        for _ in 0..200 {
            grown = process_tree_live(shell_pid).unwrap().expect("children files");
            if grown.len() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(grown.len(), 3, "the shell and its two sleeps: {grown:?}");
        let (tree, stats) = process_tree_and_stats_live(shell_pid).unwrap().expect("children files");
        let mut listed = process_tree(shell_pid, &all_stats().unwrap());
        listed.sort_unstable();
        assert_eq!((&tree, &stats), (&listed, &stats_of(&listed)));
        let (tree, stats) = process_tree_and_stats_live(std::process::id()).unwrap().expect("children files");
        assert!(tree.contains(&std::process::id()) && stats.iter().any(|s| s.pid == std::process::id()));
        assert!(stat_line_threads(shell_pid) == Some(1) && stat_line_threads(std::process::id()).is_some_and(|n| n >= 1));
        // The sleeps, by pid, then the shell.
        for &pid in grown.iter().filter(|&&p| p != shell_pid) {
            let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
        }
        shell.kill().unwrap();
        shell.wait().unwrap();
        assert_eq!(process_tree_and_stats_live(shell_pid).unwrap(), Some((Vec::new(), Vec::new())), "gone: no processes");
        assert!(stat_checked(shell_pid).unwrap().is_none());
        assert_eq!(stat_checked(std::process::id()).unwrap(), stat(std::process::id()));
    }

    fn stat_line_threads(pid: u32) -> Option<u32> {
        parse_stat_line(&stat_text(pid)?).map(|l| l.threads)
    }

    #[test]
    fn last_pid_moves_with_a_fork() {
        assert_eq!(parse_last_pid("0.52 0.58 0.59 3/467 14272\n"), Some(14272));
        assert_eq!(parse_last_pid("0.52 0.58"), None);
        let before = last_pid().expect("/proc/loadavg");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        assert_ne!(last_pid(), Some(before), "a fork hands out a new pid");
    }

    #[test]
    fn io_total_counts_this_process() {
        assert!(io_total(&[std::process::id()]).unwrap() > 0);
    }

    #[test]
    fn only_a_missing_process_is_gone() {
        assert!(is_gone(&std::io::Error::from(std::io::ErrorKind::NotFound)));
        assert!(is_gone(&std::io::Error::from_raw_os_error(libc::ESRCH)));
        assert!(!is_gone(&std::io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!is_gone(&std::io::Error::from_raw_os_error(libc::ENOMEM)));
    }

    #[test]
    fn start_time_names_this_process() {
        let mine = stat(std::process::id()).expect("own stat").start_time;
        assert!(mine > 0);
        assert_eq!(stat(std::process::id()).map(|s| s.start_time), Some(mine));
        assert_eq!(stat(u32::MAX), None);
    }

    #[test]
    fn tree_follows_children() {
        let stats = [
            Stat { pid: 10, ppid: 1, tty_nr: 0, start_time: 0 },
            Stat { pid: 11, ppid: 10, tty_nr: 0, start_time: 0 },
            Stat { pid: 12, ppid: 11, tty_nr: 0, start_time: 0 },
            Stat { pid: 13, ppid: 1, tty_nr: 0, start_time: 0 },
        ];
        assert_eq!(process_tree(10, &stats), vec![10, 11, 12]);
    }
}
