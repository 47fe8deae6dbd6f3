//! End-to-end tests of the first issue: session registration through real libpam,
//! pam_vigil.so, vigild on its private socket and on a private system bus, rsyslogd;
//! failure modes (daemon down, hung), refusals for non-root callers, host hygiene,
//! leader death and configuration reload.
//!
//! Needs root and the release build of the workspace (`cargo build --release`): see
//! tests/README.md. Each test skips (with a note) when not run as root.

use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use vigil_e2e::bus::OPEN_SESSION_ARGS;
use vigil_e2e::process::describe_output;
use vigil_e2e::rc::{PAM_SESSION_ERR, PAM_SUCCESS};
use vigil_e2e::{BusPolicy, Fail, Harness, LogLine, SessionInfo, VigilArgs, VigildOpts, require_root, wait_for};

const LOG_WAIT: Duration = Duration::from_secs(5);
/// The module's deadline in the failure-mode tests, and the slack allowed on top of it.
const MODULE_TIMEOUT: &str = "1s";
const MODULE_TIMEOUT_BOUND: Duration = Duration::from_millis(1500);
const TTY: &str = "pts/9";
const RHOST: &str = "203.0.113.7";

fn harness() -> Harness {
    let h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h
}

/// The session `id` from `vigilctl list --json`, or a panic that shows the list.
#[track_caller]
fn listed(h: &Harness, id: u64) -> SessionInfo {
    let sessions = h.vigild().list_sessions();
    sessions.iter().find(|s| s.id == id).cloned().unwrap_or_else(|| panic!("session {id} is not in `vigilctl list`: {sessions:#?}"))
}

#[track_caller]
fn assert_session(s: &SessionInfo, user: &vigil_e2e::TestUser, service: &str, leader: u32) {
    assert_eq!(s.user, user.name, "{s:#?}");
    assert_eq!(s.uid, user.uid, "{s:#?}");
    assert_eq!(s.service, service, "{s:#?}");
    assert_eq!(s.tty_short(), Some(TTY), "{s:#?}");
    assert_eq!(s.rhost.as_deref(), Some(RHOST), "{s:#?}");
    assert_eq!(s.leader_pid, leader, "the leader is the process that called pam_open_session: {s:#?}");
}

/// A session_open or session_close line of vigild for `id`.
#[track_caller]
fn wait_session_event(h: &Harness, event: &str, id: u64) -> LogLine {
    h.wait_for_event(LOG_WAIT, "vigild", event, &[("session", &id.to_string())])
}

#[track_caller]
fn assert_open_line(line: &LogLine, user: &vigil_e2e::TestUser, service: &str) {
    assert_eq!(line.field("user").as_deref(), Some(user.name.as_str()), "{}", line.raw);
    assert_eq!(line.field("uid"), Some(user.uid.to_string()), "{}", line.raw);
    assert_eq!(line.field("service").as_deref(), Some(service), "{}", line.raw);
    assert_eq!(line.field("tty").as_deref().map(|t| t.trim_start_matches("/dev/")), Some(TTY), "{}", line.raw);
    assert_eq!(line.field("rhost").as_deref(), Some(RHOST), "{}", line.raw);
}

/// Opens a session through pam_vigil with `args`, checks it in `vigilctl list` and in
/// auth.log, closes it and checks it is gone and logged as closed.
fn session_round_trip(h: &Harness, args: &VigilArgs) {
    let user = h.create_user("life");
    let service = h.install_vigil_service("life", args);
    let session = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "open_session; pam_host stderr:\n{}", session.stderr_text());
    let id = session.session_id_u64();
    assert_session(&listed(h, id), &user, &service, session.pid());
    let open_line = wait_session_event(h, "session_open", id);
    assert_open_line(&open_line, &user, &service);

    let (closed, run) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS), "close_session; pam_host stderr:\n{}", run.stderr);
    // close_session returns after vigild answered: the session is gone already.
    let sessions = h.vigild().list_sessions();
    assert!(sessions.iter().all(|s| s.id != id), "session {id} still listed after close: {sessions:#?}");
    let close_line = wait_session_event(h, "session_close", id);
    assert_eq!(close_line.field("user").as_deref(), Some(user.name.as_str()), "{}", close_line.raw);
}

