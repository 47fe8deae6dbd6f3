//! Remote verbs: `vigilctl -H [USER@]HOST VERB` through a real ssh to the harness's sshd
//! on 127.0.0.1, whose logins talk to a second vigild (sshd's `SetEnv VIGIL_SOCKET=` its
//! socket), so that a `-H` that is ignored, or a local VIGIL_SOCKET passed on, lists the
//! wrong vigild's sessions and fails.
//!
//! The admin is a test user running vigilctl locally with their own `~/.ssh` (config
//! with host aliases, keys, known_hosts holding the test sshd's key): what an admin's
//! ssh reads, and nothing of root's. Their keys are authorized for root and for a test
//! user by sshd's `AuthorizedKeysFile` in the test's directory; each key sets the remote
//! PATH (`PermitUserEnvironment PATH`): one with the built vigilctl, one without any
//! (a host without vigil).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use vigil_e2e::process::{describe_output, pid_alive, run_bounded};
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{Harness, PamHostSession, SessionInfo, SshdOpts, TestUser, VigildOpts, require_root};

/// Beyond the remote `--timeout`, what a local vigilctl waits for ssh (remote.rs).
const SSH_ALLOWANCE: Duration = Duration::from_secs(30);
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

struct Fleet {
    admin: TestUser,
    /// The remote login user (non-root: sees its own sessions).
    remote_user: TestUser,
    /// A user of the remote host to lock.
    lockable: TestUser,
    /// The remote service's session of `remote_user` (on the second vigild).
    remote_session: PamHostSession,
    remote_service: String,
    /// The same user's session on the first vigild (this machine's).
    local_session: PamHostSession,
    local_service: String,
    /// Accepts connections into its backlog and never answers (ssh waits for a banner).
    _blackhole: std::net::TcpListener,
}

fn chown_to(path: &Path, user: &TestUser) {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// An ed25519 key pair at `path` (and `path.pub`) owned by `owner`; the public line.
fn keygen(path: &Path, owner: &TestUser) -> String {
    let out = run_bounded(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "vigil-e2e-admin", "-f"]).arg(path),
        Duration::from_secs(30),
        "ssh-keygen",
    );
    assert!(out.status.success(), "ssh-keygen: {}", describe_output(&out));
    let public = path.with_extension("pub");
    chown_to(path, owner);
    chown_to(&public, owner);
    std::fs::read_to_string(&public).unwrap_or_else(|e| panic!("read {}: {e}", public.display())).trim().to_string()
}

fn set_up(h: &mut Harness) -> Fleet {
    h.start_vigild(VigildOpts::default().no_bus());
    h.start_second_vigild(VigildOpts::default());
    let second_socket = h.second_vigild().socket().to_path_buf();
    let second_locks = h.second_vigild().lock_dir();
    let admin = h.create_user("radm");
    let remote_user = h.create_user("rusr");
    let lockable = h.create_user("rlck");

    // The admin's keys; both authorized for root and the remote user, each setting the
    // remote PATH: with the built vigilctl, or none at all.
    let ssh_dir = admin.home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", ssh_dir.display()));
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod ~/.ssh");
    chown_to(&ssh_dir, &admin);
    let with_vigil = keygen(&ssh_dir.join("id_ed25519"), &admin);
    let without_vigil = keygen(&ssh_dir.join("id_novigil"), &admin);
    let bin_dir = vigil_e2e::paths::vigilctl_bin().parent().expect("vigilctl's directory").display().to_string();
    let authorized = h.path("authorized");
    std::fs::create_dir_all(&authorized).expect("mkdir authorized");
    std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o755)).expect("chmod authorized");
    let keys = format!("environment=\"PATH={bin_dir}:/usr/bin:/bin\" {with_vigil}\nenvironment=\"PATH=/nonexistent\" {without_vigil}\n");
    for user in ["root", remote_user.name.as_str()] {
        write_mode(&authorized.join(user), &keys, 0o644);
    }

    let sshd = h.start_sshd(
        SshdOpts::default()
            .config("PubkeyAuthentication yes")
            .config(&format!("AuthorizedKeysFile {}/%u", authorized.display()))
            .config("PermitRootLogin prohibit-password")
            .config("AllowUsers root")
            .config("PermitUserEnvironment PATH")
            .config(&format!("SetEnv VIGIL_SOCKET={}", second_socket.display())),
    );
    let port = sshd.port();
    let host_key = std::fs::read_to_string(h.path("ssh_host_ed25519_key.pub")).expect("the test sshd's host key");
    let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    write_mode(&ssh_dir.join("known_hosts"), &format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")), 0o644);
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a listener that never answers");
    let blackhole_port = blackhole.local_addr().expect("its port").port();
    let closed_port = vigil_e2e::sshd::free_port();
    write_mode(
        &ssh_dir.join("config"),
        &format!(
            "Host remote novigil unreachable blackhole\n\
             \x20   HostName 127.0.0.1\n\
             \x20   BatchMode yes\n\
             \x20   IdentitiesOnly yes\n\
             \x20   StrictHostKeyChecking yes\n\
             \x20   UserKnownHostsFile ~/.ssh/known_hosts\n\
             Host remote\n\
             \x20   Port {port}\n\
             Host novigil\n\
             \x20   Port {port}\n\
             \x20   IdentityFile ~/.ssh/id_novigil\n\
             Host unreachable\n\
             \x20   Port {closed_port}\n\
             Host blackhole\n\
             \x20   Port {blackhole_port}\n\
             Host *\n\
             \x20   IdentityFile ~/.ssh/id_ed25519\n"
        ),
        0o600,
    );
    for name in ["known_hosts", "config"] {
        chown_to(&ssh_dir.join(name), &admin);
    }

    // The remote user's sessions: one on each vigild, told apart by their services.
    let local_service = h.install_vigil_service("rlocal", &h.vigil_args());
    let remote_service = h.install_vigil_service("rremote", &h.vigil_args().socket(&second_socket).locks(&second_locks));
    let local_session = h.open_pam_session(&h.pam_host(&local_service, &remote_user.name).tty("pts/71"));
    assert_eq!(local_session.open_rc(), PAM_SUCCESS, "{}", local_session.stderr_text());
    let remote_session = h.open_pam_session(&h.pam_host(&remote_service, &remote_user.name).tty("pts/72"));
    assert_eq!(remote_session.open_rc(), PAM_SUCCESS, "{}", remote_session.stderr_text());
    Fleet { admin, remote_user, lockable, remote_session, remote_service, local_session, local_service, _blackhole: blackhole }
}

