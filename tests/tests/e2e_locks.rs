//! End-to-end tests of user locks (`vigilctl lock`): a real sshd whose account stack
//! has `account [perm_denied=die default=ignore] pam_vigil.so` and whose session stack
//! registers with vigild, real ssh clients (password and public key), a real `su -`
//! (with the harness's lines in /etc/pam.d/su, restored after), a real sudo, and the
//! records in the file the real rsyslogd writes.
//!
//! What a locked user and an admin see is checked: the sessions gone, the message on
//! the refused client's terminal (sshd sends the account stage's text as a banner; ssh
//! prints banners at LogLevel INFO), the refusal's exit code, and the records.
//!
//! Timing: only generous upper bounds are waited for; the measured times are printed.
//!
//! Needs root and the release build of the workspace: see tests/README.md.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vigil_e2e::login::{Login, login_with};
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::sudo::reauth_stack;
use vigil_e2e::{Harness, LogLine, PamStack, SshOpts, SshdOpts, TestUser, VigildOpts, paths, require_root, wait_for, wait_until};

const KILL_GRACE: Duration = Duration::from_secs(1);
const CONFIG: &str = "[defaults]\nidle_timeout = \"1h\"\nkill_grace = \"1s\"\n";
/// A single step (a login, a record that is already due), on a shared, noisy machine.
const STEP: Duration = Duration::from_secs(15);
/// What the module shows a locked user (protocol/src/lock.rs, `LockInfo::message`).
const LOCKED_TEXT: &str = "is locked by root";
const WHY: &str = "laptop reported stolen; call security";
/// libpam's PAM_PERM_DENIED.
const PAM_PERM_DENIED: i32 = 6;

/// rsyslogd, vigild (private socket) and sshd whose account stack ends with the lock
/// check and whose session stack registers with vigild; public keys accepted too.
fn harness() -> Harness {
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let module = paths::pam_module().display().to_string();
    let args = h.vigil_args().to_args();
    let stack = unix_stack().account("[perm_denied=die default=ignore]", &module, &args).session("required", &module, &args);
    h.start_sshd(SshdOpts::default().stack(stack).config("PubkeyAuthentication yes"));
    h
}

