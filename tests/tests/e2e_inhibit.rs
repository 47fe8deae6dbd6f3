//! End-to-end tests of idle inhibitors and `vigilctl audit report` (issue 11): a real
//! sshd whose session stack ends with `pam_vigil.so`, vigild with timeouts of seconds,
//! interactive ssh sessions in tmux ptys; the user runs `vigilctl inhibit` in their
//! session. What is checked is what the user and an admin see: the session that
//! outlives its idle timeout, the warning that names the inhibitor, the disconnect once
//! it expires, the refusals on the user's terminal, the records in auth.log, and
//! `audit report` counting what `audit show` lists.
//!
//! Timing: only lower bounds are asserted; upper bounds are generous waits.
//!
//! Needs root and the release build of the workspace: see tests/README.md.

use std::thread::sleep;
use std::time::{Duration, Instant};

use vigil_e2e::login::{Login, login_with};
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::sudo::run_prompted;
use vigil_e2e::{Answer, Harness, LogLine, Prompted, SshOpts, SshdOpts, TestUser, VigildOpts, paths, require_root};

const TIMEOUT: Duration = Duration::from_secs(6);
const INHIBIT_FOR: Duration = Duration::from_secs(14);
const SLACK: Duration = Duration::from_secs(10);
const EARLY: Duration = Duration::from_millis(1000);
const STEP: Duration = Duration::from_secs(10);
const IDLE_WARNING_TEXT: &str = "*** vigil: no input on this session for ";
const INHIBITOR_NOTE: &str = "*** vigil: your idle inhibitor (";
/// A reason that tries to end the record, add fields and clear the admin's screen.
const HOSTILE_WHY: &str = "db \"migration\" reason=cancelled\nevent=session_end reason=idle \u{1b}[2J";

/// rsyslogd, vigild with `idle_timeout = 6s`, `max_inhibit = 20s` (and `"0"` for
/// `forbidden`, when given), sshd with pam_vigil in its session stack.
fn harness(forbidden: Option<&TestUser>, h: Harness) -> Harness {
    harness_with("", forbidden, h)
}

/// [`harness`] with more lines in `[defaults]`.
fn harness_with(defaults: &str, forbidden: Option<&TestUser>, h: Harness) -> Harness {
    let mut h = h;
    let mut config = "[defaults]\nidle_timeout = \"6s\"\nidle_warning = \"3s\"\nkill_grace = \"1s\"\nmax_inhibit = \"20s\"\n".to_string();
    config.push_str(defaults);
    if let Some(user) = forbidden {
        config.push_str(&format!("\n[[policy]]\nname = \"no-inhibit\"\nmatch = {{ users = [\"{}\"] }}\nmax_inhibit = \"0\"\n", user.name));
    }
    h.start_vigild(VigildOpts::default().no_bus().config(&config));
    let module = paths::pam_module().display().to_string();
    let stack = unix_stack().session("required", &module, &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    h
}

fn tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static TAG: AtomicU32 = AtomicU32::new(0);
    format!("i{}", TAG.fetch_add(1, Ordering::Relaxed) + 1)
}

/// `vigilctl ARGS` typed in the session by its user.
#[track_caller]
fn vigilctl_in(h: &Harness, login: &Login, args: &str) -> Prompted {
    vigil_e2e::conformance::vigilctl_ran(&args.split_whitespace().collect::<Vec<_>>());
    let command = format!("{} --socket {} {args}", paths::vigilctl_bin().display(), h.vigild().socket().display());
    run_prompted(&login.client, &tag(), &command, "Password:", &Answer::Interrupt, STEP)
}

fn records(h: &Harness, id: u64, event: &str) -> Vec<LogLine> {
    let id = id.to_string();
    h.auth_log().into_iter().filter(|l| l.is_event("vigild", event) && l.has("session", &id)).collect()
}

#[track_caller]
fn wait_record(h: &Harness, id: u64, event: &str, fields: &[(&str, &str)]) -> LogLine {
    let id = id.to_string();
    let mut all = vec![("session", id.as_str())];
    all.extend_from_slice(fields);
    h.wait_for_event(STEP, "vigild", event, &all)
}

