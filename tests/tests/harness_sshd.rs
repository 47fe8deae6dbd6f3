//! The harness's real sshd and ssh sessions, with no vigil part involved (PAM stack of
//! pam_unix, plus pam_exec where a test needs to see what PAM saw): a password login
//! through sshd in a tmux pty, the server side found in /proc, a notty session, the
//! PAM service name, and a dropped harness leaving nothing behind. Needs root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_e2e::procfs::{ProcInfo, all_processes};
use vigil_e2e::sshd::{SBIN_DIR, SSHD_PREFIX, SshdSession, unix_stack};
use vigil_e2e::tmux::LOGIN_TIMEOUT;
use vigil_e2e::{Harness, SshOpts, SshdOpts, require_root, wait_until};

const STEP: Duration = Duration::from_secs(10);

/// What a harness made that must be gone once it is dropped.
struct Owned {
    pids: Vec<ProcInfo>,
    paths: Vec<PathBuf>,
    users: Vec<String>,
    sshd_program: String,
    tmux_socket: Option<PathBuf>,
}

impl Owned {
    /// Everything the harness spawned (sshd, tmux, ssh clients) and all processes under
    /// sshd and tmux now, the symlink, the PAM file, the directory, the users.
    fn of(h: &Harness, users: &[&str]) -> Owned {
        let mut pids: Vec<ProcInfo> = h.spawned().iter().filter_map(|r| ProcInfo::read(r.pid)).collect();
        pids.extend(h.sshd().processes());
        if let Some(pid) = h.tmux().pid() {
            pids.extend(vigil_e2e::procfs::descendants(pid));
        }
        let uids: Vec<u32> = users.iter().filter_map(|u| nix::unistd::User::from_name(u).ok().flatten()).map(|u| u.uid.as_raw()).collect();
        pids.extend(all_processes().into_iter().filter(|p| uids.contains(&p.uid)));
        Owned {
            pids,
            paths: [h.sshd().program(), h.sshd().pam_file()]
                .into_iter()
                .chain((!vigil_e2e::tempdir::keep_requested()).then(|| h.dir().to_path_buf()))
                .collect(),
            users: users.iter().map(|u| u.to_string()).collect(),
            sshd_program: h.sshd().service_name().to_string(),
            tmux_socket: Some(h.tmux().socket().to_path_buf()),
        }
    }

    /// Asserts that none of it is left.
    fn assert_gone(&self) {
        let alive: Vec<&ProcInfo> = self.pids.iter().filter(|p| p.still_running()).collect();
        assert!(alive.is_empty(), "processes of the harness still run: {alive:#?}");
        let by_name: Vec<ProcInfo> = all_processes()
            .into_iter()
            .filter(|p| p.is_alive())
            .filter(|p| {
                p.cmdline.starts_with(&self.sshd_program)
                    || self.users.iter().any(|u| p.cmdline.contains(&format!("{u}@")))
                    || self.tmux_socket.as_ref().is_some_and(|s| p.cmdline.contains(&s.display().to_string()))
            })
            .collect();
        assert!(by_name.is_empty(), "processes naming the harness's sshd, users or tmux: {by_name:#?}");
        for path in &self.paths {
            assert!(std::fs::symlink_metadata(path).is_err(), "{} still exists", path.display());
        }
        for user in &self.users {
            assert!(nix::unistd::User::from_name(user).ok().flatten().is_none(), "user {user} still exists");
        }
    }
}

/// `hello-<digits>-marker` followed by the `tty` line (`/dev/pts/N`) in the output (the
/// typed command shows `$RANDOM`, never digits).
fn marker_and_tty(screen: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
    lines.iter().enumerate().find_map(|(i, l)| {
        let digits = l.strip_prefix("hello-")?.strip_suffix("-marker")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let tty = lines.get(i + 1)?;
        tty.starts_with("/dev/pts/").then(|| (l.to_string(), tty.to_string()))
    })
}

