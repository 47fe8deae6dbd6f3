//! End-to-end attacks on supervision itself (issue 8, items 3 to 5): a forged tty atime,
//! vigild killed with SIGKILL while 200 sessions are open, a login while vigild is down,
//! and a burst of 100 ssh logins that outruns the module's deadline. Real sshd (with
//! pam_loginuid where audit sessions matter), real ssh clients, vigild killed and
//! restarted with the same arguments; what is asserted is the contract: every session
//! whose leader lives is supervised again (restored or adopted, with its record, never
//! a second `session_open`), the dead ones are ended as `leader_gone`, and idleness
//! still ends them.
//!
//! The private socket's attacks are in e2e_hostile.rs. Needs root and the release
//! build: see tests/README.md.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vigil_e2e::flood::FLOOD_STEP_TIMEOUT;
use vigil_e2e::login::login_with;
use vigil_e2e::procfs::ProcInfo;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::tmux::LOGIN_TIMEOUT;
use vigil_e2e::wait::{try_wait_for, try_wait_for_polling};
use vigil_e2e::{Harness, LogLine, PamHostSession, PamStack, SshOpts, SshSession, SshdOpts, VigildOpts, paths, require_root, wait_for};

const IDLE_TIMEOUT: Duration = Duration::from_secs(6);
const IDLE_CONFIG: &str = "[defaults]\nidle_timeout = \"6s\"\nidle_warning = \"3s\"\nkill_grace = \"1s\"\n";
/// Long enough for a kill and a restart inside the idle timeout.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(12);
const IDLE_CONFIG_RESTORE: &str = "[defaults]\nidle_timeout = \"12s\"\nidle_warning = \"4s\"\nkill_grace = \"1s\"\n";
/// Nothing ends by idleness while a test looks (tty and notty sessions alike).
const QUIET_CONFIG: &str = "[defaults]\nidle_timeout = \"1h\"\nnotty_idle_timeout = \"1h\"\n";
const IDLE_WARNING_TEXT: &str = "*** vigil: no input on this session for ";
/// The contract: an unregistered login session is adopted this long after the login
/// (or after vigild starts, for one made while it was down).
const ADOPT_WITHIN: Duration = Duration::from_secs(15);
/// Added to every expected time before a wait gives up.
const SLACK: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_secs(10);

/// sshd's session stack: pam_unix, then (with `loginuid`) pam_loginuid, which gives the
/// session its kernel audit session as Debian's own sshd stack does, then pam_vigil.
fn ssh_stack(h: &Harness, loginuid: bool) -> PamStack {
    let module = paths::pam_module().display().to_string();
    let stack = unix_stack();
    let stack = if loginuid { stack.session("required", "pam_loginuid.so", &[]) } else { stack };
    stack.session("required", &module, &h.vigil_args().to_args())
}

/// vigild (private socket, `config`) and sshd whose session stack ends with pam_vigil.
fn ssh_harness(config: &str) -> Harness {
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(config));
    let stack = ssh_stack(&h, false);
    h.start_sshd(SshdOpts::default().stack(stack));
    h
}

/// The session ids of every vigild record `event`, with how often each appears.
fn ids_of(h: &Harness, event: &str) -> BTreeMap<u64, usize> {
    let mut ids = BTreeMap::new();
    for l in h.auth_log().iter().filter(|l| l.is_event("vigild", event)) {
        if let Some(id) = l.field("session").and_then(|s| s.parse().ok()) {
            *ids.entry(id).or_insert(0) += 1;
        }
    }
    ids
}

fn raw(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.raw.as_str()).collect()
}

/// `/proc/PID/sessionid`: the kernel audit session pam_loginuid started.
fn audit_session(pid: u32) -> Option<u32> {
    Some(vigil_host::procfs::audit_session_id(pid)).filter(|&s| s != vigil_host::procfs::NO_AUDIT_SESSION)
}

/// Waits for vigild's idle warning on the client's terminal.
#[track_caller]
fn wait_warning(client: &SshSession, within: Duration) {
    client.wait_for(within, "the idle warning", |s| s.contains(IDLE_WARNING_TEXT).then_some(()));
}

