//! End-to-end tests of the records that are hard to provoke, each provoked for real: a
//! session whose policy changes once its pty exists (`session_policy_changed`), a leader
//! killed while vigild is down with its login's processes left (`session_restored
//! leader_gone=yes`, then `session_end reason=leader_gone` under the same id), the
//! deadline `vigilctl list` shows for a session whose output counts, a session file that
//! cannot be written (`session_save_failed`: the sessions directory made immutable with
//! `chattr +i`), a registration that arrives after the sweep adopted its login
//! (`session_open replaces=ID`), refusals held back for a user who went quiet
//! (`refusals_unreported`), and a session logind tracks whose end logind is asked for
//! on a bus where no logind answers (`logind_terminate_failed`).
//!
//! Real sshd, pam_host through libpam, rsyslogd and vigild, as the other e2e files.
//! Needs root and the release build: see tests/README.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vigil_e2e::login::login_with;
use vigil_e2e::procfs::ProcInfo;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::{BusPolicy, Harness, LogLine, PamStack, SshOpts, SshdOpts, VigildOpts, paths, require_root, wait_for};

/// A single step (a record that is already due, a command's output).
const STEP: Duration = Duration::from_secs(10);

fn raw(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.raw.as_str()).collect()
}

/// The position of a record in the log.
fn position(h: &Harness, line: &LogLine) -> usize {
    h.auth_log().iter().position(|l| l.raw == line.raw).unwrap_or_else(|| panic!("not in the log: {}", line.raw))
}

