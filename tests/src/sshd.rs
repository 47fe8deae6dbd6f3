//! A real OpenSSH sshd for the tests, on 127.0.0.1 and a free port, with its own PAM
//! service — never `/etc/pam.d/sshd`, `/etc/ssh/sshd_config` or the machine's host keys.
//!
//! OpenSSH 9.2 has no `PAMServiceName`: the PAM service is the program name. So the
//! harness creates a symlink `/usr/sbin/vigil-test-sshd-<n>-<pid>` → `/usr/sbin/sshd`
//! and installs `/etc/pam.d/vigil-test-sshd-<n>-<pid>` (same name) from the test's
//! [`PamStack`]. sshd is started by that absolute path (it re-executes itself through
//! `argv[0]` for every connection, which keeps the name), as
//! `vigil-test-sshd-… -D -e -f <dir>/sshd_config`.
//!
//! Logging: sshd and the PAM modules it loads log through syslog(3) to `/dev/log`, which
//! does not exist on these machines (and the harness's rsyslogd listens on its own
//! socket), so their lines would be lost. sshd runs with `-e`: its own log (LogLevel
//! VERBOSE) goes to `<dir>/sshd.stderr`; pam_unix's syslog lines are not kept anywhere.
//! pam_vigil and vigild log to the harness's socket as usual.
//!
//! sshd needs its privilege-separation directory `/run/sshd`; it is created (root,
//! 0755) when missing and left in place — the same thing Debian's sshd unit does.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use crate::pam::{PamService, PamStack};
use crate::process::{Ledger, ManagedChild, describe_output, read_lossy, run_bounded};
use crate::procfs::{self, ProcInfo, TCP_ESTABLISHED};
use crate::users::PREFIX as USER_PREFIX;
use crate::wait::{try_wait_for, wait_for};

pub const SSHD_BIN: &str = "/usr/sbin/sshd";
pub const SBIN_DIR: &str = "/usr/sbin";
/// Every symlink, service and process title of a harness sshd starts with this.
pub const SSHD_PREFIX: &str = "vigil-test-sshd-";
/// sshd's privilege-separation directory (created if missing, never removed).
pub const PRIVSEP_DIR: &str = "/run/sshd";

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: u32 = 3;
/// How long sessions get to end by themselves once their clients are gone.
const SESSION_END_GRACE: Duration = Duration::from_secs(5);

/// auth, account and session by pam_unix: a real password login and nothing else.
pub fn unix_stack() -> PamStack {
    PamStack::new().auth("required", "pam_unix.so", &[]).account("required", "pam_unix.so", &[]).session("required", "pam_unix.so", &[])
}

/// What the harness's sshd is started with.
#[derive(Debug, Clone)]
pub struct SshdOpts {
    /// The PAM stack of its service (default: [`unix_stack`]).
    pub stack: PamStack,
    /// Extra `sshd_config` lines, written **before** the harness's own: for most keywords
    /// sshd keeps the first value it reads, so these override (e.g. `ClientAliveInterval 5`).
    pub config: Vec<String>,
}

impl Default for SshdOpts {
    fn default() -> Self {
        SshdOpts { stack: unix_stack(), config: Vec::new() }
    }
}

impl SshdOpts {
    /// Uses `stack` as the PAM service (e.g. `unix_stack().session("required", module, args)`).
    pub fn stack(mut self, stack: PamStack) -> Self {
        self.stack = stack;
        self
    }

    /// Adds a `sshd_config` line (ahead of the harness's defaults).
    pub fn config(mut self, line: &str) -> Self {
        self.config.push(line.to_string());
        self
    }
}

/// A symlink `/usr/sbin/vigil-test-sshd-…` → `/usr/sbin/sshd`; removed on drop (only if
/// it still is that symlink).
struct SshdLink {
    path: PathBuf,
}

impl SshdLink {
    fn create(name: &str) -> SshdLink {
        let path = Path::new(SBIN_DIR).join(name);
        // symlink(2) never replaces an existing file.
        std::os::unix::fs::symlink(SSHD_BIN, &path)
            .unwrap_or_else(|e| panic!("cannot create symlink {} -> {SSHD_BIN}: {e}", path.display()));
        SshdLink { path }
    }
}

impl Drop for SshdLink {
    fn drop(&mut self) {
        remove_link_if_ours(&self.path);
    }
}

