//! Terminals: which ttys belong to a session, and what happens on them.
//!
//! A session's ttys are found in /proc, from the `tty_nr` of the leader's descendants:
//! under sshd, PAM_TTY is the word `ssh` and the pty appears after the session opened,
//! on a child process. New ptys are noticed through inotify on `/dev/pts` (IN_CREATE),
//! so multiplexed ssh channels are tracked as they open. Input on a tty is seen as
//! IN_ACCESS on its device (a read by the session), output as IN_MODIFY: both at once,
//! not at the 8-second grain of the device's atime, which stays the fallback.
//!
//! A tty found so is claimed for the session only when a process of the session has it
//! at that moment (`tty_claims.rs`), and it is watched before that check: a pty closed
//! after the check brings its IN_IGNORED, one closed before fails the check.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;

use crate::sys::procfs::Stat;

// tty_nr and device names are shared with the module and the test harness (vigil-host);
// what vigild does with a session's ttys stays here.
pub use vigil_host::tty::*;

/// The ttys of the given processes.
pub fn ttys_of(pids: &[u32], stats: &[Stat]) -> Vec<TtyNr> {
    let mut ttys: Vec<TtyNr> =
        stats.iter().filter(|s| s.tty_nr != 0 && pids.contains(&s.pid) && device_path(s.tty_nr).is_some()).map(|s| s.tty_nr).collect();
    ttys.sort_unstable();
    ttys.dedup();
    ttys
}

/// Device times: (atime, mtime) in µs since the epoch: last input read, last output.
pub fn device_times(tty_nr: TtyNr) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(device_path(tty_nr)?).ok()?;
    let usec = |secs: i64, nsecs: i64| (secs.max(0) as u64) * 1_000_000 + (nsecs.max(0) as u64) / 1000;
    Some((usec(meta.atime(), meta.atime_nsec()), usec(meta.mtime(), meta.mtime_nsec())))
}

/// What inotify reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtyEvent {
    /// The session read input from the tty.
    Input(TtyNr),
    /// Something wrote to the tty.
    Output(TtyNr),
    /// The device went away (the pty was closed).
    Gone(TtyNr),
    /// A new pty appeared in /dev/pts.
    NewPts(u32),
}

/// nix's Inotify as tokio's AsyncFd wants it.
struct InotifyFd(Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// One inotify instance for all watched ttys and `/dev/pts` itself.
pub struct TtyWatcher {
    fd: AsyncFd<InotifyFd>,
    by_wd: HashMap<WatchDescriptor, TtyNr>,
    by_tty: HashMap<TtyNr, WatchDescriptor>,
    pts_dir: Option<WatchDescriptor>,
}

impl TtyWatcher {
    pub fn new() -> std::io::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let pts_dir = inotify.add_watch("/dev/pts", AddWatchFlags::IN_CREATE).ok();
        // SAFETY: the AsyncFd owns the inotify descriptor for its whole life.
        let fd = unsafe { AsyncFd::register(InotifyFd(inotify)) }.map_err(|e| e.into_parts().1)?;
        Ok(Self { fd, by_wd: HashMap::new(), by_tty: HashMap::new(), pts_dir })
    }

    /// Starts watching a tty (idempotent).
    pub fn watch(&mut self, tty_nr: TtyNr) -> bool {
        if self.by_tty.contains_key(&tty_nr) {
            return true;
        }
        let Some(path) = device_path(tty_nr) else { return false };
        let mask = AddWatchFlags::IN_ACCESS | AddWatchFlags::IN_MODIFY;
        match self.fd.get_ref().0.add_watch(&path, mask) {
            Ok(wd) => {
                self.by_wd.insert(wd, tty_nr);
                self.by_tty.insert(tty_nr, wd);
                true
            }
            Err(_) => false,
        }
    }

    /// Stops watching a tty no session claims any more. Its IN_IGNORED then names a
    /// watch nobody knows, and is skipped.
    pub fn unwatch(&mut self, tty: TtyNr) {
        if let Some(wd) = self.by_tty.remove(&tty) {
            self.by_wd.remove(&wd);
            let _ = self.fd.get_ref().0.rm_watch(wd);
        }
    }

    /// Waits for the next batch of events.
    pub async fn next_events(&mut self) -> std::io::Result<Vec<TtyEvent>> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.get_inner().0.read_events() {
                Ok(events) => {
                    let mut out = Vec::with_capacity(events.len());
                    for e in events {
                        if Some(e.wd) == self.pts_dir {
                            if let Some(n) = e.name.as_ref().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()) {
                                out.push(TtyEvent::NewPts(n));
                            }
                            continue;
                        }
                        let Some(&tty) = self.by_wd.get(&e.wd) else { continue };
                        if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                            self.by_wd.remove(&e.wd);
                            self.by_tty.remove(&tty);
                            out.push(TtyEvent::Gone(tty));
                        } else if e.mask.contains(AddWatchFlags::IN_ACCESS) {
                            out.push(TtyEvent::Input(tty));
                        } else if e.mask.contains(AddWatchFlags::IN_MODIFY) {
                            out.push(TtyEvent::Output(tty));
                        }
                    }
                    return Ok(out);
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttys_of_processes() {
        let stats = [
            Stat { pid: 10, ppid: 1, tty_nr: 0, start_time: 0 },
            Stat { pid: 11, ppid: 10, tty_nr: pts_tty_nr(3), start_time: 0 },
            Stat { pid: 12, ppid: 11, tty_nr: pts_tty_nr(3), start_time: 0 },
            Stat { pid: 13, ppid: 10, tty_nr: pts_tty_nr(4), start_time: 0 },
            Stat { pid: 14, ppid: 1, tty_nr: pts_tty_nr(5), start_time: 0 },
        ];
        assert_eq!(ttys_of(&[10, 11, 12, 13], &stats), vec![pts_tty_nr(3), pts_tty_nr(4)]);
    }
}
