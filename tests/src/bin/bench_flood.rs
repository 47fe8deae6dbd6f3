//! bench_flood: vigild under attack on its private socket (issue 8's benchmark): its
//! descriptors and resident memory, and root's PAM open+close latency, with no attack
//! (the same run's baseline) and under three attacks by unprivileged test users.
//!
//! `bench_flood [--cycles N (1000)] [--rounds R (3)] [--conns C (3000)] [--update-md FILE]`
//!
//! One harness (private rsyslogd, vigild on its private socket only, started with the
//! soft descriptor limit systemd gives a service by default, 1024), one login user, and
//! a PAM service whose session stack is pam_vigil over the private socket. Scenarios:
//!
//! - `none`: no attack;
//! - `hog`: no attack, but one user's `yes > /dev/null` takes a CPU as the sustained
//!   attacks below do: what CPU pressure alone costs the logins on a small machine;
//! - `held`: `flood --ping-every 1 conns C` as one user: C connections tried once, the
//!   accepted ones held and pinging;
//! - `churn`: the same with `--repeat`: what vigild refuses is tried again, round after
//!   round without pause, for as long as the logins run;
//! - `bigheader`: two users, each `flood --repeat bigheader 10` (headers claiming
//!   120,000,000 bytes, 1 MiB of body each, tried again as soon as vigild closes them).
//!
//! Each round runs every scenario once (order reversed every other round); a scenario's
//! run is one `pam_host --cycles N/R` as root (pam_start, N/R open+close cycles,
//! pam_end), per-cycle times through `--samples`, pooled over the rounds for the
//! percentiles. vigild's descriptors and RSS are sampled every 2 ms from before the
//! attack starts to after the attacker has exited; "released" is how long after the
//! attacker's exit vigild's descriptor count was back to where it was before.
//!
//! stdout is the markdown for BENCHMARKS.md, between `<!-- bench_flood:begin -->` and
//! `<!-- bench_flood:end -->`; `--update-md FILE` also replaces that block in FILE.
//! Needs root and the release build (see tests/README.md); everything the harness
//! creates is removed at the end, also on a panic or Ctrl-C.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use vigil_e2e::bench::{Facts, SampledRun, check_md_block, cpu_us, load1, run_sampled, write_md_block};
use vigil_e2e::flood::FLOOD_STEP_TIMEOUT;
use vigil_e2e::interrupt::{catch_interrupts, interrupted};
use vigil_e2e::process::{Ledger, ManagedChild};
use vigil_e2e::procfs::nofile_limits;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::wait::try_wait_for_polling;
use vigil_e2e::watch::{Peaks, ProcWatch};
use vigil_e2e::{Flood, FloodReport, Harness, Stats, TestUser, VigildOpts};

const BEGIN: &str = "<!-- bench_flood:begin -->";
const END: &str = "<!-- bench_flood:end -->";
/// Issue 8's goal for root's logins while vigild is flooded.
const GOAL_P99_US: u64 = 10_000;
const SYSTEMD_DEFAULT_SOFT_NOFILE: u64 = 1024;
const WATCH_INTERVAL: Duration = Duration::from_millis(2);
const WATCH_SPAN: Duration = Duration::from_secs(600);
/// How long "released" may be looked for.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(name = "bench_flood", about = "vigild's descriptors, memory and root login latency under attack")]
struct Cli {
    /// Root open+close cycles per scenario (pooled over the rounds).
    #[arg(long, default_value_t = 1000)]
    cycles: u32,
    /// Rounds; each runs every scenario once, in alternating order.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Connections of the `held` and `churn` floods.
    #[arg(long, default_value_t = 3000)]
    conns: u32,
    /// Also replace the bench_flood block (between the begin/end markers) in this file.
    #[arg(long, value_name = "FILE")]
    update_md: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    None,
    Hog,
    Held,
    Churn,
    BigHeader,
}

const SCENARIOS: [Scenario; 5] = [Scenario::None, Scenario::Hog, Scenario::Held, Scenario::Churn, Scenario::BigHeader];

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::None => "no attack",
            Scenario::Hog => "CPU hog, no attack",
            Scenario::Held => "held connections",
            Scenario::Churn => "connection churn",
            Scenario::BigHeader => "big headers",
        }
    }

    fn what(self, conns: u32) -> String {
        match self {
            Scenario::None => "—".to_string(),
            Scenario::Hog => "one user: `yes > /dev/null` (no connection)".to_string(),
            Scenario::Held => format!("one user: `flood --ping-every 1 conns {conns}`"),
            Scenario::Churn => format!("one user: `flood --ping-every 1 --repeat conns {conns}`"),
            Scenario::BigHeader => "two users, each `flood --repeat bigheader 10`".to_string(),
        }
    }
}

