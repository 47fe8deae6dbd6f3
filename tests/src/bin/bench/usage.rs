//! What a daemon does while nobody calls it, from /proc: CPU time (utime + stime in
//! clock ticks, and each thread's exact schedstat), its threads' context switches,
//! resident memory. Shared by the bench_* programs (`#[path]` module); CPU time per
//! call is `vigil_e2e::bench::cpu_us`.

use std::collections::HashMap;
use std::time::Duration;

use vigil_e2e::bench::clk_tck;
use vigil_e2e::procfs::rss_kib;

/// Every pid the harness started under one of `names` (a history: ended ones give 0 CPU).
pub fn all_pids_of(h: &vigil_e2e::Harness, names: &[&str]) -> Vec<u32> {
    h.spawned().iter().filter(|r| names.contains(&r.name.as_str())).map(|r| r.pid).collect()
}

/// utime + stime (µs, 10 ms ticks) of the processes `pids`, summed.
pub fn cpu_us_of(pids: &[u32]) -> u64 {
    pids.iter().map(|&pid| vigil_e2e::bench::cpu_us(Some(pid))).sum()
}

/// utime + stime of a process, all its threads, in clock ticks; `None` once it is gone.
fn cpu_ticks(pid: u32) -> Option<u64> {
    Some(vigil_host::procfs::parse_stat_line(&vigil_host::procfs::stat_text(pid)?)?.cpu_ticks)
}

/// Per thread id: context switches (voluntary + involuntary) and time on a CPU (ns,
/// /proc/PID/task/TID/schedstat: exact, where utime+stime count 10 ms ticks).
fn threads(pid: u32) -> HashMap<String, (u64, u64)> {
    let mut by_thread = HashMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let switches: u64 = ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
                .iter()
                .filter_map(|key| vigil_host::procfs::status_value(&status, key)?.parse::<u64>().ok())
                .sum();
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let ns = schedstat.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
            by_thread.insert(task.file_name().to_string_lossy().into_owned(), (switches, ns));
        }
    }
    by_thread
}

/// What a process did over a window in which nobody called it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub seconds: u64,
    pub cpu_ms: f64,
    /// Threads come and go (tokio's blocking pool): only threads alive at both ends count
    /// in these two (a thread that starts in the window counts from zero).
    pub switches: u64,
    pub cpu_us_exact: u64,
    pub rss_kib: u64,
}

/// Watches `pid` for `seconds` of wall time.
pub fn idle_window(pid: u32, seconds: u64) -> Window {
    window_with(pid, seconds, || ())
}

/// Watches `pid` for `seconds` (on the monotonic clock), `during` run at its start.
pub fn window_with(pid: u32, seconds: u64, during: impl FnOnce()) -> Window {
    let t0 = cpu_ticks(pid).unwrap_or(0);
    let s0 = threads(pid);
    let start = std::time::Instant::now();
    during();
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(start.elapsed()));
    let t1 = cpu_ticks(pid).unwrap_or(0);
    let s1 = threads(pid);
    let (mut switches, mut ns) = (0, 0);
    for (tid, (n1, ns1)) in &s1 {
        let (n0, ns0) = s0.get(tid).copied().unwrap_or((0, 0));
        switches += n1.saturating_sub(n0);
        ns += ns1.saturating_sub(ns0);
    }
    Window {
        seconds,
        cpu_ms: t1.saturating_sub(t0) as f64 * 1000.0 / clk_tck() as f64,
        switches,
        cpu_us_exact: ns / 1000,
        rss_kib: rss_kib(pid).unwrap_or(0),
    }
}
