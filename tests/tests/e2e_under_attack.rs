//! End-to-end: a local user's flood of calls that do not wait for their answers, on the
//! private socket and on the bus. What vigild holds for one peer is bounded (calls read
//! and not answered, their replies), a peer that never reads is dropped and recorded
//! once, the memory goes with the peer, and root's PAM calls keep being answered within
//! their deadline throughout. The attacker is the `pipeline` tool run as a test user;
//! the figures each test prints are the source of BENCHMARKS.md "Under attack".
//! Needs root and the release build: see tests/README.md.

use std::time::{Duration, Instant};

use vigil_e2e::pipeline::{Pipeline, PipelineReport};
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{BusKind, BusPolicy, Fail, Harness, TestUser, VigildOpts, require_root};

/// vigild's resident memory must stay under this throughout a flood.
const RSS_CEILING_KIB: u64 = 100 * 1024;
/// ... and be back within this of where it was once the flooder has gone.
const RSS_RETURN_KIB: u64 = 20 * 1024;
/// An unprivileged peer that leaves its backlog full this long is dropped (with slack).
const DROP_DEADLINE: Duration = Duration::from_secs(15);
/// The longest any flood here may run.
const FLOOD_DEADLINE: Duration = Duration::from_secs(120);
/// The module's deadline in these tests (its default).
const MODULE_TIMEOUT: &str = "2s";
const MODULE_DEADLINE: Duration = Duration::from_secs(2);

fn harness() -> Harness {
    let h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h
}

/// What one round of root logins saw while a flood ran.
#[derive(Debug, Default)]
struct Watched {
    peak_rss_kib: u64,
    rounds: u32,
    /// Rounds whose open+close did not register (past the deadline, or refused).
    failed: Vec<String>,
    slowest_cycle: Duration,
    cycle_p50_us: Vec<u64>,
}

