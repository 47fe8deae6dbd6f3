//! End-to-end tests of a step of the system clock (`daemon/src/sys/clock.rs`): the machine's
//! real wall clock is set ten minutes ahead and back (`vigil_e2e::clock::ClockSteps`,
//! undone on drop) while a real sshd session and the real sudo run against vigild. A
//! step must not make a session look idle for its length, keep a session that really is
//! idle, or stretch a sudo proof's window, also when it comes while vigild is down;
//! vigild records each step (`clock_step`, `session_restored clock_step_ms=`).
//!
//! vigild runs with `idle_timeout = 30s` (warning 5 s before) and `reauth_window = 12s`.
//! Times are measured on the monotonic clock, lower bounds with 1 s of slack for the
//! readings around an event. Needs root and the release build of the workspace: see
//! tests/README.md.

use std::thread::sleep;
use std::time::{Duration, Instant};

use vigil_e2e::clock::ClockSteps;
use vigil_e2e::login::{Login, login_with};
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::sudo::{self, reauth_stack};
use vigil_e2e::{Answer, Harness, LogLine, Prompted, SshOpts, SshdOpts, TestUser, VigildOpts, paths, require_root};

const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const WINDOW: Duration = Duration::from_secs(12);
const CONFIG: &str = "[defaults]\n\
    idle_timeout = \"30s\"\n\
    idle_warning = \"5s\"\n\
    kill_grace = \"1s\"\n\
    reauth_window = \"12s\"\n\
    reauth_after_idle = \"10m\"\n\
    sensitive_services = [\"vigil-test-sudo-*\"]\n";
/// How far the clock is set: far past every limit above.
const STEP_BY: Duration = Duration::from_secs(600);
/// One step: a command's output, a record that is already due.
const STEP: Duration = Duration::from_secs(15);
/// Added to an expected time before a wait gives up.
const SLACK: Duration = Duration::from_secs(10);
/// A lower bound allows this much for the test's clock readings around an event.
const EARLY: Duration = Duration::from_millis(1000);

/// rsyslogd, vigild (private socket, [`CONFIG`]), sshd with pam_vigil in its session
/// stack, a test user allowed to sudo through the re-authentication stack.
struct Env {
    h: Harness,
    user: TestUser,
}

