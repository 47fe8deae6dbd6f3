//! vigild as the tests run it: private socket, syslog socket, state directory and
//! configuration all under the harness's directory; on the harness's bus or `--no-bus`,
//! never on the host's system bus.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::bus::name_has_owner;
use crate::paths::{vigilctl_bin, vigild_bin};
use crate::process::{Ledger, ManagedChild, describe_output, pid_state, run_bounded};
use crate::wait::{try_wait_for, wait_for};

/// How long vigild may take to answer `vigilctl list` after it starts.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for one vigilctl run.
pub const VIGILCTL_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start vigild.
#[derive(Debug, Clone)]
pub struct VigildOpts {
    /// The text of `vigil.toml`.
    pub config: String,
    /// Serve on the harness's bus (when one is started); `false` passes `--no-bus`.
    pub use_bus: bool,
    /// Extra command-line arguments, appended last.
    pub extra_args: Vec<String>,
    /// `--adopt-users u1,u2`: adopt only these users' unregistered login sessions. When
    /// `None`, `--no-adopt` (if this vigild has adoption at all): a test's vigild must
    /// never adopt the machine's own sessions.
    pub adopt_users: Option<Vec<String>>,
    /// Start vigild with this soft RLIMIT_NOFILE (the hard limit unchanged), e.g. 1024
    /// as systemd gives a service by default.
    pub nofile_soft: Option<u64>,
    /// Start vigild with this hard (and soft) RLIMIT_NOFILE: a vigild that can be run
    /// out of descriptors, which raising the soft limit cannot undo.
    pub nofile_hard: Option<u64>,
}

impl Default for VigildOpts {
    fn default() -> Self {
        VigildOpts {
            config: "[defaults]\n".to_string(),
            use_bus: true,
            extra_args: Vec::new(),
            adopt_users: None,
            nofile_soft: None,
            nofile_hard: None,
        }
    }
}

impl VigildOpts {
    pub fn config(mut self, text: &str) -> Self {
        self.config = text.to_string();
        self
    }

    pub fn no_bus(mut self) -> Self {
        self.use_bus = false;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }

    pub fn adopt_users(mut self, users: &[&str]) -> Self {
        self.adopt_users = Some(users.iter().map(|u| u.to_string()).collect());
        self
    }

    pub fn nofile_soft(mut self, soft: u64) -> Self {
        self.nofile_soft = Some(soft);
        self
    }

    pub fn nofile_hard(mut self, hard: u64) -> Self {
        self.nofile_hard = Some(hard);
        self
    }
}

/// True when this vigild takes `--no-adopt` (asked once per test process from its
/// `--help`): one that does not know the flag adopts nothing.
fn knows_no_adopt() -> bool {
    static KNOWS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWS.get_or_init(|| {
        let out = run_bounded(Command::new(vigild_bin()).arg("--help"), VIGILCTL_TIMEOUT, "vigild --help");
        String::from_utf8_lossy(&out.stdout).contains("--no-adopt")
    })
}

/// One entry of `vigilctl list --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionInfo {
    pub id: u64,
    pub user: String,
    pub uid: u32,
    pub service: String,
    pub tty: Option<String>,
    pub rhost: Option<String>,
    pub leader_pid: u32,
    pub audit_session_id: serde_json::Value,
    #[serde(alias = "started_usec")]
    pub started: serde_json::Value,
    #[serde(alias = "last_activity_usec")]
    pub last_activity: serde_json::Value,
    pub policy: serde_json::Value,
    /// Any key not named above.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl SessionInfo {
    /// The policy's name: `policy` itself when it is a string, else its `name` key.
    pub fn policy_name(&self) -> Option<&str> {
        self.policy.as_str().or_else(|| self.policy.get("name").and_then(|n| n.as_str()))
    }

    /// The tty without a leading `/dev/`.
    pub fn tty_short(&self) -> Option<&str> {
        self.tty.as_deref().map(|t| t.strip_prefix("/dev/").unwrap_or(t))
    }
}

pub struct Vigild {
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    syslog_socket: PathBuf,
    state_dir: PathBuf,
    bus_address: Option<String>,
    opts: VigildOpts,
    ledger: Ledger,
    child: RefCell<Option<ManagedChild>>,
}

