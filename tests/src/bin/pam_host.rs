//! pam_host: a small PAM application linking the real libpam, for vigil's e2e tests
//! and benchmark.
//!
//! `pam_host --service NAME [--confdir DIR] --user U [--tty T] [--rhost H] [--ruser R] [--cycles N]
//!           [--password P] [--auth] [--account] [--wait-stdin] [--ignore-hup] [--json] [--samples FILE]`
//!
//! pam_start, then (with `--auth`) pam_authenticate and pam_acct_mgmt once, then N
//! cycles of pam_open_session / pam_close_session on the one handle, then pam_end.
//! close_session runs only after a successful open_session, as in sshd and login.
//! With `--account` the N cycles are pam_acct_mgmt calls instead (no session is
//! opened; each call timed alone, pam_start and pam_end outside the times), for the
//! benchmark of the account stage (`bench_pam --account`).
//! With `--wait-stdin` each cycle prints `OPEN <rc> <VIGIL_SESSION_ID or ->`, waits for
//! one line on stdin, closes and prints `CLOSED <rc or ->`. With `--json` the last
//! stdout line is a `vigil_e2e::PamHostReport`. With `--samples FILE` (for the
//! benchmark, `bench_pam`) each cycle's open+close (with `--account`: pam_acct_mgmt) time in µs is written to FILE, one
//! per line in cycle order, after pam_end and the descriptor count. Exit 0 whenever it
//! ran, whatever PAM returned (the report says); 1 when FILE cannot be written; 2 for
//! bad arguments.

#[path = "pam_host/census.rs"]
mod census;
#[path = "pam_host/conv.rs"]
mod conv;
#[path = "pam_host/ffi.rs"]
mod ffi;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsString, c_int};
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::time::Instant;

use clap::Parser;
use vigil_e2e::report::{AuthReport, FIRST_N, PamHostReport, RcSummary, Stats};

use census::Census;
use conv::ConvState;
use ffi::PamHandle;

#[derive(Parser, Debug)]
#[command(name = "pam_host", about = "Drive a PAM service through real libpam")]
struct Cli {
    /// PAM service (a file in /etc/pam.d).
    #[arg(long)]
    service: String,
    /// Read the service file from this directory (pam_start_confdir): a test plays a
    /// service whose /etc/pam.d file it must not write (`systemd-user`).
    #[arg(long)]
    confdir: Option<std::path::PathBuf>,
    /// PAM_USER (any bytes but NUL: PAM items are C strings, not necessarily UTF-8).
    #[arg(long)]
    user: OsString,
    /// PAM_TTY.
    #[arg(long)]
    tty: Option<OsString>,
    /// PAM_RHOST.
    #[arg(long)]
    rhost: Option<OsString>,
    /// PAM_RUSER.
    #[arg(long)]
    ruser: Option<OsString>,
    /// Answer to every prompt; without it a prompt fails the conversation.
    #[arg(long)]
    password: Option<String>,
    /// open_session + close_session cycles on one handle.
    #[arg(long, default_value_t = 1)]
    cycles: u32,
    /// Run pam_authenticate and pam_acct_mgmt once before the sessions.
    #[arg(long)]
    auth: bool,
    /// The cycles are pam_acct_mgmt calls, each timed alone; no session is opened.
    #[arg(long, conflicts_with = "wait_stdin")]
    account: bool,
    /// Ignore SIGHUP, as a login's leader that outlives it does: a session vigild ends
    /// as soon as it registers (a locked user's) then still prints its OPEN line, and is
    /// ended by the SIGKILL after kill_grace.
    #[arg(long)]
    ignore_hup: bool,
    /// Print OPEN after each open_session and wait for a line on stdin before closing.
    #[arg(long)]
    wait_stdin: bool,
    /// Print the JSON report as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Write each cycle's open+close (or pam_acct_mgmt) time (µs, one per line) to this file at the end.
    #[arg(long, value_name = "FILE")]
    samples: Option<std::path::PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    if cli.ignore_hup {
        // SAFETY: SIG_IGN installs no handler; nothing else in this process set one.
        let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGHUP, nix::sys::signal::SigHandler::SigIgn) };
    }
    let mut samples = Vec::new();
    let report = run(&cli, &mut samples);
    if let Some(path) = &cli.samples {
        let text: String = samples.iter().map(|us| format!("{us}\n")).collect();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("pam_host: cannot write --samples {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    if cli.json {
        println!("{}", serde_json::to_string(&report).expect("the report serializes"));
    } else {
        println!(
            "start_rc={} open_rc={:?} close_rc={:?} session_ids={:?} threads {}->{} fds {}->{} cycle_us p50={} p99={} max={}",
            report.start_rc,
            report.open_rc.counts,
            report.close_rc.counts,
            report.session_ids,
            report.threads_before,
            report.threads_after,
            report.fds_before,
            report.fds_after,
            report.cycle_us.p50,
            report.cycle_us.p99,
            report.cycle_us.max,
        );
    }
}