/// SIGKILL to vigild (what the OOM killer or a crash does), then the same command line
/// again, as systemd's `Restart=on-failure` would.
fn kill_and_restart(h: &Harness, between: impl FnOnce()) {
    h.vigild().signal(Signal::SIGKILL);
    let status = h.vigild().wait_exit(STEP).expect("vigild to die of SIGKILL");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
    h.vigild().stop(); // reaps; nothing else
    between();
    h.vigild().start();
}

// ---- 3. a forged atime ---------------------------------------------------------------

#[test]
fn future_tty_atime_is_not_activity() {
    require_root!();
    let h = ssh_harness(IDLE_CONFIG);
    let user = h.create_user("atime");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let (id, tty) = (login.id(), login.tty());
    let pty = login.server.tty().expect("the shell's pty");

    // Once, by the session's own user, on the terminal they own.
    login.client.send_line("touch -a -d 2099-01-01 $(tty); echo TOUCHED-$?");
    let last_input = Instant::now();
    login.client.wait_for_text("TOUCHED-0", STEP);
    let atime = std::fs::metadata(&pty).unwrap_or_else(|e| panic!("stat {}: {e}", pty.display())).atime();
    assert!(atime > 4_000_000_000, "{} has its atime in 2099: {atime}", pty.display());

    wait_warning(&login.client, IDLE_TIMEOUT + SLACK);
    let warned_after = last_input.elapsed();
    let code = login.client.wait_exit(IDLE_TIMEOUT + SLACK);
    let ended_after = last_input.elapsed();
    let end = h.wait_for_event(STEP, "vigild", "session_end", &[("session", &id.to_string()), ("reason", "idle")]);
    // `tty=` is the session's PAM_TTY in every session record (`ssh` under sshd): the
    // terminal whose time was forged is `suspect_tty=`.
    let suspect = h.wait_for_event(
        STEP,
        "vigild",
        "activity_suspect",
        &[("session", &id.to_string()), ("source", "atime"), ("suspect_tty", &tty), ("reason", "future")],
    );
    let suspects = h.session_records("activity_suspect", id);
    assert!(suspects.len() <= 1 + (ended_after.as_secs() / 60) as usize, "once per minute: {:#?}", raw(&suspects));
    eprintln!(
        "future atime: warned {warned_after:?} and ended {ended_after:?} after the touch (timeout {IDLE_TIMEOUT:?}); \
         ssh exit {code}; {}; {}",
        suspect.raw, end.raw
    );
}

// ---- 4. SIGKILL with sessions open ---------------------------------------------------

const HELD: usize = 200;
const LEADERS_KILLED: usize = 20;

