//! bench_load: sustained logins (issue 9's benchmark): 16 PAM host processes at once,
//! each running pam_open_session + pam_close_session through real libpam in a loop for
//! a fixed time, against vigild over its private socket (and, with `--bus`, the bus);
//! pam_permit in the same run is the baseline. Every pam_vigil cycle must be audited:
//! auth.log (the harness's rsyslogd) must hold exactly one `session_open` and one
//! `session_close` from vigild for each session id a host got.
//!
//! `bench_load [--hosts 16] [--seconds 10] [--bus [--brokers dbus-daemon,dbus-broker]] [--state-on-disk]
//!            [--json] [--update-md FILE]`
//!
//! With `--bus`, one bus stack per broker of `--brokers` (dbus-daemon by default); with
//! two, the second broker is the harness's second bus with a second vigild on it
//! (`<dir>/second/`, same options), each stack's hosts calling through its own.
//!
//! Each host is this program run again (`bench_load/worker.rs`): it loads the modules
//! with pam_start, waits for the common start time, runs cycles until the end time,
//! and writes one line per cycle (its time, the session id, the return codes). The
//! figure is all hosts' cycles over the time from the start to the end of the last
//! cycle. vigild's, rsyslogd's and dbus-daemon's CPU (utime+stime from /proc) over the
//! same time give their share of a core and their cost per cycle (vigild: every vigild
//! of the harness, the idle one included; dbus-broker: with dbus-broker-launch). After the load, the
//! wait for the audit trail is bounded: until every id has its two lines, or nothing
//! new has come for 15 s (at most 180 s). vigild's session files are on tmpfs, as in
//! production (`bench/tmpfs_state.rs`), unless `--state-on-disk`.
//!
//! stdout is markdown between `<!-- bench_load:begin -->` and `<!-- bench_load:end -->`
//! (with two brokers, `bench_load_brokers`)
//! (`--update-md FILE` also replaces that block in FILE); `--json` prints JSON instead.
//! Needs root and the release build, like bench_pam.

#[path = "bench_load/audit_count.rs"]
mod audit_count;
#[allow(dead_code)] // pam_host's conversation: prompts and messages are not looked at here
#[path = "pam_host/conv.rs"]
mod conv;
#[path = "bench/facts.rs"]
mod facts;
#[allow(dead_code)] // pam_host's declarations: auth and strerror are not called here
#[path = "pam_host/ffi.rs"]
mod ffi;
#[allow(dead_code)] // only vigild's options: bench_load holds no sessions
#[path = "bench/holder.rs"]
mod holder;
#[path = "bench/stacks.rs"]
mod stacks;
#[path = "bench/tmpfs_state.rs"]
mod tmpfs_state;
#[allow(dead_code)] // the idle window is bench_pam's
#[path = "bench/usage.rs"]
mod usage;
#[path = "bench_load/worker.rs"]
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use vigil_e2e::interrupt::interrupted;
use vigil_e2e::{BusKind, BusPolicy, Harness, PamStack, Stats};

use audit_count::{AuditCount, Trail};
use facts::Facts;
use tmpfs_state::TmpfsState;
use worker::{Job, now_usec};

const BEGIN: &str = "<!-- bench_load:begin -->";
const END: &str = "<!-- bench_load:end -->";
const BEGIN_BROKERS: &str = "<!-- bench_load_brokers:begin -->";
const END_BROKERS: &str = "<!-- bench_load_brokers:end -->";
/// Issue 9's target, on this 2-core machine.
const TARGET_PER_SECOND: f64 = 5000.0;
const TTY: &str = "pts/9";
const RHOST: &str = "203.0.113.7";
/// Time the hosts get to start and load their modules before the common start.
const LEAD_IN: Duration = Duration::from_millis(1500);
const DAEMONS: [&str; 4] = ["vigild", "rsyslogd", "dbus-daemon", "dbus-broker"];
/// The processes counted under each of [`DAEMONS`].
const DAEMON_PROCESSES: [&[&str]; 4] = [&["vigild"], &["rsyslogd"], &["dbus-daemon"], &["dbus-broker", "dbus-broker-launch"]];

#[derive(Parser, Debug)]
#[command(name = "bench_load", about = "Sustained PAM open+close by concurrent hosts, every cycle audited")]
struct Cli {
    /// PAM host processes running at once.
    #[arg(long, default_value_t = 16)]
    hosts: u32,
    /// How long the hosts loop, per stack.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Also load pam_vigil over the harness's private system bus.
    #[arg(long)]
    bus: bool,
    /// With --bus: the bus daemons to load through, one stack each (dbus-daemon,
    /// dbus-broker, or both).
    #[arg(long, value_delimiter = ',', default_value = "dbus-daemon", value_name = "BROKER,...")]
    brokers: Vec<BusKind>,
    #[command(flatten)]
    common: facts::CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Permit,
    VigilSocket,
    VigilBus(BusKind),
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Permit => "pam_permit",
            Kind::VigilSocket => "pam_vigil, private socket",
            Kind::VigilBus(BusKind::DbusDaemon) => "pam_vigil, bus (dbus-daemon)",
            Kind::VigilBus(BusKind::DbusBroker) => "pam_vigil, bus (dbus-broker)",
        }
    }
}

