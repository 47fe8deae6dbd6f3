//! bench_idle: how late after its deadline vigild ends an idle ssh session.
//!
//! `bench_idle [--sessions N (5)] [--stagger-ms MS (300)]`
//!
//! One harness: rsyslogd, vigild on its private socket with `idle_timeout = "4s"`,
//! `idle_warning = "2s"`, `kill_grace = "1s"`, and a real sshd whose session stack is
//! pam_unix + `pam_vigil.so`. N interactive ssh sessions of one test user are logged in
//! (tmux ptys, as in the e2e tests) and left idle. Then each gets one last key (`a`,
//! BackSpace: two reads by readline), MS apart, so that their deadlines do not fall
//! together; from then on nothing is typed.
//!
//! Per session, two independent measures of lateness:
//!
//! - `late_ms` of vigild's `session_end` record: when vigild ended the session minus
//!   the deadline it computed (its last input event + the timeout);
//! - the time the bench saw the ssh client process exit (polled in /proc every 5 ms)
//!   minus (the time the last key was sent + the timeout). "Sent" is when
//!   `tmux send-keys` returned: the key reached the pane by then, and the remote shell
//!   reads it a little later, so this measure includes the key's trip through ssh
//!   (a few ms) and everything after vigild's decision: SIGHUP, sshd and the client
//!   going away.
//!
//! stdout is a markdown table; progress goes to stderr. Needs root, and the release
//! build (`cargo build --release --workspace`). Everything the harness creates is
//! removed at the end, also on a panic or Ctrl-C.

use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use vigil_e2e::interrupt::{catch_interrupts, interrupted};
use vigil_e2e::procfs::ProcInfo;
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::tmux::LOGIN_TIMEOUT;
use vigil_e2e::{Harness, LogLine, SshSession, SshdOpts, VigildOpts, paths, wait_for};

const CONFIG: &str = "[defaults]\nidle_timeout = \"4s\"\nidle_warning = \"2s\"\nkill_grace = \"1s\"\n";
const TIMEOUT: Duration = Duration::from_secs(4);
/// How long past the last deadline the bench waits for every client to exit.
const SLACK: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(5);

#[derive(Parser, Debug)]
#[command(name = "bench_idle", about = "lateness of vigild's idle ends of real ssh sessions")]
struct Cli {
    /// Idle ssh sessions.
    #[arg(long, default_value_t = 5)]
    sessions: u32,
    /// Time between the last keys of consecutive sessions.
    #[arg(long, default_value_t = 300)]
    stagger_ms: u64,
}

/// One idle session being measured.
struct Probe {
    client: SshSession,
    ssh: ProcInfo,
    id: u64,
    tty: String,
    last_key: Option<Instant>,
    exited: Option<Instant>,
}

/// One row of the table.
struct Row {
    id: u64,
    tty: String,
    vigild_late_ms: Option<i64>,
    client_late_ms: Option<f64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !vigil_e2e::is_root() {
        eprintln!("bench_idle: needs root (it creates a test user, /etc/pam.d/vigil-test-* and a harness sshd); run it with sudo");
        return ExitCode::from(1);
    }
    if cli.sessions == 0 {
        eprintln!("bench_idle: --sessions must be at least 1");
        return ExitCode::from(2);
    }
    catch_interrupts();
    let load_before = load1();
    let Some(rows) = bench(&cli) else {
        eprintln!("bench_idle: interrupted; the harness has cleaned up");
        return ExitCode::from(130);
    };
    print_table(&cli, &rows, &load_before, &load1());
    if rows.iter().all(|r| r.vigild_late_ms.is_some() && r.client_late_ms.is_some()) {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench_idle: some sessions were not ended by vigild as idle (see the table)");
        ExitCode::from(1)
    }
}