#[test]
fn session_lifecycle_private_socket() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus());
    h.wait_for_event(LOG_WAIT, "vigild", "daemon_start", &[]);
    session_round_trip(&h, &h.vigil_args());
}

/// A harness with the bus (packaging policy) and vigild on it and on its private socket.
fn harness_with_bus() -> Harness {
    let mut h = harness();
    h.start_bus(BusPolicy::Packaging);
    h.start_vigild(VigildOpts::default());
    h
}

/// pam_vigil through the harness's bus only: its private socket argument points nowhere.
fn bus_only_args(h: &Harness) -> VigilArgs {
    h.vigil_args().bus(&h.bus_address()).socket(h.path("no-such-socket"))
}

#[test]
fn session_lifecycle_bus() {
    require_root!();
    let h = harness_with_bus();
    // Failure is closed: only the bus can make this session open.
    let args = bus_only_args(&h).fail(Fail::Closed);
    session_round_trip(&h, &args);
}

/// Runs one open/close cycle against an unreachable or hung daemon and checks the
/// result, the time it took and the module's own syslog line.
fn check_unreachable(h: &Harness, label: &str, args: VigilArgs, fail: Fail) {
    let user = h.create_user("down");
    let args = args.timeout(MODULE_TIMEOUT).fail(fail);
    let service = h.install_vigil_service("down", &args);
    let before = count_unreachable(h);
    let run = h.run_pam_host(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST).cycles(1));
    let r = run.report();
    let expected_ok = fail == Fail::Open;
    assert_eq!(r.open_rc.total(), 1, "{label}: {r:?}");
    if expected_ok {
        assert!(r.open_rc.all(PAM_SUCCESS), "{label}, fail=open: open_session must succeed: {r:?}\nstderr:\n{}", run.stderr);
    } else {
        assert_eq!(r.open_rc.count(PAM_SUCCESS), 0, "{label}, fail=closed: open_session must fail: {r:?}");
        assert!(r.open_rc.all(PAM_SESSION_ERR), "{label}, fail=closed: PAM_SESSION_ERR expected: {r:?}");
        assert_eq!(r.session_ids, vec![None], "{label}: no session id without a daemon");
    }
    assert!(
        run.elapsed <= MODULE_TIMEOUT_BOUND,
        "{label}, fail={fail:?}: the whole run took {:?} (> {MODULE_TIMEOUT_BOUND:?} for timeout={MODULE_TIMEOUT}); open {:?} µs, close {:?} µs",
        run.elapsed,
        r.open_us,
        r.close_us
    );
    wait_for(LOG_WAIT, &format!("{label}: a new pam_vigil event=daemon_unreachable line"), || {
        let n = count_unreachable(h);
        if n > before { Ok(()) } else { Err(format!("{n} such lines; auth.log:\n{}", h.diagnostics())) }
    });
}

fn count_unreachable(h: &Harness) -> usize {
    h.auth_log().iter().filter(|l| l.is_event("pam_vigil", "daemon_unreachable")).count()
}

/// A socket file nobody listens on (what a crashed vigild leaves).
fn stale_socket(h: &Harness) -> std::path::PathBuf {
    let path = h.path("stale.sock");
    drop(UnixListener::bind(&path).expect("bind a socket to leave stale"));
    path
}

#[test]
fn daemon_down_fail_open() {
    require_root!();
    let h = harness();
    check_unreachable(&h, "no socket file", h.vigil_args(), Fail::Open);
    check_unreachable(&h, "stale socket", h.vigil_args().socket(stale_socket(&h)), Fail::Open);
}

#[test]
fn daemon_down_fail_closed() {
    require_root!();
    let h = harness();
    check_unreachable(&h, "no socket file", h.vigil_args(), Fail::Closed);
    check_unreachable(&h, "stale socket", h.vigil_args().socket(stale_socket(&h)), Fail::Closed);
}

