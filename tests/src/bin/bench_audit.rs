//! bench_audit: audit records per second through vigild's writer into a real rsyslogd,
//! and `verify` throughput.
//!
//! `bench_audit [--records N (200000)] [--verify-lines M (1000000)]`
//!
//! One harness: its rsyslogd only (imuxsock on the harness's socket, authpriv to
//! auth.log and everything to all.log, rate limiting off). No vigild: the bench drives
//! `vigil_audit::writer::Writer` itself, as vigild does (tag `vigild`, facility authpriv,
//! `key=value` encoding), with its own chain state and spool in the harness directory.
//!
//! 1. Writer, `chain = false` then `chain = true`: N session records (`session_open`
//!    fields plus `run=` and `n=`), written back to back from one thread. Measured: the
//!    rate of `Writer::write` calls, how many records went straight to the socket and how
//!    many to the spool (the socket is non-blocking: when rsyslogd falls behind, records
//!    queue in the spool, as in vigild), the time until the spool is flushed
//!    (`flush_spool` every 10 ms, as vigild's retry does every second), and the time
//!    until the run's last record is in auth.log; then every record of the run is
//!    counted in auth.log (none may be missing). The end-to-end rate is N over that
//!    last time.
//! 2. `verify_files` (what `vigilctl audit verify` runs) on the chained run's records
//!    as rsyslogd wrote them (with the key the writer started), and on 1,000,000-line
//!    sample files (`vigil_audit::sample::write_sample_log`, kv and JSON: nine vigild
//!    records in ten lines) written into the harness directory.
//!
//! stdout is markdown; progress goes to stderr. Needs root (the harness's rsyslogd) and
//! the release build. Everything the harness creates is removed at the end, also on a
//! panic or Ctrl-C.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use vigil_audit::chain::{Encoding, KeyFile};
use vigil_audit::sample::{Layout, sample_key, session_record, write_sample_log};
use vigil_audit::verify::verify_files;
use vigil_audit::writer::{Outcome, Writer, WriterConfig};
use vigil_e2e::Harness;
use vigil_e2e::interrupt::{catch_interrupts, interrupted};
use vigil_protocol::events::Event;

/// Bound on waiting for rsyslogd to write a run's records.
const LAND_TIMEOUT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(10);

#[derive(Parser, Debug)]
#[command(name = "bench_audit", about = "audit records per second through the writer into rsyslogd; verify throughput")]
struct Cli {
    /// Records per writer run.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Lines of each sample file verified.
    #[arg(long, default_value_t = 1_000_000)]
    verify_lines: u64,
}

struct WriterRow {
    chain: bool,
    records: u64,
    write_s: f64,
    sent: u64,
    spooled: u64,
    dropped: u64,
    flushed_s: f64,
    landed_s: f64,
    in_file: u64,
    bytes: u64,
}

struct VerifyRow {
    what: String,
    lines: u64,
    records: u64,
    bytes: u64,
    seconds: f64,
    clean: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !vigil_e2e::is_root() {
        eprintln!("bench_audit: needs root (the harness starts its own rsyslogd); run it with sudo");
        return ExitCode::from(1);
    }
    if cli.records == 0 || cli.verify_lines < 2 {
        eprintln!("bench_audit: --records must be at least 1 and --verify-lines at least 2");
        return ExitCode::from(2);
    }
    catch_interrupts();
    let load_before = load1();
    let Some((writers, verifies)) = bench(&cli) else {
        eprintln!("bench_audit: interrupted; the harness has cleaned up");
        return ExitCode::from(130);
    };
    print_tables(&cli, &writers, &verifies, &load_before, &load1());
    let complete = writers.iter().all(|w| w.in_file == w.records && w.dropped == 0);
    if complete && verifies.iter().all(|v| v.clean) {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench_audit: records missing from auth.log, or a file did not verify (see the tables)");
        ExitCode::from(1)
    }
}

