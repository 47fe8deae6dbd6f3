//! Documented promises no other test showed (tests/conformance.toml names these): the
//! vigilctl views and filters (`show --json`, `daemon`, `audit show --user/--since/
//! --until`, `audit report --key/--since/--until`), policies matched on remote hosts and
//! on having no terminal, a file in the sessions directory that vigild did not write, and
//! `audit report`'s unusual section on a real trail, with its threshold flags.

use std::time::Duration;

use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{Harness, LogLine, VigildOpts, require_root, wait_for};

const LOG_WAIT: Duration = Duration::from_secs(10);
/// PAM_TTY of the sessions here: what sshd sets for a login without a pty. A pts name
/// would be another process's terminal on a busy machine (a `/dev/pts/9` that exists is
/// claimed by the session, and a `tty = false` block no longer matches).
const TTY: &str = "ssh";
const DOC_NET_HOST: &str = "203.0.113.7";
const OTHER_HOST: &str = "198.51.100.7";
/// Far enough apart that every record of the run falls between them.
const LONG_AGO: &str = "2000-01-01T00:00:00Z";
const FAR_AHEAD: &str = "2999-01-01T00:00:00Z";

fn stdout(out: &std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", vigil_e2e::process::describe_output(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Opens and closes one session of `user` and waits for its `session_close` record.
fn one_session(h: &Harness, service: &str, user: &str, rhost: &str) -> LogLine {
    let session = h.open_pam_session(&h.pam_host(service, user).rhost(rhost).tty(TTY));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "{}", session.stderr_text());
    let id = session.session_id_u64().to_string();
    let (close_rc, _) = session.close();
    assert_eq!(close_rc, Some(PAM_SUCCESS));
    h.wait_for_event(LOG_WAIT, "vigild", "session_close", &[("session", &id)]);
    h.wait_for_event(LOG_WAIT, "vigild", "session_open", &[("session", &id)])
}

#[test]
fn show_json_and_daemon_describe_what_vigild_holds() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    let user = h.create_user("views");
    let service = h.install_vigil_service("views", &h.vigil_args());
    let session = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(DOC_NET_HOST));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "{}", session.stderr_text());
    let id = session.session_id_u64();

    let shown = stdout(&h.vigild().vigilctl(&["show", &id.to_string(), "--json"]), "vigilctl show --json");
    let value: serde_json::Value = serde_json::from_str(&shown).unwrap_or_else(|e| panic!("show --json is JSON ({e}): {shown}"));
    assert_eq!(value["id"].as_u64(), Some(id), "{shown}");
    assert_eq!(value["user"].as_str(), Some(user.name.as_str()), "{shown}");
    assert_eq!(value["rhost"].as_str(), Some(DOC_NET_HOST), "{shown}");

    let daemon = stdout(&h.vigild().vigilctl(&["daemon"]), "vigilctl daemon");
    assert!(daemon.starts_with("vigild "), "the version first: {daemon}");
    assert!(daemon.contains("sessions: 1"), "the session count: {daemon}");
    assert!(daemon.contains(&h.vigild().config_path().display().to_string()), "the config file: {daemon}");
    session.close();
}

#[test]
fn audit_show_and_report_filter_by_user_and_by_time() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    let alice = h.create_user("filta");
    let bob = h.create_user("filtb");
    let service = h.install_vigil_service("filter", &h.vigil_args());
    one_session(&h, &service, &alice.name, DOC_NET_HOST);
    one_session(&h, &service, &bob.name, DOC_NET_HOST);
    let log = h.rsyslog().auth_log_path().display().to_string();
    let key = h.vigild().state_dir().join("audit").join("audit-initial.key").display().to_string();

    let alices = stdout(&h.vigild().vigilctl(&["audit", "show", &log, "--user", &alice.name]), "audit show --user");
    assert!(alices.contains(&alice.name) && !alices.contains(&bob.name), "--user shows that user's sessions only:\n{alices}");

    let window =
        stdout(&h.vigild().vigilctl(&["audit", "show", &log, "--since", LONG_AGO, "--until", FAR_AHEAD]), "audit show --since --until");
    assert!(window.contains(&alice.name) && window.contains(&bob.name), "a window around the run shows both:\n{window}");
    let later = stdout(&h.vigild().vigilctl(&["audit", "show", &log, "--since", FAR_AHEAD]), "audit show --since (future)");
    assert!(!later.contains(&alice.name) && !later.contains(&bob.name), "nothing after a time to come:\n{later}");
    let earlier = stdout(&h.vigild().vigilctl(&["audit", "show", &log, "--until", LONG_AGO]), "audit show --until (past)");
    assert!(!earlier.contains(&alice.name), "nothing before the run:\n{earlier}");

    let report = h.vigild().vigilctl(&["audit", "report", &log, "--key", &key, "--since", LONG_AGO, "--until", FAR_AHEAD, "--json"]);
    let report = stdout(&report, "audit report --key --since --until");
    let value: serde_json::Value = serde_json::from_str(&report).unwrap_or_else(|e| panic!("report --json is JSON ({e}): {report}"));
    let text = value.to_string();
    assert!(text.contains(&alice.name) && text.contains(&bob.name), "both users are counted:\n{report}");
    let empty =
        stdout(&h.vigild().vigilctl(&["audit", "report", &log, "--key", &key, "--since", FAR_AHEAD, "--json"]), "audit report (future)");
    assert!(!empty.contains(&alice.name), "a window with no record counts no user:\n{empty}");
}

