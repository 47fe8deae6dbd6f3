//! bench_pam: PAM open+close latency through real libpam (issue 2's benchmark), and the
//! same against the number of sessions vigild holds (issue 9's, `--preload`).
//!
//! `bench_pam [--cycles N (2000)] [--rounds R (4)] [--warmup W (50)] [--no-bus]
//!            [--brokers dbus-daemon,dbus-broker]
//!            [--preload N,N,... [--in-flight K (16)] [--per-leader K (0)] [--idle-window S (10)]]
//!            [--state-on-disk] [--json] [--update-md FILE]`
//! `bench_pam --account [--cycles N] [--rounds R] [--warmup W] [--no-bus] [--json] [--update-md FILE]`
//!
//! With `--account` (issue 20's benchmark, `bench_pam/issue20.rs`) it times
//! pam_acct_mgmt alone instead: pam_permit against pam_vigil's lock check for an
//! unlocked user with vigild up and down, and for a locked user; N calls per variant.
//!
//! One harness (private rsyslogd, private system bus with the packaging policy, vigild
//! on both its private socket and that bus), one test user, and PAM services whose
//! session stacks are:
//!
//! - `pam_permit.so` (the baseline),
//! - `pam_vigil.so` over the private socket (`h.vigil_args()`),
//! - `pam_vigil.so` over the bus (`h.vigil_args().bus(<address>)`, the socket argument
//!   pointing nowhere so that only the bus can register the session), one stack per
//!   broker of `--brokers` (dbus-daemon by default): with two, the second broker is the
//!   harness's second bus with a second vigild on it (`<dir>/second/`), so that both
//!   run interleaved in the same rounds,
//! - `pam_vigil.so` against a null server (`bench/null_server.rs`: answers every call
//!   at once, does nothing else), the floor any daemon behind the module costs on this
//!   machine, so that vigild's own share shows (not with `--preload`),
//! - `pam_exec.so /bin/true` (what a fork+exec per open and close costs; not with
//!   `--preload`).
//!
//! vigild's session files (`--state-dir`) are on tmpfs, as /run/vigil is in production
//! (`bench/tmpfs_state.rs`); `--state-on-disk` leaves them under the harness's
//! directory in /tmp. vigild adopts only the benchmark user's logins
//! (`holder::vigild_opts`).
//!
//! The CPU columns are per process name: both vigilds together (the one not called is
//! idle), dbus-daemon, dbus-broker with its launcher, rsyslogd.
//!
//! `--no-bus` runs vigild without a bus (`--no-bus`) and drops the bus stack: what the
//! session objects on the bus connection cost shows against a run with it.
//!
//! Each stack first runs W warm-up cycles (discarded), then N cycles split into R
//! rounds; the order of the stacks alternates from round to round, so that machine
//! noise hits every stack alike. A round of a stack is one `pam_host --cycles N/R`
//! run (one pam_start, N/R open+close cycles, pam_end) whose per-cycle times come back
//! through `pam_host --samples FILE`; the rounds are pooled for the percentiles
//! (nearest rank, as pam_host computes them). Every cycle must succeed, and every
//! pam_vigil open must set `VIGIL_SESSION_ID` (with `fail=open` a daemon that cannot be
//! reached would otherwise look fast). vigild's CPU per cycle is the utime+stime
//! delta of /proc/PID/stat over each run.
//!
//! With `--preload 0,1000,10000,100000` the whole measurement is repeated at each
//! registry size, in one harness and one vigild: before a size is measured, a helper
//! process (`bench/holder.rs`; not an ancestor of the PAM hosts) tops the sessions it
//! holds up to that number over one private-socket connection, K calls in flight (or,
//! with `--per-leader K`, with one leader process per K sessions, as logins have); the
//! time it took, vigild's RSS, and vigild's CPU and context switches over S seconds in
//! which nobody calls it (no deadline is near: `notty_idle_timeout = "4h"`) are
//! reported with the latencies. The sessions end when the helper exits.
//!
//! stdout is the markdown for BENCHMARKS.md, between `<!-- bench_pam:begin -->` and
//! `<!-- bench_pam:end -->` (with two brokers: `bench_pam_brokers`; with `--preload`: `bench_pam_preload`, or
//! `bench_pam_preload_no_bus` with `--no-bus`); `--update-md FILE` also replaces that
//! block in FILE. `--json` prints one JSON object instead. Progress goes to stderr.
//!
//! Needs root (like the e2e tests) and the release build: `cargo build --release`, then
//! `cargo build --release -p vigil-e2e --bins`. Everything the harness creates is
//! removed at the end, also on a panic or Ctrl-C.

