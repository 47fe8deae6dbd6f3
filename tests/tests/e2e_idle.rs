//! End-to-end tests of the idle issue: a real sshd on 127.0.0.1 whose PAM session stack
//! is pam_unix + `pam_vigil.so` (the harness's private socket and syslog socket), vigild
//! with timeouts of a few seconds, interactive ssh sessions in tmux ptys and notty ssh
//! commands. What is checked is what a user and an admin see: the warning on the
//! terminal, the disconnect, the background job gone, the session gone from
//! `vigilctl list`, and the audit records in auth.log.
//!
//! Timing: only lower bounds are asserted (nothing is warned or ended early); upper
//! bounds are generous waits, because the machine is shared and noisy. The measured
//! times and vigild's `late_ms` are printed (`-- --nocapture`), never asserted.
//!
//! Needs root and the release build of the workspace: see tests/README.md.

use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use vigil_e2e::login::{Login, listed_ttys, login_with, short_tty, wait_tracked};
use vigil_e2e::procfs::ProcInfo;
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::tmux::LOGIN_TIMEOUT;
use vigil_e2e::{
    Harness, LogLine, SessionInfo, SshOpts, SshSession, SshdOpts, TestUser, VigildOpts, paths, require_root, wait_for, wait_until,
};

/// The idle settings most tests use.
const TIMEOUT: Duration = Duration::from_secs(6);
const WARNING: Duration = Duration::from_secs(3);
const KILL_GRACE: Duration = Duration::from_secs(1);
const IDLE_CONFIG: &str = "[defaults]\nidle_timeout = \"6s\"\nidle_warning = \"3s\"\nkill_grace = \"1s\"\n";

/// Added to every expected time before a wait gives up.
const SLACK: Duration = Duration::from_secs(10);
/// A lower bound allows this much for the test's clock readings around an event.
const EARLY: Duration = Duration::from_millis(1000);
/// A single step (a command's output, a log line that is already due).
const STEP: Duration = Duration::from_secs(10);
/// How often a test that keeps a session busy types a key.
const KEY_PERIOD: Duration = Duration::from_secs(2);
/// What vigild writes on the terminal before an idle end (warning.rs).
const IDLE_WARNING_TEXT: &str = "*** vigil: no input on this session for ";
const AGE_WARNING_TEXT: &str = "*** vigil: this session reaches its maximum age of ";

/// rsyslogd, vigild (private socket only) with `config`, and sshd whose session stack
/// ends with `session required pam_vigil.so` pointing at this harness.
fn harness(config: &str) -> Harness {
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(config));
    let module = paths::pam_module().display().to_string();
    let stack = unix_stack().session("required", &module, &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
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

/// Every record vigild wrote that ends session `id` (session_end, session_close).
fn end_records(h: &Harness, id: u64) -> Vec<LogLine> {
    let mut all = records(h, id, "session_end");
    all.extend(records(h, id, "session_close"));
    all
}

#[track_caller]
fn wait_record(h: &Harness, id: u64, event: &str, fields: &[(&str, &str)]) -> LogLine {
    let id = id.to_string();
    let mut all = vec![("session", id.as_str())];
    all.extend_from_slice(fields);
    h.wait_for_event(STEP, "vigild", event, &all)
}

/// Types a key every [`KEY_PERIOD`] for `span` (a bounded number of keys, on a fixed
/// schedule); panics if the session ends meanwhile. Returns the time of the last key.
#[track_caller]
fn keep_typing(h: &Harness, login: &Login, span: Duration, label: &str) -> Instant {
    let start = Instant::now();
    let keys = (span.as_millis() / KEY_PERIOD.as_millis()) as u32 + 1;
    let mut last = login.client.press_key();
    for i in 1..keys {
        let due = start + KEY_PERIOD * i;
        sleep(due.saturating_duration_since(Instant::now()));
        assert_alive(h, login, &format!("{label}: before key {i} of {keys}, {:?} after the first", start.elapsed()));
        last = login.client.press_key();
    }
    last
}

/// The ssh client, sshd's side and vigild's registration of the session all still there.
#[track_caller]
fn assert_alive(h: &Harness, login: &Login, when: &str) {
    let id = login.id();
    assert!(
        login.client.is_alive() && login.server.is_alive(),
        "{when}: session {id} ended (client alive: {}); end records: {:?}; screen:\n{}",
        login.client.is_alive(),
        end_records(h, id).iter().map(|l| &l.raw).collect::<Vec<_>>(),
        login.client.capture()
    );
    assert!(end_records(h, id).is_empty(), "{when}: {:?}", end_records(h, id));
}

/// Watches the session for `span` without touching it: it must stay.
#[track_caller]
fn stays_for(h: &Harness, login: &Login, span: Duration, label: &str) {
    let start = Instant::now();
    // Bounded: one check per 250 ms.
    let checks = span.as_millis() / 250 + 1;
    for _ in 0..checks {
        if start.elapsed() >= span {
            break;
        }
        assert_alive(h, login, &format!("{label}, {:?} into a {span:?} watch", start.elapsed()));
        sleep(Duration::from_millis(250));
    }
    assert_alive(h, login, &format!("{label}, after {span:?}"));
    let listed = h.vigild().list_sessions();
    assert!(listed.iter().any(|s| s.id == login.id()), "{label}: session {} not listed: {listed:#?}", login.id());
}

/// Waits for the warning text on the client's screen; returns the screen and how long
/// after `since` it was seen.
#[track_caller]
fn wait_warning(client: &SshSession, text: &str, since: Instant, within: Duration) -> (String, Duration) {
    let screen = client.wait_for(within, &format!("{text:?} on the terminal"), |s| s.contains(text).then(|| s.to_string()));
    (screen, since.elapsed())
}

/// The line of `screen` holding `text`.
fn line_with<'a>(screen: &'a str, text: &str) -> &'a str {
    screen.lines().find(|l| l.contains(text)).unwrap_or_default()
}