fn cstring(what: &str, s: impl Into<Vec<u8>>) -> CString {
    CString::new(s).unwrap_or_else(|_| {
        eprintln!("pam_host: {what} contains a NUL byte");
        std::process::exit(2)
    })
}

/// `samples` receives each cycle's open+close time (µs), in cycle order.
fn run(cli: &Cli, samples: &mut Vec<u64>) -> PamHostReport {
    let mut report = PamHostReport {
        pid: std::process::id(),
        service: cli.service.clone(),
        user: cli.user.to_string_lossy().into_owned(),
        cycles: cli.cycles,
        ..PamHostReport::default()
    };
    let service = cstring("--service", cli.service.as_str());
    let user = cstring("--user", cli.user.as_bytes());
    let confdir = cli.confdir.as_ref().map(|d| cstring("--confdir", d.as_os_str().as_bytes()));
    let items: Vec<(c_int, CString)> = [(ffi::PAM_TTY, &cli.tty), (ffi::PAM_RHOST, &cli.rhost), (ffi::PAM_RUSER, &cli.ruser)]
        .into_iter()
        .filter_map(|(item, value)| value.as_ref().map(|v| (item, cstring("an item", v.as_bytes()))))
        .collect();
    let env_name = c"VIGIL_SESSION_ID";
    let mut conv_state = ConvState::new(cli.password.as_deref());
    let conv = conv_state.pam_conv();
    let mut rcs_seen: Vec<c_int> = Vec::new();

    let before = Census::take();
    let started = Instant::now();
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and a conversation that outlives the handle.
    report.start_rc = match &confdir {
        Some(dir) => unsafe { ffi::pam_start_confdir(service.as_ptr(), user.as_ptr(), &conv, dir.as_ptr(), &mut pamh) },
        None => unsafe { ffi::pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) },
    };
    rcs_seen.push(report.start_rc);
    if report.start_rc == ffi::PAM_SUCCESS {
        for (item, value) in &items {
            // SAFETY: pamh is live; libpam copies string items.
            let rc = unsafe { ffi::pam_set_item(pamh, *item, value.as_ptr().cast()) };
            if rc != ffi::PAM_SUCCESS {
                eprintln!("pam_host: pam_set_item({item}) returned {rc}");
            }
        }
        if cli.auth {
            report.auth = Some(authenticate(pamh, &mut rcs_seen));
        }
        if cli.account {
            let mut acct_rc = RcSummary::default();
            let mut acct_us = Vec::with_capacity(cli.cycles as usize);
            let mut last_rc = ffi::PAM_SUCCESS;
            for _ in 0..cli.cycles {
                let t0 = Instant::now();
                // SAFETY: pamh is live.
                let rc = unsafe { ffi::pam_acct_mgmt(pamh, 0) };
                acct_us.push(t0.elapsed().as_micros() as u64);
                acct_rc.record(rc);
                rcs_seen.push(rc);
                last_rc = rc;
            }
            report.acct_rc = acct_rc;
            report.acct_us = Stats::from_samples(&acct_us);
            *samples = acct_us;
            report.rc_text = rc_text(pamh, &rcs_seen);
            // SAFETY: pamh is live and not used after this.
            report.end_rc = Some(unsafe { ffi::pam_end(pamh, last_rc) });
            return finish(report, before, started, &mut conv_state);
        }
        let mut last_rc = ffi::PAM_SUCCESS;
        let (mut open_us, mut close_us, mut cycle_us) = (Vec::new(), Vec::new(), Vec::new());
        let mut open_rc = RcSummary::default();
        let mut close_rc = RcSummary::default();
        for cycle in 0..cli.cycles {
            let t0 = Instant::now();
            // SAFETY: pamh is live.
            let rc = unsafe { ffi::pam_open_session(pamh, 0) };
            let opened = t0.elapsed();
            open_rc.record(rc);
            rcs_seen.push(rc);
            last_rc = rc;
            // SAFETY: pamh is live; the returned string belongs to libpam, copied at once.
            let id = unsafe {
                let p = ffi::pam_getenv(pamh, env_name.as_ptr());
                (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
            };
            if (cycle as usize) < FIRST_N {
                report.session_ids.push(id.clone());
            }
            if cli.wait_stdin {
                say(&format!("OPEN {rc} {}", id.as_deref().unwrap_or("-")));
                wait_for_line();
            }
            let t1 = Instant::now();
            let closed = if rc == ffi::PAM_SUCCESS {
                // SAFETY: pamh is live.
                let crc = unsafe { ffi::pam_close_session(pamh, 0) };
                close_rc.record(crc);
                rcs_seen.push(crc);
                last_rc = crc;
                Some(crc)
            } else {
                None
            };
            let close_time = t1.elapsed();
            if cli.wait_stdin {
                say(&format!("CLOSED {}", closed.map_or("-".to_string(), |c| c.to_string())));
            }
            open_us.push(opened.as_micros() as u64);
            if closed.is_some() {
                close_us.push(close_time.as_micros() as u64);
            }
            cycle_us.push((opened + close_time).as_micros() as u64);
        }
        report.open_rc = open_rc;
        report.close_rc = close_rc;
        report.open_us = Stats::from_samples(&open_us);
        report.close_us = Stats::from_samples(&close_us);
        report.cycle_us = Stats::from_samples(&cycle_us);
        *samples = cycle_us;
        report.rc_text = rc_text(pamh, &rcs_seen);
        // SAFETY: pamh is live and not used after this.
        report.end_rc = Some(unsafe { ffi::pam_end(pamh, last_rc) });
    } else {
        report.rc_text = rc_text(ptr::null_mut(), &rcs_seen);
    }
    finish(report, before, started, &mut conv_state)
}