fn vigilctl_ok(h: &Harness, args: &[&str]) -> String {
    let out = h.vigild().vigilctl(args);
    assert!(out.status.success(), "vigilctl {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ssh login running `true` that shows banners (LogLevel INFO, given first: ssh
/// keeps the first value); returns its exit code and what it wrote on stderr.
fn try_ssh(h: &Harness, user: &TestUser, opts: SshOpts) -> (Option<i32>, String) {
    let client = h.ssh_command_with(user, &opts.option("LogLevel=INFO").command("echo VIGIL-LOGGED-IN"));
    let status = client.wait_exit(STEP);
    let out = client.stdout_text();
    assert!(status.is_some(), "the ssh client did not end within {STEP:?}; stderr: {}", client.stderr_text());
    let code = status.and_then(|s| s.code());
    if code == Some(0) {
        assert!(out.contains("VIGIL-LOGGED-IN"), "logged in without running the command: {out}");
    }
    (code, client.stderr_text())
}

/// A key pair for `user` in the harness's directory, its public half in the user's
/// `~/.ssh/authorized_keys`; returns the ssh options that log in with it only.
fn public_key_login(h: &Harness, user: &TestUser) -> SshOpts {
    let key = h.path(&format!("key-{}", user.name));
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "vigil-e2e", "-f"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let ssh_dir = user.home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let authorized = ssh_dir.join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
    for (path, mode) in [(&ssh_dir, 0o700), (&authorized, 0o600)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        nix::unistd::chown(path.as_path(), Some(user.uid.into()), Some(user.gid.into())).unwrap();
    }
    SshOpts::default()
        .option("PubkeyAuthentication=yes")
        .option("PreferredAuthentications=publickey")
        .option("PasswordAuthentication=no")
        .option("BatchMode=yes")
        .option("IdentitiesOnly=yes")
        .option(&format!("IdentityFile={}", key.display()))
}

/// vigild's records of `event` about `user`, in log order.
fn records(h: &Harness, event: &str, user: &str) -> Vec<LogLine> {
    h.auth_log().into_iter().filter(|l| l.is_event("vigild", event) && l.has("user", user)).collect()
}

#[track_caller]
fn wait_record(h: &Harness, event: &str, fields: &[(&str, &str)]) -> LogLine {
    h.wait_for_event(STEP, "vigild", event, fields)
}

/// `su - USER -c true` run by root (no terminal: su reads no password as root).
fn su_login(user: &TestUser) -> Output {
    let mut cmd = Command::new("su");
    cmd.args(["-", &user.name, "-c", "true"]).stdin(Stdio::null());
    vigil_e2e::process::run_bounded(&mut cmd, STEP, "su -")
}

/// The lines that make `su` (and `su -`, whose su-l includes su) check locks.
fn su_lock_lines(h: &Harness) -> Vec<String> {
    let args = h.vigil_args().to_args().join(" ");
    vec![format!("account [perm_denied=die default=ignore] {} {args}", paths::pam_module().display())]
}

/// A user with two ssh sessions is locked: both end, a new password login, a public-key
/// login and `su -` are refused with the message; sudo run by the locked user from a
/// process vigil does not supervise is refused at sudo's account stage even with the
/// right password; another user logs in normally; the records say all of it; unlock
/// lets the user in again.
#[test]
fn a_locked_user_is_ended_and_refused_everywhere_and_others_are_not() {
    require_root!();
    let h = harness();
    let (alice, bob) = (h.create_user("lka"), h.create_user("lkb"));
    let key_login = public_key_login(&h, &alice);
    let sudo_service = h.install_sudo(&alice, &reauth_stack(&paths::pam_module(), &h.vigil_args()));
    h.patch_su(&su_lock_lines(&h));
    // A process of alice's that vigil does not supervise (runuser's PAM service has no
    // vigil session line): the lock does not end it, so her sudo must be refused.
    let mut unsupervised = Command::new("runuser")
        .args(["-u", &alice.name, "--", "sh", "-c", "read pw; printf '%s\\n' \"$pw\" | sudo -S -p '' true; echo RC=$?"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let first: Login = login_with(&h, &alice, &SshOpts::default(), STEP);
    let second: Login = login_with(&h, &alice, &SshOpts::default(), STEP);
    let (code, _) = try_ssh(&h, &alice, key_login.clone());
    assert_eq!(code, Some(0), "the public key logs alice in before the lock");

    let locked_at = Instant::now();
    let said = vigilctl_ok(&h, &["lock", "--user", &alice.name, "--why", WHY]);
    assert!(said.contains("2 session(s) ended"), "{said}");
    for login in [&first, &second] {
        wait_until(KILL_GRACE + STEP, "the locked user's sessions to end", || !login.server.is_alive() && !login.client.is_alive());
    }
    eprintln!("locks: both sessions gone {:?} after the lock (kill_grace {KILL_GRACE:?})", locked_at.elapsed());
    let start = wait_record(&h, "lock_start", &[("user", &alice.name), ("sessions", "2"), ("until", "none"), ("by", "root")]);
    assert_eq!(start.field("why").as_deref(), Some(WHY), "{}", start.raw);
    for login in [&first, &second] {
        let end = wait_record(&h, "session_end", &[("session", &login.id().to_string()), ("reason", "lock")]);
        assert!(end.field("processes").is_some(), "{}", end.raw);
    }

    let (code, stderr) = try_ssh(&h, &alice, SshOpts::default());
    assert_ne!(code, Some(0), "a password login of a locked user is refused");
    assert!(stderr.contains(LOCKED_TEXT) && stderr.contains(WHY), "the refused password login shows why: {stderr}");
    let (code, stderr) = try_ssh(&h, &alice, key_login);
    assert_ne!(code, Some(0), "a public-key login of a locked user is refused");
    assert!(stderr.contains(LOCKED_TEXT), "the refused key login shows why: {stderr}");
    let su = su_login(&alice);
    assert!(!su.status.success(), "su - of a locked user is refused");
    assert!(String::from_utf8_lossy(&su.stderr).contains(LOCKED_TEXT), "su shows why: {}", String::from_utf8_lossy(&su.stderr));

    use std::io::{Read, Write};
    unsupervised.stdin.take().unwrap().write_all(format!("{}\n", alice.password).as_bytes()).unwrap();
    let deadline = Instant::now() + STEP;
    while unsupervised.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = unsupervised.kill();
    let _ = unsupervised.wait();
    let (mut out, mut err) = (String::new(), String::new());
    unsupervised.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    unsupervised.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(out.contains("RC=1"), "sudo by a locked user, right password, is refused: stdout {out:?} stderr {err:?}");
    assert!(err.contains(LOCKED_TEXT), "sudo shows why: {err}");

    let (code, _) = try_ssh(&h, &bob, SshOpts::default());
    assert_eq!(code, Some(0), "another user logs in normally");

    let refused = wait_for(STEP, "four login_refused records", || {
        let r = records(&h, "login_refused", &alice.name);
        if r.len() >= 4 { Ok(r) } else { Err(format!("{} so far", r.len())) }
    });
    let services: Vec<String> = refused.iter().filter_map(|l| l.field("service")).collect();
    assert_eq!(services.iter().filter(|s| *s == h.sshd().service_name()).count(), 2, "{services:?}");
    assert!(services.iter().any(|s| s == "su-l"), "{services:?}");
    let by_sudo = refused.iter().find(|l| l.has("service", &sudo_service)).unwrap_or_else(|| panic!("{services:?}"));
    // sudo authenticates the caller: PAM_USER is alice there (the real uid and
    // PAM_RUSER would refuse her too, with targetpw or rootpw: unit tests).
    assert!(by_sudo.has("reason", "locked") && by_sudo.has("locked_by", "root"), "{}", by_sudo.raw);
    assert!(refused.iter().all(|l| l.field("uid") == Some(alice.uid.to_string())));

    // The report's unusual section lists each refusal, with the line it rests on.
    let log = h.rsyslog().auth_log_path().display().to_string();
    let report: serde_json::Value = serde_json::from_str(&vigilctl_ok(&h, &["audit", "report", &log, "--json"])).unwrap();
    let items: Vec<&serde_json::Value> =
        report["unusual"]["items"].as_array().unwrap().iter().filter(|i| i["rule"] == "login_refused").collect();
    assert_eq!(items.len(), refused.len(), "{report}");
    let text = std::fs::read_to_string(&log).unwrap();
    for item in items {
        let place = item["evidence"][0].as_str().unwrap();
        let line: usize = place.rsplit_once(':').unwrap().1.parse().unwrap();
        assert!(text.lines().nth(line - 1).unwrap().contains("event=login_refused"), "{place}");
    }

    let listed: serde_json::Value = serde_json::from_str(&vigilctl_ok(&h, &["locks", "--json"])).unwrap();
    assert_eq!(listed[0]["user"], alice.name.as_str(), "{listed}");
    assert_eq!(listed[0]["until"], serde_json::Value::Null, "{listed}");
    vigilctl_ok(&h, &["unlock", "--user", &alice.name, "--why", "laptop found"]);
    let end = wait_record(&h, "lock_end", &[("user", &alice.name), ("reason", "lifted"), ("by", "root")]);
    assert!(end.has("why", "laptop found"), "{}", end.raw);
    assert!(!h.lock_dir().join(alice.uid.to_string()).exists(), "the lock file is gone");
    let (code, stderr) = try_ssh(&h, &alice, SshOpts::default());
    assert_eq!(code, Some(0), "unlocked, alice logs in: {stderr}");
    assert!(vigilctl_ok(&h, &["locks"]).contains("no user is locked"));
}

/// A lock holds across a SIGKILL and restart of vigild, and while vigild is stopped:
/// with `fail=open` the locked user is still refused (the module reads the lock file
/// itself and records the refusal itself), and another user logs in within the
/// module's deadline.
#[test]
fn a_lock_holds_across_a_sigkill_and_while_vigild_is_down() {
    require_root!();
    let h = harness();
    let (alice, bob) = (h.create_user("lkc"), h.create_user("lkd"));
    vigilctl_ok(&h, &["lock", "--user", &alice.name, "--why", "incident 42", "--for", "1h"]);
    wait_record(&h, "lock_start", &[("user", &alice.name), ("sessions", "0")]);

    // carol is logged in when vigild dies between writing her lock file and ending her
    // sessions (the file is written first): the restarted vigild ends the restored
    // session.
    let carol = h.create_user("lki");
    let hers = login_with(&h, &carol, &SshOpts::default(), STEP);
    h.vigild().signal(Signal::SIGKILL);
    h.vigild().wait_exit(STEP).expect("vigild to die of SIGKILL");
    h.vigild().stop(); // reaps
    let lock = vigil_protocol::LockInfo {
        user: carol.name.clone(),
        uid: carol.uid,
        by: "root".into(),
        why: "written just before the kill".into(),
        since_usec: vigil_protocol::time::now_usec(),
        until_usec: 0,
    };
    let path = h.lock_dir().join(carol.uid.to_string());
    std::fs::write(&path, lock.to_file()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    h.vigild().start();
    wait_record(&h, "session_restored", &[("session", &hers.id().to_string())]);
    wait_record(&h, "session_end", &[("session", &hers.id().to_string()), ("reason", "lock")]);
    wait_until(KILL_GRACE + STEP, "carol's restored session to end", || !hers.server.is_alive());
    let listed = vigilctl_ok(&h, &["locks"]);
    assert!(listed.contains(&alice.name) && listed.contains("incident 42"), "the restarted vigild lists the lock: {listed}");
    let (code, stderr) = try_ssh(&h, &alice, SshOpts::default());
    assert!(code != Some(0) && stderr.contains("incident 42"), "refused after the restart: {stderr}");

    h.vigild().stop();
    let (code, stderr) = try_ssh(&h, &alice, SshOpts::default());
    assert!(code != Some(0) && stderr.contains("incident 42"), "refused with vigild stopped and fail=open: {stderr}");
    let own = h.wait_for_event(STEP, "pam_vigil", "login_refused", &[("user", &alice.name), ("reason", "locked")]);
    assert!(own.field("error").is_some(), "the module's own record says vigild did not answer: {}", own.raw);
    let started = Instant::now();
    let (code, stderr) = try_ssh(&h, &bob, SshOpts::default());
    assert_eq!(code, Some(0), "another user logs in with vigild down (fail=open): {stderr}");
    eprintln!("locks: a login with vigild down took {:?} (module deadline 2 s)", started.elapsed());
    h.vigild().start();
}

/// A lock with `--for` ends by itself (`lock_end reason=expired`), its file goes, and
/// the user logs in.
#[test]
fn a_lock_for_a_while_ends_by_itself() {
    require_root!();
    let h = harness();
    let alice = h.create_user("lke");
    vigilctl_ok(&h, &["lock", "--user", &alice.name, "--why", "cooling off", "--for", "4s"]);
    let start = wait_record(&h, "lock_start", &[("user", &alice.name)]);
    assert_ne!(start.field("until").as_deref(), Some("none"), "{}", start.raw);
    let (code, _) = try_ssh(&h, &alice, SshOpts::default());
    assert_ne!(code, Some(0), "refused while the lock runs");
    let end = wait_record(&h, "lock_end", &[("user", &alice.name), ("reason", "expired")]);
    assert!(end.field("duration_s").is_some(), "{}", end.raw);
    assert!(!h.lock_dir().join(alice.uid.to_string()).exists(), "the expired lock's file is gone");
    let (code, stderr) = try_ssh(&h, &alice, SshOpts::default());
    assert_eq!(code, Some(0), "the lock ran out: {stderr}");

    // A lock that runs out while vigild is stopped ends at its next start.
    vigilctl_ok(&h, &["lock", "--user", &alice.name, "--why", "overnight", "--for", "2s"]);
    h.vigild().stop();
    std::thread::sleep(Duration::from_secs(3));
    let (code, stderr) = try_ssh(&h, &alice, SshOpts::default());
    assert_eq!(code, Some(0), "the module reads the end itself, vigild down: {stderr}");
    h.vigild().start();
    let end = wait_record(&h, "lock_end", &[("user", &alice.name), ("reason", "expired"), ("until", &end_of(&h, &alice, "overnight"))]);
    assert!(end.field("duration_s").is_some(), "{}", end.raw);
    assert!(!h.lock_dir().join(alice.uid.to_string()).exists(), "removed at the start");
}

/// `until=` of `user`'s lock_start that had `why`.
fn end_of(h: &Harness, user: &TestUser, why: &str) -> String {
    records(h, "lock_start", &user.name).into_iter().find(|l| l.has("why", why)).and_then(|l| l.field("until")).expect("its lock_start")
}

/// Root is never locked; an ordinary user cannot lock, unlock or list locks (vigild
/// refuses, and records the refusal); a lock replaced says what it replaced.
#[test]
fn root_is_never_locked_and_ordinary_users_cannot_touch_locks() {
    require_root!();
    let h = harness();
    let (alice, bob) = (h.create_user("lkf"), h.create_user("lkg"));
    let out = h.vigild().vigilctl(&["lock", "--user", "root", "--why", "oops"]);
    assert!(!out.status.success(), "locking root is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("never locks out the admin"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!h.lock_dir().join("0").exists());

    vigilctl_ok(&h, &["lock", "--user", &alice.name, "--why", "first", "--for", "1h"]);
    vigilctl_ok(&h, &["lock", "--user", &alice.name, "--why", "second"]);
    let replaced = wait_record(&h, "lock_start", &[("user", &alice.name), ("why", "second")]);
    assert!(replaced.field("replaced_until").is_some(), "{}", replaced.raw);

    for (args, method) in [
        (vec!["lock", "--user", alice.name.as_str(), "--why", "x"], "LockUser"),
        (vec!["unlock", "--user", alice.name.as_str()], "UnlockUser"),
        (vec!["locks"], "ListLocks"),
    ] {
        let out = h.vigild().vigilctl_as(&bob.name, &args);
        assert!(!out.status.success(), "{args:?} as an ordinary user is refused");
        wait_record(&h, "call_refused", &[("method", method), ("uid", &bob.uid.to_string()), ("reason", "root_only")]);
    }
    assert!(vigilctl_ok(&h, &["locks"]).contains("second"), "the lock is still there");

    // PAM_RUSER names the caller (su and sudo set it): bob's account, asked for by
    // locked alice, is refused, and the record names both.
    let module = paths::pam_module().display().to_string();
    let stack = PamStack::new()
        .auth("required", "pam_permit.so", &[])
        .account("[perm_denied=die default=ignore]", &module, &h.vigil_args().to_args())
        .session("required", "pam_permit.so", &[]);
    let service = h.install_pam_service("ruser", &stack);
    let run = h.run_pam_host(&h.pam_host(&service, &bob.name).ruser(&alice.name).auth());
    assert_eq!(run.report().auth.as_ref().and_then(|a| a.acct_mgmt_rc), Some(PAM_PERM_DENIED), "{:?}", run.report());
    wait_record(&h, "login_refused", &[("user", &alice.name), ("pam_user", &bob.name), ("service", &service)]);
    let out = h.vigild().vigilctl(&["unlock", "--user", &bob.name]);
    assert!(!out.status.success(), "unlocking a user who is not locked says so");
}

/// The second wall: a stack that skips the account stage's lock check (pam_unix's
/// `new_authtok_reqd=done` does, for an expired password) still cannot keep a locked
/// user's session: vigild ends it as soon as it is registered.
#[test]
fn a_session_of_a_locked_user_that_skipped_the_account_check_is_ended_at_once() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let alice = h.create_user("lkh");
    vigilctl_ok(&h, &["lock", "--user", &alice.name, "--why", "second wall"]);
    // Session line only: no account check at all. vigild ends the session as soon as it
    // registers it: its leader ignores the SIGHUP so that it prints its OPEN line before
    // the SIGKILL after kill_grace ends it.
    let service = h.install_vigil_service("nolockcheck", &h.vigil_args());
    let mut session = h.open_pam_session(&h.pam_host(&service, &alice.name).tty("pts/9").ignore_hup());
    let id = session.session_id_u64();
    let end = wait_record(&h, "session_end", &[("session", &id.to_string()), ("reason", "lock")]);
    assert!(end.field("processes").is_some(), "{}", end.raw);
    wait_until(KILL_GRACE + STEP, "the locked user's session leader to be ended", || !vigil_e2e::process::pid_alive(session.pid()));
    session.kill();
}
