//! bench_registry: what registered sessions cost vigild while no deadline is near
//! (issues 3 and 9): CPU time, context switches (wake-ups) and memory over a window with
//! nobody calling, first with no sessions (the baseline, same run), then with N.
//!
//! `bench_registry [--sessions N (10000)] [--window SECONDS (20)] [--bus]
//!                 [--in-flight K (16)] [--per-leader K (0)] [--state-on-disk]
//!                 [--clock-step SECONDS]`
//!
//! The sessions are held by a helper process (`bench/holder.rs`): opened over one
//! private-socket connection, K calls in flight, the helper their leader as sshd's
//! `[priv]` process is for a login; with `--per-leader K`, one leader process per K
//! sessions. The policy's nearest limit is hours away (`notty_idle_timeout = "4h"`,
//! sampled hourly): vigild must show no periodic scan, CPU and wake-ups over the window
//! stay at the baseline. With `--bus` vigild also serves the harness's private system
//! bus, where every session has its object on the bus connection (memory). The session
//! files are on tmpfs, as /run/vigil is (`bench/tmpfs_state.rs`), unless `--state-on-disk`.
//! With `--clock-step S`, the machine's wall clock is then set S seconds ahead and, a
//! second later, back (undone on drop): vigild's CPU over those 3 s is what moving every
//! session's times twice costs (`clock.rs`), against 3 s of the held window.
//! Needs root and the release build.

#[path = "bench/holder.rs"]
mod holder;
#[path = "bench/tmpfs_state.rs"]
mod tmpfs_state;
#[allow(dead_code)] // CPU per call is bench_pam's
#[path = "bench/usage.rs"]
mod usage;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use vigil_e2e::{BusPolicy, Harness};

use holder::Holder;
use tmpfs_state::TmpfsState;

/// Issue 9's memory target for 100,000 sessions.
const RSS_LIMIT_KIB: u64 = 128 * 1024;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    sessions: u32,
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// vigild also on the harness's private system bus (session objects on the bus connection).
    #[arg(long)]
    bus: bool,
    /// OpenSession calls (or leaders starting) in flight while opening.
    #[arg(long, default_value_t = 16)]
    in_flight: u32,
    /// One leader process per K sessions; 0: the helper leads them all.
    #[arg(long, default_value_t = 0)]
    per_leader: u32,
    /// Leave vigild's session files under /tmp instead of on tmpfs (as /run/vigil).
    #[arg(long)]
    state_on_disk: bool,
    /// After the window, set the wall clock this many seconds ahead and back.
    #[arg(long)]
    clock_step: Option<u64>,
}

fn main() -> ExitCode {
    if let Some(code) = holder::helper_role() {
        return code;
    }
    let args = Args::parse();
    if !vigil_e2e::is_root() {
        eprintln!("bench_registry: needs root (vigild registers sessions for root callers only)");
        return ExitCode::from(1);
    }
    let state = (!args.state_on_disk).then(|| TmpfsState::new(1));
    let mut h = Harness::with_syslog();
    if let Some(state) = &state {
        state.link(&h);
    }
    let user = h.create_user("bench");
    let mut opts = holder::vigild_opts(&user.name).config(holder::QUIET_POLICY);
    if args.bus {
        h.start_bus(BusPolicy::Packaging);
    } else {
        opts = opts.no_bus();
    }
    h.start_vigild(opts);
    let pid = h.vigild().pid();

    eprintln!("baseline: {} s with no session", args.window);
    let base = usage::idle_window(pid, args.window);

    let mut holder = Holder::spawn(&h.private_socket(), &user.name, args.in_flight, args.per_leader, &h.path("holder.stderr"));
    let top_up = match holder.top_up(args.sessions) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench_registry: opening {} sessions: {e}", args.sessions);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("opened {} sessions in {:.1} s; settling 2 s, then {} s measured", top_up.added, top_up.seconds, args.window);
    std::thread::sleep(Duration::from_secs(2));
    let held = usage::idle_window(pid, args.window);
    let stepped = args.clock_step.map(|seconds| {
        usage::window_with(pid, 3, || {
            let mut clock = vigil_e2e::clock::ClockSteps::new();
            clock.forward(Duration::from_secs(seconds));
            std::thread::sleep(Duration::from_secs(1));
        })
    });
    drop(holder);

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "vigild {}, `bench_registry --sessions {} --window {}{}{}`, load average {}",
        if args.bus { "on its private socket and the harness's private system bus" } else { "on its private socket only (--no-bus)" },
        args.sessions,
        args.window,
        if args.bus { " --bus" } else { "" },
        if args.per_leader > 0 { format!(" --per-leader {}", args.per_leader) } else { String::new() },
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!("| vigild, {} s window | sessions | CPU ms (ticks) | CPU µs (schedstat) | context switches | RSS KiB |", args.window);
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (what, n, w) in [("baseline", 0, &base), ("registered, idle", top_up.added, &held)] {
        println!("| {what} | {n} | {:.0} | {} | {} | {} |", w.cpu_ms, w.cpu_us_exact, w.switches, w.rss_kib);
    }
    println!();
    let per_session = held.rss_kib.saturating_sub(base.rss_kib) as f64 * 1024.0 / f64::from(top_up.added.max(1));
    println!(
        "Opening {} sessions took {:.1} s ({:.0} µs each); {:.0} bytes of RSS per session.",
        top_up.added,
        top_up.seconds,
        top_up.us_each(),
        per_session
    );
    if let (Some(seconds), Some(stepped)) = (args.clock_step, stepped) {
        println!(
            "Two clock steps ({seconds} s ahead, then back) with {} sessions: {} µs of vigild CPU in 3 s, against {} µs in 3 s \
             of the held window.",
            top_up.added,
            stepped.cpu_us_exact,
            held.cpu_us_exact * 3 / args.window.max(1)
        );
    }
    if args.sessions >= 100_000 {
        let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
        println!(
            "Issue 9: RSS {:.1} MiB (≤ 128 MiB: {}); no CPU per session between deadlines: {} ({} µs in {} s; {} µs \
             with no session: the adoption sweep's, allowed {} µs more).",
            held.rss_kib as f64 / 1024.0,
            verdict(held.rss_kib <= RSS_LIMIT_KIB),
            verdict(vigil_e2e::bench::sessions_cost_no_idle_cpu(held.cpu_us_exact, base.cpu_us_exact)),
            held.cpu_us_exact,
            args.window,
            base.cpu_us_exact,
            vigil_e2e::bench::IDLE_SWEEP_ALLOWANCE_US
        );
    }
    ExitCode::SUCCESS
}
