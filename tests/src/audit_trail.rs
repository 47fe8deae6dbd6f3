//! A central log host's trail, made up: what `vigilctl audit show` and `audit report`
//! are measured on (`bench_audit_readers`, e2e_audit_memory).
//!
//! Several hosts' vigild write into one file, as rsyslog's traditional format gives
//! it: each host's records are sealed with its own chain (`vigil_audit::chain`, the
//! writer's code), sessions of every host are open at the same time and their records
//! interleave, one line in ten is another program's, a few sessions live for a large
//! part of the trail (an exempt tmux), and some records come after a session's end
//! (logind_terminate_failed, a module's daemon_unreachable). Everything is drawn from a
//! fixed seed: the same arguments give the same file.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};

use vigil_audit::chain::{ChainState, Encoding, KEY_BYTES, Key, KeyFile};
use vigil_audit::sample::{Layout, syslog_line};
use vigil_protocol::audit::Record;
use vigil_protocol::events::{EndReason, Event, Limit, ReauthReason};

/// What to write.
#[derive(Debug, Clone, Copy)]
pub struct TrailSpec {
    /// Lines in the file (at least one per session, plus a start and a stop per host).
    pub lines: u64,
    /// Sessions opened over the trail.
    pub sessions: u64,
    /// Hosts writing into the file.
    pub hosts: u32,
    /// Sessions are opened and never closed (each is one `session_open`): the worst
    /// case for a reader that keeps what is open.
    pub never_closed: bool,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrailStats {
    pub lines: u64,
    pub bytes: u64,
    pub sessions_opened: u64,
    pub sessions_ended: u64,
    pub records: u64,
}

/// 2026-08-01T00:00:00Z: three months from here stay within one year.
const START: u64 = 1_785_542_400;
/// The trail covers about 90 days.
const SPAN_S: u64 = 90 * 86_400;
const USERS: u64 = 300;
/// One session in this many lives for a large part of the trail.
const LONG_ONE_IN: u64 = 2_000;

/// A fixed-seed xorshift: the same trail every time, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

struct Session {
    id: u64,
    host: usize,
    user: u64,
    ses: u64,
    rport: u64,
    /// Records still to write before the end.
    left: u32,
    /// The mean gap in lines between its records (a long session's is long).
    gap: u64,
    inhibited: bool,
}

/// Writes the trail described by `spec` to `out`.
pub fn write_trail<W: Write>(out: W, spec: TrailSpec) -> io::Result<TrailStats> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let hosts = spec.hosts.max(1) as usize;
    let mut chains: Vec<ChainState> =
        (0..hosts).map(|h| ChainState { next_seq: 1, key: host_key(h).key, last_mac: String::new() }).collect();
    let mut next_id = vec![1u64; hosts];
    // The lines left for records once every host's start and stop are written.
    let budget = spec.lines.saturating_sub(2 * hosts as u64).max(spec.sessions);
    // Most lines are vigil's (the rest: other programs, daemon records, and slack for
    // records that come late); one session takes its share of them.
    let per_session = if spec.never_closed { 1 } else { (budget * 85 / 100 / spec.sessions.max(1)).clamp(2, 40) as u32 };
    let mut stats = TrailStats::default();
    let mut due: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut open: HashMap<u64, Session> = HashMap::new();
    let mut key_of = 0u64;
    let mut line_no = 0u64;
    let time = |line: u64| START + line * SPAN_S / spec.lines.max(1);
    let emit = |out: &mut io::BufWriter<W>, stats: &mut TrailStats, line: String| -> io::Result<()> {
        stats.bytes += line.len() as u64 + 1;
        stats.lines += 1;
        writeln!(out, "{line}")
    };
    for (h, chain) in chains.iter_mut().enumerate() {
        let record = Record::new(Event::DaemonStart)
            .text("version", "0.1.0")
            .number("pid", 812)
            .text("config", "/etc/vigil/vigil.toml")
            .text("config_source", "file");
        let line = sealed(chain, &record, time(line_no), &host_name(h));
        emit(&mut out, &mut stats, line)?;
        stats.records += 1;
        line_no += 1;
    }
    let body_lines = spec.lines.saturating_sub(hosts as u64);
    while line_no < body_lines {
        let now = time(line_no);
        // Sessions are opened evenly over the trail.
        let opened_by_now = (line_no + 1).saturating_mul(spec.sessions) / body_lines.max(1);
        let record_due = due.peek().is_some_and(|Reverse((at, _))| *at <= line_no);
        if stats.sessions_opened < opened_by_now.min(spec.sessions) {
            let host = rng.below(hosts as u64) as usize;
            let id = next_id[host];
            next_id[host] += 1;
            let user = rng.below(USERS);
            let session = Session {
                id,
                host,
                user,
                ses: 1000 + stats.sessions_opened,
                rport: 32768 + rng.below(28000),
                left: per_session.saturating_sub(1),
                gap: 300,
                inhibited: false,
            };
            let record = session_record(Event::SessionOpen, &session).text("exempt", "no");
            let line = sealed(&mut chains[host], &record, now, &host_name(host));
            emit(&mut out, &mut stats, line)?;
            stats.records += 1;
            stats.sessions_opened += 1;
            if !spec.never_closed {
                let long = rng.below(LONG_ONE_IN) == 0;
                // A record every few hundred lines; a long session's spread over up
                // to half the trail.
                let gap = if long { 1 + rng.below(body_lines / 2 / u64::from(per_session.max(1)) + 1) } else { 1 + rng.below(600) };
                key_of += 1;
                due.push(Reverse((line_no + gap, key_of)));
                open.insert(key_of, Session { gap: gap.max(300), ..session });
            }
        } else if record_due && rng.below(10) != 0 {
            let Some(Reverse((_, key))) = due.pop() else { continue };
            let Some(mut session) = open.remove(&key) else { continue };
            let host = session.host;
            let record = if session.left <= 1 { end_record(&mut rng, &session) } else { middle_record(&mut rng, &mut session) };
            let ended = session.left <= 1;
            let module = record.is_none();
            let line = match record {
                Some(record) => sealed(&mut chains[host], &record, now, &host_name(host)),
                None => syslog_line(
                    Layout::Traditional,
                    now,
                    0,
                    &host_name(host),
                    "pam_vigil",
                    20_000 + session.id as u32 % 30_000,
                    &format!(
                        "event=daemon_unreachable call=check_reauth session={} user={} service=sudo tty=pts/{} pid={} fail=closed reason=timeout error=\"no answer within 2s\"",
                        session.id,
                        user_name(session.user),
                        session.id % 40,
                        30_000 + session.id % 20_000
                    ),
                ),
            };
            emit(&mut out, &mut stats, line)?;
            if !module {
                stats.records += 1;
            }
            line_no += 1;
            if ended {
                stats.sessions_ended += 1;
                // logind answered too late: its record follows the end (5 s later).
                if rng.below(50) == 0 && line_no < body_lines {
                    let record = Record::new(Event::LogindTerminateFailed)
                        .number("session", session.id)
                        .text("logind_session", session.ses.to_string())
                        .text("error", "no answer from logind within 5s");
                    let line = sealed(&mut chains[host], &record, now + 5, &host_name(host));
                    emit(&mut out, &mut stats, line)?;
                    stats.records += 1;
                    line_no += 1;
                }
            } else {
                session.left -= 1;
                let gap = 1 + rng.below(2 * session.gap);
                due.push(Reverse((line_no + gap, key)));
                open.insert(key, session);
            }
            continue;
        } else if rng.below(200) == 0 {
            // A daemon record: a refused call, a reload.
            let host = rng.below(hosts as u64) as usize;
            let record = if rng.below(4) == 0 {
                Record::new(Event::ConfigReload)
                    .text("result", "ok")
                    .number("policies", 3)
                    .text("trigger", "sighup")
                    .text("path", "/etc/vigil/vigil.toml")
            } else {
                Record::new(Event::CallRefused)
                    .text("method", "Terminate")
                    .number("uid", 1000 + rng.below(USERS))
                    .number("pid", 40_000 + rng.below(20_000))
                    .text("reason", "root_only")
                    .number("suppressed", 0)
            };
            let line = sealed(&mut chains[host], &record, now, &host_name(host));
            emit(&mut out, &mut stats, line)?;
            stats.records += 1;
        } else {
            let host = rng.below(hosts as u64) as usize;
            let line = syslog_line(
                Layout::Traditional,
                now,
                0,
                &host_name(host),
                "sshd",
                4000 + rng.below(60_000) as u32,
                &format!(
                    "Accepted publickey for {} from 203.0.113.{} port {} ssh2: ED25519 SHA256:q8Yw1xK3o0p9dQ",
                    user_name(rng.below(USERS)),
                    rng.below(250) + 1,
                    32768 + rng.below(28000)
                ),
            );
            emit(&mut out, &mut stats, line)?;
        }
        line_no += 1;
    }
    for (h, chain) in chains.iter_mut().enumerate() {
        let record = Record::new(Event::DaemonStop).text("signal", "SIGTERM").number("sessions", open.len() as u64);
        let line = sealed(chain, &record, time(line_no), &host_name(h));
        emit(&mut out, &mut stats, line)?;
        stats.records += 1;
        line_no += 1;
    }
    out.flush()?;
    Ok(stats)
}

