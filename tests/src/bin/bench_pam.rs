//! bench_pam: PAM open+close latency through real libpam (issue 2's benchmark).
//!
//! `bench_pam [--cycles N (2000)] [--rounds R (4)] [--warmup W (50)] [--json]
//!            [--update-md FILE]`
//!
//! One harness (private rsyslogd, private system bus with the packaging policy, vigild
//! on both its private socket and that bus), one test user, and four PAM services whose
//! session stacks are:
//!
//! - `pam_permit.so` (the baseline),
//! - `pam_vigil.so` over the private socket (`h.vigil_args()`),
//! - `pam_vigil.so` over the bus (`h.vigil_args().bus(<address>)`, the socket argument
//!   pointing nowhere so that only the bus can register the session),
//! - `pam_exec.so /bin/true` (what a fork+exec per open and close costs).
//!
//! Each stack first runs W warm-up cycles (discarded), then N cycles split into R
//! rounds; the order of the stacks alternates from round to round, so that machine
//! noise hits every stack alike. A round of a stack is one `pam_host --cycles N/R`
//! run (one pam_start, N/R open+close cycles, pam_end) whose per-cycle times come back
//! through `pam_host --samples FILE`; the rounds are pooled for the percentiles
//! (nearest rank, as pam_host computes them). Every cycle must succeed, and every
//! pam_vigil open must set `VIGIL_SESSION_ID` (with `fail=open` a daemon that cannot be
//! reached would otherwise look fast).
//!
//! stdout is the markdown for BENCHMARKS.md, between `<!-- bench_pam:begin -->` and
//! `<!-- bench_pam:end -->`; `--update-md FILE` also replaces that block in FILE.
//! `--json` prints one JSON object instead. Progress goes to stderr.
//!
//! Needs root (like the e2e tests) and the release build: `cargo build --release`, then
//! `cargo build --release -p vigil-e2e --bins`. Everything the harness creates is
//! removed at the end, also on a panic or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vigil_e2e::interrupt::{catch_interrupts, interrupted};
use serde_json::{Value, json};
use vigil_e2e::bench::{Facts, SampledRun, check_md_block, clk_tck, cpu_us, load1, run_sampled, write_md_block};
use vigil_e2e::process::describe_output;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{BusPolicy, Harness, PamHostCmd, PamHostReport, PamStack, Stats, VigildOpts, paths};

const BEGIN: &str = "<!-- bench_pam:begin -->";
const END: &str = "<!-- bench_pam:end -->";
/// Issue 2's target: what pam_vigil may add over pam_permit.
const TARGET_P50_US: i64 = 300;
const TARGET_P99_US: i64 = 1000;
const TTY: &str = "pts/9";
const RHOST: &str = "203.0.113.7";

#[derive(Parser, Debug)]
#[command(name = "bench_pam", about = "PAM open+close latency: pam_permit, pam_vigil (socket, bus), pam_exec")]
struct Cli {
    /// open+close cycles per stack (pooled over the rounds).
    #[arg(long, default_value_t = 2000)]
    cycles: u32,
    /// Rounds; each runs every stack once (one pam_host run of cycles/rounds), in
    /// alternating order.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Warm-up cycles per stack before the first round (not counted).
    #[arg(long, default_value_t = 50)]
    warmup: u32,
    /// Print one JSON object instead of markdown.
    #[arg(long)]
    json: bool,
    /// Also replace the bench_pam block (between the begin/end markers) in this file.
    #[arg(long, value_name = "FILE")]
    update_md: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Permit,
    VigilSocket,
    VigilBus,
    ExecTrue,
}

const KINDS: [Kind; 4] = [Kind::Permit, Kind::VigilSocket, Kind::VigilBus, Kind::ExecTrue];

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Permit => "permit",
            Kind::VigilSocket => "vigil_socket",
            Kind::VigilBus => "vigil_bus",
            Kind::ExecTrue => "exec_true",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Permit => "pam_permit",
            Kind::VigilSocket => "pam_vigil, private socket",
            Kind::VigilBus => "pam_vigil, bus",
            Kind::ExecTrue => "pam_exec /bin/true",
        }
    }

    fn is_vigil(self) -> bool {
        matches!(self, Kind::VigilSocket | Kind::VigilBus)
    }
}

