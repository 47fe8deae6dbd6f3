//! Interactive ssh sessions in a real pty, driven from the test: a private tmux server
//! (`tmux -D -S <dir>/tmux.sock`, a child of the test process, ended on drop) with one
//! window per [`SshSession`], running
//! `sshpass -e ssh -tt -p PORT … user@127.0.0.1 [command]`; and non-interactive
//! [`SshCommand`]s (`ssh -T … user@127.0.0.1 sleep 600`) as plain child processes.
//!
//! The pane's process is `sh -c 'sshpass -e ssh …; echo $? > <dir>/ssh-N.status'`: tmux
//! 3.3a does not always collect an exited pane process at once (`#{pane_dead_status}`
//! stayed empty and the process a zombie until the next SIGCHLD in experiments), so the
//! exit status comes from that file; `#{pane_dead}` (the pty closed) is reliable.
//! The password goes to sshpass in the environment (`SSHPASS`), not on a command line.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::rc::Rc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::process::{Ledger, ManagedChild, describe_output, read_lossy, run_bounded};
use crate::procfs::{self, ProcInfo};
use crate::sshd::{Sshd, SshdSession};
use crate::users::TestUser;
use crate::wait::{try_wait_for, wait_for};

/// The tmux session holding every window of a harness.
pub const TMUX_SESSION: &str = "vigil";
/// Lines of scrollback `capture()` returns (and tmux keeps).
pub const CAPTURE_LINES: u32 = 2000;
const TMUX_CMD_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a login (password exchange, PAM, shell start) may take in `ssh_login`.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);
const WIDTH: u32 = 200;
const HEIGHT: u32 = 50;

/// Options of one ssh client.
#[derive(Debug, Clone, Default)]
pub struct SshOpts {
    /// `-o KEY=VALUE` options, given before the harness's own (ssh keeps the first value).
    pub options: Vec<String>,
    /// Other ssh arguments, after the options (e.g. `-v`, `-N`).
    pub args: Vec<String>,
    /// Remote command (one string; the remote shell splits it). None: a login shell.
    pub command: Option<String>,
    /// Password for sshpass instead of the user's (e.g. a wrong one).
    pub password: Option<String>,
}