/// vigild with `config` and an sshd whose session stack ends with pam_vigil (with
/// `loginuid`, pam_loginuid before it, as Debian's sshd stack has it).
fn ssh_harness(opts: impl FnOnce(&Harness) -> VigildOpts, loginuid: bool) -> Harness {
    let mut h = Harness::with_syslog();
    let opts = opts(&h);
    h.start_vigild(opts);
    let module = paths::pam_module().display().to_string();
    let stack = unix_stack();
    let stack = if loginuid { stack.session("required", "pam_loginuid.so", &[]) } else { stack };
    let stack = stack.session("required", &module, &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    h
}

// ---- a policy that matches on ttys ------------------------------------------------------

const TTY_POLICY_CONFIG: &str =
    "[defaults]\nidle_timeout = \"1h\"\n\n[[policy]]\nname = \"terminals\"\nmatch = { tty = true }\nidle_timeout = \"2h\"\n";

/// Under sshd the pty appears after pam_open_session: `session_open` names the policy
/// for a session without a tty, and the claim of the pty, which makes the `tty = true`
/// block apply, is recorded as `session_policy_changed`.
#[test]
fn a_policy_that_matches_ttys_applies_once_the_pty_exists_and_the_switch_is_recorded() {
    require_root!();
    let h = ssh_harness(|_| VigildOpts::default().no_bus().config(TTY_POLICY_CONFIG), false);
    let user = h.create_user("ptypol");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let (id, tty) = (login.id(), login.tty());
    assert_eq!(login.tracked.policy_name(), Some("terminals"), "{:#?}", login.tracked);

    let open = h.wait_for_event(STEP, "vigild", "session_open", &[("session", &id.to_string())]);
    assert!(open.has("policy", "defaults"), "opened before the pty existed: {}", open.raw);
    let changed = h.wait_for_event(STEP, "vigild", "session_policy_changed", &[("session", &id.to_string())]);
    for (key, value) in [("policy", "terminals"), ("previous_policy", "defaults"), ("cause", "tty"), ("ttys", tty.as_str())] {
        assert!(changed.has(key, value), "{key}={value}: {}", changed.raw);
    }
    assert!(changed.has("user", &user.name), "{}", changed.raw);
    assert!(position(&h, &open) < position(&h, &changed), "the open before the change");
    assert_eq!(h.session_records("session_policy_changed", id).len(), 1, "{:#?}", raw(&h.session_records("session_policy_changed", id)));
}

// ---- a leader killed while vigild is down -------------------------------------------------

/// sshd's `[priv]` process is killed while vigild is down; the login's shell lives on.
/// The restarted vigild takes the session over under its id and ends it with what is
/// left, as it does a leader's death while it runs: no `session_end` while the shell
/// runs, and no adoption of the shell under a new id.
#[test]
fn a_leader_killed_while_vigild_is_down_is_ended_with_its_leftovers_under_its_id() {
    require_root!();
    let mut h = Harness::with_syslog();
    let user = h.create_user("gone");
    h.start_vigild(
        VigildOpts::default().no_bus().config("[defaults]\nidle_timeout = \"1h\"\nkill_grace = \"1s\"\n").adopt_users(&[&user.name]),
    );
    h.start_sshd(SshdOpts::default().stack(h.loginuid_ssh_stack()));
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    let id = login.id();
    let shell = login.server.shell().cloned().expect("the shell");

    h.vigild().signal(Signal::SIGKILL);
    h.vigild().wait_exit(STEP).expect("vigild to die of SIGKILL");
    h.vigild().stop(); // reaps
    assert!(login.server.monitor.signal(Signal::SIGKILL), "SIGKILL to [priv] {}", login.server.priv_pid());
    wait_for(STEP, "[priv] to be gone", || if login.server.is_alive() { Err("still running".to_string()) } else { Ok(()) });
    std::thread::sleep(Duration::from_millis(500));
    assert!(ProcInfo::read(shell.pid).is_some_and(|p| p.is_alive()), "the shell {} outlives [priv]", shell.pid);

    h.vigild().start();
    let started = Instant::now();
    let restored = h.wait_for_event(STEP, "vigild", "session_restored", &[("session", &id.to_string())]);
    assert!(restored.has("leader_gone", "yes"), "{}", restored.raw);
    let end = h.wait_for_event(STEP, "vigild", "session_end", &[("session", &id.to_string()), ("reason", "leader_gone")]);
    assert!(end.field("processes").is_some_and(|n| n != "0"), "the leftovers were ended with it: {}", end.raw);
    assert!(position(&h, &restored) < position(&h, &end), "restored, then ended");
    assert_eq!(h.session_records("session_end", id).len(), 1, "{:#?}", raw(&h.session_records("session_end", id)));
    wait_for(STEP, "the shell to be ended", || match ProcInfo::read(shell.pid).filter(ProcInfo::is_alive) {
        Some(p) => Err(format!("still running: {p:?}")),
        None => Ok(()),
    });
    // Two sweeps 5 s apart would have adopted what was left: nothing was.
    std::thread::sleep(Duration::from_secs(11).saturating_sub(started.elapsed()));
    let adopted: Vec<LogLine> =
        h.auth_log().into_iter().filter(|l| l.is_event("vigild", "session_adopted") && l.has("user", &user.name)).collect();
    assert!(adopted.is_empty(), "nothing of the login adopted under a new id: {:#?}", raw(&adopted));
}

// ---- the deadline vigilctl list shows ------------------------------------------------------

/// With `output_is_activity = true`, output moves the session's end: `vigilctl list`
/// shows the deadline as of the latest output, not as of its last check.
#[test]
fn the_listed_deadline_follows_output_that_counts() {
    require_root!();
    let config = "[defaults]\nidle_timeout = \"40s\"\nidle_warning = \"5s\"\noutput_is_activity = true\n";
    let h = ssh_harness(|_| VigildOpts::default().no_bus().config(config), false);
    let user = h.create_user("outdl");
    let login = login_with(&h, &user, &SshOpts::default(), STEP);
    login.client.send_line("for i in $(seq 40); do echo tick; sleep 1; done");
    login.client.wait_for(STEP, "two ticks", |s| (s.lines().filter(|l| l.trim() == "tick").count() >= 2).then_some(()));
    let deadline = |h: &Harness| -> u64 {
        let s = h.vigild().session(login.id()).expect("listed");
        s.other.get("deadline").and_then(|d| d.as_u64()).unwrap_or_else(|| panic!("a deadline: {s:#?}"))
    };
    let first = deadline(&h);
    std::thread::sleep(Duration::from_secs(6));
    let later = deadline(&h);
    assert!(later >= first + 4, "6 s of output moved the listed deadline by {} s ({first} -> {later})", later as i64 - first as i64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(later + 2 >= now + 40, "the deadline is 40 s after the latest output: {later}, now {now}");
    let text = h.vigild().vigilctl(&["list"]);
    eprintln!("listed deadline {first} then {later}; vigilctl list:\n{}", String::from_utf8_lossy(&text.stdout));
}

// ---- a session file that cannot be written --------------------------------------------------

/// `chattr +i` on a directory; `chattr -i` when dropped, on a panic too.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        let status = Command::new("chattr").arg("+i").arg(path).status().expect("run chattr");
        assert!(status.success(), "chattr +i {}: {status}", path.display());
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// vigild cannot write a session's file (its sessions directory immutable): the
/// registration still succeeds, the session is supervised, and `session_save_failed`
/// says which session and why.
#[test]
fn a_session_file_that_cannot_be_written_is_recorded_and_the_session_kept() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    let user = h.create_user("nosave");
    let service = h.install_vigil_service("nosave", &h.vigil_args());
    let sessions = h.vigild().state_dir().join("sessions");
    let guard = Immutable::set(&sessions);
    let session = h.open_pam_session(&h.pam_host(&service, &user.name));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "{}", session.stderr_text());
    let id = session.session_id_u64();
    let failed = h.wait_for_event(STEP, "vigild", "session_save_failed", &[("session", &id.to_string())]);
    assert!(failed.field("error").is_some_and(|e| e.contains("ermitted")), "the error says why: {}", failed.raw);
    assert!(h.vigild().session(id).is_some(), "still supervised");
    assert!(!sessions.join(id.to_string()).exists(), "no file was written");
    drop(guard);
    let (closed, run) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS), "{}", run.stderr);
    h.wait_for_event(STEP, "vigild", "session_close", &[("session", &id.to_string())]);
}