/// One stack under load.
struct Load {
    kind: Kind,
    cycles: u64,
    seconds: f64,
    latency: Stats,
    /// Cycles whose open or close did not return PAM_SUCCESS.
    failed: u64,
    /// pam_vigil cycles that got no session id (fail=open let the login through unregistered),
    /// or an id another cycle had already got.
    unregistered: u64,
    ids: Vec<u64>,
    /// CPU µs of each of [`DAEMONS`] over the load.
    daemon_cpu_us: [u64; 4],
    /// CPU µs of the hosts (their libpam and modules), from getrusage(RUSAGE_CHILDREN).
    hosts_cpu_us: u64,
    audit: Option<AuditCount>,
    /// vigild's RSS (KiB) after the load.
    vigild_rss_kib: u64,
    load_after: String,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.cycles as f64 / self.seconds.max(1e-9)
    }
}

fn main() -> ExitCode {
    if worker::is_worker() {
        return worker::worker_main();
    }
    let cli = Cli::parse();
    if !vigil_e2e::is_root() {
        eprintln!("bench_load: needs root (test user, /etc/pam.d/vigil-test-* files, vigild registers root callers only)");
        return ExitCode::from(1);
    }
    if cli.hosts == 0 || cli.seconds == 0 {
        eprintln!("bench_load: --hosts and --seconds must be at least 1");
        return ExitCode::from(2);
    }
    if cli.brokers.is_empty() || cli.brokers.len() > 2 || cli.brokers.first() == cli.brokers.get(1) {
        eprintln!("bench_load: --brokers takes dbus-daemon, dbus-broker or both, each once");
        return ExitCode::from(2);
    }
    let markers = if cli.bus && cli.brokers.len() > 1 { (BEGIN_BROKERS, END_BROKERS) } else { (BEGIN, END) };
    let report = facts::Report { program: "bench_load", markers, update_md: cli.common.update_md.as_deref(), json: cli.common.json };
    match report.run(|| bench(&cli), |facts, loads| (markdown(&cli, facts, loads), to_json(&cli, facts, loads))) {
        // Exit 3 when a cycle went unaudited: a script can tell.
        Ok(loads) if loads.iter().filter_map(|l| l.audit.as_ref()).all(AuditCount::complete) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(3),
        Err(code) => code,
    }
}

fn bench(cli: &Cli) -> Option<Vec<Load>> {
    let brokers: &[BusKind] = if cli.bus { &cli.brokers } else { &[] };
    let names: String = brokers.iter().map(|b| format!(", {b}")).collect();
    eprintln!("bench_load: starting rsyslogd{names} and vigild");
    let state = (!cli.common.state_on_disk).then(|| TmpfsState::new(brokers.len().max(1)));
    let mut h = Harness::with_syslog();
    if let Some(state) = &state {
        state.link(&h);
    }
    let user = h.create_user("load");
    let opts = holder::vigild_opts(&user.name);
    let opts = match brokers {
        [] => opts.no_bus(),
        [first, rest @ ..] => {
            h.start_bus_with(BusPolicy::Packaging, *first);
            if let Some(&second) = rest.first() {
                h.start_second_bus(BusPolicy::Packaging, second);
            }
            opts
        }
    };
    h.start_vigild(opts.clone());
    if brokers.len() > 1 {
        h.start_second_vigild(opts);
    }
    let mut kinds = vec![Kind::Permit, Kind::VigilSocket];
    kinds.extend(brokers.iter().map(|&b| Kind::VigilBus(b)));
    let mut trail = Trail::new(h.path("auth.log"));
    let mut loads = Vec::new();
    for kind in kinds {
        let stack = match kind {
            Kind::Permit => PamStack::permit_only(),
            Kind::VigilSocket => stacks::vigil_socket(&h),
            Kind::VigilBus(broker) => stacks::vigil_bus(&h, stacks::bus_of(&h, broker)),
        };
        let service = h.install_pam_service(&format!("load-{}", loads.len()), &stack);
        eprintln!("bench_load: {}: {} hosts for {} s", kind.label(), cli.hosts, cli.seconds);
        trail.start_afresh();
        let mut load = run_load(cli, &h, kind, &service, &user.name)?;
        if kind != Kind::Permit {
            eprintln!("bench_load: waiting for {} sessions' records in auth.log", load.ids.len());
            load.audit = Some(trail.wait_for(&load.ids, &interrupted));
        }
        load.load_after = vigil_e2e::bench::load1();
        eprintln!("bench_load: {}: {:.0} cycles/s", kind.label(), load.per_second());
        loads.push(load);
        if interrupted() {
            return None;
        }
    }
    Some(loads)
}

