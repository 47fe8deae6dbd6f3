//! bench_storm: many deadlines at once (issue 22). N sessions, each led by a process of
//! its own as a login is, fall due together; how late vigild ends them, whether every end
//! is in the trail and every process gone, what vigild spends, and what a login costs
//! while it happens against one made just before.
//!
//! `bench_storm --storm expire|restart|reload [--sessions N (1000)] [--ttys K]
//!              [--timeout SECONDS] [--warning SECONDS (0)] [--down SECONDS (10)]
//!              [--logins CYCLES (20)] [--in-flight K (16)] [--no-audit-session]`
//!
//! The sessions are held by `bench/holder.rs` with one leader per session (it becomes
//! `sleep infinity`), each with an audit session of its own (as pam_loginuid gives a
//! login; `--no-audit-session` leaves it out); the first K (default N/10, at most 2,000)
//! have a pty of their own as their controlling terminal (`idle_timeout` and
//! `idle_warning` apply to them), the others none (`notty_idle_timeout`, no warning).
//!
//! Every session's idle timeout is longer than the opening takes, so no deadline falls
//! before all are open; their deadlines then fall within the time the opening took.
//!
//! - `expire` (vigild held up while the deadlines pass: a paused VM, a stalled host):
//!   vigild is SIGSTOPped just before the first deadline and SIGCONTed just after the
//!   last, so that its timer finds all N due at once, without a restart.
//! - `restart` (vigild down past the deadlines): vigild is SIGKILLed before the first
//!   deadline, the bench waits until `--down` seconds after the last, and starts it
//!   again on the same state directory; it restores and ends them.
//! - `reload` (a policy that shortens the timeouts): the policy's timeouts are 1 h while
//!   the sessions open; once every session has been open longer than `--timeout`, the
//!   file is rewritten with it and `vigilctl reload` is run: all are overdue at once.
//!
//! `idle_warning` is 0 unless `--warning` says otherwise: with a warning, a session
//! with a tty found overdue is warned first and ended the warning's length later (by
//! design: "a late check still gives the whole warning"), which spreads those ends.
//!
//! Lateness is vigild's own `late_ms` of each `session_end reason=idle` (its end minus
//! the deadline the session had, a warning given late included), and the storm's part of
//! it: the end minus the later of the session's deadline (listed before the storm) and
//! the storm's start (SIGCONT, the restart's exec, the reload). Logins: pam_host (real libpam,
//! pam_vigil over the private socket) runs `--logins` open+close cycles right before the
//! storm, then batches of as many from the storm's start until its last end.
//! Needs root and the release build; everything the harness makes is removed at the end,
//! the sysctls it raised restored, also on a panic or Ctrl-C.

#[allow(dead_code)] // the quiet policy and the plain spawn are the other benchmarks'
#[path = "bench/holder.rs"]
mod holder;
#[path = "bench/tmpfs_state.rs"]
mod tmpfs_state;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use nix::sys::signal::Signal;
use vigil_e2e::bench::{cpu_us, run_sampled, wall_usec};
use vigil_e2e::interrupt::{catch_interrupts, interrupted};
use vigil_e2e::{Harness, LogLine, Stats};

use holder::{Holder, LeafSetup};
use tmpfs_state::TmpfsState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Storm {
    Expire,
    Restart,
    Reload,
}

#[derive(Parser, Debug)]
#[command(name = "bench_storm", about = "many idle deadlines at once (issue 22)")]
struct Args {
    #[arg(long, value_enum)]
    storm: Storm,
    #[arg(long, default_value_t = 1000)]
    sessions: u32,
    /// Sessions with a pty of their own (default: a tenth, at most 2,000).
    #[arg(long)]
    ttys: Option<u32>,
    /// The idle timeout of the storm's policy, with a tty and without (seconds; default
    /// 10 + 4 ms a session, longer than the opening takes; reload: 5).
    #[arg(long)]
    timeout: Option<u64>,
    /// The storm's `idle_warning` (seconds).
    #[arg(long, default_value_t = 0)]
    warning: u64,
    /// restart: how long vigild stays down past the last deadline (seconds).
    #[arg(long, default_value_t = 10)]
    down: u64,
    /// open+close cycles before the storm, and per batch during it.
    #[arg(long, default_value_t = 20)]
    logins: u32,
    /// Leaders starting at a time while the sessions open.
    #[arg(long, default_value_t = 16)]
    in_flight: u32,
    /// Leaders keep the bench's audit session (no pam_loginuid).
    #[arg(long)]
    no_audit_session: bool,
}