/// `KEY=<digits>` as a word of an output line (the typed command shows `KEY=$...`).
fn number_after(screen: &str, key: &str) -> Option<u64> {
    screen.lines().flat_map(str::split_whitespace).find_map(|w| w.strip_prefix(key)?.parse().ok())
}

/// Waits until the ssh client has exited; returns its code and when (after `since`).
#[track_caller]
fn wait_client_exit(client: &SshSession, since: Instant, within: Duration) -> (i32, Duration) {
    let code = client.wait_exit(within);
    (code, since.elapsed())
}

fn late_ms(line: &LogLine) -> String {
    line.field("late_ms").unwrap_or_else(|| "-".into())
}

// ---- 1. an idle session --------------------------------------------------------------

#[test]
fn idle_session_is_warned_then_ended_with_its_background_job() {
    require_root!();
    let h = harness(IDLE_CONFIG);
    let user = h.create_user("idle");
    let login = login(&h, &user);
    let id = login.id();
    let open = wait_record(&h, id, "session_open", &[]);
    assert_eq!(open.field("user").as_deref(), Some(user.name.as_str()), "{}", open.raw);

    login.client.send_line("nohup sleep 1000 >/dev/null 2>&1 & echo BG=$! SID=$VIGIL_SESSION_ID");
    let last_input = Instant::now();
    let (bg, sid) = login
        .client
        .wait_for(STEP, "the background job's pid and VIGIL_SESSION_ID", |s| Some((number_after(s, "BG=")?, number_after(s, "SID=")?)));
    assert_eq!(sid, id, "the shell's VIGIL_SESSION_ID is the session vigild lists");
    let sleeper = ProcInfo::read(bg as u32).expect("the background sleep runs");
    assert_eq!((sleeper.comm.as_str(), sleeper.uid), ("sleep", user.uid), "{sleeper:?}");
    assert!(login.server.pids().iter().all(|p| ProcInfo::read(*p).is_some()), "the session runs");

    let (screen, warned_after) = wait_warning(&login.client, IDLE_WARNING_TEXT, last_input, TIMEOUT + SLACK);
    let warning_line = line_with(&screen, IDLE_WARNING_TEXT);
    assert!(warning_line.contains("It will be ended in") && warning_line.contains("unless you press a key. ***"), "{screen}");
    assert!(warned_after + EARLY >= TIMEOUT - WARNING, "warned {warned_after:?} after the last input");
    assert!(login.client.is_alive(), "the warning comes before the end: {screen}");

    let (code, ended_after) = wait_client_exit(&login.client, last_input, TIMEOUT + SLACK);
    assert!(ended_after + EARLY >= TIMEOUT, "ended {ended_after:?} after the last input");
    wait_until(KILL_GRACE + STEP, "the nohup'd sleep (it ignores SIGHUP) to be killed", || !sleeper.still_running());
    wait_until(STEP, "every process of the session to be gone", || {
        login.server.pids().iter().all(|&p| ProcInfo::read(p).is_none_or(|now| !now.is_alive()))
    });
    h.vigild().wait_session_gone(id, STEP);

    let warning = wait_record(&h, id, "idle_warning", &[("limit", "idle")]);
    assert_eq!(warning.field("ttys_warned").as_deref(), Some("1"), "{}", warning.raw);
    let end = wait_record(&h, id, "session_end", &[("reason", "idle")]);
    let log = h.auth_log();
    let at = |l: &LogLine| log.iter().position(|x| x == l);
    assert!(at(&warning) < at(&end), "the warning is logged before the end");
    assert_eq!(end_records(&h, id).len(), 1, "one end record: {:?}", end_records(&h, id));
    eprintln!(
        "idle: warned {warned_after:?} and ended {ended_after:?} after the last input (timeout {TIMEOUT:?}, \
         warning {WARNING:?}); ssh exit code {code}; session_end late_ms={}",
        late_ms(&end)
    );
}

