//! Sessions held open in vigild while a benchmark measures (issue 9: login cost against
//! the registry's size).
//!
//! One helper process (the benchmark program run again with [`HOLD_ARG`]) opens them
//! over one private-socket connection, as sshd's `[priv]` process would one at a time:
//! it is their leader, so it must not be an ancestor of the PAM hosts being measured
//! (vigild would take their sessions as nested in one of its sessions). Opens are
//! pipelined (`in_flight` calls at once on the connection) so that 100,000 sessions take
//! seconds, not minutes. Each line the benchmark writes to its stdin is a total to reach;
//! it answers `HELD <total> <µs>` or `ERR <total> <message>`. The sessions end when the
//! helper exits (vigild watches the leader): at end of input, or killed by pid on drop.
//!
//! With `per_leader` K > 0 the sessions get leaders of their own, as real logins have
//! (each sshd session is one `[priv]` process): the helper starts one leader process
//! per K sessions ([`LEAF_ARG`]), `in_flight` at a time; each connects, opens its K
//! sessions, disconnects and becomes a process that only waits (exec keeps its pid and
//! start time, so vigild still watches it): on x86-64 a program of 129 bytes that
//! calls pause() ([`WAITER_ELF`], about 84 KiB of memory a process with the kernel's
//! share, against 161 KiB for `sleep infinity`, which the other architectures use):
//! 100,000 leaders fit in 8.4 GB. The helper stops starting leaders when the machine's
//! available memory falls under [`MIN_AVAILABLE_KIB`] (it is shared). Leaders die with the helper (PR_SET_PDEATHSIG),
//! and the helper kills them by pid at end of input.
//!
//! The sessions carry no tty device (ttys `hold<N>`), so the notty timeout of the
//! benchmark's policy applies to them: a policy with hours to the nearest deadline
//! leaves vigild nothing to do for them. [`LeafSetup`] makes leaders more like real
//! logins (bench_storm): the first sessions get a pty of their own (the leader its
//! session leader, the pty its controlling terminal, named to vigild as PAM names
//! sshd's), and each leader an audit session of its own (as pam_loginuid gives a login).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vigil_protocol::{ManagerProxy, Target};

/// The first argument that makes a benchmark program the helper, or one of its leaders.
pub const HOLD_ARG: &str = "--hold-sessions";
pub const LEAF_ARG: &str = "--hold-leaf";
/// The helper starts no more leaders once MemAvailable is under this (4 GiB).
const MIN_AVAILABLE_KIB: u64 = 4 << 20;
/// The environment variable that names the program a leader becomes.
const WAITER_ENV: &str = "VIGIL_BENCH_WAITER";
/// A static x86-64 ELF executable whose one loadable segment loops on pause(2)
/// (`mov eax, 34; syscall; jmp` back): no libc, no heap, a page of stack.
const WAITER_ELF: [u8; 129] = [
    0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ident: 64-bit, little-endian
    2, 0, 0x3e, 0, 1, 0, 0, 0, // ET_EXEC, x86-64, version 1
    120, 0, 0x40, 0, 0, 0, 0, 0, // entry 0x400078 (the code, after both headers)
    64, 0, 0, 0, 0, 0, 0, 0, // program headers at 64
    0, 0, 0, 0, 0, 0, 0, 0, // no section headers
    0, 0, 0, 0, 64, 0, 56, 0, 1, 0, 0, 0, 0, 0, 0, 0, // flags, sizes, one program header
    1, 0, 0, 0, 5, 0, 0, 0, // PT_LOAD, R+X
    0, 0, 0, 0, 0, 0, 0, 0, // from offset 0
    0, 0, 0x40, 0, 0, 0, 0, 0, // at 0x400000
    0, 0, 0x40, 0, 0, 0, 0, 0, //
    129, 0, 0, 0, 0, 0, 0, 0, // 129 bytes in the file
    129, 0, 0, 0, 0, 0, 0, 0, // and in memory
    0, 0x10, 0, 0, 0, 0, 0, 0, // page-aligned
    0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7, // mov eax, 34 (pause); syscall; jmp -9
];

/// Writes the waiting program beside `near` (x86-64 only); its path.
fn write_waiter(near: &Path) -> Option<PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    let path = near.with_file_name("leader-waits");
    std::fs::write(&path, WAITER_ELF).ok()?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).ok()?;
    Some(path)
}

