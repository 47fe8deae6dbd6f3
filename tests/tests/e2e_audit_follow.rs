//! `vigilctl audit show --follow` on the file a real rsyslogd writes: records already
//! there, records appended while it runs, a logrotate-style rotation (rename, then
//! rsyslogd told to reopen with SIGHUP as postrotate does), `--user` honoured
//! throughout, and SIGTERM ending it with status 0.
//!
//! Needs root and the release build of the workspace: see tests/README.md.

use std::time::Duration;

use nix::sys::signal::Signal;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{Harness, VigildOpts, require_root};

/// How long a record may take from vigild through rsyslogd to the follower's output
/// (rsyslogd's write, a 200 ms poll, the pipe).
const ARRIVAL: Duration = Duration::from_secs(10);
/// How long vigilctl may take to end after SIGTERM (one poll).
const STOP: Duration = Duration::from_secs(5);

const CONFIG: &str = "[defaults]\n\n[audit]\nformat = \"kv\"\nchain = true\n";

/// A text line of the follow for `event` of session `id`.
fn is_record(line: &str, event: &str, id: u64) -> Option<()> {
    (line.contains(&format!("  {event} ")) && line.contains(&format!(" session={id} "))).then_some(())
}

#[test]
fn follow_prints_appended_records_through_a_rotation_and_keeps_its_filter() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let watched = h.create_user("fw");
    let other = h.create_user("fo");
    let service = h.install_vigil_service("fl", &h.vigil_args());
    let auth = h.rsyslog().auth_log_path().to_path_buf();
    let rotated = auth.with_file_name("auth.log.1");

    // A record in the file before the follow starts.
    let first = h.open_pam_session(&h.pam_host(&service, &watched.name).tty("pts/1"));
    let first_id = first.session_id_u64();
    h.wait_for_event(ARRIVAL, "vigild", "session_open", &[("session", &first_id.to_string())]);

    let mut follow = h.spawn_vigilctl(&[
        "audit".as_ref(),
        "show".as_ref(),
        auth.as_os_str(),
        "--follow".as_ref(),
        "--user".as_ref(),
        watched.name.as_ref(),
    ]);
    follow.expect("the session_open already in the file", ARRIVAL, |line| is_record(line, "session_open", first_id));

    // Appended by rsyslogd while it runs: the other user's session (left out by --user),
    // then the watched user's second one and the first one's close.
    let others = h.open_pam_session(&h.pam_host(&service, &other.name).tty("pts/2"));
    let others_id = others.session_id_u64();
    let second = h.open_pam_session(&h.pam_host(&service, &watched.name).tty("pts/3"));
    let second_id = second.session_id_u64();
    follow.expect("the second session's open, appended", ARRIVAL, |line| is_record(line, "session_open", second_id));
    assert_eq!(first.close().0, Some(PAM_SUCCESS));
    follow.expect("the first session's close, appended", ARRIVAL, |line| is_record(line, "session_close", first_id));

    // logrotate: the file renamed, then rsyslogd told to reopen (postrotate's HUP). The
    // probe waits until rsyslogd writes the new auth.log.
    std::fs::rename(&auth, &rotated).unwrap_or_else(|e| panic!("rename {}: {e}", auth.display()));
    h.rsyslog().reopen();
    h.rsyslog().probe(ARRIVAL);
    assert_eq!(second.close().0, Some(PAM_SUCCESS));
    assert_eq!(others.close().0, Some(PAM_SUCCESS));
    let third = h.open_pam_session(&h.pam_host(&service, &watched.name).tty("pts/4"));
    let third_id = third.session_id_u64();
    follow.expect("the second session's close, in the new file", ARRIVAL, |line| is_record(line, "session_close", second_id));
    follow.expect("the third session's open, in the new file", ARRIVAL, |line| is_record(line, "session_open", third_id));
    let in_new_file = h.session_records("session_open", third_id);
    assert_eq!(in_new_file.len(), 1, "the third session's open is in the new auth.log: the follow left the renamed file for it");
    let others_close = h.wait_for_event(ARRIVAL, "vigild", "session_close", &[("session", &others_id.to_string())]);
    assert!(others_close.raw.contains(&other.name), "{}", others_close.raw);

    let status = follow.stop_with(Signal::SIGTERM, STOP);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "SIGTERM ends the follow with status 0; stderr:\n{}", follow.stderr_text());
    let seen = follow.seen().to_vec();
    eprintln!("vigilctl audit show --follow --user {}:\n{}", watched.name, seen.join("\n"));
    assert!(
        seen.iter().all(|line| !line.contains(&format!(" session={others_id} ")) && !line.contains(&other.name)),
        "--user {} shows none of {}'s records, before or after the rotation:\n{}",
        watched.name,
        other.name,
        seen.join("\n")
    );
    let records = |event: &str, id: u64| seen.iter().filter(|line| is_record(line, event, id).is_some()).count();
    for (event, id) in [
        ("session_open", first_id),
        ("session_close", first_id),
        ("session_open", second_id),
        ("session_close", second_id),
        ("session_open", third_id),
    ] {
        assert_eq!(records(event, id), 1, "{event} of session {id} printed once:\n{}", seen.join("\n"));
    }
    assert!(seen.iter().all(|line| line.starts_with("  ") && line.is_ascii()), "no alert here, plain ASCII:\n{}", seen.join("\n"));
    assert_eq!(third.close().0, Some(PAM_SUCCESS));
}

/// A live alert (an ordinary user's refused calls in a burst, AUDIT.md "Alerts") is
/// marked `!` in the follow, filtered with `--event alert`; nothing else is printed.
#[test]
fn follow_marks_a_live_alert() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let user = h.create_user("fa");
    let auth = h.rsyslog().auth_log_path().to_path_buf();
    let mut follow =
        h.spawn_vigilctl(&["audit".as_ref(), "show".as_ref(), auth.as_os_str(), "--follow".as_ref(), "--event".as_ref(), "alert".as_ref()]);
    // Ten refused calls within a minute make the alert (bounded: ten calls).
    for _ in 0..10 {
        let out = h.vigild().vigilctl_as(&user.name, &["reload"]);
        assert!(!out.status.success(), "reload is root's");
    }
    let line = follow.expect("the alert, marked", ARRIVAL, |line| line.contains("refused_calls").then(|| line.to_string()));
    assert!(line.starts_with('!'), "an alert is marked: {line}");
    let status = follow.stop_with(Signal::SIGTERM, STOP);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", follow.stderr_text());
    assert!(follow.seen().iter().all(|l| l.starts_with('!')), "--event alert prints alerts only: {:?}", follow.seen());
}