#[test]
fn sigkill_with_200_sessions_restores_the_living_and_ends_the_dead() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_vigild(VigildOpts::default().no_bus().config(QUIET_CONFIG));
    let user = h.create_user("crash");
    let service = h.install_vigil_service("crash", &h.vigil_args());
    let files = h.vigild().state_dir().join("sessions");
    let file = |id: u64| files.join(id.to_string());

    // 200 leaders (pam_host processes, as sshd's [priv] would be), each holding a session.
    let mut held: Vec<(u64, PamHostSession)> = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let session = h.open_pam_session(&h.pam_host(&service, &user.name));
        assert_eq!(session.open_rc(), PAM_SUCCESS, "stderr:\n{}", session.stderr_text());
        let id = session.session_id_u64();
        // On disk before OpenSession returned.
        assert!(file(id).is_file(), "{} exists once open_session returned", file(id).display());
        held.push((id, session));
    }
    assert_eq!(h.vigild().list_sessions().len(), HELD);

    let (dead, living) = held.split_at_mut(LEADERS_KILLED);
    kill_and_restart(&h, || {
        // While vigild is dead, 20 leaders die too (no close_session: nobody to tell).
        for (_, session) in dead.iter_mut() {
            session.kill();
        }
    });
    let dead_ids: BTreeSet<u64> = dead.iter().map(|(id, _)| *id).collect();
    let living_ids: BTreeSet<u64> = living.iter().map(|(id, _)| *id).collect();

    let restored: BTreeMap<u64, usize> = wait_for(STEP, "180 session_restored and 20 leader_gone records", || {
        let restored = ids_of(&h, "session_restored");
        let gone: BTreeSet<u64> = h
            .auth_log()
            .iter()
            .filter(|l| l.is_event("vigild", "session_end") && l.has("reason", "leader_gone"))
            .filter_map(|l| l.field("session")?.parse().ok())
            .collect();
        if restored.len() >= living_ids.len() && dead_ids.is_subset(&gone) {
            Ok(restored)
        } else {
            Err(format!("{} restored, {} of the dead ended", restored.len(), dead_ids.intersection(&gone).count()))
        }
    });
    assert_eq!(restored.keys().copied().collect::<BTreeSet<u64>>(), living_ids, "exactly the living are restored");
    assert!(restored.values().all(|&n| n == 1), "one session_restored each: {restored:?}");
    for &id in &dead_ids {
        let ends: Vec<LogLine> = h.session_records("session_end", id);
        assert_eq!(ends.len(), 1, "session {id}: {:#?}", raw(&ends));
        assert!(ends[0].has("reason", "leader_gone"), "{}", ends[0].raw);
        assert!(!file(id).exists(), "{} is removed with its session", file(id).display());
    }
    let opens = ids_of(&h, "session_open");
    let twice: Vec<(&u64, &usize)> = opens.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "one session_open per session, never a second after the restart: {twice:?}");
    assert_eq!(opens.len(), HELD, "{opens:?}");
    assert!(ids_of(&h, "session_adopted").is_empty(), "nothing adopted (--no-adopt)");
    let listed: BTreeSet<u64> = h.vigild().list_sessions().iter().map(|s| s.id).collect();
    assert_eq!(listed, living_ids, "`vigilctl list` after the restart");
    assert!(living_ids.iter().all(|&id| file(id).is_file()), "the living keep their files");

    // The restored sessions are vigild's as before: their leaders close them normally.
    for (id, session) in held.drain(LEADERS_KILLED..) {
        let (closed, run) = session.close();
        assert_eq!(closed, Some(PAM_SUCCESS), "close of restored session {id}; stderr:\n{}", run.stderr);
    }
    // vigild's audit writer runs after the reply: the last records may still be on their way.
    let closes = wait_for(STEP, "a session_close record for each restored session", || {
        let closes = ids_of(&h, "session_close");
        if living_ids.iter().all(|id| closes.contains_key(id)) { Ok(closes) } else { Err(format!("{closes:?}")) }
    });
    assert!(living_ids.iter().all(|id| closes.get(id) == Some(&1)), "one session_close each: {closes:?}");
    assert!(h.vigild().list_sessions().is_empty());
    wait_for(STEP, "every session file to be removed", || {
        let left: Vec<PathBuf> = std::fs::read_dir(&files).map_err(|e| e.to_string())?.flatten().map(|e| e.path()).collect();
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    });
}

#[test]
fn restored_session_still_ends_when_idle() {
    require_root!();
    let h = ssh_harness(IDLE_CONFIG_RESTORE);
    let user = h.create_user("restore");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let last_input = Instant::now(); // no key is sent after the login
    let id = login.id();
    kill_and_restart(&h, || {});
    h.wait_for_event(STEP, "vigild", "session_restored", &[("session", &id.to_string())]);
    wait_warning(&login.client, RESTORE_TIMEOUT + SLACK);
    login.client.wait_exit(RESTORE_TIMEOUT + SLACK);
    let ended_after = last_input.elapsed();
    h.wait_for_event(STEP, "vigild", "session_end", &[("session", &id.to_string()), ("reason", "idle")]);
    assert_eq!(h.session_records("session_open", id).len(), 1, "{:#?}", raw(&h.session_records("session_open", id)));
    assert_eq!(h.session_records("session_end", id).len(), 1);
    eprintln!("restored idle: ended {ended_after:?} after the last input (timeout {RESTORE_TIMEOUT:?})");
}