/// The users and service the scenarios share.
struct Setup {
    login: TestUser,
    flooder: TestUser,
    big: [TestUser; 2],
    service: String,
}

/// One scenario's run in one round.
struct Run {
    round: u32,
    base_fds: usize,
    base_rss_kib: u64,
    peaks: Peaks,
    /// From the attacker's exit to vigild's descriptors back at `base_fds` (`None`: not
    /// within [`RELEASE_WAIT`]).
    released: Option<Duration>,
    samples: Vec<u64>,
    /// Opens that set `VIGIL_SESSION_ID` (vigild registered them), of the cycles run.
    registered: usize,
    cycles: usize,
    /// vigild's CPU time during the logins (µs).
    vigild_cpu_us: u64,
    floods: Vec<FloodReport>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !vigil_e2e::is_root() {
        eprintln!("bench_flood: needs root (test users, /etc/pam.d/vigil-test-* files, root's PAM calls); run it with sudo");
        return ExitCode::from(1);
    }
    if cli.rounds == 0 || cli.cycles < cli.rounds || cli.conns == 0 {
        eprintln!("bench_flood: --cycles must be at least --rounds, --rounds and --conns at least 1");
        return ExitCode::from(2);
    }
    if let Some(path) = &cli.update_md
        && let Err(e) = check_md_block(path, BEGIN, END)
    {
        eprintln!("bench_flood: --update-md {}: {e}", path.display());
        return ExitCode::from(2);
    }
    catch_interrupts();
    let mut facts = Facts::gather("bench_flood");
    let Some((limits, runs)) = bench(&cli) else {
        eprintln!("bench_flood: interrupted; the harness has cleaned up");
        return ExitCode::from(130);
    };
    facts.load_after = load1();
    let md = markdown(&cli, &facts, limits, &runs);
    print!("{md}");
    if let Some(path) = &cli.update_md {
        match write_md_block(path, BEGIN, END, &md) {
            Ok(()) => eprintln!("bench_flood: updated {}", path.display()),
            Err(e) => {
                eprintln!("bench_flood: --update-md {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// vigild's descriptor limits (soft, hard) after its start, and every scenario's runs.
type Results = ((u64, u64), Vec<(Scenario, Vec<Run>)>);

fn bench(cli: &Cli) -> Option<Results> {
    eprintln!("bench_flood: starting rsyslogd and vigild");
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().nofile_soft(SYSTEMD_DEFAULT_SOFT_NOFILE));
    let limits = nofile_limits(h.vigild().pid()).unwrap_or((0, 0));
    let setup = Setup {
        login: h.create_user("login"),
        flooder: h.create_user("flood"),
        big: [h.create_user("biga"), h.create_user("bigb")],
        service: h.install_vigil_service("root", &h.vigil_args()),
    };
    // Warm-up: whatever vigild opens lazily is open before the first baseline.
    login_cycles(&h, &setup, 20, "warmup");
    let mut results: Vec<(Scenario, Vec<Run>)> = SCENARIOS.iter().map(|&s| (s, Vec::new())).collect();
    for round in 1..=cli.rounds {
        let (cycles, order) = vigil_e2e::bench::round_plan(cli.cycles, cli.rounds, round, results.len());
        for i in order {
            let scenario = results[i].0;
            let run = run_scenario(&h, &setup, cli, scenario, cycles, round)?;
            let s = Stats::from_samples(&run.samples);
            eprintln!(
                "bench_flood: round {round}/{}: {:<18} {cycles} cycles p50 {} µs p99 {} µs; fds {} -> peak {}; RSS {} -> \
                 peak {} KiB; released {:?}",
                cli.rounds,
                scenario.label(),
                s.p50,
                s.p99,
                run.base_fds,
                run.peaks.max_fds,
                run.base_rss_kib,
                run.peaks.max_rss_kib,
                run.released
            );
            results[i].1.push(run);
        }
    }
    Some((limits, results))
}

fn login_cycles(h: &Harness, setup: &Setup, cycles: u32, tag: &str) -> SampledRun {
    let cmd = h.pam_host(&setup.service, &setup.login.name).cycles(cycles);
    let run = run_sampled(&cmd, &h.path(&format!("samples-{tag}.txt")), tag);
    let r = &run.report;
    assert!(
        r.start_rc == PAM_SUCCESS && r.open_rc.all(PAM_SUCCESS) && r.close_rc.all(PAM_SUCCESS),
        "{tag}: not every cycle succeeded (fail=open hides an unreachable vigild, so this is PAM itself): {r:?}"
    );
    run
}

fn session_opens(h: &Harness) -> usize {
    h.auth_log().iter().filter(|l| l.is_event("vigild", "session_open")).count()
}

/// One user's `yes > /dev/null`, ended (through runuser) when dropped.
fn start_hog(setup: &Setup) -> ManagedChild {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", &setup.flooder.name, "--", "sh", "-c", "exec yes > /dev/null"]).stdin(Stdio::null());
    ManagedChild::spawn("hog", &mut cmd, &Ledger::default())
}

fn start_floods(h: &Harness, setup: &Setup, cli: &Cli, scenario: Scenario) -> Vec<Flood> {
    let conns = cli.conns.to_string();
    match scenario {
        Scenario::None | Scenario::Hog => Vec::new(),
        Scenario::Held => vec![h.flood_as(&setup.flooder, &["--ping-every", "1", "conns", &conns])],
        Scenario::Churn => vec![h.flood_as(&setup.flooder, &["--ping-every", "1", "--repeat", "conns", &conns])],
        Scenario::BigHeader => setup.big.iter().map(|u| h.flood_as(u, &["--repeat", "bigheader", "10"])).collect(),
    }
}

/// One scenario: baseline, attack, logins under it, attacker gone, release; `None`
/// when interrupted.
fn run_scenario(h: &Harness, setup: &Setup, cli: &Cli, scenario: Scenario, cycles: u32, round: u32) -> Option<Run> {
    if interrupted() {
        return None;
    }
    let pid = h.vigild().pid();
    let base_fds = h.vigild().fd_count();
    let base_rss_kib = h.vigild().rss_kib();
    let watch = ProcWatch::start(pid, WATCH_INTERVAL, WATCH_SPAN);
    let hog = (scenario == Scenario::Hog).then(|| start_hog(setup));
    let mut floods = start_floods(h, setup, cli, scenario);
    for f in &mut floods {
        f.wait_ready(FLOOD_STEP_TIMEOUT);
    }
    let opens_before = session_opens(h);
    let cpu_before = cpu_us(Some(pid));
    let tag = format!("{}-{round}", scenario.label().replace(' ', "-"));
    let run = login_cycles(h, setup, cycles, &tag);
    let vigild_cpu_us = cpu_us(Some(pid)).saturating_sub(cpu_before);
    drop(hog);
    let reports: Vec<FloodReport> = floods.into_iter().map(|f| f.finish(Duration::from_secs(30)).0).collect();
    let exited = Instant::now();
    let released = try_wait_for_polling(RELEASE_WAIT, Duration::from_millis(1), || {
        let n = h.vigild().fd_count();
        if n <= base_fds { Ok(exited.elapsed()) } else { Err(format!("{n}")) }
    })
    .ok();
    let peaks = watch.stop();
    // vigild writes session_open after its reply: give the last one a moment.
    std::thread::sleep(Duration::from_millis(200));
    let registered = session_opens(h) - opens_before;
    if interrupted() {
        return None;
    }
    Some(Run {
        round,
        base_fds,
        base_rss_kib,
        peaks,
        released,
        samples: run.samples,
        registered,
        cycles: cycles as usize,
        vigild_cpu_us,
        floods: reports,
    })
}

// ---- output ---------------------------------------------------------------------------

fn pooled(runs: &[Run]) -> Stats {
    let all: Vec<u64> = runs.iter().flat_map(|r| r.samples.iter().copied()).collect();
    Stats::from_samples(&all)
}

fn markdown(cli: &Cli, f: &Facts, limits: (u64, u64), results: &[(Scenario, Vec<Run>)]) -> String {
    let mut md = format!("{BEGIN}\nCommand (as root, from the repository): `{}`\n\n", f.command);
    md.push_str(&format!(
        "- {} root open+close cycles per scenario through real libpam (`pam_host`, session stack `pam_vigil.so` on \
         the private socket, `timeout=2s fail=open`): {} rounds, one pam_host run per scenario and round, order \
         reversed every other round; the attack starts (and is READY) before the logins and stops after them\n",
        cli.cycles, cli.rounds
    ));
    md.push_str(&f.markdown_lines());
    md.push_str(&format!(
        "- vigild on its private socket only, started with soft RLIMIT_NOFILE {SYSTEMD_DEFAULT_SOFT_NOFILE} \
         (systemd's default); after its start: soft {}, hard {}. Descriptors and RSS from /proc every {} ms\n\n",
        limits.0,
        limits.1,
        WATCH_INTERVAL.as_millis()
    ));
    md.push_str(
        "| scenario | attacker | vigild fds: before / peak | RSS KiB: before / peak | fds back after the attacker \
         exits | root open+close p50 µs | p99 µs | max µs | registered | vigild CPU µs per cycle |\n",
    );
    md.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (scenario, runs) in results {
        let st = pooled(runs);
        let base_fds = runs.iter().map(|r| r.base_fds).max().unwrap_or(0);
        let peak_fds = runs.iter().map(|r| r.peaks.max_fds).max().unwrap_or(0);
        let base_rss = runs.iter().map(|r| r.base_rss_kib).max().unwrap_or(0);
        let peak_rss = runs.iter().map(|r| r.peaks.max_rss_kib).max().unwrap_or(0);
        let released = match runs.iter().map(|r| r.released).collect::<Option<Vec<Duration>>>() {
            Some(all) => match all.iter().max().copied().unwrap_or_default() {
                worst if worst < Duration::from_millis(1) => format!("≤ {} µs", worst.as_micros()),
                worst => format!("≤ {:.1} ms", worst.as_secs_f64() * 1000.0),
            },
            None => format!("not within {} s", RELEASE_WAIT.as_secs()),
        };
        let registered: usize = runs.iter().map(|r| r.registered).sum();
        let cycles: usize = runs.iter().map(|r| r.cycles).sum();
        let cpu: u64 = runs.iter().map(|r| r.vigild_cpu_us).sum();
        md.push_str(&format!(
            "| {} | {} | {base_fds} / {peak_fds} | {base_rss} / {peak_rss} | {released} | {} | {} | {} | {registered} \
             of {cycles} | {:.0} |\n",
            scenario.label(),
            scenario.what(cli.conns),
            st.p50,
            st.p99,
            st.max,
            cpu as f64 / cycles.max(1) as f64
        ));
    }
    md.push_str(&format!("\nGoal (issue 8): root's open+close p99 under {} ms while flooded.\n", GOAL_P99_US / 1000));
    for (scenario, runs) in results.iter().filter(|(s, _)| !matches!(s, Scenario::None | Scenario::Hog)) {
        let p99 = pooled(runs).p99;
        let verdict = if p99 < GOAL_P99_US { "met" } else { "**missed**" };
        md.push_str(&format!("- {}: p99 {p99} µs ({verdict})\n", scenario.label()));
    }
    md.push_str(
        "\nWhat the attackers saw, summed over the rounds (accepted: handshakes completed; refused: closed by vigild \
         before its `OK`; closed: accepted, then closed by vigild while being written to or held):\n\n",
    );
    md.push_str("| scenario | tried | accepted | refused | other failures | closed | repeat rounds |\n");
    md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (scenario, runs) in results.iter().filter(|(s, _)| !matches!(s, Scenario::None | Scenario::Hog)) {
        let reports: Vec<&FloodReport> = runs.iter().flat_map(|r| r.floods.iter()).collect();
        let sum = |f: &dyn Fn(&FloodReport) -> u64| reports.iter().map(|r| f(r)).sum::<u64>();
        let accepted = sum(&|r| u64::from(r.accepted));
        let refused = sum(&|r| u64::from(r.refused));
        let failed = sum(&|r| r.failed.values().map(|&n| u64::from(n)).sum());
        let closed = sum(&|r| u64::from(r.closed_while_sending + r.closed_while_held));
        let repeats = sum(&|r| r.repeat_rounds);
        md.push_str(&format!(
            "| {} | {} | {accepted} | {refused} | {failed} | {closed} | {repeats} |\n",
            scenario.label(),
            accepted + refused + failed
        ));
    }
    md.push_str("\nPer round, root open+close p50 / p99 µs:\n\n");
    md.push_str(&vigil_e2e::bench::rounds_table_head("scenario", cli.rounds));
    for (scenario, runs) in results {
        md.push_str(&format!("| {} |", scenario.label()));
        let mut by_round: Vec<&Run> = runs.iter().collect();
        by_round.sort_by_key(|r| r.round);
        for run in by_round {
            let st = Stats::from_samples(&run.samples);
            md.push_str(&format!(" {} / {} |", st.p50, st.p99));
        }
        md.push('\n');
    }
    md.push_str(END);
    md.push('\n');
    md
}