/// The machine's MemAvailable (KiB).
fn mem_available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// How long a leader may take to open its sessions (SIGALRM ends it after that).
const LEAF_SECONDS: u32 = 120;
const SERVICE: &str = "vigil-bench-hold";
const RHOST: &str = "192.0.2.1";
/// A policy whose nearest limit for the held sessions (no tty) is hours away.
pub const QUIET_POLICY: &str = "[defaults]\nidle_timeout = \"4h\"\nnotty_idle_timeout = \"4h\"\n";

/// vigild's options for a benchmark whose only user is `user`: the adoption sweep runs
/// as in production (every 5 s over /proc; the harness's default, `--no-adopt`, would
/// leave it out of the figures), but adopts only that user's logins: adopting every
/// login, vigild took in the ssh sessions of another test suite running on the machine
/// and counted them among its sessions.
pub fn vigild_opts(user: &str) -> vigil_e2e::VigildOpts {
    vigil_e2e::VigildOpts::default().adopt_users(&[user])
}

/// Runs the helper's or a leader's part when this process is one: `Some(exit code)`.
pub fn helper_role() -> Option<ExitCode> {
    match std::env::args().nth(1).as_deref() {
        Some(HOLD_ARG) => Some(helper_main()),
        Some(LEAF_ARG) => Some(leaf_main()),
        _ => None,
    }
}

/// One top-up: how many sessions were added and how long they took.
#[derive(Debug, Clone, Copy)]
pub struct TopUp {
    pub added: u32,
    pub seconds: f64,
}

impl TopUp {
    pub fn us_each(&self) -> f64 {
        self.seconds * 1e6 / f64::from(self.added.max(1))
    }
}

/// What each leader (`per_leader` > 0) does besides opening its sessions.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeafSetup {
    /// Sessions numbered below this get a pty of their own (their leader needs
    /// `per_leader` = 1); the others have none.
    pub ttys_below: u32,
    /// Each leader writes the user's uid to /proc/self/loginuid first: an audit session
    /// of its own, which vigild's ends then search /proc for, as for a real login.
    pub own_audit_session: bool,
}

impl LeafSetup {
    fn arg(&self) -> String {
        format!("{},{}", self.ttys_below, u8::from(self.own_audit_session))
    }

    fn parse(arg: &str) -> Option<LeafSetup> {
        let mut words = arg.split(',');
        let setup = LeafSetup { ttys_below: words.next()?.parse().ok()?, own_audit_session: words.next()? == "1" };
        words.next().is_none().then_some(setup)
    }
}

/// The benchmark's handle on the helper.
pub struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    held: u32,
    stderr: PathBuf,
}

impl Holder {
    /// Starts the helper (it connects once, then waits for totals). Its stderr goes to
    /// `stderr` (shown when it fails). `per_leader`: 0 for one leader of all sessions.
    pub fn spawn(socket: &Path, user: &str, in_flight: u32, per_leader: u32, stderr: &Path) -> Holder {
        Holder::spawn_with(socket, user, in_flight, per_leader, LeafSetup::default(), stderr)
    }

    /// As `spawn`, each leader set up as `setup` says.
    pub fn spawn_with(socket: &Path, user: &str, in_flight: u32, per_leader: u32, setup: LeafSetup, stderr: &Path) -> Holder {
        let exe = std::env::current_exe().expect("current_exe");
        let err = std::fs::File::create(stderr).unwrap_or_else(|e| panic!("create {}: {e}", stderr.display()));
        let mut command = Command::new(exe);
        if let Some(waiter) = write_waiter(stderr) {
            command.env(WAITER_ENV, waiter);
        }
        let mut child = command
            .arg(HOLD_ARG)
            .arg(socket)
            .arg(user)
            .arg(in_flight.max(1).to_string())
            .arg(per_leader.to_string())
            .arg(setup.arg())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the session holder: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stdin = child.stdin.take();
        Holder { child, stdin, stdout, held: 0, stderr: stderr.to_path_buf() }
    }