// ---- a registration after the sweep adopted the login ---------------------------------------

/// The login gets its audit session (pam_loginuid), then pam_exec holds the stack until
/// vigild's sweep has adopted it (its file appears in the state directory), then
/// pam_vigil registers it: the registration replaces the adopted session.
#[test]
fn a_registration_after_the_sweep_adopted_the_login_replaces_it() {
    require_root!();
    let mut h = Harness::with_syslog();
    let user = h.create_user("late");
    h.start_vigild(VigildOpts::default().no_bus().config("[defaults]\nidle_timeout = \"1h\"\n").adopt_users(&[&user.name]));
    let sessions = h.vigild().state_dir().join("sessions");
    let script = h.path("wait-adopted.sh");
    // Bounded: 65 looks, 0.2 s apart, within pam_host's 15 s wait for the open.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor i in $(seq 65); do grep -qs '\"{}\"' {}/* && exit 0; sleep 0.2; done\nexit 0\n",
            user.name,
            sessions.display()
        ),
    )
    .expect("write the script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let module = paths::pam_module().display().to_string();
    let stack = PamStack::permit_auth_account()
        .session("required", "pam_loginuid.so", &[])
        .session("optional", "pam_exec.so", &[script.display().to_string()])
        .session("required", &module, &h.vigil_args().to_args());
    let service = h.install_pam_service("late", &stack);
    let session = h.open_pam_session(&h.pam_host(&service, &user.name));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "{}", session.stderr_text());
    let id = session.session_id_u64();

    let adopted = h.wait_for_event(STEP, "vigild", "session_adopted", &[("leader_pid", &session.pid().to_string())]);
    let adopted_id: u64 = adopted.field("session").and_then(|s| s.parse().ok()).expect("session=");
    assert_ne!(adopted_id, id);
    let open = h.wait_for_event(STEP, "vigild", "session_open", &[("session", &id.to_string())]);
    assert!(open.has("replaces", &adopted_id.to_string()), "{}", open.raw);
    assert!(position(&h, &adopted) < position(&h, &open));
    let listed: Vec<u64> = h.vigild().list_sessions().iter().filter(|s| s.user == user.name).map(|s| s.id).collect();
    assert_eq!(listed, vec![id], "one session for the login, the registered one");
    let (closed, run) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS), "{}", run.stderr);
    h.wait_for_event(STEP, "vigild", "session_close", &[("session", &id.to_string())]);
    assert!(h.session_records("session_end", adopted_id).is_empty(), "the adopted one is replaced, not ended");
}

// ---- refusals held back for a user who went quiet -------------------------------------------

/// How often vigild records what it held back (admission.rs REPORT_PERIOD).
const REPORT_PERIOD: Duration = Duration::from_secs(60);