#[path = "bench/facts.rs"]
mod facts;
#[path = "bench/holder.rs"]
mod holder;
#[path = "bench_pam/issue2.rs"]
mod issue2;
#[path = "bench_pam/issue20.rs"]
mod issue20;
#[path = "bench_pam/issue9.rs"]
mod issue9;
#[path = "bench/null_server.rs"]
mod null_server;
#[path = "bench/stacks.rs"]
mod stacks;
#[path = "bench/tmpfs_state.rs"]
mod tmpfs_state;
#[path = "bench/usage.rs"]
mod usage;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use vigil_e2e::bench::{SampledRun, run_sampled};
use vigil_e2e::interrupt::interrupted;
use vigil_e2e::process::describe_output;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{BusKind, BusPolicy, Harness, PamHostCmd, PamHostReport, PamStack, Stats, paths};
use vigil_protocol::{ManagerProxy, Target};

use holder::{Holder, TopUp};
use null_server::NullServer;
use tmpfs_state::TmpfsState;
use usage::Window;

/// Issue 2's target: what pam_vigil may add over pam_permit.
const TARGET_P50_US: i64 = 300;
const TARGET_P99_US: i64 = 1000;
const TTY: &str = "pts/9";
const RHOST: &str = "203.0.113.7";
/// How long vigild may take to settle after a top-up before it is watched.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(name = "bench_pam", about = "PAM open+close latency: pam_permit, pam_vigil (socket, bus, null server), pam_exec")]
pub struct Cli {
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
    /// vigild without a bus, and no bus stack.
    #[arg(long)]
    no_bus: bool,
    /// The bus daemons to measure the bus path through, in the same rounds (one bus
    /// stack each): dbus-daemon, dbus-broker, or both.
    #[arg(long, value_delimiter = ',', default_value = "dbus-daemon", value_name = "BROKER,...")]
    brokers: Vec<BusKind>,
    /// Registry sizes to measure at (sessions held open by a helper process), e.g.
    /// `0,1000,10000,100000`; without it, one run with none (issue 2's report).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    preload: Vec<u32>,
    /// OpenSession calls (or, with --per-leader, leader processes starting) in flight
    /// while preloading.
    #[arg(long, default_value_t = 16)]
    in_flight: u32,
    /// With --preload: one leader process per K held sessions, as real logins have
    /// (each becomes `sleep infinity`); 0: the helper leads them all.
    #[arg(long, default_value_t = 0, value_name = "K")]
    per_leader: u32,
    /// With --preload: seconds vigild is watched, with nobody calling it, at each size (0: not).
    #[arg(long, default_value_t = 10)]
    idle_window: u64,
    /// Time pam_acct_mgmt alone (issue 20's lock check) instead of open+close: --cycles
    /// calls per variant.
    #[arg(long, conflicts_with_all = ["preload", "state_on_disk"])]
    account: bool,
    #[command(flatten)]
    common: facts::CommonArgs,
}

impl Cli {
    fn preloading(&self) -> bool {
        !self.preload.is_empty()
    }

