//! docs/fleet.md, "Forwarding that loses nothing": the host's rsyslogd forwards vigild's
//! trail over RELP through a disk-assisted queue to a second rsyslogd, the central log
//! host, both configured with the document's own blocks. The center is killed (SIGKILL)
//! and started again 30 s later while logins go on; every record of the host then
//! reaches the center's file for the host, in order, with no gap, and `vigilctl audit
//! verify` and `audit report` over that file say so, counting any record RELP sent
//! twice. A copy appended by hand shows the count when no copy came by itself.
//!
//! Needs root, the release build and the Debian package `rsyslog-relp` (tests/run.sh
//! installs it).

use std::path::Path;
use std::time::{Duration, Instant};

use vigil_e2e::logs::read_log;
use vigil_e2e::process::describe_output;
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{Harness, LogLine, VigildOpts, require_root, wait_for};

const CONFIG: &str = "[defaults]\n\n[audit]\nformat = \"kv\"\nchain = true\n";
/// How long the center stays down.
const OUTAGE: Duration = Duration::from_secs(30);
/// Logins while it is down: one about every half second, at most this many.
const MAX_LOGINS_DURING: u32 = 120;
const LOGIN_PAUSE: Duration = Duration::from_millis(500);
/// Bound on the queue reaching the center once it is back (rsyslog waits longer between
/// retries after every ten failures: a few seconds after a 30 s outage).
const DELIVERY_WAIT: Duration = Duration::from_secs(90);
const LOG_WAIT: Duration = Duration::from_secs(10);

#[test]
fn records_written_while_the_center_is_down_arrive_in_order_when_it_is_back() {
    require_root!();
    let started = Instant::now();
    let mut h = Harness::new();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_relp_center();
    h.start_rsyslog_forwarding_relp();
    h.start_vigild(VigildOpts::default().no_bus().config(CONFIG));
    let user = h.create_user("relp");
    let service = h.install_vigil_service("relp", &h.vigil_args());
    let host_log = h.rsyslog().auth_log_path().to_path_buf();

    for _ in 0..3 {
        login(&h, &service, &user.name);
    }
    let before = last_record(&host_log);
    let host = host_name(&before);
    let center = h.relp_center_file(&host);
    wait_for_seq(&center, seq(&before), LOG_WAIT);

    h.central_rsyslog().kill();
    let down = Instant::now();
    let mut during = 0;
    while down.elapsed() < OUTAGE && during < MAX_LOGINS_DURING {
        login(&h, &service, &user.name);
        during += 1;
        std::thread::sleep(LOGIN_PAUSE);
    }
    let written_while_down = seq(&last_record(&host_log)) - seq(&before);
    assert!(written_while_down >= 20, "only {written_while_down} records in {during} logins during the outage");
    assert!(vigild_lines(&center).iter().all(|l| seq(l) <= seq(&before)), "nothing can reach a center that is down: {}", center.display());
    h.central_rsyslog().start();
    eprintln!("center down {:.1} s, {during} logins, {written_while_down} records meanwhile", down.elapsed().as_secs_f64());

    for _ in 0..3 {
        login(&h, &service, &user.name);
    }
    let out = h.vigild().vigilctl(&["audit", "seal"]);
    assert!(out.status.success(), "vigilctl audit seal: {}", describe_output(&out));
    let sealed = h.wait_for_event(LOG_WAIT, "vigild", "seal", &[]);
    let back = Instant::now();
    wait_for_seq(&center, seq(&sealed), DELIVERY_WAIT);
    eprintln!("the queue reached the center {:.1} s after the seal", back.elapsed().as_secs_f64());

    // Every record of the host, in the host's order, and nothing else but exact copies.
    let host_records: Vec<String> = vigild_lines(&host_log).into_iter().map(|l| l.message).collect();
    let copies = assert_arrived_in_order(&host_records, &vigild_lines(&center));
    eprintln!("{} records of the host, {copies} delivered twice", host_records.len());

    let key = h.vigild().state_dir().join("audit").join("audit-initial.key");
    assert_verifies_with_duplicates(&h, &center, &key, copies);
    assert_report_counts(&h, &center, &key, host_records.len() as u64, copies);

    // An exact copy of the last record appended by hand: one more, accepted and counted;
    // the same seq with other content is an edit.
    let text = std::fs::read_to_string(&center).expect("the center's file");
    let last_line = last_record(&center).raw;
    let copied = h.path("center-with-copy.log");
    std::fs::write(&copied, format!("{text}{last_line}\n")).expect("write the copy");
    assert_verifies_with_duplicates(&h, &copied, &key, copies + 1);
    assert_report_counts(&h, &copied, &key, host_records.len() as u64, copies + 1);
    let edited = h.path("center-with-edit.log");
    let changed = last_line.replacen(" last_seq=", " last_seq=1", 1);
    assert_ne!(changed, last_line);
    std::fs::write(&edited, format!("{text}{changed}\n")).expect("write the edit");
    let out = verify(&h, &edited, &key);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", describe_output(&out));
    assert!(stdout.contains("FAIL: edited or forged"), "{stdout}");
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());
}

