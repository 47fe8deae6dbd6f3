//! `vigilctl -H [USER@]HOST VERB ...`: the verb runs on HOST, through the admin's own
//! `ssh` (their config, keys, agent and known_hosts), as `ssh -- [USER@]HOST vigilctl
//! VERB ...` with every argument quoted for the remote shell. The remote vigilctl's
//! stdout and stderr pass through; its exit code is vigilctl's. ssh's own failure (exit
//! 255: vigilctl never exits 255) and a host without vigilctl (the remote shell's 127)
//! are said apart from the verb's own failure.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use clap::Parser;
use nix::sys::signal::{SigHandler, SigSet, Signal, kill, signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{Pid, alarm};
use vigil_daemon::cli::vigilctl::{AuditCommand, Cli, Command as Verb};

/// What a remote call that talks to vigild may take beyond the remote vigilctl's own
/// `--timeout`: ssh's connection and authentication (a passphrase or password typed).
pub const SSH_ALLOWANCE: Duration = Duration::from_secs(30);
/// How long ssh gets to end after SIGTERM before SIGKILL.
const TERM_GRACE_SECS: u32 = 2;
/// ssh's own failures; vigilctl itself exits 0, 1 or 2.
const SSH_FAILED: i32 = 255;
/// The remote shell found no vigilctl (126: found, but it could not be run).
const NOT_FOUND: i32 = 127;
const CANNOT_RUN: i32 = 126;

/// Runs `cli`'s verb on `host`; `argv` is vigilctl's own command line, from which the
/// host option is taken out and the rest passed on as it was typed.
pub fn run(host: &str, cli: &Cli, argv: &[OsString]) -> ExitCode {
    match call(host, cli, argv) {
        Ok(code) => code,
        Err((message, code)) => {
            eprintln!("vigilctl: {message}");
            ExitCode::from(code)
        }
    }
}

fn call(host: &str, cli: &Cli, argv: &[OsString]) -> Result<ExitCode, (String, u8)> {
    let usage = |m: String| (m, 2);
    if host.is_empty() || host.starts_with('-') {
        return Err(usage(format!("-H {host:?}: not a host; give [USER@]HOST")));
    }
    let args = forwarded_args(argv);
    // The arguments passed on must mean locally what they meant with the host: an
    // option's value that looks like the host option would otherwise be lost.
    let mut check = vec![argv.first().cloned().unwrap_or_else(|| "vigilctl".into())];
    check.extend(args.iter().cloned());
    match Cli::try_parse_from(&check) {
        Ok(again) if same_call(&again, cli) => {}
        _ => return Err(usage("cannot tell the host option from the verb's arguments: write -H HOST before the verb".into())),
    }
    let remote = remote_command(&args);
    let deadline = talks_to_vigild(&cli.command).then(|| cli.timeout + SSH_ALLOWANCE);
    let signals = Signals::catch().map_err(|e| (format!("cannot catch signals: {e}"), 1))?;
    let mut ssh = Command::new("ssh");
    // `--` first: a host can never be read as an ssh option. stdin is not the remote
    // vigilctl's (none reads it), so that `while read host` loops keep theirs; ssh asks
    // passwords and passphrases on the terminal.
    ssh.arg("--").arg(host).arg(OsString::from_vec(remote)).stdin(Stdio::null());
    let child = ssh.spawn().map_err(|e| (format!("cannot run ssh: {e}"), SSH_FAILED as u8))?;
    let status = signals.wait(child, deadline).map_err(|e| (format!("ssh to {host}: {e}"), SSH_FAILED as u8))?;
    match status {
        Outcome::Exited(status) => judge(host, status),
        Outcome::GaveUp { pid, after } => Err((
            format!(
                "no answer from {host} within {} (ssh's connection and the remote vigilctl's --timeout {}); ssh (pid {pid}) was ended",
                vigil_protocol::time::human(after),
                vigil_protocol::time::human(cli.timeout)
            ),
            SSH_FAILED as u8,
        )),
        Outcome::Interrupted { signal, .. } => Ok(ExitCode::from(128 + signal as u8)),
    }
}

/// The exit of `ssh HOST vigilctl ...`, in words where it is not the verb's.
fn judge(host: &str, status: ExitStatus) -> Result<ExitCode, (String, u8)> {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(SSH_FAILED), _) => Err((
            format!("ssh to {host} failed (ssh's exit 255, its message above): the verb did not run, or its connection broke"),
            SSH_FAILED as u8,
        )),
        (Some(NOT_FOUND), _) => {
            Err((format!("vigil is not installed on {host}: its shell found no vigilctl in PATH (exit 127)"), NOT_FOUND as u8))
        }
        (Some(CANNOT_RUN), _) => Err((format!("vigilctl on {host} could not be run (exit 126)"), CANNOT_RUN as u8)),
        (Some(code), _) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        (None, Some(sig)) => Err((format!("ssh to {host} was killed by signal {sig}"), SSH_FAILED as u8)),
        (None, None) => Err((format!("ssh to {host} ended without an exit code"), SSH_FAILED as u8)),
    }
}