impl Fleet {
    /// `vigilctl ARGS` run by the admin on this machine (runuser), with VIGIL_SOCKET set
    /// to this machine's vigild: the remote side must not get it.
    fn vigilctl(&self, h: &Harness, args: &[&OsStr]) -> Output {
        vigil_e2e::conformance::vigilctl_ran(args);
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.admin.name, "--"]).arg(vigil_e2e::paths::vigilctl_bin()).args(args);
        cmd.env("VIGIL_SOCKET", h.vigild().socket());
        run_bounded(&mut cmd, RUN_TIMEOUT, "vigilctl -H (as the admin)")
    }

    fn vigilctl_str(&self, h: &Harness, args: &[&str]) -> Output {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        self.vigilctl(h, &args)
    }
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[track_caller]
fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", describe_output(out));
    text(out).0
}

#[track_caller]
fn sessions(out: &Output, what: &str) -> Vec<SessionInfo> {
    let stdout = ok(out, what);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{what} prints the session list ({e}): {stdout}"))
}

#[test]
fn remote_verbs_run_on_the_other_host_with_their_arguments_exact() {
    require_root!();
    let mut h = Harness::with_syslog();
    let fleet = set_up(&mut h);
    let remote_id = fleet.remote_session.session_id_u64();
    let local_id = fleet.local_session.session_id_u64();
    let user = fleet.remote_user.name.as_str();
    let as_user = format!("{user}@remote");

    // The remote user's view: their session on the other host's vigild, not this one's.
    let listed = sessions(&fleet.vigilctl_str(&h, &["-H", &as_user, "list", "--json"]), "vigilctl -H USER@remote list --json");
    assert!(
        listed.iter().any(|s| s.id == remote_id && s.service == fleet.remote_service && s.user == user),
        "the second vigild's session {remote_id} ({}) is listed: {listed:?}",
        fleet.remote_service
    );
    assert!(listed.iter().all(|s| s.service != fleet.local_service), "nothing of this machine's vigild: {listed:?}");
    let there: Vec<u64> = h.second_vigild().list_sessions().iter().filter(|s| s.user == user).map(|s| s.id).collect();
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), there, "what the second vigild holds for {user}");
    let here = h.vigild().list_sessions();
    assert!(here.iter().any(|s| s.id == local_id && s.service == fleet.local_service), "this machine's vigild holds its own: {here:?}");

    // Root over ssh, with --timeout passed on; the text views too.
    let all = sessions(&fleet.vigilctl_str(&h, &["-H", "root@remote", "--timeout", "7s", "list", "--json"]), "-H root@remote list --json");
    assert!(all.iter().any(|s| s.id == remote_id && s.service == fleet.remote_service), "{all:?}");
    let shown = ok(&fleet.vigilctl_str(&h, &["--host=root@remote", "show", &remote_id.to_string()]), "--host=root@remote show ID");
    assert!(shown.contains(&format!("session {remote_id}")) && shown.contains(&fleet.remote_service), "{shown}");

    // Arguments reach the remote vigilctl exactly: a lock's reason, read back as JSON.
    let marker = h.path("shell-ran");
    let why = format!("a b; c 'd' \"e\" $(touch {m}) `touch {m}` * \\ ~root %x", m = marker.display());
    let lock = ["-H", "root@remote", "lock", "--user", &fleet.lockable.name, "--why", &why];
    ok(&fleet.vigilctl_str(&h, &lock), "-H root@remote lock --user --why");
    let locks = ok(&fleet.vigilctl_str(&h, &["-H", "root@remote", "locks", "--json"]), "-H root@remote locks --json");
    let locks: serde_json::Value = serde_json::from_str(&locks).unwrap_or_else(|e| panic!("locks --json ({e}): {locks}"));
    let entry = locks.as_array().and_then(|a| a.iter().find(|l| l["user"] == fleet.lockable.name.as_str()));
    assert_eq!(entry.and_then(|l| l["why"].as_str()), Some(why.as_str()), "the reason as given: {locks}");
    assert!(!marker.exists(), "no shell on either side ran a word of the argument");
    let here = ok(&h.vigild().vigilctl(&["locks", "--json"]), "this machine's locks");
    assert!(!here.contains(&fleet.lockable.name), "the lock is the other host's only: {here}");
    ok(&fleet.vigilctl_str(&h, &["-H", "root@remote", "unlock", "--user", &fleet.lockable.name, "--why", "done; ok"]), "unlock");

    // A verb that reads files reads the remote host's, by a name that is not UTF-8.
    let config = h.path("second").join(OsString::from_vec(b"conf \xff 'x'; y.toml".to_vec()));
    write_mode(&config, "[defaults]\nidle_timeout = \"20m\"\n", 0o644);
    let checked = fleet.vigilctl(&h, &[OsStr::new("-H"), OsStr::new("root@remote"), OsStr::new("check-config"), config.as_os_str()]);
    assert!(ok(&checked, "-H root@remote check-config NON-UTF-8").contains("OK, 0 policy block(s)"), "{}", describe_output(&checked));

    // A verb the remote vigild refuses: its own message and exit code, nothing of ssh.
    let refused = fleet.vigilctl_str(&h, &["-H", &as_user, "locks"]);
    let there = h.second_vigild().vigilctl_as(user, &["locks"]);
    let (_, err) = text(&refused);
    assert_eq!(refused.status.code(), there.status.code(), "the remote vigilctl's exit code: {}", describe_output(&refused));
    assert_ne!(refused.status.code(), Some(0));
    assert!(err.contains("permission denied") && !err.contains("ssh to"), "{err}");
    assert_eq!(err, text(&there).1, "the remote vigilctl's own message");

    // ssh's failure: an unreachable host (a closed port) is exit 255, said apart.
    let unreachable = fleet.vigilctl_str(&h, &["-H", &format!("{user}@unreachable"), "list"]);
    let (_, err) = text(&unreachable);
    assert_eq!(unreachable.status.code(), Some(255), "{}", describe_output(&unreachable));
    assert!(err.contains("Connection refused"), "ssh's own message: {err}");
    assert!(err.contains(&format!("ssh to {user}@unreachable failed")), "{err}");

    // A host without vigil: the remote shell finds no vigilctl.
    let bare = fleet.vigilctl_str(&h, &["-H", &format!("{user}@novigil"), "list"]);
    let (_, err) = text(&bare);
    assert_eq!(bare.status.code(), Some(127), "{}", describe_output(&bare));
    assert!(err.contains(&format!("vigil is not installed on {user}@novigil")), "{err}");
}

#[test]
fn a_remote_call_without_an_answer_ends_ssh_after_its_timeout() {
    require_root!();
    let mut h = Harness::with_syslog();
    let fleet = set_up(&mut h);
    let user = &fleet.remote_user.name;
    let started = Instant::now();
    let out = fleet.vigilctl_str(&h, &["-H", &format!("{user}@blackhole"), "--timeout", "1s", "list"]);
    let took = started.elapsed();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(255), "{}", describe_output(&out));
    assert!(err.contains(&format!("no answer from {user}@blackhole")), "{err}");
    let limit = Duration::from_secs(1) + SSH_ALLOWANCE;
    assert!(took >= limit && took < limit + Duration::from_secs(10), "gave up after {took:?}, not about {limit:?}");
    let pid: u32 = err
        .split("ssh (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the message names ssh's pid: {err}"));
    assert!(!pid_alive(pid), "ssh (pid {pid}) was ended");
    let left: Vec<_> = vigil_e2e::procfs::all_processes().into_iter().filter(|p| p.cmdline.contains("@blackhole")).collect();
    assert!(left.is_empty(), "no ssh left: {left:?}");
}
