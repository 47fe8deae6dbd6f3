//! vigilctl's command line. vigil-docgen writes vigilctl(1) and the shell completions
//! from it, so the documentation follows the code.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "vigilctl", version, about = "Inspect and control vigil sessions")]
pub struct Cli {
    /// vigild's private socket (default /run/vigil/private); the environment variable
    /// VIGIL_SOCKET sets it too. Without --socket and --bus, a user other than root talks
    /// to vigild on the system bus for the admin verbs (list, show, terminate, reload,
    /// lock, unlock, locks), where polkit decides what they may do (docs/polkit.md).
    #[arg(long, env = "VIGIL_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// Talk to vigild over this D-Bus bus address instead of the private socket.
    #[arg(long, global = true)]
    pub bus: Option<String>,
    /// Give up on vigild after this long. With -H, the remote vigilctl's; this one gives
    /// the call 30 s more for ssh (then ends ssh).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// Never ask for a password: an admin verb polkit would allow after a password
    /// (through pkttyagent's prompt on this terminal) is refused instead.
    #[arg(long, global = true)]
    pub no_ask_password: bool,
    /// Run the verb on another machine, over ssh, as `loginctl -H` does.
    ///
    /// vigilctl runs `ssh -- [USER@]HOST vigilctl VERB ARGS...` with your own ssh: its
    /// config, keys, agent and known_hosts (BatchMode, ports, jump hosts and the like are
    /// yours to set in ~/.ssh/config). Every argument is quoted for the remote account's
    /// shell (a POSIX shell) and reaches the remote vigilctl exactly. The remote host
    /// needs vigilctl in the PATH of a non-interactive ssh command; the verb runs with
    /// the remote user's rights (root for the root-only verbs).
    ///
    /// The remote vigilctl's output (--json too) and exit code are this one's. --socket,
    /// --bus and --timeout given here are passed to it (VIGIL_SOCKET of this machine is
    /// not). Verbs that read files (check-config, audit verify, show and report) read
    /// the remote host's files.
    ///
    /// Errors of their own: ssh's failure (an unreachable host, a refused login, a host
    /// key that does not match) exits 255 with "ssh to HOST failed" after ssh's message;
    /// a host without vigilctl exits 127 with "vigil is not installed on HOST"; a verb
    /// that talks to vigild with no answer after --timeout plus 30 s ends ssh and exits
    /// 255.
    #[arg(short = 'H', long = "host", value_name = "[USER@]HOST", global = true)]
    pub host: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List sessions (all for root and for users polkit allows, your own otherwise).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one session.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// End a session: its processes get SIGHUP, then SIGKILL (root, or polkit's yes).
    Terminate { id: u64 },
    /// Make vigild re-read its configuration (root, or polkit's yes).
    Reload,
    /// Check a configuration file without touching the running daemon: errors and
    /// warnings (users and groups that do not exist, blocks that match every session).
    CheckConfig {
        file: Option<PathBuf>,
        /// Exit non-zero on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Your own session: idle time, when it will be ended, whether sudo will ask.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Daemon version, configuration and session count.
    Daemon,
    /// vigild's metrics in the Prometheus text format (root only): sessions by service
    /// and tty, inhibitors, locks, counters since vigild started (logins, ends by reason,
    /// re-authentications, refused calls, audit records), vigild's memory and
    /// descriptors. `[metrics] textfile` in vigil.toml writes the same for node_exporter.
    Metrics,
    /// Hold off the idle timeout of your own session for a long job (bounded by the
    /// policy's max_inhibit); `--cancel` drops the inhibitor.
    #[command(override_usage = "vigilctl inhibit --for DURATION --why TEXT\n       vigilctl inhibit --cancel [--session ID]")]
    Inhibit {
        /// How long, e.g. 2h or 45m.
        #[arg(long = "for", value_parser = humantime::parse_duration, required_unless_present = "cancel")]
        duration: Option<Duration>,
        /// What the session waits for (recorded in the audit trail; at most 200 bytes).
        #[arg(long, required_unless_present = "cancel")]
        why: Option<String>,
        /// Drop the inhibitor now.
        #[arg(long, conflicts_with_all = ["duration", "why"])]
        cancel: bool,
        /// With --cancel: another session's (root, or your own session by id).
        #[arg(long, requires = "cancel")]
        session: Option<u64>,
    },
    /// Re-authentication: `--revoke` drops your proof of identity, so that the next
    /// sudo, su or pkexec asks the password (like `sudo -k`, for all of them).
    Reauth {
        #[arg(long)]
        revoke: bool,
    },
    /// Lock a user out (root, or polkit's yes): end every session of theirs now and refuse their
    /// logins, sudo, su and cron jobs in PAM's account stage, whether vigild runs or
    /// not, until the lock expires or is lifted. Never root.
    Lock {
        #[arg(long)]
        user: String,
        /// Why (recorded, and shown to the user when a login is refused; at most 256 bytes).
        #[arg(long)]
        why: String,
        /// How long, e.g. 2h or 3d; without it, until `vigilctl unlock`.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Lift a user's lock (root, or polkit's yes).
    Unlock {
        #[arg(long)]
        user: String,
        /// Why (recorded).
        #[arg(long)]
        why: Option<String>,
    },
    /// The locks in force (root, or polkit's yes).
    Locks {
        #[arg(long)]
        json: bool,
    },
    /// The audit trail: start a chain key, seal, verify files, show timelines.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Start a new chain key from the next record on (root). Prints the key file, or
    /// writes it to --out (mode 0400): keep it off this host.
    Init {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a seal record now (root), so that a cut before it is detected.
    Seal,
    /// Check the chain in syslog files; exit 0 only when everything verifies.
    /// Records tagged pam_vigil (no mac) are listed as unauthenticated warnings.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Key file(s) from `audit init` or /var/lib/vigil/audit-initial.key.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Exit 1 also when there are unauthenticated (pam_vigil) records.
        #[arg(long)]
        strict: bool,
    },
    /// A timeline per session from syslog files; with --follow, every record as it
    /// arrives.
    Show {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        session: Option<u64>,
        #[arg(long)]
        event: Option<String>,
        /// Start time (RFC 3339, e.g. 2026-11-26T04:00:00Z).
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        since: Option<std::time::SystemTime>,
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        until: Option<std::time::SystemTime>,
        #[arg(long)]
        json: bool,
        /// Like `tail -F`: print the records the filters keep one per line as they
        /// arrive (those already in the files first), then follow the last file through
        /// rotation (renamed and created again, or truncated) until SIGINT or SIGTERM
        /// (exit 0). A line is printed once complete. vigild's alerts (event `alert`)
        /// start with `!`; with --json each record is one object with `"alert": true`.
        #[arg(long)]
        follow: bool,
    },
    /// A summary per day and user (logins, idle/max-age/admin ends, re-auth asked,
    /// granted and failed, refused calls, inhibitors), the chain's state per host,
    /// idle ends by hour of day, and what is unusual (each item with its rule and the
    /// file:line of its records). Counts what `audit show` lists for the same filters.
    Report {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Start time (RFC 3339, e.g. 2026-11-26T04:00:00Z).
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        since: Option<std::time::SystemTime>,
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        until: Option<std::time::SystemTime>,
        /// Key file(s): the chain is verified too (as `audit verify` does).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Unusual rule new_hour: a login at a new hour of day is an item once the user's
        /// logins in the input span this long (whole seconds, e.g. 2d, 36h).
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = whole_seconds)]
        new_hour_after: Duration,
        /// Unusual rule reauth_failures: this many failed re-authentications in one
        /// session (1 to 1000) within --reauth-window make an item. vigild's live alert
        /// keeps its own fixed 3 in 10 minutes.
        #[arg(long, value_name = "N", default_value = "3", value_parser = clap::value_parser!(u16).range(1..=1000))]
        reauth_failures: u16,
        /// Unusual rule reauth_failures: the window the failures fall in (whole seconds).
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = whole_seconds)]
        reauth_window: Duration,
        /// Unusual rule long_session: a session open longer than this is an item (whole
        /// seconds).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = whole_seconds)]
        long_session: Duration,
    },
}

