//! Driving the `pam_host` program: a one-shot run ([`PamHostRun`]) or a session held
//! open until the test says so ([`PamHostSession`], `--wait-stdin`).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Ledger, ManagedChild, StdoutLines, read_lossy};
use crate::report::PamHostReport;
use crate::wait::{try_wait_for, try_wait_for_polling};

/// How long a session may take to open or close through `--wait-stdin`.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// The command line of one pam_host run.
#[derive(Debug, Clone)]
pub struct PamHostCmd {
    pub bin: PathBuf,
    pub service: String,
    /// The directory of the service file (`--confdir`); /etc/pam.d when unset.
    pub confdir: Option<PathBuf>,
    pub user: String,
    pub tty: Option<String>,
    pub rhost: Option<String>,
    pub ruser: Option<String>,
    pub password: Option<String>,
    pub cycles: u32,
    pub auth: bool,
    /// `--account`: the cycles are pam_acct_mgmt calls, no session opened.
    pub account: bool,
    pub json: bool,
    /// `--ignore-hup`: pam_host outlives SIGHUP (only SIGKILL ends it).
    pub ignore_hup: bool,
    /// Values as raw bytes (no NUL), given as `--flag=VALUE`; each replaces the string
    /// value of the same flag (`--user`, `--tty`, `--rhost`, `--ruser`). For values that
    /// are not UTF-8 or start with `-`.
    pub raw: Vec<(&'static str, Vec<u8>)>,
}

impl PamHostCmd {
    pub fn new(bin: &Path, service: &str, user: &str) -> Self {
        PamHostCmd {
            bin: bin.to_path_buf(),
            service: service.to_string(),
            confdir: None,
            user: user.to_string(),
            tty: None,
            rhost: None,
            ruser: None,
            password: None,
            cycles: 1,
            auth: false,
            account: false,
            json: true,
            ignore_hup: false,
            raw: Vec::new(),
        }
    }

    /// Gives `flag` (`--user`, `--tty`, `--rhost` or `--ruser`) as raw bytes, replacing
    /// its string value: `--flag=VALUE`, so any byte but NUL passes.
    pub fn raw(mut self, flag: &'static str, value: &[u8]) -> Self {
        assert!(matches!(flag, "--user" | "--tty" | "--rhost" | "--ruser"), "raw value for {flag}");
        self.raw.retain(|(f, _)| *f != flag);
        self.raw.push((flag, value.to_vec()));
        self
    }

    /// Reads the service file from `dir` (pam_start_confdir) instead of /etc/pam.d.
    pub fn confdir(mut self, dir: &Path) -> Self {
        self.confdir = Some(dir.to_path_buf());
        self
    }

    pub fn tty(mut self, tty: &str) -> Self {
        self.tty = Some(tty.to_string());
        self
    }

    pub fn rhost(mut self, rhost: &str) -> Self {
        self.rhost = Some(rhost.to_string());
        self
    }

    pub fn ruser(mut self, ruser: &str) -> Self {
        self.ruser = Some(ruser.to_string());
        self
    }

    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    pub fn cycles(mut self, n: u32) -> Self {
        self.cycles = n;
        self
    }

    pub fn auth(mut self) -> Self {
        self.auth = true;
        self
    }

    /// The cycles are pam_acct_mgmt calls, each timed alone (`--account`).
    pub fn account(mut self) -> Self {
        self.account = true;
        self
    }

    /// `--ignore-hup`: as a login's leader that outlives SIGHUP.
    pub fn ignore_hup(mut self) -> Self {
        self.ignore_hup = true;
        self
    }

    pub fn no_json(mut self) -> Self {
        self.json = false;
        self
    }

    /// The arguments, without `--wait-stdin`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--service".into(), self.service.clone(), "--user".into(), self.user.clone()];
        for (flag, value) in [("--tty", &self.tty), ("--rhost", &self.rhost), ("--ruser", &self.ruser), ("--password", &self.password)] {
            if let Some(v) = value {
                args.push(flag.into());
                args.push(v.clone());
            }
        }
        if let Some(dir) = &self.confdir {
            args.push("--confdir".into());
            args.push(dir.display().to_string());
        }
        args.push("--cycles".into());
        args.push(self.cycles.to_string());
        if self.auth {
            args.push("--auth".into());
        }
        if self.account {
            args.push("--account".into());
        }
        if self.json {
            args.push("--json".into());
        }
        if self.ignore_hup {
            args.push("--ignore-hup".into());
        }
        args
    }

    /// [`PamHostCmd::args`] with the raw values in place of their string flags.
    pub fn args_os(&self) -> Vec<OsString> {
        let args = self.args();
        let mut out: Vec<OsString> = Vec::with_capacity(args.len() + 2 * self.raw.len());
        let mut i = 0;
        while i < args.len() {
            if self.raw.iter().any(|(flag, _)| *flag == args[i]) {
                i += 2; // the flag and its value
                continue;
            }
            out.push(args[i].clone().into());
            i += 1;
        }
        for (flag, value) in &self.raw {
            let mut arg = format!("{flag}=").into_bytes();
            arg.extend_from_slice(value);
            out.push(OsString::from_vec(arg));
        }
        out
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(self.args_os());
        cmd
    }

