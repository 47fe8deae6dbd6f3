//! Checks of the harness itself, with no vigil binary involved: rsyslogd and
//! dbus-daemon start and work, pam_host drives libpam, and a dropped harness leaves
//! nothing behind. Needs root (skips otherwise).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vigil_e2e::process::{describe_output, pid_alive, run_bounded};
use vigil_e2e::rc::{PAM_AUTH_ERR, PAM_SUCCESS};
use vigil_e2e::{BusPolicy, Harness, PamStack, require_root};

const LOG_WAIT: Duration = Duration::from_secs(5);

fn harness() -> Harness {
    let h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h
}

fn logger(h: &Harness, priority: &str, tag: &str, msg: &str) {
    let out = run_bounded(
        Command::new("logger").arg("-u").arg(h.log_socket()).args(["-p", priority, "-t", tag, msg]),
        Duration::from_secs(5),
        "logger",
    );
    assert!(out.status.success(), "logger: {}", describe_output(&out));
}

#[test]
fn syslog_lines_land_in_the_right_files() {
    require_root!();
    let h = harness();
    logger(&h, "authpriv.notice", "selftest", "event=probe user=\"a \\\"b\\\"\" n=1");
    let line = h.wait_for_event(LOG_WAIT, "selftest", "probe", &[("n", "1")]);
    assert_eq!(line.field("user").as_deref(), Some("a \"b\""), "{line:?}");
    logger(&h, "user.info", "selftest", "not-authpriv-77");
    vigil_e2e::wait_until(LOG_WAIT, "user.info line in all.log", || h.all_log().iter().any(|l| l.message == "not-authpriv-77"));
    assert!(h.auth_log().iter().all(|l| !l.raw.contains("not-authpriv-77")), "user.* must not reach auth.log");
}

#[test]
fn rsyslog_stops_and_starts_again() {
    require_root!();
    let h = harness();
    let first_pid = h.rsyslog().pid().unwrap();
    h.rsyslog().stop();
    assert!(!h.rsyslog().is_running());
    assert!(!pid_alive(first_pid));
    h.rsyslog().start();
    assert!(h.rsyslog().is_running());
    assert_ne!(h.rsyslog().pid(), Some(first_pid));
    logger(&h, "authpriv.info", "selftest", "after-restart");
    h.wait_for_log_containing(LOG_WAIT, "after-restart");
}

#[test]
fn private_bus_serves_users_and_applies_the_packaging_policy() {
    require_root!();
    let mut h = harness();
    h.start_bus(BusPolicy::Packaging);
    let user = h.create_user("bus");
    let address = h.bus_address();
    assert!(address.starts_with(&format!("unix:path={}", h.path("bus.sock").display())), "{address}");
    let bus_arg = format!("--bus={address}");

    // An unprivileged user reaches the bus socket in the harness directory.
    let out = h.run_as(
        &user.name,
        &["dbus-send", &bus_arg, "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.GetId"],
    );
    assert!(out.status.success(), "GetId as a test user: {}", describe_output(&out));

    // The repository's policy is in force: a user may not own org.vigil1, root may.
    let request = [
        "--print-reply",
        "--dest=org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus.RequestName",
        "string:org.vigil1",
        "uint32:0",
    ];
    let mut argv = vec!["dbus-send", bus_arg.as_str()];
    argv.extend(request);
    let out = h.run_as(&user.name, &argv);
    assert!(!out.status.success(), "a user owned org.vigil1: {}", describe_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("org.freedesktop.DBus.Error.AccessDenied"), "{}", describe_output(&out));
    let out = run_bounded(Command::new("dbus-send").arg(&bus_arg).args(request), Duration::from_secs(10), "dbus-send");
    assert!(out.status.success(), "root could not own org.vigil1: {}", describe_output(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("uint32 1"), "{}", describe_output(&out));
    let conf = std::fs::read_to_string(h.bus().config_path()).unwrap();
    assert!(conf.contains(&format!("<include>{}</include>", vigil_e2e::paths::bus_policy_file().display())), "{conf}");
}

#[test]
fn permissive_bus_lets_users_send_to_vigil() {
    require_root!();
    let mut h = harness();
    h.start_bus(BusPolicy::Permissive);
    let conf = std::fs::read_to_string(h.bus().config_path()).unwrap();
    assert!(!conf.contains("<include>"), "{conf}");
    assert!(conf.contains(r#"<allow send_destination="org.vigil1"/>"#), "{conf}");
}

#[test]
fn pam_host_runs_permit_and_exec_stacks_cleanly() {
    require_root!();
    let h = harness();
    let user = h.create_user("host");
    for (name, stack) in [("permit", PamStack::permit_only()), ("exec", PamStack::exec_true())] {
        let service = h.install_pam_service(name, &stack);
        let run = h.run_pam_host(&h.pam_host(&service, &user.name).tty("pts/9").rhost("203.0.113.7").cycles(20));
        let r = run.report();
        assert_eq!(r.start_rc, PAM_SUCCESS, "{r:?}");
        assert!(r.open_rc.all(PAM_SUCCESS) && r.open_rc.total() == 20, "{name}: {r:?}");
        assert!(r.close_rc.all(PAM_SUCCESS) && r.close_rc.total() == 20, "{name}: {r:?}");
        assert_eq!(r.session_ids, vec![None; 10], "no module sets VIGIL_SESSION_ID here");
        assert_eq!(r.cycle_us.n, 20);
        assert_eq!(r.end_rc, Some(PAM_SUCCESS));
        assert_eq!(r.threads_before, r.threads_after, "{name}: {:?}", r.new_threads);
        assert_eq!(r.fds_before, r.fds_after, "{name}: {:?}", r.new_fds);
        assert_eq!(r.pid, run.pid);
    }
}

#[test]
fn pam_host_answers_prompts_with_the_password() {
    require_root!();
    let h = harness();
    let user = h.create_user("auth");
    let stack = PamStack::new().auth("required", "pam_unix.so", &[]).account("required", "pam_permit.so", &[]).session(
        "required",
        "pam_permit.so",
        &[],
    );
    let service = h.install_pam_service("unix", &stack);

    let ok = h.run_pam_host(&h.pam_host(&service, &user.name).auth().password(&user.password));
    let auth = ok.report().auth.clone().expect("--auth reports");
    assert_eq!(auth.authenticate_rc, PAM_SUCCESS, "{:?}", ok.report());
    assert_eq!(auth.acct_mgmt_rc, Some(PAM_SUCCESS));
    assert_eq!(auth.prompts.len(), 1, "{auth:?}");

    let bad = h.run_pam_host(&h.pam_host(&service, &user.name).auth().password("wrong"));
    assert_eq!(bad.report().auth.as_ref().unwrap().authenticate_rc, PAM_AUTH_ERR, "{:?}", bad.report());

    let none = h.run_pam_host(&h.pam_host(&service, &user.name).auth());
    let auth = none.report().auth.clone().unwrap();
    assert_ne!(auth.authenticate_rc, PAM_SUCCESS, "no password, no success: {auth:?}");
    assert_eq!(auth.acct_mgmt_rc, None);
}

#[test]
fn pam_host_holds_a_session_until_told() {
    require_root!();
    let h = harness();
    let user = h.create_user("hold");
    let service = h.install_pam_service("hold", &PamStack::permit_only());
    let session = h.open_pam_session(&h.pam_host(&service, &user.name));
    assert_eq!(session.open_rc(), PAM_SUCCESS);
    assert_eq!(session.session_id(), None);
    let pid = session.pid();
    assert!(pid_alive(pid), "pam_host waits on stdin");
    let (closed, run) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS));
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.report().close_rc.count(PAM_SUCCESS), 1);
    assert!(!pid_alive(pid));
}