/// The run's wall time, the census after pam_end and the conversation's messages.
fn finish(mut report: PamHostReport, before: Census, started: Instant, conv_state: &mut ConvState) -> PamHostReport {
    report.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    let after = Census::take();
    report.threads_before = before.threads.len() as u32;
    report.threads_after = after.threads.len() as u32;
    report.new_threads = after.new_threads(&before);
    report.fds_before = before.fds.len() as u32;
    report.fds_after = after.fds.len() as u32;
    report.new_fds = after.new_fds(&before);
    report.messages = std::mem::take(&mut conv_state.messages);
    if let Some(auth) = report.auth.as_mut() {
        auth.prompts = std::mem::take(&mut conv_state.prompts);
    }
    report
}

fn authenticate(pamh: *mut PamHandle, rcs_seen: &mut Vec<c_int>) -> AuthReport {
    // SAFETY: pamh is live.
    let authenticate_rc = unsafe { ffi::pam_authenticate(pamh, 0) };
    rcs_seen.push(authenticate_rc);
    let acct_mgmt_rc = (authenticate_rc == ffi::PAM_SUCCESS).then(|| {
        // SAFETY: pamh is live.
        let rc = unsafe { ffi::pam_acct_mgmt(pamh, 0) };
        rcs_seen.push(rc);
        rc
    });
    AuthReport { authenticate_rc, acct_mgmt_rc, prompts: Vec::new() }
}

/// pam_strerror for each distinct code (pamh may be null: libpam accepts that).
fn rc_text(pamh: *mut PamHandle, rcs: &[c_int]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for &rc in rcs {
        out.entry(rc.to_string()).or_insert_with(|| {
            // SAFETY: pam_strerror returns a static string (or null).
            let p = unsafe { ffi::pam_strerror(pamh, rc) };
            if p.is_null() { String::new() } else { unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned() }
        });
    }
    out
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One line from stdin (end of input counts as a line).
fn wait_for_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}
