//! The `flood` tool's report (one definition for the tool that writes it and the tests
//! and benchmark that read it), and [`Flood`]: the tool running as a test user (through
//! `runuser`), holding its connections until the test closes its stdin.
//!
//! The tool prints `READY <json>` once every connection was tried (and, in `bigheader`
//! mode, every header and body written), then holds; `DONE <json>` when its stdin
//! closes, on SIGTERM/SIGINT, or after `--max-hold`. See `src/bin/flood.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::{Ledger, ManagedChild, StdoutLines, read_lossy};
use crate::wait::try_wait_for;

/// What one flood did, as counted by the attacker's side.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FloodReport {
    /// `conns` or `bigheader`.
    pub mode: String,
    pub uid: u32,
    /// Connections asked for.
    pub requested: u32,
    /// Handshakes completed: the server said `OK`, the tool sent `BEGIN`.
    pub accepted: u32,
    /// Connections the server closed before its `OK` (end of file, reset, broken pipe).
    pub refused: u32,
    /// Connections that failed otherwise (connect error, a timeout): what → how many.
    pub failed: BTreeMap<String, u32>,
    /// Wall time to try every connection (ms).
    pub open_ms: u64,
    /// `bigheader`, `malformed`, `longauth`: first parts (the header, the bad header,
    /// `AUTH EXTERNAL `) written whole, the bytes written after them over all
    /// connections, and connections the server closed while either was being written.
    pub headers_sent: u32,
    pub body_bytes_sent: u64,
    pub closed_while_sending: u32,
    /// Connections whose write timed out (the server stopped reading but kept the
    /// connection).
    pub stalled_while_sending: u32,
    /// `bigheader`: the length each header claims for its whole message (header + body).
    pub claimed_total_bytes: u64,
    /// `Peer.Ping` calls written (`--ping-every`), and messages the server sent back.
    pub pings_sent: u64,
    pub messages_received: u64,
    /// Accepted connections the server closed while the tool held them.
    pub closed_while_held: u32,
    /// Accepted connections still open when the report was made.
    pub open_now: u32,
    /// How long the connections were held so far (ms).
    pub held_ms: u64,
    /// `--repeat`: rounds in which closed connections were opened and attacked again
    /// (`accepted`, `refused` and the rest count every round).
    pub repeat_rounds: u64,
}

/// How long the tool may take to print READY or DONE.
pub const FLOOD_STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// The `flood` tool running as a test user (or root); ended (SIGTERM, through runuser
/// for a user, then SIGKILL) when dropped.
pub struct Flood {
    child: ManagedChild,
    lines: StdoutLines,
    stderr_path: PathBuf,
}

impl Flood {
    /// `runuser -u USER -- FLOOD --socket SOCKET ARGS...` (without `user`, FLOOD as
    /// root), stdin and stdout piped, stderr in `<dir>/flood-<n>.stderr`.
    pub(crate) fn spawn(bin: &Path, user: Option<&str>, socket: &Path, args: &[&str], dir: &Path, n: u32, ledger: &Ledger) -> Flood {
        let name = format!("flood-{n}");
        let stderr_path = dir.join(format!("{name}.stderr"));
        let mut cmd = match user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("create the flood's stderr file"));
        let mut child = ManagedChild::spawn(&name, &mut cmd, ledger);
        let lines = StdoutLines::spawn(child.child_mut().stdout.take().expect("piped stdout"));
        Flood { child, lines, stderr_path }
    }

    /// The pid of runuser (the tool is its child), or of the tool run as root.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn stderr_text(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Waits for `READY <json>`: every connection tried (and written, in bigheader mode).
    #[track_caller]
    pub fn wait_ready(&mut self, timeout: Duration) -> FloodReport {
        self.expect("READY", timeout)
    }

    /// Closes the tool's stdin, waits for `DONE <json>` and for the tool to exit:
    /// every connection it held is closed when this returns.
    #[track_caller]
    pub fn finish(mut self, timeout: Duration) -> (FloodReport, ExitStatus) {
        drop(self.child.child_mut().stdin.take());
        let report = self.expect("DONE", timeout);
        let status = try_wait_for(timeout, || self.child.try_exited().ok_or_else(|| "running".to_string()))
            .unwrap_or_else(|_| panic!("flood did not exit after DONE; stderr:\n{}", self.stderr_text()));
        (report, status)
    }

    #[track_caller]
    fn expect(&mut self, word: &str, timeout: Duration) -> FloodReport {
        let json = self.lines.expect(&mut self.child, &self.stderr_path, word, timeout, |line| {
            Some(line.strip_prefix(word)?.strip_prefix(' ')?.to_string())
        });
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("flood printed a {word} line that does not parse ({e}): {json}"))
    }
}