/// Sessions without a tty are sampled by their processes' I/O counters; this timeout is
/// shorter than the outage below, so an idle one's deadline passes while vigild is down.
const NOTTY_RESTORE_TIMEOUT: Duration = Duration::from_secs(6);
const NOTTY_RESTORE_CONFIG: &str = "[defaults]\nidle_timeout = \"1h\"\nnotty_idle_timeout = \"6s\"\nkill_grace = \"1s\"\n";

/// Whether the session's file holds the I/O counters of a sample (`"io_total":N`).
fn saved_io_total(h: &Harness, id: u64) -> Result<(), String> {
    let file = h.vigild().state_dir().join("sessions").join(id.to_string());
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let saved: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{text}: {e}"))?;
    if saved["io_total"].is_u64() { Ok(()) } else { Err(text) }
}

/// A session without a tty that sat idle while vigild was down is ended when it is taken
/// over, at the deadline it had (`late_ms` covering the outage, `late_cause=vigild_stopped`),
/// not given a whole new timeout; one whose processes did I/O during the outage is kept.
/// The I/O counters of the last sample are in the session's file for the new vigild to
/// compare with.
#[test]
fn a_notty_session_idle_through_an_outage_is_ended_at_its_deadline() {
    require_root!();
    let h = ssh_harness(NOTTY_RESTORE_CONFIG);
    let (idle_user, busy_user) = (h.create_user("nottyidl"), h.create_user("nottybsy"));
    let idle = h.ssh_command(&idle_user, "sleep 600");
    let busy = h.ssh_command(&busy_user, "while :; do echo tick; sleep 1; done");
    let idle_server = idle.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
    let busy_server = busy.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
    let idle_id = vigil_e2e::login::wait_tracked(&h, idle_server.priv_pid(), &[], STEP).id;
    let busy_id = vigil_e2e::login::wait_tracked(&h, busy_server.priv_pid(), &[], STEP).id;
    // vigild's first sample of each (a moment after the open) is saved with the session.
    wait_for(STEP, "the idle session's I/O counters on disk", || saved_io_total(&h, idle_id));
    wait_for(STEP, "the busy session's I/O counters on disk", || saved_io_total(&h, busy_id));

    let down = NOTTY_RESTORE_TIMEOUT + Duration::from_secs(3);
    kill_and_restart(&h, || std::thread::sleep(down));
    let restarted = Instant::now();
    h.wait_for_event(STEP, "vigild", "session_restored", &[("session", &idle_id.to_string())]);
    let end = h.wait_for_event(
        NOTTY_RESTORE_TIMEOUT + SLACK,
        "vigild",
        "session_end",
        &[("session", &idle_id.to_string()), ("reason", "idle"), ("late_cause", "vigild_stopped")],
    );
    let ended_after = restarted.elapsed();
    let late_ms: u64 = end.field("late_ms").and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("late_ms: {}", end.raw));
    assert!(late_ms >= 1_000, "late by the outage, not by a new timeout: {}", end.raw);
    assert!(idle.wait_exit(STEP).is_some(), "the idle client is disconnected");

    // The busy session printed during the outage: its counters moved, it is active.
    assert!(busy.is_running(), "the busy session was ended: {:#?}", raw(&h.session_records("session_end", busy_id)));
    assert!(h.session_records("session_end", busy_id).is_empty(), "{:#?}", raw(&h.session_records("session_end", busy_id)));
    assert!(h.vigild().list_sessions().iter().any(|s| s.id == busy_id), "the busy session is supervised");
    assert_eq!(h.session_records("session_open", idle_id).len(), 1);
    eprintln!("notty restore: the idle session ended {ended_after:?} after the restart (down {down:?}): {}", end.raw);
}

// ---- 1. out of descriptors: an end that cannot see is not an end ---------------------

/// vigild's hard descriptor limit in the test below: room for its own files and a few
/// connections, so root's connections (whose pool, 1024, is far larger) fill it.
const NOFILE_HARD: u64 = 64;
/// vigild tries a failed end again this long after (daemon/src/supervise/supervisor.rs).
const TERMINATE_RETRY: Duration = Duration::from_secs(5);

