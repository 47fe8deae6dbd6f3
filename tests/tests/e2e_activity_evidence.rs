//! End-to-end tests of what counts as input: an access to a session's pty (IN_ACCESS) is
//! input only when a process of the pty's foreground process group read from it. A real
//! sshd whose session stack ends with `pam_vigil.so`, vigild with short timeouts,
//! interactive ssh sessions in tmux ptys. What is checked is what a user and an admin
//! see: the session ended or kept, the records in auth.log, and `vigilctl` saying what
//! the session's activity was measured by.
//!
//! Timing: only lower bounds are asserted (nothing is ended early); upper bounds are
//! generous waits. Every loop a test starts in a session is bounded in count and time.
//!
//! Needs root and the release build of the workspace: see tests/README.md.

use std::thread::sleep;
use std::time::{Duration, Instant};

use vigil_e2e::login::{Login, listed_ttys, login_with, short_tty, wait_tracked};
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::tmux::LOGIN_TIMEOUT;
use vigil_e2e::{Harness, LogLine, SessionInfo, SshOpts, SshdOpts, TestUser, VigildOpts, paths, require_root, wait_until};

const TIMEOUT: Duration = Duration::from_secs(15);
const WARNING: Duration = Duration::from_secs(5);
const CONFIG: &str = "[defaults]\nidle_timeout = \"15s\"\nidle_warning = \"5s\"\nkill_grace = \"1s\"\n";
/// Shorter, for the tests that type in turns or watch output.
const SHORT_TIMEOUT: Duration = Duration::from_secs(6);
const SHORT_CONFIG: &str = "[defaults]\nidle_timeout = \"6s\"\nidle_warning = \"3s\"\nkill_grace = \"1s\"\n";

/// Added to every expected time before a wait gives up.
const SLACK: Duration = Duration::from_secs(10);
/// A lower bound allows this much for the test's clock readings around an event.
const EARLY: Duration = Duration::from_millis(1000);
const STEP: Duration = Duration::from_secs(10);
const IDLE_WARNING_TEXT: &str = "*** vigil: no input on this session for ";

/// The issue's one line, bounded: `touch -a` on the session's own pty every 3 s, in the
/// background, for at most 2 minutes.
const TOUCH_LOOP: &str = "T=$(tty); (for i in $(seq 40); do touch -a $T; sleep 3; done) >/dev/null 2>&1 &";

fn harness(config: &str, sshd_config: &[&str]) -> Harness {
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(config));
    let module = paths::pam_module().display().to_string();
    let stack = unix_stack().session("required", &module, &h.vigil_args().to_args());
    let mut opts = SshdOpts::default().stack(stack);
    for line in sshd_config {
        opts = opts.config(line);
    }
    h.start_sshd(opts);
    h
}

fn login(h: &Harness, user: &TestUser) -> Login {
    login_with(h, user, &SshOpts::default(), STEP)
}

/// vigild's records `event` for session `id`, in log order.
fn records(h: &Harness, id: u64, event: &str) -> Vec<LogLine> {
    let id = id.to_string();
    h.auth_log().into_iter().filter(|l| l.is_event("vigild", event) && l.has("session", &id)).collect()
}

fn raw(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.raw.as_str()).collect()
}

/// The session's `activity` object in `vigilctl list --json`.
fn activity(h: &Harness, id: u64) -> serde_json::Value {
    let listed: Option<SessionInfo> = h.vigild().session(id);
    listed.and_then(|s| s.other.get("activity").cloned()).unwrap_or_default()
}

