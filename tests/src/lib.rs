//! vigil-e2e: the end-to-end harness of vigil.
//!
//! A [`Harness`] starts real programs in its own directory — rsyslogd on a private
//! socket, dbus-daemon as a private system bus, vigild — creates test users and PAM
//! service files, drives libpam through the `pam_host` program, and removes all of it
//! when dropped; with [`Harness::start_sshd`] also a real sshd and interactive ssh
//! sessions in tmux panes. See `tests/README.md` for what it needs and how to run it.

pub mod audit_trail;
pub mod bench;
pub mod bus;
pub mod clock;
pub mod conformance;
pub mod conformance_check;
pub mod dbus_wire;
pub mod flood;
pub mod harness;
pub mod host;
pub mod interrupt;
pub mod login;
pub mod logs;
pub mod pam;
pub mod paths;
pub mod pipeline;
pub mod process;
pub mod procfs;
pub mod relp;
pub mod report;
pub mod rsyslog;
pub mod sshd;
pub mod sudo;
mod sweep;
pub mod tempdir;
pub mod tmux;
pub mod users;
pub mod vigilctl_child;
pub mod vigild;
pub mod wait;
pub mod watch;

pub use bus::{Bus, BusKind, BusPolicy};
pub use flood::{Flood, FloodReport};
pub use harness::Harness;
pub use host::{PamHostCmd, PamHostRun, PamHostSession};
pub use logs::LogLine;
pub use pam::{Fail, PamStack, VigilArgs};
pub use procfs::ProcInfo;
pub use report::{PamHostReport, RcSummary, Stats};
pub use rsyslog::{Rsyslog, RsyslogOpts, SeverityLine};
pub use sshd::{Sshd, SshdOpts, SshdSession};
pub use sudo::{Answer, Prompted};
pub use tmux::{SshCommand, SshOpts, SshSession, Tmux};
pub use users::TestUser;
pub use vigilctl_child::VigilctlChild;
pub use vigild::{SessionInfo, Vigild, VigildOpts};
pub use wait::{try_wait_for, wait_for, wait_until};

/// PAM return codes the tests look for (`<security/_pam_types.h>`).
pub mod rc {
    pub const PAM_SUCCESS: i32 = 0;
    pub const PAM_SYSTEM_ERR: i32 = 4;
    pub const PAM_PERM_DENIED: i32 = 6;
    pub const PAM_AUTH_ERR: i32 = 7;
    pub const PAM_SESSION_ERR: i32 = 14;
    pub const PAM_CONV_ERR: i32 = 19;
    pub const PAM_IGNORE: i32 = 25;
    pub const PAM_ABORT: i32 = 26;
}

/// True when the test runs as root (the e2e tests need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails the test unless it runs as root: an end-to-end test that could not run must
/// never show as passed. (`tests/run.sh` runs them as root; `cargo test` as another
/// user fails them all with this message.)
#[macro_export]
macro_rules! require_root {
    () => {
        assert!($crate::is_root(), "{} needs root: run the e2e tests as root (tests/README.md)", module_path!());
    };
}