fn bench(cli: &Cli) -> Option<(Vec<WriterRow>, Vec<VerifyRow>)> {
    let h = Harness::with_syslog();
    let auth = h.path("auth.log");
    let mut writers = Vec::new();
    let mut verifies = Vec::new();
    let mut chain_part = None;
    for chain in [false, true] {
        let start_offset = file_len(&auth);
        let (row, key) = writer_run(&h, cli.records, chain)?;
        eprintln!(
            "bench_audit: chain={chain}: {} records, write {:.2} s, in auth.log after {:.2} s",
            row.records, row.write_s, row.landed_s
        );
        if chain {
            chain_part = Some((start_offset, key.expect("a new chain gives its key")));
        }
        writers.push(row);
    }

    // verify: the chained run as rsyslogd wrote it.
    let (offset, key) = chain_part?;
    let part = h.path("auth-chain-run.log");
    copy_from(&auth, offset, &part);
    verifies.push(verify_row(&format!("the chained run in auth.log (traditional format, kv; {} records)", cli.records), &part, &key)?);
    let _ = std::fs::remove_file(&part);

    // verify: sample files.
    for (label, encoding) in [("kv", Encoding::KeyValue), ("JSON", Encoding::Json)] {
        if interrupted() {
            return None;
        }
        let path = h.path(&format!("sample-{label}.log"));
        let key = sample_key(1);
        let file = File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let sealed = write_sample_log(file, cli.verify_lines, Layout::Traditional, encoding, &key)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("bench_audit: wrote {} ({} lines, {sealed} records)", path.display(), cli.verify_lines);
        verifies.push(verify_row(&format!("write_sample_log, traditional format, {label}"), &path, &key)?);
        let _ = std::fs::remove_file(&path);
    }
    Some((writers, verifies))
}

/// One writer run into the harness's rsyslogd. Returns the row and, with the chain,
/// the starting key.
fn writer_run(h: &Harness, records: u64, chain: bool) -> Option<(WriterRow, Option<KeyFile>)> {
    let label = if chain { "chain" } else { "nochain" };
    let auth = h.path("auth.log");
    let config = WriterConfig {
        syslog_socket: h.log_socket(),
        encoding: Encoding::KeyValue,
        state_dir: Some(h.path(&format!("writer-{label}"))),
        chain,
        spool_max_bytes: 1 << 30,
        echo_stderr: false,
        tag: "vigild".into(),
    };
    let (mut writer, key) = Writer::open(config).unwrap_or_else(|e| panic!("Writer::open: {e}"));
    let start_offset = file_len(&auth);
    let (mut sent, mut spooled, mut dropped) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    for n in 0..records {
        let record = session_record(Event::SessionOpen, n + 1, "alice").text("exempt", "no").text("run", label).number("n", n);
        match writer.write(&record) {
            Outcome::Sent => sent += 1,
            Outcome::Spooled => spooled += 1,
            Outcome::Dropped => dropped += 1,
        }
        if n % 4096 == 0 && interrupted() {
            return None;
        }
    }
    let write_s = start.elapsed().as_secs_f64();
    // The spool, as vigild's retry task flushes it (here every 10 ms instead of 1 s).
    while !writer.flush_spool() {
        if interrupted() || start.elapsed() > LAND_TIMEOUT {
            panic!("bench_audit: the spool did not empty within {LAND_TIMEOUT:?} ({} bytes left)", writer.spooled_bytes());
        }
        sleep(POLL);
    }
    let flushed_s = start.elapsed().as_secs_f64();
    let last = format!("run={label} n={}", records - 1);
    loop {
        if tail_has(&auth, &last) {
            break;
        }
        if interrupted() {
            return None;
        }
        if start.elapsed() > LAND_TIMEOUT {
            panic!("bench_audit: {last} not in {} within {LAND_TIMEOUT:?}", auth.display());
        }
        sleep(POLL);
    }
    let landed_s = start.elapsed().as_secs_f64();
    let (in_file, bytes) = count_run(&auth, start_offset, label);
    Some((WriterRow { chain, records, write_s, sent, spooled, dropped, flushed_s, landed_s, in_file, bytes }, key))
}

fn verify_row(what: &str, path: &Path, key: &KeyFile) -> Option<VerifyRow> {
    if interrupted() {
        return None;
    }
    let bytes = file_len(path);
    let start = Instant::now();
    let report =
        verify_files(&[path.to_path_buf()], std::slice::from_ref(key)).unwrap_or_else(|e| panic!("verify {}: {e}", path.display()));
    let seconds = start.elapsed().as_secs_f64();
    let lines = report.files.first().map_or(0, |f| f.lines);
    let records = report.hosts.iter().map(|h| h.authentic).sum();
    if !report.is_clean() {
        eprintln!("bench_audit: {} did not verify:\n{}", path.display(), report.render());
    }
    eprintln!("bench_audit: verify {}: {lines} lines in {seconds:.2} s", path.display());
    Some(VerifyRow { what: what.to_string(), lines, records, bytes, seconds, clean: report.is_clean() })
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// True when the last 64 KiB of `path` hold `needle` followed by a space or line end.
fn tail_has(path: &Path, needle: &str) -> bool {
    let Ok(mut file) = File::open(path) else { return false };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(64 * 1024);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut tail).is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&tail);
    text.match_indices(needle).any(|(i, _)| matches!(text.as_bytes().get(i + needle.len()), Some(b' ' | b'\n')))
}