/// `vigilctl show ID`, as root.
fn show(h: &Harness, id: u64) -> String {
    let out = h.vigild().vigilctl(&["show", &id.to_string()]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_alive(h: &Harness, login: &Login, when: &str) {
    let id = login.id();
    let ends: Vec<LogLine> = records(h, id, "session_end");
    assert!(
        login.client.is_alive() && ends.is_empty(),
        "{when}: session {id} ended: {:?}; screen:\n{}",
        raw(&ends),
        login.client.capture()
    );
}

/// Watches the session for `span` without typing: it must stay.
#[track_caller]
fn stays_for(h: &Harness, login: &Login, span: Duration, label: &str) {
    let start = Instant::now();
    // Bounded: one look per 500 ms.
    for _ in 0..span.as_millis() / 500 + 1 {
        if start.elapsed() >= span {
            break;
        }
        assert_alive(h, login, &format!("{label}, {:?} into a {span:?} watch", start.elapsed()));
        sleep(Duration::from_millis(500));
    }
    assert_alive(h, login, &format!("{label}, after {span:?}"));
}

/// The session is warned and ended on time, counted from `last_input`: returns when it
/// was warned and ended, and its `session_end`.
#[track_caller]
fn ended_on_time(h: &Harness, login: &Login, timeout: Duration, warning: Duration, last_input: Instant) -> (Duration, Duration, LogLine) {
    login.client.wait_for(timeout + SLACK, "the idle warning", |s| s.contains(IDLE_WARNING_TEXT).then_some(()));
    let warned = last_input.elapsed();
    login.client.wait_exit(timeout + SLACK);
    let ended = last_input.elapsed();
    assert!(warned + EARLY >= timeout - warning, "warned {warned:?} after the last input");
    assert!(ended + EARLY >= timeout, "ended {ended:?} after the last input");
    assert!(ended <= timeout + SLACK, "ended {ended:?} after the last input: not on time");
    let end = h.wait_for_event(STEP, "vigild", "session_end", &[("session", &login.id().to_string()), ("reason", "idle")]);
    h.vigild().wait_session_gone(login.id(), STEP);
    (warned, ended, end)
}

/// Types a key every `period` for `span` (a bounded number of keys, on a fixed
/// schedule); the session must stay meanwhile. Returns the time of the last key.
#[track_caller]
fn keep_typing(h: &Harness, login: &Login, period: Duration, span: Duration, label: &str) -> Instant {
    let start = Instant::now();
    let keys = (span.as_millis() / period.as_millis()) as u32 + 1;
    let mut last = login.client.press_key();
    for i in 1..keys {
        sleep((start + period * i).saturating_duration_since(Instant::now()));
        assert_alive(h, login, &format!("{label}: before key {i} of {keys}"));
        last = login.client.press_key();
    }
    last
}

/// The loop's `touch -a` ended a session that typed nothing after it, with the record
/// that says why those accesses were not input.
#[track_caller]
fn touch_loop_is_not_input(h: &Harness, label: &str) {
    let user = h.create_user(label);
    let login = login(h, &user);
    let (id, tty) = (login.id(), login.tty());
    login.client.send_line(TOUCH_LOOP);
    let last_input = Instant::now();

    let (warned, ended, end) = ended_on_time(h, &login, TIMEOUT, WARNING, last_input);
    let suspect = h.wait_for_event(
        STEP,
        "vigild",
        "activity_suspect",
        &[("session", &id.to_string()), ("source", "tty_access"), ("suspect_tty", &tty), ("reason", "not_a_read")],
    );
    let suspects = records(h, id, "activity_suspect");
    assert_eq!(suspects.len(), 1, "once a minute, and no atime suspect beside it: {:?}", raw(&suspects));
    assert_eq!(suspect.field("foreground").as_deref(), Some("bash"), "{}", suspect.raw);
    assert_eq!(end.field("activity_by").as_deref(), Some("tty_read"), "the typed command was the last input: {}", end.raw);
    let ignored: u64 = end.field("accesses_ignored").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(ignored >= 2, "the loop's accesses since then are counted: {}", end.raw);
    eprintln!("{label}: warned {warned:?}, ended {ended:?} after the last input; {}; {}", suspect.raw, end.raw);
}

// ---- 1. touch -a in the background ---------------------------------------------------

#[test]
fn a_background_touch_a_loop_does_not_keep_a_session() {
    require_root!();
    let h = harness(CONFIG, &[]);
    touch_loop_is_not_input(&h, "touch");
}

#[test]
fn a_background_touch_a_loop_with_client_alive_replies_does_not_keep_a_session() {
    require_root!();
    // sshd asks the client every 2 s and the client answers: bytes from the client that
    // no person typed.
    let h = harness(CONFIG, &["ClientAliveInterval 2"]);
    touch_loop_is_not_input(&h, "alive");
}

// ---- 2. a person typing beside the loop ---------------------------------------------

#[test]
fn a_user_typing_beside_the_loop_is_kept_and_shown_as_read() {
    require_root!();
    let h = harness(CONFIG, &[]);
    let user = h.create_user("typist");
    let login = login(&h, &user);
    let id = login.id();
    login.client.send_line(TOUCH_LOOP);
    let last = keep_typing(&h, &login, Duration::from_secs(5), TIMEOUT * 2, "typing every 5 s beside the loop");
    sleep(Duration::from_millis(500));

    let seen = activity(&h, id);
    assert_eq!(seen["by"], "tty_read", "{seen}");
    assert_eq!(seen["tty"].as_str(), Some(login.tty().as_str()), "{seen}");
    assert!(seen["reader"].as_str().is_some_and(|r| r.starts_with("bash[")), "the shell read the keys: {seen}");
    let shown = show(&h, id);
    assert!(shown.contains(&format!("measured by:   input read from {} by bash[", login.tty())), "{shown}");
    assert!(records(&h, id, "idle_warning").is_empty(), "{:?}", raw(&records(&h, id, "idle_warning")));
    eprintln!("typist: alive {:?} after the loop started; vigilctl show:\n{shown}", last.elapsed() + TIMEOUT * 2);
}

// ---- 3. a terminal answering a query ------------------------------------------------

#[test]
fn a_terminal_answering_a_query_is_read_as_input_as_the_docs_say() {
    require_root!();
    let h = harness(CONFIG, &[]);
    let user = h.create_user("query");
    let login = login(&h, &user);
    let id = login.id();
    // The client's terminal (tmux here) answers the cursor position query; the shell,
    // in the foreground, reads the answer.
    login.client.send_line(r"T=$(tty); (for i in $(seq 30); do printf '\033[6n' > $T; sleep 3; done) >/dev/null 2>&1 &");
    let last_key = Instant::now();
    stays_for(&h, &login, TIMEOUT + WARNING + Duration::from_secs(3), "the query loop");
    let seen = activity(&h, id);
    assert_eq!(seen["by"], "tty_read", "{seen}");
    assert!(seen["reader"].as_str().is_some_and(|r| r.starts_with("bash[")), "{seen}");
    assert!(
        records(&h, id, "activity_suspect").iter().all(|l| !l.has("reason", "not_a_read")),
        "{:?}",
        raw(&records(&h, id, "activity_suspect"))
    );
    eprintln!(
        "query: alive {:?} after the last key; activity {seen}; suspects {:?}",
        last_key.elapsed(),
        raw(&records(&h, id, "activity_suspect"))
    );
}

// ---- 4. input at a fixed period with no echo ----------------------------------------

#[test]
fn unechoed_input_at_a_fixed_period_is_noted_as_periodic() {
    require_root!();
    let h = harness(SHORT_CONFIG, &[]);
    let user = h.create_user("period");
    let login = login(&h, &user);
    let (id, tty) = (login.id(), login.tty());
    // A client-side keep-alive: NUL (C-@, readline's set-mark: read, nothing shown)
    // every 2 s.
    let start = Instant::now();
    for i in 0..8u32 {
        sleep((start + Duration::from_secs(2) * i).saturating_duration_since(Instant::now()));
        assert_alive(&h, &login, &format!("before keep-alive {i}"));
        login.client.send_key("C-@");
    }
    let periodic = h.wait_for_event(
        STEP,
        "vigild",
        "activity_suspect",
        &[("session", &id.to_string()), ("source", "tty_read"), ("suspect_tty", &tty), ("reason", "periodic")],
    );
    let period: u64 = periodic.field("period_ms").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1800..=2200).contains(&period), "{}", periodic.raw);
    // Still input: the session was kept throughout (6 s timeout, 14 s of keep-alives).
    assert_alive(&h, &login, "after the keep-alives");
    assert_eq!(activity(&h, id)["by"], "tty_read");
    eprintln!("periodic: {}", periodic.raw);
}