#[test]
fn daemon_hung() {
    require_root!();
    let h = harness_with_bus();
    h.vigild().sigstop();
    for fail in [Fail::Open, Fail::Closed] {
        check_unreachable(&h, "private socket, vigild stopped", h.vigil_args(), fail);
        check_unreachable(&h, "bus, vigild stopped", bus_only_args(&h), fail);
    }
    h.vigild().sigcont();
    // Once it runs again vigild answers, and holds no session of the callers that gave up.
    h.vigild().wait_ready(Duration::from_secs(10));
    wait_for(Duration::from_secs(10), "no session left once vigild resumed", || {
        let sessions = h.vigild().try_list_sessions()?;
        if sessions.is_empty() { Ok(()) } else { Err(format!("{sessions:#?}")) }
    });
}

/// The bus runs, vigild is not on it: the bus answers the call itself (ServiceUnknown),
/// which the module records as `unreachable` (not a timeout) and fail= decides.
#[test]
fn daemon_absent_from_bus() {
    require_root!();
    let mut h = harness();
    h.start_bus(BusPolicy::Packaging);
    let args = bus_only_args(&h);
    for fail in [Fail::Open, Fail::Closed] {
        check_unreachable(&h, "bus, vigild absent", args.clone(), fail);
    }
    let lines: Vec<LogLine> = h.auth_log().into_iter().filter(|l| l.is_event("pam_vigil", "daemon_unreachable")).collect();
    assert_eq!(lines.len(), 2, "one line per open_session:\n{}", h.diagnostics());
    for line in &lines {
        assert!(line.has("reason", "unreachable"), "the bus answered; no timeout: {line:?}");
        let error = line.field("error").unwrap_or_default();
        assert!(error.contains("ServiceUnknown"), "the bus's answer is in the record: {line:?}");
    }
}

/// dbus-send as `user` with `transport` (`--peer=...` or `--bus=...`).
fn open_session_as(h: &Harness, user: &str, transport: &str) -> std::process::Output {
    let mut argv = vec!["dbus-send", transport];
    argv.extend(OPEN_SESSION_ARGS);
    h.run_as(user, &argv)
}

fn refusals_of(h: &Harness, uid: u32) -> usize {
    h.auth_log()
        .iter()
        .filter(|l| {
            l.is_event("vigild", "call_refused")
                && l.has("method", "OpenSession")
                && l.has("uid", &uid.to_string())
                && l.has("reason", "root_only")
        })
        .count()
}

#[track_caller]
fn assert_refused_by_vigild(h: &Harness, out: &std::process::Output, uid: u32, before: usize, label: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{label}: OpenSessionEx as uid {uid} succeeded: {}", describe_output(out));
    assert!(
        ["AccessDenied", "NotAuthorized", "PermissionDenied"].iter().any(|w| stderr.contains(w)),
        "{label}: expected an access-denied error: {}",
        describe_output(out)
    );
    assert!(!stderr.contains("Rejected send message"), "{label}: the bus refused, not vigild: {stderr}");
    wait_for(LOG_WAIT, &format!("{label}: vigild event=call_refused method=OpenSession uid={uid} reason=root_only"), || {
        let n = refusals_of(h, uid);
        if n > before { Ok(()) } else { Err(format!("{n} such lines\n{}", h.diagnostics())) }
    });
}