    /// The registry sizes, ascending (one of 0 without --preload).
    fn levels(&self) -> Vec<u32> {
        let mut levels = if self.preloading() { self.preload.clone() } else { vec![0] };
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    fn markers(&self) -> (&'static str, &'static str) {
        if self.account {
            return (issue20::BEGIN, issue20::END);
        }
        match (self.preloading(), self.no_bus) {
            (false, false) if self.brokers.len() > 1 => (issue2::BEGIN_BROKERS, issue2::END_BROKERS),
            (false, _) => (issue2::BEGIN, issue2::END),
            (true, false) => (issue9::BEGIN, issue9::END),
            (true, true) => (issue9::BEGIN_NO_BUS, issue9::END_NO_BUS),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Permit,
    VigilSocket,
    /// Over the bus, through dbus-daemon.
    VigilBus,
    /// Over the bus, through dbus-broker.
    VigilBroker,
    /// pam_vigil against a server that answers at once (`bench/null_server.rs`).
    NullServer,
    ExecTrue,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Permit => "permit",
            Kind::VigilSocket => "vigil_socket",
            Kind::VigilBus => "vigil_bus",
            Kind::VigilBroker => "vigil_bus_broker",
            Kind::NullServer => "null_server",
            Kind::ExecTrue => "exec_true",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Permit => "pam_permit",
            Kind::VigilSocket => "pam_vigil, private socket",
            Kind::VigilBus => "pam_vigil, bus (dbus-daemon)",
            Kind::VigilBroker => "pam_vigil, bus (dbus-broker)",
            Kind::NullServer => "pam_vigil, null server",
            Kind::ExecTrue => "pam_exec /bin/true",
        }
    }

    fn is_vigil(self) -> bool {
        matches!(self, Kind::VigilSocket | Kind::VigilBus | Kind::VigilBroker)
    }

    /// The bus stack through `broker`.
    fn over(broker: BusKind) -> Kind {
        match broker {
            BusKind::DbusDaemon => Kind::VigilBus,
            BusKind::DbusBroker => Kind::VigilBroker,
        }
    }

    /// Stacks whose every open must set `VIGIL_SESSION_ID`.
    fn registers(self) -> bool {
        self.is_vigil() || self == Kind::NullServer
    }
}

/// One pam_host run of one stack.
pub struct RunResult {
    round: u32,
    report: PamHostReport,
    samples: Vec<u64>,
    /// CPU time (µs, from 10 ms ticks) the harness's daemons used during the run.
    daemon_cpu_us: [u64; 4],
}

/// The harness's daemons whose CPU time is sampled around each run (every process of
/// each name: both vigilds; dbus-broker with dbus-broker-launch).
pub const DAEMONS: [&str; 4] = ["vigild", "dbus-daemon", "dbus-broker", "rsyslogd"];
const DAEMON_PROCESSES: [&[&str]; 4] = [&["vigild"], &["dbus-daemon"], &["dbus-broker", "dbus-broker-launch"], &["rsyslogd"]];

#[derive(Clone)]
pub struct StackResult {
    kind: Kind,
    service: String,
    /// The `session` line of the service file, harness paths shortened.
    session_line: String,
    runs: Vec<std::rc::Rc<RunResult>>,
}

impl StackResult {
    fn pooled(&self) -> Stats {
        let all: Vec<u64> = self.runs.iter().flat_map(|r| r.samples.iter().copied()).collect();
        Stats::from_samples(&all)
    }

