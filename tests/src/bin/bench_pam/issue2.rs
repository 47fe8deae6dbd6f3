//! bench_pam's report of a run without `--preload` (issue 2's section of BENCHMARKS.md):
//! the four stacks at one registry size, per round, and the daemons' CPU per cycle.

use serde_json::{Value, json};
use vigil_e2e::Stats;

use crate::facts::Facts;
use crate::{Cli, DAEMONS, Kind, StackResult, TARGET_P50_US, TARGET_P99_US, added, signed, stats_json};
use vigil_e2e::bench::clk_tck;

pub const BEGIN: &str = "<!-- bench_pam:begin -->";
pub const END: &str = "<!-- bench_pam:end -->";
/// With `--brokers dbus-daemon,dbus-broker` (issue 22's comparison of the two).
pub const BEGIN_BROKERS: &str = "<!-- bench_pam_brokers:begin -->";
pub const END_BROKERS: &str = "<!-- bench_pam_brokers:end -->";

pub fn markdown(cli: &Cli, f: &Facts, stacks: &[StackResult]) -> String {
    let base = stacks[0].pooled();
    let per_round = cli.cycles / cli.rounds;
    let (begin, end) = cli.markers();
    let mut md = String::new();
    md.push_str(begin);
    md.push('\n');
    md.push_str(&format!("Command (as root, from the repository): `{}`\n\n", f.command));
    md.push_str(&format!(
        "- {} cycles of pam_open_session + pam_close_session per stack, through real libpam (`pam_host`): {} rounds \
         of {}{} cycles, one pam_host run per stack and round, stack order alternating; {} warm-up cycles per \
         stack discarded\n",
        cli.cycles,
        cli.rounds,
        per_round,
        if cli.cycles.is_multiple_of(cli.rounds) { String::new() } else { "-".to_string() + &(per_round + 1).to_string() },
        cli.warmup
    ));
    md.push_str(&f.markdown_lines());
    let buses: Vec<&str> = if cli.no_bus { Vec::new() } else { cli.brokers.iter().map(|b| b.name()).collect() };
    md.push_str(&format!(
        "- vigild, {}rsyslogd (the harness's own) run on the same machine; vigild writes an audit line per open and close\n",
        buses.iter().map(|b| format!("{b}, ")).collect::<String>()
    ));
    if buses.len() > 1 {
        md.push_str(
            "- each bus has its own vigild (the second in the harness's `second/` directory, with the same options and \
             its session files on tmpfs too), so that both bus stacks run interleaved in the same rounds; both buses \
             load the same configuration file with the packaging policy; dbus-broker runs as `dbus-broker-launch \
             --scope system` under `systemd-socket-activate` (tests/src/bus.rs)\n",
        );
    }
    md.push_str(&crate::state_line(cli));
    md.push('\n');
    md.push_str("| stack | cycles | p50 µs | p99 µs | max µs | p50 added over pam_permit | p99 added over pam_permit |\n");
    md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for s in stacks {
        let st = s.pooled();
        let (a50, a99) = if s.kind == Kind::Permit {
            ("—".to_string(), "—".to_string())
        } else {
            (signed(added(st.p50, base.p50)), signed(added(st.p99, base.p99)))
        };
        md.push_str(&format!("| {} | {} | {} | {} | {} | {} | {} |\n", s.kind.label(), st.n, st.p50, st.p99, st.max, a50, a99));
    }
    md.push('\n');
    md.push_str(&format!("Target (issue 2): pam_vigil adds ≤ {TARGET_P50_US} µs p50 and ≤ {TARGET_P99_US} µs p99 over pam_permit.\n"));
    for s in stacks.iter().filter(|s| s.kind.is_vigil()) {
        let st = s.pooled();
        let (a50, a99) = (added(st.p50, base.p50), added(st.p99, base.p99));
        let verdict = |v: i64, t: i64| if v <= t { "met" } else { "**missed**" };
        md.push_str(&format!(
            "- {}: p50 {} µs ({}), p99 {} µs ({})\n",
            s.kind.label(),
            signed(a50),
            verdict(a50, TARGET_P50_US),
            signed(a99),
            verdict(a99, TARGET_P99_US)
        ));
    }
    let p50_of = |kind: Kind| stacks.iter().find(|s| s.kind == kind).map(|s| s.pooled().p50);
    if let (Some(socket), Some(null)) = (p50_of(Kind::VigilSocket), p50_of(Kind::NullServer)) {
        md.push_str(&format!(
            "- of which vigild's own work: {} µs p50 (private socket {socket} − null server {null}); the null server's {} µs \
             over pam_permit is the module, libpam and two connections to a local server that answers at once: this \
             machine's floor for any daemon-backed module\n",
            signed(added(socket, null)),
            signed(added(null, base.p50)),
        ));
    }
    if let (Some(daemon), Some(broker)) = (stack_of(stacks, Kind::VigilBus), stack_of(stacks, Kind::VigilBroker)) {
        let (d, b) = (daemon.pooled(), broker.pooled());
        let (dc, bc) = (daemon.daemon_cpu_per_cycle(), broker.daemon_cpu_per_cycle());
        md.push_str(&format!(
            "- bus through dbus-broker against dbus-daemon, same rounds: p50 {} µs ({:.2}×), p99 {} µs ({:.2}×); the bus \
             daemon's CPU per open+close {:.0} µs against {:.0} µs ({:.2}×); vigild's {:.0} µs against {:.0} µs\n",
            signed(added(b.p50, d.p50)),
            b.p50 as f64 / d.p50.max(1) as f64,
            signed(added(b.p99, d.p99)),
            b.p99 as f64 / d.p99.max(1) as f64,
            bc[2],
            dc[1],
            bc[2] / dc[1].max(1.0),
            bc[0],
            dc[0],
        ));
    }
    md.push('\n');
    md.push_str("Per round, p50 / p99 µs of open+close (round order alternates; open and close p50 from pam_host):\n\n");
    md.push_str("| stack |");
    for r in 1..=cli.rounds {
        md.push_str(&format!(" round {r} |"));
    }
    md.push_str(" open p50 / close p50 (per round) |\n| --- |");
    for _ in 1..=cli.rounds {
        md.push_str(" ---: |");
    }
    md.push_str(" --- |\n");
    for s in stacks {
        md.push_str(&format!("| {} |", s.kind.label()));
        for run in &s.runs {
            let st = Stats::from_samples(&run.samples);
            md.push_str(&format!(" {} / {} |", st.p50, st.p99));
        }
        let split: Vec<String> = s.runs.iter().map(|r| format!("{}/{}", r.report.open_us.p50, r.report.close_us.p50)).collect();
        md.push_str(&format!(" {} |\n", split.join(", ")));
    }
    md.push_str(&format!(
        "\nCPU time of the harness's daemons per measured cycle while each stack ran (µs; utime+stime from \
         /proc in {} ms ticks, so ±{:.0} µs per cycle at these counts; includes vigild's periodic work; vigild is \
         every vigild of the harness, dbus-broker includes dbus-broker-launch):\n\n",
        1000 / clk_tck(),
        (1_000_000.0 / clk_tck() as f64) * cli.rounds as f64 / cli.cycles as f64
    ));
    md.push_str("| stack |");
    for d in DAEMONS {
        md.push_str(&format!(" {d} |"));
    }
    md.push_str("\n| --- |");
    for _ in DAEMONS {
        md.push_str(" ---: |");
    }
    md.push('\n');
    for s in stacks {
        md.push_str(&format!("| {} |", s.kind.label()));
        for v in s.daemon_cpu_per_cycle() {
            md.push_str(&format!(" {v:.0} |"));
        }
        md.push('\n');
    }
    md.push_str("\nSession lines (`$DIR` is the harness's directory under /tmp; auth and account are pam_permit):\n\n```\n");
    for s in stacks {
        md.push_str(&s.session_line);
        md.push('\n');
    }
    md.push_str("```\n");
    md.push_str(end);
    md.push('\n');
    md
}