/// Verbs that call vigild (bounded by `--timeout` on the remote side); the others read
/// files and may take long (`audit show --follow` runs until interrupted).
fn talks_to_vigild(command: &Verb) -> bool {
    !matches!(
        command,
        Verb::CheckConfig { .. }
            | Verb::Audit { command: AuditCommand::Verify { .. } | AuditCommand::Show { .. } | AuditCommand::Report { .. } }
    )
}

/// The same verb and options but for the host (clap's structs have no equality: their
/// debug forms are compared).
fn same_call(again: &Cli, cli: &Cli) -> bool {
    again.host.is_none()
        && format!("{:?}", again.command) == format!("{:?}", cli.command)
        && again.socket == cli.socket
        && again.bus == cli.bus
        && again.timeout == cli.timeout
}

/// `argv` without its first word and without the host option (`-H HOST`, `-HHOST`,
/// `--host HOST`, `--host=HOST`), everything else as typed; after `--`, all of it.
pub fn forwarded_args(argv: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        let bytes = word.as_bytes();
        if bytes == b"--" {
            out.push(word.clone());
            out.extend(words.cloned());
            break;
        }
        if bytes == b"-H" || bytes == b"--host" {
            words.next();
        } else if !(bytes.starts_with(b"-H") || bytes.starts_with(b"--host=")) {
            out.push(word.clone());
        }
    }
    out
}

/// `vigilctl ARG...` for the remote shell, each argument quoted so that it reaches the
/// remote vigilctl as one argument, byte for byte.
pub fn remote_command(args: &[OsString]) -> Vec<u8> {
    let mut command = b"vigilctl".to_vec();
    for arg in args {
        command.push(b' ');
        command.extend(shell_quote(arg));
    }
    command
}