// ---- 2. typing keeps a session -------------------------------------------------------

#[test]
fn typing_every_few_seconds_keeps_a_session_past_the_timeout() {
    require_root!();
    let h = harness(IDLE_CONFIG);
    let user = h.create_user("typing");
    let login = login(&h, &user);
    let id = login.id();
    let start = Instant::now();
    let last = keep_typing(&h, &login, TIMEOUT * 3, "typing");
    stays_for(&h, &login, Duration::from_millis(500), "after typing");
    eprintln!(
        "typing: session {id} alive {:?} after login with a key every {KEY_PERIOD:?}; idle warnings on the way: {}",
        start.elapsed(),
        records(&h, id, "idle_warning").len()
    );
    // Left alone, it is warned; a key then answers the warning: the session outlives the
    // end the warning announced, and is ended only a whole timeout after that key.
    let (_, warned_after) = wait_warning(&login.client, IDLE_WARNING_TEXT, last, TIMEOUT + SLACK);
    assert!(warned_after + EARLY >= TIMEOUT - WARNING, "warned {warned_after:?} after the last key");
    let answer = login.client.press_key();
    stays_for(&h, &login, WARNING + Duration::from_secs(1), "after a key answered the warning");
    let (_, ended_after) = wait_client_exit(&login.client, answer, TIMEOUT + SLACK);
    assert!(ended_after + EARLY >= TIMEOUT, "ended {ended_after:?} after the key that answered the warning");
    let end = wait_record(&h, id, "session_end", &[("reason", "idle")]);
    let warnings = records(&h, id, "idle_warning");
    assert_eq!(warnings.len(), 2, "one warning before the key, one after: {warnings:?}");
    assert_eq!(login.client.capture().matches(IDLE_WARNING_TEXT).count(), 2, "{}", login.client.capture());
    eprintln!(
        "typing: warned {warned_after:?} after the last key; ended {ended_after:?} after the key that answered \
         the warning; late_ms={}",
        late_ms(&end)
    );
}

// ---- 3. output is activity only where the policy says so -----------------------------

