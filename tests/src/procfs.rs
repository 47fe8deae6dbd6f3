//! Reading processes, terminals and TCP connections from `/proc`, and ending processes
//! by pid with a check that the pid still names the same process (its start time).
//!
//! The ssh support uses it to find the server side of a session under the harness's
//! sshd (`[priv]`, `user@pts/N`, the shell) and the pty of the user's shell.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use vigil_host::procfs as host;
use vigil_host::tty::device_path;

use crate::wait::try_wait_for;

/// The parsing of /proc/PID/stat and status is vigild's (vigil-host); what follows are
/// the harness's conveniences over it.
pub use vigil_host::procfs::rss_kib;

/// One process as `/proc/PID/{stat,status,cmdline}` showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// R, S, D, T, Z, ...
    pub state: char,
    pub pgrp: i32,
    pub session: i32,
    /// The controlling terminal as the kernel encodes it (0: none); see [`device_path`].
    pub tty_nr: u32,
    /// Start time in clock ticks after boot: with the pid, it names one process.
    pub start_time: u64,
    /// Real and effective uid.
    pub uid: u32,
    pub euid: u32,
    /// `/proc/PID/comm` (at most 15 bytes).
    pub comm: String,
    /// The arguments joined by spaces, trailing blanks cut (sshd rewrites its title).
    pub cmdline: String,
}

impl ProcInfo {
    /// Reads a process; `None` if it does not exist (any more).
    pub fn read(pid: u32) -> Option<ProcInfo> {
        let text = host::stat_text(pid)?;
        let stat = host::parse_stat_line(&text)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let (uid, euid) = host::status_uids(&status);
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ").trim_end().to_string();
        Some(ProcInfo {
            pid,
            ppid: stat.ppid,
            state: stat.state,
            pgrp: stat.pgrp,
            session: stat.session,
            tty_nr: stat.tty_nr,
            start_time: stat.start_time,
            uid: uid.unwrap_or(u32::MAX),
            euid: euid.unwrap_or(u32::MAX),
            comm: stat.comm.to_string(),
            cmdline,
        })
    }

    /// False for zombies: they have ended, only their parent has not collected them.
    pub fn is_alive(&self) -> bool {
        self.state != 'Z'
    }

    /// True while `/proc/PID` is this same process (same start time) and not a zombie.
    pub fn still_running(&self) -> bool {
        ProcInfo::read(self.pid).is_some_and(|now| now.start_time == self.start_time && now.is_alive())
    }

    /// The controlling terminal (`/dev/pts/N`, `/dev/ttyN`), from `tty_nr`; if the
    /// kernel shows none, where descriptor 0 points when that is a terminal.
    pub fn tty(&self) -> Option<PathBuf> {
        device_path(self.tty_nr).or_else(|| {
            let target = std::fs::read_link(format!("/proc/{}/fd/0", self.pid)).ok()?;
            let text = target.to_string_lossy();
            (text.starts_with("/dev/pts/") || text.starts_with("/dev/tty")).then_some(target)
        })
    }

    /// Socket inodes among the process's descriptors.
    pub fn socket_inodes(&self) -> Vec<u64> {
        socket_inodes(self.pid)
    }

    /// Sends `sig` if the pid still names this process; false if it has ended.
    pub fn signal(&self, sig: Signal) -> bool {
        self.still_running() && kill(Pid::from_raw(self.pid as i32), sig).is_ok()
    }
}