/// The starting key of host `h`'s chain (`verify` needs it): fixed, like the rest.
pub fn host_key(h: usize) -> KeyFile {
    KeyFile { start_seq: 1, key: Key::from_bytes([(h % 251) as u8 + 1; KEY_BYTES]) }
}

/// The name host `h` writes under.
pub fn host_name(h: usize) -> String {
    format!("web{:02}", h + 1)
}

fn user_name(u: u64) -> String {
    format!("u{u:03}")
}

fn sealed(chain: &mut ChainState, record: &Record, secs: u64, host: &str) -> String {
    let message = chain.seal(&record.to_kv_line(), Encoding::KeyValue);
    syslog_line(Layout::Traditional, secs, 0, host, "vigild", 812, &message)
}

/// The fields vigild's `records::session_record` gives every session record.
fn session_record(event: Event, s: &Session) -> Record {
    Record::new(event)
        .number("session", s.id)
        .number("ses", s.ses)
        .text("user", user_name(s.user))
        .number("uid", 1000 + s.user)
        .text("service", "sshd")
        .text("tty", "ssh")
        .text("rhost", format!("198.51.100.{}", s.user % 250 + 1))
        .number("rport", s.rport)
        .text("ruser", "")
        .number("leader_pid", 9000 + s.ses)
        .text("policy", "defaults")
        .number("parent", 0)
        .text("ttys", format!("pts/{}", s.id % 40))
        .text("logind_session", s.ses.to_string())
}

