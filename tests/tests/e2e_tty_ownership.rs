//! A session owns a tty only while a process of it has that tty (DESIGN.md, "What a
//! session owns"). Two routes by which a closed pty stayed a session's, and its number's
//! next owners paid for it: a pty closed while vigild was down (SIGKILL), and a pty
//! closed between vigild's look at /proc and its inotify watch. In both, the number goes
//! to another login (and to root's terminal), and the first session's warning and end
//! must not reach them, while the new login is supervised with its tty.
//!
//! The race is forced, not waited for: vigild saves the session's file right after it
//! claims a new pty, and the test puts a FIFO where that file's temporary copy goes, so
//! vigild waits in open(2) (seen as `wait_for_partner` in /proc/PID/wchan) while the
//! test closes the pty; then it reads the FIFO and vigild goes on. Needs root and the
//! release build: see tests/README.md.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vigil_e2e::login::{Login, hold_pty, listed_ttys, login_with, login_without_client_pty, short_tty, wait_tracked};
use vigil_e2e::procfs::{self, ProcInfo};
use vigil_e2e::{Harness, SshCommand, SshOpts, SshdOpts, VigildOpts, require_root, wait_for};

const STEP: Duration = Duration::from_secs(10);
const KILL_GRACE: Duration = Duration::from_secs(1);
const WARNING_TEXT: &str = "*** vigil: ";
/// A's idle limit in the race test: long enough for the setup (two forced races, root's
/// pane, B's login), which types nothing into A's session after the login.
const A_IDLE: Duration = Duration::from_secs(30);

/// Nobody but the user `a_user` is ended by idleness while the test looks; `a_user`'s
/// sessions after `a_idle`.
fn config(a_user: &str, a_idle: &str) -> String {
    format!(
        "[defaults]\nidle_timeout = \"1h\"\nnotty_idle_timeout = \"1h\"\nkill_grace = \"1s\"\n\n\
         [[policy]]\nname = \"a\"\nmatch = {{ users = [\"{a_user}\"] }}\nidle_timeout = \"{a_idle}\"\nidle_warning = \"8s\"\n"
    )
}

fn device(tty: &str) -> PathBuf {
    Path::new("/dev").join(tty)
}

#[track_caller]
fn wait_device_gone(tty: &str) {
    let path = device(tty);
    wait_for(STEP, &format!("{} to be removed", path.display()), || if path.exists() { Err("still there".to_string()) } else { Ok(()) });
}

/// Processes of `uid` whose controlling tty is `tty` (`pts/N`).
fn processes_on(uid: u32, tty: &str) -> Vec<ProcInfo> {
    procfs::processes_of_uid(uid).into_iter().filter(|p| p.tty().is_some_and(|t| short_tty(&t.display().to_string()) == tty)).collect()
}

/// The session listed for leader `leader`, if any.
fn listed(h: &Harness, leader: u32) -> Option<vigil_e2e::SessionInfo> {
    h.vigild().list_sessions().into_iter().find(|s| s.leader_pid == leader)
}

/// What B must still have after A's warning and end: its command on its pty, its session
/// supervised with that tty and an idle deadline, and no warning in its output.
#[track_caller]
fn assert_b_untouched(h: &Harness, b_client: &SshCommand, b_leader: u32, b_job: &ProcInfo, b_tty: &str) {
    assert!(b_job.still_running(), "B's job {} ({}) was killed", b_job.pid, b_job.cmdline);
    assert!(b_client.is_running(), "B's ssh client ended: {}", b_client.stderr_text());
    let b = listed(h, b_leader).unwrap_or_else(|| panic!("B's session is gone: {:#?}", h.vigild().list_sessions()));
    assert_eq!(listed_ttys(&b), vec![b_tty.to_string()], "{b:#?}");
    assert!(b.other.get("deadline").and_then(|v| v.as_u64()).is_some_and(|d| d > 0), "B has an idle deadline: {b:#?}");
    assert!(!b_client.stdout_text().contains(WARNING_TEXT), "A's warning reached B's terminal: {}", b_client.stdout_text());
    assert!(h.session_records("session_close", b.id).is_empty() && h.session_records("session_end", b.id).is_empty());
}

// ---- after a crash restart ------------------------------------------------------------

