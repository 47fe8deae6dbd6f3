//! bench_pam's report with `--preload` (issue 9: login cost against the registry's
//! size): per registry size, the latency of each stack against the same run's
//! pam_permit, vigild's CPU per login, its RSS, and what it did with nobody calling.

use serde_json::{Value, json};
use vigil_e2e::Stats;

use crate::facts::Facts;
use crate::issue2::{facts_json, stack_json};
use crate::{Cli, Kind, Level, StackResult, added, signed};

pub const BEGIN: &str = "<!-- bench_pam_preload:begin -->";
pub const END: &str = "<!-- bench_pam_preload:end -->";
pub const BEGIN_NO_BUS: &str = "<!-- bench_pam_preload_no_bus:begin -->";
pub const END_NO_BUS: &str = "<!-- bench_pam_preload_no_bus:end -->";

/// Issue 9's targets.
const SOCKET_ADDED_P50_US: i64 = 300;
const BUS_ADDED_P50_US: i64 = 600;
const ADDED_P99_US: i64 = 1000;
/// p50 with 10,000 sessions against none.
const P50_GROWTH_PERCENT: f64 = 20.0;
const RSS_LIMIT_KIB: u64 = 128 * 1024;

fn stack(level: &Level, kind: Kind) -> Option<&StackResult> {
    level.stacks.iter().find(|s| s.kind == kind)
}

fn base(level: &Level) -> Stats {
    stack(level, Kind::Permit).map(StackResult::pooled).unwrap_or_default()
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

pub fn markdown(cli: &Cli, f: &Facts, levels: &[Level]) -> String {
    let (begin, end) = cli.markers();
    let vigil: Vec<Kind> =
        [Kind::VigilSocket, Kind::VigilBus].into_iter().filter(|&k| levels.first().is_some_and(|l| stack(l, k).is_some())).collect();
    let mut md = format!("{begin}\nCommand (as root, from the repository): `{}`\n\n", f.command);
    md.push_str(&format!(
        "- at each registry size, {} cycles of pam_open_session + pam_close_session per stack through real libpam \
         (`pam_host`, tty and rhost set as sshd sets them): {} rounds, stack order alternating, {} warm-up cycles \
         per stack discarded; pam_permit is the same-run baseline\n",
        cli.cycles, cli.rounds, cli.warmup
    ));
    if cli.per_leader == 0 {
        md.push_str(&format!(
            "- the registered sessions are held by one helper process (their only leader, not an ancestor of the PAM \
             hosts) and opened over one private-socket connection, {} calls in flight",
            cli.in_flight
        ));
    } else {
        md.push_str(&format!(
            "- the registered sessions have a leader process per {} of them (children of a helper that is not an \
             ancestor of the PAM hosts; each opens its sessions over its own connection, closes it and sleeps), \
             {} leaders starting at a time",
            cli.per_leader, cli.in_flight
        ));
    }
    md.push_str("; they have no tty and `notty_idle_timeout = \"4h\"` (sampled hourly), so no deadline falls within the run\n");
    md.push_str(if cli.no_bus {
        "- vigild **without a bus** (`--no-bus`): private socket only\n"
    } else {
        "- vigild on its private socket and on the harness's private system bus (dbus-daemon, packaging policy): \
         every session also has its object on the bus connection\n"
    });
    md.push_str(&crate::state_line(cli));
    md.push_str(&f.markdown_lines());

    md.push_str("\nopen+close through real libpam, µs (pooled over the rounds; added = over pam_permit, same size):\n\n");
    md.push_str("| registered sessions | pam_permit p50 / p99 |");
    for k in &vigil {
        md.push_str(&format!(" {} p50 / p99 | added p50 / p99 |", k.label()));
    }
    md.push_str("\n| ---: | ---: |");
    for _ in &vigil {
        md.push_str(" ---: | ---: |");
    }
    md.push('\n');
    for level in levels {
        let b = base(level);
        md.push_str(&format!("| {} | {} / {} |", level.sessions, b.p50, b.p99));
        for &k in &vigil {
            let s = stack(level, k).map(StackResult::pooled).unwrap_or_default();
            md.push_str(&format!(" {} / {} | {} / {} |", s.p50, s.p99, signed(added(s.p50, b.p50)), signed(added(s.p99, b.p99))));
        }
        md.push('\n');
    }

    md.push_str(
        "\nvigild per registry size (CPU per login from /proc/PID/stat utime+stime over the measured cycles, 10 ms \
         ticks; the idle window is vigild with nobody calling, after the sessions were opened and 2 s of settling, \
         its CPU from the threads' schedstat):\n\n",
    );
    md.push_str("| registered sessions | opening them | vigild RSS MiB (before → after the rounds) |");
    for k in &vigil {
        md.push_str(&format!(" vigild CPU µs per login, {} |", short(*k)));
    }
    if vigil.contains(&Kind::VigilBus) {
        md.push_str(" dbus-daemon CPU µs per login, bus |");
    }
    md.push_str(" rsyslogd CPU µs per login, socket | idle window: vigild CPU µs (schedstat) / context switches | load (1 min) after |\n");
    md.push_str("| ---: | ---: | ---: |");
    for _ in &vigil {
        md.push_str(" ---: |");
    }
    if vigil.contains(&Kind::VigilBus) {
        md.push_str(" ---: |");
    }
    md.push_str(" ---: | ---: | ---: |\n");
    for level in levels {
        let opening = level.top_up.map_or("—".to_string(), |t| format!("{} in {:.1} s ({:.0} µs each)", t.added, t.seconds, t.us_each()));
        md.push_str(&format!("| {} | {opening} | {} → {} |", level.sessions, mib(level.rss_start_kib), mib(level.rss_end_kib)));
        for &k in &vigil {
            let cpu = stack(level, k).map_or(0.0, |s| s.daemon_cpu_per_cycle()[0]);
            md.push_str(&format!(" {cpu:.0} |"));
        }
        if vigil.contains(&Kind::VigilBus) {
            let cpu = stack(level, Kind::VigilBus).map_or(0.0, |s| s.daemon_cpu_per_cycle()[1]);
            md.push_str(&format!(" {cpu:.0} |"));
        }
        let syslog = stack(level, Kind::VigilSocket).map_or(0.0, |s| s.daemon_cpu_per_cycle()[3]);
        let idle = level.idle.map_or("—".to_string(), |w| format!("{} / {} over {} s", w.cpu_us_exact, w.switches, w.seconds));
        md.push_str(&format!(" {syslog:.0} | {idle} | {} |\n", level.load_after));
    }
    md.push_str(&targets(levels, &vigil));
    md.push_str("\nSession lines (`$DIR` is the harness's directory under /tmp; auth and account are pam_permit):\n\n```\n");
    for s in levels.first().map(|l| l.stacks.as_slice()).unwrap_or_default() {
        md.push_str(&s.session_line);
        md.push('\n');
    }
    md.push_str("```\n");
    md.push_str(end);
    md.push('\n');
    md
}

fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::VigilBus => "bus",
        _ => "socket",
    }
}