#[test]
fn idle_end_while_vigild_is_out_of_descriptors_is_retried_not_faked() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(IDLE_CONFIG).nofile_hard(NOFILE_HARD));
    let stack = ssh_stack(&h, false);
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user("emfile");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let id = login.id();
    let session = id.to_string();

    // Root's connections take every descriptor vigild has left; the few beyond wait in
    // the listen backlog until the tool gives up on them.
    let free = NOFILE_HARD as usize - h.vigild().fd_count();
    let conns = (free + 4).to_string();
    let mut flood = h.flood_as_root(&["--timeout-ms", "300", "conns", &conns]);
    let ready = flood.wait_ready(FLOOD_STEP_TIMEOUT);
    let flooded = Instant::now();
    let full = h.vigild().fd_count();
    assert!(full as u64 >= NOFILE_HARD - 2, "vigild at its limit ({full} of {NOFILE_HARD} fds): {ready:?}");

    // The idle deadline passes while vigild cannot list processes: recorded as a
    // failure, the session kept, its shell untouched.
    let failed = h.wait_for_event(
        IDLE_TIMEOUT + SLACK,
        "vigild",
        "terminate_failed",
        &[("session", &session), ("reason", "cannot_list_processes"), ("by", "idle")],
    );
    assert!(
        h.session_records("session_end", id).is_empty(),
        "no end while nothing was ended: {:#?}",
        raw(&h.session_records("session_end", id))
    );
    let shell = login.server.shell().map(|p| p.pid).expect("the shell");
    assert!(login.client.is_alive() && ProcInfo::read(shell).is_some(), "the shell still runs: {}", failed.raw);

    // Descriptors back: the next try ends it, for real.
    let (done, _) = flood.finish(STEP);
    let released = Instant::now();
    let code = login.client.wait_exit(TERMINATE_RETRY + SLACK);
    let end = h.wait_for_event(STEP, "vigild", "session_end", &[("session", &session), ("reason", "idle")]);
    let (failures, ends) = (h.session_records("terminate_failed", id), h.session_records("session_end", id));
    assert_eq!(ends.len(), 1, "{:#?}", raw(&ends));
    let log = h.auth_log();
    let position = |raw: &str| log.iter().position(|l| l.raw == raw);
    assert!(position(&failures[0].raw) < position(&end.raw), "the failure before the end: {:#?}", raw(&log));
    eprintln!(
        "out of descriptors: {} terminate_failed record(s) over {:?} flooded ({} root connections held, {} fds); \
         ended {:?} after the release; ssh exit {code}",
        failures.len(),
        released - flooded,
        done.accepted,
        full,
        released.elapsed()
    );
}

// ---- 5. vigild down, and a burst --------------------------------------------------------