/// One word for a POSIX shell: as it is when it holds only characters no shell treats
/// specially, else in single quotes (a quote inside as `'\''`). Bytes are kept as they
/// are, UTF-8 or not.
pub fn shell_quote(arg: &OsStr) -> Vec<u8> {
    let bytes = arg.as_bytes();
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"-_./:,+@".contains(b);
    if !bytes.is_empty() && bytes.iter().all(plain) {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'\'');
    for &b in bytes {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

enum Outcome {
    Exited(ExitStatus),
    /// The deadline passed: ssh was ended.
    GaveUp {
        pid: u32,
        after: Duration,
    },
    /// SIGINT, SIGTERM or SIGHUP reached vigilctl: ssh was ended.
    Interrupted {
        signal: i32,
    },
}

/// SIGCHLD (ssh ended), SIGALRM (the deadline), SIGINT, SIGTERM and SIGHUP, blocked and
/// read from a signalfd: vigilctl waits for the first of them without polling, and never
/// leaves ssh running when it gives up or is told to stop.
struct Signals(SignalFd);

impl Signals {
    fn catch() -> nix::Result<Signals> {
        // A SIGCHLD ignored by whoever started vigilctl would reap ssh behind its back.
        // SAFETY: no handler is installed (SIG_DFL); vigilctl has one thread here.
        unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) }?;
        let mut set = SigSet::empty();
        for sig in [Signal::SIGCHLD, Signal::SIGALRM, Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(sig);
        }
        // One thread: blocking here blocks for the process. ssh starts with an empty
        // mask (std resets it in the child).
        set.thread_block()?;
        SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map(Signals)
    }

    /// The next signal (blocking).
    fn next(&mut self) -> std::io::Result<i32> {
        loop {
            match self.0.read_signal() {
                Ok(Some(info)) => return Ok(info.ssi_signo as i32),
                Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits for ssh to end, or until `deadline` (then ends it).
    fn wait(mut self, mut child: Child, deadline: Option<Duration>) -> std::io::Result<Outcome> {
        if let Some(limit) = deadline {
            alarm::set(u32::try_from(limit.as_secs().max(1)).unwrap_or(u32::MAX));
        }
        let outcome = loop {
            if let Some(status) = child.try_wait()? {
                break Outcome::Exited(status);
            }
            match self.next()? {
                s if s == Signal::SIGALRM as i32 => {
                    let pid = child.id();
                    self.end(&mut child)?;
                    break Outcome::GaveUp { pid, after: deadline.unwrap_or_default() };
                }
                s if s == Signal::SIGCHLD as i32 => continue,
                s => {
                    self.end(&mut child)?;
                    break Outcome::Interrupted { signal: s };
                }
            }
        };
        alarm::cancel();
        Ok(outcome)
    }

    /// SIGTERM to ssh (by its pid: not reaped yet, so it is still ssh's), up to
    /// [`TERM_GRACE_SECS`], then SIGKILL; reaped either way.
    fn end(&mut self, child: &mut Child) -> std::io::Result<()> {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        alarm::set(TERM_GRACE_SECS);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if self.next()? == Signal::SIGALRM as i32 {
                child.kill()?;
                child.wait()?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_host_option_is_taken_out_in_every_spelling() {
        for argv in [
            &["vigilctl", "-H", "root@web1", "list", "--json"][..],
            &["vigilctl", "-Hroot@web1", "list", "--json"],
            &["vigilctl", "--host", "root@web1", "list", "--json"],
            &["vigilctl", "--host=root@web1", "list", "--json"],
            &["vigilctl", "list", "-H", "root@web1", "--json"],
        ] {
            assert_eq!(forwarded_args(&os(argv)), os(&["list", "--json"]), "{argv:?}");
        }
        // After `--` nothing is an option.
        assert_eq!(forwarded_args(&os(&["vigilctl", "-H", "h", "check-config", "--", "-H"])), os(&["check-config", "--", "-H"]));
    }

    #[test]
    fn quoted_arguments_reach_a_posix_shell_byte_for_byte() {
        let mut args: Vec<OsString> = [
            "plain",
            "a b; c 'd'",
            "",
            "'",
            "\"$(touch /tmp/vigil-quote-test)\" `id` $HOME *",
            "line\nbreak",
            "tab\tand \\ backslash",
            "--why=x y",
            "~root",
            "=zsh",
            "-H",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.push(OsString::from_vec(vec![0xff, b' ', 0xfe, b'\'', 0x80]));
        let mut script = b"printf '%s\\0'".to_vec();
        for arg in &args {
            script.push(b' ');
            script.extend(shell_quote(arg));
        }
        let out = Command::new("sh").arg("-c").arg(OsString::from_vec(script)).output().expect("sh runs");
        assert!(out.status.success(), "{out:?}");
        let got: Vec<OsString> = out.stdout.split(|b| *b == 0).filter(|_| true).map(|w| OsString::from_vec(w.to_vec())).collect::<Vec<_>>();
        // printf's last \0 leaves one empty piece at the end.
        assert_eq!(&got[..got.len() - 1], &args[..]);
        assert!(!std::path::Path::new("/tmp/vigil-quote-test").exists());
    }

    #[test]
    fn plain_words_stay_unquoted() {
        assert_eq!(
            remote_command(&os(&["list", "--json", "--socket", "/run/vigil/private"])),
            b"vigilctl list --json --socket /run/vigil/private"
        );
        assert_eq!(remote_command(&os(&["lock", "--why", "a b"])), b"vigilctl lock --why 'a b'");
    }
}