#[test]
fn password_login_in_a_pty_through_the_harness_sshd() {
    require_root!();
    let mut h = Harness::new();
    h.start_sshd(SshdOpts::default());
    let user = h.create_user("ssh");
    let sshd_pid = h.sshd().pid().unwrap();
    assert!(h.sshd().service_name().starts_with(SSHD_PREFIX));
    assert_eq!(std::fs::read_link(h.sshd().program()).unwrap(), Path::new("/usr/sbin/sshd"), "the program is a symlink to the real sshd");

    let session = h.ssh_login(&user);
    assert!(session.is_alive());
    session.send_line("echo hello-$RANDOM-marker; tty");
    let (marker, tty) = session.wait_for(STEP, "the marker and the tty", marker_and_tty);
    eprintln!("seen: {marker} on {tty}");

    // The server side, from /proc: [priv] (root) under the harness's sshd, the user's
    // process, the shell on the pty the shell itself printed.
    let server = session.server_side(h.sshd()).expect("the server side of the connection");
    assert_eq!(server.user, user.name);
    assert_eq!(server.monitor.ppid, sshd_pid);
    assert_eq!(server.monitor.uid, 0);
    assert!(server.monitor.cmdline.ends_with("[priv]"), "{:?}", server.monitor);
    let user_proc = server.user_proc.as_ref().expect("the user's sshd process");
    assert_eq!(user_proc.uid, user.uid);
    assert!(server.has_pty(), "{user_proc:?}");
    assert!(user_proc.cmdline.ends_with(&format!("{}@{}", user.name, tty.trim_start_matches("/dev/"))), "{user_proc:?}");
    let shell = server.shell().expect("the user's shell");
    assert_eq!(shell.comm, "bash");
    assert_eq!(shell.uid, user.uid);
    assert_eq!(shell.ppid, user_proc.pid);
    assert_eq!(server.tty(), Some(PathBuf::from(&tty)));
    assert_eq!(std::fs::read_link(format!("/proc/{}/fd/0", shell.pid)).unwrap(), PathBuf::from(&tty));
    assert!(server.client.is_some_and(|c| Some(c.port()) == session.client_port()));
    // The same session found by user name.
    let by_user = h.sshd().sessions_of(&user.name);
    assert_eq!(by_user.len(), 1, "{by_user:#?}");
    assert_eq!(by_user[0].priv_pid(), server.priv_pid());

    h.sshd().wait_for_log(STEP, &format!("Accepted password for {}", user.name));

    session.send_line("exit");
    assert_eq!(session.wait_exit(STEP), 0, "{}", session.capture());
    wait_until(STEP, "the server side to end", || !server.is_alive() && h.sshd().sessions().is_empty());
    assert!(h.sshd().is_running(), "the listener stays");

    let owned = Owned::of(&h, &[&user.name]);
    drop(h);
    owned.assert_gone();
}

#[test]
fn notty_command_runs_under_sshd_and_ends_on_drop() {
    require_root!();
    let mut h = Harness::new();
    h.start_sshd(SshdOpts::default());
    let user = h.create_user("notty");
    let client = h.ssh_command(&user, "sleep 600");
    let server = client.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
    assert_eq!(server.user, user.name);
    assert_eq!(server.monitor.ppid, h.sshd().pid().unwrap());
    assert!(!server.has_pty(), "{server:#?}");
    assert!(server.user_proc.as_ref().unwrap().cmdline.ends_with(&format!("{}@notty", user.name)));
    assert_eq!(server.tty(), None);
    // The server side shows as soon as the user's shell runs; `sleep` replaces it a
    // moment later.
    let sleeper = vigil_e2e::wait_for(STEP, "sleep 600 under sshd", || {
        let now = client.wait_server_side(h.sshd(), LOGIN_TIMEOUT);
        now.processes.iter().find(|p| p.cmdline == "sleep 600").cloned().ok_or_else(|| format!("{:#?}", now.processes))
    });
    assert_eq!(sleeper.uid, user.uid);
    // And an interactive session next to it, so that drop has both kinds to end.
    let interactive = h.ssh_login(&user);
    assert_eq!(h.sshd().sessions_of(&user.name).len(), 2);
    assert!(interactive.is_alive() && client.is_running());

    let owned = Owned::of(&h, &[&user.name]);
    assert!(owned.pids.iter().any(|p| p.pid == sleeper.pid));
    drop(h);
    owned.assert_gone();
    assert!(!sleeper.still_running());
}

#[test]
fn sshd_reads_its_own_pam_service_not_the_machines() {
    require_root!();
    let guarded = ["/etc/pam.d/sshd", "/etc/ssh/sshd_config", "/etc/ssh/ssh_host_ed25519_key"];
    let before: Vec<Option<Vec<u8>>> = guarded.iter().map(|p| std::fs::read(p).ok()).collect();
    let mut h = Harness::new();
    // pam_exec runs `env` at session open and close and appends its output (PAM_SERVICE,
    // PAM_TYPE, PAM_USER, PAM_TTY, PAM_RHOST) to a file only this service names.
    let env_log = h.path("pam_exec-env.log");
    let stack = unix_stack().session("optional", "pam_exec.so", &[format!("log={}", env_log.display()), "/usr/bin/env".to_string()]);
    h.start_sshd(SshdOpts::default().stack(stack));
    let service = h.sshd().service_name().to_string();
    assert_eq!(h.sshd().pam_file(), Path::new("/etc/pam.d").join(&service));
    assert_eq!(h.sshd().program(), Path::new(SBIN_DIR).join(&service));
    let listener = ProcInfo::read(h.sshd().pid().unwrap()).unwrap();
    assert!(listener.cmdline.starts_with(&format!("{service}: {}/{service} -D -e -f", SBIN_DIR)), "{listener:?}");

    let user = h.create_user("svc");
    let session = h.ssh_login(&user);
    let server = session.server_side(h.sshd()).unwrap();
    assert!(server.monitor.cmdline.starts_with(&format!("{service}: ")), "every re-executed sshd keeps the name");
    let opened = wait_for_env_block(&env_log, "open_session");
    assert_eq!(opened.get("PAM_SERVICE").map(String::as_str), Some(service.as_str()), "{opened:?}");
    assert_eq!(opened.get("PAM_USER"), Some(&user.name));
    assert_eq!(opened.get("PAM_RHOST").map(String::as_str), Some("127.0.0.1"));
    assert_eq!(opened.get("PAM_TTY").map(String::as_str), Some("ssh"), "sshd sets PAM_TTY=ssh even with a pty");
    session.send_line("exit");
    assert_eq!(session.wait_exit(STEP), 0);
    let closed = wait_for_env_block(&env_log, "close_session");
    assert_eq!(closed.get("PAM_SERVICE").map(String::as_str), Some(service.as_str()));
    drop(h);
    let after: Vec<Option<Vec<u8>>> = guarded.iter().map(|p| std::fs::read(p).ok()).collect();
    for (i, path) in guarded.iter().enumerate() {
        assert!(before[i] == after[i], "{path} changed");
    }
}