#[test]
fn login_while_vigild_is_down_is_adopted_and_ended_when_idle() {
    require_root!();
    let mut h = Harness::with_syslog();
    let user = h.create_user("down");
    h.start_vigild(VigildOpts::default().no_bus().config(IDLE_CONFIG).adopt_users(&[&user.name]));
    let stack = ssh_stack(&h, true);
    h.start_sshd(SshdOpts::default().stack(stack));
    h.vigild().stop();

    // fail=open: the login proceeds, unsupervised, and the module says so.
    let unreachable_before = count(&h, "pam_vigil", "daemon_unreachable");
    let client = h.ssh_session(&user);
    let server = client.wait_ready(h.sshd(), LOGIN_TIMEOUT);
    let leader = server.priv_pid();
    let ses = audit_session(leader).unwrap_or_else(|| panic!("pam_loginuid gave [priv] {leader} no audit session"));
    wait_for(STEP, "pam_vigil's daemon_unreachable line for the login", || {
        let n = count(&h, "pam_vigil", "daemon_unreachable");
        if n > unreachable_before { Ok(()) } else { Err(format!("{n} lines")) }
    });

    h.vigild().start();
    let started = Instant::now();
    let adopted = h.wait_for_event(ADOPT_WITHIN, "vigild", "session_adopted", &[("leader_pid", &leader.to_string())]);
    let adopted_after = started.elapsed();
    let comm = ProcInfo::read(leader).expect("[priv] runs").comm;
    for (key, value) in [("ses", ses.to_string()), ("user", user.name.clone()), ("uid", user.uid.to_string()), ("service", comm.clone())] {
        assert!(adopted.has(key, &value), "{key}={value}: {}", adopted.raw);
    }
    let id: u64 = adopted.field("session").and_then(|s| s.parse().ok()).expect("session=");
    let listed = h.vigild().session(id).unwrap_or_else(|| panic!("session {id} listed"));
    assert_eq!(listed.leader_pid, leader, "{listed:#?}");
    assert_eq!(listed.audit_session_id.as_u64(), Some(u64::from(ses)), "{listed:#?}");

    // Supervised like any other: nobody types, and it ends by idleness.
    let code = client.wait_exit(IDLE_TIMEOUT + SLACK);
    h.wait_for_event(STEP, "vigild", "session_end", &[("session", &id.to_string()), ("reason", "idle")]);
    assert!(h.session_records("session_open", id).is_empty(), "adopted, not opened: {:#?}", raw(&h.session_records("session_open", id)));
    eprintln!("vigild down: adopted {adopted_after:?} after vigild started (ses={ses}, service={comm}); ssh exit {code}");
}

fn count(h: &Harness, tag: &str, event: &str) -> usize {
    h.auth_log().iter().filter(|l| l.is_event(tag, event)).count()
}

const BURST: usize = 100;

#[test]
fn burst_of_100_ssh_logins_is_all_supervised() {
    require_root!();
    let mut h = Harness::with_syslog();
    let user = h.create_user("burst");
    h.start_vigild(VigildOpts::default().no_bus().config(QUIET_CONFIG).adopt_users(&[&user.name]));
    let stack = ssh_stack(&h, true);
    // sshd's default MaxStartups (10:30:100) would drop most of a 100-connection burst
    // before authentication: the burst must reach PAM.
    h.start_sshd(SshdOpts::default().stack(stack).config("MaxStartups 200"));

    let started = Instant::now();
    let clients: Vec<_> = (0..BURST).map(|_| h.ssh_command(&user, "sleep 120")).collect();
    // Polled every 500 ms: a /proc scan per poll must not steal the burst's CPU.
    let sessions = try_wait_for_polling(Duration::from_secs(180), Duration::from_millis(500), || {
        let up: Vec<_> = h.sshd().sessions_of(&user.name).into_iter().filter(|s| s.user_proc.is_some()).collect();
        if up.len() >= BURST { Ok(up) } else { Err(format!("{} of {BURST} logged in", up.len())) }
    })
    .unwrap_or_else(|e| panic!("the burst's logins: {e}; clients running: {}", clients.iter().filter(|c| c.is_running()).count()));
    let last_login = Instant::now();
    let logins_took = started.elapsed();
    let leaders: BTreeMap<u32, Option<u32>> = sessions.iter().map(|s| (s.priv_pid(), audit_session(s.priv_pid()))).collect();
    assert_eq!(leaders.len(), BURST);
    let audit_sessions: BTreeSet<u32> = leaders.values().flatten().copied().collect();
    assert_eq!(audit_sessions.len(), BURST, "pam_loginuid gave each login its own audit session: {leaders:?}");

    let mut listed_last = String::from("never listed");
    let mut missing: Vec<u32> = leaders.keys().copied().collect();
    let supervised = try_wait_for(ADOPT_WITHIN, || {
        let listed = h.vigild().try_list_sessions().map_err(|e| format!("{e}; before that: {listed_last}"))?;
        let mine: Vec<_> = listed.into_iter().filter(|s| leaders.contains_key(&s.leader_pid)).collect();
        let covered: BTreeSet<u32> = mine.iter().map(|s| s.leader_pid).collect();
        missing = leaders.keys().filter(|p| !covered.contains(p)).copied().collect();
        listed_last = format!("{} of {BURST} leaders supervised", covered.len());
        if covered.len() == BURST { Ok(mine) } else { Err(listed_last.clone()) }
    })
    .unwrap_or_else(|last| {
        // What vigild and the module said about the leaders it does not list.
        let about: Vec<String> = h
            .auth_log()
            .into_iter()
            .filter(|l| missing.iter().any(|p| l.has("leader_pid", &p.to_string()) || l.pid == Some(*p)))
            .map(|l| l.raw)
            .collect();
        let alive: Vec<(u32, bool, Option<u32>)> = missing.iter().map(|&p| (p, vigil_e2e::process::pid_alive(p), leaders[&p])).collect();
        panic!(
            "not every login of the burst supervised within {ADOPT_WITHIN:?}: {last}; missing (leader, alive, \
             audit session): {alive:?}; their records:\n{}",
            about.join("\n")
        )
    });
    let supervised_after = last_login.elapsed();
    assert_eq!(supervised.len(), BURST, "one session per login, none twice: {supervised:#?}");
    for s in &supervised {
        assert_eq!(
            s.audit_session_id.as_u64().map(|v| v as u32),
            leaders[&s.leader_pid],
            "the session carries its leader's audit session: {s:#?}"
        );
    }
    // The records follow the replies through vigild's audit writer and rsyslogd.
    let (opens, adoptions) = wait_for(STEP, "a session_open or session_adopted record for each", || {
        let (opens, adoptions) = (ids_of(&h, "session_open"), ids_of(&h, "session_adopted"));
        let without: Vec<u64> =
            supervised.iter().map(|s| s.id).filter(|id| !opens.contains_key(id) && !adoptions.contains_key(id)).collect();
        if without.is_empty() { Ok((opens, adoptions)) } else { Err(format!("none yet for {without:?}")) }
    });
    for s in &supervised {
        let n = opens.get(&s.id).unwrap_or(&0) + adoptions.get(&s.id).unwrap_or(&0);
        assert_eq!(n, 1, "session {} has one session_open or session_adopted record, not {n}", s.id);
    }
    let (opened, adopted) = (opens.len(), adoptions.len());
    eprintln!(
        "burst: {BURST} logins up {logins_took:?} after the first client started; all supervised \
         {supervised_after:?} after the last ({opened} registered by pam_vigil, {adopted} adopted)"
    );
}