#[test]
fn policies_match_on_the_remote_host_and_on_having_no_terminal() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(
        "[[policy]]\nname = \"doc-net\"\nmatch = { rhosts = [\"203.0.113.0/24\"] }\nidle_timeout = \"2h\"\n\n\
         [[policy]]\nname = \"no-terminal\"\nmatch = { tty = false }\nnotty_idle_timeout = \"3h\"\n",
    ));
    let user = h.create_user("match");
    let service = h.install_vigil_service("match", &h.vigil_args());
    let policy_of = |rhost: &str| {
        // pam_host's sessions hold no terminal (PAM_TTY alone is not one): `tty = true`
        // under a real sshd pty is e2e_rare_events' policy switch.
        let open = one_session(&h, &service, &user.name, rhost);
        open.field("policy").unwrap_or_else(|| panic!("session_open names its policy: {}", open.raw))
    };
    assert_eq!(policy_of(DOC_NET_HOST), "doc-net", "a login from the documentation network");
    assert_eq!(policy_of(OTHER_HOST), "no-terminal", "from elsewhere, without a terminal: the tty = false block");
}

#[test]
fn a_file_in_the_sessions_directory_that_vigild_did_not_write_is_recorded_and_removed() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    h.wait_for_event(LOG_WAIT, "vigild", "daemon_start", &[]);
    h.vigild().stop();
    let sessions = h.vigild().state_dir().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let stray = sessions.join("4242");
    std::fs::write(&stray, b"not a session vigild wrote\n").unwrap();
    h.vigild().start();
    let record = h.wait_for_event(LOG_WAIT, "vigild", "session_file_unreadable", &[]);
    assert_eq!(record.field("path").as_deref(), Some(stray.to_str().unwrap()), "{}", record.raw);
    assert!(record.field("error").is_some_and(|e| !e.is_empty()), "{}", record.raw);
    wait_for(LOG_WAIT, "the stray file removed", || if stray.exists() { Err("still there".to_string()) } else { Ok(()) });
}