#[test]
fn non_root_open_session_refused() {
    require_root!();
    let mut h = harness();
    // Permissive bus: whatever refuses the call is vigild itself.
    h.start_bus(BusPolicy::Permissive);
    h.start_vigild(VigildOpts::default());
    let user = h.create_user("nonroot");

    let before = refusals_of(&h, user.uid);
    let peer = format!("--peer={}", h.vigild().peer_address());
    let out = open_session_as(&h, &user.name, &peer);
    assert_refused_by_vigild(&h, &out, user.uid, before, "private socket");

    // A user's refused calls are recorded once per method a minute: the bus is tried by
    // another user.
    let other = h.create_user("nonroot2");
    let before = refusals_of(&h, other.uid);
    let out = open_session_as(&h, &other.name, &format!("--bus={}", h.bus_address()));
    assert_refused_by_vigild(&h, &out, other.uid, before, "permissive bus");

    // The first user again, within the minute: refused, not recorded again (a user
    // looping on a refused call cannot flood the trail).
    let before = refusals_of(&h, user.uid);
    let out = open_session_as(&h, &user.name, &peer);
    assert!(!out.status.success(), "refused again: {}", describe_output(&out));
    h.wait_for_event(LOG_WAIT, "vigild", "call_refused", &[("uid", &other.uid.to_string())]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(refusals_of(&h, user.uid), before, "a second refusal within the minute is not recorded");

    let sessions = h.vigild().list_sessions();
    assert!(sessions.is_empty(), "a refused call registered a session: {sessions:#?}");
}

#[test]
fn non_root_open_session_refused_by_bus_policy() {
    require_root!();
    let h = harness_with_bus();
    let user = h.create_user("nonroot");
    let out = open_session_as(&h, &user.name, &format!("--bus={}", h.bus_address()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "OpenSessionEx through the bus succeeded: {}", describe_output(&out));
    assert!(
        stderr.contains("org.freedesktop.DBus.Error.AccessDenied") && stderr.contains("Rejected send message"),
        "dbus-daemon itself must refuse (packaging/dbus/org.vigil1.conf): {}",
        describe_output(&out)
    );
    // The call never reached vigild.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(refusals_of(&h, user.uid), 0, "vigild saw a call the bus should have stopped:\n{}", h.diagnostics());
    assert!(h.vigild().list_sessions().is_empty());
}

#[test]
fn host_hygiene_1000_cycles() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus());
    host_hygiene(&h, "the private socket", &h.vigil_args());
}

/// The bus path is the same one blocking exchange per call (with `Hello`): 1000
/// cycles leave the host as they found it too.
#[test]
fn host_hygiene_1000_bus_cycles() {
    require_root!();
    let h = harness_with_bus();
    host_hygiene(&h, "the bus", &bus_only_args(&h));
}

/// 1000 open/close cycles in one pam_host with `args`: every one registered, audited
/// and ended, no thread or descriptor left in the host.
fn host_hygiene(h: &Harness, label: &str, args: &VigilArgs) {
    let user = h.create_user("hyg");
    let service = h.install_vigil_service("hyg", args);
    let run = h.run_pam_host(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST).cycles(1000));
    let r = run.report();
    assert!(r.open_rc.all(PAM_SUCCESS) && r.open_rc.total() == 1000, "open_session: {:?}\nstderr:\n{}", r.open_rc, run.stderr);
    assert!(r.close_rc.all(PAM_SUCCESS) && r.close_rc.total() == 1000, "close_session: {:?}", r.close_rc);
    assert_eq!(r.end_rc, Some(PAM_SUCCESS));
    let ids: Vec<&str> = r.session_ids.iter().map(|i| i.as_deref().expect("every open sets VIGIL_SESSION_ID")).collect();
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "session ids repeat: {ids:?}");
    assert_eq!(r.threads_before, r.threads_after, "threads left in the host: {:?}", r.new_threads);
    assert_eq!(r.fds_before, r.fds_after, "descriptors left in the host: {:?}", r.new_fds);
    eprintln!(
        "pam_vigil open+close over {label}: {:?} µs, total {:.0} ms, threads {}->{}, fds {}->{}",
        r.cycle_us, r.total_ms, r.threads_before, r.threads_after, r.fds_before, r.fds_after
    );
    let sessions = h.vigild().list_sessions();
    assert!(sessions.is_empty(), "{} sessions still listed, e.g. {:#?}", sessions.len(), sessions.first());
    // vigild audited every one of them.
    wait_for(Duration::from_secs(15), "1000 session_close lines in auth.log", || {
        let n = h.auth_log().iter().filter(|l| l.is_event("vigild", "session_close")).count();
        if n >= 1000 { Ok(()) } else { Err(format!("{n} lines")) }
    });
}

