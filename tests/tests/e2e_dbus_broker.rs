//! The bus path under dbus-broker (Debian's `dbus-broker` package) as under dbus-daemon:
//! the same private system bus configuration with the packaging policy
//! (`packaging/dbus/org.vigil1.conf`), vigild owning `org.vigil1` on it, a session opened
//! and closed through real libpam and pam_vigil.so over that bus only, vigilctl over the
//! bus as root and as a user, and a user's OpenSessionEx refused by the bus's policy
//! before vigild sees it. One test per broker, the same steps.
//!
//! Needs root, the release build, and the `dbus-broker` package (tests/run.sh installs
//! it and leaves dbus-daemon the machine's system bus): see tests/README.md.

use std::time::Duration;

use vigil_e2e::bus::OPEN_SESSION_ARGS;
use vigil_e2e::process::describe_output;
use vigil_e2e::procfs::ProcInfo;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{BusKind, BusPolicy, Fail, Harness, SessionInfo, VigildOpts, require_root};

const LOG_WAIT: Duration = Duration::from_secs(5);
const TTY: &str = "pts/9";
const RHOST: &str = "203.0.113.7";

#[test]
fn bus_path_under_dbus_broker() {
    require_root!();
    assert!(
        std::path::Path::new("/usr/bin/dbus-broker-launch").exists(),
        "dbus-broker is not installed: `apt-get install dbus-broker` (tests/run.sh installs it and undoes its enablement)"
    );
    bus_path(BusKind::DbusBroker);
}

#[test]
fn bus_path_under_dbus_daemon() {
    require_root!();
    bus_path(BusKind::DbusDaemon);
}

fn bus_path(kind: BusKind) {
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_bus_with(BusPolicy::Packaging, kind);
    h.start_vigild(VigildOpts::default());
    let address = h.bus_address();
    let relay = ProcInfo::read(h.bus().relay_pid()).expect("the bus's relay process");
    assert_eq!(relay.comm, kind.name(), "the bus is relayed by {}: {relay:?}", kind.name());
    assert!(h.bus().name_has_owner("org.vigil1"), "vigild owns org.vigil1 on {kind}");

    // A login through the bus only: the private socket argument points nowhere and an
    // unreachable daemon fails the open.
    let user = h.create_user("broker");
    let args = h.vigil_args().bus(&address).socket(h.path("no-such-socket")).fail(Fail::Closed);
    let service = h.install_vigil_service("broker", &args);
    let session = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "open_session over {kind}; pam_host stderr:\n{}", session.stderr_text());
    let id = session.session_id_u64();

    // vigilctl over the bus: root sees the session with the caller the bus vouched for.
    let listed = list_over_bus(&h, None, &address);
    let s = listed.iter().find(|s| s.id == id).unwrap_or_else(|| panic!("session {id} not listed over {kind}: {listed:#?}"));
    assert_eq!((s.user.as_str(), s.uid, s.service.as_str()), (user.name.as_str(), user.uid, service.as_str()), "{s:#?}");
    assert_eq!(s.leader_pid, session.pid(), "the leader is pam_host, from {kind}'s GetConnectionCredentials: {s:#?}");
    assert_eq!(s.rhost.as_deref(), Some(RHOST), "{s:#?}");
    let open = h.wait_for_event(LOG_WAIT, "vigild", "session_open", &[("session", &id.to_string())]);
    assert!(open.has("user", &user.name) && open.has("service", &service), "{}", open.raw);

    // A user may call the read-only methods through the policy: their own sessions only.
    let other = h.create_user("buser");
    let theirs = list_over_bus(&h, Some(&other.name), &address);
    assert!(theirs.is_empty(), "a user sees only their own sessions over {kind}: {theirs:#?}");

    // ...but not register one: the bus refuses before vigild is asked.
    let transport = format!("--bus={address}");
    let argv: Vec<&str> = ["dbus-send", transport.as_str()].into_iter().chain(OPEN_SESSION_ARGS).collect();
    let out = h.run_as(&other.name, &argv);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "OpenSessionEx by uid {} through {kind} succeeded: {}", other.uid, describe_output(&out));
    assert!(
        stderr.contains("org.freedesktop.DBus.Error.AccessDenied") && stderr.contains(kind.policy_refusal_text()),
        "{kind} itself must refuse (packaging/dbus/org.vigil1.conf): {}",
        describe_output(&out)
    );

    let (closed, run) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS), "close_session over {kind}; pam_host stderr:\n{}", run.stderr);
    let close = h.wait_for_event(LOG_WAIT, "vigild", "session_close", &[("session", &id.to_string())]);
    assert!(close.has("user", &user.name), "{}", close.raw);
    let left = list_over_bus(&h, None, &address);
    assert!(left.is_empty(), "nothing registered but the closed session: {left:#?}");
    // The refused call never reached vigild (it would have written call_refused).
    let seen = h.auth_log().into_iter().filter(|l| l.is_event("vigild", "call_refused") && l.has("uid", &other.uid.to_string())).count();
    assert_eq!(seen, 0, "vigild saw a call {kind} should have stopped:\n{}", h.diagnostics());
}

/// `vigilctl --bus ADDRESS list --json` as root (`user` None) or as `user`.
#[track_caller]
fn list_over_bus(h: &Harness, user: Option<&str>, address: &str) -> Vec<SessionInfo> {
    let args = ["--bus", address, "list", "--json"];
    let out = match user {
        None => h.vigild().vigilctl(&args),
        Some(user) => h.vigild().vigilctl_as(user, &args),
    };
    assert!(out.status.success(), "vigilctl --bus {address} list as {user:?}: {}", describe_output(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("vigilctl list --json ({e}): {}", describe_output(&out)))
}