#[test]
fn output_only_session_is_ended_unless_output_counts() {
    require_root!();
    let config = format!(
        "{IDLE_CONFIG}\n[[policy]]\nname = \"output-counts\"\nmatch = {{ users = [\"vtest-outon-*\"] }}\noutput_is_activity = true\n"
    );
    let h = harness(&config);
    let quiet_user = h.create_user("outoff");
    let loud_user = h.create_user("outon");
    let quiet = login(&h, &quiet_user);
    let loud = login(&h, &loud_user);
    assert_eq!(quiet.tracked.policy_name(), Some("defaults"), "{:#?}", quiet.tracked);
    assert_eq!(loud.tracked.policy_name(), Some("output-counts"), "{:#?}", loud.tracked);

    let looping = "while :; do echo tick; sleep 1; done";
    quiet.client.send_line(looping);
    let quiet_input = Instant::now();
    loud.client.send_line(looping);
    let loud_input = Instant::now();
    for l in [&quiet, &loud] {
        l.client.wait_for(STEP, "three ticks", |s| (s.lines().filter(|l| l.trim() == "tick").count() >= 3).then_some(()));
    }

    // output_is_activity = false: printing is not input; the session is warned and ended.
    let (_, warned_after) = wait_warning(&quiet.client, IDLE_WARNING_TEXT, quiet_input, TIMEOUT + SLACK);
    let (_, ended_after) = wait_client_exit(&quiet.client, quiet_input, TIMEOUT + SLACK);
    assert!(warned_after + EARLY >= TIMEOUT - WARNING && ended_after + EARLY >= TIMEOUT, "{warned_after:?} {ended_after:?}");
    let end = wait_record(&h, quiet.id(), "session_end", &[("reason", "idle")]);

    // output_is_activity = true: the same loop keeps its session, for 3 × the timeout.
    let watch = (TIMEOUT * 3).saturating_sub(loud_input.elapsed());
    stays_for(&h, &loud, watch, "the printing session whose output counts");
    let screen = loud.client.capture();
    assert!(!screen.contains(IDLE_WARNING_TEXT), "no warning for a session whose output counts:\n{screen}");
    assert!(records(&h, loud.id(), "idle_warning").is_empty(), "{:?}", records(&h, loud.id(), "idle_warning"));
    eprintln!(
        "output: the quiet policy's session warned {warned_after:?} and ended {ended_after:?} after its last input \
         (late_ms={}); the loud one alive {:?} after its last input",
        late_ms(&end),
        loud_input.elapsed()
    );
}

// ---- 4. exempt users ----------------------------------------------------------------

#[test]
fn exempt_session_is_never_ended() {
    require_root!();
    let config = format!("{IDLE_CONFIG}\n[[policy]]\nname = \"exempt-users\"\nmatch = {{ users = [\"vtest-exempt-*\"] }}\nexempt = true\n");
    let h = harness(&config);
    let user = h.create_user("exempt");
    let before = Instant::now();
    let login = login(&h, &user);
    let id = login.id();
    let open = wait_record(&h, id, "session_open", &[]);
    assert!(open.has("exempt", "yes") && open.has("policy", "exempt-users"), "{}", open.raw);
    assert_eq!(login.tracked.policy_name(), Some("exempt-users"));
    assert!(login.tracked.other.get("deadline").is_some_and(|d| d.is_null()), "no deadline: {:#?}", login.tracked);

    let watch = (TIMEOUT * 2 + WARNING).saturating_sub(before.elapsed());
    stays_for(&h, &login, watch, "the exempt session");
    let screen = login.client.capture();
    assert!(!screen.contains("*** vigil:"), "no warning on an exempt session:\n{screen}");
    assert!(records(&h, id, "idle_warning").is_empty(), "{:?}", records(&h, id, "idle_warning"));
    eprintln!("exempt: session {id} alive {:?} after login, untouched", before.elapsed());
}

// ---- 5. max_session_age -------------------------------------------------------------

#[test]
fn max_session_age_ends_an_active_session() {
    require_root!();
    const MAX_AGE: Duration = Duration::from_secs(8);
    let h = harness("[defaults]\nidle_timeout = \"1h\"\nidle_warning = \"3s\"\nmax_session_age = \"8s\"\nkill_grace = \"1s\"\n");
    let user = h.create_user("maxage");
    let before = Instant::now(); // before the session opened: a lower bound of its age
    let login = login(&h, &user);
    let id = login.id();

    // A key every second until the client is gone (bounded by the age and a slack).
    let rounds = (MAX_AGE + SLACK).as_secs();
    let mut keys = 0;
    for _ in 0..rounds {
        if !login.client.is_alive() {
            break;
        }
        login.client.press_key();
        keys += 1;
        sleep(Duration::from_secs(1));
    }
    let (_, ended_after) = wait_client_exit(&login.client, before, STEP);
    assert!(ended_after + EARLY >= MAX_AGE, "ended {ended_after:?} after the ssh client started");
    let screen = login.client.capture();
    let warning = line_with(&screen, AGE_WARNING_TEXT);
    assert!(warning.contains("maximum age of 8s") && warning.contains("It will be ended in"), "{screen}");
    assert!(!screen.contains(IDLE_WARNING_TEXT), "an active session gets no idle warning:\n{screen}");
    let end = wait_record(&h, id, "session_end", &[("reason", "max_age")]);
    wait_record(&h, id, "idle_warning", &[("limit", "max_age")]);
    h.vigild().wait_session_gone(id, STEP);
    assert_eq!(end_records(&h, id).len(), 1, "{:?}", end_records(&h, id));
    eprintln!(
        "max age: ended {ended_after:?} after the client started, {keys} keys typed; duration_s={} late_ms={}",
        end.field("duration_s").unwrap_or_default(),
        late_ms(&end)
    );
}