#[test]
fn a_pty_closed_while_vigild_was_down_is_not_restored_and_its_next_owner_is_untouched() {
    require_root!();
    let mut h = Harness::with_syslog();
    let a_user = h.create_user("owna");
    let b_user = h.create_user("ownb");
    h.start_vigild(VigildOpts::default().no_bus().config(&config(&a_user.name, "1h")));
    let stack = h.loginuid_ssh_stack();
    h.start_sshd(SshdOpts::default().stack(stack));

    // 1. A, in an ssh session, opens a second pty; vigild lists both.
    let a = login_with(&h, &a_user, &SshOpts::default(), STEP);
    let a_tty = a.tty();
    let for_sshpass = hold_pty();
    a.client.send_line("script -q /dev/null");
    let a_listed = wait_for(STEP, "A's second pty in vigilctl list", || {
        let s = listed(&h, a.server.priv_pid()).ok_or("A not listed")?;
        let ttys = listed_ttys(&s);
        if ttys.len() == 2 { Ok(ttys) } else { Err(format!("{ttys:?}")) }
    });
    let inner = a_listed.iter().find(|t| **t != a_tty).cloned().expect("the inner pty");

    // 2.–4. vigild is SIGKILLed, A leaves the inner shell (the pty goes), vigild restarts.
    h.vigild().signal(Signal::SIGKILL);
    h.vigild().wait_exit(STEP).expect("vigild to die of SIGKILL");
    h.vigild().stop();
    a.client.send_line("exit");
    wait_device_gone(&inner);
    h.vigild().start();
    let restored = h.wait_for_event(STEP, "vigild", "session_restored", &[("session", &a.id().to_string())]);
    assert_eq!(restored.field("ttys").as_deref(), Some(a_tty.as_str()), "only the pty A still has: {}", restored.raw);
    assert_eq!(restored.field("ttys_released").as_deref(), Some(inner.as_str()), "{}", restored.raw);

    // 5. B logs in and is given the freed number: supervised with it.
    drop(for_sshpass);
    let (b_client, b_server) = login_without_client_pty(&h, &b_user, STEP);
    let b_tty = short_tty(&b_server.tty().expect("B's pty").display().to_string());
    assert_eq!(b_tty, inner, "B was given another pts number than the freed one: the test cannot show the takeover");
    let b_tracked = wait_tracked(&h, b_server.priv_pid(), std::slice::from_ref(&b_tty), STEP);
    let b_job = processes_on(b_user.uid, &b_tty).into_iter().find(|p| p.comm == "sleep").expect("B's job on its pty");

    // 6. A's session is ended (admin): B's shell and job stay, B stays supervised.
    let out = h.vigild().vigilctl(&["terminate", &a.id().to_string()]);
    assert!(out.status.success(), "{out:?}");
    let end = h.wait_for_event(STEP, "vigild", "session_end", &[("session", &a.id().to_string()), ("reason", "admin")]);
    assert_eq!(end.field("ttys").as_deref(), Some(a_tty.as_str()), "{}", end.raw);
    a.client.wait_exit(STEP);
    std::thread::sleep(KILL_GRACE + Duration::from_secs(1));
    assert_b_untouched(&h, &b_client, b_server.priv_pid(), &b_job, &b_tty);
    assert_eq!(b_tracked.user, b_user.name);
    eprintln!("restart: A restored with {a_tty} ({inner} released); B supervised on {inner}; A's end left B's job running");
}

// ---- a pty closed between vigild's look at /proc and its watch -----------------------

/// vigild's main thread waits in open(2) of a FIFO.
fn vigild_waits_on_fifo(h: &Harness) -> bool {
    std::fs::read_to_string(format!("/proc/{}/wchan", h.vigild().pid())).is_ok_and(|w| w.trim() == "wait_for_partner")
}