impl Vigild {
    /// Writes the configuration and starts vigild; returns once it answers.
    pub(crate) fn start_in(dir: &Path, syslog_socket: &Path, bus_address: Option<String>, opts: VigildOpts, ledger: &Ledger) -> Vigild {
        let vigild = Vigild {
            dir: dir.to_path_buf(),
            config: dir.join("vigil.toml"),
            socket: dir.join("private"),
            syslog_socket: syslog_socket.to_path_buf(),
            state_dir: dir.join("state"),
            bus_address: if opts.use_bus { bus_address } else { None },
            opts,
            ledger: ledger.clone(),
            child: RefCell::new(None),
        };
        std::fs::create_dir_all(&vigild.state_dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", vigild.state_dir.display()));
        vigild.write_config(&vigild.opts.config);
        vigild.start();
        vigild
    }

    /// Where this vigild keeps user locks (`--lock-dir`); the module's `locks=` in
    /// [`crate::Harness::vigil_args`].
    pub fn lock_dir(&self) -> PathBuf {
        self.state_dir.join("locks")
    }

    /// Starts vigild (again, e.g. after [`Vigild::stop`]) and waits until it answers.
    pub fn start(&self) {
        assert!(!self.is_running(), "vigild is already running");
        let mut cmd = Command::new(vigild_bin());
        cmd.arg("--config").arg(&self.config).arg("--socket").arg(&self.socket);
        match &self.bus_address {
            Some(address) => {
                cmd.arg("--bus").arg(address);
                cmd.env("DBUS_SYSTEM_BUS_ADDRESS", address);
            }
            None => {
                cmd.arg("--no-bus");
                // Belt and braces: nothing may reach the host's system bus.
                cmd.env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", self.dir.join("no-system-bus").display()));
            }
        }
        cmd.arg("--syslog-socket")
            .arg(&self.syslog_socket)
            .arg("--state-dir")
            .arg(&self.state_dir)
            // The audit chain and spool live beside the state: never /var/lib/vigil.
            .arg("--audit-dir")
            .arg(self.state_dir.join("audit"))
            // Locks too: never /var/lib/vigil/locks ([`Vigild::lock_dir`]).
            .arg("--lock-dir")
            .arg(self.lock_dir())
            .arg("--foreground");
        match &self.opts.adopt_users {
            Some(users) => {
                cmd.arg("--adopt-users").arg(users.join(","));
            }
            None if knows_no_adopt() => {
                cmd.arg("--no-adopt");
            }
            None => {}
        }
        cmd.args(&self.opts.extra_args).env_remove("DBUS_SESSION_BUS_ADDRESS");
        if self.opts.nofile_soft.is_some() || self.opts.nofile_hard.is_some() {
            let (soft, hard) = (self.opts.nofile_soft, self.opts.nofile_hard);
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only getrlimit/setrlimit run, both
            // async-signal-safe system calls; nothing allocates.
            unsafe {
                cmd.pre_exec(move || {
                    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if let Some(hard) = hard {
                        limit.rlim_max = hard.min(limit.rlim_max);
                    }
                    limit.rlim_cur = soft.unwrap_or(limit.rlim_max).min(limit.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = ManagedChild::spawn_logged("vigild", &mut cmd, &self.dir, &self.ledger);
        *self.child.borrow_mut() = Some(child);
        self.wait_ready(READY_TIMEOUT);
    }

    /// Waits until `vigilctl list --json` succeeds and, on a bus, `org.vigil1` is owned.
    pub fn wait_ready(&self, timeout: Duration) {
        wait_for(timeout, "vigild to answer `vigilctl list --json`", || {
            self.check_alive()?;
            let out = self.vigilctl(&["list", "--json"]);
            if out.status.success() { Ok(()) } else { Err(describe_output(&out)) }
        });
        if let Some(address) = &self.bus_address {
            wait_for(timeout, "vigild to own org.vigil1 on the harness bus", || {
                self.check_alive()?;
                if name_has_owner(address, "org.vigil1") { Ok(()) } else { Err("no owner".into()) }
            });
        }
    }

    /// Panics with vigild's stderr if it has exited.
    fn check_alive(&self) -> Result<(), String> {
        let mut guard = self.child.borrow_mut();
        let child = guard.as_mut().ok_or("vigild is not started")?;
        match child.try_exited() {
            None => Ok(()),
            Some(status) => panic!("vigild exited ({status}); stderr:\n{}", child.stderr_text()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.borrow().as_ref().expect("vigild is not started").pid()
    }

    pub fn is_running(&self) -> bool {
        self.child.borrow_mut().as_mut().is_some_and(|c| c.is_running())
    }

    /// vigild's open descriptors now (`/proc/PID/fd`).
    #[track_caller]
    pub fn fd_count(&self) -> usize {
        crate::procfs::fd_count(self.pid()).unwrap_or_else(|| panic!("cannot read /proc/{}/fd", self.pid()))
    }

    /// vigild's resident memory now (KiB).
    #[track_caller]
    pub fn rss_kib(&self) -> u64 {
        crate::procfs::rss_kib(self.pid()).unwrap_or_else(|| panic!("cannot read /proc/{}/status", self.pid()))
    }

    /// The exit status, if vigild has exited (it is reaped then).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.borrow_mut().as_mut().and_then(|c| c.try_exited())
    }

    /// SIGTERM (after SIGCONT), up to 3 s, then SIGKILL; returns the exit status.
    pub fn stop(&self) -> Option<ExitStatus> {
        let mut child = self.child.borrow_mut().take()?;
        child.terminate()
    }

    /// SIGSTOP, and waits until the kernel shows the process stopped.
    pub fn sigstop(&self) {
        self.signal(Signal::SIGSTOP);
        let pid = self.pid();
        wait_for(Duration::from_secs(5), "vigild to be stopped", || match pid_state(pid) {
            Some('T') => Ok(()),
            other => Err(format!("state {other:?}")),
        });
    }

    pub fn sigcont(&self) {
        self.signal(Signal::SIGCONT);
    }

    pub fn sighup(&self) {
        self.signal(Signal::SIGHUP);
    }

    pub fn signal(&self, sig: Signal) {
        let mut guard = self.child.borrow_mut();
        let child = guard.as_mut().expect("vigild is not started");
        if let Err(e) = child.signal(sig) {
            panic!("{e}; vigild stderr:\n{}", child.stderr_text());
        }
    }

    /// What vigild wrote on stderr (all runs).
    pub fn stderr_text(&self) -> String {
        crate::process::read_lossy(&self.dir.join("vigild.stderr"))
    }

    /// Runs `vigilctl --socket <private> ARGS` as root.
    pub fn vigilctl(&self, args: &[&str]) -> Output {
        crate::conformance::vigilctl_ran(args);
        let mut cmd = Command::new(vigilctl_bin());
        cmd.arg("--socket").arg(&self.socket).args(args);
        run_bounded(&mut cmd, VIGILCTL_TIMEOUT, "vigilctl")
    }

    /// Runs `vigilctl --socket <private> ARGS` as `user` (through runuser).
    pub fn vigilctl_as(&self, user: &str, args: &[&str]) -> Output {
        crate::conformance::vigilctl_ran(args);
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--"]).arg(vigilctl_bin()).arg("--socket").arg(&self.socket).args(args);
        run_bounded(&mut cmd, VIGILCTL_TIMEOUT, "vigilctl (as a test user)")
    }

    /// `vigilctl list --json`, parsed; panics when it fails.
    #[track_caller]
    pub fn list_sessions(&self) -> Vec<SessionInfo> {
        self.try_list_sessions().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_list_sessions(&self) -> Result<Vec<SessionInfo>, String> {
        let out = self.vigilctl(&["list", "--json"]);
        if !out.status.success() {
            return Err(format!("vigilctl list --json failed: {}", describe_output(&out)));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("vigilctl list --json printed something else than the session list ({e}): {}", describe_output(&out)))
    }

    /// The session with `id`, if listed.
    pub fn session(&self, id: u64) -> Option<SessionInfo> {
        self.list_sessions().into_iter().find(|s| s.id == id)
    }

    /// Waits until the session `id` is no longer listed.
    pub fn wait_session_gone(&self, id: u64, timeout: Duration) {
        wait_for(timeout, &format!("session {id} to leave `vigilctl list`"), || {
            let sessions = self.try_list_sessions()?;
            if sessions.iter().any(|s| s.id == id) { Err(format!("{sessions:?}")) } else { Ok(()) }
        });
    }

    /// Waits up to `timeout` for `vigild` to exit by itself; `None` if it still runs.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        try_wait_for(timeout, || self.exit_status().ok_or_else(|| "running".to_string())).ok()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replaces `vigil.toml` (vigild reads it on start, SIGHUP or `vigilctl reload`).
    pub fn write_config(&self, text: &str) {
        crate::conformance::config_written(text);
        std::fs::write(&self.config, text).unwrap_or_else(|e| panic!("write {}: {e}", self.config.display()));
    }

    /// The private socket (`unix:path=` of it is the peer-to-peer D-Bus address).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn peer_address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn bus_address(&self) -> Option<&str> {
        self.bus_address.as_deref()
    }
}