pub fn to_json(cli: &Cli, f: &Facts, stacks: &[StackResult]) -> Value {
    let base = stacks[0].pooled();
    let mut out = facts_json(f);
    out["benchmark"] = json!("pam_open_close");
    out["cycles"] = json!(cli.cycles);
    out["rounds"] = json!(cli.rounds);
    out["warmup"] = json!(cli.warmup);
    out["target_added_us"] = json!({"p50": TARGET_P50_US, "p99": TARGET_P99_US});
    out["stacks"] = stacks.iter().map(|s| stack_json(s, &base)).collect();
    out
}

/// The command, date, build and machine of a run.
pub fn facts_json(f: &Facts) -> Value {
    json!({
        "command": f.command,
        "date": f.date,
        "commit": f.commit,
        "dirty": f.dirty,
        "module_built": f.module_built,
        "machine": {"nproc": f.nproc, "cpu": f.cpu, "kernel": f.kernel, "os": f.os, "processes": f.processes,
                    "load1_before": f.load_before, "load1_after": f.load_after},
    })
}

/// One stack's pooled figures and rounds, against the same run's pam_permit (`base`).
pub fn stack_json(s: &StackResult, base: &Stats) -> Value {
    let st = s.pooled();
    json!({
        "stack": s.kind.key(),
        "label": s.kind.label(),
        "session_line": s.session_line,
        "cycle_us": stats_json(&st),
        "added_over_permit_us": {"p50": added(st.p50, base.p50), "p99": added(st.p99, base.p99)},
        "daemon_cpu_us_per_cycle": DAEMONS.iter().zip(s.daemon_cpu_per_cycle())
            .map(|(d, v)| (d.to_string(), json!((v * 10.0).round() / 10.0)))
            .collect::<serde_json::Map<String, Value>>(),
        "runs": s.runs.iter().map(|r| json!({
            "round": r.round,
            "cycle_us": stats_json(&Stats::from_samples(&r.samples)),
            "open_us": stats_json(&r.report.open_us),
            "close_us": stats_json(&r.report.close_us),
            "total_ms": r.report.total_ms,
            "daemon_cpu_us": DAEMONS.iter().zip(r.daemon_cpu_us)
                .map(|(d, v)| (d.to_string(), json!(v)))
                .collect::<serde_json::Map<String, Value>>(),
        })).collect::<Vec<_>>(),
    })
}

fn stack_of(stacks: &[StackResult], kind: Kind) -> Option<&StackResult> {
    stacks.iter().find(|s| s.kind == kind)
}