/// Every process now (those that vanish while being read are left out).
pub fn all_processes() -> Vec<ProcInfo> {
    let mut out: Vec<ProcInfo> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(ProcInfo::read)
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// The children of `pid` in a snapshot.
pub fn children_in(procs: &[ProcInfo], pid: u32) -> Vec<ProcInfo> {
    procs.iter().filter(|p| p.ppid == pid).cloned().collect()
}

/// Every descendant of `pid` (not `pid` itself), parents before children.
pub fn descendants(pid: u32) -> Vec<ProcInfo> {
    descendants_in(&all_processes(), pid)
}

/// [`descendants`] in a snapshot, walked as vigild walks a session's tree.
pub fn descendants_in(procs: &[ProcInfo], pid: u32) -> Vec<ProcInfo> {
    let links: Vec<host::Stat> =
        procs.iter().map(|p| host::Stat { pid: p.pid, ppid: p.ppid, tty_nr: p.tty_nr, start_time: p.start_time }).collect();
    let tree = host::process_tree(pid, &links);
    tree.iter().skip(1).filter_map(|d| procs.iter().find(|p| p.pid == *d).cloned()).collect()
}

/// Processes whose real or effective uid is `uid`.
pub fn processes_of_uid(uid: u32) -> Vec<ProcInfo> {
    all_processes().into_iter().filter(|p| p.uid == uid || p.euid == uid).collect()
}

/// Ends the given processes: SIGCONT and SIGTERM to each (only if its pid still names
/// the same process), up to `grace` for them to go, then SIGKILL to what is left and up
/// to 3 s more. Returns the processes still running after that (normally none). Zombies
/// count as ended: their parent collects them.
pub fn end_processes(procs: &[ProcInfo], grace: Duration) -> Vec<ProcInfo> {
    let alive: Vec<&ProcInfo> = procs.iter().filter(|p| p.still_running()).collect();
    if alive.is_empty() {
        return Vec::new();
    }
    for p in &alive {
        p.signal(Signal::SIGCONT);
        p.signal(Signal::SIGTERM);
    }
    let left = |ps: &[&ProcInfo]| ps.iter().filter(|p| p.still_running()).map(|p| (*p).clone()).collect::<Vec<_>>();
    let check = || {
        let l = left(&alive);
        if l.is_empty() { Ok(()) } else { Err(format!("{} running", l.len())) }
    };
    if try_wait_for(grace, check).is_ok() {
        return Vec::new();
    }
    let stubborn = left(&alive);
    for p in &stubborn {
        p.signal(Signal::SIGKILL);
    }
    let stubborn_refs: Vec<&ProcInfo> = stubborn.iter().collect();
    let _ = try_wait_for(Duration::from_secs(3), || {
        let l = left(&stubborn_refs);
        if l.is_empty() { Ok(()) } else { Err(format!("{} running", l.len())) }
    });
    left(&stubborn_refs)
}

/// Socket inodes among the descriptors of `pid` (empty if it cannot be read).
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let text = target.to_str()?;
            text.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// How many descriptors `pid` holds (`/proc/PID/fd`); `None` if it cannot be read.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The soft and hard `Max open files` of `pid` (`/proc/PID/limits`; `u64::MAX` for
/// unlimited).
pub fn nofile_limits(pid: u32) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let rest = limits.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    let mut words = rest.split_whitespace().map(|w| if w == "unlimited" { Some(u64::MAX) } else { w.parse().ok() });
    Some((words.next()??, words.next()??))
}

/// One line of `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConn {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// The kernel's state number (1 = established, 10 = listen).
    pub state: u8,
    pub inode: u64,
}

pub const TCP_ESTABLISHED: u8 = 1;

/// The IPv4 TCP sockets of this network namespace.
pub fn tcp_connections() -> Vec<TcpConn> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines().skip(1).filter_map(parse_tcp_line).collect()
}

fn parse_tcp_line(line: &str) -> Option<TcpConn> {
    let f: Vec<&str> = line.split_whitespace().collect();
    Some(TcpConn {
        local: parse_addr(f.get(1)?)?,
        remote: parse_addr(f.get(2)?)?,
        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
        inode: f.get(9)?.parse().ok()?,
    })
}

/// `0100007F:A4CE` → 127.0.0.1:42190: the address is the network-order word printed as a
/// host-order number, the port a plain number.
fn parse_addr(s: &str) -> Option<SocketAddrV4> {
    let (ip, port) = s.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

/// The established TCP connections among the descriptors of `pid`.
pub fn tcp_connections_of(pid: u32) -> Vec<TcpConn> {
    let inodes = socket_inodes(pid);
    if inodes.is_empty() {
        return Vec::new();
    }
    tcp_connections().into_iter().filter(|c| c.state == TCP_ESTABLISHED && inodes.contains(&c.inode)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_descriptors_memory_and_limits() {
        let me = std::process::id();
        assert!(fd_count(me).is_some_and(|n| n >= 3), "stdin, stdout, stderr at least");
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        let (soft, hard) = nofile_limits(me).expect("Max open files");
        let (rsoft, rhard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((soft, hard), (rsoft, rhard));
    }

    #[test]
    fn tcp_line_parses() {
        let line = "   3: 0100007F:A4CE 0100007F:E7A4 01 00000000:00000000 02:0009C2B5 00000000     0        0 152462 1 0000000000000000 20 4 30 10 -1";
        let c = parse_tcp_line(line).unwrap();
        assert_eq!(c.local, "127.0.0.1:42190".parse().unwrap());
        assert_eq!(c.remote, "127.0.0.1:59300".parse().unwrap());
        assert_eq!(c.state, TCP_ESTABLISHED);
        assert_eq!(c.inode, 152462);
    }

    #[test]
    fn reads_own_process_and_children() {
        let me = ProcInfo::read(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert_eq!(me.uid, nix::unistd::getuid().as_raw());
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        // The child's cmdline is empty until its exec is done: look until it is set
        // (bounded: 200 looks, 10 ms apart).
        let mut found = None;
        for _ in 0..200 {
            found = descendants(std::process::id()).into_iter().find(|p| p.pid == child.id() && !p.cmdline.is_empty());
            if found.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        let found = found.expect("sleep among the descendants");
        assert_eq!(found.comm, "sleep");
        assert_eq!(found.cmdline, "sleep 30");
        assert!(!found.still_running());
    }

    #[test]
    fn end_processes_ends_by_pid() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let info = ProcInfo::read(child.id()).unwrap();
        let waiter = std::thread::spawn(move || child.wait());
        let left = end_processes(std::slice::from_ref(&info), Duration::from_secs(3));
        assert!(left.is_empty());
        waiter.join().unwrap().unwrap();
        assert!(!info.still_running());
    }
}