/// The next record of a session; `None`: a module record (pam_vigil) instead.
fn middle_record(rng: &mut Rng, s: &mut Session) -> Option<Record> {
    let sudo = |e: Event, s: &Session| {
        session_record(e, s)
            .text("reauth_service", "sudo")
            .text("reauth_tty", format!("pts/{}", s.id % 40))
            .number("pid", 30_000 + s.id % 20_000)
    };
    Some(match rng.below(20) {
        0..=5 => session_record(Event::ReauthRequired, s).text("reason", ReauthReason::Expired),
        6..=8 => sudo(Event::ReauthRecorded, s),
        9..=12 => sudo(Event::ReauthGranted, s).number("proof_age_s", rng.below(900)),
        13 => sudo(Event::ReauthFailed, s),
        14..=16 => session_record(Event::IdleWarning, s)
            .text("limit", Limit::Idle)
            .number("idle_s", 840)
            .number("ends_in_s", 60)
            .number("ttys_warned", 1),
        17 if !s.inhibited => {
            s.inhibited = true;
            session_record(Event::InhibitStart, s)
                .text("why", "db migration")
                .text("until", "2026-09-01T12:00:00Z")
                .number("duration_s", 7200)
                .number("pid", 30_000 + s.id % 20_000)
        }
        17 => {
            s.inhibited = false;
            session_record(Event::InhibitEnd, s).text("reason", "expired").text("why", "db migration").text("until", "2026-09-01T12:00:00Z")
        }
        18 => return None,
        _ => session_record(Event::ReauthRevoked, s).text("reason", "idle_warning").number("proofs", 1),
    })
}

fn end_record(rng: &mut Rng, s: &Session) -> Option<Record> {
    Some(match rng.below(10) {
        0..=4 => session_record(Event::SessionClose, s).text("reason", "closed").number("duration_s", rng.below(30_000)),
        5..=7 => session_record(Event::SessionEnd, s)
            .text("reason", EndReason::Idle)
            .number("late_ms", rng.below(900))
            .number("duration_s", rng.below(30_000)),
        8 => session_record(Event::SessionEnd, s)
            .text("reason", EndReason::MaxAge)
            .number("late_ms", rng.below(900))
            .number("duration_s", 86_400),
        _ => session_record(Event::SessionEnd, s)
            .text("reason", EndReason::Admin)
            .number("processes", 3)
            .number("duration_s", rng.below(30_000)),
    })
}

/// What one run of a reader cost.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub success: bool,
    /// Peak resident set (getrusage's ru_maxrss of the child), KiB.
    pub max_rss_kib: u64,
    pub wall: std::time::Duration,
    pub cpu: std::time::Duration,
}

/// Runs `cmd` (its stdout where the caller put it) and takes its peak RSS from wait4;
/// the child is killed after `timeout`.
pub fn run_measured(cmd: &mut std::process::Command, timeout: std::time::Duration) -> io::Result<Measured> {
    let started = std::time::Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let poll = std::time::Duration::from_millis(5);
    // Bounded by `timeout`: then killed, and waited for once more.
    let rounds = timeout.as_millis() / poll.as_millis() + 1;
    for round in 0..=rounds {
        let mut status = 0;
        // SAFETY: plain C structs the call fills in; the pid is our own child, reaped here
        // (std's Child is dropped without waiting).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if round == rounds { 0 } else { libc::WNOHANG };
        if round == rounds {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // SAFETY: see above.
        let reaped = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if reaped == pid {
            let tv = |t: libc::timeval| std::time::Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
            return Ok(Measured {
                success: round < rounds && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                max_rss_kib: usage.ru_maxrss as u64,
                wall: started.elapsed(),
                cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            });
        }
        if reaped < 0 {
            return Err(io::Error::last_os_error());
        }
        std::thread::sleep(poll);
    }
    Err(io::Error::other("the child was not reaped"))
}
