//! End-to-end tests of odd PAM items and of the module as sshd loads it, through real
//! libpam (pam_host), pam_vigil.so, vigild on its private socket and rsyslogd:
//! an overlong PAM_RHOST and PAM_TTY are cut by the module at a character boundary and
//! the session is supervised all the same, vigild's record naming the cut; a refusal
//! by vigild is recorded by the module as `call_refused`, never `daemon_unreachable`;
//! every line the module writes stays under 2 KiB; the module carries no tokio and
//! leaves no thread or descriptor in its host after 10,000 sessions.
//!
//! Needs root and the release build (tests/run.sh builds the module on its own, last).
//! Each test skips (with a note) when not run as root.

use std::time::Duration;

use vigil_e2e::rc::{PAM_SESSION_ERR, PAM_SUCCESS};
use vigil_e2e::{Fail, Harness, LogLine, PamStack, VigildOpts, paths, require_root, wait_for};
use vigil_protocol::MAX_FIELD_BYTES;

const LOG_WAIT: Duration = Duration::from_secs(5);
/// A whole line of auth.log (timestamp, host, tag and message) the module wrote.
const MAX_LINE_BYTES: usize = 2048;
const HYGIENE_CYCLES: u32 = 10_000;

/// vigild on its private socket only, supervising only what the tests register: the
/// machine's other logins (other tests' ssh sessions) are not adopted into its lists.
fn vigild_opts() -> VigildOpts {
    VigildOpts::default().no_bus()
}

/// The module's arguments, with a deadline far above a call's cost: these tests are
/// about what the module sends, records and leaves behind, not about vigild's latency
/// on a loaded machine (e2e_foundation times the deadline).
fn vigil_args(h: &Harness) -> vigil_e2e::VigilArgs {
    h.vigil_args().timeout("10s")
}

fn harness() -> Harness {
    let h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h
}

/// 3,000 bytes; the wire limit (1,024) falls inside a 3-byte character.
fn long_rhost() -> String {
    let rhost = format!("xy{}z", "\u{20ac}".repeat(999));
    assert_eq!(rhost.len(), 3000);
    rhost
}

/// 2,000 bytes of multi-byte characters; the limit falls inside one here too.
fn long_tty() -> String {
    let tty = format!("{}ab", "\u{20ac}".repeat(666));
    assert_eq!(tty.len(), 2000);
    tty
}

/// The first at most `MAX_FIELD_BYTES` bytes of `s`, at a character boundary.
fn cut(s: &str) -> &str {
    &s[..s.floor_char_boundary(MAX_FIELD_BYTES)]
}

fn module_lines(h: &Harness) -> Vec<LogLine> {
    h.auth_log().into_iter().filter(|l| l.tag == "pam_vigil").collect()
}

/// No line says `daemon_unreachable`, and every line of the module is under 2 KiB.
#[track_caller]
fn assert_module_lines_sound(h: &Harness) {
    for line in h.auth_log() {
        assert!(!line.message.contains("daemon_unreachable"), "vigild was reachable all along: {}", line.raw);
    }
    for line in module_lines(h) {
        assert!(line.raw.len() < MAX_LINE_BYTES, "a module line of {} bytes: {}", line.raw.len(), line.raw);
    }
}

#[test]
fn overlong_items_are_cut_and_the_session_supervised() {
    require_root!();
    let mut h = harness();
    h.start_vigild(vigild_opts());
    let user = h.create_user("items");
    // fail=closed: a session vigild did not register would not open at all.
    let service = h.install_vigil_service("items", &vigil_args(&h).fail(Fail::Closed));
    let permit = h.install_pam_service("permit", &PamStack::permit_only());
    let (rhost, tty) = (long_rhost(), long_tty());
    let items = |cmd: vigil_e2e::PamHostCmd| cmd.raw("--rhost", rhost.as_bytes()).raw("--tty", tty.as_bytes());

    // libpam itself (its kernel audit message) takes these items: pam_permit alone.
    let baseline = h.run_pam_host(&items(h.pam_host(&permit, &user.name)));
    assert!(baseline.report().open_rc.all(PAM_SUCCESS), "pam_permit alone: {:?}", baseline.report());

    let session = h.open_pam_session(&items(h.pam_host(&service, &user.name)));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "open_session; pam_host stderr:\n{}", session.stderr_text());
    let id = session.session_id_u64();
    let listed = h.vigild().session(id).unwrap_or_else(|| panic!("session {id} not in `vigilctl list`"));
    assert_eq!(listed.leader_pid, session.pid(), "{listed:#?}");
    let (want_rhost, want_tty) = (cut(&rhost), cut(&tty));
    assert_eq!((want_rhost.len(), want_tty.len()), (1022, 1023), "the cut points fall inside characters");
    assert_eq!(listed.rhost.as_deref(), Some(want_rhost), "rhost: the first bytes at a character boundary");
    assert_eq!(listed.tty_short(), Some(want_tty), "tty: the first bytes at a character boundary");

    let open = h.wait_for_event(LOG_WAIT, "vigild", "session_open", &[("session", &id.to_string())]);
    let truncated: Vec<String> = open.fields().into_iter().filter(|(k, _)| k == "truncated").map(|(_, v)| v).collect();
    assert_eq!(truncated, ["tty,rhost"], "one truncated= naming the cut items, as the module sent them: {}", open.raw);
    assert!(open.field("rhost").is_some_and(|r| r.starts_with("xy\u{20ac}")), "{}", open.raw);

    let (closed, _) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS));
    h.wait_for_event(LOG_WAIT, "vigild", "session_close", &[("session", &id.to_string())]);
    assert!(module_lines(&h).is_empty(), "no module record when vigild registers: {:#?}", module_lines(&h));
    assert_module_lines_sound(&h);
}

