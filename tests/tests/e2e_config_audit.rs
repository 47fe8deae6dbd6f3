//! End-to-end tests of two ways a trail or a policy could say something false without a
//! word:
//!
//! - a `pam_vigil` record forged by an unprivileged user (`logger -t pam_vigil`, through
//!   the harness's real rsyslogd) naming a real session: `vigilctl audit show` labels it
//!   unauthenticated and keeps vigild's header, `audit verify` lists it as a warning at
//!   its line, `verify --strict` fails;
//! - `vigilctl check-config` against the real user and group database (NSS): names
//!   that do not resolve and blocks that match everything are warnings (exit 0, or 1
//!   with `--strict`), `exempt = true` with an empty match is an error.
//!
//! Needs root (test users, PAM service files) and the release build of the workspace:
//! see tests/README.md. Run as another user, each test fails saying so.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use vigil_e2e::process::{describe_output, run_bounded};
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{Harness, LogLine, VigildOpts, paths, wait_for};

const LOG_WAIT: Duration = Duration::from_secs(10);
const VIGILCTL_TIMEOUT: Duration = Duration::from_secs(60);
const CONFIG: &str = "[defaults]\n\n[audit]\nformat = \"kv\"\nchain = true\n";

/// These tests create users and PAM services: without root they cannot run, and a test
/// that did not run must not pass.
fn require_root() {
    assert!(vigil_e2e::is_root(), "this e2e test needs root (tests/README.md); it was not run");
}