fn remove_link_if_ours(path: &Path) {
    match std::fs::read_link(path) {
        Ok(target) if target == Path::new(SSHD_BIN) => {
            if let Err(e) = std::fs::remove_file(path) {
                eprintln!("vigil-e2e: cannot remove {}: {e}", path.display());
            }
        }
        Ok(target) => {
            eprintln!("vigil-e2e: {} points to {}, not {SSHD_BIN}; left alone", path.display(), target.display())
        }
        Err(e) => eprintln!("vigil-e2e: {} is not our symlink ({e}); left alone", path.display()),
    }
}

/// The harness's sshd. Dropping it ends every session under it, the listener, and
/// removes the symlink and the PAM file.
pub struct Sshd {
    dir: PathBuf,
    config: PathBuf,
    port: Cell<u16>,
    ledger: Ledger,
    child: RefCell<Option<ManagedChild>>,
    // Dropped after the processes, in this order.
    link: Option<SshdLink>,
    service: Option<PamService>,
}

impl Sshd {
    /// Installs the PAM service and the symlink, writes host key and config, starts sshd
    /// and returns once it listens. `n` makes the names unique within the process.
    pub(crate) fn start_in(dir: &Path, n: u32, opts: &SshdOpts, ledger: &Ledger) -> Sshd {
        ensure_privsep_dir();
        let key = dir.join("ssh_host_ed25519_key");
        if !key.exists() {
            let out = run_bounded(
                Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "vigil-e2e", "-f"]).arg(&key),
                Duration::from_secs(30),
                "ssh-keygen",
            );
            assert!(out.status.success(), "ssh-keygen for {}: {}", key.display(), describe_output(&out));
        }
        let service = PamService::install("sshd", n, &opts.stack);
        let link = SshdLink::create(service.name());
        let sshd = Sshd {
            dir: dir.to_path_buf(),
            config: dir.join("sshd_config"),
            port: Cell::new(0),
            ledger: ledger.clone(),
            child: RefCell::new(None),
            link: Some(link),
            service: Some(service),
        };
        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            sshd.port.set(port);
            std::fs::write(&sshd.config, sshd.config_text(&key, opts)).unwrap_or_else(|e| panic!("write {}: {e}", sshd.config.display()));
            match sshd.try_start() {
                Ok(()) => return sshd,
                Err(e) => {
                    eprintln!("vigil-e2e: sshd attempt {attempt} on port {port} failed: {e}");
                    last_error = e;
                }
            }
        }
        panic!("sshd did not start in {START_ATTEMPTS} attempts: {last_error}");
    }

    fn config_text(&self, key: &Path, opts: &SshdOpts) -> String {
        let mut text = String::from("# written by vigil-e2e; the test's own lines first (first value wins)\n");
        for line in &opts.config {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             UsePAM yes\n\
             PasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication no\n\
             HostKey {key}\n\
             PidFile {pidfile}\n\
             StrictModes no\n\
             AllowUsers {USER_PREFIX}*-{pid}\n\
             PermitRootLogin no\n\
             LogLevel VERBOSE\n\
             ClientAliveInterval 0\n\
             MaxSessions 10\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             Subsystem sftp internal-sftp\n",
            port = self.port.get(),
            key = key.display(),
            pidfile = self.dir.join("sshd.pid").display(),
            pid = std::process::id(),
        ));
        text
    }

    fn try_start(&self) -> Result<(), String> {
        let mut cmd = Command::new(self.program());
        cmd.arg("-D").arg("-e").arg("-f").arg(&self.config);
        let child = ManagedChild::spawn_logged("sshd", &mut cmd, &self.dir, &self.ledger);
        let pid = child.pid();
        *self.child.borrow_mut() = Some(child);
        let port = self.port.get();
        let ready = try_wait_for(READY_TIMEOUT, || {
            if let Some(status) = self.child.borrow_mut().as_mut().and_then(|c| c.try_exited()) {
                return Err(format!("sshd exited: {status}"));
            }
            if listens_on(pid, port) { Ok(()) } else { Err(format!("no listening socket of pid {pid} on port {port}")) }
        });
        match ready {
            Ok(()) => Ok(()),
            Err(state) => {
                if let Some(mut child) = self.child.borrow_mut().take() {
                    child.terminate();
                }
                Err(format!("{state}; sshd.stderr:\n{}", tail(&self.stderr_text(), 20)))
            }
        }
    }

    /// Starts sshd again after [`Sshd::stop`] (same port and configuration).
    pub fn start(&self) {
        assert!(!self.is_running(), "sshd is already running");
        self.try_start().unwrap_or_else(|e| panic!("sshd did not start again: {e}"));
    }

    /// Ends every session under sshd (those whose clients are gone get a few seconds to
    /// end by themselves, then SIGTERM to their `[priv]` process, which closes the PAM
    /// session, then SIGKILL), then the listener.
    pub fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let gone = try_wait_for(SESSION_END_GRACE, || {
            let kids = procfs::children_in(&procfs::all_processes(), pid);
            if kids.iter().all(|p| !p.is_alive()) { Ok(()) } else { Err(format!("{} session processes", kids.len())) }
        });
        if gone.is_err() {
            let all = procfs::descendants(pid);
            let monitors: Vec<ProcInfo> = all.iter().filter(|p| p.ppid == pid).cloned().collect();
            procfs::end_processes(&monitors, Duration::from_secs(3));
            let left = procfs::end_processes(&all, Duration::from_secs(1));
            if !left.is_empty() {
                eprintln!("vigil-e2e: sshd session processes survived SIGKILL: {left:?}");
            }
        }
        if let Some(mut child) = self.child.borrow_mut().take() {
            child.terminate();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.borrow_mut().as_mut().is_some_and(|c| c.is_running())
    }

    /// The listener's pid (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.borrow().as_ref().map(|c| c.pid())
    }

    pub fn port(&self) -> u16 {
        self.port.get()
    }

    /// The PAM service name, which is also the program name (`vigil-test-sshd-<n>-<pid>`).
    pub fn service_name(&self) -> &str {
        self.service.as_ref().expect("service exists while sshd does").name()
    }

    /// `/usr/sbin/vigil-test-sshd-<n>-<pid>`.
    pub fn program(&self) -> PathBuf {
        Path::new(SBIN_DIR).join(self.service_name())
    }

    /// `/etc/pam.d/vigil-test-sshd-<n>-<pid>`.
    pub fn pam_file(&self) -> PathBuf {
        self.service.as_ref().expect("service exists while sshd does").path().to_path_buf()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Everything sshd wrote to stderr (its whole log, all runs).
    pub fn stderr_text(&self) -> String {
        read_lossy(&self.dir.join("sshd.stderr"))
    }

    /// Waits until sshd's log has a line containing `needle`; returns that line.
    #[track_caller]
    pub fn wait_for_log(&self, timeout: Duration, needle: &str) -> String {
        wait_for(timeout, &format!("{needle:?} in sshd.stderr"), || {
            let text = self.stderr_text();
            text.lines().find(|l| l.contains(needle)).map(str::to_string).ok_or_else(|| tail(&text, 10))
        })
    }

    /// Every process under the listener now (sessions, their shells and commands).
    pub fn processes(&self) -> Vec<ProcInfo> {
        self.pid().map(procfs::descendants).unwrap_or_default()
    }

    /// The logged-in sessions under the listener: one per `[priv]` process.
    pub fn sessions(&self) -> Vec<SshdSession> {
        let Some(listener) = self.pid() else { return Vec::new() };
        let procs = procfs::all_processes();
        let conns = procfs::tcp_connections();
        let prefix = format!("{}: ", self.service_name());
        let mut out = Vec::new();
        for monitor in procfs::children_in(&procs, listener) {
            let Some(user) =
                monitor.cmdline.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix("[priv]")).map(|u| u.trim().to_string())
            else {
                continue; // not yet authenticated ([preauth], [net], [accepted])
            };
            let user_mark = format!("{prefix}{user}@");
            let user_proc = procfs::children_in(&procs, monitor.pid).into_iter().find(|p| p.uid != 0 && p.cmdline.starts_with(&user_mark));
            let processes = user_proc.as_ref().map(|u| procfs::descendants_in(&procs, u.pid)).unwrap_or_default();
            let inodes = monitor.socket_inodes();
            let client = conns
                .iter()
                .find(|c| c.state == TCP_ESTABLISHED && c.local.port() == self.port() && inodes.contains(&c.inode))
                .map(|c| c.remote);
            out.push(SshdSession { user, monitor, user_proc, processes, client });
        }
        out
    }

    /// The sessions of `user`.
    pub fn sessions_of(&self, user: &str) -> Vec<SshdSession> {
        self.sessions().into_iter().filter(|s| s.user == user).collect()
    }

    /// The session whose client connected from local port `port`.
    pub fn session_from_port(&self, port: u16) -> Option<SshdSession> {
        self.sessions().into_iter().find(|s| s.client.is_some_and(|c| c.port() == port))
    }

    /// Waits until a session satisfies `pred`.
    #[track_caller]
    pub fn wait_for_session(&self, timeout: Duration, what: &str, pred: impl Fn(&SshdSession) -> bool) -> SshdSession {
        wait_for(timeout, &format!("an sshd session: {what}"), || {
            let sessions = self.sessions();
            sessions.iter().find(|s| pred(s)).cloned().ok_or_else(|| format!("sessions: {sessions:#?}"))
        })
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        self.link.take();
        self.service.take();
    }
}