/// One refused open through pam_vigil (`fail`); returns the module's record of it.
fn refused_open(h: &Harness, service: &str, user: &[u8], fail: Fail) -> LogLine {
    let (rhost, tty) = (long_rhost(), long_tty());
    let cmd = h.pam_host(service, "unused").raw("--user", user).raw("--rhost", rhost.as_bytes()).raw("--tty", tty.as_bytes());
    let run = h.run_pam_host(&cmd);
    let r = run.report();
    let want = if fail == Fail::Open { PAM_SUCCESS } else { PAM_SESSION_ERR };
    assert!(r.open_rc.all(want) && r.open_rc.total() == 1, "fail={fail:?}: {r:?}\nstderr:\n{}", run.stderr);
    assert_eq!(r.session_ids, vec![None], "no session for a refused open");
    h.wait_for_log(LOG_WAIT, "the module's call_refused line", |l| {
        l.tag == "pam_vigil" && l.pid == Some(run.pid) && l.has("event", "call_refused")
    })
}

#[test]
fn a_refusal_by_vigild_is_recorded_as_a_refusal() {
    require_root!();
    let mut h = harness();
    h.start_vigild(vigild_opts());
    // A user that does not exist (vigild: unknown_user), with a name near the wire
    // limit so that vigild's error text is long too.
    let unknown = format!("vtest-nosuch-{}-{}", std::process::id(), "\u{e9}".repeat(480)).into_bytes();
    assert!(unknown.len() <= MAX_FIELD_BYTES);
    // A user name over the limit: never cut (a cut name could be another account's),
    // not sent either; the module's record is a refusal of its own, without an error name.
    let overlong = vec![b'u'; MAX_FIELD_BYTES + 76];
    for fail in [Fail::Open, Fail::Closed] {
        let service = h.install_vigil_service("refused", &vigil_args(&h).fail(fail));
        for (user, reason, error_name) in
            [(&unknown, "invalid_argument", Some("org.vigil1.Error.InvalidArgument")), (&overlong, "user_too_long", None)]
        {
            let line = refused_open(&h, &service, user, fail);
            let what = format!("fail={fail:?}, {reason}");
            assert!(line.has("call", "open_session"), "{what}: {}", line.raw);
            assert!(line.has("reason", reason), "{what}: {}", line.raw);
            assert_eq!(line.field("error_name").as_deref(), error_name, "{what}: {}", line.raw);
            assert!(line.has("fail", if fail == Fail::Open { "open" } else { "closed" }), "{what}: {}", line.raw);
            let cut = line.field("truncated").unwrap_or_default();
            assert!(cut.contains("tty") && cut.contains("rhost") && cut.contains("user"), "{what}: {}", line.raw);
            assert!(line.raw.len() < MAX_LINE_BYTES, "{what}: {} bytes", line.raw.len());
            if error_name.is_some() {
                // vigild audited its side of it, with the module's pid.
                let pid = line.pid.expect("pam_vigil[pid]").to_string();
                h.wait_for_event(LOG_WAIT, "vigild", "call_refused", &[("pid", &pid), ("reason", "unknown_user")]);
            }
        }
    }
    assert!(h.vigild().list_sessions().is_empty());
    assert_module_lines_sound(&h);
}

#[test]
fn module_built_apart_leaves_no_thread_or_fd_after_10000_sessions() {
    require_root!();
    let module = paths::pam_module();
    let bytes = std::fs::read(&module).expect("read the module");
    assert!(!paths::carries_tokio(&bytes), "{} carries tokio", module.display());
    let mut h = harness();
    h.start_vigild(vigild_opts());
    let user = h.create_user("hyg");
    let service = h.install_vigil_service("hyg", &vigil_args(&h));
    let cmd = h.pam_host(&service, &user.name).tty("pts/9").rhost("203.0.113.7").cycles(HYGIENE_CYCLES);
    let run = h.run_pam_host_within(&cmd, Duration::from_secs(300));
    let r = run.report();
    assert!(r.open_rc.all(PAM_SUCCESS) && r.open_rc.total() == HYGIENE_CYCLES, "open: {:?}\n{}", r.open_rc, run.stderr);
    assert!(r.close_rc.all(PAM_SUCCESS) && r.close_rc.total() == HYGIENE_CYCLES, "close: {:?}", r.close_rc);
    assert_eq!(r.end_rc, Some(PAM_SUCCESS));
    assert_eq!(r.threads_before, r.threads_after, "threads left in the host: {:?}", r.new_threads);
    assert_eq!(r.fds_before, r.fds_after, "descriptors left in the host: {:?}", r.new_fds);
    eprintln!(
        "{HYGIENE_CYCLES} open+close cycles: threads {} -> {}, fds {} -> {}, cycle p50 {} µs p99 {} µs, total {:.0} ms",
        r.threads_before, r.threads_after, r.fds_before, r.fds_after, r.cycle_us.p50, r.cycle_us.p99, r.total_ms
    );
    let sessions = h.vigild().list_sessions();
    assert!(sessions.is_empty(), "{} sessions still listed, e.g. {:#?}", sessions.len(), sessions.first());
    wait_for(Duration::from_secs(60), "a session_close line per cycle in auth.log", || {
        let n = h.auth_log().iter().filter(|l| l.is_event("vigild", "session_close")).count();
        if n >= HYGIENE_CYCLES as usize { Ok(()) } else { Err(format!("{n} lines")) }
    });
    assert!(module_lines(&h).is_empty(), "the module wrote: {:#?}", module_lines(&h).first());
}
