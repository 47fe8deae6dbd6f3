//! End-to-end tests of the admin verbs on the bus (docs/polkit.md): a real dbus-daemon
//! with the shipped bus policy, a real vigild on it, real vigilctl processes run as a
//! test user and as root, real libpam holding the session, and the records in the file
//! the real rsyslogd writes.
//!
//! This bus has no polkitd (the machine's PID 1 is not systemd): a user's admin verb is
//! refused because polkit cannot be asked, recorded `call_refused
//! reason=not_authorized`, while root's verbs go through, which shows root is never
//! asked. What polkit itself says (yes for a group with the example rules, no for
//! others) is tested under a real systemd and polkitd: tests/container/polkit.sh.
//!
//! Needs root and the release build of the workspace: see tests/README.md.

use std::process::Output;
use std::time::Duration;

use vigil_e2e::{BusPolicy, Harness, LogLine, VigildOpts, paths, require_root};

const LOG_WAIT: Duration = Duration::from_secs(10);
const TTY: &str = "pts/41";

fn harness() -> Harness {
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_bus(BusPolicy::Packaging);
    h.start_vigild(VigildOpts::default());
    h
}

/// `vigilctl ARGS` as `user` with the harness's bus standing for the system bus, and
/// neither `--socket` nor VIGIL_SOCKET: where vigilctl sends the call is its own choice.
fn vigilctl_as(h: &Harness, user: &str, args: &[&str]) -> Output {
    vigil_e2e::conformance::vigilctl_ran(args);
    let bus = format!("DBUS_SYSTEM_BUS_ADDRESS={}", h.bus_address());
    let vigilctl = paths::vigilctl_bin().display().to_string();
    let mut argv = vec!["env", "-u", "VIGIL_SOCKET", bus.as_str(), vigilctl.as_str()];
    argv.extend_from_slice(args);
    h.run_as(user, &argv)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn refusals(h: &Harness, uid: u32, method: &str) -> Vec<LogLine> {
    h.auth_log()
        .into_iter()
        .filter(|l| l.is_event("vigild", "call_refused") && l.has("uid", &uid.to_string()) && l.has("method", method))
        .collect()
}

#[test]
fn a_users_admin_verbs_go_to_the_system_bus_and_are_refused_without_polkit_while_root_is_never_asked() {
    require_root!();
    let h = harness();
    let alice = h.create_user("pkvictim");
    let bob = h.create_user("pkcaller");
    let service = h.install_vigil_service("polkit", &h.vigil_args());
    let session = h.open_pam_session(&h.pam_host(&service, &alice.name).tty(TTY));
    let id = session.session_id_u64();
    let id_text = id.to_string();

    // An ordinary user's admin verbs, on the system bus (no --socket given): the bus
    // policy lets them through to vigild, which asks polkit, gets no answer, refuses.
    for (args, method) in [
        (vec!["--no-ask-password", "terminate", id_text.as_str()], "TerminateSession"),
        (vec!["--no-ask-password", "reload"], "Reload"),
        (vec!["--no-ask-password", "lock", "--user", alice.name.as_str(), "--why", "x"], "LockUser"),
        (vec!["--no-ask-password", "unlock", "--user", alice.name.as_str()], "UnlockUser"),
        (vec!["--no-ask-password", "locks"], "ListLocks"),
    ] {
        let out = vigilctl_as(&h, &bob.name, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(stderr.contains(&format!("permission denied: {method}: polkit could not be asked")), "{args:?}: {}", text(&out));
        assert!(stderr.contains("org.vigil1."), "the action is named: {}", text(&out));
        assert!(!stderr.contains("Rejected send message"), "the bus policy refused, not vigild: {}", text(&out));
        let refused = h.wait_for_event(LOG_WAIT, "vigild", "call_refused", &[("method", method), ("uid", &bob.uid.to_string())]);
        assert!(refused.has("reason", "not_authorized"), "{}", refused.raw);
        assert!(refused.field("pid").is_some(), "{}", refused.raw);
    }
    // Without --no-ask-password and without a terminal nothing can be asked either: the
    // same refusal (recorded once a minute per user and method: not a second record).
    let out = vigilctl_as(&h, &bob.name, &["terminate", &id_text]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("polkit could not be asked"), "{}", text(&out));
    assert_eq!(refusals(&h, bob.uid, "TerminateSession").len(), 1, "a second refusal within the minute is counted, not recorded");
    assert!(h.vigild().session(id).is_some(), "a refused terminate ended the session");
    assert!(h.auth_log().iter().all(|l| !l.is_event("vigild", "lock_start")), "a refused lock locked");

    // list and show on the bus: the user's own sessions only (polkit did not say yes).
    let out = vigilctl_as(&h, &bob.name, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "another user's session was listed: {listed}");
    let out = vigilctl_as(&h, &bob.name, &["show", &id_text]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no session {id}")), "{}", text(&out));

    // Root on the same bus: polkit is never asked (it could not answer here), and the
    // records name root as the admin who acted.
    let bus = h.bus_address();
    let out = h.vigild().vigilctl(&["--bus", &bus, "reload"]);
    assert!(out.status.success(), "{}", text(&out));
    let reload = h.wait_for_event(LOG_WAIT, "vigild", "config_reload", &[("trigger", "dbus")]);
    assert_eq!((reload.field("by").as_deref(), reload.field("by_uid").as_deref()), (Some("root"), Some("0")), "{}", reload.raw);
    assert!(reload.field("pid").is_some(), "{}", reload.raw);
    let out = h.vigild().vigilctl(&["--bus", &bus, "terminate", &id_text]);
    assert!(out.status.success(), "{}", text(&out));
    let end = h.wait_for_event(LOG_WAIT, "vigild", "session_end", &[("session", &id_text)]);
    assert!(end.has("reason", "admin") && end.has("by", "root") && end.has("by_uid", "0"), "{}", end.raw);
    assert!(end.field("pid").is_some() && end.field("processes").is_some(), "{}", end.raw);
    let out = h.vigild().vigilctl(&["--bus", &bus, "lock", "--user", &alice.name, "--why", "polkit test", "--for", "1m"]);
    assert!(out.status.success(), "{}", text(&out));
    let start = h.wait_for_event(LOG_WAIT, "vigild", "lock_start", &[("user", &alice.name)]);
    assert!(start.has("by", "root") && start.has("by_uid", "0"), "{}", start.raw);
    let out = h.vigild().vigilctl(&["--bus", &bus, "unlock", "--user", &alice.name]);
    assert!(out.status.success(), "{}", text(&out));
    let lifted = h.wait_for_event(LOG_WAIT, "vigild", "lock_end", &[("user", &alice.name)]);
    assert!(lifted.has("reason", "lifted") && lifted.has("by", "root") && lifted.has("by_uid", "0"), "{}", lifted.raw);
}