#[track_caller]
fn assert_alive(h: &Harness, login: &Login, when: &str) {
    let ends: Vec<String> = records(h, login.id(), "session_end").into_iter().map(|l| l.raw).collect();
    assert!(login.client.is_alive() && ends.is_empty(), "{when}: session {} ended: {ends:?}\n{}", login.id(), login.client.capture());
}

/// `audit report --json` totals against the events `audit show --json --event E` lists
/// (vigild's, with the reason the column counts). The two read the trail one after the
/// other while rsyslogd may still be appending a record (two sessions ending in the same
/// second), so a difference is read again, a bounded number of times, before it fails.
#[track_caller]
fn assert_report_matches_show(h: &Harness) {
    let log = h.path("auth.log").display().to_string();
    let mut mismatch = String::new();
    for _ in 0..10 {
        match report_against_show(h, &log) {
            Ok(()) => {
                let text = h.vigild().vigilctl(&["audit", "report", &log]);
                let text = String::from_utf8_lossy(&text.stdout);
                assert!(text.contains("idle ends by hour of day:") && text.contains("chain per host"), "{text}");
                eprintln!("audit report:\n{text}");
                return;
            }
            Err(why) => mismatch = why,
        }
        sleep(Duration::from_millis(500));
    }
    panic!("{mismatch}");
}

/// The first column whose report total differs from what show lists, if any.
fn report_against_show(h: &Harness, log: &str) -> Result<(), String> {
    let out = h.vigild().vigilctl(&["audit", "report", log, "--json"]);
    assert!(out.status.success(), "audit report: {out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let columns = [
        ("logins", "session_open", None),
        ("idle_ends", "session_end", Some("idle")),
        ("max_age_ends", "session_end", Some("max_age")),
        ("inhibitors", "inhibit_start", None),
        ("refused", "call_refused", None),
    ];
    for (column, event, reason) in columns {
        let shown = h.vigild().vigilctl(&["audit", "show", log, "--json", "--event", event]);
        assert!(shown.status.success(), "audit show: {shown:?}");
        let mut n = 0u64;
        for line in String::from_utf8_lossy(&shown.stdout).lines() {
            let block: serde_json::Value = serde_json::from_str(line).expect("show JSON");
            for e in block["events"].as_array().into_iter().flatten() {
                if e["tag"] == "vigild" && reason.is_none_or(|r| e["fields"]["reason"] == r) {
                    n += 1;
                }
            }
        }
        if report["total"][column].as_u64() != Some(n) {
            return Err(format!("{column}: report {} vs show {n}", report["total"]));
        }
    }
    Ok(())
}