/// A process left behind by a login names itself `cron` (prctl(PR_SET_NAME), which any
/// process may do) and outlives the login: the sweep still adopts its audit session,
/// because a service is told by the program it runs, not by the name it gives itself.
#[test]
fn a_leftover_process_that_names_itself_cron_is_still_adopted() {
    require_root!();
    let mut h = Harness::with_syslog();
    let user = h.create_user("cron");
    h.start_vigild(VigildOpts::default().no_bus().config(IDLE_CONFIG_RESTORE).adopt_users(&[&user.name]));
    let stack = ssh_stack(&h, true);
    h.start_sshd(SshdOpts::default().stack(stack));
    let client = h.ssh_session(&user);
    client.wait_ready(h.sshd(), LOGIN_TIMEOUT);
    let pid_file = user.home.join("fake-cron.pid");
    client.send_line(&format!(
        "setsid python3 -c 'import ctypes, os, time; ctypes.CDLL(None).prctl(15, b\"cron\", 0, 0, 0); \
         open(\"{}\", \"w\").write(str(os.getpid())); time.sleep(120)' </dev/null >/dev/null 2>&1 &",
        pid_file.display()
    ));
    let pid: u32 = wait_for(STEP, "the process that names itself cron", || {
        std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse().ok()).ok_or_else(|| "no pid yet".to_string())
    });
    let fake = ProcInfo::read(pid).expect("the process runs");
    assert_eq!(fake.comm, "cron", "{fake:?}");
    client.send_line("exit");
    client.wait_exit(STEP);
    let adopted = h.wait_for_event(ADOPT_WITHIN + STEP, "vigild", "session_adopted", &[("leader_pid", &pid.to_string())]);
    assert!(adopted.has("user", &user.name), "{}", adopted.raw);
    fake.signal(Signal::SIGKILL);
}
