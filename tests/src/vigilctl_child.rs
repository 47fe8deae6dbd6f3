//! A vigilctl that keeps running (`audit show --follow`): its command line declared for
//! the conformance map, its stdout read line by line as it prints, and ended by its own
//! pid (SIGTERM, then SIGKILL) when dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::paths;
use crate::process::{Ledger, ManagedChild, StdoutLines, read_lossy};

pub struct VigilctlChild {
    child: ManagedChild,
    lines: StdoutLines,
    stderr_path: PathBuf,
}

impl VigilctlChild {
    /// `vigilctl ARGS` as root, stdout piped, stderr in `<dir>/vigilctl-<n>.stderr`.
    pub(crate) fn spawn(args: &[&OsStr], dir: &Path, n: u32, ledger: &Ledger) -> VigilctlChild {
        crate::conformance::vigilctl_ran(args);
        let name = format!("vigilctl-{n}");
        let stderr_path = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(paths::vigilctl_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("create vigilctl's stderr file"));
        let mut child = ManagedChild::spawn(&name, &mut cmd, ledger);
        let lines = StdoutLines::spawn(child.child_mut().stdout.take().expect("piped stdout"));
        VigilctlChild { child, lines, stderr_path }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Waits up to `timeout` for a line `pick` accepts (see [`StdoutLines::expect`]).
    #[track_caller]
    pub fn expect<T>(&mut self, what: &str, timeout: Duration, pick: impl FnMut(&str) -> Option<T>) -> T {
        self.lines.expect(&mut self.child, &self.stderr_path, what, timeout, pick)
    }

    /// Every line read so far.
    pub fn seen(&self) -> &[String] {
        &self.lines.seen
    }

    pub fn stderr_text(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Sends `sig` and waits up to `timeout` for the exit; `None` when it still runs
    /// (it is killed on drop). What it printed before the end is collected.
    pub fn stop_with(&mut self, sig: Signal, timeout: Duration) -> Option<ExitStatus> {
        self.child.signal(sig).unwrap_or_else(|e| panic!("{e}; stderr:\n{}", self.stderr_text()));
        let status = self.child.wait_exit(timeout);
        if status.is_some() {
            self.lines.drain(Duration::from_secs(2));
        }
        status
    }
}