#[test]
fn leader_death_closes_session() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus());
    let user = h.create_user("dies");
    let service = h.install_vigil_service("dies", &h.vigil_args());
    let mut session = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "pam_host stderr:\n{}", session.stderr_text());
    let id = session.session_id_u64();
    assert_eq!(listed(&h, id).leader_pid, session.pid());

    session.kill(); // as when sshd's [priv] process dies without close_session
    h.vigild().wait_session_gone(id, Duration::from_secs(5));
    let line = h.wait_for_log(LOG_WAIT, &format!("session {id} ended with reason=leader_gone"), |l| {
        l.tag == "vigild"
            && (l.has("event", "session_close") || l.has("event", "session_end"))
            && l.has("session", &id.to_string())
            && l.has("reason", "leader_gone")
    });
    assert_eq!(line.field("user").as_deref(), Some(user.name.as_str()), "{}", line.raw);
}

/// vigild watches at most `--max-leader-pidfds` session leaders by pidfd, a descriptor
/// each (by default its descriptor limit less a reserve: docs/security.md); the others
/// are looked at by a sweep every 2 s. With a budget of one, the second login's leader is
/// swept: killed, its session is ended within the sweep's period, with the same record
/// as the first login's, whose leader held the pidfd.
#[test]
fn a_leader_beyond_the_pidfd_budget_is_swept_and_ended_with_the_same_record() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().arg("--max-leader-pidfds").arg("1"));
    let start = h.wait_for_event(LOG_WAIT, "vigild", "daemon_start", &[]);
    assert!(start.has("leader_pidfds", "1"), "the budget is in daemon_start: {}", start.raw);
    let user = h.create_user("budget");
    let service = h.install_vigil_service("budget", &h.vigil_args());
    let mut watched = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST));
    let mut swept = h.open_pam_session(&h.pam_host(&service, &user.name).tty("pts/8").rhost(RHOST));
    for session in [&watched, &swept] {
        assert_eq!(session.open_rc(), PAM_SUCCESS, "pam_host stderr:\n{}", session.stderr_text());
    }
    let (watched_id, swept_id) = (watched.session_id_u64(), swept.session_id_u64());
    let vigild = h.vigild().pid();
    let pidfds = || {
        std::fs::read_dir(format!("/proc/{vigild}/fd"))
            .map(|fds| {
                fds.flatten().filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("pidfd"))).count()
            })
            .unwrap_or(0)
    };
    wait_for(LOG_WAIT, "vigild to hold one pidfd, the first leader's", || match pidfds() {
        1 => Ok(()),
        n => Err(format!("{n} pidfds")),
    });

    let killed = Instant::now();
    swept.kill();
    let swept_end = h.wait_for_event(SWEEP_EVERY + LOG_WAIT, "vigild", "session_end", &[("session", &swept_id.to_string())]);
    let swept_after = killed.elapsed();
    assert!(swept_after < SWEEP_EVERY + Duration::from_secs(2), "ended within the sweep's period: {swept_after:?}");
    assert_eq!(listed(&h, watched_id).leader_pid, watched.pid(), "the other session is kept");
    watched.kill();
    let watched_end = h.wait_for_event(LOG_WAIT, "vigild", "session_end", &[("session", &watched_id.to_string())]);
    h.vigild().wait_session_gone(watched_id, LOG_WAIT);
    h.vigild().wait_session_gone(swept_id, LOG_WAIT);
    let keys = |l: &LogLine| l.fields().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(&swept_end), keys(&watched_end), "the same record:\n{}\n{}", swept_end.raw, watched_end.raw);
    for (key, value) in [("reason", "leader_gone"), ("user", user.name.as_str()), ("processes", "0")] {
        assert!(swept_end.has(key, value) && watched_end.has(key, value), "{key}={value}:\n{}\n{}", swept_end.raw, watched_end.raw);
    }
    eprintln!("swept leader ended {swept_after:?} after its kill: {}", swept_end.raw);
}