/// `vigilctl ARGS` without a daemon: (exit code, stdout, stderr).
fn vigilctl(args: &[&OsStr]) -> (Option<i32>, String, String, Output) {
    vigil_e2e::conformance::vigilctl_ran(args);
    let mut cmd = Command::new(paths::vigilctl_bin());
    cmd.args(args);
    let out = run_bounded(&mut cmd, VIGILCTL_TIMEOUT, "vigilctl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stdout, stderr, out)
}

/// The 1-based line of auth.log that satisfies `pred`, once rsyslogd has written it.
#[track_caller]
fn wait_line(log: &Path, what: &str, pred: impl Fn(&LogLine) -> bool) -> usize {
    wait_for(LOG_WAIT, &format!("{what} in {}", log.display()), || {
        let lines = vigil_e2e::logs::read_log(log);
        lines.iter().position(&pred).map(|i| i + 1).ok_or_else(|| format!("{} lines", lines.len()))
    })
}

#[test]
fn a_forged_module_record_is_labelled_and_warned_about() {
    require_root();
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let user = h.create_user("forger");
    let service = h.install_vigil_service("forged", &h.vigil_args());
    let session = h.open_pam_session(&h.pam_host(&service, &user.name).tty("pts/7").rhost("203.0.113.9"));
    let id = session.session_id_u64();
    let auth = h.path("auth.log");
    let open_line = wait_line(&auth, "session_open", |l| l.is_event("vigild", "session_open") && l.has("session", &id.to_string()));

    // The session's own user, unprivileged, writes what the module would write if vigild
    // were unreachable, and claims the session is root's.
    let forged = format!("event=daemon_unreachable call=close_session session={id} user=root uid=0 fail=open reason=timeout");
    let socket = h.log_socket();
    let out = h.run_as(&user.name, &["logger", "-u", socket.to_str().unwrap(), "-p", "authpriv.err", "-t", "pam_vigil", &forged]);
    assert!(out.status.success(), "logger as {}: {}", user.name, describe_output(&out));
    let forged_line = wait_line(&auth, "the forged pam_vigil line", |l| l.tag == "pam_vigil" && l.has("session", &id.to_string()));
    assert!(forged_line > open_line);
    let (closed, _) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS));
    wait_line(&auth, "session_close", |l| l.is_event("vigild", "session_close") && l.has("session", &id.to_string()));
    let out = h.vigild().vigilctl(&["audit", "seal"]);
    assert!(out.status.success(), "vigilctl audit seal: {}", describe_output(&out));
    wait_line(&auth, "the seal", |l| l.is_event("vigild", "seal"));
    let pam_vigil_lines = vigil_e2e::logs::read_log(&auth).iter().filter(|l| l.tag == "pam_vigil").count();
    assert_eq!(pam_vigil_lines, 1, "the module itself wrote nothing: vigild was reachable");

    // show: the forged line is in the session's timeline, labelled; the header is vigild's.
    let id_text = id.to_string();
    let show = |json: bool| {
        let mut args: Vec<&OsStr> = vec!["audit".as_ref(), "show".as_ref(), auth.as_os_str(), "--session".as_ref(), id_text.as_ref()];
        if json {
            args.push("--json".as_ref());
        }
        let (code, stdout, stderr, out) = vigilctl(&args);
        assert_eq!(code, Some(0), "vigilctl audit show: {}", describe_output(&out));
        assert!(stderr.is_empty(), "{stderr}");
        stdout
    };
    let text = show(false);
    eprintln!("vigilctl audit show --session {id}:\n{text}");
    let header = text.lines().next().unwrap_or_default();
    assert!(header.starts_with(&format!("session {id} on ")), "{text}");
    assert!(header.contains(&format!(" user={} uid={} ", user.name, user.uid)), "the forged user=root must not reach the header: {text}");
    assert!(!header.contains("unauthenticated"), "the session has vigild's records: {text}");
    let labelled: Vec<&str> = text.lines().filter(|l| l.contains(", unauthenticated)")).collect();
    assert_eq!(labelled.len(), 1, "{text}");
    assert!(
        labelled[0]
            .contains(" daemon_unreachable (pam_vigil, unauthenticated) call=close_session user=root uid=0 fail=open reason=timeout"),
        "{}",
        labelled[0]
    );
    assert!(text.contains("(session_close), lasted "), "{text}");
    assert!(text.ends_with("; 1 unauthenticated (no mac: pam_vigil, or vigild without the chain)\n"), "{text}");

    let json = show(true);
    let block: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {json}"));
    assert_eq!(block["user"], serde_json::json!(user.name), "{block}");
    let events: Vec<(String, String, serde_json::Value)> = block["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["event"].as_str().unwrap_or("?").to_owned(), e["tag"].as_str().unwrap_or("?").to_owned(), e["authenticated"].clone()))
        .collect();
    let expected = |event: &str, tag: &str, authenticated: serde_json::Value| (event.to_owned(), tag.to_owned(), authenticated);
    assert_eq!(
        events,
        [
            expected("session_open", "vigild", serde_json::Value::Null),
            expected("daemon_unreachable", "pam_vigil", serde_json::Value::Bool(false)),
            expected("session_close", "vigild", serde_json::Value::Null),
        ],
        "{block}"
    );

    // verify: every vigild record verifies; the forged line is a warning at its line.
    let key = h.vigild().state_dir().join("audit").join("audit-initial.key");
    let verify = |strict: bool| {
        let mut args: Vec<&OsStr> = vec!["audit".as_ref(), "verify".as_ref(), auth.as_os_str(), "--key".as_ref(), key.as_os_str()];
        if strict {
            args.push("--strict".as_ref());
        }
        vigilctl(&args)
    };
    let (code, report, _, out) = verify(false);
    eprintln!("vigilctl audit verify:\n{report}");
    assert_eq!(code, Some(0), "a warning does not fail verify: {}", describe_output(&out));
    let place = format!("{}:{forged_line}: warning: daemon_unreachable session={id} host=", auth.display());
    assert!(report.contains(&place), "{place:?} not in:\n{report}");
    assert!(report.contains(", 1 unchained module records (pam_vigil), "), "{report}");
    assert!(report.ends_with("result: OK: every vigild record verifies (warnings: 1 unauthenticated pam_vigil record)\n"), "{report}");
    let (code, report, _, out) = verify(true);
    assert_eq!(code, Some(1), "--strict fails on it: {}", describe_output(&out));
    assert!(report.contains(&place), "{report}");
    assert!(
        report.ends_with("result: FAILED (--strict): every vigild record verifies, but 1 unauthenticated pam_vigil record\n"),
        "{report}"
    );
}