// ---- 6. notty sessions --------------------------------------------------------------

const NOTTY_TIMEOUT: Duration = Duration::from_secs(4);
const NOTTY_CONFIG: &str = "[defaults]\nidle_timeout = \"1h\"\nidle_warning = \"3s\"\nnotty_idle_timeout = \"4s\"\nkill_grace = \"1s\"\n";

#[test]
fn notty_session_follows_notty_idle_timeout() {
    require_root!();
    let h = harness(NOTTY_CONFIG);
    let user = h.create_user("notty");
    let busy_user = h.create_user("nottybsy");
    let before = Instant::now();
    let client = h.ssh_command(&user, "sleep 600");
    // A notty session that prints every second: its processes' I/O is its activity.
    let busy = h.ssh_command(&busy_user, "while :; do echo tick; sleep 1; done");
    let server = client.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
    let busy_server = busy.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
    assert!(!server.has_pty() && !busy_server.has_pty(), "{server:#?} {busy_server:#?}");
    let sleeper = server.processes.iter().find(|p| p.cmdline == "sleep 600").expect("sleep 600 under sshd").clone();
    let tracked = wait_tracked(&h, server.priv_pid(), &[], STEP);
    let id = tracked.id;
    assert!(listed_ttys(&tracked).is_empty(), "{tracked:#?}");
    let busy_id = wait_tracked(&h, busy_server.priv_pid(), &[], STEP).id;

    // Sampled at a quarter of the timeout: ended within 1.25 × the timeout of the last I/O.
    let status = client.wait_exit(NOTTY_TIMEOUT * 5 / 4 + SLACK);
    let ended_after = before.elapsed();
    let status =
        status.unwrap_or_else(|| panic!("the ssh client still runs {ended_after:?} after it started; auth.log: {:?}", end_records(&h, id)));
    assert!(ended_after + EARLY >= NOTTY_TIMEOUT, "ended {ended_after:?} after the client started");
    let end = wait_record(&h, id, "session_end", &[("reason", "idle")]);
    wait_until(KILL_GRACE + STEP, "the remote `sleep 600` to be ended", || !sleeper.still_running());
    h.vigild().wait_session_gone(id, STEP);
    assert!(records(&h, id, "idle_warning").is_empty(), "no terminal, no warning: {:?}", records(&h, id, "idle_warning"));

    // The busy one stays, for 3 × the timeout.
    let watch_until = before + NOTTY_TIMEOUT * 3;
    // Bounded: one check per 250 ms.
    for _ in 0..(NOTTY_TIMEOUT * 3).as_millis() / 250 + 1 {
        if Instant::now() >= watch_until {
            break;
        }
        assert!(busy.is_running() && end_records(&h, busy_id).is_empty(), "the busy notty session ended: {:?}", end_records(&h, busy_id));
        sleep(Duration::from_millis(250));
    }
    assert!(busy.is_running() && busy_server.is_alive(), "the busy notty session ended: {:?}", end_records(&h, busy_id));
    assert!(h.vigild().list_sessions().iter().any(|s| s.id == busy_id));
    let ticks = busy.stdout_text().lines().filter(|l| *l == "tick").count();
    assert!(ticks >= 3, "the busy session printed {ticks} ticks");
    eprintln!(
        "notty: client exited ({status}) {ended_after:?} after it started (timeout {NOTTY_TIMEOUT:?}); late_ms={}; \
         the busy one alive {:?} after it started ({ticks} ticks)",
        late_ms(&end),
        before.elapsed()
    );
}

