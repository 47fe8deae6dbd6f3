//! End-to-end tests of live alerts (AUDIT.md, "Alerts"): what vigild sees as it happens
//! and pages on is written as an `alert` record at syslog severity warning, the rest of
//! the trail at notice. Real parts only: a real sshd whose session stack ends with
//! `pam_vigil.so`, interactive ssh sessions in tmux ptys, the real `sudo` through the
//! re-authentication stack with its `authfail` line (`passwd_tries=1`: one wrong password
//! per sudo), `vigilctl` run by an ordinary user, and a real rsyslogd that also writes
//! each authpriv record with the severity it received it at (`severity.log`).
//!
//! Timing: waits are generous upper bounds; every loop is bounded in count and time.
//! Needs root and the release build of the workspace: see tests/README.md.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use vigil_e2e::login::{Login, login_with};
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::sudo::{self, reauth_stack};
use vigil_e2e::{
    Answer, Harness, LogLine, RsyslogOpts, SeverityLine, SshOpts, SshdOpts, TestUser, VigildOpts, paths, require_root, wait_for,
};

const STEP: Duration = Duration::from_secs(15);
const CONFIG: &str = "[defaults]\n\
    idle_timeout = \"10m\"\n\
    kill_grace = \"1s\"\n\
    sensitive_services = [\"vigil-test-sudo-*\"]\n";
/// What vigild's rule counts: 3 failures in a session (daemon/src/sessions/alerts.rs).
const REAUTH_FAILURES_ALERT: usize = 3;
/// 10 refused calls of one uid within a minute.
const REFUSED_CALLS_ALERT: usize = 10;
/// `<PRI>` of authpriv (facility 10) at warning (4) and at notice (5).
const AUTHPRIV_WARNING: u32 = 84;
const AUTHPRIV_NOTICE: u32 = 85;

static TAG: AtomicU32 = AtomicU32::new(0);

fn tag() -> String {
    format!("a{}", TAG.fetch_add(1, Ordering::Relaxed) + 1)
}

/// rsyslogd with severity.log, vigild (private socket) with `config`.
fn harness(config: &str) -> Harness {
    let mut h = Harness::new();
    h.start_rsyslog_with(&RsyslogOpts { severity_log: true, ..RsyslogOpts::default() });
    h.start_vigild(VigildOpts::default().no_bus().config(config));
    h
}

/// [`harness`], sshd with pam_vigil in its session stack, and a user allowed to sudo
/// through the re-authentication stack (its `authfail` line records wrong passwords).
fn with_sshd_and_sudo(config: &str, name: &str) -> (Harness, TestUser, String) {
    let mut h = harness(config);
    let module = paths::pam_module();
    let stack = unix_stack().session("required", &module.display().to_string(), &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user(name);
    let sudo_service = h.install_sudo(&user, &reauth_stack(&module, &h.vigil_args()));
    (h, user, sudo_service)
}

fn login(h: &Harness, user: &TestUser) -> Login {
    login_with(h, user, &SshOpts::default(), STEP)
}

/// One sudo with a wrong password: asked once, refused.
#[track_caller]
fn wrong_sudo(login: &Login) {
    let run = sudo::sudo(&login.client, &tag(), "true", &Answer::Password("not-the-password".into()), STEP);
    assert_eq!((run.prompts, run.rc), (1, 1), "a wrong password is asked once and refused: {run:?}");
}

fn records(h: &Harness, event: &str, fields: &[(&str, &str)]) -> Vec<LogLine> {
    h.auth_log().into_iter().filter(|l| l.is_event("vigild", event) && fields.iter().all(|(k, v)| l.has(k, v))).collect()
}

fn raw(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.raw.as_str()).collect()
}

/// The severity.log line of a record auth.log holds (the same message after the tag).
#[track_caller]
fn as_received(h: &Harness, line: &LogLine) -> SeverityLine {
    let message = line.raw.split_once("]: ").map_or(line.raw.as_str(), |(_, m)| m).to_string();
    wait_for(STEP, &format!("severity.log to hold {message}"), || {
        let lines = h.rsyslog().severity_lines();
        lines.iter().find(|l| l.text.ends_with(&message)).cloned().ok_or_else(|| format!("{} lines", lines.len()))
    })
}

#[track_caller]
fn assert_received_at(h: &Harness, line: &LogLine, severity: &str, pri: u32) {
    let received = as_received(h, line);
    assert_eq!((received.severity.as_str(), received.pri), (severity, pri), "{received:?}");
}

