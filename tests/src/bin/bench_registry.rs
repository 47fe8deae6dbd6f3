//! bench_registry: what 10,000 registered sessions cost vigild while no deadline is
//! near (issue 3's benchmark): CPU time, context switches (wake-ups) and memory, over
//! the same window with no sessions first (the baseline, same run).
//!
//! `bench_registry [--sessions N (10000)] [--window SECONDS (20)]`
//!
//! The sessions are opened by this process over one private-socket connection (it is
//! their leader, as sshd's [priv] process is for a login) with a policy whose nearest
//! limit is an hour away (`notty_idle_timeout = "1h"`: sampled every 15 min). vigild
//! must show no periodic scan: CPU and wake-ups over the window stay at the baseline.
//! Needs root and the release build.

use std::time::{Duration, Instant};

use clap::Parser;
use vigil_e2e::{Harness, VigildOpts};
use vigil_protocol::{ManagerProxy, Target};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    sessions: u32,
    #[arg(long, default_value_t = 20)]
    window: u64,
}

/// Context switches (voluntary + involuntary) per thread: threads come and go (tokio's
/// blocking pool), so a window counts only threads alive at both ends.
fn switches_by_thread(pid: u32) -> std::collections::HashMap<String, u64> {
    let mut by_thread = std::collections::HashMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let n: u64 = status
                .lines()
                .filter_map(|l| l.strip_prefix("voluntary_ctxt_switches:").or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:")))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum();
            by_thread.insert(task.file_name().to_string_lossy().into_owned(), n);
        }
    }
    by_thread
}

/// CPU ticks (user+system, whole process) and resident memory in KiB.
fn usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0);
    (ticks, rss)
}

fn measure(pid: u32, window: Duration) -> (f64, u64, u64) {
    let (t0, _) = usage(pid);
    let s0 = switches_by_thread(pid);
    std::thread::sleep(window);
    let (t1, rss) = usage(pid);
    let s1 = switches_by_thread(pid);
    let switches = s1.iter().filter_map(|(tid, n)| s0.get(tid).map(|before| n.saturating_sub(*before))).sum();
    // USER_HZ is 100 on Linux: a tick is 10 ms.
    let cpu_ms = (t1 - t0) as f64 * 10.0;
    (cpu_ms, switches, rss)
}

fn main() {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bench_registry: needs root (vigild registers sessions for root callers only)");
        std::process::exit(1);
    }
    let window = Duration::from_secs(args.window);
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().config("[defaults]\nidle_timeout = \"15m\"\nnotty_idle_timeout = \"1h\"\n"));
    let pid = h.vigild().pid();
    let target = Target::Socket(h.private_socket());
    let user = h.create_user("bench");

    eprintln!("baseline: {} s with no session", args.window);
    let (base_cpu, base_switches, base_rss) = measure(pid, window);

    let me = std::process::id();
    let ses = std::fs::read_to_string("/proc/self/sessionid").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(u32::MAX);
    let started = Instant::now();
    let (connection, opened) = zruntime::block_on(async {
        let connection = target.connect().await.expect("connect to vigild");
        let manager = ManagerProxy::new(&connection).await.expect("proxy");
        let mut opened = 0u32;
        for i in 0..args.sessions {
            let tty = format!("bench{i}");
            if manager.open_session(&user.name, "vigil-bench", &tty, "192.0.2.1", "", me, ses).await.is_ok() {
                opened += 1;
            }
        }
        (connection, opened)
    });
    let open_secs = started.elapsed().as_secs_f64();
    eprintln!("opened {opened} sessions in {open_secs:.1} s; settling 2 s, then {} s measured", args.window);
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, switches, rss) = measure(pid, window);
    drop(connection);

    println!("| vigild, {} s window | sessions | CPU ms | CPU % | context switches | RSS KiB |", args.window);
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let pct = |ms: f64| ms / (args.window as f64 * 1000.0) * 100.0;
    println!("| baseline | 0 | {base_cpu:.0} | {:.3} | {base_switches} | {base_rss} |", pct(base_cpu));
    println!("| registered, idle | {opened} | {cpu:.0} | {:.3} | {switches} | {rss} |", pct(cpu));
    println!();
    println!("Opening {opened} sessions over one connection took {open_secs:.1} s ({:.0} µs each).", open_secs * 1e6 / f64::from(opened.max(1)));
}
