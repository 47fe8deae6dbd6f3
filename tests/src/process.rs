//! Processes the harness starts: a [`ManagedChild`] is ended by its own pid when it is
//! dropped (SIGCONT in case a test stopped it, SIGTERM, up to 3 s, SIGKILL, reap), and
//! [`run_bounded`] runs a short command with a deadline.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::wait::try_wait_for;

/// How long a process gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

/// One process the harness started, in start order.
#[derive(Debug, Clone)]
pub struct SpawnRecord {
    pub name: String,
    pub pid: u32,
}

/// Every process a harness started (a history: entries stay after the process ended).
pub type Ledger = Rc<RefCell<Vec<SpawnRecord>>>;

/// A child process that is ended when this value is dropped.
pub struct ManagedChild {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout_path: Option<PathBuf>,
    stderr_path: Option<PathBuf>,
}

impl ManagedChild {
    /// Spawns `cmd` as it is configured (stdio included) and records it in `ledger`.
    pub fn spawn(name: &str, cmd: &mut Command, ledger: &Ledger) -> ManagedChild {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        ledger.borrow_mut().push(SpawnRecord { name: name.to_string(), pid: child.id() });
        ManagedChild { name: name.to_string(), child, status: None, stdout_path: None, stderr_path: None }
    }

    /// Spawns `cmd` with stdin from /dev/null and stdout/stderr appended to
    /// `<dir>/<name>.stdout` and `<dir>/<name>.stderr` (a restart appends to the same files).
    pub fn spawn_logged(name: &str, cmd: &mut Command, dir: &Path, ledger: &Ledger) -> ManagedChild {
        let stdout_path = dir.join(format!("{name}.stdout"));
        let stderr_path = dir.join(format!("{name}.stderr"));
        cmd.stdin(Stdio::null()).stdout(append_file(&stdout_path)).stderr(append_file(&stderr_path));
        let mut child = ManagedChild::spawn(name, cmd, ledger);
        child.stdout_path = Some(stdout_path);
        child.stderr_path = Some(stderr_path);
        child
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The underlying child, for its stdin/stdout pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whatever the process wrote to stdout so far (only for [`ManagedChild::spawn_logged`]).
    pub fn stdout_text(&self) -> String {
        self.stdout_path.as_deref().map(read_lossy).unwrap_or_default()
    }

    /// Whatever the process wrote to stderr so far (only for [`ManagedChild::spawn_logged`]).
    pub fn stderr_text(&self) -> String {
        self.stderr_path.as_deref().map(read_lossy).unwrap_or_default()
    }

    /// The exit status if the process has ended (it is reaped then), else `None`.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) => {}
                Err(e) => eprintln!("vigil-e2e: try_wait on {} ({}): {e}", self.name, self.pid()),
            }
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exited().is_none()
    }

    /// Sends `sig` to this process only. A process already reaped is not signalled
    /// (its pid may belong to someone else by now).
    pub fn signal(&mut self, sig: Signal) -> Result<(), String> {
        if self.try_exited().is_some() {
            return Err(format!("{} ({}) has already exited: {:?}", self.name, self.pid(), self.status));
        }
        kill(Pid::from_raw(self.pid() as i32), sig).map_err(|e| format!("kill({}, {sig}) for {}: {e}", self.pid(), self.name))
    }

    /// Waits up to `timeout` for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        try_wait_for(timeout, || self.try_exited().ok_or_else(|| "running".to_string())).ok()
    }

    /// SIGKILL and reap.
    pub fn kill_now(&mut self) -> Option<ExitStatus> {
        if self.try_exited().is_none() {
            let _ = self.signal(Signal::SIGKILL);
            match self.child.wait() {
                Ok(status) => self.status = Some(status),
                Err(e) => eprintln!("vigil-e2e: wait on {} ({}): {e}", self.name, self.pid()),
            }
        }
        self.status
    }

    /// Ends the process: SIGCONT (a test may have stopped it), SIGTERM, up to
    /// [`TERM_GRACE`], then SIGKILL; always reaps.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        if self.try_exited().is_some() {
            return self.status;
        }
        let _ = self.signal(Signal::SIGCONT);
        let _ = self.signal(Signal::SIGTERM);
        if let Some(status) = self.wait_exit(TERM_GRACE) {
            return Some(status);
        }
        eprintln!("vigil-e2e: {} ({}) ignored SIGTERM for {TERM_GRACE:?}; sending SIGKILL", self.name, self.pid());
        self.kill_now()
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The lines a child writes on stdout, read by a thread (which ends when the pipe
/// closes) and handed over as they come; every line read is kept in `seen`.
pub struct StdoutLines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
}

