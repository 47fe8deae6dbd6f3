//! What the benchmark programs share: facts about the machine and the build for the
//! report, CPU time of a process, a pam_host run whose per-cycle times come back
//! through `--samples`, and replacing a marked block of BENCHMARKS.md.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::host::PamHostCmd;
use crate::paths;
use crate::process::{describe_output, run_bounded};
use crate::report::PamHostReport;

// ---- facts about the machine and the build ----------------------------------------------

pub struct Facts {
    pub date: String,
    /// `<short hash>` or `<short hash>+dirty`.
    pub commit: String,
    /// With `+dirty`: what `git status --porcelain` lists (paths).
    pub dirty: Vec<String>,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub os: String,
    pub module_built: String,
    pub command: String,
    /// Processes on the machine when the run started (vigild looks at /proc per call).
    pub processes: usize,
    /// /proc/loadavg's 1-minute figure before and after the run (other load skews it).
    pub load_before: String,
    pub load_after: String,
}

impl Facts {
    /// Gathered when a run starts; `program` names the command when the executable's
    /// path cannot be read.
    pub fn gather(program: &str) -> Facts {
        let root = paths::workspace_root();
        let exe = std::env::current_exe().ok();
        let program = exe
            .as_deref()
            .and_then(|e| e.strip_prefix(&root).ok().map(Path::to_path_buf).or_else(|| Some(e.to_path_buf())))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| program.to_string());
        let mut command = vec![program];
        command.extend(std::env::args().skip(1));
        let module = paths::bin_dir().join("libpam_vigil.so");
        let (commit, dirty) = commit(&root);
        Facts {
            date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default(),
            commit,
            dirty,
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            cpu: cpuinfo_model().unwrap_or_else(|| "unknown".into()),
            kernel: format!(
                "Linux {} {}",
                std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
                std::env::consts::ARCH
            ),
            os: os_release().unwrap_or_else(|| "unknown".into()),
            module_built: output(Command::new("date").arg("-u").arg("-r").arg(&module).arg("+%Y-%m-%d %H:%M UTC"))
                .unwrap_or_else(|| "unknown".into()),
            command: command.join(" "),
            processes: process_count(),
            load_before: load1(),
            load_after: String::new(),
        }
    }

    /// The report's `- date: …` and `- machine: …` lines.
    pub fn markdown_lines(&self) -> String {
        let dirty = match self.dirty.len() {
            0 => String::new(),
            n if n <= 4 => format!(" ({})", self.dirty.join(", ")),
            n => format!(" ({}, … {n} paths)", self.dirty[..3].join(", ")),
        };
        format!(
            "- date: {}; commit: {}{dirty}; libpam_vigil.so built {}\n\
             - machine: {} CPUs (nproc), {}, {}, {}; {} processes at the start; load average (1 min) {} before, {} \
             after\n",
            self.date,
            self.commit,
            self.module_built,
            self.nproc,
            self.cpu,
            self.kernel,
            self.os,
            self.processes,
            self.load_before,
            self.load_after
        )
    }
}

pub fn process_count() -> usize {
    vigil_host::procfs::all_pids().map_or(0, |pids| pids.len())
}

pub fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// stdout of a short command (date, git), trimmed; `None` if it failed or is missing.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(std::process::Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git rev-parse --short HEAD`, plus `+dirty` when `git status` shows anything
/// (untracked files included), and the paths it shows.
fn commit(root: &Path) -> (String, Vec<String>) {
    let git = |args: &[&str]| output(Command::new("git").arg("-C").arg(root).args(args));
    match git(&["rev-parse", "--short", "HEAD"]) {
        // Each line is `XY path`; the leading status column may be a space, so the
        // output is split untrimmed.
        Some(hash) => match Command::new("git").arg("-C").arg(root).args(["status", "--porcelain"]).output() {
            Ok(out) if out.status.success() && out.stdout.is_empty() => (hash, Vec::new()),
            Ok(out) if out.status.success() => (
                format!("{hash}+dirty"),
                String::from_utf8_lossy(&out.stdout).lines().map(|l| l.get(3..).unwrap_or(l).to_string()).collect(),
            ),
            _ => (format!("{hash}+dirty"), vec!["(git status failed)".to_string()]),
        },
        None => ("unknown (not a git checkout)".into(), Vec::new()),
    }
}

fn cpuinfo_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
}

fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string())
}

// ---- processes and pam_host --------------------------------------------------------------

/// utime + stime of a process, all its threads (µs; the kernel counts clock ticks).
pub fn cpu_us(pid: Option<u32>) -> u64 {
    let stat = pid.and_then(vigil_host::procfs::stat_text);
    let ticks = stat.as_deref().and_then(vigil_host::procfs::parse_stat_line).map_or(0, |s| s.cpu_ticks);
    ticks * 1_000_000 / clk_tck()
}

/// The wall clock in µs since the epoch, as vigild's session times are.
pub fn wall_usec() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// One pam_host run with `--samples`: its output, its report and each cycle's open+close
/// time (µs, in cycle order).
pub struct SampledRun {
    pub out: Output,
    pub report: PamHostReport,
    pub samples: Vec<u64>,
}