/// The verdict lines for the sizes this run measured.
fn targets(levels: &[Level], vigil: &[Kind]) -> String {
    let mut md = String::from("\nTargets (issue 9):\n");
    let at = |n: u32| levels.iter().find(|l| l.sessions == n);
    if let Some(zero) = at(0) {
        let b = base(zero);
        for &k in vigil {
            let Some(s) = stack(zero, k).map(StackResult::pooled) else { continue };
            let (a50, a99) = (added(s.p50, b.p50), added(s.p99, b.p99));
            let p50_target = if k == Kind::VigilBus { BUS_ADDED_P50_US } else { SOCKET_ADDED_P50_US };
            md.push_str(&format!(
                "- added open+close, {}, no other session: p50 {} µs (≤ {p50_target}: {}), p99 {} µs (≤ {ADDED_P99_US}: {})\n",
                short(k),
                signed(a50),
                verdict(a50 <= p50_target),
                signed(a99),
                verdict(a99 <= ADDED_P99_US)
            ));
        }
        if let Some(ten) = at(10_000) {
            for &k in vigil {
                let (Some(s0), Some(s10)) = (stack(zero, k).map(StackResult::pooled), stack(ten, k).map(StackResult::pooled)) else {
                    continue;
                };
                let growth = (s10.p50 as f64 / s0.p50.max(1) as f64 - 1.0) * 100.0;
                md.push_str(&format!(
                    "- p50 with 10,000 sessions against none, {}: {} → {} µs ({growth:+.1} %, within {P50_GROWTH_PERCENT} %: {})\n",
                    short(k),
                    s0.p50,
                    s10.p50,
                    verdict(growth <= P50_GROWTH_PERCENT)
                ));
            }
        }
    }
    if let Some(big) = at(100_000) {
        let rss = big.rss_start_kib.max(big.rss_end_kib);
        md.push_str(&format!("- 100,000 sessions: vigild RSS {} MiB (≤ 128 MiB: {})", mib(rss), verdict(rss <= RSS_LIMIT_KIB)));
        let zero = at(0).and_then(|l| l.idle);
        let idle_zero = zero.map_or("not measured".to_string(), |w| format!("{} µs", w.cpu_us_exact));
        match big.idle {
            Some(w) => md.push_str(&format!(
                "; with nobody calling, {} µs CPU and {} context switches in {} s (no CPU per session between \
                 deadlines: {}; with no session: {idle_zero}, the adoption sweep's)\n",
                w.cpu_us_exact,
                w.switches,
                w.seconds,
                match zero {
                    Some(z) => verdict(vigil_e2e::bench::sessions_cost_no_idle_cpu(w.cpu_us_exact, z.cpu_us_exact)),
                    None => "not compared",
                }
            )),
            None => md.push_str("; idle window not measured (--idle-window 0)\n"),
        }
    }
    md
}

pub fn to_json(cli: &Cli, f: &Facts, levels: &[Level]) -> Value {
    let mut out = facts_json(f);
    out["benchmark"] = json!("pam_open_close_by_registry_size");
    out["bus"] = json!(!cli.no_bus);
    out["cycles"] = json!(cli.cycles);
    out["rounds"] = json!(cli.rounds);
    out["warmup"] = json!(cli.warmup);
    out["in_flight"] = json!(cli.in_flight);
    out["levels"] = levels
        .iter()
        .map(|level| {
            let b = base(level);
            json!({
                "sessions": level.sessions,
                "opening": level.top_up.map(|t| json!({"added": t.added, "seconds": t.seconds, "us_each": t.us_each()})),
                "vigild_rss_kib": {"before": level.rss_start_kib, "after": level.rss_end_kib},
                "idle_window": level.idle.map(|w| json!({
                    "seconds": w.seconds, "cpu_ms": w.cpu_ms, "cpu_us_schedstat": w.cpu_us_exact,
                    "context_switches": w.switches, "rss_kib": w.rss_kib,
                })),
                "load1_after": level.load_after,
                "stacks": level.stacks.iter().map(|s| stack_json(s, &b)).collect::<Vec<_>>(),
            })
        })
        .collect();
    out
}