/// The vigild a stack's hosts call: the second one for the second bus's stack.
fn vigild_of(h: &Harness, kind: Kind) -> u32 {
    match kind {
        Kind::VigilBus(broker) if h.bus().kind() != broker => h.second_vigild().pid(),
        _ => h.vigild().pid(),
    }
}

/// User + system time of this process's reaped children (µs): the hosts, once waited for.
fn children_cpu_us() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid target.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Runs the hosts on `service` and reads what they wrote.
fn run_load(cli: &Cli, h: &Harness, kind: Kind, service: &str, user: &str) -> Option<Load> {
    let start_usec = now_usec() + LEAD_IN.as_micros() as u64;
    let mut hosts: Vec<(Child, PathBuf)> = Vec::new();
    let exe = std::env::current_exe().expect("current_exe");
    for i in 0..cli.hosts {
        let out = h.path(&format!("load-{}-{i}.txt", service));
        let job = Job {
            service: service.to_string(),
            user: user.to_string(),
            tty: TTY.to_string(),
            rhost: RHOST.to_string(),
            start_usec,
            seconds: cli.seconds,
            out: out.clone(),
        };
        let stderr = std::fs::File::create(h.path(&format!("load-{service}-{i}.stderr"))).expect("create a host's stderr file");
        let child = Command::new(&exe)
            .args(job.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a load host: {e}"));
        hosts.push((child, out));
    }
    let pids = DAEMON_PROCESSES.map(|names| usage::all_pids_of(h, names));
    let children_before = children_cpu_us();
    std::thread::sleep(Duration::from_micros(start_usec.saturating_sub(now_usec())));
    let cpu_before = pids.each_ref().map(|p| usage::cpu_us_of(p));
    // Bounded: the run's length and a minute for the hosts to finish; then killed by pid.
    let deadline = Instant::now() + Duration::from_secs(cli.seconds + 60);
    let mut statuses = Vec::new();
    for (child, _) in &mut hosts {
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline && !interrupted() => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                    let _ = child.wait();
                    break None;
                }
            }
        };
        statuses.push(status);
    }
    let cpu_after = pids.each_ref().map(|p| usage::cpu_us_of(p));
    let hosts_cpu_us = children_cpu_us().saturating_sub(children_before);
    if interrupted() {
        return None;
    }
    let mut samples = Vec::new();
    let mut ids = Vec::new();
    let (mut failed, mut unregistered, mut last_end) = (0u64, 0u64, start_usec);
    let mut seen: HashMap<u64, ()> = HashMap::new();
    for ((_, out), status) in hosts.iter().zip(&statuses) {
        assert!(status.is_some_and(|s| s.success()), "a load host failed ({status:?}); see {}", out.with_extension("stderr").display());
        let text = std::fs::read_to_string(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            if let ["END", end] = words.as_slice() {
                last_end = last_end.max(end.parse().unwrap_or(0));
                continue;
            }
            let [us, id, open_rc, close_rc] = words.as_slice() else { panic!("bad line {line:?} in {}", out.display()) };
            samples.push(us.parse::<u64>().unwrap_or(0));
            if *open_rc != "0" || *close_rc != "0" {
                failed += 1;
            }
            if kind != Kind::Permit {
                match id.parse::<u64>() {
                    Ok(id) if seen.insert(id, ()).is_none() => ids.push(id),
                    _ => unregistered += 1,
                }
            }
        }
    }
    let daemon_cpu_us = std::array::from_fn(|i| cpu_after[i].saturating_sub(cpu_before[i]));
    Some(Load {
        kind,
        cycles: samples.len() as u64,
        seconds: last_end.saturating_sub(start_usec) as f64 / 1e6,
        latency: Stats::from_samples(&samples),
        failed,
        unregistered,
        ids,
        daemon_cpu_us,
        hosts_cpu_us,
        audit: None,
        vigild_rss_kib: vigil_e2e::procfs::rss_kib(vigild_of(h, kind)).unwrap_or(0),
        load_after: String::new(),
    })
}