#[test]
fn check_config_warns_about_accounts_nss_does_not_know() {
    require_root();
    let h = Harness::new();
    let user = h.create_user("cfg");
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(user.gid))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no group for gid {}", user.gid))
        .name;
    let missing_user = format!("{}-gone", user.name);
    let missing_group = format!("vtest-nogroup-{}", std::process::id());
    let file = h.path("vigil.toml");
    let write = |text: &str| std::fs::write(&file, text).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let check = |strict: bool| {
        let mut args: Vec<&OsStr> = vec!["check-config".as_ref(), file.as_os_str()];
        if strict {
            args.push("--strict".as_ref());
        }
        vigilctl(&args)
    };
    let at = |line: usize, column: usize, key: &str| format!("vigilctl: warning: {}:{line}:{column}: {key}: ", file.display());

    // Everything named exists: no warning.
    write(&format!("[[policy]]\nname = \"ok\"\nmatch = {{ users = [\"{}\", \"vtest-*\"], groups = [\"{group}\"] }}\n", user.name));
    for strict in [false, true] {
        let (code, stdout, stderr, out) = check(strict);
        assert_eq!(code, Some(0), "{}", describe_output(&out));
        assert_eq!(stdout, format!("{}: OK, 1 policy block(s)\n", file.display()));
        assert!(stderr.is_empty(), "{stderr}");
    }

    // A user and a group that do not exist, and a block without match.
    let users_col = "match = { users = [".len() + 1;
    let text = format!(
        "[defaults]\nidle_timeout = \"30m\"\n\n[[policy]]\nname = \"typo\"\nmatch = {{ users = [\"{missing_user}\", \"{}\"] }}\n\n[[policy]]\nname = \"ops\"\n[policy.match]\ngroups = [\"{group}\", \"{missing_group}\"]\n\n[[policy]]\nname = \"rest\"\nidle_timeout = \"1h\"\n",
        user.name
    );
    write(&text);
    let (code, stdout, stderr, out) = check(false);
    eprintln!("check-config:\n{stdout}{stderr}");
    assert_eq!(code, Some(0), "warnings do not fail check-config: {}", describe_output(&out));
    assert_eq!(stdout, format!("{}: OK, 3 policy block(s), 3 warnings\n", file.display()));
    let lines: Vec<&str> = stderr.lines().collect();
    let groups_col = format!("groups = [\"{group}\", ").chars().count() + 1;
    let expected = [
        format!(
            "{}no user {missing_user:?} on this system (getpwnam found none); this entry matches no session until such a user exists",
            at(6, users_col, "policy[1].match.users")
        ),
        format!(
            "{}no group {missing_group:?} on this system (getgrnam found none); this entry matches no session until such a group exists",
            at(11, groups_col, "policy[2].match.groups")
        ),
        format!(
            "{}no match: this block applies to every session that no block before it matched; expected users, groups, services, tty or rhosts",
            at(13, 1, "policy[3]")
        ),
    ];
    assert_eq!(lines, expected, "{stderr}");
    let (code, stdout, stderr, out) = check(true);
    assert_eq!(code, Some(1), "--strict fails on warnings: {}", describe_output(&out));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.ends_with(&format!("vigilctl: {}: refused with --strict: 3 policy block(s), 3 warnings\n", file.display())), "{stderr}");

    // exempt = true with an empty match is an error, with its place.
    write("[[policy]]\nname = \"everyone\"\nmatch = {}\nexempt = true\n");
    let (code, stdout, stderr, out) = check(false);
    assert_eq!(code, Some(1), "{}", describe_output(&out));
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr,
        format!(
            "vigilctl: {}:4:10: policy[1].exempt: exempt = true in a block with an empty match exempts every session; expected match criteria (users, groups, services, tty or rhosts) naming the sessions to exempt\n",
            file.display()
        )
    );
}

