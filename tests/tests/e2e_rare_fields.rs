//! End-to-end tests of rare records and the fields only they carry, each provoked for
//! real: `tty_taken_over` (`taken_tty`, `from_session`, `from_user`) for a login that is
//! given the number of a pty whose close vigild never heard of, and `terminate_failed`
//! (`attempt`, `by=leader_gone`) for a leader that dies while vigild is out of
//! descriptors.
//!
//! The takeover: vigild hears of a closed pty through the IN_IGNORED of its inotify watch
//! on the device. While vigild is stopped (SIGSTOP), the test writes to two of the
//! session's ptys in turn until vigild's inotify queue is full (every further event,
//! that IN_IGNORED included, is then lost, as the kernel does when a reader falls behind),
//! and closes the inner pty; its number then goes to another user's login. The claim
//! left behind is stale: the new login holds the tty and takes it over.
//!
//! `records_dropped where=queue` is not provoked here: it needs the writer thread stuck
//! (nothing outside vigild stalls it: syslog is sent to without blocking, then spooled)
//! while vigild makes 200,000 records, and the cheapest records a test can make in bulk,
//! a PAM open and close (2 records), go at about 2,000 cycles a second on two cores
//! (BENCHMARKS.md): over 50 s of load for the queue alone. A reload's `config_warning`
//! records would be more per call, but a reload waits for the writer (its format).
//!
//! Real sshd, rsyslogd and vigild, as the other e2e files. Needs root and the release
//! build: see tests/README.md.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vigil_e2e::flood::FLOOD_STEP_TIMEOUT;
use vigil_e2e::login::{Login, hold_pty, listed_ttys, login_with, login_without_client_pty, short_tty, wait_tracked};
use vigil_e2e::procfs::{self, ProcInfo};
use vigil_e2e::{Harness, LogLine, SshOpts, SshdOpts, VigildOpts, require_root, wait_for};

/// A single step (a record that is already due, a command's output).
const STEP: Duration = Duration::from_secs(10);
/// Nobody is ended by idleness while a test looks.
const QUIET_CONFIG: &str = "[defaults]\nidle_timeout = \"1h\"\nnotty_idle_timeout = \"1h\"\nkill_grace = \"1s\"\n";

fn raw(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.raw.as_str()).collect()
}

fn device(tty: &str) -> PathBuf {
    Path::new("/dev").join(tty)
}

/// The session listed for leader `leader`, if any.
fn listed(h: &Harness, leader: u32) -> Option<vigil_e2e::SessionInfo> {
    h.vigild().list_sessions().into_iter().find(|s| s.leader_pid == leader)
}

// ---- tty_taken_over ---------------------------------------------------------------------

/// Writes to the ptys while vigild is stopped, at most this many times: the queue holds
/// `max_queued_events` (16384 by default) before it overflows.
const MAX_WRITES: usize = 1 << 20;
/// The bytes one queued inotify event takes (`struct inotify_event`, no name: a watch
/// on a file).
const INOTIFY_EVENT_BYTES: usize = 16;

/// SIGCONT to vigild when dropped: a failed step never leaves it stopped.
struct Stopped<'a>(&'a Harness);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.vigild().sigcont();
    }
}

/// Copies of vigild's inotify descriptors (pidfd_getfd), to ask how much waits in them.
fn inotify_fds(pid: u32) -> Vec<OwnedFd> {
    // SAFETY: plain syscalls; every descriptor returned is owned by an OwnedFd at once.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    assert!(pidfd >= 0, "pidfd_open {pid}: {}", std::io::Error::last_os_error());
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as libc::c_int) };
    let mut fds = Vec::new();
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("vigild's fds");
    for entry in entries.flatten() {
        let is_inotify = std::fs::read_link(entry.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify");
        let Some(n) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else { continue };
        if !is_inotify {
            continue;
        }
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0) };
        assert!(fd >= 0, "pidfd_getfd {pid} {n}: {}", std::io::Error::last_os_error());
        fds.push(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
    }
    assert!(!fds.is_empty(), "vigild has no inotify descriptor");
    fds
}

/// The bytes of events waiting in the fullest of `fds` (FIONREAD).
fn queued_bytes(fds: &[OwnedFd]) -> usize {
    fds.iter()
        .map(|fd| {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
            assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
            n as usize
        })
        .max()
        .unwrap_or(0)
}

/// A's inner pty: `script` with `sleep 600` on it, listed by vigild among A's ttys.
/// Returns the pty's name and the sleep.
fn inner_pty(h: &Harness, a: &Login, a_uid: u32) -> (String, ProcInfo) {
    let before: Vec<u32> = procfs::processes_of_uid(a_uid).iter().map(|p| p.pid).collect();
    a.client.send_line("script -qc 'sleep 600' /dev/null");
    let job = wait_for(STEP, "A's sleep on its new pty", || {
        procfs::processes_of_uid(a_uid)
            .into_iter()
            .find(|p| p.comm == "sleep" && p.tty().is_some() && !before.contains(&p.pid))
            .ok_or_else(|| "not yet".to_string())
    });
    let tty = short_tty(&job.tty().expect("a pty").display().to_string());
    wait_tracked(h, a.server.priv_pid(), &[a.tty(), tty.clone()], STEP);
    (tty, job)
}