/// The server side of one ssh connection, as `/proc` showed it.
#[derive(Debug, Clone)]
pub struct SshdSession {
    pub user: String,
    /// sshd's root `[priv]` process (child of the listener): it runs PAM's
    /// authenticate, open_session and close_session.
    pub monitor: ProcInfo,
    /// The process running as the user (`<service>: user@pts/N` or `user@notty`).
    pub user_proc: Option<ProcInfo>,
    /// Everything under `user_proc`: the shell or command, and their children.
    pub processes: Vec<ProcInfo>,
    /// The client's address and port (from `/proc/net/tcp`).
    pub client: Option<SocketAddrV4>,
}

impl SshdSession {
    pub fn priv_pid(&self) -> u32 {
        self.monitor.pid
    }

    pub fn user_pid(&self) -> Option<u32> {
        self.user_proc.as_ref().map(|p| p.pid)
    }

    /// The user's shell or command: the first child of the user process.
    pub fn shell(&self) -> Option<&ProcInfo> {
        let user_pid = self.user_pid()?;
        self.processes.iter().find(|p| p.ppid == user_pid)
    }

    /// The pty of the user's shell (`/dev/pts/N`); `None` for a notty session.
    pub fn tty(&self) -> Option<PathBuf> {
        self.shell().and_then(ProcInfo::tty)
    }

