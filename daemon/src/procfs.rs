//! What vigild reads from /proc about processes.

use std::fs;

/// The kernel's "unset" audit session id.
pub const NO_AUDIT_SESSION: u32 = u32::MAX;

/// `/proc/PID/sessionid`, `NO_AUDIT_SESSION` when unset or unreadable.
pub fn audit_session_id(pid: u32) -> u32 {
    fs::read_to_string(format!("/proc/{pid}/sessionid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NO_AUDIT_SESSION)
}

/// The fields of `/proc/PID/stat` vigild uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub ppid: u32,
    pub tty_nr: u32,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let pid = text.split_once(' ')?.0.parse().ok()?;
    let after_comm = &text[text.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let _session = fields.next()?;
    let tty_nr = fields.next()?.parse::<i64>().ok()? as u32;
    Some(Stat { pid, ppid, tty_nr })
}

pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process's stat (the ones that vanish while reading are skipped).
pub fn all_stats() -> Vec<Stat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// `pid` and all its descendants, from one snapshot of /proc.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_command_name() {
        let s = parse_stat("1234 (a) b ) (c) S 1 1234 1234 34817 0 0").unwrap();
        assert_eq!(s, Stat { pid: 1234, ppid: 1, tty_nr: 34817 });
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("").is_none());
    }

    #[test]
    fn tree_follows_children() {
        let stats = [
            Stat { pid: 10, ppid: 1, tty_nr: 0 },
            Stat { pid: 11, ppid: 10, tty_nr: 0 },
            Stat { pid: 12, ppid: 11, tty_nr: 0 },
            Stat { pid: 13, ppid: 1, tty_nr: 0 },
        ];
        assert_eq!(process_tree(10, &stats), vec![10, 11, 12]);
    }
}