/// Session A claims pts/N, an inner pty (`script`). vigild is stopped; its inotify queue
/// is filled (output on A's two ptys in turn, which the kernel cannot merge) and pts/N
/// closed: its IN_IGNORED is lost with the overflow. vigild goes on with A's claim on
/// pts/N stale (no process of A has it, the device is gone). B logs in and sshd gives B
/// that number: vigild finds B's shell on it, A's claim held by nothing of A, and moves
/// the tty to B with `tty_taken_over taken_tty=pts/N from_session=A from_user=<A's
/// user>` under B's session.
#[test]
fn a_stale_claim_on_a_pty_given_to_another_login_is_taken_over_with_its_fields() {
    require_root!();
    let mut h = Harness::with_syslog();
    let a_user = h.create_user("takea");
    let b_user = h.create_user("takeb");
    h.start_vigild(VigildOpts::default().no_bus().config(QUIET_CONFIG));
    let stack = h.loginuid_ssh_stack();
    h.start_sshd(SshdOpts::default().stack(stack));

    // 1. A logs in and opens an inner pty; vigild claims both.
    let a = login_with(&h, &a_user, &SshOpts::default(), STEP);
    let a_tty = a.tty();
    let for_sshpass = hold_pty();
    let (inner, job) = inner_pty(&h, &a, a_user.uid);

    // 2. vigild stopped; its inotify queue filled by output on A's two ptys in turn.
    let max_events: usize =
        std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events").expect("max_queued_events").trim().parse().expect("a number");
    let full = max_events * INOTIFY_EVENT_BYTES;
    let inotify = inotify_fds(h.vigild().pid());
    h.vigild().sigstop();
    let stopped = Stopped(&h);
    let open = |tty: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(device(tty))
            .unwrap_or_else(|e| panic!("{tty}: {e}"))
    };
    let mut ptys = [open(&a_tty), open(&inner)];
    let (started, mut writes) = (Instant::now(), 0usize);
    // Bounded in count and time: until the queue is full.
    while queued_bytes(&inotify) < full && writes < MAX_WRITES && started.elapsed() < STEP {
        for pty in &mut ptys {
            if pty.write(b".").is_ok() {
                writes += 1;
            }
        }
        if writes % 1024 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(ptys);
    let queued = queued_bytes(&inotify);
    assert!(queued >= full, "vigild's inotify queue full ({queued} bytes of {full}) after {writes} writes in {:?}", started.elapsed());

    // 3. The inner pty closes while vigild cannot hear of it.
    assert!(job.signal(Signal::SIGKILL), "kill {}", job.pid);
    wait_for(STEP, &format!("{} to be removed", device(&inner).display()), || {
        if device(&inner).exists() { Err("still there".to_string()) } else { Ok(()) }
    });
    drop(stopped);
    wait_for(STEP, "vigild to read its inotify queue", || match queued_bytes(&inotify) {
        0 => Ok(()),
        n => Err(format!("{n} bytes")),
    });
    drop(inotify);
    let a_listed = listed(&h, a.server.priv_pid()).expect("A listed");
    let mut expected = vec![a_tty.clone(), inner.clone()];
    expected.sort();
    let mut a_ttys = listed_ttys(&a_listed);
    a_ttys.sort();
    assert_eq!(a_ttys, expected, "A still claims the closed pty (its IN_IGNORED was lost): {a_listed:#?}");

    // 4. B logs in (no pty on the client side) and is given the freed number.
    drop(for_sshpass);
    let (b_client, b_server) = login_without_client_pty(&h, &b_user, STEP);
    let b_tty = short_tty(&b_server.tty().expect("B's pty").display().to_string());
    assert_eq!(b_tty, inner, "B was given another pts number than the freed one (another pty was opened meanwhile?)");
    let b = wait_tracked(&h, b_server.priv_pid(), std::slice::from_ref(&b_tty), STEP);

    // 5. The record, under B's session, names the tty, A's session and A's user.
    let taken = h.wait_for_event(STEP, "vigild", "tty_taken_over", &[("session", &b.id.to_string())]);
    for (key, value) in [
        ("taken_tty", inner.as_str()),
        ("from_session", &a.id().to_string()),
        ("from_user", &a_user.name),
        ("user", &b_user.name),
        ("ttys", b_tty.as_str()),
    ] {
        assert!(taken.has(key, value), "{key}={value}: {}", taken.raw);
    }
    let all: Vec<LogLine> = h.auth_log().into_iter().filter(|l| l.is_event("vigild", "tty_taken_over")).collect();
    assert_eq!(all.len(), 1, "{:#?}", raw(&all));
    let a_now = listed(&h, a.server.priv_pid()).expect("A still listed");
    assert_eq!(listed_ttys(&a_now), vec![a_tty.clone()], "A keeps only its own pty: {a_now:#?}");
    assert!(b_client.is_running(), "B's ssh client ended: {}", b_client.stderr_text());
    eprintln!(
        "takeover: {writes} writes filled the queue ({queued} bytes); {inner} closed unheard, given to B (session {}), taken over from A (session {})",
        b.id,
        a.id()
    );
}