/// A duration of whole seconds (`90s`, `10m`, `7d`): the report's thresholds, which
/// `--json` gives in seconds.
fn whole_seconds(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (a duration such as 90s, 10m, 24h or 7d)"))?;
    if d.subsec_nanos() != 0 {
        return Err("whole seconds only (such as 90s, 10m, 24h or 7d)".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_args(extra: &[&str]) -> Result<AuditCommand, clap::Error> {
        let mut args = vec!["vigilctl", "audit", "report", "auth.log"];
        args.extend_from_slice(extra);
        match Cli::try_parse_from(args)?.command {
            Command::Audit { command } => Ok(command),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn report_thresholds_default_to_the_documented_ones() {
        let Ok(AuditCommand::Report { new_hour_after, reauth_failures, reauth_window, long_session, .. }) = report_args(&[]) else {
            panic!("audit report parses")
        };
        let d = vigil_audit::report::Thresholds::default();
        assert_eq!(
            (new_hour_after, usize::from(reauth_failures), reauth_window, long_session),
            (d.new_hour_after, d.reauth_failures, d.reauth_window, d.long_session)
        );
    }

    #[test]
    fn report_thresholds_bad_values_are_refused_by_name() {
        for (flag, value, says) in [
            ("--reauth-failures", "0", "1..=1000"),
            ("--reauth-failures", "1001", "1..=1000"),
            ("--reauth-failures", "three", "invalid digit"),
            ("--reauth-window", "10 minutes ago", "duration"),
            ("--long-session", "500ms", "whole seconds"),
            ("--new-hour-after", "7 dayz", "duration"),
        ] {
            let e = report_args(&[flag, value]).err().unwrap_or_else(|| panic!("{flag} {value} refused"));
            let text = e.to_string();
            assert!(text.contains(flag) && text.contains(says), "{flag} {value}: {text}");
        }
        let Ok(AuditCommand::Report { reauth_failures, long_session, .. }) =
            report_args(&["--reauth-failures", "1", "--long-session", "1s"])
        else {
            panic!("parses")
        };
        assert_eq!((reauth_failures, long_session), (1, Duration::from_secs(1)));
    }
}