/// `vigilctl check-config` without a file argument on a host without
/// /etc/vigil/vigil.toml (the file is optional): the built-in defaults, exit 0. A file
/// named on the command line that does not exist is still an error. The host's own
/// /etc/vigil is hidden by an empty tmpfs in a mount namespace of the command's own.
#[test]
fn check_config_without_the_optional_file_says_the_defaults_are_in_force() {
    require_root();
    let bin = paths::vigilctl_bin();
    let script = format!(
        "set -e; [ -d /etc/vigil ] || exit 3; mount -t tmpfs -o size=64k vigil-test /etc/vigil; exec '{}' check-config",
        bin.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let out = run_bounded(&mut cmd, VIGILCTL_TIMEOUT, "vigilctl check-config without /etc/vigil/vigil.toml");
    let out = if out.status.code() == Some(3) {
        // No /etc/vigil on this host at all: the plain command sees no file either.
        run_bounded(Command::new(&bin).arg("check-config"), VIGILCTL_TIMEOUT, "vigilctl check-config")
    } else {
        out
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "no file is not an error: {}", describe_output(&out));
    assert!(stdout.contains("built-in defaults"), "{stdout}");
    let (code, _, stderr, _) = vigilctl(&["check-config".as_ref(), "/nonexistent/vigil.toml".as_ref()]);
    assert_eq!(code, Some(1), "a named file that is missing is an error: {stderr}");
    assert!(stderr.contains("/nonexistent/vigil.toml: cannot read"), "{stderr}");
}

/// `vigilctl reload` with `[audit] chain` or `spool_max_bytes` changed: the writer takes
/// them only at start, so the reload is refused naming the key (exit 1, `config_reload
/// result=failed`), and the running policy stays; `format` alone applies.
#[test]
fn a_reload_that_changes_what_only_a_restart_applies_is_refused_naming_the_key() {
    require_root();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    for (changed, key) in [
        ("[defaults]\n\n[audit]\nformat = \"kv\"\nchain = false\n", "chain"),
        ("[defaults]\n\n[audit]\nformat = \"kv\"\nchain = true\nspool_max_bytes = 1048576\n", "spool_max_bytes"),
    ] {
        h.vigild().write_config(changed);
        let out = h.vigild().vigilctl(&["reload"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}: {}", describe_output(&out));
        assert!(stderr.contains(&format!("[audit] {key} changed")) && stderr.contains("restart"), "{key}: {stderr}");
        h.wait_for_log(LOG_WAIT, "config_reload result=failed naming the key", |l| {
            l.is_event("vigild", "config_reload") && l.has("result", "failed") && l.message.contains(key)
        });
    }
    h.vigild().write_config("[defaults]\n\n[audit]\nformat = \"json\"\nchain = true\n");
    let out = h.vigild().vigilctl(&["reload"]);
    assert!(out.status.success(), "format alone applies: {}", describe_output(&out));
}

/// The man pages generated from vigilctl's clap definitions (what the package ships)
/// say what `--help` says: VIGIL_SOCKET, and inhibit's required flags in its synopsis.
#[test]
fn the_generated_man_pages_name_vigil_socket_and_inhibits_required_flags() {
    let docgen = paths::bin_dir().join("vigil-docgen");
    let dir = std::env::temp_dir().join(format!("vigil-docgen-{}", std::process::id()));
    let out = run_bounded(Command::new(&docgen).arg(&dir), VIGILCTL_TIMEOUT, "vigil-docgen");
    assert!(out.status.success(), "{}", describe_output(&out));
    let page = |name: &str| std::fs::read_to_string(dir.join("man").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let vigilctl = page("vigilctl.1");
    let inhibit = page("vigilctl-inhibit.1");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(vigilctl.contains("VIGIL_SOCKET"), "vigilctl(1) names VIGIL_SOCKET:\n{vigilctl}");
    assert!(inhibit.contains("\\-\\-for DURATION \\-\\-why TEXT"), "vigilctl-inhibit(1):\n{inhibit}");
}