    /// Runs to the end (bounded by `timeout`), output kept under `dir`.
    pub(crate) fn run(&self, dir: &Path, n: u32, timeout: Duration, ledger: &Ledger) -> PamHostRun {
        let name = format!("pam_host-{n}");
        let mut cmd = self.command();
        let start = Instant::now();
        let mut child = ManagedChild::spawn_logged(&name, &mut cmd, dir, ledger);
        let pid = child.pid();
        // A fine poll: tests bound this run's wall time to a tenth of a second or so.
        let status = try_wait_for_polling(timeout, Duration::from_millis(5), || child.try_exited().ok_or_else(|| "running".to_string()));
        let elapsed = start.elapsed();
        let stdout = child.stdout_text();
        let stderr = child.stderr_text();
        let status = status.unwrap_or_else(|_| {
            child.terminate();
            panic!("pam_host ({:?}) did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", self.args())
        });
        PamHostRun::new(pid, status, stdout, stderr, elapsed)
    }

    /// Starts `pam_host --wait-stdin` and waits for the first `OPEN` line.
    pub(crate) fn spawn_session(&self, dir: &Path, n: u32, ledger: &Ledger) -> PamHostSession {
        let name = format!("pam_host-{n}");
        let stderr_path = dir.join(format!("{name}.stderr"));
        let mut cmd = self.command();
        cmd.arg("--wait-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("create pam_host stderr file"));
        let mut child = ManagedChild::spawn(&name, &mut cmd, ledger);
        let lines = StdoutLines::spawn(child.child_mut().stdout.take().expect("piped stdout"));
        let mut session = PamHostSession { child, lines, stderr_path, open: None };
        let (rc, id) = session.expect_line("OPEN");
        let rc = rc.unwrap_or_else(|| panic!("OPEN line without a return code: {:?}", session.lines.seen));
        session.open = Some((rc, id));
        session
    }
}

/// The result of a pam_host run that ended.
#[derive(Debug)]
pub struct PamHostRun {
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Wall clock from spawn to exit.
    pub elapsed: Duration,
    /// The JSON report (the last stdout line), when there is one.
    pub report: Option<PamHostReport>,
}

impl PamHostRun {
    fn new(pid: u32, status: ExitStatus, stdout: String, stderr: String, elapsed: Duration) -> Self {
        let report = stdout.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok());
        PamHostRun { pid, status, stdout, stderr, elapsed, report }
    }

    /// The report; panics with the output if pam_host failed or printed none.
    #[track_caller]
    pub fn report(&self) -> &PamHostReport {
        match &self.report {
            Some(report) if self.status.success() => report,
            _ => {
                panic!("pam_host gave no report ({}):\nstdout:\n{}\nstderr:\n{}", self.status, self.stdout, self.stderr)
            }
        }
    }
}

/// A pam_host holding a session open (`--wait-stdin`); ended when dropped.
pub struct PamHostSession {
    child: ManagedChild,
    lines: StdoutLines,
    stderr_path: PathBuf,
    open: Option<(i32, Option<String>)>,
}

impl PamHostSession {
    /// pam_host's pid: the session's leader.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// open_session's return code.
    pub fn open_rc(&self) -> i32 {
        self.open.as_ref().expect("OPEN line read").0
    }

    /// `VIGIL_SESSION_ID` after open_session, if set.
    pub fn session_id(&self) -> Option<&str> {
        self.open.as_ref().expect("OPEN line read").1.as_deref()
    }

    /// `VIGIL_SESSION_ID` as a number; panics with the output when absent or malformed.
    #[track_caller]
    pub fn session_id_u64(&self) -> u64 {
        match self.session_id().map(str::parse::<u64>) {
            Some(Ok(id)) => id,
            other => panic!("VIGIL_SESSION_ID is {other:?} (open rc {}); pam_host stderr:\n{}", self.open_rc(), self.stderr_text()),
        }
    }

    pub fn stderr_text(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Lets pam_host close the session and finish; returns the CLOSED rc (`None` when
    /// close_session was not called because open failed) and the run's result.
    pub fn close(mut self) -> (Option<i32>, PamHostRun) {
        let start = Instant::now();
        {
            let stdin = self.child.child_mut().stdin.as_mut().expect("piped stdin");
            stdin.write_all(b"\n").and_then(|_| stdin.flush()).expect("write to pam_host's stdin");
        }
        let closed = self.expect_line("CLOSED");
        let status = try_wait_for(STEP_TIMEOUT, || self.child.try_exited().ok_or_else(|| "running".to_string()))
            .unwrap_or_else(|_| panic!("pam_host did not exit after CLOSED; stderr:\n{}", self.stderr_text()));
        // The reader thread ends with pam_host's stdout; collect what is left.
        self.lines.drain(Duration::from_secs(5));
        let stdout = self.lines.seen.join("\n");
        let run = PamHostRun::new(self.child.pid(), status, stdout, self.stderr_text(), start.elapsed());
        (closed.0, run)
    }

    /// SIGKILL, as when sshd dies without closing the session.
    pub fn kill(&mut self) {
        self.child.kill_now();
    }

    /// Reads lines until one starts with `word`: `WORD <rc> [<session id>|-]`.
    fn expect_line(&mut self, word: &str) -> (Option<i32>, Option<String>) {
        self.lines.expect(&mut self.child, &self.stderr_path, word, STEP_TIMEOUT, |line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(word)).then(|| {
                let rc = words.next().and_then(|w| w.parse().ok());
                let id = words.next().filter(|w| *w != "-").map(str::to_string);
                (rc, id)
            })
        })
    }
}