/// The `env` output pam_exec logged for `pam_type` (blocks are separated by pam_exec's
/// `*** <date>` header lines), as a map.
fn wait_for_env_block(log: &Path, pam_type: &str) -> std::collections::HashMap<String, String> {
    vigil_e2e::wait_for(STEP, &format!("PAM_TYPE={pam_type} in {}", log.display()), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let blocks: Vec<std::collections::HashMap<String, String>> = text
            .split("*** ")
            .map(|b| b.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
            .collect();
        blocks
            .into_iter()
            .rev()
            .find(|b| b.get("PAM_TYPE").is_some_and(|t| t == pam_type) && b.contains_key("PAM_SERVICE") && b.contains_key("PAM_TTY"))
            .ok_or_else(|| format!("log so far:\n{text}"))
    })
}

#[test]
fn wrong_password_is_refused_and_leaves_no_session() {
    require_root!();
    let mut h = Harness::new();
    h.start_sshd(SshdOpts::default());
    let user = h.create_user("wrongpw");
    let session = h.ssh_session_with(&user, &SshOpts::default().password("not-the-password"));
    let code = session.wait_exit(LOGIN_TIMEOUT);
    assert_eq!(code, 255, "ssh's own code (NumberOfPasswordPrompts=1); screen:\n{}", session.capture());
    assert!(h.sshd().sessions_of(&user.name).is_empty());
    h.sshd().wait_for_log(STEP, &format!("Failed password for {}", user.name));
}

#[test]
fn multiplexed_sessions_share_one_connection() {
    require_root!();
    let mut h = Harness::new();
    h.start_sshd(SshdOpts::default());
    let user = h.create_user("mux");
    let control = h.path("mux.ctl");
    let opts = SshOpts::default().control_master(&control);
    let first = h.ssh_session_with(&user, &opts);
    first.wait_ready(h.sshd(), LOGIN_TIMEOUT);
    vigil_e2e::wait_until(STEP, "the control socket", || control.exists());
    let second = h.ssh_session_with(&user, &opts);
    // Both ttys exist before the second shell replaces its forked sshd child, so wait for the
    // shells themselves, not only the ttys.
    let two_shells = |s: &SshdSession| s.processes.iter().filter(|p| p.comm == "bash").count() == 2;
    let server = h
        .sshd()
        .wait_for_session(LOGIN_TIMEOUT, "two shells over one connection", |s| s.user == user.name && s.ttys().len() == 2 && two_shells(s));
    assert_eq!(h.sshd().sessions_of(&user.name).len(), 1, "one [priv] process for both");
    assert_eq!(second.client_port(), None, "the second client talks to the master, not to sshd");
    assert!(two_shells(&server), "{server:#?}");
    second.wait_for(STEP, "a prompt", |s| s.trim_end().ends_with('$').then_some(()));
    // A later window has the size of the first (tmux's default-size, no client attached).
    second.send_line("stty size");
    second.wait_for(STEP, "the pty size", |s| s.lines().any(|l| l.trim() == "50 200").then_some(()));
    let owned = Owned::of(&h, &[&user.name]);
    drop(h);
    owned.assert_gone();
}

#[test]
fn parses_marker_lines() {
    let screen = "u@h:~$ echo hello-$RANDOM-marker; tty\nhello-1234-marker\n/dev/pts/3\nu@h:~$";
    assert_eq!(marker_and_tty(screen), Some(("hello-1234-marker".into(), "/dev/pts/3".into())));
    assert_eq!(marker_and_tty("echo hello-$RANDOM-marker; tty"), None);
}