    /// The helper's pid: the leaders are its children.
    #[allow(dead_code)] // bench_storm's
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The helper's next line, waiting at most `timeout` for it to start (it writes
    /// each line at once); `Ok(None)` when its stdout has closed.
    fn next_line(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        if self.stdout.buffer().is_empty() {
            let mut pollfd = libc::pollfd { fd: self.stdout.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for a descriptor this struct owns.
            let ready = unsafe { libc::poll(&mut pollfd, 1, ms) };
            if ready == 0 {
                return Err(format!("no answer within {timeout:?}"));
            }
            if ready < 0 {
                return Err(format!("poll: {} (interrupted?)", std::io::Error::last_os_error()));
            }
        }
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(line.trim_end().to_string())),
            Err(e) => Err(format!("read from the holder: {e}")),
        }
    }

    /// Opens sessions until the helper holds `total`; bounded by 60 s + 5 ms a session.
    pub fn top_up(&mut self, total: u32) -> Result<TopUp, String> {
        if total <= self.held {
            return Ok(TopUp { added: 0, seconds: 0.0 });
        }
        let stdin = self.stdin.as_mut().ok_or("the holder's input is closed")?;
        writeln!(stdin, "{total}").and_then(|_| stdin.flush()).map_err(|e| format!("write to the holder: {e}"))?;
        let timeout = Duration::from_secs(60) + Duration::from_millis(5) * (total - self.held);
        let line = match self.next_line(timeout) {
            Ok(Some(line)) => line,
            Err(e) => return Err(format!("the holder did not reach {total}: {e}")),
            Ok(None) => {
                return Err(format!("the holder exited; its stderr:\n{}", vigil_e2e::process::read_lossy(&self.stderr)));
            }
        };
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        let held: u32 = words.get(1).and_then(|w| w.parse().ok()).ok_or_else(|| format!("holder said {line:?}"))?;
        let added = held.saturating_sub(self.held);
        self.held = held;
        match words[0] {
            "HELD" => {
                let us: f64 = words.get(2).and_then(|w| w.parse().ok()).ok_or_else(|| format!("holder said {line:?}"))?;
                Ok(TopUp { added, seconds: us / 1e6 })
            }
            _ => {
                let stderr = vigil_e2e::process::read_lossy(&self.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
                Err(format!(
                    "the holder stopped at {held} sessions: {}; its stderr ends:\n{}",
                    words.get(2).unwrap_or(&""),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ))
            }
        }
    }
}