    /// Each daemon's CPU time per measured cycle (µs), over all rounds.
    fn daemon_cpu_per_cycle(&self) -> [f64; 4] {
        let cycles: usize = self.runs.iter().map(|r| r.samples.len()).sum();
        let mut out = [0.0; 4];
        for (i, v) in out.iter_mut().enumerate() {
            let total: u64 = self.runs.iter().map(|r| r.daemon_cpu_us[i]).sum();
            *v = total as f64 / cycles.max(1) as f64;
        }
        out
    }
}

/// Everything measured at one registry size.
pub struct Level {
    sessions: u32,
    /// Opening the sessions added for this size (none for 0).
    top_up: Option<TopUp>,
    /// vigild with nobody calling, before the rounds.
    idle: Option<Window>,
    /// vigild's RSS (KiB) before the first and after the last round.
    rss_start_kib: u64,
    rss_end_kib: u64,
    /// /proc/loadavg's 1-minute figure after the level.
    load_after: String,
    stacks: Vec<StackResult>,
}

fn main() -> ExitCode {
    if let Some(code) = holder::helper_role() {
        return code;
    }
    let cli = Cli::parse();
    if !vigil_e2e::is_root() {
        eprintln!(
            "bench_pam: needs root (it creates a test user and /etc/pam.d/vigil-test-* files, and vigild \
             only registers sessions for root callers); run it with sudo"
        );
        return ExitCode::from(1);
    }
    if cli.brokers.is_empty() || cli.brokers.len() > 2 || cli.brokers.first() == cli.brokers.get(1) {
        eprintln!("bench_pam: --brokers takes dbus-daemon, dbus-broker or both, each once");
        return ExitCode::from(2);
    }
    if cli.brokers.len() > 1 && (cli.preloading() || cli.account || cli.no_bus) {
        eprintln!("bench_pam: two --brokers only in the plain run (not with --preload, --account or --no-bus)");
        return ExitCode::from(2);
    }
    if cli.rounds == 0 || cli.cycles < cli.rounds {
        eprintln!("bench_pam: --cycles ({}) must be at least --rounds ({}), and --rounds at least 1", cli.cycles, cli.rounds);
        return ExitCode::from(2);
    }
    let report =
        facts::Report { program: "bench_pam", markers: cli.markers(), update_md: cli.common.update_md.as_deref(), json: cli.common.json };
    if cli.account {
        let rendered =
            report.run(|| issue20::bench(&cli), |facts, a| (issue20::markdown(&cli, facts, a), issue20::to_json(&cli, facts, a)));
        return match rendered {
            Ok(_) => ExitCode::SUCCESS,
            Err(code) => code,
        };
    }
    let rendered = report.run(
        || bench(&cli),
        |facts, levels| {
            if cli.preloading() {
                (issue9::markdown(&cli, facts, levels), issue9::to_json(&cli, facts, levels))
            } else {
                (issue2::markdown(&cli, facts, &levels[0].stacks), issue2::to_json(&cli, facts, &levels[0].stacks))
            }
        },
    );
    match rendered {
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Runs the whole benchmark inside one harness; `None` when interrupted.
fn bench(cli: &Cli) -> Option<Vec<Level>> {
    eprintln!("bench_pam: starting rsyslogd, {} and vigild", cli.brokers.iter().map(|b| b.name()).collect::<Vec<_>>().join(", "));
    let state = (!cli.common.state_on_disk).then(|| TmpfsState::new(cli.brokers.len()));
    let mut h = Harness::with_syslog();
    if let Some(state) = &state {
        state.link(&h);
    }
    // The user first: vigild adopts no login but the benchmark's own (see holder::vigild_opts).
    let user = h.create_user("bench");
    let mut opts = holder::vigild_opts(&user.name);
    if cli.preloading() {
        opts = opts.config(holder::QUIET_POLICY);
    }
    if cli.no_bus {
        opts = opts.no_bus();
    } else {
        h.start_bus_with(BusPolicy::Packaging, cli.brokers[0]);
        if let Some(&second) = cli.brokers.get(1) {
            h.start_second_bus(BusPolicy::Packaging, second);
        }
    }
    h.start_vigild(opts.clone());
    if cli.brokers.len() > 1 && !cli.no_bus {
        h.start_second_vigild(opts);
    }
    let dir = h.dir().display().to_string();
    let root = paths::workspace_root().display().to_string();

    let null_server = NullServer::start(&h.path("null.sock")).unwrap_or_else(|e| panic!("the null server: {e}"));
    let mut kinds = vec![Kind::Permit, Kind::VigilSocket];
    if !cli.no_bus {
        kinds.extend(cli.brokers.iter().map(|&b| Kind::over(b)));
    }
    if !cli.preloading() {
        kinds.extend([Kind::NullServer, Kind::ExecTrue]);
    }
    let stacks: Vec<StackResult> = kinds
        .iter()
        .map(|&kind| {
            let stack = match kind {
                Kind::Permit => PamStack::permit_only(),
                Kind::VigilSocket => stacks::vigil_socket(&h),
                Kind::VigilBus => stacks::vigil_bus(&h, stacks::bus_of(&h, BusKind::DbusDaemon)),
                Kind::VigilBroker => stacks::vigil_bus(&h, stacks::bus_of(&h, BusKind::DbusBroker)),
                Kind::NullServer => PamStack::vigil_session(&paths::pam_module(), &h.vigil_args().socket(null_server.path())),
                Kind::ExecTrue => PamStack::exec_true(),
            };
            let session_line =
                stack.render().lines().find(|l| l.starts_with("session")).unwrap_or_default().replace(&dir, "$DIR").replace(&root, ".");
            // The bus's guid changes every run; it says nothing about the stack.
            let session_line = strip_guid(&session_line);
            let short = kind.key().replace('_', "-");
            let service = h.install_pam_service(&short, &stack);
            StackResult { kind, service, session_line, runs: Vec::new() }
        })
        .collect();

    // Declared after the harness: dropped first, so its sessions end while vigild runs.
    let mut holder: Option<Holder> = None;
    let mut levels = Vec::new();
    for sessions in cli.levels() {
        let top_up = if sessions > 0 {
            let holder = holder.get_or_insert_with(|| {
                Holder::spawn(&h.private_socket(), &user.name, cli.in_flight, cli.per_leader, &h.path("holder.stderr"))
            });
            eprintln!("bench_pam: opening sessions up to {sessions}");
            let top_up = holder.top_up(sessions).unwrap_or_else(|e| panic!("preloading {sessions} sessions: {e}"));
            eprintln!("bench_pam: {} sessions opened in {:.1} s ({:.0} µs each)", top_up.added, top_up.seconds, top_up.us_each());
            Some(top_up)
        } else {
            None
        };
        if interrupted() {
            return None;
        }
        let vigild = h.vigild().pid();
        let idle = (cli.preloading() && cli.idle_window > 0).then(|| {
            std::thread::sleep(SETTLE);
            eprintln!("bench_pam: watching vigild for {} s with {sessions} sessions and no caller", cli.idle_window);
            usage::idle_window(vigild, cli.idle_window)
        });
        let rss_start_kib = vigil_e2e::procfs::rss_kib(vigild).unwrap_or(0);
        let stacks = measure(cli, &h, &user.name, &stacks, sessions)?;
        let rss_end_kib = vigil_e2e::procfs::rss_kib(vigild).unwrap_or(0);
        // Every measured session was closed again; the held ones are all there.
        let registered = registered(&h);
        assert_eq!(registered, sessions, "sessions registered after measuring at {sessions}");
        levels.push(Level { sessions, top_up, idle, rss_start_kib, rss_end_kib, load_after: vigil_e2e::bench::load1(), stacks });
    }
    Some(levels)
}

/// The warm-up and the rounds of every stack at one registry size.
fn measure(cli: &Cli, h: &Harness, user: &str, stacks: &[StackResult], sessions: u32) -> Option<Vec<StackResult>> {
    let mut stacks: Vec<StackResult> = stacks.to_vec();
    if cli.warmup > 0 {
        eprintln!("bench_pam: warm-up, {} cycles per stack", cli.warmup);
        for stack in &stacks {
            run_stack(h, user, stack, cli.warmup, 0)?;
        }
    }
    for round in 1..=cli.rounds {
        let (n, order) = vigil_e2e::bench::round_plan(cli.cycles, cli.rounds, round, stacks.len());
        for i in order {
            let run = run_stack(h, user, &stacks[i], n, round)?;
            let s = Stats::from_samples(&run.samples);
            eprintln!(
                "bench_pam: {sessions} held, round {round}/{}: {:<26} {n} cycles  p50 {} µs  p99 {} µs  max {} µs",
                cli.rounds,
                stacks[i].kind.label(),
                s.p50,
                s.p99,
                s.max
            );
            stacks[i].runs.push(std::rc::Rc::new(run));
        }
    }
    Some(stacks)
}

/// How many sessions vigild holds (Status over the private socket).
fn registered(h: &Harness) -> u32 {
    let target = Target::Socket(h.private_socket());
    let status = zruntime::block_on(async {
        let connection = target.connect().await.map_err(|e| e.to_string())?;
        let manager = ManagerProxy::new(&connection).await.map_err(|e| e.to_string())?;
        manager.status().await.map_err(|e| e.to_string())
    });
    status.unwrap_or_else(|e| panic!("Status over the private socket: {e}")).session_count
}

/// One pam_host run of `cycles` cycles on `stack`'s service, checked; `None` when
/// interrupted.
fn run_stack(h: &Harness, user: &str, stack: &StackResult, cycles: u32, round: u32) -> Option<RunResult> {
    if interrupted() {
        return None;
    }
    let cmd: PamHostCmd = h.pam_host(&stack.service, user).tty(TTY).rhost(RHOST).cycles(cycles);
    let samples_path = h.path(&format!("samples-{}-{round}.txt", stack.kind.key()));
    let pids = DAEMON_PROCESSES.map(|names| usage::all_pids_of(h, names));
    let cpu_before = pids.each_ref().map(|p| usage::cpu_us_of(p));
    let SampledRun { out, report, samples } = run_sampled(&cmd, &samples_path, stack.kind.label());
    let cpu_after = pids.each_ref().map(|p| usage::cpu_us_of(p));
    let daemon_cpu_us: [u64; 4] = std::array::from_fn(|i| cpu_after[i].saturating_sub(cpu_before[i]));
    if interrupted() {
        return None;
    }
    check(stack.kind, cycles, &report, &out);
    Some(RunResult { round, report, samples, daemon_cpu_us })
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
    if kind.registers() {
        assert!(
            r.session_ids.iter().all(|id| id.as_deref().is_some_and(|s| s.parse::<u64>().is_ok())),
            "{}: an open did not register the session (no VIGIL_SESSION_ID; daemon unreachable?): {:?}\n{}",
            kind.label(),
            r.session_ids,
            describe_output(out)
        );
    }
}

// ---- shared by the two reports ---------------------------------------------------------

/// Where vigild's session files were, and what it adopts, as lines of the report.
fn state_line(cli: &Cli) -> String {
    let files = if cli.common.state_on_disk {
        "- vigild's session files under the harness's directory in /tmp (`--state-on-disk`; /tmp is not tmpfs here)\n"
    } else {
        "- vigild's session files on tmpfs (/dev/shm), as /run/vigil is in production; its audit directory under /tmp\n"
    };
    format!(
        "{files}- vigild adopts only the benchmark user's logins (`--adopt-users`): its sweep of /proc runs every 5 s as \
         in production, but takes in no ssh login of other programs on this shared machine\n"
    )
}

fn added(value: u64, base: u64) -> i64 {
    value as i64 - base as i64
}

fn signed(v: i64) -> String {
    if v >= 0 { format!("+{v}") } else { v.to_string() }
}

fn stats_json(s: &Stats) -> Value {
    json!({"n": s.n, "p50": s.p50, "p99": s.p99, "max": s.max})
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