fn bench(cli: &Cli) -> Option<Vec<Row>> {
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let module = paths::pam_module().display().to_string();
    let stack = unix_stack().session("required", &module, &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user("benchidl");

    let mut probes = Vec::new();
    for i in 0..cli.sessions {
        if interrupted() {
            return None;
        }
        let client = h.ssh_session(&user);
        let server = client.wait_ready(h.sshd(), LOGIN_TIMEOUT);
        let tty = server.tty().map(|t| t.display().to_string().trim_start_matches("/dev/").to_string()).unwrap_or_default();
        let ssh = client.ssh_pid().and_then(ProcInfo::read).expect("the ssh client process");
        let leader = server.priv_pid();
        let id = wait_for(Duration::from_secs(10), &format!("vigild to track session {i} with its pty"), || {
            let sessions = h.vigild().try_list_sessions()?;
            sessions
                .iter()
                .find(|s| {
                    s.leader_pid == leader
                        && s.other.get("ttys").and_then(|t| t.as_array()).is_some_and(|t| t.iter().any(|t| t == tty.as_str()))
                })
                .map(|s| s.id)
                .ok_or_else(|| format!("{sessions:?}"))
        });
        eprintln!("bench_idle: session {id} logged in on {tty}");
        probes.push(Probe { client, ssh, id, tty, last_key: None, exited: None });
    }

    // The last keys, staggered; then only watching.
    let stagger = Duration::from_millis(cli.stagger_ms);
    let start = Instant::now();
    for (i, p) in probes.iter_mut().enumerate() {
        sleep((start + stagger * i as u32).saturating_duration_since(Instant::now()));
        p.client.send_keys("a");
        p.client.send_key("BSpace");
        p.last_key = Some(Instant::now());
    }
    let give_up = Instant::now() + TIMEOUT + SLACK;
    // Bounded: one pass per POLL until every client exited or the deadline.
    let passes = (TIMEOUT + SLACK).as_millis() / POLL.as_millis() + 1;
    for _ in 0..passes {
        if interrupted() {
            return None;
        }
        let now = Instant::now();
        for p in probes.iter_mut().filter(|p| p.exited.is_none()) {
            if !p.ssh.still_running() {
                p.exited = Some(now);
            }
        }
        if probes.iter().all(|p| p.exited.is_some()) || now >= give_up {
            break;
        }
        sleep(POLL);
    }

    // vigild's records follow within moments of the ends.
    let ids: Vec<String> = probes.iter().map(|p| p.id.to_string()).collect();
    let _ = vigil_e2e::try_wait_for(Duration::from_secs(5), || {
        let log = h.auth_log();
        let ended = ids.iter().filter(|id| log.iter().any(|l| l.is_event("vigild", "session_end") && l.has("session", id))).count();
        if ended == ids.len() { Ok(()) } else { Err(format!("{ended} of {} ended", ids.len())) }
    });
    let log = h.auth_log();
    let rows = probes
        .iter()
        .map(|p| {
            let end: Option<&LogLine> =
                log.iter().find(|l| l.is_event("vigild", "session_end") && l.has("session", &p.id.to_string()) && l.has("reason", "idle"));
            let client_late_ms = match (p.last_key, p.exited) {
                (Some(key), Some(exit)) => {
                    let deadline = key + TIMEOUT;
                    Some(if exit >= deadline {
                        exit.duration_since(deadline).as_secs_f64() * 1000.0
                    } else {
                        -(deadline.duration_since(exit).as_secs_f64() * 1000.0)
                    })
                }
                _ => None,
            };
            Row {
                id: p.id,
                tty: p.tty.clone(),
                vigild_late_ms: end.and_then(|l| l.field("late_ms")).and_then(|v| v.parse().ok()),
                client_late_ms,
            }
        })
        .collect();
    Some(rows)
}

fn print_table(cli: &Cli, rows: &[Row], load_before: &str, load_after: &str) {
    println!(
        "Idle end lateness: {} idle ssh sessions through a real sshd (pam_unix + pam_vigil.so), \
         `idle_timeout = \"4s\"`, `idle_warning = \"2s\"`, last keys {} ms apart; load average {load_before} before, \
         {load_after} after.\n",
        cli.sessions, cli.stagger_ms
    );
    println!("| session | pty | vigild `late_ms` (end − its deadline) | ssh client exit − (last key sent + 4 s) |");
    println!("| ---: | --- | ---: | ---: |");
    for r in rows {
        let vigild = r.vigild_late_ms.map_or("not ended as idle".to_string(), |v| format!("{v} ms"));
        let client = r.client_late_ms.map_or("did not exit".to_string(), |v| format!("{v:.0} ms"));
        println!("| {} | {} | {vigild} | {client} |", r.id, r.tty);
    }
    let mut vigild: Vec<f64> = rows.iter().filter_map(|r| r.vigild_late_ms.map(|v| v as f64)).collect();
    let mut client: Vec<f64> = rows.iter().filter_map(|r| r.client_late_ms).collect();
    println!("| **median / max** | | {} | {} |", summary(&mut vigild, "ms"), summary(&mut client, "ms"));
}

fn summary(values: &mut [f64], unit: &str) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values.sort_by(f64::total_cmp);
    let median = values[(values.len() - 1) / 2];
    let max = values[values.len() - 1];
    format!("{median:.0} / {max:.0} {unit}")
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