/// One pam_host run of one stack.
struct RunResult {
    round: u32,
    report: PamHostReport,
    samples: Vec<u64>,
    /// CPU time (µs, from 10 ms ticks) the harness's daemons used during the run.
    daemon_cpu_us: [u64; 3],
}

/// The harness's daemons whose CPU time is sampled around each run.
const DAEMONS: [&str; 3] = ["vigild", "dbus-daemon", "rsyslogd"];

struct StackResult {
    kind: Kind,
    service: String,
    /// The `session` line of the service file, harness paths shortened.
    session_line: String,
    runs: Vec<RunResult>,
}

impl StackResult {
    fn pooled(&self) -> Stats {
        let all: Vec<u64> = self.runs.iter().flat_map(|r| r.samples.iter().copied()).collect();
        Stats::from_samples(&all)
    }

    /// Each daemon's CPU time per measured cycle (µs), over all rounds.
    fn daemon_cpu_per_cycle(&self) -> [f64; 3] {
        let cycles: usize = self.runs.iter().map(|r| r.samples.len()).sum();
        let mut out = [0.0; 3];
        for (i, v) in out.iter_mut().enumerate() {
            let total: u64 = self.runs.iter().map(|r| r.daemon_cpu_us[i]).sum();
            *v = total as f64 / cycles.max(1) as f64;
        }
        out
    }
}