// ---- terminate_failed attempt=N by=leader_gone -------------------------------------------

/// vigild's descriptor limit for the out-of-descriptors test (as in e2e_hostile_sessions).
const NOFILE_HARD: u64 = 64;
/// vigild tries ending a dead leader's session again this long after (daemon/src/supervise/leaders.rs).
const LEADER_RETRY: Duration = Duration::from_secs(5);

/// The login's `[priv]` process (its leader) is killed while root's connections hold
/// every descriptor vigild has: vigild cannot list /proc or hold the processes it listed
/// (pidfd), so nothing is ended and the session is kept; `terminate_failed
/// reason=cannot_list_processes/cannot_hold_process by=leader_gone` is
/// written with `attempt=1`, then `attempt=2` on the retry 5 s later. Once the
/// descriptors are back, the next retry ends the session (`session_end
/// reason=leader_gone`) with the shell the leader left.
#[test]
fn a_leader_that_dies_while_vigild_is_out_of_descriptors_is_retried_with_its_attempt() {
    require_root!();
    let mut h = Harness::with_syslog();
    let user = h.create_user("lgone");
    h.start_vigild(VigildOpts::default().no_bus().config(QUIET_CONFIG).nofile_hard(NOFILE_HARD));
    let stack = h.loginuid_ssh_stack();
    h.start_sshd(SshdOpts::default().stack(stack));
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let (id, session) = (login.id(), login.id().to_string());
    let shell = login.server.shell().cloned().expect("the shell");

    // Root's connections take every descriptor vigild has left.
    let free = NOFILE_HARD as usize - h.vigild().fd_count();
    let conns = (free + 4).to_string();
    let mut flood = h.flood_as_root(&["--timeout-ms", "300", "conns", &conns]);
    let ready = flood.wait_ready(FLOOD_STEP_TIMEOUT);
    let full = h.vigild().fd_count();
    assert!(full as u64 >= NOFILE_HARD - 2, "vigild at its limit ({full} of {NOFILE_HARD} fds): {ready:?}");

    // The leader dies; vigild cannot see what it left.
    assert!(login.server.monitor.signal(Signal::SIGKILL), "SIGKILL to [priv] {}", login.server.priv_pid());
    let by = [("session", session.as_str()), ("by", "leader_gone")];
    let first = h.wait_for_event(STEP, "vigild", "terminate_failed", &[by.as_slice(), &[("attempt", "1")]].concat());
    let second = h.wait_for_event(LEADER_RETRY + STEP, "vigild", "terminate_failed", &[by.as_slice(), &[("attempt", "2")]].concat());
    for failed in [&first, &second] {
        // /proc unlisted, or a process listed and not held (pidfd_open): which one depends
        // on the descriptor a passing connection leaves free for the moment.
        let reason = failed.field("reason");
        assert!(matches!(reason.as_deref(), Some("cannot_list_processes" | "cannot_hold_process")), "{}", failed.raw);
        assert!(failed.field("error").is_some_and(|e| e.contains("Too many open files")), "{}", failed.raw);
    }
    assert!(
        h.session_records("session_end", id).is_empty(),
        "no end while nothing was ended: {:#?}",
        raw(&h.session_records("session_end", id))
    );
    assert!(ProcInfo::read(shell.pid).is_some_and(|p| p.is_alive()), "the shell {} still runs: {}", shell.pid, second.raw);

    // Descriptors back: a later attempt ends the session and the shell.
    let (done, _) = flood.finish(STEP);
    let end = h.wait_for_event(LEADER_RETRY + STEP, "vigild", "session_end", &[("session", &session), ("reason", "leader_gone")]);
    assert!(end.field("processes").is_some_and(|n| n != "0"), "the shell was ended with it: {}", end.raw);
    wait_for(STEP, "the shell to be ended", || match ProcInfo::read(shell.pid).filter(ProcInfo::is_alive) {
        Some(p) => Err(format!("still running: {p:?}")),
        None => Ok(()),
    });
    let failures = h.session_records("terminate_failed", id);
    let attempts: Vec<String> = failures.iter().filter_map(|l| l.field("attempt")).collect();
    let numbered: Vec<String> = (1..=attempts.len()).map(|n| n.to_string()).collect();
    assert_eq!(attempts, numbered, "one record per attempt, counted from 1: {:#?}", raw(&failures));
    assert!(failures.iter().all(|l| l.has("by", "leader_gone")), "{:#?}", raw(&failures));
    let log = h.auth_log();
    let position = |line: &LogLine| log.iter().position(|l| l.raw == line.raw);
    assert!(position(failures.last().unwrap()) < position(&end), "the failures before the end");
    assert_eq!(h.session_records("session_end", id).len(), 1, "{:#?}", raw(&h.session_records("session_end", id)));
    eprintln!(
        "leader gone out of descriptors: {} attempt(s) failed, {} root connections held; then {}",
        attempts.len(),
        done.accepted,
        end.raw
    );
}
