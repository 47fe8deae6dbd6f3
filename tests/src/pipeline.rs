//! The `pipeline` tool's report (written by the tool, read by the tests and benchmark),
//! and [`Pipeline`]: the tool running as a test user through `runuser`. See
//! `src/bin/pipeline.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::{Ledger, ManagedChild, StdoutLines, read_lossy};

/// What one pipeline flood did, as counted by the attacker's side.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PipelineReport {
    pub connected: u32,
    pub calls_written: u64,
    pub answers_read: u64,
    /// Connections the server closed (end of file, reset, broken pipe).
    pub closed_by_server: u32,
    pub elapsed_ms: u64,
}

/// The `pipeline` tool running as a test user; ended (through runuser, then SIGKILL)
/// when dropped.
pub struct Pipeline {
    child: ManagedChild,
    lines: StdoutLines,
    stderr_path: PathBuf,
}

impl Pipeline {
    /// `runuser -u USER -- PIPELINE ARGS...`, stdout piped, stderr in `<dir>/pipeline-<n>.stderr`.
    pub(crate) fn spawn(bin: &Path, user: &str, args: &[&str], dir: &Path, n: u32, ledger: &Ledger) -> Pipeline {
        let name = format!("pipeline-{n}");
        let stderr_path = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--"])
            .arg(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("create the pipeline's stderr file"));
        let mut child = ManagedChild::spawn(&name, &mut cmd, ledger);
        let lines = StdoutLines::spawn(child.child_mut().stdout.take().expect("piped stdout"));
        Pipeline { child, lines, stderr_path }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    pub fn stderr_text(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Ends the tool now (an attack a test has seen enough of).
    pub fn kill(&mut self) {
        self.child.kill_now();
    }

    /// Waits for `DONE <json>`.
    #[track_caller]
    pub fn finish(mut self, timeout: Duration) -> PipelineReport {
        let json =
            self.lines.expect(&mut self.child, &self.stderr_path, "DONE", timeout, |line| Some(line.strip_prefix("DONE ")?.to_string()));
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("pipeline printed a DONE line that does not parse ({e}): {json}"))
    }
}
