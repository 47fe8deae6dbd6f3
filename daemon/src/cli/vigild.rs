//! vigild's command line. vigil-docgen writes vigild(8) and the shell completions from
//! it, so the documentation follows the code.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "vigild", version, about = "vigil session guard daemon")]
pub struct Args {
    /// Configuration file.
    #[arg(long, default_value = vigil_config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Private peer-to-peer D-Bus socket.
    #[arg(long, default_value = vigil_protocol::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// D-Bus bus address to own org.vigil1 on (default: the system bus, when one runs).
    #[arg(long, conflicts_with = "no_bus")]
    pub bus: Option<String>,
    /// Do not use any message bus; serve the private socket only.
    #[arg(long)]
    pub no_bus: bool,
    /// Syslog socket for audit records.
    #[arg(long, default_value = "/dev/log")]
    pub syslog_socket: PathBuf,
    /// Directory for state that survives restarts (session id counter).
    #[arg(long, default_value = "/run/vigil")]
    pub state_dir: PathBuf,
    /// Audit chain state and spool (must survive reboots).
    #[arg(long, default_value = "/var/lib/vigil")]
    pub audit_dir: PathBuf,
    /// User locks (`vigilctl lock`), one file per locked user; pam_vigil reads them
    /// (its `locks=` argument) in PAM's account stage. Must survive reboots.
    #[arg(long, default_value = vigil_protocol::lock::DEFAULT_LOCK_DIR)]
    pub lock_dir: PathBuf,
    /// Also print every audit record on stderr.
    #[arg(long)]
    pub foreground: bool,
    /// Do not look for login sessions nobody registered (adoption).
    #[arg(long, conflicts_with = "adopt_users")]
    pub no_adopt: bool,
    /// Adopt only these users' unregistered logins (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub adopt_users: Vec<String>,
    /// Watch at most this many session leaders by pidfd (a descriptor each); the others
    /// are looked at by a sweep every 2 s. Default, and never more than: the descriptor
    /// limit less 4,096 (half of it below 8,192) kept for connections and files.
    #[arg(long, value_name = "N")]
    pub max_leader_pidfds: Option<usize>,
}
