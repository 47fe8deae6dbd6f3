//! bench_metrics: what vigild's metrics cost with N registered sessions (issue 21's
//! Performance paragraph): how long `Metrics` takes to answer, against `Status` answered
//! in the same run (the baseline: a call that reads no session), and how much CPU the
//! `[metrics] textfile` refresh costs vigild per interval.
//!
//! `bench_metrics [--sessions N (10000)] [--calls C (200)] [--window SECONDS (20)]`
//!
//! The sessions are held by the helper of `bench/holder.rs` (as in bench_registry),
//! on vigild's private socket, session files on tmpfs. Then:
//! - C calls of `Metrics` and C of `Status`, alternating, over one private-socket
//!   connection (the call's round trip), and C runs of the `vigilctl metrics` and
//!   `vigilctl daemon` processes, alternating (what an admin or a cron job waits for);
//! - vigild's CPU (schedstat, every thread) over a window without the textfile, then,
//!   after a reload that sets `[metrics] textfile` with `interval = "1s"`, over a window
//!   with it: the difference per refresh is what one refresh costs.
//!
//! Needs root and the release build.

#[path = "bench/holder.rs"]
mod holder;
#[path = "bench/tmpfs_state.rs"]
mod tmpfs_state;
#[allow(dead_code)] // the pids of other daemons and RSS are bench_pam's and bench_registry's
#[path = "bench/usage.rs"]
mod usage;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use vigil_e2e::Harness;
use vigil_protocol::{ManagerProxy, Target};

use holder::Holder;
use tmpfs_state::TmpfsState;

/// Issue 21's targets.
const ANSWER_TARGET_MS: f64 = 10.0;
const REFRESH_TARGET_US: f64 = 1000.0;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    sessions: u32,
    #[arg(long, default_value_t = 200)]
    calls: usize,
    #[arg(long, default_value_t = 20)]
    window: u64,
}

/// Nearest-rank percentile of sorted µs samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

struct Timing {
    what: &'static str,
    us: Vec<f64>,
}

impl Timing {
    fn row(&mut self) -> String {
        self.us.sort_by(f64::total_cmp);
        format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} |",
            self.what,
            self.us.len(),
            percentile(&self.us, 50.0),
            percentile(&self.us, 99.0),
            self.us.last().copied().unwrap_or(0.0)
        )
    }
}