impl Drop for Holder {
    /// End of input ends the helper; if it has not gone within 5 s it is killed, by its pid.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The helper: `<program> --hold-sessions SOCKET USER IN_FLIGHT PER_LEADER SETUP`.
fn helper_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let [socket, user, in_flight, per_leader, setup] = args.as_slice() else {
        eprintln!("usage: {HOLD_ARG} SOCKET USER IN_FLIGHT PER_LEADER SETUP");
        return ExitCode::from(2);
    };
    let in_flight: u32 = in_flight.parse().unwrap_or(1).max(1);
    let per_leader: u32 = per_leader.parse().unwrap_or(0);
    // Leaders vigild ends are reaped by the kernel at once: a zombie left until the end
    // would still be in /proc with its audit session, and vigild's adoption sweep would
    // take it for a login no session holds.
    // SAFETY: sets this process's own SIGCHLD disposition; no handler runs.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let target = Target::Socket(PathBuf::from(socket));
    let connected = zruntime::block_on(async {
        let connection = target.connect().await.map_err(|e| e.to_string())?;
        let manager = ManagerProxy::new(&connection).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((connection, manager))
    });
    let (_connection, manager) = match connected {
        Ok(c) => c,
        Err(e) => {
            eprintln!("session holder: cannot reach vigild on {socket}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let me = std::process::id();
    let ses = own_audit_session();
    let mut held = 0u32;
    let mut leaves: Vec<Child> = Vec::new();
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(total) = line.trim().parse::<u32>() else {
            let _ = writeln!(out, "ERR {held} not a number: {line:?}");
            continue;
        };
        let started = Instant::now();
        let range = held..total.max(held);
        let (opened, error) = if per_leader == 0 {
            zruntime::block_on(open_range(&manager, user, range, in_flight, me, ses))
        } else {
            start_leaves(socket, user, range, (per_leader, setup), in_flight, &mut leaves)
        };
        held += opened;
        let answer = match error {
            None => format!("HELD {held} {}", started.elapsed().as_micros()),
            Some(e) => format!("ERR {held} {e}"),
        };
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    for mut leaf in leaves {
        let _ = kill(Pid::from_raw(leaf.id() as i32), Signal::SIGKILL);
        let _ = leaf.wait();
    }
    ExitCode::SUCCESS
}

/// Starts leaders for sessions `range`, `per_leader` each, `in_flight` starting at a
/// time; each says `OK <opened>` (or `ERR …`) once its sessions are open. The number
/// opened and the first error (no new leader is started after one).
fn start_leaves(
    socket: &str,
    user: &str,
    range: std::ops::Range<u32>,
    (per_leader, setup): (u32, &str),
    in_flight: u32,
    leaves: &mut Vec<Child>,
) -> (u32, Option<String>) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return (0, Some(format!("current_exe: {e}"))),
    };
    let (mut opened, mut error, mut next) = (0u32, None, range.start);
    let mut starting: VecDeque<Child> = VecDeque::new();
    loop {
        while error.is_none() && next < range.end && starting.len() < in_flight as usize {
            if (next - range.start).is_multiple_of(256)
                && let Some(kib) = mem_available_kib().filter(|&kib| kib < MIN_AVAILABLE_KIB)
            {
                error = Some(format!("the machine's available memory is down to {} MiB: no more leaders", kib / 1024));
                break;
            }
            let count = per_leader.min(range.end - next);
            let spawned = Command::new(&exe)
                .args([LEAF_ARG, socket, user, &next.to_string(), &count.to_string(), setup])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn();
            match spawned {
                Ok(child) => starting.push_back(child),
                Err(e) => error = Some(format!("cannot start a leader: {e}")),
            }
            next += count;
        }
        let Some(mut leaf) = starting.pop_front() else { break };
        // A leader's work is bounded (SIGALRM): its line comes, or its stdout closes.
        let mut line = String::new();
        if let Some(stdout) = leaf.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        match line.trim().strip_prefix("OK ").and_then(|n| n.parse::<u32>().ok()) {
            Some(n) => opened += n,
            // No line: its stdout closed, so it has exited (waiting for it is bounded).
            None if line.is_empty() => {
                let status = leaf.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                error = error.or(Some(format!("a leader exited without answering ({status})")));
            }
            None => error = error.or(Some(format!("a leader said {:?}", line.trim()))),
        }
        leaves.push(leaf);
    }
    (opened, error)
}

/// A leader: `<program> --hold-leaf SOCKET USER FIRST COUNT SETUP`. Opens sessions
/// FIRST..FIRST+COUNT over one connection (set up as [`LeafSetup`] says), closes it,
/// says `OK <COUNT>`, then becomes the waiting program (same pid and start time) until the
/// helper kills it.
fn leaf_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let parsed = match args.as_slice() {
        [socket, user, first, count, setup] => first
            .parse::<u32>()
            .ok()
            .zip(count.parse::<u32>().ok())
            .zip(LeafSetup::parse(setup))
            .map(|(fc, setup)| (socket, user, fc, setup)),
        _ => None,
    };
    let Some((socket, user, (first, count), setup)) = parsed else {
        eprintln!("usage: {LEAF_ARG} SOCKET USER FIRST COUNT SETUP");
        return ExitCode::from(2);
    };
    // SAFETY: plain syscalls. Dies with the helper; SIGALRM (default action: exit)
    // bounds the opening.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::alarm(LEAF_SECONDS);
    }
    if nix::unistd::getppid().as_raw() == 1 {
        return ExitCode::FAILURE;
    }
    let me = std::process::id();
    let pty = match leaf_login(user, first, count, &setup) {
        Ok(pty) => pty,
        Err(e) => {
            println!("ERR {e}");
            return ExitCode::FAILURE;
        }
    };
    let ses = own_audit_session();
    let target = Target::Socket(PathBuf::from(socket));
    let opened = zruntime::block_on(async {
        let connection = target.connect().await.map_err(|e| e.to_string())?;
        let manager = ManagerProxy::new(&connection).await.map_err(|e| e.to_string())?;
        for i in first..first + count {
            let tty = pty.clone().unwrap_or_else(|| format!("hold{i}"));
            manager.open_session_ex(user, SERVICE, &tty, RHOST, "", me, ses, &[]).await.map_err(|e| format!("OpenSessionEx {i}: {e}"))?;
        }
        Ok::<_, String>(count)
    });
    let mut out = std::io::stdout();
    let line = match &opened {
        Ok(n) => format!("OK {n}"),
        Err(e) => format!("ERR {e}"),
    };
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    // SAFETY: cancels the alarm, which would otherwise outlive the exec.
    unsafe { libc::alarm(0) };
    if opened.is_err() {
        return ExitCode::FAILURE;
    }
    if let Some(waiter) = std::env::var_os(WAITER_ENV) {
        let error = Command::new(&waiter).arg0("leader").stdin(Stdio::null()).exec();
        eprintln!("leader {me}: cannot exec {}: {error}; sleep instead", waiter.to_string_lossy());
    }
    let error = Command::new("sleep").arg("infinity").stdin(Stdio::null()).exec();
    eprintln!("leader {me}: cannot exec sleep: {error}");
    ExitCode::FAILURE
}

