//! An interactive ssh login through the harness's sshd, as the client, sshd and vigild
//! see it: what the idle and re-authentication tests start from.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::harness::Harness;
use crate::sshd::SshdSession;
use crate::tmux::{LOGIN_TIMEOUT, SshCommand, SshOpts, SshSession};
use crate::users::TestUser;
use crate::vigild::SessionInfo;
use crate::wait::wait_for;

/// An interactive ssh session, logged in.
pub struct Login {
    pub client: SshSession,
    pub server: SshdSession,
    /// vigild's entry, once it has adopted the session's pty.
    pub tracked: SessionInfo,
}

impl Login {
    pub fn id(&self) -> u64 {
        self.tracked.id
    }

    /// `pts/N` of the user's shell, as vigild's records and `vigilctl` name it.
    pub fn tty(&self) -> String {
        short_tty(&self.server.tty().expect("the shell's pty").display().to_string())
    }
}

/// `pts/3` for `/dev/pts/3`.
pub fn short_tty(path: &str) -> String {
    path.trim_start_matches("/dev/").to_string()
}

/// The ttys `vigilctl list --json` shows for a session.
pub fn listed_ttys(s: &SessionInfo) -> Vec<String> {
    s.other.get("ttys").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|t| t.as_str().map(short_tty)).collect()).unwrap_or_default()
}

/// Waits until vigild lists the session led by `leader` (sshd's `[priv]` process) with
/// every tty of `ttys` among its ttys.
#[track_caller]
pub fn wait_tracked(h: &Harness, leader: u32, ttys: &[String], timeout: Duration) -> SessionInfo {
    wait_for(timeout, &format!("vigild to list the session of leader {leader} with ttys {ttys:?}"), || {
        let sessions = h.vigild().try_list_sessions()?;
        let s = sessions.iter().find(|s| s.leader_pid == leader).ok_or_else(|| format!("{sessions:#?}"))?;
        let listed = listed_ttys(s);
        if ttys.iter().all(|t| listed.contains(t)) { Ok(s.clone()) } else { Err(format!("{s:#?}")) }
    })
}

/// Logs `user` in through the harness's sshd in a tmux pty and waits until vigild has
/// adopted the shell's pty (activity on it is what the idle clock and the
/// re-authentication idle limit measure).
#[track_caller]
pub fn login_with(h: &Harness, user: &TestUser, opts: &SshOpts, timeout: Duration) -> Login {
    let client = h.ssh_session_with(user, opts);
    let server = client.wait_ready(h.sshd(), LOGIN_TIMEOUT);
    let tty = server.tty().unwrap_or_else(|| panic!("no pty for the shell: {server:#?}"));
    let tracked = wait_tracked(h, server.priv_pid(), &[short_tty(&tty.display().to_string())], timeout);
    assert_eq!(tracked.user, user.name, "{tracked:#?}");
    Login { client, server, tracked }
}

/// A login with a pty and no terminal on the client side (`ssh -tt` from a plain child,
/// running `sleep 600`): the server's pty is the lowest free pts number. Its output (a
/// warning would be) lands in the client's stdout file.
#[track_caller]
pub fn login_without_client_pty(h: &Harness, user: &TestUser, timeout: Duration) -> (SshCommand, SshdSession) {
    let client = h.ssh_command_with(user, &SshOpts::default().arg("-tt").command("sleep 600"));
    let server = client.wait_server_side(h.sshd(), timeout);
    (client, server)
}

/// A pty the test holds (master and slave, closed on exec) until it is dropped. Taken
/// just before a pty that is about to be freed, it is the number below it, for sshpass,
/// which takes a pty of its own for the password before sshd allocates the login's:
/// dropped just before that login, it leaves the freed number the lowest but one.
pub struct HeldPty {
    _master: OwnedFd,
    _slave: std::fs::File,
}

pub fn hold_pty() -> HeldPty {
    // SAFETY: libc calls on a descriptor owned by the OwnedFd at once; ptsname_r writes at
    // most the buffer's length.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(fd);
        assert!(libc::grantpt(master.as_raw_fd()) == 0 && libc::unlockpt(master.as_raw_fd()) == 0);
        let mut name = [0 as libc::c_char; 64];
        assert_eq!(libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()), 0);
        let name = std::ffi::CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
        let slave =
            std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC).open(&name).expect("slave");
        HeldPty { _master: master, _slave: slave }
    }
}
