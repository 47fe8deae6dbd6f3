//! `audit show --follow`: the audit crate follows the file; here, stdout and the end on
//! SIGINT or SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use vigil_audit::timeline::{Filter, follow_files};

/// Follows the last of `files` until SIGINT or SIGTERM (then `Ok`: the admin asked for
/// the end), or until stdout is gone (`| head`: no more wanted, also `Ok`).
pub fn follow(files: &[PathBuf], filter: &Filter, json: bool) -> Result<(), String> {
    let interrupts = Interrupts::catch().map_err(|e| format!("cannot catch SIGINT and SIGTERM: {e}"))?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let followed = follow_files(files, filter, json, &mut out, |pause| interrupts.arrived_within(pause));
    match followed.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        outcome => outcome.map_err(|e| e.to_string()),
    }
}

/// SIGINT and SIGTERM, blocked and read from a signalfd: the follow stops between two
/// looks at the file, with what it printed flushed, instead of dying in the middle of a
/// line (the default action) or running a handler that can only set a flag.
struct Interrupts(SignalFd);

impl Interrupts {
    fn catch() -> nix::Result<Interrupts> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        // vigilctl has a single thread here: blocking in it blocks for the process.
        set.thread_block()?;
        SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map(Interrupts)
    }

    /// Waits `pause`; true once SIGINT or SIGTERM arrived (looked at before and after).
    fn arrived_within(&self, pause: Duration) -> bool {
        if self.arrived() {
            return true;
        }
        std::thread::sleep(pause);
        self.arrived()
    }

    fn arrived(&self) -> bool {
        // An error reading the signalfd (none expected) ends the follow rather than
        // leave it unstoppable but by SIGKILL.
        !matches!(self.0.read_signal(), Ok(None))
    }
}
