//! End-to-end tests of the services pam_vigil steps aside for, through real libpam
//! (pam_host), pam_vigil.so, vigild on its private socket and rsyslogd: every user's
//! `systemd --user` manager (PAM service `systemd-user`) and the services named in
//! `ignore_services=` open no session at vigild and cost it no connection; any other
//! service on the same stack is registered as before.
//!
//! The services' files are written in a directory of the test's own that pam_host
//! hands libpam (`pam_start_confdir`, `--confdir`): PAM_SERVICE is the real name
//! (`systemd-user`), and /etc/pam.d is not touched. Needs root and the release build; each test skips (with a note) when not
//! run as root.

use std::path::Path;
use std::time::Duration;

use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{Fail, Harness, PamStack, VigildOpts, require_root};

const LOG_WAIT: Duration = Duration::from_secs(5);

fn harness() -> Harness {
    let h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h
}

/// pam_permit, then pam_vigil with `args` and fail=closed: PAM_IGNORE from pam_vigil
/// leaves pam_permit's success; a call to vigild that failed would fail the session.
fn stack(args: vigil_e2e::VigilArgs) -> PamStack {
    let module = vigil_e2e::paths::pam_module().display().to_string();
    PamStack::permit_only().session("required", &module, &args.timeout("10s").fail(Fail::Closed).to_args())
}

/// Writes `stack` as the service `name` in the test's own PAM directory.
fn write_service(dir: &Path, name: &str, stack: &PamStack) {
    std::fs::create_dir_all(dir).expect("the test's PAM directory");
    vigil_e2e::conformance::pam_file_written(&stack.render());
    std::fs::write(dir.join(name), stack.render()).expect("a service file in the test's PAM directory");
}

#[test]
fn systemd_user_and_ignored_services_open_no_session() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus());
    let user = h.create_user("ignored");
    let confdir = h.path("pam.d");
    // The skipped services point the module at a socket nobody listens on: a
    // connection attempt would fail the session (fail=closed) and be recorded.
    let nowhere = h.vigil_args().socket(h.path("no-vigild-here")).extra("ignore_services=cron,atd");
    for name in ["systemd-user", "cron", "atd", "login"] {
        write_service(&confdir, name, &stack(nowhere.clone()));
    }
    for name in ["systemd-user", "cron", "atd"] {
        let run = h.run_pam_host(&h.pam_host(name, &user.name).confdir(&confdir).cycles(3));
        let r = run.report();
        assert!(r.open_rc.all(PAM_SUCCESS) && r.open_rc.total() == 3, "{name}: {r:?}\nstderr:\n{}", run.stderr);
        assert!(r.close_rc.all(PAM_SUCCESS), "{name}: {r:?}");
        assert!(r.session_ids.iter().all(Option::is_none), "{name}: no VIGIL_SESSION_ID: {r:?}");
    }
    // The same stack for a service it does not name calls the (absent) daemon and fails.
    let run = h.run_pam_host(&h.pam_host("login", &user.name).confdir(&confdir));
    assert!(!run.report().open_rc.all(PAM_SUCCESS), "login is not skipped: {:?}", run.report());
    h.wait_for_log(LOG_WAIT, "the module's daemon_unreachable line for login", |l| {
        l.tag == "pam_vigil" && l.pid == Some(run.pid) && l.has("event", "daemon_unreachable") && l.has("service", "login")
    });

    // With vigild's socket and no ignore_services: systemd-user is still skipped, a
    // login is registered.
    let real = h.path("pam.d-real");
    for name in ["systemd-user", "login"] {
        write_service(&real, name, &stack(h.vigil_args()));
    }
    let run = h.run_pam_host(&h.pam_host("systemd-user", &user.name).confdir(&real));
    assert!(run.report().open_rc.all(PAM_SUCCESS), "{:?}", run.report());
    assert!(h.vigild().list_sessions().is_empty(), "systemd-user opened no session at vigild");
    let run = h.run_pam_host(&h.pam_host("login", &user.name).confdir(&real).tty("pts/99"));
    let r = run.report();
    assert!(r.open_rc.all(PAM_SUCCESS), "{r:?}\nstderr:\n{}", run.stderr);
    let id = r.session_ids[0].clone().expect("a registered session exports VIGIL_SESSION_ID");
    h.wait_for_event(LOG_WAIT, "vigild", "session_open", &[("session", &id)]);

    // Nothing else reached vigild, and the module wrote nothing for the skipped calls.
    let log = h.auth_log();
    let opens: Vec<_> = log.iter().filter(|l| l.tag == "vigild" && l.has("event", "session_open")).collect();
    assert_eq!(opens.len(), 1, "only the login: {opens:#?}");
    assert!(opens[0].has("service", "login"), "{opens:#?}");
    let skipped: Vec<_> = log.iter().filter(|l| l.tag == "pam_vigil" && !l.has("service", "login")).collect();
    assert!(skipped.is_empty(), "{skipped:#?}");
}