#[test]
fn inhibited_idle_session_survives_its_timeout_and_ends_when_the_inhibitor_expires() {
    require_root!();
    let h = harness(None, Harness::with_syslog());
    let user = h.create_user("inhibit");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let id = login.id();

    let why = HOSTILE_WHY.replace('\n', "\\n").replace('\u{1b}', "\\e");
    let run = vigilctl_in(&h, &login, &format!("inhibit --for {}s --why \"$(printf '%b' '{why}')\"", INHIBIT_FOR.as_secs()));
    let taken = Instant::now();
    assert_eq!(run.rc, 0, "inhibit: {run:?}");
    assert!(run.output.iter().any(|l| l.contains("will not be ended for idleness")), "{run:?}");

    // The reason lands as one value of one record: no field, line or escape forged.
    let start = wait_record(&h, id, "inhibit_start", &[]);
    assert_eq!(start.field("why").as_deref(), Some(HOSTILE_WHY), "{}", start.raw);
    assert!(!start.raw.contains('\u{1b}'), "{}", start.raw);
    let count = |key: &str| start.fields().iter().filter(|(k, _)| k == key).count();
    assert_eq!((count("event"), count("reason"), count("why")), (1, 0, 1), "{}", start.raw);
    assert_eq!(start.field("duration_s").as_deref(), Some("14"), "{}", start.raw);

    // Root's list marks it; the user's status shows it (typed: input, before the wait).
    let list = h.vigild().vigilctl(&["list"]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.contains(" * ") && list.contains("inhibited") && !list.contains('\u{1b}'), "{list}");
    let status = vigilctl_in(&h, &login, "status");
    assert!(status.output.iter().any(|l| l.contains("inhibited:")), "{status:?}");
    let last_input = Instant::now();

    // Idle well past its timeout: kept, and not warned before the inhibitor runs out.
    let watch_until = taken + INHIBIT_FOR - Duration::from_secs(4);
    for _ in 0..200 {
        if Instant::now() >= watch_until {
            break;
        }
        assert_alive(&h, &login, &format!("{:?} after the last input", last_input.elapsed()));
        assert!(records(&h, id, "idle_warning").is_empty(), "warned while inhibited");
        sleep(Duration::from_millis(250));
    }
    assert!(last_input.elapsed() > TIMEOUT + Duration::from_secs(2), "idle longer than the timeout");

    // The warning names the inhibitor; the session ends once it has expired.
    let screen = login.client.wait_for(SLACK, "the idle warning", |s| s.contains(IDLE_WARNING_TEXT).then(|| s.to_string()));
    assert!(screen.contains(INHIBITOR_NOTE) && screen.contains("expires in"), "{screen}");
    login.client.wait_exit(SLACK);
    let ended_after = taken.elapsed();
    assert!(ended_after + EARLY >= INHIBIT_FOR, "ended {ended_after:?} after the inhibitor was taken");
    let warning = wait_record(&h, id, "idle_warning", &[("inhibitor", "expiring")]);
    let expired = wait_record(&h, id, "inhibit_end", &[("reason", "expired")]);
    let end = wait_record(&h, id, "session_end", &[("reason", "idle")]);
    let log = h.auth_log();
    let at = |l: &LogLine| log.iter().position(|x| x == l);
    assert!(at(&warning) < at(&expired) && at(&expired) < at(&end), "warning, expiry, end in that order");
    eprintln!(
        "inhibit: session ended {ended_after:?} after a {INHIBIT_FOR:?} inhibitor (idle timeout {TIMEOUT:?}); late_ms={:?}",
        end.field("late_ms")
    );
    assert_report_matches_show(&h);
}

#[test]
fn requests_over_max_inhibit_or_forbidden_are_refused_and_cancel_ends_one() {
    require_root!();
    let base = Harness::with_syslog();
    let forbidden = base.create_user("noinh");
    let h = harness(Some(&forbidden), base);
    let user = h.create_user("inhmax");
    let a = login_with(&h, &user, &SshOpts::default(), STEP);
    let b = login_with(&h, &forbidden, &SshOpts::default(), STEP);

    let over = vigilctl_in(&h, &a, "inhibit --for 1h --why 'too long'");
    assert_ne!(over.rc, 0, "{over:?}");
    assert!(over.output.iter().any(|l| l.contains("longer than max_inhibit (20s")), "{over:?}");
    let zero = vigilctl_in(&h, &b, "inhibit --for 5s --why 'anything'");
    assert_ne!(zero.rc, 0, "{zero:?}");
    assert!(zero.output.iter().any(|l| l.contains("forbidden") && l.contains("max_inhibit = \"0\"")), "{zero:?}");
    let long_why = vigilctl_in(&h, &a, &format!("inhibit --for 5s --why {}", "x".repeat(201)));
    assert_ne!(long_why.rc, 0, "{long_why:?}");
    assert!(records(&h, a.id(), "inhibit_start").is_empty() && records(&h, b.id(), "inhibit_start").is_empty());

    let ok = vigilctl_in(&h, &a, "inhibit --for 20s --why backup");
    assert_eq!(ok.rc, 0, "{ok:?}");
    wait_record(&h, a.id(), "inhibit_start", &[("why", "backup")]);
    let cancel = vigilctl_in(&h, &a, "inhibit --cancel");
    assert_eq!(cancel.rc, 0, "{cancel:?}");
    assert!(cancel.output.iter().any(|l| l.contains("idle inhibitor cancelled")), "{cancel:?}");
    let end = wait_record(&h, a.id(), "inhibit_end", &[("reason", "cancelled"), ("by", "user")]);
    assert_eq!(end.field("why").as_deref(), Some("backup"), "{}", end.raw);
    // The last input of session a is the next command's typing: after this instant, so
    // the idle end comes at least TIMEOUT after it (measured after the other user's
    // command below instead, a loaded machine's round trips counted as idleness).
    let cancelled = Instant::now();
    let again = vigilctl_in(&h, &a, "inhibit --cancel");
    assert!(again.output.iter().any(|l| l.contains("no idle inhibitor")), "{again:?}");

    // Another user's session is not theirs to touch.
    let other = vigilctl_in(&h, &b, &format!("inhibit --cancel --session {}", a.id()));
    assert_ne!(other.rc, 0, "{other:?}");

    // Cancelled: idleness counts again, the session ends on its idle timeout.
    a.client.wait_exit(TIMEOUT + SLACK);
    assert!(cancelled.elapsed() + EARLY >= TIMEOUT, "ended {:?} after the cancel", cancelled.elapsed());
    wait_record(&h, a.id(), "session_end", &[("reason", "idle")]);
    // Session b idles out in the same second: its end too is in the trail before the
    // report and show are compared.
    wait_record(&h, b.id(), "session_end", &[("reason", "idle")]);
    assert_report_matches_show(&h);
}