/// How often vigild sweeps the leaders it holds no pidfd for (daemon/src/supervise/leaders.rs).
const SWEEP_EVERY: Duration = Duration::from_secs(2);

const GOOD_CONFIG_FIRST: &str =
    "[defaults]\nidle_timeout = \"15m\"\n\n[[policy]]\nname = \"e2e-first\"\nmatch = { services = [\"vigil-test-*\"] }\n";
const GOOD_CONFIG_SECOND: &str =
    "[defaults]\nidle_timeout = \"15m\"\n\n[[policy]]\nname = \"e2e-second\"\nmatch = { services = [\"vigil-test-*\"] }\n";
/// A TOML syntax error on line 2 (an unterminated string).
const BROKEN_CONFIG: &str = "[defaults]\nidle_timeout = \"15m\n";

#[test]
fn reload_bad_config_keeps_policy() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(GOOD_CONFIG_FIRST));
    let user = h.create_user("reload");
    let service = h.install_vigil_service("reload", &h.vigil_args());
    let host = h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST);
    let first = h.open_pam_session(&host);
    let first_id = first.session_id_u64();
    assert_eq!(listed(&h, first_id).policy_name(), Some("e2e-first"), "{:#?}", listed(&h, first_id));

    // A broken file and SIGHUP: refused, audited with the file and line, old policy kept.
    let vigild = h.vigild();
    vigild.write_config(BROKEN_CONFIG);
    vigild.sighup();
    let line = h.wait_for_log(LOG_WAIT, "vigild event=config_reload with a failure", |l| {
        l.is_event("vigild", "config_reload")
            && l.field("result").is_some_and(|r| ["failed", "error", "refused", "rejected"].contains(&r.as_str()))
    });
    let config_path = vigild.config_path().display().to_string();
    assert!(line.message.contains(&config_path), "the record names the file {config_path}: {}", line.raw);
    let error = line.field("error").unwrap_or_else(|| line.message.clone());
    assert!(error.contains(":2:") || error.contains("line 2"), "the error names line 2: {}", line.raw);
    assert!(vigild.is_running(), "vigild died on a bad reload:\n{}", vigild.stderr_text());
    let second = h.open_pam_session(&host);
    let second_id = second.session_id_u64();
    assert_eq!(listed(&h, second_id).policy_name(), Some("e2e-first"), "the old policy still applies to new sessions");
    assert_eq!(listed(&h, first_id).policy_name(), Some("e2e-first"));

    // A good file and `vigilctl reload`: accepted.
    vigild.write_config(GOOD_CONFIG_SECOND);
    let out = vigild.vigilctl(&["reload"]);
    assert!(out.status.success(), "vigilctl reload with a good file: {}", describe_output(&out));
    h.wait_for_log(LOG_WAIT, "vigild event=config_reload result=ok", |l| {
        l.is_event("vigild", "config_reload") && l.field("result").is_some_and(|r| ["ok", "success", "loaded"].contains(&r.as_str()))
    });
    let third = h.open_pam_session(&host);
    assert_eq!(listed(&h, third.session_id_u64()).policy_name(), Some("e2e-second"), "new sessions get the reloaded policy");

    // vigilctl with a broken file: refused with a non-zero exit, daemon still up.
    vigild.write_config(BROKEN_CONFIG);
    let out = vigild.vigilctl(&["reload"]);
    assert!(!out.status.success(), "vigilctl reload of a broken file must fail: {}", describe_output(&out));
    assert!(vigild.is_running());

    for session in [first, second, third] {
        let (closed, _) = session.close();
        assert_eq!(closed, Some(PAM_SUCCESS));
    }
}

/// Lines 5 and 7 name a user and a group that do not exist; the block on line 9 has an
/// empty match (it applies to everyone).
const WARNING_CONFIG: &str = "[defaults]\nidle_timeout = \"15m\"\n\n[[policy]]\nmatch = { users = [\"vigil-e2e-nobody-such\"] }\n[[policy]]\nmatch = { groups = [\"vigil-e2e-no-group\"] }\n[[policy]]\nmatch = {}\n";