/// A reload that shortens the timeout makes a session that is already idle longer than
/// the new one overdue at once: it is ended at the reload, and its end says why it came
/// past its deadline (`late_cause=reload`).
#[test]
fn a_reload_that_shortens_the_timeout_ends_the_overdue_and_says_why() {
    require_root!();
    let h = harness("[defaults]\nidle_timeout = \"1h\"\nnotty_idle_timeout = \"1h\"\nkill_grace = \"1s\"\n");
    let user = h.create_user("reloadlt");
    let client = h.ssh_command(&user, "sleep 600");
    let server = client.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
    let id = wait_tracked(&h, server.priv_pid(), &[], STEP).id;
    // Idle for longer than the new timeout (2 s) plus the first sample's delay (1 s).
    sleep(Duration::from_secs(5));
    h.vigild().write_config("[defaults]\nidle_timeout = \"1h\"\nnotty_idle_timeout = \"2s\"\nkill_grace = \"1s\"\n");
    let out = h.vigild().vigilctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let end = wait_record(&h, id, "session_end", &[("reason", "idle"), ("late_cause", "reload")]);
    assert!(end.field("late_ms").and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l >= 500), "{}", end.raw);
    assert!(client.wait_exit(STEP).is_some(), "the client is disconnected");
    eprintln!("reload: {}", end.raw);
}

/// A notty session's idle time runs from its last I/O, also when that I/O came before
/// vigild first sampled the session (its first look waits a moment after the open).
#[test]
fn notty_idle_time_counts_from_io_in_the_first_second() {
    require_root!();
    let h = harness(NOTTY_CONFIG);
    let user = h.create_user("nottyio");
    // Output half a second in, stamped by the remote clock just before it is written;
    // then nothing.
    let client = h.ssh_command(&user, "sleep 0.5; echo io-at $(date +%s%N); exec sleep 600");
    let server = client.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
    let id = wait_tracked(&h, server.priv_pid(), &[], STEP).id;
    let status = client.wait_exit(NOTTY_TIMEOUT * 5 / 4 + SLACK);
    // Seen after the fact: later than the real end, never earlier.
    let exited = SystemTime::now();
    let out = client.stdout_text();
    assert!(status.is_some(), "the ssh client still runs; stdout {out:?}; end records {:?}", end_records(&h, id));
    let io_ns: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("io-at ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no io-at line in the client's output {out:?}"));
    let io_at = UNIX_EPOCH + Duration::from_nanos(io_ns);
    let quiet_for = exited.duration_since(io_at).unwrap_or_default();
    let end = wait_record(&h, id, "session_end", &[("reason", "idle")]);
    assert!(
        quiet_for >= NOTTY_TIMEOUT,
        "session {id} ended {quiet_for:?} after its last output, before notty_idle_timeout ({NOTTY_TIMEOUT:?}): {}",
        end.raw
    );
    eprintln!("notty io: ended {quiet_for:?} after the last output (timeout {NOTTY_TIMEOUT:?}); late_ms={}", late_ms(&end));
}

// ---- 7. multiplexed connections -----------------------------------------------------