/// Lines of run `label` in `path` from byte `offset` on, and their bytes.
fn count_run(path: &Path, offset: u64, label: &str) -> (u64, u64) {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.seek(SeekFrom::Start(offset)).expect("seek");
    let mut text = Vec::new();
    file.read_to_end(&mut text).expect("read");
    let marker = format!(" run={label} ");
    let text = String::from_utf8_lossy(&text);
    let mut count = 0;
    let mut bytes = 0;
    for line in text.lines().filter(|l| l.contains(&marker)) {
        count += 1;
        bytes += line.len() as u64 + 1;
    }
    (count, bytes)
}

fn copy_from(from: &Path, offset: u64, to: &PathBuf) {
    let mut input = File::open(from).unwrap_or_else(|e| panic!("open {}: {e}", from.display()));
    input.seek(SeekFrom::Start(offset)).expect("seek");
    let mut output = File::create(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    std::io::copy(&mut input, &mut output).unwrap_or_else(|e| panic!("copy to {}: {e}", to.display()));
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn print_tables(cli: &Cli, writers: &[WriterRow], verifies: &[VerifyRow], load_before: &str, load_after: &str) {
    let mut command = "target/release/bench_audit".to_string();
    if cli.records != 200_000 {
        command.push_str(&format!(" --records {}", cli.records));
    }
    if cli.verify_lines != 1_000_000 {
        command.push_str(&format!(" --verify-lines {}", cli.verify_lines));
    }
    println!("Command (as root, from the repository): `{command}`");
    println!();
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty =
        if command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() { "" } else { " + uncommitted changes" };
    println!("- date: {} UTC; commit: {commit}{dirty}", command_output("date", &["-u", "+%Y-%m-%d %H:%M"]));
    println!(
        "- machine: {} CPUs (nproc), {}; load average (1 min) {load_before} before, {load_after} after",
        command_output("nproc", &[]),
        command_output("uname", &["-srm"])
    );
    println!(
        "- rsyslogd: {}; the harness's config (imuxsock, rate limiting off, authpriv to auth.log and everything to all.log: each record is written twice)",
        command_output("sh", &["-c", "/usr/sbin/rsyslogd -v | head -1"]).split(" compiled").next().unwrap_or_default().trim()
    );
    println!();
    println!("**Writer → rsyslogd** (`Writer::write` from one thread, kv, {} session records per run):", cli.records);
    println!();
    println!(
        "| chain | records | write() calls/s | sent at once | spooled | dropped | spool empty after | all in auth.log after | in auth.log | **records/s end to end** |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for w in writers {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.2} s | {:.2} s | {} ({:.1} MB) | **{:.0}** |",
            if w.chain { "on" } else { "off" },
            w.records,
            w.records as f64 / w.write_s,
            w.sent,
            w.spooled,
            w.dropped,
            w.flushed_s,
            w.landed_s,
            w.in_file,
            w.bytes as f64 / 1e6,
            w.records as f64 / w.landed_s
        );
    }
    if let Some(w) = writers.iter().find(|w| w.chain) {
        let rate = w.records as f64 / w.landed_s;
        println!();
        println!(
            "Target: ≥ 20,000 records/s with the chain: {:.0} records/s ({}).",
            rate,
            if rate >= 20_000.0 { "met" } else { "**missed**" }
        );
    }
    println!();
    println!("**verify** (`vigil_audit::verify::verify_files`, as `vigilctl audit verify` runs it, one thread):");
    println!();
    println!("| file | lines | records verified | MB | seconds | **lines/s** | records/s | result |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for v in verifies {
        println!(
            "| {} | {} | {} | {:.1} | {:.2} | **{:.0}** | {:.0} | {} |",
            v.what,
            v.lines,
            v.records,
            v.bytes as f64 / 1e6,
            v.seconds,
            v.lines as f64 / v.seconds,
            v.records as f64 / v.seconds,
            if v.clean { "OK" } else { "**FAILED**" }
        );
    }
}