#[test]
fn dropped_harness_leaves_nothing_behind() {
    require_root!();
    let (pids, dir, service_path, user_name) = {
        let mut h = harness();
        h.start_bus(BusPolicy::Permissive);
        let user = h.create_user("gone");
        let service = h.install_pam_service("gone", &PamStack::permit_only());
        let service_path = Path::new("/etc/pam.d").join(&service);
        assert!(service_path.is_file());
        assert!(user.home.is_dir());
        // A session left open: the handle is dropped with the harness's scope.
        let session = h.open_pam_session(&h.pam_host(&service, &user.name));
        assert!(pid_alive(session.pid()));
        let pids: Vec<u32> = h.spawned().iter().map(|r| r.pid).collect();
        assert!(pids.len() >= 3, "rsyslogd, dbus-daemon, pam_host: {:?}", h.spawned());
        assert!(pids.iter().all(|&p| pid_alive(p)));
        (pids, h.dir().to_path_buf(), service_path, user.name.clone())
    };
    for pid in &pids {
        assert!(!pid_alive(*pid), "pid {pid} still alive after drop");
    }
    if !vigil_e2e::tempdir::keep_requested() {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
    assert!(!service_path.exists(), "{} still exists", service_path.display());
    assert!(nix::unistd::User::from_name(&user_name).unwrap().is_none(), "user {user_name} still exists");
    assert!(!Path::new("/home").join(&user_name).exists(), "home of {user_name} still exists");
}

#[test]
fn dropped_harness_cleans_up_after_a_panic() {
    require_root!();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    // A panicking test body on its own thread; its harness is dropped while unwinding.
    let joined = std::thread::spawn(move || {
        let h = harness();
        let user = h.create_user("panic");
        let service = h.install_pam_service("panic", &PamStack::permit_only());
        *seen2.lock().unwrap() = Some((h.spawned()[0].pid, h.dir().to_path_buf(), service, user.name));
        panic!("deliberate panic inside a test body");
    })
    .join();
    assert!(joined.is_err(), "the body panicked");
    let (pid, dir, service, user_name) = seen.lock().unwrap().clone().expect("the body ran");
    assert!(!pid_alive(pid), "rsyslogd {pid} still alive");
    if !vigil_e2e::tempdir::keep_requested() {
        assert!(!dir.exists());
    }
    assert!(!Path::new("/etc/pam.d").join(&service).exists());
    assert!(nix::unistd::User::from_name(&user_name).unwrap().is_none());
}

#[test]
fn no_service_files_of_this_process_remain() {
    require_root!();
    {
        let h = harness();
        h.install_pam_service("a", &PamStack::permit_only());
        h.install_pam_service("b", &PamStack::exec_true());
    }
    // Harnesses run one at a time, so none of this process's may exist now... unless a
    // sibling test holds one: take the lock by making (and dropping) a harness first.
    let _h = Harness::new();
    let suffix = format!("-{}", std::process::id());
    let left: Vec<String> = std::fs::read_dir("/etc/pam.d")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vigil-test-") && n.ends_with(&suffix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