#[test]
fn audit_report_lists_what_is_unusual_with_its_lines() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    let user = h.create_user("odd");
    let service = h.install_vigil_service("odd", &h.vigil_args());
    one_session(&h, &service, &user.name, DOC_NET_HOST);
    let second = one_session(&h, &service, &user.name, OTHER_HOST);
    let second_id: u64 = second.field("session").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{}", second.raw));
    // A session held open 4 s (nothing unusual by the default thresholds).
    let held = h.open_pam_session(&h.pam_host(&service, &user.name).rhost(DOC_NET_HOST).tty(TTY));
    assert_eq!(held.open_rc(), PAM_SUCCESS, "{}", held.stderr_text());
    let held_id = held.session_id_u64();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(held.close().0, Some(PAM_SUCCESS));
    h.wait_for_event(LOG_WAIT, "vigild", "session_close", &[("session", &held_id.to_string())]);
    // A non-root user's terminate is refused (root only) and recorded.
    let refused = h.vigild().vigilctl_as(&user.name, &["terminate", "1"]);
    assert!(!refused.status.success(), "terminate by a user is refused: {}", vigil_e2e::process::describe_output(&refused));
    let call = h.wait_for_event(LOG_WAIT, "vigild", "call_refused", &[("reason", "root_only")]);
    let log = h.rsyslog().auth_log_path();
    let log_text = std::fs::read_to_string(log).unwrap();
    let line_of = |raw: &str| {
        log_text.lines().position(|l| l.contains(raw.trim_end())).map(|i| i + 1).unwrap_or_else(|| panic!("{raw} not in the file"))
    };
    let log = log.display().to_string();
    let place = |raw: &str| format!("{log}:{}", line_of(raw));

    let out = stdout(&h.vigild().vigilctl(&["audit", "report", &log, "--json"]), "audit report --json");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("report --json is JSON ({e}): {out}"));
    let items = value["unusual"]["items"].as_array().unwrap_or_else(|| panic!("an unusual section: {out}"));
    let of = |rule: &str| items.iter().filter(|i| i["rule"] == rule).collect::<Vec<_>>();
    let new = of("new_rhost");
    assert_eq!(new.len(), 1, "the second host only: {out}");
    assert_eq!(new[0]["session"].as_u64(), Some(second_id), "{out}");
    assert_eq!(new[0]["user"].as_str(), Some(user.name.as_str()), "{out}");
    assert_eq!(new[0]["evidence"], serde_json::json!([place(&second.raw)]), "{out}");
    assert!(new[0]["detail"].as_str().unwrap().contains(OTHER_HOST), "{out}");
    let calls = of("call_refused");
    assert_eq!(calls.len(), 1, "{out}");
    assert_eq!(calls[0]["evidence"], serde_json::json!([place(&call.raw)]), "{out}");
    assert!(calls[0]["detail"].as_str().unwrap().contains("reason=root_only"), "{out}");
    assert_eq!(items.len(), 2, "nothing else is unusual in this run: {out}");

    let text = stdout(&h.vigild().vigilctl(&["audit", "report", &log]), "audit report");
    assert!(text.contains("\nunusual") || text.contains("unusual (rules"), "{text}");
    assert!(text.contains(&format!("[{}]", place(&second.raw))), "the text names the line too:\n{text}");
    assert!(
        text.contains("\nunusual (new_hour after 7days of a user's logins, reauth_failures 3 within 10m, long_session over 1day"),
        "{text}"
    );
    let thresholds = &value["unusual"]["thresholds"];
    assert_eq!(
        *thresholds,
        serde_json::json!({"new_hour_after_s": 604_800, "reauth_failures": 3, "reauth_window_s": 600, "long_session_s": 86_400}),
        "the documented defaults: {out}"
    );

    // The thresholds are flags. What they should find, from the lines' own times: every
    // session longer than 2 s (the held one at least), and every login at an hour of
    // the day not seen in the user's earlier logins (none, unless the run crossed an hour).
    let opens: Vec<LogLine> = log_text.lines().map(LogLine::parse).filter(|l| l.is_event("vigild", "session_open")).collect();
    assert_eq!(opens.len(), 3, "{log_text}");
    let (mut long, mut new_hour, mut hours) = (Vec::new(), Vec::new(), Vec::new());
    for open in &opens {
        let id = open.field("session").unwrap_or_default();
        let close = log_text
            .lines()
            .map(LogLine::parse)
            .find(|l| l.is_event("vigild", "session_close") && l.has("session", &id))
            .unwrap_or_else(|| panic!("session {id} closed: {log_text}"));
        let second = |l: &LogLine| i64::from(l.second_of_day().unwrap_or_else(|| panic!("a syslog time: {}", l.raw)));
        let (opened, closed) = (second(open), second(&close));
        let hour = opened / 3600;
        if (closed - opened).rem_euclid(86_400) > 2 {
            long.push(serde_json::json!(id.parse::<u64>().unwrap_or_default()));
        }
        if !hours.is_empty() && !hours.contains(&hour) {
            new_hour.push(serde_json::json!([place(&open.raw)]));
        }
        hours.push(hour);
    }
    assert!(long.contains(&serde_json::json!(held_id)), "the held session is over 2 s by its lines: {log_text}");
    let args = ["--long-session", "2s", "--new-hour-after", "0s", "--reauth-failures", "1", "--reauth-window", "1s"];
    let out = stdout(
        &h.vigild().vigilctl(&[&["audit", "report", &log, "--json"][..], &args[..]].concat()),
        "audit report --json with thresholds",
    );
    let value: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("report --json is JSON ({e}): {out}"));
    assert_eq!(
        value["unusual"]["thresholds"],
        serde_json::json!({"new_hour_after_s": 0, "reauth_failures": 1, "reauth_window_s": 1, "long_session_s": 2}),
        "the thresholds given: {out}"
    );
    let items = value["unusual"]["items"].as_array().unwrap_or_else(|| panic!("an unusual section: {out}"));
    let of = |rule: &str| items.iter().filter(|i| i["rule"] == rule).collect::<Vec<_>>();
    let long_found: Vec<serde_json::Value> = of("long_session").iter().map(|i| i["session"].clone()).collect();
    assert_eq!(long_found, long, "a long_session item for each session over 2 s: {out}");
    let held_item = of("long_session").into_iter().find(|i| i["session"] == held_id).unwrap_or_else(|| panic!("{out}"));
    assert!(held_item["detail"].as_str().unwrap_or("").contains("(more than 2s)"), "{out}");
    let new_hour_found: Vec<serde_json::Value> = of("new_hour").iter().map(|i| i["evidence"].clone()).collect();
    assert_eq!(new_hour_found, new_hour, "new_hour after 0s: each login at an hour not seen before, never the first: {out}");
    assert!(of("reauth_failures").is_empty(), "no reauth_failed in this trail, even at 1: {out}");
    assert_eq!((of("new_rhost").len(), of("call_refused").len()), (1, 1), "the other rules are as before: {out}");
    let text = stdout(&h.vigild().vigilctl(&[&["audit", "report", &log][..], &args[..]].concat()), "audit report with thresholds");
    assert!(text.contains("\nunusual (new_hour after 0s of a user's logins, reauth_failures 1 within 1s, long_session over 2s"), "{text}");
    assert!(text.contains("long_session: host ") && text.contains(&format!("session {held_id} ")), "{text}");
}