fn env() -> Env {
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let module = paths::pam_module();
    let stack = unix_stack().session("required", &module.display().to_string(), &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user("clock");
    h.install_sudo(&user, &reauth_stack(&module, &h.vigil_args()));
    Env { h, user }
}

fn mark(h: &Harness) -> usize {
    h.auth_log().len()
}

/// vigild's records `event` after `from` (for session `id`, when given).
fn records_after(h: &Harness, from: usize, event: &str, id: Option<u64>) -> Vec<LogLine> {
    let id = id.map(|id| id.to_string());
    h.auth_log()
        .into_iter()
        .skip(from)
        .filter(|l| l.is_event("vigild", event) && id.as_ref().is_none_or(|id| l.has("session", id)))
        .collect()
}

/// Waits for vigild's first record `event` after `from` (for session `id`, when given).
#[track_caller]
fn wait_record_after(h: &Harness, from: usize, event: &str, id: Option<u64>) -> LogLine {
    vigil_e2e::wait_for(STEP, &format!("vigild: event={event} session={id:?}"), || {
        records_after(h, from, event, id).into_iter().next().ok_or_else(|| h.diagnostics())
    })
}

/// Waits for vigild's `clock_step` record after `from`; returns its `delta_ms`.
#[track_caller]
fn wait_clock_step(h: &Harness, from: usize) -> i64 {
    let line = wait_record_after(h, from, "clock_step", None);
    line.field("delta_ms").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no delta_ms in {}", line.raw))
}

#[track_caller]
fn assert_step_of(delta_ms: i64, expected: i64) {
    assert!((delta_ms - expected).abs() < 1000, "clock_step delta_ms={delta_ms}, the clock was set by {expected} ms");
}

fn sudo_as(login: &Login, tag: &str, answer: &Answer) -> Prompted {
    sudo::sudo(&login.client, tag, "true", answer, STEP)
}

#[test]
fn a_clock_step_neither_ends_a_session_early_nor_keeps_it_late() {
    require_root!();
    let e = env();
    let a = login_with(&e.h, &e.user, &SshOpts::default(), STEP);
    let mut clock = ClockSteps::new();
    let from = mark(&e.h);
    a.client.press_key();

    // Ten minutes ahead: the session's last input moves with the clock.
    clock.forward(STEP_BY);
    assert_step_of(wait_clock_step(&e.h, from), STEP_BY.as_millis() as i64);
    // A reload looks at every session at once: none may look ten minutes idle.
    e.h.vigild().sighup();
    e.h.wait_for_event(STEP, "vigild", "config_reload", &[("trigger", "sighup")]);
    sleep(Duration::from_secs(1));
    assert!(records_after(&e.h, from, "idle_warning", Some(a.id())).is_empty(), "{:?}", records_after(&e.h, from, "idle_warning", None));
    assert!(a.client.is_alive(), "the session ended after a step forward");

    // Input in the stepped clock, then the clock back: the terminal's times are now
    // ten minutes "in the future", which is no forged activity.
    let typed = a.client.press_key();
    sleep(Duration::from_millis(500));
    let back = mark(&e.h);
    clock.back(STEP_BY);
    assert_step_of(wait_clock_step(&e.h, back), -(STEP_BY.as_millis() as i64));

    // Left idle: warned and ended on time in real time, 30 s after the last key.
    let end = e.h.wait_for_event(IDLE_TIMEOUT + SLACK, "vigild", "session_end", &[("session", &a.id().to_string()), ("reason", "idle")]);
    let ended_after = typed.elapsed();
    assert!(ended_after + EARLY >= IDLE_TIMEOUT, "ended {ended_after:?} after the last key: {}", end.raw);
    let warnings = records_after(&e.h, from, "idle_warning", Some(a.id()));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let idle_s: u64 = warnings[0].field("idle_s").and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    assert!(idle_s <= IDLE_TIMEOUT.as_secs(), "the warning counts real idleness: {}", warnings[0].raw);
    let suspect = records_after(&e.h, from, "activity_suspect", Some(a.id()));
    assert!(suspect.is_empty(), "times written before a step are not forged input: {suspect:?}");
}

#[test]
fn a_clock_step_neither_voids_nor_stretches_a_sudo_proof() {
    require_root!();
    let e = env();
    let a = login_with(&e.h, &e.user, &SshOpts::default(), STEP);
    let from = mark(&e.h);
    let first = sudo_as(&a, "c1", &Answer::Password(e.user.password.clone()));
    assert!(first.asked() && first.rc == 0, "the first sudo asks: {first:?}");
    wait_record_after(&e.h, from, "reauth_recorded", Some(a.id()));
    let proved = Instant::now();
    let mut clock = ClockSteps::new();

    // Ten minutes ahead, within the window: still trusted.
    clock.forward(STEP_BY);
    assert_step_of(wait_clock_step(&e.h, from), STEP_BY.as_millis() as i64);
    let mid = sudo_as(&a, "c2", &Answer::Interrupt);
    assert_eq!((mid.prompts, mid.rc), (0, 0), "{:?} after the proof, the clock 10 min ahead: no password: {mid:?}", proved.elapsed());

    // Twenty minutes back (ten before the proof's own time): past the window in real
    // time, the password is asked again.
    let back = mark(&e.h);
    clock.back(STEP_BY * 2);
    assert_step_of(wait_clock_step(&e.h, back), -2 * STEP_BY.as_millis() as i64);
    sleep((proved + WINDOW + Duration::from_millis(1500)).saturating_duration_since(Instant::now()));
    let from = mark(&e.h);
    let late = sudo_as(&a, "c3", &Answer::Password(e.user.password.clone()));
    assert!(late.asked() && late.rc == 0, "{:?} after the proof, the clock 10 min back: asks: {late:?}", proved.elapsed());
    let required = wait_record_after(&e.h, from, "reauth_required", Some(a.id()));
    assert_eq!(required.field("reason").as_deref(), Some("expired"), "{}", required.raw);
    assert!(records_after(&e.h, from, "reauth_granted", Some(a.id())).is_empty());
}

/// vigild killed with SIGKILL, the clock set ten minutes ahead while it is down, vigild
/// started again (as `Restart=on-failure` does): the session file says which clock its
/// times are in, so the restored session is not ten minutes idle.
#[test]
fn a_clock_step_while_vigild_is_down_is_applied_when_it_takes_over() {
    require_root!();
    let e = env();
    let a = login_with(&e.h, &e.user, &SshOpts::default(), STEP);
    let from = mark(&e.h);
    let typed = a.client.press_key();
    sleep(Duration::from_millis(500));

    e.h.vigild().signal(nix::sys::signal::Signal::SIGKILL);
    e.h.vigild().wait_exit(STEP).expect("vigild to die of SIGKILL");
    e.h.vigild().stop(); // reaps; nothing else
    let mut clock = ClockSteps::new();
    clock.forward(STEP_BY);
    e.h.vigild().start();
    let restored = wait_record_after(&e.h, from, "session_restored", Some(a.id()));
    let shift: i64 = restored.field("clock_step_ms").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_step_of(shift, STEP_BY.as_millis() as i64);

    // Its first look comes a second after the restart: no warning for ten minutes.
    sleep(Duration::from_secs(2));
    assert!(records_after(&e.h, from, "idle_warning", Some(a.id())).is_empty(), "{:?}", records_after(&e.h, from, "idle_warning", None));
    assert!(a.client.is_alive(), "the restored session ended");
    let end = e.h.wait_for_event(IDLE_TIMEOUT + SLACK, "vigild", "session_end", &[("session", &a.id().to_string()), ("reason", "idle")]);
    let ended_after = typed.elapsed();
    assert!(ended_after + EARLY >= IDLE_TIMEOUT, "ended {ended_after:?} after the last key: {}", end.raw);
}