/// One open and close through real libpam.
fn login(h: &Harness, service: &str, user: &str) {
    let run = h.run_pam_host(&h.pam_host(service, user));
    let r = run.report();
    assert!(r.open_rc.all(PAM_SUCCESS) && r.close_rc.all(PAM_SUCCESS), "{r:?}\nstderr:\n{}", run.stderr);
}

fn vigild_lines(path: &Path) -> Vec<LogLine> {
    read_log(path).into_iter().filter(|l| l.tag == "vigild").collect()
}

#[track_caller]
fn last_record(path: &Path) -> LogLine {
    vigild_lines(path).pop().unwrap_or_else(|| panic!("no vigild record in {}", path.display()))
}

#[track_caller]
fn seq(line: &LogLine) -> u64 {
    line.field("seq").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no seq: {}", line.raw))
}

/// The host name of a line in rsyslog's traditional format (`Mmm dd hh:mm:ss HOST tag:`).
fn host_name(line: &LogLine) -> String {
    line.raw.get(16..).and_then(|rest| rest.split(' ').next()).unwrap_or_else(|| panic!("no host: {}", line.raw)).to_owned()
}

#[track_caller]
fn wait_for_seq(path: &Path, wanted: u64, timeout: Duration) {
    wait_for(timeout, &format!("seq {wanted} in {}", path.display()), || {
        let lines = vigild_lines(path);
        if lines.iter().any(|l| l.field("seq").and_then(|s| s.parse().ok()) == Some(wanted)) {
            return Ok(());
        }
        Err(format!("{} vigild lines; last: {:?}", lines.len(), lines.last().map(|l| &l.raw)))
    });
}

/// The center's records are the host's, in order, each once, apart from exact copies of
/// records already there; returns how many copies.
#[track_caller]
fn assert_arrived_in_order(host: &[String], center: &[LogLine]) -> u64 {
    let mut next = 0;
    let mut copies = 0;
    for (index, line) in center.iter().enumerate() {
        if host.get(next) == Some(&line.message) {
            next += 1;
        } else if host[..next].contains(&line.message) {
            copies += 1;
        } else {
            panic!("center record {index} is neither the host's next record ({:?}) nor a copy: {}", host.get(next), line.raw);
        }
    }
    assert_eq!(next, host.len(), "the center misses the host's records from {:?} on", host.get(next));
    copies
}

fn verify(h: &Harness, file: &Path, key: &Path) -> std::process::Output {
    h.vigild().vigilctl(&["audit", "verify", "--key", path_str(key), path_str(file)])
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[track_caller]
fn assert_verifies_with_duplicates(h: &Harness, file: &Path, key: &Path, copies: u64) {
    let out = verify(h, file, key);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("verify {}:\n{stdout}", file.display());
    assert!(out.status.success(), "{} must verify: {}", file.display(), describe_output(&out));
    assert!(!stdout.contains("missing seqs") && !stdout.contains("FAIL"), "{stdout}");
    let result = stdout.lines().last().unwrap_or_default();
    if copies == 0 {
        assert_eq!(result, "result: OK: every vigild record verifies", "{stdout}");
    } else {
        let copy = if copies == 1 { "copy" } else { "copies" };
        assert!(stdout.contains(&format!("  duplicates: {copies} exact {copy} of records verified just before")), "{stdout}");
        assert_eq!(result, format!("result: OK: every vigild record verifies (duplicates: {copies} skipped)"), "{stdout}");
    }
}

#[track_caller]
fn assert_report_counts(h: &Harness, file: &Path, key: &Path, records: u64, copies: u64) {
    let out = h.vigild().vigilctl(&["audit", "report", "--json", "--key", path_str(key), path_str(file)]);
    assert!(out.status.success(), "{}", describe_output(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe_output(&out)));
    let hosts = report["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1, "{report}");
    let host = &hosts[0];
    assert_eq!(
        (host["records"].as_u64(), host["missing_seqs"].as_u64(), host["duplicates"].as_u64()),
        (Some(records), Some(0), Some(copies)),
        "{host}"
    );
    let verified = &host["verified"];
    assert_eq!(
        (verified["authentic"].as_u64(), verified["missing_seqs"].as_u64(), verified["failures"].as_u64(), verified["duplicates"].as_u64()),
        (Some(records), Some(0), Some(0), Some(copies)),
        "{host}"
    );
}