/// A reload of a file that names users and groups NSS does not know, or matches
/// everyone, is accepted, answered with the warnings and recorded (`config_warning`
/// with file, line, column and key).
#[test]
fn reload_warns_about_names_that_do_not_resolve() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(GOOD_CONFIG_FIRST));
    let vigild = h.vigild();
    vigild.write_config(WARNING_CONFIG);
    let out = vigild.vigilctl(&["reload"]);
    assert!(out.status.success(), "a file with warnings is accepted: {}", describe_output(&out));
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        answer.contains("3 warning(s)") && answer.contains("vigil-e2e-nobody-such") && answer.contains("vigil-e2e-no-group"),
        "{answer}"
    );
    let config_path = vigild.config_path().display().to_string();
    for (kind, line) in [("unknown_user", "5"), ("unknown_group", "7")] {
        let record = h.wait_for_log(LOG_WAIT, &format!("vigild event=config_warning kind={kind}"), |l| {
            l.is_event("vigild", "config_warning") && l.has("kind", kind)
        });
        assert_eq!(record.field("line").as_deref(), Some(line), "{}", record.raw);
        assert!(record.message.contains(&config_path) && record.field("key").is_some_and(|k| k.starts_with("policy[")), "{}", record.raw);
    }
    h.wait_for_log(LOG_WAIT, "vigild event=config_warning kind=empty_match", |l| {
        l.is_event("vigild", "config_warning") && l.has("kind", "empty_match")
    });
    assert!(vigild.is_running());
}

#[test]
fn vigilctl_fails_clearly_without_daemon() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus());
    h.vigild().stop();
    let out = h.vigild().vigilctl(&["list", "--json"]);
    assert!(!out.status.success(), "vigilctl list with no vigild: {}", describe_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.trim().is_empty(), "vigilctl says why it failed");
    assert!(
        stderr.contains(&h.private_socket().display().to_string()) || stderr.to_lowercase().contains("running"),
        "the message names the socket or says vigild is not running: {stderr}"
    );
    h.wait_for_event(LOG_WAIT, "vigild", "daemon_stop", &[]);
}

/// A session object's properties are for root and the session's own user, over the
/// private socket and the bus alike (like ListSessions): each Get, and GetAll, which
/// zbus alone would answer with every property that did not refuse (the session's id).
#[test]
fn session_properties_only_for_their_user() {
    require_root!();
    let h = harness_with_bus();
    let owner = h.create_user("owner");
    let other = h.create_user("other");
    let service = h.install_vigil_service("props", &h.vigil_args());
    let session = h.open_pam_session(&h.pam_host(&service, &owner.name).tty(TTY).rhost(RHOST));
    let id = session.session_id_u64();
    let path = format!("/org/vigil1/session/{id}");
    let call = |user: &str, transport: &str, args: &[&str]| {
        let mut argv = vec!["dbus-send", transport, "--print-reply", "--dest=org.vigil1", &path];
        argv.extend_from_slice(args);
        h.run_as(user, &argv)
    };
    let get = ["org.freedesktop.DBus.Properties.Get", "string:org.vigil1.Session"];
    let get_user = |user: &str, transport: &str| call(user, transport, &[get[0], get[1], "string:User"]);
    let get_id = |user: &str, transport: &str| call(user, transport, &[get[0], get[1], "string:Id"]);
    let get_all = |user: &str, transport: &str| call(user, transport, &["org.freedesktop.DBus.Properties.GetAll", get[1]]);
    for transport in [format!("--peer={}", h.vigild().peer_address()), format!("--bus={}", h.bus_address())] {
        let mine = get_user(&owner.name, &transport);
        assert!(mine.status.success(), "{transport}: the owner reads their session: {}", describe_output(&mine));
        assert!(String::from_utf8_lossy(&mine.stdout).contains(&owner.name), "{}", describe_output(&mine));
        let all = get_all(&owner.name, &transport);
        let text = String::from_utf8_lossy(&all.stdout);
        assert!(all.status.success() && text.contains(&owner.name) && text.contains("\"Id\""), "{}", describe_output(&all));
        for (what, theirs) in [
            ("Get User", get_user(&other.name, &transport)),
            ("Get Id", get_id(&other.name, &transport)),
            ("GetAll", get_all(&other.name, &transport)),
        ] {
            assert!(!theirs.status.success(), "{transport}: another user's {what} answered: {}", describe_output(&theirs));
            assert!(String::from_utf8_lossy(&theirs.stderr).contains("AccessDenied"), "{what}: {}", describe_output(&theirs));
            assert!(!String::from_utf8_lossy(&theirs.stdout).contains("Id"), "{what}: {}", describe_output(&theirs));
        }
        let root = get_all("root", &transport);
        assert!(root.status.success() && String::from_utf8_lossy(&root.stdout).contains(&owner.name), "{}", describe_output(&root));
    }
    session.close();
    // Served on demand on the bus, and taken out of its tree when the session ends.
    let bus = format!("--bus={}", h.bus_address());
    wait_for(LOG_WAIT, "the ended session's object gone from the bus", || {
        let out = get_user("root", &bus);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() && stderr.contains("UnknownObject") { Ok(()) } else { Err(describe_output(&out)) }
    });
}

