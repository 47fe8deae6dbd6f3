//! The admin verbs of a user other than root, on the system bus: polkit decides
//! (docs/polkit.md), and may want an admin's password first. As `loginctl` does, vigilctl
//! then runs polkit's text agent (pkttyagent) on its terminal for the length of the
//! call, and flags the call ALLOW_INTERACTIVE_AUTHORIZATION so that vigild lets polkit
//! ask. Without a terminal, or with --no-ask-password, nothing is asked: a verb that
//! needs a password is refused.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_protocol::{ManagerProxy, VigilError};
use zbus::proxy::MethodFlags;

/// pkttyagent registers with polkitd within this long, or vigilctl goes on without it.
const AGENT_READY: Duration = Duration::from_secs(5);
/// How long a call that may prompt waits beyond --timeout: vigild gives polkit 300 s
/// for a person to answer.
pub const PROMPT_ALLOWANCE: Duration = Duration::from_secs(310);

/// Calls of `org.vigil1.Manager` with or without interaction allowed.
pub struct AdminCalls<'a> {
    manager: &'a ManagerProxy<'a>,
    interactive: bool,
}

impl<'a> AdminCalls<'a> {
    pub fn new(manager: &'a ManagerProxy<'a>, interactive: bool) -> Self {
        AdminCalls { manager, interactive }
    }

    pub async fn call<B, R>(&self, method: &str, body: &B) -> Result<R, VigilError>
    where
        B: serde::Serialize + zbus::wire::DynamicType,
        R: for<'d> zbus::wire::DynamicDeserialize<'d>,
    {
        let flags = if self.interactive { MethodFlags::ALLOW_INTERACTIVE_AUTH } else { MethodFlags::empty() };
        match self.manager.inner().call_with_flags(method, flags, body).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(VigilError::Failed(format!("{method}: no reply"))),
            Err(e) => Err(VigilError::from(e)),
        }
    }
}

/// polkit's text agent, registered for this process, until dropped.
pub struct TtyAgent {
    child: Child,
}

impl TtyAgent {
    /// Starts pkttyagent for this login session, as systemctl and loginctl do: vigild
    /// asks polkit about vigilctl's bus name, which polkit 122 maps to its process and
    /// then to the process's logind session, and finds the agent by that session (an
    /// agent registered for the process alone is not looked up for a bus name, and
    /// one for a bus name is refused). `None` outside a login session, without
    /// pkttyagent, or when it did not register in time: the call then goes on without
    /// a prompt, and polkit's "a password is needed" is the answer.
    pub fn start() -> Option<TtyAgent> {
        // pkttyagent closes --notify-fd once polkitd has its registration: the call must
        // not reach polkit before the agent that will answer it.
        let (ready, notify) = nix::unistd::pipe().ok()?;
        let notify = keep_across_exec(notify)?;
        let child = Command::new("pkttyagent")
            .arg("--notify-fd")
            .arg(notify.as_raw_fd().to_string())
            .arg("--fallback")
            .stdout(Stdio::null())
            // Outside a login session pkttyagent says why and exits: not this verb's
            // error (the refusal that follows says what to do).
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        drop(notify);
        let mut agent = TtyAgent { child };
        agent.wait_registered(ready).then_some(agent)
    }

    /// Reads `ready` until pkttyagent closes its end: registered if it still runs then
    /// (an agent that failed closes it too, by exiting).
    fn wait_registered(&mut self, ready: OwnedFd) -> bool {
        let nonblocking = nix::fcntl::OFlag::O_NONBLOCK;
        if nix::fcntl::fcntl(&ready, nix::fcntl::FcntlArg::F_SETFL(nonblocking)).is_err() {
            return false;
        }
        let mut ready = std::fs::File::from(ready);
        let started = Instant::now();
        let mut byte = [0u8; 1];
        while started.elapsed() < AGENT_READY {
            match std::io::Read::read(&mut ready, &mut byte) {
                Ok(0) => return matches!(self.child.try_wait(), Ok(None)),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for TtyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe end that a child inherits (nix's pipe sets no close-on-exec; a copy made
/// by std would).
fn keep_across_exec(fd: OwnedFd) -> Option<OwnedFd> {
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    let flags = nix::fcntl::FdFlag::from_bits_truncate(flags) - nix::fcntl::FdFlag::FD_CLOEXEC;
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFD(flags)).ok()?;
    Some(fd)
}