/// Reads what vigild writes into the FIFO until it closes it.
#[track_caller]
fn drain_fifo(path: &Path) -> Vec<u8> {
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    let deadline = Instant::now() + STEP;
    // Bounded by the deadline: until vigild wrote something and closed its end.
    while Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match fifo.read(&mut buf) {
            Ok(0) if !bytes.is_empty() => return bytes,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading the FIFO: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("vigild wrote nothing into the FIFO within {STEP:?}");
}

/// A opens a pty (`script`, with `sleep 600` on the inner side); vigild finds it and
/// claims it, and is held in the save that follows while the test closes the pty.
/// Returns the pty's name.
fn forced_race(h: &Harness, a: &Login, a_uid: u32) -> String {
    let fifo = h.vigild().state_dir().join("sessions").join(format!(".{}.tmp", a.id()));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap_or_else(|e| panic!("mkfifo: {e}"));
    let before: Vec<u32> = procfs::processes_of_uid(a_uid).iter().map(|p| p.pid).collect();
    a.client.send_line("script -qc 'sleep 600' /dev/null");
    let job = wait_for(STEP, "A's sleep on its new pty", || {
        procfs::processes_of_uid(a_uid)
            .into_iter()
            .find(|p| p.comm == "sleep" && p.tty().is_some() && !before.contains(&p.pid))
            .ok_or_else(|| "not yet".to_string())
    });
    let tty = short_tty(&job.tty().expect("a pty").display().to_string());
    wait_for(STEP, "vigild to wait in the save of A's claim", || if vigild_waits_on_fifo(h) { Ok(()) } else { Err("not yet".to_string()) });
    // The window: the pty closes while vigild has claimed it and not yet gone on.
    assert!(job.signal(Signal::SIGKILL), "kill {}", job.pid);
    wait_device_gone(&tty);
    let saved = String::from_utf8_lossy(&drain_fifo(&fifo)).into_owned();
    assert!(saved.contains(&format!("\"id\":{}", a.id())), "A's file: {saved}");
    tty
}

#[test]
fn a_pty_closed_before_its_watch_is_not_kept_and_its_next_owners_are_untouched() {
    require_root!();
    let mut h = Harness::with_syslog();
    let a_user = h.create_user("racea");
    let b_user = h.create_user("raceb");
    let a_idle = format!("{}s", A_IDLE.as_secs());
    h.start_vigild(VigildOpts::default().no_bus().config(&config(&a_user.name, &a_idle)));
    let stack = h.loginuid_ssh_stack();
    h.start_sshd(SshdOpts::default().stack(stack));
    let a = login_with(&h, &a_user, &SshOpts::default(), STEP);
    let a_tty = a.tty();

    // First race; root then opens a terminal (a tmux pane) and is given the number.
    let first = forced_race(&h, &a, a_user.uid);
    let pane = h.tmux().run(&["new-window", "-d", "-P", "-F", "#{pane_id} #{pane_tty} #{pane_pid}", "sleep 600"]);
    let mut fields = pane.split_whitespace();
    let (pane_id, pane_tty, pane_pid) = (fields.next().unwrap().to_string(), fields.next().unwrap().to_string(), fields.next().unwrap());
    let root_job = ProcInfo::read(pane_pid.parse().unwrap()).expect("root's pane process");
    assert_eq!(short_tty(&pane_tty), first, "root's pane was given another pts number than the freed one");

    // Second race; B logs in and is given that number.
    let for_sshpass = hold_pty();
    let second = forced_race(&h, &a, a_user.uid);
    drop(for_sshpass);
    let (b_client, b_server) = login_without_client_pty(&h, &b_user, STEP);
    let b_tty = short_tty(&b_server.tty().expect("B's pty").display().to_string());
    assert_eq!(b_tty, second, "B was given another pts number than the freed one");
    wait_tracked(&h, b_server.priv_pid(), std::slice::from_ref(&b_tty), STEP);
    let b_job = processes_on(b_user.uid, &b_tty).into_iter().find(|p| p.comm == "sleep").expect("B's job on its pty");
    let a_listed = listed(&h, a.server.priv_pid()).expect("A listed");
    assert_eq!(listed_ttys(&a_listed), vec![a_tty.clone()], "A keeps only its own pty: {a_listed:#?}");

    // A goes idle: warned on its own terminal only, then ended.
    let warning = h.wait_for_event(A_IDLE + STEP, "vigild", "idle_warning", &[("session", &a.id().to_string())]);
    assert_eq!(
        (warning.field("ttys").as_deref(), warning.field("ttys_warned").as_deref()),
        (Some(a_tty.as_str()), Some("1")),
        "{}",
        warning.raw
    );
    let end = h.wait_for_event(STEP + STEP, "vigild", "session_end", &[("session", &a.id().to_string()), ("reason", "idle")]);
    assert_eq!(end.field("ttys").as_deref(), Some(a_tty.as_str()), "{}", end.raw);
    a.client.wait_exit(STEP);
    std::thread::sleep(KILL_GRACE + Duration::from_secs(1));

    // Root's terminal and job, and B's, untouched; B supervised with its pty.
    assert!(root_job.still_running(), "root's job in its pane was killed");
    let screen = h.tmux().run(&["capture-pane", "-p", "-t", &pane_id]);
    assert!(!screen.contains(WARNING_TEXT), "A's warning reached root's terminal: {screen}");
    assert_b_untouched(&h, &b_client, b_server.priv_pid(), &b_job, &b_tty);
    eprintln!("race: A kept {a_tty} only after two ptys closed in the window ({first}, {second}); root's pane and B untouched");
}