#[test]
fn multiplexed_connection_is_one_session_idle_only_when_every_pty_is() {
    require_root!();
    let h = harness(IDLE_CONFIG);
    let user = h.create_user("mux");
    let control = h.path("mux.ctl");
    let opts = SshOpts::default().control_master(&control);
    let first = login_with(&h, &user, &opts, STEP);
    wait_until(STEP, "the control socket", || control.exists());
    let second_client = h.ssh_session_with(&user, &opts);
    let server = h.sshd().wait_for_session(LOGIN_TIMEOUT, "two shells over one connection", |s| s.user == user.name && s.ttys().len() == 2);
    assert_eq!(server.priv_pid(), first.server.priv_pid(), "one [priv] process for both");
    second_client.wait_for(STEP, "a prompt", |s| s.trim_end().ends_with('$').then_some(()));
    let ttys: Vec<String> = server.ttys().iter().map(|t| short_tty(&t.display().to_string())).collect();
    let tracked = wait_tracked(&h, server.priv_pid(), &ttys, STEP);
    let id = tracked.id;
    assert_eq!(id, first.id());
    let mine: Vec<SessionInfo> = h.vigild().list_sessions().into_iter().filter(|s| s.user == user.name).collect();
    assert_eq!(mine.len(), 1, "one vigild session for the connection: {mine:#?}");
    assert_eq!(listed_ttys(&mine[0]).len(), 2, "both ptys: {mine:#?}");
    let second_tty = ttys.iter().find(|t| **t != short_tty(&first.tty())).expect("the second pty").clone();
    let second = Login { client: second_client, server: server.clone(), tracked: tracked.clone() };

    // Input on one pty only, then on the other only: each stretch is longer than the
    // timeout, so the pty left alone is idle past it, and the session stays.
    let span = TIMEOUT * 3 / 2;
    keep_typing(&h, &first, span, "typing in the first window");
    let last = keep_typing(&h, &second, span, "typing in the second window");
    assert_alive(&h, &first, "after typing in both windows in turn");

    // Both idle: warned on both terminals, then ended; both clients leave.
    for (client, name) in [(&first.client, "first"), (&second.client, "second")] {
        let (_, after) = wait_warning(client, IDLE_WARNING_TEXT, last, TIMEOUT + SLACK);
        eprintln!("mux: warning on the {name} pty {after:?} after the last key");
    }
    let (_, ended_after) = wait_client_exit(&first.client, last, TIMEOUT + SLACK);
    assert!(ended_after + EARLY >= TIMEOUT, "ended {ended_after:?} after the last key");
    wait_client_exit(&second.client, last, STEP);
    let warning = wait_record(&h, id, "idle_warning", &[("limit", "idle")]);
    assert_eq!(warning.field("ttys_warned").as_deref(), Some("2"), "{}", warning.raw);
    let end = wait_record(&h, id, "session_end", &[("reason", "idle")]);
    h.vigild().wait_session_gone(id, STEP);
    eprintln!(
        "mux: one session with ttys {ttys:?} (second {second_tty}); ended {ended_after:?} after the last key; late_ms={}",
        late_ms(&end)
    );
}

// ---- 8. the leader killed -----------------------------------------------------------

#[test]
fn killed_session_leader_ends_the_session() {
    require_root!();
    let h = harness("[defaults]\nidle_timeout = \"1h\"\n");
    let user = h.create_user("leader");
    let login = login(&h, &user);
    let id = login.id();
    assert_eq!(login.tracked.leader_pid, login.server.priv_pid(), "sshd's [priv] process leads the session");
    let port = login.client.client_port().expect("the client's TCP port");
    assert!(login.server.monitor.signal(Signal::SIGKILL), "SIGKILL to [priv] {}", login.server.priv_pid());
    let end = wait_record(&h, id, "session_end", &[("reason", "leader_gone")]);
    h.vigild().wait_session_gone(id, STEP);
    assert_eq!(end_records(&h, id).len(), 1, "{:?}", end_records(&h, id));
    assert!(end.has("leader_pid", &login.server.priv_pid().to_string()), "{}", end.raw);
    // The ssh client's port links vigil's records to sshd's own log lines.
    assert!(end.has("rport", &port.to_string()), "rport={port} expected: {}", end.raw);
    // What was left on the session's pty (sshd's user process, the shell) would run on
    // unsupervised: vigild ends it with the session, and the client is disconnected.
    assert!(end.field("processes").is_some_and(|n| n != "0"), "leftovers were ended: {}", end.raw);
    wait_for(Duration::from_secs(10), "the session's leftover processes to end", || {
        let left: Vec<String> = login.server.pids()[1..]
            .iter()
            .filter_map(|&p| ProcInfo::read(p).filter(ProcInfo::is_alive))
            .map(|p| format!("{} {}", p.pid, p.cmdline))
            .collect();
        if left.is_empty() { Ok(()) } else { Err(format!("still running: {left:?}")) }
    });
    wait_for(Duration::from_secs(10), "the ssh client to be disconnected", || {
        if login.client.is_alive() { Err("client still connected".to_string()) } else { Ok(()) }
    });
}