/// A user's connections over the per-user limit are refused; the first refusal is
/// recorded and the rest held back for the minute. The user then goes quiet, and nobody
/// else is refused: once the user has been quiet for a period, vigild's periodic summary
/// records what it held back (`refusals_unreported`), within two periods of the flood.
#[test]
fn refusals_held_back_for_a_user_who_went_quiet_are_recorded() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    let started = Instant::now();
    let attacker = h.create_user("quiet");
    let mut flood = h.flood_as(&attacker, &["--timeout-ms", "2000", "conns", "40"]);
    let ready = flood.wait_ready(STEP * 3);
    let (done, _) = flood.finish(STEP);
    assert!(ready.refused >= 2, "connections refused over the limit: {ready:?}");
    let reported = h.wait_for_event(STEP, "vigild", "connection_refused", &[("uid", &attacker.uid.to_string())]);
    let summary = h.wait_for_event(REPORT_PERIOD * 2 + STEP, "vigild", "refusals_unreported", &[]);
    let connections: u64 = summary.field("connections").and_then(|n| n.parse().ok()).expect("connections=");
    assert_eq!(connections, u64::from(ready.refused) - 1, "every refusal but the recorded one: {} / {}", reported.raw, summary.raw);
    assert!(summary.has("messages", "0"), "{}", summary.raw);
    eprintln!("refusals_unreported {:?} after start: {} ({done:?})", started.elapsed(), summary.raw);
}

// ---- logind asked to end a session, and not there ------------------------------------------

/// The file logind keeps for a session it tracks (`/run/systemd/sessions/<ses>`, named
/// after the login's audit session), written for a login no logind tracks here and
/// removed when dropped (on a panic too). Left alone when it exists already.
struct LogindFile(Option<PathBuf>);

impl LogindFile {
    fn write(ses: u32, uid: u32) -> LogindFile {
        let path = Path::new("/run/systemd/sessions").join(ses.to_string());
        if path.exists() {
            return LogindFile(None);
        }
        std::fs::create_dir_all("/run/systemd/sessions").expect("/run/systemd/sessions");
        std::fs::write(&path, format!("# vigil-e2e: no logind tracks this login\nUID={uid}\n")).expect("write the session file");
        LogindFile(Some(path))
    }
}

impl Drop for LogindFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// vigild ends a session logind tracks (an admin's `vigilctl terminate`) and asks logind
/// to end it too, on the bus vigild serves on. Nobody owns `org.freedesktop.login1`
/// there, so the bus answers the call with an error: `logind_terminate_failed` names the
/// session, logind's id and the error, and the session was ended all the same.
#[test]
fn a_logind_that_does_not_end_the_session_is_recorded() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_bus(BusPolicy::Packaging);
    h.start_vigild(VigildOpts::default().config("[defaults]\nidle_timeout = \"1h\"\nkill_grace = \"1s\"\n"));
    assert!(!h.bus().name_has_owner("org.freedesktop.login1"), "no logind on the harness's bus");
    let user = h.create_user("logind");
    let module = paths::pam_module().display().to_string();
    let stack =
        PamStack::permit_auth_account().session("required", "pam_loginuid.so", &[]).session("required", &module, &h.vigil_args().to_args());
    let service = h.install_pam_service("logind", &stack);
    let session = h.open_pam_session(&h.pam_host(&service, &user.name));
    assert_eq!(session.open_rc(), PAM_SUCCESS, "{}", session.stderr_text());
    let id = session.session_id_u64();
    let ses = vigil_host::procfs::audit_session_id(session.pid());
    assert_ne!(ses, vigil_host::procfs::NO_AUDIT_SESSION, "pam_loginuid gave the login an audit session");
    let _file = LogindFile::write(ses, user.uid);

    let out = h.vigild().vigilctl(&["terminate", &id.to_string()]);
    assert!(out.status.success(), "vigilctl terminate: {}", String::from_utf8_lossy(&out.stderr));
    let end = h.wait_for_event(STEP, "vigild", "session_end", &[("session", &id.to_string()), ("reason", "admin")]);
    assert!(end.has("logind_session", &ses.to_string()), "{}", end.raw);
    let failed = h.wait_for_event(STEP, "vigild", "logind_terminate_failed", &[("session", &id.to_string())]);
    assert!(failed.has("logind_session", &ses.to_string()), "{}", failed.raw);
    let error = failed.field("error").unwrap_or_default();
    assert!(error.contains("login1") || error.contains("DBus.Error"), "the bus's answer: {}", failed.raw);
    h.vigild().wait_session_gone(id, STEP);
    wait_for(STEP, "the login's process to be ended", || {
        if ProcInfo::read(session.pid()).is_some_and(|p| p.is_alive()) { Err("pam_host still runs".to_string()) } else { Ok(()) }
    });
}
