//! bench_fleet_trail: `vigilctl audit verify` and `audit report` on a central log host's
//! trail of a fleet, in lines per second.
//!
//! `bench_fleet_trail [--lines N (10000000)] [--sessions M (1000000)] [--hosts H (100)]
//! [--parts P (4)] [--dir DIR (/var/tmp)] [--vigilctl PATH]...`
//!
//! Writes, in a new directory under DIR, the trail of `vigil_e2e::audit_trail` (H
//! hosts' vigild records, each host's sealed with its own chain, interleaved with other
//! programs' lines) as one file, the same lines split into P files by host (as a center
//! that writes one file per host, grouped), and each host's starting key. Then, for each
//! vigilctl given (the baseline first; default: the release build's), runs with stdout
//! to /dev/null:
//!
//! - `audit verify FILE --key ...` (every host's key) and `audit report FILE`;
//! - the same over the P files;
//! - `audit report FILE --key ...` (the report with verify's result).
//!
//! Each run's wall time, CPU time (user + system, all threads) and peak RSS are taken
//! from wait4. Lines/s is lines over wall time; lines/s per core is lines over CPU
//! time. `cat` and `wc -l` of the one file are the same run's floor. stdout is markdown;
//! the directory is removed at the end, also on a panic or Ctrl-C.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use vigil_audit::syslog_line::parse_line;
use vigil_e2e::audit_trail::{Measured, TrailSpec, host_key, run_measured, write_trail};
use vigil_e2e::interrupt::{catch_interrupts, interrupted};

/// Bound on one reader's run.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

#[derive(Parser, Debug)]
#[command(name = "bench_fleet_trail", about = "vigilctl audit verify/report lines per second on a fleet's trail")]
struct Cli {
    #[arg(long, default_value_t = 10_000_000)]
    lines: u64,
    #[arg(long, default_value_t = 1_000_000)]
    sessions: u64,
    #[arg(long, default_value_t = 100)]
    hosts: u32,
    /// Files the trail is also split into, by host.
    #[arg(long, default_value_t = 4)]
    parts: usize,
    /// Where the scratch directory goes.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// vigilctl binaries to compare, the baseline first (the release build's when none).
    #[arg(long)]
    vigilctl: Vec<PathBuf>,
}

/// The scratch directory, removed when dropped (a panic included).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("bench_fleet_trail: cannot remove {}: {e}", self.0.display());
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.hosts == 0 || cli.parts == 0 || cli.lines < 2 * u64::from(cli.hosts) {
        eprintln!("bench_fleet_trail: --hosts and --parts must be at least 1, --lines at least two per host");
        return ExitCode::from(2);
    }
    catch_interrupts();
    let scratch = Scratch(cli.dir.join(format!("vigil-fleet-{}", std::process::id())));
    if let Err(e) = std::fs::create_dir(&scratch.0) {
        eprintln!("bench_fleet_trail: {}: {e}", scratch.0.display());
        return ExitCode::FAILURE;
    }
    match bench(&cli, &scratch.0) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench_fleet_trail: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(cli: &Cli, dir: &Path) -> std::io::Result<bool> {
    let trail = dir.join("trail.log");
    let started = Instant::now();
    let spec = TrailSpec { lines: cli.lines, sessions: cli.sessions, hosts: cli.hosts, never_closed: false };
    let stats = write_trail(File::create(&trail)?, spec)?;
    eprintln!(
        "bench_fleet_trail: wrote {} ({} lines, {} records) in {:.1} s",
        trail.display(),
        stats.lines,
        stats.records,
        started.elapsed().as_secs_f64()
    );
    let parts = split_by_host(&trail, dir, cli.parts)?;
    let keys = write_keys(dir, cli.hosts)?;
    let binaries = if cli.vigilctl.is_empty() { vec![vigil_e2e::paths::vigilctl_bin()] } else { cli.vigilctl.clone() };

    let load_before = load_average();
    println!(
        "trail: {} lines, {} hosts, {} records, {:.1} MB; split into {} files by host\n",
        stats.lines,
        cli.hosts,
        stats.records,
        stats.bytes as f64 / 1e6,
        parts.len()
    );
    println!("| command | peak RSS | wall | CPU | lines/s | **lines/s per core** |\n| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut runs: Vec<(String, Command)> = Vec::new();
    let mut cat = Command::new("cat");
    cat.arg(&trail);
    runs.push(("cat trail.log".into(), cat));
    let mut wc = Command::new("wc");
    wc.arg("-l").arg(&trail);
    runs.push(("wc -l trail.log".into(), wc));
    let one = [trail.clone()];
    for binary in &binaries {
        for (files, label) in [(&one[..], "trail.log".to_string()), (&parts[..], format!("part-*.log ({} files)", parts.len()))] {
            let mut verify = Command::new(binary);
            verify.args(["audit", "verify"]).args(files);
            for key in &keys {
                verify.arg("--key").arg(key);
            }
            runs.push((format!("{} audit verify {label} --key ×{}", binary.display(), keys.len()), verify));
            let mut report = Command::new(binary);
            report.args(["audit", "report"]).args(files);
            runs.push((format!("{} audit report {label}", binary.display()), report));
        }
        // The report with verify's result: both readings of the one file.
        let mut verified = Command::new(binary);
        verified.args(["audit", "report"]).arg(&trail);
        for key in &keys {
            verified.arg("--key").arg(key);
        }
        runs.push((format!("{} audit report trail.log --key ×{}", binary.display(), keys.len()), verified));
    }
    let mut passed = true;
    for (what, mut cmd) in runs {
        if interrupted() {
            eprintln!("bench_fleet_trail: interrupted");
            return Ok(false);
        }
        eprintln!("bench_fleet_trail: running {what}");
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        let Measured { success, max_rss_kib, wall, cpu } = run_measured(&mut cmd, RUN_TIMEOUT)?;
        passed &= success;
        let note = if success { "" } else { " (FAILED)" };
        let lines = stats.lines as f64;
        println!(
            "| `{what}`{note} | {:.1} MB | {:.2} s | {:.2} s | {:.0} | **{:.0}** |",
            max_rss_kib as f64 * 1024.0 / 1e6,
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            lines / wall.as_secs_f64(),
            lines / cpu.as_secs_f64().max(1e-9)
        );
    }
    println!("\nload average before: {load_before}; after: {}", load_average());
    Ok(passed)
}

/// Writes the lines of `trail` into `parts` files, each host's lines (and the other
/// programs' lines it wrote) into one of them; lines of no host go to the first.
fn split_by_host(trail: &Path, dir: &Path, parts: usize) -> std::io::Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = (0..parts).map(|p| dir.join(format!("part-{p}.log"))).collect();
    let mut outs = paths.iter().map(|p| File::create(p).map(|f| BufWriter::with_capacity(1 << 20, f))).collect::<Result<Vec<_>, _>>()?;
    let mut hosts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(trail)?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let part = match parse_line(line.trim_end_matches('\n')) {
            Some(parsed) => {
                let next = hosts.len() % parts;
                *hosts.entry(parsed.host.to_owned()).or_insert(next)
            }
            None => 0,
        };
        if let Some(out) = outs.get_mut(part) {
            out.write_all(line.as_bytes())?;
        }
    }
    for out in &mut outs {
        out.flush()?;
    }
    Ok(paths)
}

fn write_keys(dir: &Path, hosts: u32) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for h in 0..hosts as usize {
        let path = dir.join(format!("host-{h}.key"));
        std::fs::write(&path, host_key(h).render())?;
        paths.push(path);
    }
    Ok(paths)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