    /// Every distinct terminal among the session's processes (several with multiplexing).
    pub fn ttys(&self) -> Vec<PathBuf> {
        let mut ttys: Vec<PathBuf> = self.processes.iter().filter_map(ProcInfo::tty).collect();
        ttys.sort();
        ttys.dedup();
        ttys
    }

    /// True when the process title says `@pts/…` (sshd allocated a pty).
    pub fn has_pty(&self) -> bool {
        self.user_proc.as_ref().is_some_and(|p| p.cmdline.contains("@pts/"))
    }

    /// Pids of every process of the session, `[priv]` first.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.monitor.pid];
        pids.extend(self.user_proc.iter().map(|p| p.pid));
        pids.extend(self.processes.iter().map(|p| p.pid));
        pids
    }

    /// True while the `[priv]` process still runs.
    pub fn is_alive(&self) -> bool {
        self.monitor.still_running()
    }
}

/// A port nobody listens on right now: bind 127.0.0.1:0, read the port, close.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// True when `pid` holds a listening TCP socket on 127.0.0.1:`port`.
fn listens_on(pid: u32, port: u16) -> bool {
    let inodes = procfs::socket_inodes(pid);
    procfs::tcp_connections().iter().any(|c| c.state == 10 && c.local.port() == port && inodes.contains(&c.inode))
}

fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    if !dir.is_dir() {
        eprintln!("vigil-e2e: creating {PRIVSEP_DIR} (sshd's privilege-separation directory; left in place)");
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {PRIVSEP_DIR}: {e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("chmod {PRIVSEP_DIR}: {e}"));
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- leftovers of test processes that died without Drop ------------------------------

static SWEEP: Once = Once::new();

/// Once per process (from `Harness::new`, before the general sweep removes stale users):
/// ends sshd, tmux and ssh processes of harnesses whose test process is gone, and the
/// processes of their users, and removes their `/usr/sbin/vigil-test-sshd-*` symlinks.
pub(crate) fn sweep_once() {
    SWEEP.call_once(sweep);
}

/// The pid at the end of `name` (`…-<pid>`) if it is not ours and not alive.
fn dead_owner(name: &str) -> Option<u32> {
    let pid: u32 = name.rsplit('-').next()?.parse().ok()?;
    (pid != std::process::id() && !crate::process::pid_alive(pid)).then_some(pid)
}

/// Which sweep rule a process falls under, if any.
fn stale_process_reason(p: &ProcInfo, stale_uids: &[u32]) -> Option<String> {
    // sshd of a harness: "vigil-test-sshd-<n>-<pid>: ..."
    if let Some(title) = p.cmdline.split(':').next().filter(|t| t.starts_with(SSHD_PREFIX))
        && let Some(pid) = dead_owner(title)
    {
        return Some(format!("sshd of dead test process {pid}"));
    }
    // tmux server of a harness: "tmux -D -S /tmp/vigil-e2e-<pid>-<n>/tmux.sock ..."
    if let Some(rest) = p.cmdline.strip_prefix(&format!("tmux -D -S /tmp/{}", crate::tempdir::PREFIX))
        && let Some(pid) = rest.split('-').next().and_then(|s| s.parse::<u32>().ok())
        && pid != std::process::id()
        && !crate::process::pid_alive(pid)
    {
        return Some(format!("tmux server of dead test process {pid}"));
    }
    // ssh clients to a test user: "... vtest-<short>-<n>-<pid>@127.0.0.1 ..."
    if p.comm == "ssh" || p.comm == "sshpass" {
        for word in p.cmdline.split_whitespace() {
            if let Some(user) = word.strip_suffix("@127.0.0.1").filter(|u| u.starts_with(USER_PREFIX))
                && let Some(pid) = dead_owner(user)
            {
                return Some(format!("ssh client of dead test process {pid}"));
            }
        }
    }
    (stale_uids.contains(&p.uid) || stale_uids.contains(&p.euid)).then(|| format!("process of stale test user uid {}", p.uid))
}

fn sweep() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let stale_uids: Vec<u32> = passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            (name.starts_with(USER_PREFIX) && dead_owner(name).is_some()).then_some(uid)
        })
        .collect();
    let stale: Vec<ProcInfo> = procfs::all_processes()
        .into_iter()
        .filter(|p| p.is_alive())
        .filter_map(|p| {
            let reason = stale_process_reason(&p, &stale_uids)?;
            eprintln!("vigil-e2e: ending stale process {} ({}): {reason}", p.pid, p.cmdline);
            Some(p)
        })
        .collect();
    let left = procfs::end_processes(&stale, Duration::from_secs(3));
    if !left.is_empty() {
        eprintln!("vigil-e2e: stale processes survived SIGKILL: {left:?}");
    }
    for entry in std::fs::read_dir(SBIN_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(SSHD_PREFIX) && dead_owner(&name).is_some() {
            eprintln!("vigil-e2e: removing stale {SBIN_DIR}/{name}");
            remove_link_if_ours(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc_with(comm: &str, cmdline: &str, uid: u32) -> ProcInfo {
        ProcInfo {
            pid: 1,
            ppid: 0,
            state: 'S',
            pgrp: 1,
            session: 1,
            tty_nr: 0,
            start_time: 0,
            uid,
            euid: uid,
            comm: comm.to_string(),
            cmdline: cmdline.to_string(),
        }
    }

    #[test]
    fn stale_rules_need_a_dead_owner() {
        let me = std::process::id();
        let dead = 999_999_999u32;
        let live_sshd = proc_with("vigil-test-sshd", &format!("vigil-test-sshd-1-{me}: vtest-a-1-{me} [priv]"), 0);
        assert_eq!(stale_process_reason(&live_sshd, &[]), None);
        let dead_sshd = proc_with("vigil-test-sshd", &format!("vigil-test-sshd-1-{dead}: vtest-a-1-{dead} [priv]"), 0);
        assert!(stale_process_reason(&dead_sshd, &[]).is_some());
        let tmux = proc_with("tmux: server", &format!("tmux -D -S /tmp/vigil-e2e-{dead}-0/tmux.sock -f x"), 0);
        assert!(stale_process_reason(&tmux, &[]).is_some());
        let my_tmux = proc_with("tmux: server", &format!("tmux -D -S /tmp/vigil-e2e-{me}-0/tmux.sock -f x"), 0);
        assert_eq!(stale_process_reason(&my_tmux, &[]), None);
        let ssh = proc_with("ssh", &format!("ssh -F /dev/null -p 1 vtest-a-1-{dead}@127.0.0.1 sleep 600"), 0);
        assert!(stale_process_reason(&ssh, &[]).is_some());
        let other_ssh = proc_with("ssh", "ssh alice@127.0.0.1", 0);
        assert_eq!(stale_process_reason(&other_ssh, &[]), None);
        let sleeper = proc_with("sleep", "sleep 600", 4242);
        assert!(stale_process_reason(&sleeper, &[4242]).is_some());
        assert_eq!(stale_process_reason(&sleeper, &[4243]), None);
        let machine_sshd = proc_with("sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", 0);
        assert_eq!(stale_process_reason(&machine_sshd, &[]), None);
    }

    #[test]
    fn default_stack_is_pam_unix() {
        let text = unix_stack().render();
        assert!(text.contains("auth required pam_unix.so\n"));
        assert!(text.contains("account required pam_unix.so\n"));
        assert!(text.contains("session required pam_unix.so\n"));
    }
}