/// While `flood` runs (at most [`FLOOD_DEADLINE`]): vigild's RSS sampled, and a root PAM
/// open+close made in every round, each of which should register its session (with
/// `fail=closed`, a call past its deadline fails the open; the caller asserts on
/// `failed`). A flood that takes vigild past the ceiling is ended at once, and the test
/// fails on what it saw.
#[track_caller]
fn watch_flood(h: &Harness, service: &str, user: &TestUser, flood: &mut Pipeline) -> Watched {
    let start = Instant::now();
    let mut watched = Watched::default();
    while flood.is_running() && start.elapsed() < FLOOD_DEADLINE {
        let rss = h.vigild().rss_kib();
        watched.peak_rss_kib = watched.peak_rss_kib.max(rss);
        if rss > 4 * RSS_CEILING_KIB {
            flood.kill();
            panic!("vigild reached {rss} KiB under the flood (ceiling {RSS_CEILING_KIB} KiB): the flood was ended");
        }
        let before = Instant::now();
        let run = h.run_pam_host(&h.pam_host(service, &user.name).cycles(1));
        let took = before.elapsed();
        let r = run.report();
        if !(r.open_rc.all(PAM_SUCCESS) && r.close_rc.all(PAM_SUCCESS) && r.session_ids.iter().all(|id| id.is_some())) {
            watched.failed.push(format!("round {} after {:?}: {took:?} open_rc {:?}", watched.rounds, start.elapsed(), r.open_rc));
        }
        watched.slowest_cycle = watched.slowest_cycle.max(took);
        watched.cycle_p50_us.push(r.cycle_us.p50);
        watched.rounds += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    watched.peak_rss_kib = watched.peak_rss_kib.max(h.vigild().rss_kib());
    assert!(!flood.is_running(), "the flood ran past {FLOOD_DEADLINE:?}");
    if !watched.failed.is_empty() {
        eprintln!("root's PAM cycles that failed under the flood: {:#?}", watched.failed);
    }
    watched
}

/// vigild's RSS once it has settled after a flood (bounded wait).
fn settled_rss(h: &Harness, target_kib: u64) -> u64 {
    let start = Instant::now();
    loop {
        let rss = h.vigild().rss_kib();
        if rss <= target_kib || start.elapsed() > Duration::from_secs(10) {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The one `message_refused reason=REASON` record of `attacker` (once a minute per user,
/// whatever the number of its connections or calls refused), naming the bound.
#[track_caller]
fn one_refusal(h: &Harness, attacker: &TestUser, reason: &str, limit: &str) {
    let uid = attacker.uid.to_string();
    h.wait_for_event(Duration::from_secs(10), "vigild", "message_refused", &[("reason", reason), ("uid", &uid)]);
    let records: Vec<_> = h.auth_log().into_iter().filter(|l| l.is_event("vigild", "message_refused") && l.has("uid", &uid)).collect();
    assert_eq!(records.len(), 1, "one {reason} record for the user: {records:#?}");
    assert!(records[0].has("limit", limit), "the record names the bound: {}", records[0].raw);
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// vigild on the private socket, a login user, root's PAM service (`fail=closed`, so a
/// registration past its deadline fails the login), the attacker, and vigild's RSS
/// after one login.
fn private_socket_target() -> (Harness, TestUser, String, TestUser, u64) {
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus());
    let user = h.create_user("login");
    let service = h.install_vigil_service("root", &h.vigil_args().fail(Fail::Closed).timeout(MODULE_TIMEOUT));
    let attacker = h.create_user("pipe");
    let run = h.run_pam_host(&h.pam_host(&service, &user.name).cycles(1));
    assert!(run.report().open_rc.all(PAM_SUCCESS), "a login before the flood: {:?}", run.report());
    let baseline = h.vigild().rss_kib();
    (h, user, service, attacker, baseline)
}

#[test]
fn a_peer_that_never_reads_its_replies_is_held_to_a_bound_then_dropped_and_recorded_once() {
    require_root!();
    let (h, user, service, attacker, baseline) = private_socket_target();
    let socket = h.private_socket();
    let socket = socket.to_str().expect("a UTF-8 path");
    let mut flood = h.pipeline_as(&attacker, &["--socket", socket, "--conns", "16", "--calls", "100000", "--member", "Introspect"]);
    let watched = watch_flood(&h, &service, &user, &mut flood);
    let report: PipelineReport = flood.finish(DROP_DEADLINE);
    let after = settled_rss(&h, baseline + RSS_RETURN_KIB);
    eprintln!(
        "never-read flood: 16 connections, {} calls written in {} ms, {} dropped by vigild; vigild RSS {baseline} KiB before, \
         peak {} KiB, {after} KiB after; {} root logins during it, slowest {:?}",
        report.calls_written, report.elapsed_ms, report.closed_by_server, watched.peak_rss_kib, watched.rounds, watched.slowest_cycle
    );
    assert_eq!(report.connected, 16, "every connection admitted: {report:?}");
    assert_eq!(report.closed_by_server, 16, "every connection that never read was dropped: {report:?}");
    assert!(report.calls_written < 1_600_000, "reading paused at the bound, so not every call went out: {report:?}");
    assert!(watched.peak_rss_kib < RSS_CEILING_KIB, "vigild's RSS peaked at {} KiB", watched.peak_rss_kib);
    assert!(after <= baseline + RSS_RETURN_KIB, "vigild's RSS {after} KiB after, {baseline} KiB before");
    assert!(watched.failed.is_empty(), "root's PAM cycles failed under the flood: {:#?}", watched.failed);
    assert!(watched.slowest_cycle < MODULE_DEADLINE, "root's slowest open+close took {:?}", watched.slowest_cycle);
    one_refusal(&h, &attacker, "replies_unread", "8");
}

#[test]
fn a_peer_that_reads_its_replies_is_served_within_the_bound_and_root_keeps_logging_in() {
    require_root!();
    let (h, user, service, attacker, baseline) = private_socket_target();
    let socket = h.private_socket();
    let socket = socket.to_str().expect("a UTF-8 path");
    let mut flood =
        h.pipeline_as(&attacker, &["--socket", socket, "--conns", "16", "--calls", "10000", "--member", "Introspect", "--read"]);
    let mut watched = watch_flood(&h, &service, &user, &mut flood);
    let report = flood.finish(DROP_DEADLINE);
    let after = settled_rss(&h, baseline + RSS_RETURN_KIB);
    eprintln!(
        "reading flood: {} Introspect calls answered in {} ms ({:.0}/s); vigild RSS {baseline} KiB before, peak {} KiB, \
         {after} KiB after; {} root logins during it, median cycle {} µs, slowest {:?}",
        report.answers_read,
        report.elapsed_ms,
        report.answers_read as f64 * 1000.0 / report.elapsed_ms.max(1) as f64,
        watched.peak_rss_kib,
        watched.rounds,
        median(&mut watched.cycle_p50_us),
        watched.slowest_cycle
    );
    assert_eq!(report.answers_read, 160_000, "every call answered: {report:?}");
    assert_eq!(report.closed_by_server, 0, "a peer that reads is never dropped: {report:?}");
    assert!(watched.peak_rss_kib < RSS_CEILING_KIB, "vigild's RSS peaked at {} KiB", watched.peak_rss_kib);
    assert!(after <= baseline + RSS_RETURN_KIB, "vigild's RSS {after} KiB after, {baseline} KiB before");
    assert!(watched.failed.is_empty(), "root's PAM cycles failed under the flood: {:#?}", watched.failed);
    assert!(watched.slowest_cycle < MODULE_DEADLINE, "root's slowest open+close took {:?}", watched.slowest_cycle);
}

#[test]
fn a_users_flood_on_the_bus_leaves_roots_pam_calls_on_the_bus_within_their_deadline() {
    require_root!();
    flood_on_the_bus(BusKind::DbusDaemon);
}

/// The same flood and the same promises with dbus-broker relaying the bus. Ignored: they
/// do not hold there. vigild passes a flooder's calls past its share over unanswered and
/// counts on dbus-daemon's limit of 128 replies pending per connection to stop the rest
/// at the bus; dbus-broker-launch reads no such limit (only the bytes, fds, match rules
/// and connections per user), so the flooder's calls keep queueing in front of root's:
/// 2 of 100 root opens missed their 2 s deadline (BENCHMARKS.md, "dbus-daemon or
/// dbus-broker"). Run with `--ignored` to see it.
#[test]
#[ignore = "under dbus-broker a user's flood holds root's bus calls past their deadline (no per-connection reply limit)"]
fn a_users_flood_through_dbus_broker_leaves_roots_pam_calls_within_their_deadline() {
    require_root!();
    flood_on_the_bus(BusKind::DbusBroker);
}

fn flood_on_the_bus(kind: BusKind) {
    let mut h = harness();
    h.start_bus_with(BusPolicy::Packaging, kind);
    h.start_vigild(VigildOpts::default());
    let user = h.create_user("login");
    let bus = h.bus_address();
    let service = h.install_vigil_service("root", &h.vigil_args().bus(&bus).fail(Fail::Closed).timeout(MODULE_TIMEOUT));
    let attacker = h.create_user("pipe");
    let run = h.run_pam_host(&h.pam_host(&service, &user.name).cycles(5));
    assert!(run.report().open_rc.all(PAM_SUCCESS), "logins over the bus before the flood: {:?}", run.report());
    let quiet_p50 = run.report().cycle_us.p50;
    let baseline = h.vigild().rss_kib();
    let socket = h.bus().socket().to_str().expect("a UTF-8 path").to_string();
    let mut flood = h.pipeline_as(
        &attacker,
        &["--bus", &socket, "--conns", "16", "--calls", "5000", "--member", "MyStatus", "--read", "--max-secs", "20"],
    );
    let mut watched = watch_flood(&h, &service, &user, &mut flood);
    let report = flood.finish(DROP_DEADLINE);
    eprintln!(
        "bus flood: {} MyStatus calls written, {} answers read in {} ms ({:.0}/s through {kind}); vigild RSS {baseline} KiB \
         before, peak {} KiB; root's open+close over the bus: {quiet_p50} µs p50 before, {} rounds during it with median p50 {} µs, \
         slowest {:?}",
        report.calls_written,
        report.answers_read,
        report.elapsed_ms,
        report.answers_read as f64 * 1000.0 / report.elapsed_ms.max(1) as f64,
        watched.peak_rss_kib,
        watched.rounds,
        median(&mut watched.cycle_p50_us),
        watched.slowest_cycle
    );
    assert_eq!(report.connected, 16, "{report:?}");
    assert!(watched.rounds >= 3, "the flood lasted long enough to log in during it: {watched:?}");
    assert!(watched.failed.is_empty(), "root's PAM cycles over the bus failed under the flood: {:#?}", watched.failed);
    assert!(watched.slowest_cycle < MODULE_DEADLINE, "root's slowest open+close over the bus took {:?}", watched.slowest_cycle);
    assert!(watched.peak_rss_kib < RSS_CEILING_KIB, "vigild's RSS peaked at {} KiB", watched.peak_rss_kib);
    one_refusal(&h, &attacker, "bus_share", "32");
}