/// `vigilctl terminate ID` with the defaults (kill_grace 5 s, --timeout 5 s) on a session
/// whose job ignores SIGHUP: vigilctl answers at once with success, and the job is killed
/// after the grace period, without anyone waiting on the call.
#[test]
fn admin_terminate_answers_without_waiting_for_the_grace_period() {
    require_root!();
    let h = harness("[defaults]\nidle_timeout = \"1h\"\n");
    let user = h.create_user("term");
    let login = login(&h, &user);
    let id = login.id();
    login.client.send_line("nohup sleep 1000 >/dev/null 2>&1 & echo BG=$!");
    let bg = login.client.wait_for(STEP, "the background job's pid", |s| number_after(s, "BG="));
    let sleeper = ProcInfo::read(bg as u32).expect("the background sleep runs");
    let asked = Instant::now();
    let out = h.vigild().vigilctl(&["terminate", &id.to_string()]);
    let answered_in = asked.elapsed();
    assert!(out.status.success(), "vigilctl terminate: {}", vigil_e2e::process::describe_output(&out));
    assert!(answered_in < Duration::from_secs(4), "the answer waited {answered_in:?}, as long as the grace period");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("session {id} terminated")), "{out:?}");
    wait_record(&h, id, "session_end", &[("reason", "admin")]);
    wait_until(Duration::from_secs(5) + STEP, "the nohup'd sleep (it ignores SIGHUP) to be killed after kill_grace", || {
        !sleeper.still_running()
    });
}

/// `vigilctl terminate ID`: every process of the session gets SIGHUP (SIGKILL after
/// kill_grace), the client is disconnected, and the end is audited as an admin's.
#[test]
fn admin_terminate_ends_the_session() {
    require_root!();
    let h = harness("[defaults]\nidle_timeout = \"1h\"\nkill_grace = \"1s\"\n");
    let user = h.create_user("term");
    let login = login(&h, &user);
    let id = login.id();
    let out = h.vigild().vigilctl(&["terminate", &id.to_string()]);
    assert!(out.status.success(), "vigilctl terminate: {}", vigil_e2e::process::describe_output(&out));
    let end = wait_record(&h, id, "session_end", &[("reason", "admin")]);
    assert!(end.field("processes").is_some_and(|n| n != "0"), "{}", end.raw);
    h.vigild().wait_session_gone(id, STEP);
    wait_for(STEP, "the ssh client to be disconnected", || {
        if login.client.is_alive() { Err("client still connected".to_string()) } else { Ok(()) }
    });
    assert_eq!(end_records(&h, id).len(), 1, "{:?}", end_records(&h, id));
}

/// `idle_action = "none"` is a dry run of the idle limit: past the idle timeout nothing is
/// written on the terminal and nothing is ended, `idle_limit_reached action=none` is
/// recorded once for the stretch (reloads do not repeat it), and `max_session_age` still
/// warns and ends the session.
#[test]
fn idle_action_none_is_a_dry_run_and_max_age_still_ends_the_session() {
    require_root!();
    let h = harness(
        "[defaults]\nidle_timeout = \"4s\"\nidle_warning = \"2s\"\nidle_action = \"none\"\nmax_session_age = \"20s\"\nkill_grace = \"1s\"\n",
    );
    let user = h.create_user("dry");
    let login = login(&h, &user);
    let id = login.id();
    let reached = wait_record(&h, id, "idle_limit_reached", &[("action", "none"), ("limit", "idle")]);
    assert!(login.client.is_alive(), "nothing is ended at the idle limit");
    assert!(!login.client.capture().contains(IDLE_WARNING_TEXT), "no idle warning in a dry run:\n{}", login.client.capture());
    for _ in 0..2 {
        let out = h.vigild().vigilctl(&["reload"]);
        assert!(out.status.success(), "{out:?}");
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(records(&h, id, "idle_limit_reached").len(), 1, "recorded once for the stretch: {}", reached.raw);
    assert!(records(&h, id, "idle_warning").iter().all(|w| w.has("limit", "max_age")), "no idle warning record");
    login.client.wait_for_text(AGE_WARNING_TEXT, Duration::from_secs(20) + SLACK);
    let end = wait_record(&h, id, "session_end", &[("reason", "max_age")]);
    assert!(end.field("late_ms").and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l < 5_000), "{}", end.raw);
    wait_for(STEP, "the ssh client to be disconnected", || {
        if login.client.is_alive() { Err("client still connected".to_string()) } else { Ok(()) }
    });
    assert_eq!(records(&h, id, "session_end").len(), 1);
}
