//! [`Harness`]: owns every process, file and user a test creates, and removes them in
//! `Drop`, also when the test panics. One harness at a time per test process: creating
//! one waits until the previous one is dropped (tests that measure time or count
//! threads must not share two cores with another test).

use std::cell::{Cell, OnceCell, RefCell};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::bus::{Bus, BusKind, BusPolicy};
use crate::flood::Flood;
use crate::host::{PamHostCmd, PamHostRun, PamHostSession};
use crate::logs::{LogLine, read_log};
use crate::pam::{Fail, PamService, PamStack, VigilArgs};
use crate::paths;
use crate::process::{Ledger, SpawnRecord, read_lossy, run_bounded};
use crate::rsyslog::{Rsyslog, RsyslogOpts};
use crate::sshd::{Sshd, SshdOpts};
use crate::sudo::{SuPatch, SudoersFile};
use crate::tempdir::TestDir;
use crate::tmux::{LOGIN_TIMEOUT, SshCommand, SshOpts, SshSession, Tmux};
use crate::users::{self, TestUser};
use crate::vigilctl_child::VigilctlChild;
use crate::vigild::{Vigild, VigildOpts};
use crate::wait::wait_for;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Default deadline of a one-shot pam_host run.
pub const PAM_HOST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Harness {
    // Drop order is spelled out in `Drop for Harness`; the fields below drop afterwards.
    dir: TestDir,
    ledger: Ledger,
    counter: Cell<u32>,
    rsyslog: Option<Rsyslog>,
    /// A second rsyslogd in `<dir>/central/`, listening on TCP (a central log host).
    central: Option<Rsyslog>,
    bus: Option<Bus>,
    vigild: Option<Vigild>,
    /// A second vigild in `<dir>/second/` (another machine's, for remote verbs).
    second_vigild: Option<Vigild>,
    /// A second bus in `<dir>/second/`, the second vigild's (two brokers side by side).
    second_bus: Option<Bus>,
    pam_services: RefCell<Vec<PamService>>,
    users: RefCell<Vec<TestUser>>,
    pam_host_bin: RefCell<Option<PathBuf>>,
    sshd: Option<Sshd>,
    tmux: OnceCell<Tmux>,
    ssh_commands: RefCell<Vec<SshCommand>>,
    sudoers: RefCell<Vec<SudoersFile>>,
    su_patch: RefCell<Option<SuPatch>>,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Harness {
    /// A harness with its own directory and nothing started yet.
    pub fn new() -> Harness {
        // A test that panicked poisons the lock; the next harness still may run.
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        crate::sshd::sweep_once(); // processes of stale users first: userdel refuses busy users
        crate::sweep::sweep_once();
        crate::sudo::sweep_once();
        Harness {
            dir: TestDir::create(),
            ledger: Ledger::default(),
            counter: Cell::new(0),
            rsyslog: None,
            central: None,
            bus: None,
            vigild: None,
            second_vigild: None,
            second_bus: None,
            pam_services: RefCell::new(Vec::new()),
            users: RefCell::new(Vec::new()),
            pam_host_bin: RefCell::new(None),
            sshd: None,
            tmux: OnceCell::new(),
            ssh_commands: RefCell::new(Vec::new()),
            sudoers: RefCell::new(Vec::new()),
            su_patch: RefCell::new(None),
            _one_at_a_time: guard,
        }
    }

    /// A harness with rsyslogd started (what nearly every test needs first).
    pub fn with_syslog() -> Harness {
        let mut h = Harness::new();
        h.start_rsyslog();
        h
    }

    fn next(&self) -> u32 {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        n
    }

    /// The harness's directory (`/tmp/vigil-e2e-<pid>-<n>`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the harness's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every process this harness started, in order (also those already ended).
    pub fn spawned(&self) -> Vec<SpawnRecord> {
        self.ledger.borrow().clone()
    }

    // ---- rsyslogd -------------------------------------------------------------------

    pub fn start_rsyslog(&mut self) -> &Rsyslog {
        self.start_rsyslog_with(&RsyslogOpts::default())
    }

    /// [`Harness::start_rsyslog`] with extra configuration lines (e.g. forwarding
    /// authpriv to [`Harness::start_central_rsyslog`]'s port).
    pub fn start_rsyslog_with(&mut self, opts: &RsyslogOpts) -> &Rsyslog {
        assert!(self.rsyslog.is_none(), "rsyslogd is already set up");
        self.rsyslog = Some(Rsyslog::start_in_with(self.dir.path(), &self.ledger, opts));
        self.rsyslog()
    }

    /// A second rsyslogd playing a central log host: its own directory `<dir>/central/`
    /// (rsyslog.conf, log.sock, auth.log, all.log), and imtcp on 127.0.0.1 on a free
    /// port; returns once a probe line landed and the port listens. Stopped on drop,
    /// after the first.
    pub fn start_central_rsyslog(&mut self) -> &Rsyslog {
        let opts = RsyslogOpts { tcp_port: Some(free_port()), ..RsyslogOpts::default() };
        self.start_central_with(&opts)
    }

    /// [`Harness::start_central_rsyslog`] receiving over RELP with docs/fleet.md's
    /// configuration ([`crate::relp`]): imrelp on 127.0.0.1 on a free port, each host's
    /// records in `<dir>/central/hosts/HOST.log` ([`Harness::relp_center_file`]).
    /// `kill` and `start` it as a crash and a restart would.
    pub fn start_relp_center(&mut self) -> &Rsyslog {
        let port = free_port();
        let hosts = self.path("central").join("hosts");
        let opts =
            RsyslogOpts { extra_config: crate::relp::center_config(port, &hosts), listen_port: Some(port), ..RsyslogOpts::default() };
        self.start_central_with(&opts)
    }

    /// The harness's rsyslogd, forwarding authpriv to [`Harness::start_relp_center`]'s
    /// port with docs/fleet.md's host configuration (omrelp, disk-assisted queue).
    pub fn start_rsyslog_forwarding_relp(&mut self) -> &Rsyslog {
        let port = self.central_rsyslog().port().expect("the RELP center listens on a port");
        self.start_rsyslog_with(&RsyslogOpts { extra_config: crate::relp::host_config(port), ..RsyslogOpts::default() })
    }

    /// The file in which the RELP center keeps the records of `host`.
    pub fn relp_center_file(&self, host: &str) -> PathBuf {
        crate::relp::host_file(&self.path("central").join("hosts"), host)
    }

    fn start_central_with(&mut self, opts: &RsyslogOpts) -> &Rsyslog {
        assert!(self.central.is_none(), "the central rsyslogd is already set up");
        let dir = self.path("central");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        self.central = Some(Rsyslog::start_in_with(&dir, &self.ledger, opts));
        self.central_rsyslog()
    }

    #[track_caller]
    pub fn central_rsyslog(&self) -> &Rsyslog {
        self.central.as_ref().expect("start_central_rsyslog first")
    }

    #[track_caller]
    pub fn rsyslog(&self) -> &Rsyslog {
        self.rsyslog.as_ref().expect("start_rsyslog first")
    }

    /// The syslog socket path (whether or not rsyslogd runs: a test may want it absent).
    pub fn log_socket(&self) -> PathBuf {
        self.path("log.sock")
    }

    // ---- the bus (dbus-daemon or dbus-broker) ----------------------------------------

    /// Starts the private system bus with dbus-daemon.
    pub fn start_bus(&mut self, policy: BusPolicy) -> &Bus {
        self.start_bus_with(policy, BusKind::DbusDaemon)
    }

    /// Starts the private system bus with `kind`'s daemon (same configuration file).
    pub fn start_bus_with(&mut self, policy: BusPolicy, kind: BusKind) -> &Bus {
        assert!(self.bus.is_none(), "the bus is already started");
        self.bus = Some(Bus::start_in(self.dir.path(), policy, kind, &self.ledger));
        self.bus()
    }

    /// A second private bus in `<dir>/second/`, for the second vigild: two brokers
    /// measured side by side. Stopped on drop, after the second vigild.
    pub fn start_second_bus(&mut self, policy: BusPolicy, kind: BusKind) -> &Bus {
        assert!(self.second_bus.is_none(), "the second bus is already started");
        let dir = self.dir.subdir("second", 0o755);
        self.second_bus = Some(Bus::start_in(&dir, policy, kind, &self.ledger));
        self.second_bus()
    }

    #[track_caller]
    pub fn second_bus(&self) -> &Bus {
        self.second_bus.as_ref().expect("start_second_bus first")
    }

    #[track_caller]
    pub fn bus(&self) -> &Bus {
        self.bus.as_ref().expect("start_bus first")
    }

    /// The private bus's address.
    #[track_caller]
    pub fn bus_address(&self) -> String {
        self.bus().address().to_string()
    }

    // ---- vigild ---------------------------------------------------------------------

    /// Starts vigild with `opts` (on the harness's bus if one is started and
    /// `opts.use_bus`, else `--no-bus`); returns once it answers `vigilctl list`.
    pub fn start_vigild(&mut self, opts: VigildOpts) -> &Vigild {
        assert!(self.vigild.is_none(), "vigild is already set up; use vigild().stop()/start()");
        let bus = self.bus.as_ref().map(|b| b.address().to_string());
        self.vigild = Some(Vigild::start_in(self.dir.path(), &self.log_socket(), bus, opts, &self.ledger));
        self.vigild()
    }

    #[track_caller]
    pub fn vigild(&self) -> &Vigild {
        self.vigild.as_ref().expect("start_vigild first")
    }

    /// A second vigild, as another machine would run it: its own directory `<dir>/second/`
    /// (configuration, private socket, state, locks), on the second bus when one is
    /// started and `opts.use_bus` (else `--no-bus`), writing to the harness's syslog
    /// socket. Stopped on drop, with the first.
    pub fn start_second_vigild(&mut self, opts: VigildOpts) -> &Vigild {
        assert!(self.second_vigild.is_none(), "the second vigild is already set up");
        let dir = self.dir.subdir("second", 0o755);
        let bus = self.second_bus.as_ref().map(|b| b.address().to_string());
        self.second_vigild = Some(Vigild::start_in(&dir, &self.log_socket(), bus, opts, &self.ledger));
        self.second_vigild()
    }

    #[track_caller]
    pub fn second_vigild(&self) -> &Vigild {
        self.second_vigild.as_ref().expect("start_second_vigild first")
    }

    /// The private socket path (also when vigild is not started: a socket nobody
    /// listens on).
    pub fn private_socket(&self) -> PathBuf {
        self.path("private")
    }

    // ---- users and PAM services ------------------------------------------------------

    /// Creates `vtest-<short>-<n>-<pid>` with a home and a random password; removed on drop.
    pub fn create_user(&self, short: &str) -> TestUser {
        let user = users::create(short, self.next());
        self.users.borrow_mut().push(user.clone());
        user
    }

    /// Installs `/etc/pam.d/vigil-test-<name>-<n>-<pid>`; returns the service name.
    pub fn install_pam_service(&self, name: &str, stack: &PamStack) -> String {
        let service = PamService::install(name, self.next(), stack);
        let service_name = service.name().to_string();
        self.pam_services.borrow_mut().push(service);
        service_name
    }

    /// pam_vigil's arguments pointing at this harness: the private socket, the syslog
    /// socket, `timeout=2s`, `fail=open`.
    pub fn vigil_args(&self) -> VigilArgs {
        VigilArgs::default().socket(self.private_socket()).syslog(self.log_socket()).timeout("2s").fail(Fail::Open).locks(self.lock_dir())
    }

    /// Where the harness's vigild keeps user locks (`Vigild::lock_dir`), so that no
    /// test reads or writes /var/lib/vigil/locks.
    pub fn lock_dir(&self) -> PathBuf {
        self.path("state").join("locks")
    }

    /// Installs a service whose session stack is `pam_vigil.so ARGS` (auth and account by
    /// pam_permit); returns the service name.
    pub fn install_vigil_service(&self, name: &str, args: &VigilArgs) -> String {
        self.install_pam_service(name, &PamStack::vigil_session(&paths::pam_module(), args))
    }

    // ---- sudo and su (see sudo.rs) -------------------------------------------------------

    /// Lets `user` run sudo with the PAM service `/etc/pam.d/vigil-test-sudo-<n>-<pid>`
    /// (written from `stack`), through the sudoers file
    /// `/etc/sudoers.d/vigil-test-<m>-<pid>`; both removed on drop. Returns the service name.
    pub fn install_sudo(&self, user: &TestUser, stack: &PamStack) -> String {
        let service = self.install_pam_service("sudo", stack);
        let file = SudoersFile::install(self.dir.path(), self.next(), &user.name, &service);
        self.sudoers.borrow_mut().push(file);
        service
    }

    /// Inserts `lines` into `/etc/pam.d/su` before its first auth line, after saving it;
    /// restored byte for byte by [`Harness::restore_su`] or on drop (also on panic).
    pub fn patch_su(&self, lines: &[String]) {
        let mut slot = self.su_patch.borrow_mut();
        assert!(slot.is_none(), "/etc/pam.d/su is already patched");
        *slot = Some(SuPatch::apply(lines));
    }

    /// Restores `/etc/pam.d/su` now; `Ok(original bytes)` once it reads back identical.
    pub fn restore_su(&self) -> Result<Vec<u8>, String> {
        let mut patch = self.su_patch.borrow_mut().take().ok_or("/etc/pam.d/su is not patched")?;
        patch.restore()?;
        Ok(patch.original().to_vec())
    }

    // ---- pam_host -------------------------------------------------------------------

    /// Uses `bin` as pam_host instead of looking next to the test binary (pass
    /// `env!("CARGO_BIN_EXE_pam_host")` from an integration test for certainty).
    pub fn set_pam_host_bin(&self, bin: impl Into<PathBuf>) {
        *self.pam_host_bin.borrow_mut() = Some(bin.into());
    }

    /// A pam_host command line for `service` and `user` (one cycle, `--json`).
    pub fn pam_host(&self, service: &str, user: &str) -> PamHostCmd {
        let bin = self.pam_host_bin.borrow().clone().unwrap_or_else(paths::pam_host_bin);
        PamHostCmd::new(&bin, service, user)
    }

    /// Runs pam_host to its end (deadline [`PAM_HOST_TIMEOUT`]).
    pub fn run_pam_host(&self, cmd: &PamHostCmd) -> PamHostRun {
        self.run_pam_host_within(cmd, PAM_HOST_TIMEOUT)
    }

    pub fn run_pam_host_within(&self, cmd: &PamHostCmd, timeout: Duration) -> PamHostRun {
        cmd.run(self.dir.path(), self.next(), timeout, &self.ledger)
    }

    /// Starts pam_host with `--wait-stdin` and returns once the session is open.
    pub fn open_pam_session(&self, cmd: &PamHostCmd) -> PamHostSession {
        cmd.spawn_session(self.dir.path(), self.next(), &self.ledger)
    }

    // ---- sshd and ssh clients --------------------------------------------------------

    /// Starts a real sshd on 127.0.0.1 (PAM service and program name
    /// `vigil-test-sshd-<n>-<pid>`, stack `opts.stack`); returns once it listens.
    pub fn start_sshd(&mut self, opts: SshdOpts) -> &Sshd {
        assert!(self.sshd.is_none(), "sshd is already set up; use sshd().stop()/start()");
        let n = self.next();
        self.sshd = Some(Sshd::start_in(self.dir.path(), n, &opts, &self.ledger));
        self.sshd()
    }

    #[track_caller]
    pub fn sshd(&self) -> &Sshd {
        self.sshd.as_ref().expect("start_sshd first")
    }

    /// The private tmux server holding the interactive sessions (started on first use).
    pub fn tmux(&self) -> &Tmux {
        self.tmux.get_or_init(|| Tmux::start_in(self.dir.path(), &self.ledger))
    }

    /// An interactive `ssh -tt user@127.0.0.1` to the harness's sshd in a tmux window;
    /// returns at once (see [`Harness::ssh_login`] to wait for the shell).
    pub fn ssh_session(&self, user: &TestUser) -> SshSession {
        self.ssh_session_with(user, &SshOpts::default())
    }

    pub fn ssh_session_with(&self, user: &TestUser, opts: &SshOpts) -> SshSession {
        self.tmux().ssh_session(self.sshd(), user, opts)
    }

    /// [`Harness::ssh_session`], then waits (20 s) until the user's shell runs under sshd
    /// and shows a prompt.
    #[track_caller]
    pub fn ssh_login(&self, user: &TestUser) -> SshSession {
        let session = self.ssh_session(user);
        session.wait_ready(self.sshd(), LOGIN_TIMEOUT);
        session
    }

    /// A non-interactive `ssh -T user@127.0.0.1 COMMAND` (no pty), e.g. `sleep 600`;
    /// ended on drop at the latest.
    pub fn ssh_command(&self, user: &TestUser, command: &str) -> SshCommand {
        self.ssh_command_with(user, &SshOpts::default().command(command))
    }

    pub fn ssh_command_with(&self, user: &TestUser, opts: &SshOpts) -> SshCommand {
        let cmd = SshCommand::spawn(self.dir.path(), self.next(), self.sshd(), user, opts, &self.ledger);
        self.ssh_commands.borrow_mut().push(cmd.clone());
        cmd
    }

    // ---- the flood tool (see flood.rs) ------------------------------------------------

    /// Runs `flood --socket <private> ARGS` as `user`; returns at once (see
    /// [`Flood::wait_ready`]). Ended on drop at the latest, like the user's processes.
    pub fn flood_as(&self, user: &TestUser, args: &[&str]) -> Flood {
        self.flood(Some(&user.name), args)
    }

    /// [`Harness::flood_as`] as root (the PAM module's uid: its own pool of connections).
    pub fn flood_as_root(&self, args: &[&str]) -> Flood {
        self.flood(None, args)
    }

    /// Runs the `pipeline` tool (a flood of calls that do not wait for their answers) as
    /// `user` with `args`.
    pub fn pipeline_as(&self, user: &TestUser, args: &[&str]) -> crate::pipeline::Pipeline {
        crate::pipeline::Pipeline::spawn(&paths::pipeline_bin(), &user.name, args, self.dir.path(), self.next(), &self.ledger)
    }

    fn flood(&self, user: Option<&str>, args: &[&str]) -> Flood {
        let socket = self.private_socket();
        Flood::spawn(&paths::flood_bin(), user, &socket, args, self.dir.path(), self.next(), &self.ledger)
    }

    // ---- other commands -------------------------------------------------------------

    /// Starts `vigilctl ARGS` as root without waiting for its end (`audit show --follow`),
    /// its command line declared for the conformance map; ended on drop at the latest.
    pub fn spawn_vigilctl<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> VigilctlChild {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(AsRef::as_ref).collect();
        VigilctlChild::spawn(&args, self.dir.path(), self.next(), &self.ledger)
    }

    /// Runs `argv` as `user` through `runuser -u USER --` (deadline 30 s).
    pub fn run_as(&self, user: &str, argv: &[&str]) -> Output {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--"]).args(argv);
        run_bounded(&mut cmd, Duration::from_secs(30), &format!("{argv:?} as {user}"))
    }

    // ---- logs -----------------------------------------------------------------------

    pub fn auth_log(&self) -> Vec<LogLine> {
        read_log(&self.path("auth.log"))
    }

    /// vigild's records `event` for session `id`, in log order.
    pub fn session_records(&self, event: &str, id: u64) -> Vec<LogLine> {
        let id = id.to_string();
        self.auth_log().into_iter().filter(|l| l.is_event("vigild", event) && l.has("session", &id)).collect()
    }

    /// sshd's session stack as Debian's: pam_unix, pam_loginuid (an audit session per
    /// login), then pam_vigil with this harness's arguments.
    pub fn loginuid_ssh_stack(&self) -> PamStack {
        let module = crate::paths::pam_module().display().to_string();
        crate::sshd::unix_stack().session("required", "pam_loginuid.so", &[]).session("required", &module, &self.vigil_args().to_args())
    }

    pub fn all_log(&self) -> Vec<LogLine> {
        read_log(&self.path("all.log"))
    }

    /// Waits until a line of auth.log satisfies `pred`; panics with `what` and the log's
    /// last lines on timeout.
    #[track_caller]
    pub fn wait_for_log(&self, timeout: Duration, what: &str, pred: impl Fn(&LogLine) -> bool) -> LogLine {
        wait_for(timeout, &format!("{what} in auth.log"), || {
            let lines = self.auth_log();
            lines.iter().find(|l| pred(l)).cloned().ok_or_else(|| tail(&lines, 15))
        })
    }

    /// Waits until auth.log has a `tag` line with `event=<event>` and all `fields`.
    #[track_caller]
    pub fn wait_for_event(&self, timeout: Duration, tag: &str, event: &str, fields: &[(&str, &str)]) -> LogLine {
        let what = format!("{tag}: event={event} {fields:?}");
        self.wait_for_log(timeout, &what, |l| l.is_event(tag, event) && fields.iter().all(|(k, v)| l.has(k, v)))
    }

    /// Waits until a line of auth.log contains `needle`.
    #[track_caller]
    pub fn wait_for_log_containing(&self, timeout: Duration, needle: &str) -> LogLine {
        self.wait_for_log(timeout, &format!("a line containing {needle:?}"), |l| l.raw.contains(needle))
    }

    /// What a failing test should show: the end of each log and stderr file.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        let files = [
            "auth.log",
            "vigild.stderr",
            "second/vigild.stderr",
            "dbus-daemon.stderr",
            "dbus-broker-launch.stderr",
            "dbus-broker.journal",
            "second/dbus-daemon.stderr",
            "second/dbus-broker-launch.stderr",
            "second/dbus-broker.journal",
            "rsyslogd.stderr",
            "sshd.stderr",
            "tmux.stderr",
            "central/auth.log",
            "central/rsyslogd.stderr",
        ];
        for name in files {
            let path = self.path(name);
            if path.exists() {
                let text = read_lossy(&path);
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(30);
                out.push_str(&format!("---- {} (last {} lines)\n", path.display(), lines.len() - from));
                for line in &lines[from..] {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        if let Some(tmux) = self.tmux.get() {
            out.push_str(&tmux.diagnostics());
        }
        out
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// A free port on 127.0.0.1: bind port 0, note it, close (a small window in which
/// another program could take it; the start then fails with rsyslogd's stderr).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
        .port()
}

fn tail(lines: &[LogLine], n: usize) -> String {
    let from = lines.len().saturating_sub(n);
    let shown: Vec<&str> = lines[from..].iter().map(|l| l.raw.as_str()).collect();
    format!("{} lines; last {}:\n{}", lines.len(), shown.len(), shown.join("\n"))
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("vigil-e2e: test failed; harness state:\n{}", self.diagnostics());
        }
        // The machine's own su stack first: nothing below may delay its restore.
        if let Some(mut patch) = self.su_patch.borrow_mut().take()
            && let Err(e) = patch.restore()
        {
            eprintln!("vigil-e2e: {e}");
        }
        // Processes first: ssh clients, then sshd's sessions (their PAM close runs while
        // vigild and syslog still listen), vigild before the bus and syslog it talks to;
        // then the files and users they may have used, then the directory.
        if let Some(tmux) = self.tmux.take() {
            tmux.stop();
        }
        for client in self.ssh_commands.borrow_mut().drain(..) {
            client.end();
        }
        if let Some(sshd) = self.sshd.take() {
            drop(sshd); // ends its sessions and itself, removes its symlink and PAM file
        }
        if let Some(vigild) = self.vigild.take() {
            vigild.stop();
        }
        if let Some(vigild) = self.second_vigild.take() {
            vigild.stop();
        }
        if let Some(bus) = self.bus.take() {
            bus.stop();
        }
        if let Some(bus) = self.second_bus.take() {
            bus.stop();
        }
        if let Some(rsyslog) = self.rsyslog.take() {
            rsyslog.stop();
        }
        if let Some(central) = self.central.take() {
            central.stop();
        }
        self.sudoers.borrow_mut().clear();
        self.pam_services.borrow_mut().clear();
        for user in self.users.borrow_mut().drain(..) {
            // What a session left behind (e.g. a command of a notty ssh session whose
            // connection ended): userdel refuses a user with processes.
            let left = crate::procfs::end_processes(&crate::procfs::processes_of_uid(user.uid), Duration::from_secs(3));
            if !left.is_empty() {
                eprintln!("vigil-e2e: processes of {} survived SIGKILL: {left:?}", user.name);
            }
            users::remove(&user.name);
        }
        // `dir` is removed when the fields drop, right after this.
    }
}
