//! `vigilctl audit show` and `audit report` read a trail in memory that grows with what
//! they print, not with the file: a central log host's trail (40 hosts, sessions
//! interleaved) and a crafted one (every session opened, none closed) are read by the
//! release vigilctl, and the child's peak RSS (wait4's ru_maxrss) must stay under a
//! bound far below what holding the file's records would take.
//!
//! A child's ru_maxrss can start from its parent's resident memory at the exec: this
//! test reads the outputs a line at a time, never whole, and prints its own peak.
//!
//! The figures at scale (10 million lines, a million sessions) are in BENCHMARKS.md,
//! "Audit readers' memory".

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vigil_e2e::audit_trail::{Measured, TrailSpec, TrailStats, run_measured, write_trail};
use vigil_e2e::paths::vigilctl_bin;
use vigil_e2e::tempdir::TestDir;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads `file` with `audit VERB` (stdout to `out`), and returns its cost.
fn read(verb: &str, file: &Path, out: &Path, extra: &[&str]) -> Measured {
    let stdout = std::fs::File::create(out).unwrap();
    vigil_e2e::conformance::vigilctl_ran(&[&["audit", verb][..], extra].concat());
    let mut cmd = Command::new(vigilctl_bin());
    cmd.args(["audit", verb]).arg(file).args(extra).stdin(Stdio::null()).stdout(stdout);
    let measured = run_measured(&mut cmd, RUN_TIMEOUT).unwrap();
    assert!(measured.success, "vigilctl audit {verb} {} failed", file.display());
    measured
}

fn trail(dir: &Path, name: &str, spec: TrailSpec) -> (std::path::PathBuf, TrailStats) {
    let path = dir.join(name);
    let stats = write_trail(std::fs::File::create(&path).unwrap(), spec).unwrap();
    (path, stats)
}

/// The first number of the first line of `out` that starts with `prefix`, or of its
/// last line (`show`'s summary) when `prefix` is empty. Read a line at a time.
fn number_on_line(out: &Path, prefix: &str) -> u64 {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(std::fs::File::open(out).unwrap());
    let mut found = String::new();
    for line in reader.lines() {
        let line = line.unwrap();
        if prefix.is_empty() || line.starts_with(prefix) {
            found = line;
            if !prefix.is_empty() {
                break;
            }
        }
    }
    let rest = found.strip_prefix(prefix).unwrap_or(&found);
    rest.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no number on the line: {found}"))
}

fn own_peak_kib() -> u64 {
    // SAFETY: a plain C struct the call fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as u64
}

#[test]
fn a_fleets_trail_is_read_in_bounded_memory() {
    let dir = TestDir::create();
    // About 120 MB of records: holding them, as a reader that keeps the file would,
    // takes over a gigabyte.
    let spec = TrailSpec { lines: 400_000, sessions: 40_000, hosts: 40, never_closed: false };
    let (file, stats) = trail(dir.path(), "fleet.log", spec);
    let out = dir.path().join("out");
    let show = read("show", &file, &out, &[]);
    assert_eq!(number_on_line(&out, ""), stats.sessions_opened, "every session is shown");
    let report = read("report", &file, &out, &[]);
    assert_eq!(number_on_line(&out, "total"), stats.sessions_opened, "every login is counted");
    eprintln!("{} bytes: show {show:?}, report {report:?}; this test's own peak {} KiB", stats.bytes, own_peak_kib());
    assert!(show.max_rss_kib < 64 * 1024, "show took {} KiB for a {} byte trail", show.max_rss_kib, stats.bytes);
    assert!(report.max_rss_kib < 48 * 1024, "report took {} KiB for a {} byte trail", report.max_rss_kib, stats.bytes);
}

#[test]
fn sessions_never_closed_cost_a_few_bytes_each() {
    let dir = TestDir::create();
    let spec = TrailSpec { lines: 100_040, sessions: 100_000, hosts: 40, never_closed: true };
    let (file, stats) = trail(dir.path(), "open.log", spec);
    let out = dir.path().join("out");
    let show = read("show", &file, &out, &[]);
    assert_eq!(number_on_line(&out, ""), stats.sessions_opened);
    let report = read("report", &file, &out, &[]);
    assert_eq!(number_on_line(&out, "total"), stats.sessions_opened);
    eprintln!("{} bytes: show {show:?}, report {report:?}; this test's own peak {} KiB", stats.bytes, own_peak_kib());
    // A session that stays open keeps its state to the end: a few hundred bytes each.
    assert!(show.max_rss_kib < 64 * 1024, "show took {} KiB", show.max_rss_kib);
    assert!(report.max_rss_kib < 64 * 1024, "report took {} KiB", report.max_rss_kib);
}