fn markdown(cli: &Cli, f: &Facts, loads: &[Load]) -> String {
    let two = cli.bus && cli.brokers.len() > 1;
    let (begin, end) = if two { (BEGIN_BROKERS, END_BROKERS) } else { (BEGIN, END) };
    let mut md = format!("{begin}\nCommand (as root, from the repository): `{}`\n\n", f.command);
    md.push_str(&format!(
        "- {} PAM host processes at once (real libpam, one handle each, tty and rhost set as sshd sets them), \
         each running pam_open_session + pam_close_session in a loop for {} s per stack; pam_permit is the \
         same-run baseline\n",
        cli.hosts, cli.seconds
    ));
    md.push_str(&format!(
        "- vigild with the default policy, {}; rsyslogd writes each record to auth.log and all.log; vigild's \
         session files {}\n",
        if cli.bus { "on its private socket and the harness's private system bus" } else { "private socket only (`--no-bus`)" },
        if cli.common.state_on_disk { "under /tmp (`--state-on-disk`)" } else { "on tmpfs, as /run/vigil is" }
    ));
    if two {
        md.push_str(
            "- two buses with the same configuration file (packaging policy): dbus-daemon, and dbus-broker \
             (`dbus-broker-launch --scope system` under `systemd-socket-activate`, tests/src/bus.rs), each with its \
             own vigild (same options; the second in the harness's `second/` directory); the stacks run one after \
             the other; the vigild column is both vigilds, the dbus-broker column includes dbus-broker-launch\n",
        );
    }
    md.push_str(&f.markdown_lines());
    md.push_str(
        "\n| stack | cycles | seconds | **cycles/s** | open+close p50 / p99 µs | failed | unregistered | \
         hosts: % of a core, µs per cycle | vigild | rsyslogd | dbus-daemon | dbus-broker | audited (ids with one open and one close line) | vigild RSS MiB after | load (1 min) after |\n",
    );
    md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n");
    for l in loads {
        let share = |us: u64| {
            let us = us as f64;
            format!("{:.0} %, {:.0}", us / (l.seconds * 1e6).max(1.0) * 100.0, us / l.cycles.max(1) as f64)
        };
        let cpu = |i: usize| share(l.daemon_cpu_us[i]);
        let audited = l.audit.as_ref().map_or("—".to_string(), AuditCount::describe);
        md.push_str(&format!(
            "| {} | {} | {:.2} | **{:.0}** | {} / {} | {} | {} | {} | {} | {} | {} | {} | {audited} | {:.1} | {} |\n",
            l.kind.label(),
            l.cycles,
            l.seconds,
            l.per_second(),
            l.latency.p50,
            l.latency.p99,
            l.failed,
            if l.kind == Kind::Permit { "—".to_string() } else { l.unregistered.to_string() },
            share(l.hosts_cpu_us),
            cpu(0),
            cpu(1),
            cpu(2),
            cpu(3),
            l.vigild_rss_kib as f64 / 1024.0,
            l.load_after
        ));
    }
    md.push_str(&format!("\nTarget (issue 9): ≥ {TARGET_PER_SECOND:.0} open+close per second, all audited.\n"));
    for l in loads.iter().filter(|l| l.kind != Kind::Permit) {
        let fast = l.per_second() >= TARGET_PER_SECOND;
        let audited = l.audit.as_ref().is_some_and(AuditCount::complete) && l.unregistered == 0 && l.failed == 0;
        md.push_str(&format!(
            "- {}: {:.0}/s ({}), {} ({})\n",
            l.kind.label(),
            l.per_second(),
            if fast { "met" } else { "**missed**" },
            if audited { "every cycle audited" } else { "not every cycle audited" },
            if audited { "met" } else { "**missed**" }
        ));
    }
    md.push_str(end);
    md.push('\n');
    md
}

fn to_json(cli: &Cli, f: &Facts, loads: &[Load]) -> Value {
    json!({
        "benchmark": "pam_sustained_load",
        "command": f.command, "date": f.date, "commit": f.commit, "dirty": f.dirty,
        "machine": {"nproc": f.nproc, "cpu": f.cpu, "kernel": f.kernel, "load1_before": f.load_before, "load1_after": f.load_after},
        "hosts": cli.hosts, "seconds": cli.seconds,
        "stacks": loads.iter().map(|l| json!({
            "stack": l.kind.label(), "cycles": l.cycles, "seconds": l.seconds, "per_second": l.per_second(),
            "cycle_us": {"p50": l.latency.p50, "p99": l.latency.p99, "max": l.latency.max},
            "failed": l.failed, "unregistered": l.unregistered, "hosts_cpu_us": l.hosts_cpu_us,
            "daemon_cpu_us": DAEMONS.iter().zip(l.daemon_cpu_us).map(|(d, v)| (d.to_string(), json!(v))).collect::<serde_json::Map<String, Value>>(),
            "audit": l.audit.as_ref().map(AuditCount::to_json), "vigild_rss_kib": l.vigild_rss_kib,
            "load1_after": l.load_after,
        })).collect::<Vec<_>>(),
    })
}