impl SshOpts {
    /// Adds `-o KEY=VALUE`.
    pub fn option(mut self, key_value: &str) -> Self {
        self.options.push(key_value.to_string());
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn command(mut self, command: &str) -> Self {
        self.command = Some(command.to_string());
        self
    }

    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// Connection sharing: `ControlMaster=auto`, `ControlPath=PATH` (no ControlPersist: a
    /// master must not outlive its window). The first client with this path becomes the
    /// master; later ones open sessions over its connection.
    pub fn control_master(self, path: &Path) -> Self {
        self.option("ControlMaster=auto").option(&format!("ControlPath={}", path.display()))
    }
}

/// The ssh command line (without sshpass): `tty` selects `-tt` or `-T`.
pub fn ssh_argv(port: u16, user: &str, opts: &SshOpts, tty: bool) -> Vec<String> {
    let mut argv: Vec<String> = vec!["ssh".into(), "-F".into(), "/dev/null".into()];
    for o in &opts.options {
        argv.push("-o".into());
        argv.push(o.clone());
    }
    for o in [
        "PubkeyAuthentication=no",
        "PreferredAuthentications=password",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "GlobalKnownHostsFile=/dev/null",
        "LogLevel=ERROR",
        "ConnectTimeout=10",
        "NumberOfPasswordPrompts=1",
    ] {
        argv.push("-o".into());
        argv.push(o.into());
    }
    argv.push(if tty { "-tt" } else { "-T" }.into());
    argv.push("-p".into());
    argv.push(port.to_string());
    argv.extend(opts.args.iter().cloned());
    argv.push(format!("{user}@127.0.0.1"));
    if let Some(c) = &opts.command {
        argv.push(c.clone());
    }
    argv
}

/// Quotes a word for sh.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The harness's tmux server.
pub struct Tmux {
    dir: PathBuf,
    socket: PathBuf,
    child: RefCell<Option<ManagedChild>>,
    windows: Cell<u32>,
}

impl Tmux {
    /// Writes `<dir>/tmux.conf` and starts `tmux -D -S <dir>/tmux.sock -f <dir>/tmux.conf`.
    pub(crate) fn start_in(dir: &Path, ledger: &Ledger) -> Tmux {
        let conf = dir.join("tmux.conf");
        std::fs::write(
            &conf,
            format!(
                "# written by vigil-e2e\n\
                 set -g remain-on-exit on\n\
                 set -g history-limit 10000\n\
                 set -g default-shell /bin/sh\n\
                 set -g default-terminal screen\n\
                 set -g status off\n\
                 set -g default-size {WIDTH}x{HEIGHT}\n\
                 set -s escape-time 0\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let socket = dir.join("tmux.sock");
        let mut cmd = Command::new("tmux");
        cmd.arg("-D").arg("-S").arg(&socket).arg("-f").arg(&conf).env_remove("TMUX");
        let child = ManagedChild::spawn_logged("tmux", &mut cmd, dir, ledger);
        let tmux = Tmux { dir: dir.to_path_buf(), socket, child: RefCell::new(Some(child)), windows: Cell::new(0) };
        wait_for(READY_TIMEOUT, "the tmux server's socket", || {
            if let Some(status) = tmux.child.borrow_mut().as_mut().and_then(|c| c.try_exited()) {
                panic!("tmux exited: {status}; tmux.stderr:\n{}", read_lossy(&tmux.dir.join("tmux.stderr")));
            }
            if !tmux.socket.exists() {
                return Err(format!("{} missing", tmux.socket.display()));
            }
            let out = tmux.try_run(&["list-sessions"]);
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || err.contains("no sessions") { Ok(()) } else { Err(format!("list-sessions: {}", err.trim())) }
        });
        tmux
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.borrow().as_ref().map(|c| c.pid())
    }

    /// Runs `tmux -S <socket> ARGS` (deadline 10 s) and returns its output.
    pub fn try_run(&self, args: &[&str]) -> Output {
        tmux_run(&self.socket, args)
    }

    /// Runs `tmux -S <socket> ARGS`; panics unless it succeeds.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(out.status.success(), "tmux {args:?}: {}", describe_output(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Opens a window running `sh -c SHELL_CMD` with `env` added; returns (pane id, pane pid).
    fn new_window(&self, name: &str, env: &[(&str, &str)], shell_cmd: &str) -> (String, u32) {
        let has_session = self.try_run(&["has-session", "-t", TMUX_SESSION]).status.success();
        let width = WIDTH.to_string();
        let height = HEIGHT.to_string();
        let mut args: Vec<String> = if has_session {
            vec!["new-window".into(), "-d".into(), "-t".into(), format!("{TMUX_SESSION}:")]
        } else {
            vec!["new-session".into(), "-d".into(), "-s".into(), TMUX_SESSION.into(), "-x".into(), width, "-y".into(), height]
        };
        args.extend(["-n".into(), name.into(), "-P".into(), "-F".into(), "#{pane_id} #{pane_pid}".into()]);
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(shell_cmd.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&refs);
        let line = out.lines().next().unwrap_or_default();
        let (pane, pid) = line.split_once(' ').unwrap_or_else(|| panic!("tmux printed {out:?} for a new window"));
        (pane.to_string(), pid.trim().parse().unwrap_or_else(|_| panic!("pane pid in {out:?}")))
    }

    /// Starts an interactive ssh client in a new window (see [`crate::Harness::ssh_session`]).
    pub(crate) fn ssh_session(&self, sshd: &Sshd, user: &TestUser, opts: &SshOpts) -> SshSession {
        let n = self.windows.get() + 1;
        self.windows.set(n);
        let name = format!("ssh-{n}");
        let status_file = self.dir.join(format!("{name}.status"));
        let argv = ssh_argv(sshd.port(), &user.name, opts, true);
        let mut shell_cmd = String::from("sshpass -e");
        for word in &argv {
            shell_cmd.push(' ');
            shell_cmd.push_str(&sh_quote(word));
        }
        shell_cmd.push_str(&format!("; echo $? > {}", sh_quote(&status_file.display().to_string())));
        let password = opts.password.as_deref().unwrap_or(&user.password);
        let (pane, pane_pid) = self.new_window(&name, &[("SSHPASS", password)], &shell_cmd);
        SshSession {
            socket: self.socket.clone(),
            pane,
            pane_pid,
            name,
            user: user.name.clone(),
            server_port: sshd.port(),
            status_file,
            argv,
        }
    }

    /// What a failing test should see: every pane's state and its last lines.
    pub fn diagnostics(&self) -> String {
        let out = self.try_run(&["list-panes", "-a", "-F", "#{pane_id} #{window_name} dead=#{pane_dead} pid=#{pane_pid}"]);
        let mut text = String::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let pane = line.split_whitespace().next().unwrap_or_default();
            text.push_str(&format!("---- tmux pane {line}\n"));
            let cap = self.try_run(&["capture-pane", "-p", "-J", "-t", pane, "-S", "-30"]);
            let screen = String::from_utf8_lossy(&cap.stdout);
            for l in screen.trim_end().lines() {
                text.push_str(l);
                text.push('\n');
            }
        }
        text
    }

    /// Ends the server and everything it ran: `kill-server` (panes get SIGHUP, so the
    /// ssh clients exit and their sessions close), then the processes that were under it,
    /// by pid, and the server itself.
    pub fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let under = procfs::descendants(pid);
        let _ = self.try_run(&["kill-server"]);
        if let Some(mut child) = self.child.borrow_mut().take() {
            child.terminate();
        }
        let left = procfs::end_processes(&under, Duration::from_secs(3));
        if !left.is_empty() {
            eprintln!("vigil-e2e: processes of the tmux server survived SIGKILL: {left:?}");
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tmux_run(socket: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("tmux");
    cmd.arg("-S").arg(socket).args(args).env_remove("TMUX");
    run_bounded(&mut cmd, TMUX_CMD_TIMEOUT, &format!("tmux {args:?}"))
}

/// An interactive ssh client in a tmux window. Dropping it does nothing: the harness
/// ends the tmux server; [`SshSession::kill`] closes the window (the client gets SIGHUP,
/// like a terminal closed).
pub struct SshSession {
    socket: PathBuf,
    pane: String,
    pane_pid: u32,
    name: String,
    user: String,
    server_port: u16,
    status_file: PathBuf,
    argv: Vec<String>,
}

impl SshSession {
    /// The tmux pane id (`%N`).
    pub fn pane(&self) -> &str {
        &self.pane
    }

    /// The tmux window name (`ssh-N`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The ssh command line (without sshpass).
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The pane's process: `sh -c 'sshpass … ssh …; echo $? > status'`.
    pub fn pane_pid(&self) -> u32 {
        self.pane_pid
    }

    fn tmux(&self, args: &[&str]) -> Output {
        tmux_run(&self.socket, args)
    }

    #[track_caller]
    fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(out.status.success(), "tmux {args:?} for {}: {}", self.name, describe_output(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally (no Enter).
    pub fn send_keys(&self, text: &str) {
        self.tmux_ok(&["send-keys", "-t", &self.pane, "-l", "--", text]);
    }

    /// Types `text` and Enter.
    pub fn send_line(&self, text: &str) {
        self.send_keys(text);
        self.send_key("Enter");
    }

    /// Sends one key by tmux's name for it: `Enter`, `C-c`, `C-d`, `Escape`, `Up`, ...
    pub fn send_key(&self, key: &str) {
        self.tmux_ok(&["send-keys", "-t", &self.pane, key]);
    }

    /// Types a key and erases it: two reads of the terminal by readline (activity for
    /// vigild), nothing run. Returns when.
    pub fn press_key(&self) -> std::time::Instant {
        self.send_keys("a");
        self.send_key("BSpace");
        std::time::Instant::now()
    }

    /// The screen and up to [`CAPTURE_LINES`] lines of scrollback, wrapped lines joined,
    /// trailing blank lines cut.
    pub fn capture(&self) -> String {
        let start = format!("-{CAPTURE_LINES}");
        let text = self.tmux_ok(&["capture-pane", "-p", "-J", "-t", &self.pane, "-S", &start]);
        text.trim_end_matches('\n').to_string()
    }

    /// Waits until the capture contains `needle`; returns the capture.
    #[track_caller]
    pub fn wait_for_text(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for(timeout, &format!("{needle:?} on the screen"), |screen| screen.contains(needle).then(|| screen.to_string()))
    }

    /// Waits until `probe(capture)` returns something; panics with the last capture.
    #[track_caller]
    pub fn wait_for<T>(&self, timeout: Duration, what: &str, probe: impl Fn(&str) -> Option<T>) -> T {
        wait_for(timeout, &format!("{what} in {} ({})", self.name, self.user), || {
            let screen = self.capture();
            probe(&screen).ok_or_else(|| format!("screen:\n{}", last_lines(&screen, 15)))
        })
    }

    /// True while the pane's process runs (`#{pane_dead}` is 0).
    pub fn is_alive(&self) -> bool {
        let out = self.tmux(&["display-message", "-p", "-t", &self.pane, "#{pane_dead}"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0"
    }

    /// The exit code of `sshpass` once it has ended: ssh's own (0 after `exit`, 255 for a
    /// refused password with `NumberOfPasswordPrompts=1`) or one of sshpass's 1–6.
    pub fn exit_status(&self) -> Option<i32> {
        read_lossy(&self.status_file).trim().parse().ok()
    }

    /// Waits until the client has ended; returns its exit code.
    #[track_caller]
    pub fn wait_exit(&self, timeout: Duration) -> i32 {
        wait_for(timeout, &format!("{} ({}) to end", self.name, self.user), || match (self.is_alive(), self.exit_status()) {
            (false, Some(code)) => Ok(code),
            (alive, code) => Err(format!("alive={alive} status={code:?}; screen:\n{}", last_lines(&self.capture(), 10))),
        })
    }

    /// Closes the window: the pane's processes get SIGHUP, as when a terminal is closed.
    pub fn kill(&self) {
        let _ = self.tmux(&["kill-pane", "-t", &self.pane]);
    }

    /// The client processes: `sshpass` and `ssh` (and a mux client's children), under the
    /// pane's shell.
    pub fn client_processes(&self) -> Vec<ProcInfo> {
        procfs::descendants(self.pane_pid)
    }

    /// The `ssh` process.
    pub fn ssh_pid(&self) -> Option<u32> {
        self.client_processes().iter().find(|p| p.comm == "ssh").map(|p| p.pid)
    }

    /// The local port of the ssh client's connection to sshd (`None` before it connects,
    /// and for a client that talks to a ControlMaster instead).
    pub fn client_port(&self) -> Option<u16> {
        client_port_of(self.ssh_pid()?, self.server_port)
    }

    /// The server side of this client's connection.
    pub fn server_side(&self, sshd: &Sshd) -> Option<SshdSession> {
        sshd.session_from_port(self.client_port()?)
    }

    /// Waits until sshd shows this connection with the user's shell (or command) running;
    /// panics early if the client ends.
    #[track_caller]
    pub fn wait_server_side(&self, sshd: &Sshd, timeout: Duration) -> SshdSession {
        wait_for(timeout, &format!("the server side of {} ({})", self.name, self.user), || {
            if !self.is_alive() {
                panic!(
                    "ssh client {} ({}) ended (status {:?}); screen:\n{}\nsshd.stderr:\n{}",
                    self.name,
                    self.user,
                    self.exit_status(),
                    last_lines(&self.capture(), 15),
                    last_lines(&sshd.stderr_text(), 15)
                );
            }
            let port = self.client_port().ok_or("client not connected yet")?;
            match sshd.session_from_port(port) {
                Some(s) if s.shell().is_some() => Ok(s),
                other => Err(format!("client port {port}; server side: {other:#?}")),
            }
        })
    }

    /// Waits for a logged-in shell: the server side has the shell running and the last
    /// line on the screen ends in a prompt (`$` or `#`). Sends no keys.
    #[track_caller]
    pub fn wait_ready(&self, sshd: &Sshd, timeout: Duration) -> SshdSession {
        let session = self.wait_server_side(sshd, timeout);
        self.wait_for(timeout, "a shell prompt", |screen| {
            let last = screen.lines().rev().find(|l| !l.trim().is_empty())?.trim_end();
            (last.ends_with('$') || last.ends_with('#')).then_some(())
        });
        session
    }
}

/// A non-interactive ssh client (`ssh -T … user@127.0.0.1 CMD`): stdin /dev/null,
/// stdout and stderr in `<dir>/ssh-cmd-N.{stdout,stderr}`. The harness ends it on drop.
#[derive(Clone)]
pub struct SshCommand {
    child: Rc<RefCell<ManagedChild>>,
    user: String,
    server_port: u16,
}

impl SshCommand {
    /// Starts `sshpass -e ssh -T …` (see [`crate::Harness::ssh_command`]).
    pub(crate) fn spawn(dir: &Path, n: u32, sshd: &Sshd, user: &TestUser, opts: &SshOpts, ledger: &Ledger) -> Self {
        let argv = ssh_argv(sshd.port(), &user.name, opts, false);
        let mut cmd = Command::new("sshpass");
        cmd.arg("-e").args(&argv).env("SSHPASS", opts.password.as_deref().unwrap_or(&user.password));
        let child = ManagedChild::spawn_logged(&format!("ssh-cmd-{n}"), &mut cmd, dir, ledger);
        SshCommand { child: Rc::new(RefCell::new(child)), user: user.name.clone(), server_port: sshd.port() }
    }

    /// Ends the client and whatever it started (ssh under sshpass), by pid.
    pub(crate) fn end(&self) {
        let under = procfs::descendants(self.pid());
        self.terminate();
        let left = procfs::end_processes(&under, Duration::from_secs(3));
        if !left.is_empty() {
            eprintln!("vigil-e2e: ssh client processes survived SIGKILL: {left:?}");
        }
    }

    /// The sshpass process's pid (ssh is its child).
    pub fn pid(&self) -> u32 {
        self.child.borrow().pid()
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The `ssh` process.
    pub fn ssh_pid(&self) -> Option<u32> {
        procfs::descendants(self.pid()).iter().find(|p| p.comm == "ssh").map(|p| p.pid)
    }

    pub fn is_running(&self) -> bool {
        self.child.borrow_mut().is_running()
    }

    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        self.child.borrow_mut().wait_exit(timeout)
    }

    /// Signals sshpass (which passes SIGTERM, SIGINT, SIGHUP… on to ssh).
    pub fn signal(&self, sig: Signal) -> Result<(), String> {
        self.child.borrow_mut().signal(sig)
    }

    /// SIGTERM, up to 3 s, SIGKILL; reaps.
    pub fn terminate(&self) -> Option<ExitStatus> {
        self.child.borrow_mut().terminate()
    }

    pub fn stdout_text(&self) -> String {
        self.child.borrow().stdout_text()
    }

    pub fn stderr_text(&self) -> String {
        self.child.borrow().stderr_text()
    }

    /// The local port of the client's connection to sshd.
    pub fn client_port(&self) -> Option<u16> {
        client_port_of(self.ssh_pid()?, self.server_port)
    }

    pub fn server_side(&self, sshd: &Sshd) -> Option<SshdSession> {
        sshd.session_from_port(self.client_port()?)
    }

    /// Waits until sshd shows this connection with the command running.
    #[track_caller]
    pub fn wait_server_side(&self, sshd: &Sshd, timeout: Duration) -> SshdSession {
        wait_for(timeout, &format!("the server side of `ssh {}` ", self.user), || {
            if !self.is_running() {
                panic!(
                    "ssh client for {} ended: {:?}; stderr:\n{}\nsshd.stderr:\n{}",
                    self.user,
                    self.child.borrow_mut().try_exited(),
                    self.stderr_text(),
                    last_lines(&sshd.stderr_text(), 15)
                );
            }
            let port = self.client_port().ok_or("client not connected yet")?;
            match sshd.session_from_port(port) {
                Some(s) if s.shell().is_some() => Ok(s),
                other => Err(format!("client port {port}; server side: {other:#?}")),
            }
        })
    }
}

/// The local port of `pid`'s established connection to 127.0.0.1:`server_port`.
fn client_port_of(pid: u32, server_port: u16) -> Option<u16> {
    procfs::tcp_connections_of(pid).iter().find(|c| c.remote.port() == server_port).map(|c| c.local.port())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until no process satisfies `pred` (e.g. none of a user's left); returns what is
/// still there on timeout.
pub fn wait_no_process(timeout: Duration, pred: impl Fn(&ProcInfo) -> bool) -> Result<(), Vec<ProcInfo>> {
    let mut last = Vec::new();
    let r = try_wait_for(timeout, || {
        last = procfs::all_processes().into_iter().filter(|p| p.is_alive() && pred(p)).collect();
        if last.is_empty() { Ok(()) } else { Err(format!("{} left", last.len())) }
    });
    r.map_err(|_| last)
}
