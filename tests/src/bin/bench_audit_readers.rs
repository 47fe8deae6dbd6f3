//! bench_audit_readers: the memory and time of `vigilctl audit show` and `audit report`
//! on a central log host's trail.
//!
//! `bench_audit_readers generate --lines N --sessions M [--hosts H] [--never-closed] FILE`
//! writes a trail (`vigil_e2e::audit_trail`: several hosts' sealed records, sessions
//! interleaved, other programs' lines).
//!
//! `bench_audit_readers measure FILE [--vigilctl PATH]...` runs, for each vigilctl given
//! (default: the release build's), `audit show FILE` and `audit report FILE` with stdout
//! to /dev/null, and prints each one's peak RSS (the child's ru_maxrss) and wall and CPU
//! time, after the same run's baseline: `cat FILE` and `wc -l FILE`. stdout is markdown.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::{Parser, Subcommand};
use vigil_e2e::audit_trail::{Measured, TrailSpec, run_measured, write_trail};

/// Bound on one reader's run.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

#[derive(Parser, Debug)]
#[command(name = "bench_audit_readers", about = "memory and time of vigilctl audit show/report on a large trail")]
struct Cli {
    #[command(subcommand)]
    command: Step,
}

#[derive(Subcommand, Debug)]
enum Step {
    /// Write a trail.
    Generate {
        #[arg(long, default_value_t = 10_000_000)]
        lines: u64,
        #[arg(long, default_value_t = 1_000_000)]
        sessions: u64,
        #[arg(long, default_value_t = 40)]
        hosts: u32,
        /// Every session is one session_open, never closed.
        #[arg(long)]
        never_closed: bool,
        out: PathBuf,
    },
    /// Measure show and report on a trail.
    Measure {
        file: PathBuf,
        /// vigilctl binaries to compare (the release build's when none).
        #[arg(long)]
        vigilctl: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Step::Generate { lines, sessions, hosts, never_closed, out } => {
            let file = match File::create(&out) {
                Ok(file) => file,
                Err(e) => {
                    eprintln!("{}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
            };
            match write_trail(file, TrailSpec { lines, sessions, hosts, never_closed }) {
                Ok(stats) => {
                    println!(
                        "{}: {} lines, {} bytes, {} records, {} sessions opened, {} ended",
                        out.display(),
                        stats.lines,
                        stats.bytes,
                        stats.records,
                        stats.sessions_opened,
                        stats.sessions_ended
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
        Step::Measure { file, vigilctl } => measure(&file, &vigilctl),
    }
}

fn measure(file: &PathBuf, binaries: &[PathBuf]) -> ExitCode {
    let binaries = if binaries.is_empty() { vec![vigil_e2e::paths::vigilctl_bin()] } else { binaries.to_vec() };
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!("file: {} ({:.1} MB)\n", file.display(), bytes as f64 / 1e6);
    println!("| command | peak RSS | wall | CPU |\n| --- | ---: | ---: | ---: |");
    let mut failed = false;
    let mut runs: Vec<(String, Command)> = Vec::new();
    let mut cat = Command::new("cat");
    cat.arg(file);
    runs.push((format!("cat {}", file.display()), cat));
    let mut wc = Command::new("wc");
    wc.arg("-l").arg(file);
    runs.push((format!("wc -l {}", file.display()), wc));
    for binary in &binaries {
        for verb in ["show", "report"] {
            let mut cmd = Command::new(binary);
            cmd.args(["audit", verb]).arg(file);
            runs.push((format!("{} audit {verb} {}", binary.display(), file.display()), cmd));
        }
    }
    for (what, mut cmd) in runs {
        eprintln!("running {what}");
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        match run_measured(&mut cmd, RUN_TIMEOUT) {
            Ok(Measured { success, max_rss_kib, wall, cpu }) => {
                failed |= !success;
                let note = if success { "" } else { " (FAILED)" };
                println!(
                    "| `{what}`{note} | {:.1} MB | {:.2} s | {:.2} s |",
                    max_rss_kib as f64 * 1024.0 / 1e6,
                    wall.as_secs_f64(),
                    cpu.as_secs_f64()
                );
            }
            Err(e) => {
                failed = true;
                println!("| `{what}` | error: {e} | | |");
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