// ---- 5. multiplexed ptys -------------------------------------------------------------

#[test]
fn multiplexed_ptys_are_one_session_kept_by_typing_in_either() {
    require_root!();
    let h = harness(SHORT_CONFIG, &[]);
    let user = h.create_user("mux");
    let control = h.path("mux.ctl");
    let opts = SshOpts::default().control_master(&control);
    let first = login_with(&h, &user, &opts, STEP);
    wait_until(STEP, "the control socket", || control.exists());
    let second_client = h.ssh_session_with(&user, &opts);
    let server = h.sshd().wait_for_session(LOGIN_TIMEOUT, "two shells over one connection", |s| s.user == user.name && s.ttys().len() == 2);
    second_client.wait_for(STEP, "a prompt", |s| s.trim_end().ends_with('$').then_some(()));
    let ttys: Vec<String> = server.ttys().iter().map(|t| short_tty(&t.display().to_string())).collect();
    let tracked = wait_tracked(&h, server.priv_pid(), &ttys, STEP);
    assert_eq!(tracked.id, first.id());
    let mine: Vec<SessionInfo> = h.vigild().list_sessions().into_iter().filter(|s| s.user == user.name).collect();
    assert_eq!(mine.len(), 1, "one vigild session for the connection: {mine:#?}");
    assert_eq!(listed_ttys(&mine[0]).len(), 2, "{mine:#?}");
    let second = Login { client: second_client, server: server.clone(), tracked };
    // The loop in the first window's background throughout.
    first.client.send_line(TOUCH_LOOP);

    let span = SHORT_TIMEOUT * 3 / 2;
    keep_typing(&h, &first, Duration::from_secs(2), span, "typing in the first window");
    let last = keep_typing(&h, &second, Duration::from_secs(2), span, "typing in the second window");
    assert_eq!(activity(&h, first.id())["tty"].as_str(), Some(second.tty().as_str()));

    // Nothing typed in either: warned on both, ended.
    let (_, ended, end) = ended_on_time(&h, &first, SHORT_TIMEOUT, Duration::from_secs(3), last);
    second.client.wait_exit(STEP);
    assert_eq!(
        h.wait_for_event(STEP, "vigild", "idle_warning", &[("session", &first.id().to_string())]).field("ttys_warned").as_deref(),
        Some("2")
    );
    eprintln!("mux: ended {ended:?} after the last key; {}", end.raw);
}

// ---- 6. output, where it counts -----------------------------------------------------

#[test]
fn output_keeps_a_session_whose_policy_counts_it() {
    require_root!();
    let config = format!(
        "{SHORT_CONFIG}\n[[policy]]\nname = \"output-counts\"\nmatch = {{ users = [\"vtest-outon-*\"] }}\noutput_is_activity = true\n"
    );
    let h = harness(&config, &[]);
    let user = h.create_user("outon");
    let login = login(&h, &user);
    login.client.send_line("for i in $(seq 40); do echo tick; sleep 1; done");
    let last_key = Instant::now();
    stays_for(&h, &login, SHORT_TIMEOUT * 3, "printing, its output counted");
    let seen = activity(&h, login.id());
    assert_eq!(seen["by"], "tty_output", "{seen}");
    assert!(records(&h, login.id(), "idle_warning").is_empty());
    eprintln!("output: alive {:?} after the last key; activity {seen}", last_key.elapsed());
    login.client.send_key("C-c");
}