/// What a login does before its session is opened: an audit session of its own
/// (pam_loginuid), and for a session with a tty, a pty whose slave becomes the leader's
/// controlling terminal, given to the user (sshd's chown), both ends left open across the
/// exec. Its name (`/dev/pts/N`) when there is one.
fn leaf_login(user: &str, first: u32, count: u32, setup: &LeafSetup) -> Result<Option<String>, String> {
    let account = nix::unistd::User::from_name(user).ok().flatten().ok_or_else(|| format!("no user {user}"))?;
    if setup.own_audit_session {
        std::fs::write("/proc/self/loginuid", account.uid.as_raw().to_string()).map_err(|e| format!("write /proc/self/loginuid: {e}"))?;
    }
    if first >= setup.ttys_below {
        return Ok(None);
    }
    if count != 1 {
        return Err("a pty per session needs one leader per session".to_string());
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: plain libc calls on descriptors this process opens and never closes (the
    // exec keeps them: no O_CLOEXEC), and ptsname on a master it holds.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if master < 0 || libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
            return Err(format!("posix_openpt: {}", std::io::Error::last_os_error()));
        }
        let mut name = [0 as libc::c_char; 64];
        if libc::ptsname_r(master, name.as_mut_ptr(), name.len()) != 0 {
            return Err(format!("ptsname_r: {}", std::io::Error::last_os_error()));
        }
        let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_owned();
        // A session leader without a terminal that opens one takes it as its own.
        let slave = libc::open(path.as_ptr(), libc::O_RDWR);
        if slave < 0 || libc::chown(path.as_ptr(), account.uid.as_raw(), account.gid.as_raw()) != 0 {
            return Err(format!("open {path:?}: {}", std::io::Error::last_os_error()));
        }
        Ok(Some(path.to_string_lossy().into_owned()))
    }
}

fn own_audit_session() -> u32 {
    vigil_host::procfs::own_audit_session_id()
}

/// Opens sessions `range` (their ttys are `hold<N>`), `in_flight` calls at a time; the
/// number opened and the first error.
async fn open_range(
    manager: &ManagerProxy<'static>,
    user: &str,
    range: std::ops::Range<u32>,
    in_flight: u32,
    me: u32,
    ses: u32,
) -> (u32, Option<String>) {
    let tasks: Vec<_> = (0..in_flight)
        .map(|lane| {
            let (manager, user, range) = (manager.clone(), user.to_string(), range.clone());
            zruntime::spawn(async move {
                let (mut opened, mut i) = (0u32, range.start + lane);
                while i < range.end {
                    let tty = format!("hold{i}");
                    if let Err(e) = manager.open_session_ex(&user, SERVICE, &tty, RHOST, "", me, ses, &[]).await {
                        return (opened, Some(format!("OpenSessionEx {i}: {e}")));
                    }
                    opened += 1;
                    i += in_flight;
                }
                (opened, None)
            })
        })
        .collect();
    let (mut opened, mut error) = (0, None);
    for task in tasks {
        match task.await {
            Ok((n, e)) => {
                opened += n;
                error = error.or(e);
            }
            Err(e) => error = error.or(Some(format!("a task failed: {e}"))),
        }
    }
    (opened, error)
}