impl StdoutLines {
    pub fn spawn(stdout: ChildStdout) -> StdoutLines {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        StdoutLines { rx, seen: Vec::new() }
    }

    /// Waits up to `timeout` for a line `pick` accepts and returns what it made of it;
    /// panics, with the lines seen and `child`'s stderr, on timeout or when the child's
    /// stdout closes first. `what` names the line awaited.
    #[track_caller]
    pub fn expect<T>(
        &mut self,
        child: &mut ManagedChild,
        stderr: &Path,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let picked = pick(&line);
                    self.seen.push(line);
                    if let Some(value) = picked {
                        return value;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed no {what} line within {timeout:?}; stdout so far: {:?}; stderr:\n{}",
                    child.name(),
                    self.seen,
                    read_lossy(stderr)
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait_exit(Duration::from_secs(5));
                    panic!(
                        "{} exited ({status:?}) before printing {what}; stdout: {:?}; stderr:\n{}",
                        child.name(),
                        self.seen,
                        read_lossy(stderr)
                    )
                }
            }
        }
    }

    /// Collects what is left until the pipe closes (at most `per_line` per line).
    pub fn drain(&mut self, per_line: Duration) {
        while let Ok(line) = self.rx.recv_timeout(per_line) {
            self.seen.push(line);
        }
    }
}

fn append_file(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// Reads a file as text, replacing invalid UTF-8; a missing file reads as "".
pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// Runs a short command to its end with a deadline; panics (after killing it) if it runs
/// longer than `timeout`. stdout and stderr are captured; stdin is /dev/null.
#[track_caller]
pub fn run_bounded(cmd: &mut Command, timeout: Duration, what: &str) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let status = try_wait_for(timeout, || match child.try_wait() {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(format!("still running after {:?}", start.elapsed())),
        Err(e) => Err(format!("try_wait: {e}")),
    });
    match status {
        Ok(status) => Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() },
        Err(state) => {
            let _ = child.kill();
            let _ = child.wait();
            // The reader threads are not joined: a grandchild may still hold the pipes.
            panic!("{what} ({cmd:?}) did not finish within {timeout:?}: {state}");
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// `Output` as text, for panic messages.
pub fn describe_output(out: &Output) -> String {
    format!("status: {}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// True when `/proc/PID` exists and the process is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    pid_state(pid).is_some_and(|state| state != 'Z')
}

/// The state letter of `/proc/PID/stat` (R, S, T, Z, ...), if the process exists.
pub fn pid_state(pid: u32) -> Option<char> {
    Some(vigil_host::procfs::parse_stat_line(&vigil_host::procfs::stat_text(pid)?)?.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_child_is_ended_on_drop() {
        let ledger: Ledger = Default::default();
        let child = ManagedChild::spawn("sleep", Command::new("sleep").arg("30"), &ledger);
        let pid = child.pid();
        assert!(pid_alive(pid));
        drop(child);
        assert!(!pid_alive(pid));
        assert_eq!(ledger.borrow().len(), 1);
    }

    #[test]
    fn stopped_child_is_ended_on_drop() {
        let ledger: Ledger = Default::default();
        let mut child = ManagedChild::spawn("sleep", Command::new("sleep").arg("30"), &ledger);
        child.signal(Signal::SIGSTOP).unwrap();
        let pid = child.pid();
        drop(child);
        assert!(!pid_alive(pid));
    }

    #[test]
    fn run_bounded_captures_output() {
        let out = run_bounded(Command::new("sh").args(["-c", "echo out; echo err >&2"]), Duration::from_secs(5), "sh");
        assert!(out.status.success());
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    #[should_panic(expected = "did not finish")]
    fn run_bounded_kills_on_timeout() {
        run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(100), "sleep");
    }
}