const RHOST: &str = "192.0.2.7";

fn policy(timeout: &str, warning: u64) -> String {
    format!(
        "[defaults]\nidle_timeout = \"{timeout}\"\nnotty_idle_timeout = \"{timeout}\"\nidle_warning = \"{warning}s\"\nkill_grace = \"1s\"\n"
    )
}

fn timeout_s(args: &Args) -> u64 {
    args.timeout.unwrap_or(if args.storm == Storm::Reload { 5 } else { 10 + u64::from(args.sessions) * 4 / 1000 })
}

/// Kernel limits raised for the run and put back on drop (also on a panic), each only
/// if it still has the value the run gave it (another run on the machine may have set
/// it since: that run puts back its own).
struct Sysctls {
    saved: Vec<(&'static str, String, String)>,
}

impl Sysctls {
    /// Raises each `(path, at least)` that is lower.
    fn raise(wanted: &[(&'static str, u64)]) -> Sysctls {
        let mut saved = Vec::new();
        for &(path, at_least) in wanted {
            let old = std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
            if old.parse::<u64>().is_ok_and(|v| v < at_least) {
                std::fs::write(path, at_least.to_string()).unwrap_or_else(|e| panic!("raise {path} to {at_least}: {e}"));
                eprintln!("bench_storm: {path} {old} -> {at_least} (restored at the end)");
                saved.push((path, old, at_least.to_string()));
            }
        }
        Sysctls { saved }
    }
}

impl Drop for Sysctls {
    fn drop(&mut self) {
        for (path, old, set) in self.saved.drain(..).rev() {
            let now = std::fs::read_to_string(path).unwrap_or_default();
            if now.trim() != set {
                eprintln!("bench_storm: {path} is {} now, not the {set} this run set: left as it is", now.trim());
                continue;
            }
            if let Err(e) = std::fs::write(path, &old) {
                eprintln!("bench_storm: cannot restore {path} to {old}: {e}");
            }
        }
    }
}

/// Lets this process (and so vigild, its child) hold `at_least` descriptors.
fn raise_nofile(at_least: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a struct of ours.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_max < at_least {
            limit.rlim_max = at_least;
            limit.rlim_cur = limit.rlim_cur.max(at_least.min(limit.rlim_cur.max(1024)));
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                eprintln!("bench_storm: cannot raise RLIMIT_NOFILE to {at_least}: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// Appended lines of auth.log counted as they come: `session_end` of the storm's ids.
struct EndCounter {
    path: std::path::PathBuf,
    offset: u64,
    partial: String,
    ended: HashSet<u64>,
}

impl EndCounter {
    fn poll(&mut self, ids: &HashSet<u64>) -> usize {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return self.ended.len() };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.offset)).is_ok() && file.read_to_string(&mut text).is_ok() {
            self.offset += text.len() as u64;
            self.partial.push_str(&text);
            let complete = self.partial.rfind('\n').map_or(0, |i| i + 1);
            for line in self.partial[..complete].lines().filter(|l| l.contains("event=session_end")) {
                if let Some(id) = LogLine::parse(line).field("session").and_then(|v| v.parse().ok()).filter(|id| ids.contains(id)) {
                    self.ended.insert(id);
                }
            }
            self.partial.drain(..complete);
        }
        self.ended.len()
    }
}

/// vigild's resident memory, sampled every 20 ms by a thread: the peak.
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    fn watch(pid: u32) -> PeakRss {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, p) = (stop.clone(), peak.clone());
        // Bounded: ends when told, or after an hour.
        let thread = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(3600);
            while !s.load(Ordering::Relaxed) && Instant::now() < until {
                if let Some(kib) = vigil_e2e::procfs::rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PeakRss { stop, peak, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// One session as listed before the storm.
struct Before {
    tty: bool,
    /// Its deadline under the storm's policy (µs since the epoch; for a tty session the
    /// idle end without the warning).
    deadline: u64,
}

struct Outcome {
    top_up: holder::TopUp,
    spread_ms: u64,
    before: HashMap<u64, Before>,
    logins_before: Vec<u64>,
    logins_during: Vec<u64>,
    logins_failed: u32,
    /// Wall µs of the storm's start (U, the restart, the reload).
    start: u64,
    /// restart: how long vigild took from exec to its first answer (restore included).
    ready_ms: Option<u64>,
    last_seen_ms: Option<u64>,
    ended_in_trail: usize,
    cpu_ms: f64,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    leaders_left: usize,
    log: Vec<LogLine>,
}

fn main() -> ExitCode {
    if let Some(code) = holder::helper_role() {
        return code;
    }
    let args = Args::parse();
    if !vigil_e2e::is_root() {
        eprintln!("bench_storm: needs root (test user, PAM service, sysctls)");
        return ExitCode::from(1);
    }
    catch_interrupts();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut facts = vigil_e2e::bench::Facts::gather("bench_storm");
    let Some(outcome) = bench(&args) else {
        eprintln!("bench_storm: interrupted or failed; the harness has cleaned up");
        return ExitCode::from(130);
    };
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    facts.load_after = vigil_e2e::bench::load1();
    print!("{}", report(&args, &facts, &outcome, &load_before, &load_after));
    ExitCode::SUCCESS
}

fn ttys(args: &Args) -> u32 {
    args.ttys.unwrap_or((args.sessions / 10).min(2000)).min(args.sessions)
}

fn bench(args: &Args) -> Option<Outcome> {
    let n = args.sessions;
    // Each session: a leader process, a pidfd in vigild; headroom for the rest.
    let _sysctls = Sysctls::raise(&[
        ("/proc/sys/kernel/pid_max", u64::from(n) * 2 + 16_384),
        ("/proc/sys/kernel/pty/max", u64::from(ttys(args)) + 1024),
        ("/proc/sys/kernel/threads-max", u64::from(n) * 2 + 65_536),
    ]);
    raise_nofile(u64::from(n) * 3 + 8192);
    let state = TmpfsState::new(1);
    let mut h = Harness::with_syslog();
    state.link(&h);
    let user = h.create_user("storm");
    let timeout = format!("{}s", timeout_s(args));
    let first_policy = if args.storm == Storm::Reload { policy("1h", args.warning) } else { policy(&timeout, args.warning) };
    h.start_vigild(holder::vigild_opts(&user.name).config(&first_policy).no_bus());
    let service = h.install_vigil_service("storm", &h.vigil_args());
    let login = h.pam_host(&service, &user.name).tty("ssh").rhost(RHOST).cycles(args.logins.max(1));

    let setup = LeafSetup { ttys_below: ttys(args), own_audit_session: !args.no_audit_session };
    let mut holder = Holder::spawn_with(&h.private_socket(), &user.name, args.in_flight, 1, setup, &h.path("holder.stderr"));
    eprintln!("bench_storm: opening {n} sessions ({} with a pty)", ttys(args));
    let top_up = match holder.top_up(n) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench_storm: {e}");
            return None;
        }
    };
    eprintln!("bench_storm: {} open in {:.1} s", top_up.added, top_up.seconds);
    // vigild's first look at a session comes a second after its open (supervisor.rs
    // FIRST_CHECK_DELAY_USEC): once past it, every session is as a session older than a
    // second is, its last activity (and, without a tty, the I/O counters it is compared
    // with, saved with it) what vigild holds, and the deadlines listed below are vigild's.
    std::thread::sleep(Duration::from_secs(2));
    let timeout_usec = timeout_s(args) * 1_000_000;
    let listed = match list_sessions(&h) {
        Ok(listed) => listed,
        Err(e) => {
            eprintln!("bench_storm: ListSessions: {e}");
            return None;
        }
    };
    let before: HashMap<u64, Before> = listed
        .iter()
        .filter(|s| s.service == "vigil-bench-hold")
        .map(|s| (s.id, Before { tty: !s.ttys.is_empty(), deadline: s.last_activity_usec + timeout_usec }))
        .collect();
    let ids: HashSet<u64> = before.keys().copied().collect();
    if ids.len() != n as usize {
        eprintln!("bench_storm: vigild lists {} of the {n} sessions", ids.len());
        return None;
    }
    let first = before.values().map(|b| b.deadline).min().unwrap_or(0);
    let last = before.values().map(|b| b.deadline).max().unwrap_or(0);
    // The baseline logins and the stop must come before the first deadline.
    if args.storm != Storm::Reload && first < wall_usec() + 3_000_000 {
        eprintln!("bench_storm: the first deadline is less than 3 s away once all are open: raise --timeout");
        return None;
    }

    let logins_before = run_logins(&h, &login, "before")?.0;
    let mut pid = h.vigild().pid();
    let rss_before_kib = vigil_e2e::procfs::rss_kib(pid).unwrap_or(0);
    let mut cpu_before = cpu_us(Some(pid));
    let mut ready_ms = None;
    let sleep_until = |when: u64| std::thread::sleep(Duration::from_micros(when.saturating_sub(wall_usec())));
    let start = match args.storm {
        Storm::Expire => {
            sleep_until(first.saturating_sub(500_000));
            h.vigild().sigstop();
            eprintln!("bench_storm: vigild stopped for {:.1} s", (last + 500_000).saturating_sub(wall_usec()) as f64 / 1e6);
            sleep_until(last + 500_000);
            cpu_before = cpu_us(Some(pid));
            let start = wall_usec();
            h.vigild().sigcont();
            start
        }
        Storm::Restart => {
            h.vigild().signal(Signal::SIGKILL);
            if h.vigild().wait_exit(Duration::from_secs(10)).is_none() {
                eprintln!("bench_storm: vigild did not die of SIGKILL");
                return None;
            }
            let back = last + args.down * 1_000_000;
            eprintln!("bench_storm: vigild killed; down for {:.1} s", back.saturating_sub(wall_usec()) as f64 / 1e6);
            sleep_until(back);
            let start = wall_usec();
            let t = Instant::now();
            h.vigild().start();
            ready_ms = Some(t.elapsed().as_millis() as u64);
            pid = h.vigild().pid();
            cpu_before = 0;
            start
        }
        Storm::Reload => {
            sleep_until(last + 500_000);
            h.vigild().write_config(&policy(&timeout, args.warning));
            let start = wall_usec();
            let out = h.vigild().vigilctl(&["reload"]);
            if !out.status.success() {
                eprintln!("bench_storm: vigilctl reload: {}", vigil_e2e::process::describe_output(&out));
                return None;
            }
            start
        }
    };
    let peak = PeakRss::watch(pid);
    let mut counter = EndCounter { path: h.rsyslog().dir().join("auth.log"), offset: 0, partial: String::new(), ended: HashSet::new() };
    let (mut during, mut failed, mut last_seen_ms) = (Vec::new(), 0, None);
    // Bounded: a batch of logins takes well under a second unless vigild is stuck, and
    // the storm is given 60 s plus 20 ms a session.
    let give_up = Instant::now() + Duration::from_secs(60) + Duration::from_millis(20) * n;
    let mut storm_started = false;
    while Instant::now() < give_up {
        if interrupted() {
            return None;
        }
        let now = wall_usec();
        storm_started |= now >= start;
        if counter.poll(&ids) == ids.len() {
            last_seen_ms = Some(now.saturating_sub(start) / 1000);
            break;
        }
        if storm_started {
            let (samples, bad) = run_logins(&h, &login, "during")?;
            during.extend(samples);
            failed += bad;
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let cpu_ms = cpu_us(Some(pid)).saturating_sub(cpu_before) as f64 / 1000.0;
    let rss_peak_kib = peak.finish();
    // The last ends' SIGKILL comes a kill_grace after their SIGHUP.
    let helper = holder.pid();
    let leaders_left = vigil_e2e::try_wait_for(Duration::from_secs(5), || match live_children(helper) {
        0 => Ok(0),
        left => Err(format!("{left} left")),
    })
    .unwrap_or_else(|_| live_children(helper));
    drop(holder);
    let log = h.auth_log();
    Some(Outcome {
        top_up,
        spread_ms: (last - first) / 1000,
        before,
        logins_before,
        logins_during: during,
        logins_failed: failed,
        start,
        ready_ms,
        last_seen_ms,
        ended_in_trail: counter.ended.len(),
        cpu_ms,
        rss_before_kib,
        rss_peak_kib,
        leaders_left,
        log,
    })
}

/// Every session with its times in µs (`vigilctl list --json` gives seconds).
fn list_sessions(h: &Harness) -> Result<Vec<vigil_protocol::SessionInfo>, String> {
    let target = vigil_protocol::Target::Socket(h.private_socket());
    zruntime::block_on(async {
        let connection = target.connect().await.map_err(|e| e.to_string())?;
        let manager = vigil_protocol::ManagerProxy::new(&connection).await.map_err(|e| e.to_string())?;
        manager.list_sessions().await.map_err(|e| e.to_string())
    })
}

/// Children of `pid` that still run (a leader ended is a zombie until the helper exits).
fn live_children(pid: u32) -> usize {
    let stats = vigil_host::procfs::all_stats().unwrap_or_default();
    stats.iter().filter(|s| s.ppid == pid && vigil_e2e::process::pid_state(s.pid).is_some_and(|c| c != 'Z')).count()
}

/// One pam_host run: each cycle's open+close (µs) and how many cycles vigild did not
/// register (fail=open let the login through without it).
fn run_logins(h: &Harness, cmd: &vigil_e2e::PamHostCmd, what: &str) -> Option<(Vec<u64>, u32)> {
    if interrupted() {
        return None;
    }
    let run = run_sampled(cmd, &h.path(&format!("logins-{what}.txt")), what);
    let unregistered = run.report.session_ids.iter().filter(|id| id.is_none()).count() as u32;
    Some((run.samples, unregistered))
}

fn stats_ms(values: &[u64]) -> String {
    let s = Stats::from_samples(values);
    if s.n == 0 { "—".into() } else { format!("{} / {} / {}", s.p50, s.p99, s.max) }
}

fn report(args: &Args, facts: &vigil_e2e::bench::Facts, o: &Outcome, load_before: &str, load_after: &str) -> String {
    let n = o.before.len();
    let ends: Vec<&LogLine> = o.log.iter().filter(|l| l.is_event("vigild", "session_end")).collect();
    let mut late = (Vec::new(), Vec::new());
    let mut after_start = Vec::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    let mut order = Vec::new();
    let mut example = None;
    for l in &ends {
        let Some(id) = l.field("session").and_then(|v| v.parse::<u64>().ok()) else { continue };
        let Some(b) = o.before.get(&id) else { continue };
        let reason = l.field("reason").unwrap_or_default();
        *reasons.entry(reason.clone()).or_default() += 1;
        if let Some(ms) = l.field("late_ms").and_then(|v| v.parse::<u64>().ok()) {
            if b.tty {
                late.0.push(ms)
            } else {
                late.1.push(ms)
            }
            // Its end, from the deadline it had and how late vigild says it was.
            let end = b.deadline + ms * 1000;
            after_start.push(end.saturating_sub(b.deadline.max(o.start)) / 1000);
        }
        order.push(b.deadline);
        if example.is_none() {
            example = Some(l.raw.clone());
        }
    }
    let all: Vec<u64> = late.0.iter().chain(&late.1).copied().collect();
    // Ends that come after an end with a later deadline.
    let mut latest = 0;
    let out_of_order = order
        .iter()
        .filter(|&&d| {
            let behind = d < latest;
            latest = latest.max(d);
            behind
        })
        .count();
    let restored = o.log.iter().filter(|l| l.is_event("vigild", "session_restored")).count();
    let mut md = String::new();
    let what = match args.storm {
        Storm::Expire => "vigild SIGSTOPped before the first deadline and SIGCONTed after the last: every session due at once",
        Storm::Restart => "vigild SIGKILLed, every deadline passed while it was down, vigild started again",
        Storm::Reload => "a reload shortens idle_timeout and notty_idle_timeout from 1 h for every session",
    };
    md.push_str(&format!("Command (as root, from the repository): `{}`\n\n", facts.command));
    md.push_str(&format!(
        "- {n} sessions ({} with a pty of their own), each led by a process of its own{}; `idle_timeout = notty_idle_timeout = \"{}s\"`, `idle_warning = \"{}s\"`, `kill_grace = \"1s\"`; vigild on its private socket, session files on tmpfs; opened in {:.1} s, their deadlines within {:.1} s\n",
        ttys(args),
        if args.no_audit_session { "" } else { " and an audit session of its own (loginuid set, as pam_loginuid does)" },
        timeout_s(args),
        args.warning,
        o.top_up.seconds,
        o.spread_ms as f64 / 1000.0
    ));
    md.push_str(&format!("- storm: {what}\n"));
    md.push_str(&format!(
        "{}- load average (1, 5, 15 min) {} before, {} after\n\n",
        facts.markdown_lines(),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    ));
    md.push_str("| figure | value |\n| --- | ---: |\n");
    md.push_str(&format!(
        "| `session_end` in the trail, of {n} | {} ({} by the end of the watch) |\n",
        ends.iter().filter(|l| l.field("session").and_then(|v| v.parse().ok()).is_some_and(|id: u64| o.before.contains_key(&id))).count(),
        o.ended_in_trail
    ));
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort();
    md.push_str(&format!("| their reasons | {} |\n", reasons.iter().map(|(r, c)| format!("{r}: {c}")).collect::<Vec<_>>().join(", ")));
    md.push_str(&format!("| leaders still running after the storm | {} |\n", o.leaders_left));
    md.push_str(&format!("| `late_ms`, all: p50 / p99 / max | {} |\n", stats_ms(&all)));
    md.push_str(&format!("| `late_ms`, with a pty ({}): p50 / p99 / max | {} |\n", late.0.len(), stats_ms(&late.0)));
    md.push_str(&format!("| `late_ms`, without ({}): p50 / p99 / max | {} |\n", late.1.len(), stats_ms(&late.1)));
    md.push_str(&format!(
        "| **end − the later of its deadline and the storm's start**{}, ms: p50 / p99 / max | {} |\n",
        if args.storm == Storm::Restart { " (the restart's exec is the storm's start)" } else { "" },
        stats_ms(&after_start)
    ));
    md.push_str(&format!(
        "| last end seen in auth.log after the storm's start (polled) | {} |\n",
        o.last_seen_ms.map_or("not all within the watch".into(), |ms| format!("{ms} ms"))
    ));
    if let Some(ms) = o.ready_ms {
        md.push_str(&format!("| restart: vigild's exec to its first answer (restore included) | {ms} ms |\n"));
        md.push_str(&format!("| restart: `session_restored` records | {restored} |\n"));
    }
    md.push_str(&format!("| ends after an end with a later deadline (trail order) | {out_of_order} |\n"));
    md.push_str(&format!("| vigild CPU over the storm | {:.0} ms |\n", o.cpu_ms));
    md.push_str(&format!(
        "| vigild RSS before → peak | {:.1} → {:.1} MiB |\n",
        o.rss_before_kib as f64 / 1024.0,
        o.rss_peak_kib as f64 / 1024.0
    ));
    let (b, d) = (Stats::from_samples(&o.logins_before), Stats::from_samples(&o.logins_during));
    md.push_str(&format!(
        "| login open+close before the storm, µs: p50 / p99 / max ({} cycles) | {} / {} / {} |\n",
        b.n, b.p50, b.p99, b.max
    ));
    md.push_str(&format!(
        "| login open+close during the storm, µs: p50 / p99 / max ({} cycles, {} not registered) | {} / {} / {} |\n",
        d.n, o.logins_failed, d.p50, d.p99, d.max
    ));
    if b.p50 > 0 && d.n > 0 {
        md.push_str(&format!("| during / before, p50 | {:.2}× |\n", d.p50 as f64 / b.p50 as f64));
    }
    if let Some(line) = example {
        md.push_str(&format!("\nA `session_end` of a session without a tty:\n\n```\n{line}\n```\n"));
    }
    md
}