/// vigild killed with SIGKILL while a session is inhibited, then started again (as
/// `Restart=on-failure` does): the restored session keeps its inhibitor, outlives its
/// idle timeout, and ends once the inhibitor expires.
#[test]
fn an_inhibitor_survives_a_sigkill_of_vigild() {
    require_root!();
    let h = harness(None, Harness::with_syslog());
    let user = h.create_user("inhkill");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let id = login.id();
    let run = vigilctl_in(&h, &login, &format!("inhibit --for {}s --why 'nightly import'", INHIBIT_FOR.as_secs()));
    let taken = Instant::now();
    assert_eq!(run.rc, 0, "inhibit: {run:?}");
    wait_record(&h, id, "inhibit_start", &[("why", "nightly import")]);

    h.vigild().signal(nix::sys::signal::Signal::SIGKILL);
    h.vigild().wait_exit(STEP).expect("vigild to die of SIGKILL");
    h.vigild().stop(); // reaps; nothing else
    h.vigild().start();
    wait_record(&h, id, "session_restored", &[]);
    let listed = h.vigild().vigilctl(&["list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("nightly import"), "the restored session lists its inhibitor: {listed}");

    // Idle past its timeout after the restart: kept until the inhibitor runs out.
    let watch_until = taken + INHIBIT_FOR - Duration::from_secs(4);
    for _ in 0..200 {
        if Instant::now() >= watch_until {
            break;
        }
        assert_alive(&h, &login, &format!("{:?} after the inhibitor was taken", taken.elapsed()));
        sleep(Duration::from_millis(250));
    }
    login.client.wait_exit(SLACK + TIMEOUT);
    let ended_after = taken.elapsed();
    assert!(ended_after + EARLY >= INHIBIT_FOR, "ended {ended_after:?} after the inhibitor was taken");
    wait_record(&h, id, "inhibit_end", &[("reason", "expired")]);
    wait_record(&h, id, "session_end", &[("reason", "idle")]);
    assert_eq!(records(&h, id, "inhibit_start").len(), 1, "no second inhibit_start after the restart");
    eprintln!("inhibitor across SIGKILL: session ended {ended_after:?} after a {INHIBIT_FOR:?} inhibitor");
}

/// `while sleep 540; do vigilctl inhibit --for 10m; done` in small: a background job
/// in the session takes one inhibitor after another without a key pressed. With
/// `max_inhibit_total = 30s` the time they cover adds up (a replaced one counts for the
/// time it ran), also across a SIGKILL of vigild between two of them, and the request
/// past it is refused on the user's terminal and recorded as `call_refused
/// reason=inhibit_budget_spent`. Input starts a new count.
#[test]
fn back_to_back_inhibitors_are_bounded_in_total_across_a_sigkill() {
    require_root!();
    let h = harness_with("max_inhibit_total = \"30s\"\n", None, Harness::with_syslog());
    let user = h.create_user("inhtot");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let id = login.id();

    let first = vigilctl_in(&h, &login, "inhibit --for 20s --why first");
    assert_eq!(first.rc, 0, "{first:?}");
    wait_record(&h, id, "inhibit_start", &[("why", "first")]);

    // Typed (input: the count starts here, holding the ~19 s `first` still covers); then
    // nothing is typed until the job has made both requests.
    let out = user.home.join("budget.out");
    let vigilctl = format!("{} --socket {}", paths::vigilctl_bin().display(), h.vigild().socket().display());
    login.client.send_line(&format!(
        "(sleep 8; {vigilctl} inhibit --for 20s --why second; echo rc2=$?; sleep 8; {vigilctl} inhibit --for 20s --why third; \
         echo rc3=$?) > {} 2>&1 &",
        out.display()
    ));
    let typed = Instant::now();

    // `second` at +8 s: 19 - 12 given back by `first` + 20 = 27-28 s of 30: granted.
    let second = wait_record(&h, id, "inhibit_start", &[("why", "second")]);
    let inhibited: u64 = second.field("inhibited_s").and_then(|s| s.parse().ok()).expect("inhibited_s");
    assert!((25..=30).contains(&inhibited), "inhibited_s={inhibited}: {}", second.raw);

    // vigild dies and comes back between the two: the count is the session's, saved with it.
    h.vigild().signal(nix::sys::signal::Signal::SIGKILL);
    h.vigild().wait_exit(STEP).expect("vigild to die of SIGKILL");
    h.vigild().stop(); // reaps; nothing else
    h.vigild().start();
    wait_record(&h, id, "session_restored", &[]);
    assert!(typed.elapsed() < Duration::from_secs(15), "restarted {:?} after the job began: too late for the test", typed.elapsed());

    // `third` at +16 s: 28 - 12 given back by `second` + 20 = 36 s: refused.
    let job = vigil_e2e::wait_for(STEP + STEP, "the job's second request", || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("rc3=") { Ok(text) } else { Err(text) }
    });
    assert!(job.contains("rc2=0"), "{job}");
    assert!(!job.contains("rc3=0"), "the third inhibitor must be refused: {job}");
    assert!(job.contains("max_inhibit_total (30s") && job.contains("since its last activity"), "{job}");
    let refused = h.wait_for_event(STEP, "vigild", "call_refused", &[("reason", "inhibit_budget_spent"), ("method", "Inhibit")]);
    assert_eq!(refused.field("uid"), Some(user.uid.to_string()), "{}", refused.raw);
    assert!(records(&h, id, "inhibit_start").iter().all(|l| l.field("why").as_deref() != Some("third")));
    assert_alive(&h, &login, "under `second`");

    // Someone at the keyboard: a new count, and the same request is granted. vigild
    // sees input at its next look at the terminal; a person's typing of the command
    // spans that look, tmux's whole line at once does not: wait for the look.
    let before = h.vigild().session(id).map(|s| s.last_activity);
    login.client.press_key();
    vigil_e2e::wait_for(STEP, "vigild to see the key press", || {
        let now = h.vigild().session(id).map(|s| s.last_activity);
        if now != before { Ok(()) } else { Err(format!("last_activity still {now:?}")) }
    });
    let fourth = vigilctl_in(&h, &login, "inhibit --for 20s --why fourth");
    assert_eq!(fourth.rc, 0, "input renews the budget: {fourth:?}");
    let start = wait_record(&h, id, "inhibit_start", &[("why", "fourth")]);
    eprintln!("inhibit budget: {}\n{}\n{job}", second.raw, start.raw);
    assert_report_matches_show(&h);
}

/// `vigilctl inhibit --help` shows `--for` and `--why` as what they are, required (unless
/// `--cancel`), in its usage line, not among optional flags only.
#[test]
fn inhibit_help_shows_its_required_flags_in_the_usage() {
    vigil_e2e::conformance::vigilctl_ran(&["inhibit", "--help"]);
    let out = std::process::Command::new(paths::vigilctl_bin()).args(["inhibit", "--help"]).output().expect("run vigilctl");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("Usage: vigilctl inhibit --for DURATION --why TEXT\n"), "{help}");
    assert!(help.contains("vigilctl inhibit --cancel [--session ID]"), "{help}");
}