/// Runs `cmd` with `--samples <samples>` to its end (2 min + 10 ms a cycle at most);
/// panics with the output when pam_host gives no report or no sample per cycle.
pub fn run_sampled(cmd: &PamHostCmd, samples: &Path, what: &str) -> SampledRun {
    let mut command = Command::new(&cmd.bin);
    command.args(cmd.args_os()).arg("--samples").arg(samples);
    let deadline = Duration::from_secs(120) + Duration::from_millis(10) * cmd.cycles;
    let out = run_bounded(&mut command, deadline, &format!("pam_host for {what}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Option<PamHostReport> = stdout.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok());
    let report = match report {
        Some(r) if out.status.success() => r,
        _ => panic!("pam_host gave no report for {what}:\n{}", describe_output(&out)),
    };
    let text = std::fs::read_to_string(samples).unwrap_or_else(|e| panic!("pam_host wrote no samples to {}: {e}", samples.display()));
    let samples_read: Vec<u64> = text.lines().map(|l| l.trim().parse().unwrap_or_else(|_| panic!("bad sample line {l:?}"))).collect();
    assert_eq!(samples_read.len(), cmd.cycles as usize, "samples in {}", samples.display());
    SampledRun { out, report, samples: samples_read }
}

// ---- BENCHMARKS.md ----------------------------------------------------------------------

/// Fails (before a run of minutes, not after it) unless `path` reads and holds the
/// block from `begin` to `end`.
pub fn check_md_block(path: &Path, begin: &str, end: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    replace_block(&text, begin, end, "").map(drop)
}

/// Replaces the block from `begin` to `end` in the file `path` by `block`.
pub fn write_md_block(path: &Path, begin: &str, end: &str, block: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let new = replace_block(&text, begin, end, block)?;
    std::fs::write(path, new).map_err(|e| format!("cannot write: {e}"))
}

/// `text` with the block from `begin` to `end` (markers included) replaced by `block`
/// (which carries its own markers).
pub fn replace_block(text: &str, begin: &str, end: &str, block: &str) -> Result<String, String> {
    let start = text.find(begin).ok_or_else(|| format!("no {begin} line"))?;
    let end_rel = text[start..].find(end).ok_or_else(|| format!("no {end} line after {begin}"))?;
    let mut stop = start + end_rel + end.len();
    if text[stop..].starts_with('\n') {
        stop += 1;
    }
    Ok(format!("{}{}{}", &text[..start], block, &text[stop..]))
}

/// What vigild's idle window may cost beyond the same run's window with no session
/// before sessions are said to cost CPU between deadlines: one or two walks of /proc by
/// the adoption sweep, which runs every 5 s whenever the machine forked, with or without
/// sessions.
pub const IDLE_SWEEP_ALLOWANCE_US: u64 = 1_000;

/// Issue 9's "no CPU between deadlines": sessions add nothing to vigild's CPU with
/// nobody calling (`with_sessions_us`, against `without_us` in the same run).
pub fn sessions_cost_no_idle_cpu(with_sessions_us: u64, without_us: u64) -> bool {
    with_sessions_us <= without_us + IDLE_SWEEP_ALLOWANCE_US
}

/// Interleaved rounds: the calls of round `round` (1-based) when `cycles` are spread
/// over `rounds` (the first rounds take the remainder), and the order of `count`
/// variants in it, reversed every other round, so that the machine's drift hits every
/// variant alike.
pub fn round_plan(cycles: u32, rounds: u32, round: u32, count: usize) -> (u32, Vec<usize>) {
    let n = cycles / rounds + u32::from(round <= cycles % rounds);
    let mut order: Vec<usize> = (0..count).collect();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    (n, order)
}

/// The head of a per-round table: `| FIRST | round 1 | … | round N |` and its
/// separator, each line ended by a newline.
pub fn rounds_table_head(first: &str, rounds: u32) -> String {
    let mut head = format!("| {first} |");
    let mut rule = String::from("| --- |");
    for r in 1..=rounds {
        head.push_str(&format!(" round {r} |"));
        rule.push_str(" ---: |");
    }
    format!("{head}\n{rule}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_share_the_cycles_and_alternate_their_order() {
        assert_eq!(round_plan(10, 3, 1, 3), (4, vec![0, 1, 2]));
        assert_eq!(round_plan(10, 3, 2, 3), (3, vec![2, 1, 0]));
        assert_eq!(round_plan(10, 3, 3, 3), (3, vec![0, 1, 2]));
        assert_eq!(rounds_table_head("x", 2), "| x | round 1 | round 2 |\n| --- | ---: | ---: |\n");
    }

    #[test]
    fn replaces_the_marked_block_only() {
        let text = "a\n<!-- x:begin -->\nold\n<!-- x:end -->\nb\n";
        let new = replace_block(text, "<!-- x:begin -->", "<!-- x:end -->", "<!-- x:begin -->\nnew\n<!-- x:end -->\n");
        assert_eq!(new.unwrap(), "a\n<!-- x:begin -->\nnew\n<!-- x:end -->\nb\n");
        assert!(replace_block("a\n", "<!-- x:begin -->", "<!-- x:end -->", "").is_err());
    }
}