/// Three wrong sudo passwords in one ssh session: one `alert kind=reauth_failures` with
/// the session's fields, received by rsyslogd at warning while the `reauth_failed`
/// records before it are at notice; a fourth failure within the window is no second
/// alert, and the session stays (`on_reauth_failures` is off by default). The report on
/// the same trail lists one `reauth_failures` item, and others with `--reauth-failures`
/// and `--reauth-window` given.
#[test]
fn three_failed_sudo_passwords_in_a_session_are_one_alert_at_warning() {
    require_root!();
    let (h, user, sudo_service) = with_sshd_and_sudo(CONFIG, "fail3");
    let a = login(&h, &user);
    let id = a.id().to_string();
    for _ in 0..REAUTH_FAILURES_ALERT - 1 {
        wrong_sudo(&a);
    }
    h.wait_for_event(STEP, "vigild", "reauth_failed", &[("session", &id)]);
    wait_for(STEP, "the second reauth_failed", || {
        let n = records(&h, "reauth_failed", &[("session", &id)]).len();
        if n == 2 { Ok(()) } else { Err(format!("{n}")) }
    });
    assert!(records(&h, "alert", &[]).is_empty(), "two failures: no alert: {:?}", raw(&records(&h, "alert", &[])));

    wrong_sudo(&a);
    let alert = h.wait_for_event(STEP, "vigild", "alert", &[("kind", "reauth_failures"), ("session", &id)]);
    let opened = records(&h, "session_open", &[("session", &id)]).pop().expect("the session's open record");
    let login_service = opened.field("service").expect("service");
    for (key, value) in [
        ("user", user.name.as_str()),
        ("service", login_service.as_str()),
        ("leader_pid", opened.field("leader_pid").as_deref().unwrap_or("?")),
        ("failures", "3"),
        ("window_s", "600"),
        ("reauth_service", sudo_service.as_str()),
        ("reauth_tty", a.tty().as_str()),
    ] {
        assert_eq!(alert.field(key).as_deref(), Some(value), "{key}: {}", alert.raw);
    }
    assert!(alert.field("pid").is_some() && alert.field("mac").is_some(), "chained like every record: {}", alert.raw);
    assert_received_at(&h, &alert, "warning", AUTHPRIV_WARNING);
    for failed in records(&h, "reauth_failed", &[("session", &id)]) {
        assert_received_at(&h, &failed, "notice", AUTHPRIV_NOTICE);
    }

    wrong_sudo(&a);
    wait_for(STEP, "the fourth reauth_failed", || {
        let n = records(&h, "reauth_failed", &[("session", &id)]).len();
        if n == 4 { Ok(()) } else { Err(format!("{n}")) }
    });
    std::thread::sleep(Duration::from_secs(1));
    let alerts = records(&h, "alert", &[]);
    assert_eq!(alerts.len(), 1, "one alert per session per window: {:?}", raw(&alerts));
    assert!(records(&h, "session_end", &[("session", &id)]).is_empty(), "off by default: the session stays");
    assert!(a.client.is_alive(), "the session stays");

    // The report on the same trail: one reauth_failures item for the session, its
    // evidence the first three reauth_failed lines (file:line).
    let log = h.rsyslog().auth_log_path().display().to_string();
    let out = h.vigild().vigilctl(&["audit", "report", &log, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report --json ({e}): {out:?}"));
    let items: Vec<&serde_json::Value> =
        report["unusual"]["items"].as_array().unwrap().iter().filter(|i| i["rule"] == "reauth_failures").collect();
    assert_eq!(items.len(), 1, "{report}");
    assert_eq!(items[0]["session"].as_u64(), id.parse().ok(), "{report}");
    let text = std::fs::read_to_string(&log).unwrap();
    let evidence = items[0]["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 3, "{report}");
    for place in evidence {
        let line: usize = place.as_str().unwrap().rsplit_once(':').unwrap().1.parse().unwrap();
        assert!(text.lines().nth(line - 1).unwrap().contains("event=reauth_failed"), "{place}");
    }

    // The report's thresholds are flags (vigild's alert above stays at its 3 in 10
    // minutes): the same four failures, counted at 2, 4 and 5, and in a window one second
    // shorter than their span (the lines' own whole seconds) and as long as it.
    let failed: Vec<(String, i64)> = text
        .lines()
        .enumerate()
        .map(|(i, raw)| (i + 1, LogLine::parse(raw)))
        .filter(|(_, l)| l.is_event("vigild", "reauth_failed") && l.has("session", &id))
        .map(|(n, l)| (format!("{log}:{n}"), i64::from(l.second_of_day().unwrap_or_else(|| panic!("a syslog time: {}", l.raw)))))
        .collect();
    assert_eq!(failed.len(), 4, "{text}");
    let places: Vec<&str> = failed.iter().map(|(p, _)| p.as_str()).collect();
    let span = (failed[3].1 - failed[0].1).rem_euclid(86_400);
    let bursts = |failures: &str, window: &str| -> Vec<serde_json::Value> {
        let out = h.vigild().vigilctl(&["audit", "report", &log, "--json", "--reauth-failures", failures, "--reauth-window", window]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report --json ({e}): {out:?}"));
        assert_eq!(report["unusual"]["thresholds"]["reauth_failures"].to_string(), failures, "the threshold given: {report}");
        let items = report["unusual"]["items"].as_array().unwrap().iter();
        items.filter(|i| i["rule"] == "reauth_failures").map(|i| i["evidence"].clone()).collect()
    };
    assert_eq!(bursts("2", "1h"), vec![serde_json::json!(places[..2]), serde_json::json!(places[2..])], "two bursts of two");
    assert_eq!(bursts("4", "1h"), vec![serde_json::json!(places)], "one burst of four");
    assert!(bursts("5", "1h").is_empty(), "four failures are not five");
    assert_eq!(bursts("4", &format!("{span}s")), vec![serde_json::json!(places)], "a window as long as their span ({span} s)");
    if span > 0 {
        assert!(bursts("4", &format!("{}s", span - 1)).is_empty(), "a window one second shorter than their span ({span} s)");
    }
}

/// `on_reauth_failures = "end"`: the third wrong sudo password ends the session as an
/// admin's terminate would: the alert, then `session_end reason=reauth_failures` with its
/// processes, the ssh client disconnected, and no process of the user left (a background
/// job included).
#[test]
fn on_reauth_failures_end_ends_the_session_at_the_third_failed_password() {
    require_root!();
    let config = format!("{CONFIG}on_reauth_failures = \"end\"\n");
    let (h, user, _) = with_sshd_and_sudo(&config, "failend");
    let a = login(&h, &user);
    let id = a.id().to_string();
    a.client.send_line("sleep 600 &");
    wait_for(STEP, "the background job", || {
        let jobs = vigil_e2e::procfs::processes_of_uid(user.uid).into_iter().filter(|p| p.cmdline == "sleep 600").count();
        if jobs == 1 { Ok(()) } else { Err(format!("{jobs} jobs")) }
    });
    for _ in 0..REAUTH_FAILURES_ALERT - 1 {
        wrong_sudo(&a);
    }
    assert!(a.client.is_alive(), "two failures end nothing");
    // The third sudo is ended with the session: its answer is never printed.
    a.client.send_line(&format!("echo not-the-password | sudo -S -p '' true; echo {}", tag()));
    let alert = h.wait_for_event(STEP, "vigild", "alert", &[("kind", "reauth_failures"), ("session", &id)]);
    let end = h.wait_for_event(STEP, "vigild", "session_end", &[("session", &id), ("reason", "reauth_failures")]);
    assert!(end.field("processes").is_some_and(|n| n != "0"), "{}", end.raw);
    let seq = |l: &LogLine| l.field("seq").and_then(|s| s.parse::<u64>().ok());
    assert!(seq(&alert) < seq(&end), "the alert first: {} / {}", alert.raw, end.raw);
    h.vigild().wait_session_gone(a.id(), STEP);
    wait_for(STEP, "the ssh client to be disconnected", || if a.client.is_alive() { Err("connected".to_string()) } else { Ok(()) });
    wait_for(STEP, "every process of the user to be gone", || {
        let left = vigil_e2e::procfs::processes_of_uid(user.uid);
        if left.is_empty() { Ok(()) } else { Err(format!("{:?}", left.iter().map(|p| (&p.pid, &p.cmdline)).collect::<Vec<_>>())) }
    });
    assert_eq!(records(&h, "session_end", &[("session", &id)]).len(), 1, "one end");
}

/// `on_reauth_failures = "lock"`: the third wrong sudo password locks the user for ten
/// minutes (`lock_start by=vigild`), which ends the session (`session_end reason=lock`);
/// a new login of the user is refused at the account stage, and the refusal is an
/// `alert kind=locked_login` at warning.
#[test]
fn on_reauth_failures_lock_locks_the_user_and_a_login_then_is_an_alert() {
    require_root!();
    let config = format!("{CONFIG}on_reauth_failures = \"lock\"\n");
    let mut h = harness(&config);
    let module = paths::pam_module().display().to_string();
    let args = h.vigil_args().to_args();
    let stack = unix_stack().account("[perm_denied=die default=ignore]", &module, &args).session("required", &module, &args);
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user("faillock");
    h.install_sudo(&user, &reauth_stack(&paths::pam_module(), &h.vigil_args()));
    let a = login(&h, &user);
    let id = a.id().to_string();
    for _ in 0..REAUTH_FAILURES_ALERT - 1 {
        wrong_sudo(&a);
    }
    a.client.send_line(&format!("echo not-the-password | sudo -S -p '' true; echo {}", tag()));
    h.wait_for_event(STEP, "vigild", "alert", &[("kind", "reauth_failures"), ("session", &id)]);
    let lock = h.wait_for_event(STEP, "vigild", "lock_start", &[("user", &user.name), ("by", "vigild"), ("sessions", "1")]);
    assert_ne!(lock.field("until").as_deref(), Some("none"), "a lock for a while: {}", lock.raw);
    h.wait_for_event(STEP, "vigild", "session_end", &[("session", &id), ("reason", "lock")]);
    wait_for(STEP, "the ssh client to be disconnected", || if a.client.is_alive() { Err("connected".to_string()) } else { Ok(()) });

    let client = h.ssh_command_with(&user, &SshOpts::default().command("true"));
    let status = client.wait_exit(STEP).expect("the refused login ends");
    assert!(!status.success(), "the locked user's login is refused");
    let alert = h.wait_for_event(STEP, "vigild", "alert", &[("kind", "locked_login"), ("user", &user.name)]);
    assert_received_at(&h, &alert, "warning", 84);
}

/// An ordinary user calling a root-only method in a loop: one `alert kind=refused_calls`
/// at the 10th refusal within a minute, with the user's uid and the count, at warning;
/// the `call_refused` records (one per user and method a minute) at notice; more
/// refusals within the minute make no second alert.
#[test]
fn a_burst_of_refused_calls_from_an_ordinary_user_is_one_alert_at_warning() {
    require_root!();
    let h = harness(CONFIG);
    let user = h.create_user("burst");
    let uid = user.uid.to_string();
    for i in 0..REFUSED_CALLS_ALERT + 2 {
        let out = h.vigild().vigilctl_as(&user.name, &["reload"]);
        assert!(!out.status.success(), "reload #{i} as an ordinary user is refused: {out:?}");
    }
    let alert = h.wait_for_event(STEP, "vigild", "alert", &[("kind", "refused_calls"), ("uid", &uid)]);
    assert_eq!(alert.field("count").as_deref(), Some("10"), "{}", alert.raw);
    assert_eq!(alert.field("window_s").as_deref(), Some("60"), "{}", alert.raw);
    assert_eq!(alert.field("method").as_deref(), Some("Reload"), "{}", alert.raw);
    assert!(alert.field("pid").is_some(), "{}", alert.raw);
    assert_received_at(&h, &alert, "warning", AUTHPRIV_WARNING);
    let refused = records(&h, "call_refused", &[("uid", &uid)]);
    assert_eq!(refused.len(), 1, "once per user and method a minute: {:?}", raw(&refused));
    assert_received_at(&h, &refused[0], "notice", AUTHPRIV_NOTICE);
    std::thread::sleep(Duration::from_secs(1));
    let alerts = records(&h, "alert", &[]);
    assert_eq!(alerts.len(), 1, "one alert per uid a minute: {:?}", raw(&alerts));
}

/// `touch -a` on the session's own pty in the background (no process read):
/// `activity_suspect reason=not_a_read`, and right after it an `alert
/// kind=activity_suspect` with the session's and the suspect's fields, at warning.
#[test]
fn an_activity_suspect_is_also_an_alert_at_warning() {
    require_root!();
    let mut h = harness(CONFIG);
    let module = paths::pam_module().display().to_string();
    let stack = unix_stack().session("required", &module, &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user("suspect");
    let a = login(&h, &user);
    let (id, tty) = (a.id().to_string(), a.tty());
    a.client.send_line("T=$(tty); (for i in $(seq 10); do touch -a $T; sleep 2; done) >/dev/null 2>&1 &");
    let fields = [("session", id.as_str()), ("reason", "not_a_read"), ("suspect_tty", tty.as_str())];
    let suspect = h.wait_for_event(Duration::from_secs(30), "vigild", "activity_suspect", &fields);
    let alert = h.wait_for_event(STEP, "vigild", "alert", &[("kind", "activity_suspect"), fields[0], fields[1], fields[2]]);
    for key in ["user", "source", "foreground", "accesses"] {
        assert_eq!(alert.field(key), suspect.field(key), "{key}: {} / {}", suspect.raw, alert.raw);
    }
    assert_received_at(&h, &alert, "warning", AUTHPRIV_WARNING);
    assert_received_at(&h, &suspect, "notice", AUTHPRIV_NOTICE);
}