/// A restart of vigild keeps the live sessions (saved at shutdown, restored when the
/// leader still runs): close and leader death work after it; a session whose leader
/// died while vigild was stopped is recorded as ended.
#[test]
fn sessions_survive_a_vigild_restart() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus());
    let user = h.create_user("restart");
    let service = h.install_vigil_service("restart", &h.vigil_args());
    let kept = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST));
    let kept_id = kept.session_id_u64();
    let mut dies = h.open_pam_session(&h.pam_host(&service, &user.name).tty("pts/8").rhost(RHOST));
    let dies_id = dies.session_id_u64();

    h.vigild().stop();
    dies.kill(); // ends while vigild is away
    h.vigild().start();

    let restored = listed(&h, kept_id);
    assert_eq!((restored.user.as_str(), restored.leader_pid), (user.name.as_str(), kept.pid()), "{restored:#?}");
    h.wait_for_event(LOG_WAIT, "vigild", "session_restored", &[("session", &kept_id.to_string())]);
    let gone = h.wait_for_event(LOG_WAIT, "vigild", "session_end", &[("session", &dies_id.to_string()), ("reason", "leader_gone")]);
    assert!(gone.raw.contains("vigild was stopped"), "{}", gone.raw);
    assert!(h.vigild().session(dies_id).is_none());

    let (rc, _) = kept.close();
    assert_eq!(rc, Some(PAM_SUCCESS));
    wait_session_event(&h, "session_close", kept_id);
    h.vigild().wait_session_gone(kept_id, Duration::from_secs(5));
}

/// Arguments not used as written, through real libpam: `fail=open fail=closed` on one
/// line is `fail=closed` (vigild down: the session is refused), and `timeout=60s` is
/// capped at 30 s; both are recorded with what is used instead.
#[test]
fn contradicting_and_overlong_arguments_are_resolved_by_one_rule_and_recorded() {
    require_root!();
    let h = harness();
    let user = h.create_user("args");
    let args = h.vigil_args().extra("fail=open").extra("fail=closed").extra("timeout=60s");
    let service = h.install_vigil_service("args", &args);
    let run = h.run_pam_host(&h.pam_host(&service, &user.name).cycles(1));
    let r = run.report();
    assert!(r.open_rc.all(PAM_SESSION_ERR), "fail=closed wins with vigild down: {r:?}\nstderr:\n{}", run.stderr);
    let ignored = |argument: &str, used: &str| {
        h.wait_for_event(LOG_WAIT, "pam_vigil", "module_argument_ignored", &[("argument", argument), ("used", used)])
    };
    ignored("fail=open", "fail=closed");
    ignored("timeout=60s", "timeout=30s");
}