fn main() -> ExitCode {
    if let Some(code) = holder::helper_role() {
        return code;
    }
    let args = Args::parse();
    if !vigil_e2e::is_root() {
        eprintln!("bench_metrics: needs root (vigild registers sessions for root callers only)");
        return ExitCode::from(1);
    }
    let state = TmpfsState::new(1);
    let mut h = Harness::with_syslog();
    state.link(&h);
    let user = h.create_user("benchm");
    h.start_vigild(holder::vigild_opts(&user.name).config(holder::QUIET_POLICY).no_bus());
    let pid = h.vigild().pid();
    let socket = h.private_socket();

    let mut holder = Holder::spawn(&socket, &user.name, 16, 0, &h.path("holder.stderr"));
    let top_up = match holder.top_up(args.sessions) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench_metrics: opening {} sessions: {e}", args.sessions);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("opened {} sessions in {:.1} s ({:.0} µs each); settling 2 s", top_up.added, top_up.seconds, top_up.us_each());
    std::thread::sleep(Duration::from_secs(2));

    // The calls' round trips over one connection.
    let (mut metrics_call, mut status_call) =
        (Timing { what: "`Metrics` call", us: Vec::new() }, Timing { what: "`Status` call (baseline)", us: Vec::new() });
    let mut text_bytes = 0;
    let called = zruntime::block_on(async {
        let connection = Target::Socket(socket.clone()).connect().await.map_err(|e| e.to_string())?;
        let manager = ManagerProxy::new(&connection).await.map_err(|e| e.to_string())?;
        for i in 0..args.calls * 2 {
            let start = Instant::now();
            if i % 2 == 0 {
                text_bytes = manager.metrics().await.map_err(|e| e.to_string())?.len();
                metrics_call.us.push(start.elapsed().as_secs_f64() * 1e6);
            } else {
                manager.status().await.map_err(|e| e.to_string())?;
                status_call.us.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok::<_, String>(())
    });
    if let Err(e) = called {
        eprintln!("bench_metrics: {e}");
        return ExitCode::FAILURE;
    }

    // Whole vigilctl runs.
    let (mut metrics_run, mut daemon_run) =
        (Timing { what: "`vigilctl metrics` run", us: Vec::new() }, Timing { what: "`vigilctl daemon` run (baseline)", us: Vec::new() });
    for i in 0..args.calls * 2 {
        let verb = if i % 2 == 0 { "metrics" } else { "daemon" };
        let start = Instant::now();
        let status = Command::new(vigil_e2e::paths::vigilctl_bin()).arg("--socket").arg(&socket).arg(verb).stdout(Stdio::null()).status();
        let us = start.elapsed().as_secs_f64() * 1e6;
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("bench_metrics: vigilctl {verb} failed");
            return ExitCode::FAILURE;
        }
        if i % 2 == 0 { metrics_run.us.push(us) } else { daemon_run.us.push(us) }
    }

    // The textfile refresh: vigild's CPU without, then with it every second.
    eprintln!("{} s without the textfile, then {} s with it (interval 1s)", args.window, args.window);
    let without = usage::idle_window(pid, args.window);
    let textfile: PathBuf = h.path("vigil.prom");
    h.vigild().write_config(&format!("{}\n[metrics]\ntextfile = \"{}\"\ninterval = \"1s\"\n", holder::QUIET_POLICY, textfile.display()));
    if !h.vigild().vigilctl(&["reload"]).status.success() {
        eprintln!("bench_metrics: reload with [metrics] failed");
        return ExitCode::FAILURE;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let with = usage::idle_window(pid, args.window);
    let file_bytes = std::fs::metadata(&textfile).map(|m| m.len()).unwrap_or(0);
    drop(holder);

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "vigild on its private socket, {} sessions (`bench_metrics --sessions {} --calls {} --window {}`), load average {}",
        top_up.added,
        args.sessions,
        args.calls,
        args.window,
        load.join(" ")
    );
    println!();
    println!("| what | n | p50 µs | p99 µs | max µs |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let rows = [metrics_call.row(), status_call.row(), metrics_run.row(), daemon_run.row()];
    for row in &rows {
        println!("{row}");
    }
    println!();
    println!("The metrics text: {text_bytes} bytes.");
    println!();
    println!("| vigild, {} s window | CPU ms (ticks) | CPU µs (schedstat) | context switches |", args.window);
    println!("| --- | ---: | ---: | ---: |");
    println!("| no textfile | {:.0} | {} | {} |", without.cpu_ms, without.cpu_us_exact, without.switches);
    println!("| textfile every 1 s ({file_bytes} bytes) | {:.0} | {} | {} |", with.cpu_ms, with.cpu_us_exact, with.switches);
    let per_refresh = with.cpu_us_exact.saturating_sub(without.cpu_us_exact) as f64 / args.window as f64;
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let p99_ms = percentile(&metrics_call.us, 99.0) / 1000.0;
    println!(
        "Issue 21: `Metrics` answers in {:.2} ms p50, {p99_ms:.2} ms p99 (≤ {ANSWER_TARGET_MS} ms: {}); a textfile refresh costs \
         vigild {per_refresh:.0} µs of CPU ((with − without) / {} refreshes; ≤ {REFRESH_TARGET_US} µs: {}).",
        percentile(&metrics_call.us, 50.0) / 1000.0,
        verdict(p99_ms <= ANSWER_TARGET_MS),
        args.window,
        verdict(per_refresh <= REFRESH_TARGET_US)
    );
    ExitCode::SUCCESS
}
