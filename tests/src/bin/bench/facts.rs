//! Facts about the machine and the build that every benchmark figure carries (date,
//! commit, CPUs, load average), and the marked block of BENCHMARKS.md a benchmark may
//! replace. Shared by the bench_* programs (`#[path]` module).

use std::path::Path;
use std::process::{Command, ExitCode};

use vigil_e2e::interrupt::catch_interrupts;
use vigil_e2e::paths;

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
    pub fn gather() -> Facts {
        let root = paths::workspace_root();
        let exe = std::env::current_exe().ok();
        let program = exe
            .as_deref()
            .and_then(|e| e.strip_prefix(&root).ok().map(Path::to_path_buf).or_else(|| Some(e.to_path_buf())))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "bench".to_string());
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

    /// `commit: X (dirty paths)`, for the markdown lines.
    pub fn commit_line(&self) -> String {
        let dirty = match self.dirty.len() {
            0 => String::new(),
            n if n <= 4 => format!(" ({})", self.dirty.join(", ")),
            n => format!(" ({}, … {n} paths)", self.dirty[..3].join(", ")),
        };
        format!("{}{dirty}", self.commit)
    }

    /// The `- machine: …` line of a benchmark's markdown.
    pub fn machine_line(&self) -> String {
        format!(
            "- machine: {} CPUs (nproc), {}, {}, {}; {} processes at the start; load average (1 min) {} before, {} after\n",
            self.nproc, self.cpu, self.kernel, self.os, self.processes, self.load_before, self.load_after
        )
    }
}

fn process_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok())).count())
        .unwrap_or(0)
}

/// /proc/loadavg's 1-minute figure.
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
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string())
}

/// `text` with the block between `begin` and `end` (markers included) replaced by
/// `block` (which carries its own markers).
fn replace_block(text: &str, begin: &str, end: &str, block: &str) -> Result<String, String> {
    let start = text.find(begin).ok_or_else(|| format!("no {begin} line"))?;
    let end_rel = text[start..].find(end).ok_or_else(|| format!("no {end} line after {begin}"))?;
    let mut stop = start + end_rel + end.len();
    if text[stop..].starts_with('\n') {
        stop += 1;
    }
    Ok(format!("{}{}{}", &text[..start], block, &text[stop..]))
}

/// Fails before a run of minutes, not after it: `path` must hold the block.
fn check_block(path: &Path, begin: &str, end: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    replace_block(&text, begin, end, "").map(|_| ()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Replaces the block in `path` with `block`.
fn update_block(path: &Path, begin: &str, end: &str, block: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let new = replace_block(&text, begin, end, block).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The options every benchmark with a report takes (`#[command(flatten)]`).
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Leave vigild's session files where the harness puts them (under /tmp) instead
    /// of on tmpfs, where /run/vigil is in production.
    #[arg(long)]
    pub state_on_disk: bool,
    /// Print one JSON object instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Also replace this benchmark's block (between its begin/end markers) in this file.
    #[arg(long, value_name = "FILE")]
    pub update_md: Option<std::path::PathBuf>,
}

/// Where a benchmark's report goes: stdout (markdown, or JSON), and with `--update-md`
/// its block in that file.
pub struct Report<'a> {
    pub program: &'static str,
    pub markers: (&'static str, &'static str),
    pub update_md: Option<&'a Path>,
    pub json: bool,
}

impl Report<'_> {
    /// Checks the `--update-md` file before a run of minutes, runs `bench` with Ctrl-C
    /// caught (it returns `None` once interrupted), then prints what `render` makes of
    /// the result (markdown and JSON) and replaces the block. `Err`: the exit code.
    pub fn run<T>(
        &self,
        bench: impl FnOnce() -> Option<T>,
        render: impl FnOnce(&Facts, &T) -> (String, serde_json::Value),
    ) -> Result<T, ExitCode> {
        let (begin, end) = self.markers;
        if let Some(path) = self.update_md {
            if let Err(e) = check_block(path, begin, end) {
                eprintln!("{}: --update-md {e}", self.program);
                return Err(ExitCode::from(2));
            }
        }
        catch_interrupts();
        let mut facts = Facts::gather();
        let Some(result) = bench() else {
            eprintln!("{}: interrupted; the harness has cleaned up", self.program);
            return Err(ExitCode::from(130));
        };
        facts.load_after = load1();
        let (markdown, json) = render(&facts, &result);
        if self.json {
            println!("{}", serde_json::to_string_pretty(&json).expect("serializes"));
        } else {
            print!("{markdown}");
        }
        if let Some(path) = self.update_md {
            if let Err(e) = update_block(path, begin, end, &markdown) {
                eprintln!("{}: --update-md {e}", self.program);
                return Err(ExitCode::from(1));
            }
            eprintln!("{}: updated {}", self.program, path.display());
        }
        Ok(result)
    }
}