fn main() -> ExitCode {
    let cli = Cli::parse();
    if !vigil_e2e::is_root() {
        eprintln!(
            "bench_pam: needs root (it creates a test user and /etc/pam.d/vigil-test-* files, and vigild \
             only registers sessions for root callers); run it with sudo"
        );
        return ExitCode::from(1);
    }
    if cli.rounds == 0 || cli.cycles < cli.rounds {
        eprintln!(
            "bench_pam: --cycles ({}) must be at least --rounds ({}), and --rounds at least 1",
            cli.cycles, cli.rounds
        );
        return ExitCode::from(2);
    }
    if let Some(path) = &cli.update_md {
        if let Err(e) = check_md_block(path, BEGIN, END) {
            eprintln!("bench_pam: --update-md {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    catch_interrupts();
    let mut facts = Facts::gather("bench_pam");
    let Some(stacks) = bench(&cli) else {
        eprintln!("bench_pam: interrupted; the harness has cleaned up");
        return ExitCode::from(130);
    };
    facts.load_after = load1();
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&cli, &facts, &stacks)).expect("serializes"));
    } else {
        print!("{}", markdown(&cli, &facts, &stacks));
    }
    if let Some(path) = &cli.update_md {
        match write_md_block(path, BEGIN, END, &markdown(&cli, &facts, &stacks)) {
            Ok(()) => eprintln!("bench_pam: updated {}", path.display()),
            Err(e) => {
                eprintln!("bench_pam: --update-md {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs the whole benchmark inside one harness; `None` when interrupted.
fn bench(cli: &Cli) -> Option<Vec<StackResult>> {
    eprintln!("bench_pam: starting rsyslogd, dbus-daemon and vigild");
    let mut h = Harness::with_syslog();
    h.start_bus(BusPolicy::Packaging);
    h.start_vigild(VigildOpts::default());
    let user = h.create_user("bench");
    let module = paths::pam_module();
    let dir = h.dir().display().to_string();
    let root = paths::workspace_root().display().to_string();

    let mut stacks: Vec<StackResult> = KINDS
        .iter()
        .map(|&kind| {
            let stack = match kind {
                Kind::Permit => PamStack::permit_only(),
                Kind::VigilSocket => PamStack::vigil_session(&module, &h.vigil_args()),
                Kind::VigilBus => PamStack::vigil_session(
                    &module,
                    &h.vigil_args().bus(&h.bus_address()).socket(h.path("no-such-socket")),
                ),
                Kind::ExecTrue => PamStack::exec_true(),
            };
            let session_line = stack
                .render()
                .lines()
                .find(|l| l.starts_with("session"))
                .unwrap_or_default()
                .replace(&dir, "$DIR")
                .replace(&root, ".");
            // The bus's guid changes every run; it says nothing about the stack.
            let session_line = strip_guid(&session_line);
            let short = kind.key().replace('_', "-");
            let service = h.install_pam_service(&short, &stack);
            StackResult { kind, service, session_line, runs: Vec::new() }
        })
        .collect();

    if cli.warmup > 0 {
        eprintln!("bench_pam: warm-up, {} cycles per stack", cli.warmup);
        for stack in &stacks {
            run_stack(&h, &user.name, stack, cli.warmup, 0)?;
        }
    }
    for round in 1..=cli.rounds {
        let n = cli.cycles / cli.rounds + u32::from(round <= cli.cycles % cli.rounds);
        let mut order: Vec<usize> = (0..stacks.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for i in order {
            let run = run_stack(&h, &user.name, &stacks[i], n, round)?;
            let s = Stats::from_samples(&run.samples);
            eprintln!(
                "bench_pam: round {round}/{}: {:<26} {n} cycles  p50 {} µs  p99 {} µs  max {} µs",
                cli.rounds,
                stacks[i].kind.label(),
                s.p50,
                s.p99,
                s.max
            );
            stacks[i].runs.push(run);
        }
    }
    // Every pam_vigil session was closed again.
    let left = h.vigild().list_sessions();
    assert!(left.is_empty(), "{} sessions still registered after the benchmark, e.g. {:?}", left.len(), left.first());
    Some(stacks)
}

/// One pam_host run of `cycles` cycles on `stack`'s service, checked; `None` when
/// interrupted.
fn run_stack(h: &Harness, user: &str, stack: &StackResult, cycles: u32, round: u32) -> Option<RunResult> {
    if interrupted() {
        return None;
    }
    let cmd: PamHostCmd = h.pam_host(&stack.service, user).tty(TTY).rhost(RHOST).cycles(cycles);
    let samples_path = h.path(&format!("samples-{}-{round}.txt", stack.kind.key()));
    let pids = daemon_pids(h);
    let cpu_before = pids.map(cpu_us);
    let SampledRun { out, report, samples } = run_sampled(&cmd, &samples_path, stack.kind.label());
    let cpu_after = pids.map(cpu_us);
    let daemon_cpu_us: [u64; 3] = std::array::from_fn(|i| cpu_after[i].saturating_sub(cpu_before[i]));
    if interrupted() {
        return None;
    }
    check(stack.kind, cycles, &report, &out);
    Some(RunResult { round, report, samples, daemon_cpu_us })
}

/// The pids of [`DAEMONS`]: the last process of each name the harness started.
fn daemon_pids(h: &Harness) -> [Option<u32>; 3] {
    let spawned = h.spawned();
    DAEMONS.map(|name| spawned.iter().rev().find(|r| r.name == name).map(|r| r.pid))
}

/// Every cycle opened and closed, and pam_vigil really registered each session.
fn check(kind: Kind, cycles: u32, r: &PamHostReport, out: &std::process::Output) {
    let ok = r.start_rc == PAM_SUCCESS
        && r.open_rc.all(PAM_SUCCESS)
        && r.open_rc.total() == cycles
        && r.close_rc.all(PAM_SUCCESS)
        && r.close_rc.total() == cycles
        && r.end_rc == Some(PAM_SUCCESS);
    assert!(ok, "{}: not every cycle succeeded: {r:?}\n{}", kind.label(), describe_output(out));
    if kind.is_vigil() {
        assert!(
            r.session_ids.iter().all(|id| id.as_deref().is_some_and(|s| s.parse::<u64>().is_ok())),
            "{}: an open did not register the session (no VIGIL_SESSION_ID; daemon unreachable?): {:?}\n{}",
            kind.label(),
            r.session_ids,
            describe_output(out)
        );
    }
}

// ---- output ---------------------------------------------------------------------------

fn added(value: u64, base: u64) -> i64 {
    value as i64 - base as i64
}

fn signed(v: i64) -> String {
    if v >= 0 { format!("+{v}") } else { v.to_string() }
}

fn markdown(cli: &Cli, f: &Facts, stacks: &[StackResult]) -> String {
    let base = stacks[0].pooled();
    let per_round = cli.cycles / cli.rounds;
    let mut md = String::new();
    md.push_str(BEGIN);
    md.push('\n');
    md.push_str(&format!("Command (as root, from the repository): `{}`\n\n", f.command));
    md.push_str(&format!(
        "- {} cycles of pam_open_session + pam_close_session per stack, through real libpam (`pam_host`): {} rounds \
         of {}{} cycles, one pam_host run per stack and round, stack order alternating; {} warm-up cycles per \
         stack discarded\n",
        cli.cycles,
        cli.rounds,
        per_round,
        if cli.cycles % cli.rounds == 0 { String::new() } else { "-".to_string() + &(per_round + 1).to_string() },
        cli.warmup
    ));
    md.push_str(&f.markdown_lines());
    md.push_str(
        "- vigild, dbus-daemon and rsyslogd (the harness's own) run on the same machine; vigild writes an audit \
         line per open and close\n\n",
    );
    md.push_str(
        "| stack | cycles | p50 µs | p99 µs | max µs | p50 added over pam_permit | p99 added over pam_permit |\n",
    );
    md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for s in stacks {
        let st = s.pooled();
        let (a50, a99) = if s.kind == Kind::Permit {
            ("—".to_string(), "—".to_string())
        } else {
            (signed(added(st.p50, base.p50)), signed(added(st.p99, base.p99)))
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            s.kind.label(),
            st.n,
            st.p50,
            st.p99,
            st.max,
            a50,
            a99
        ));
    }
    md.push('\n');
    md.push_str(&format!(
        "Target (issue 2): pam_vigil adds ≤ {TARGET_P50_US} µs p50 and ≤ {TARGET_P99_US} µs p99 over pam_permit.\n"
    ));
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
    md.push('\n');
    md.push_str(
        "Per round, p50 / p99 µs of open+close (round order alternates; open and close p50 from pam_host):\n\n",
    );
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
        let split: Vec<String> =
            s.runs.iter().map(|r| format!("{}/{}", r.report.open_us.p50, r.report.close_us.p50)).collect();
        md.push_str(&format!(" {} |\n", split.join(", ")));
    }
    md.push_str(&format!(
        "\nCPU time of the harness's daemons per measured cycle while each stack ran (µs; utime+stime from \
         /proc in {} ms ticks, so ±{:.0} µs per cycle at these counts; includes vigild's periodic work):\n\n",
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
    md.push_str(
        "\nSession lines (`$DIR` is the harness's directory under /tmp; auth and account are pam_permit):\n\n```\n",
    );
    for s in stacks {
        md.push_str(&s.session_line);
        md.push('\n');
    }
    md.push_str("```\n");
    md.push_str(END);
    md.push('\n');
    md
}

fn stats_json(s: &Stats) -> Value {
    json!({"n": s.n, "p50": s.p50, "p99": s.p99, "max": s.max})
}

fn to_json(cli: &Cli, f: &Facts, stacks: &[StackResult]) -> Value {
    let base = stacks[0].pooled();
    let stacks_json: Vec<Value> = stacks
        .iter()
        .map(|s| {
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
        })
        .collect();
    json!({
        "benchmark": "pam_open_close",
        "command": f.command,
        "date": f.date,
        "commit": f.commit,
        "dirty": f.dirty,
        "module_built": f.module_built,
        "machine": {"nproc": f.nproc, "cpu": f.cpu, "kernel": f.kernel, "os": f.os, "processes": f.processes,
                    "load1_before": f.load_before, "load1_after": f.load_after},
        "cycles": cli.cycles,
        "rounds": cli.rounds,
        "warmup": cli.warmup,
        "target_added_us": {"p50": TARGET_P50_US, "p99": TARGET_P99_US},
        "stacks": stacks_json,
    })
}

/// `line` without the `,guid=<hex>` of a D-Bus address.
fn strip_guid(line: &str) -> String {
    match line.find(",guid=") {
        Some(at) => {
            let rest = &line[at + 1..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            format!("{}{}", &line[..at], &rest[end..])
        }
        None => line.to_string(),
    }
}
