//! bench_reauth: what a cached re-authentication decision adds to sudo (issue 4's
//! benchmark). Measured, never asserted.
//!
//! `bench_reauth [--n 1000] [--cold 200] [--password-runs 30]`
//!
//! Inside a harness (rsyslogd, vigild on its private socket, a test user, no sshd): a
//! *leader* process (this program again, as root) opens a vigil session for the user
//! through a `session required pam_vigil.so` service, as sshd's `[priv]` process does
//! for a login; its child, the *worker*, runs with real uid = the user and effective uid
//! = root, as sudo does, and drives the sudo-like stack of the e2e tests
//! (`vigil_e2e::sudo::reauth_stack`) through real libpam:
//!
//! 1. one transaction with the password (vigild says `none`, pam_unix checks the
//!    password, the account hook records the proof);
//! 2. `--n` warm transactions in the worker — `pam_start`, `pam_authenticate`,
//!    `pam_acct_mgmt`, `pam_end` — with the proof fresh (vigild says `fresh`: no prompt;
//!    the conversation has no password, so a prompt would fail), alternating in 10
//!    blocks with the same stack with `pam_permit.so` in place of every pam_vigil line;
//! 3. `--cold` transactions each in a new process (a real sudo is a new process: libpam
//!    loads pam_vigil.so for the first time in it), vigil and baseline alternating;
//! 4. `--password-runs` transactions of Debian's `common-auth` shape (pam_unix checks
//!    the password every time): what each sudo costs when it always asks, minus the human.
//!
//! vigild runs with `reauth_window = "1h"`, `reauth_after_idle = "0"` (the session has
//! no tty, so it never shows activity). Needs root and the release build.

#[allow(dead_code)]
#[path = "pam_host/conv.rs"]
mod conv;
#[allow(dead_code)]
#[path = "pam_host/ffi.rs"]
mod ffi;

use std::ffi::{CStr, CString};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::ptr;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::{Deserialize, Serialize};
use vigil_e2e::sudo::{reauth_stack, reauth_stack_baseline};
use vigil_e2e::{Harness, PamStack, Stats, VigildOpts, paths};

use conv::ConvState;

const PASSWORD_ENV: &str = "VIGIL_BENCH_PASSWORD";
/// Deadline for the whole worker (bounded even if vigild hangs: each call has 1 s).
const WORKER_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Parser, Debug, Clone)]
#[command(name = "bench_reauth", about = "Latency of a cached re-authentication decision (pam_authenticate) vs pam_permit")]
struct Args {
    /// Warm transactions per stack (in one process).
    #[arg(long, default_value_t = 1000)]
    n: u32,
    /// Transactions per stack, each in a new process.
    #[arg(long, default_value_t = 200)]
    cold: u32,
    /// Transactions where pam_unix checks the password.
    #[arg(long, default_value_t = 30)]
    password_runs: u32,
    #[arg(long, hide = true)]
    role: Option<String>,
    #[arg(long, hide = true)]
    user: Option<String>,
    #[arg(long, hide = true)]
    uid: Option<u32>,
    #[arg(long, hide = true)]
    session_service: Option<String>,
    #[arg(long, hide = true)]
    reauth_service: Option<String>,
    #[arg(long, hide = true)]
    baseline_service: Option<String>,
    #[arg(long, hide = true)]
    unix_service: Option<String>,
    /// For role cold-one: the service of its one transaction.
    #[arg(long, hide = true)]
    service: Option<String>,
}

/// One PAM transaction, timed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Txn {
    auth_us: u64,
    txn_us: u64,
    auth_rc: i32,
    acct_rc: i32,
    prompts: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Results {
    prove: Option<Txn>,
    warm_vigil: Vec<Txn>,
    warm_baseline: Vec<Txn>,
    cold_vigil: Vec<Txn>,
    cold_baseline: Vec<Txn>,
    password: Vec<Txn>,
}

fn main() {
    let args = Args::parse();
    match args.role.as_deref() {
        None => orchestrate(&args),
        Some("leader") => std::process::exit(leader(&args)),
        Some("worker") => worker(&args),
        Some("cold-one") => {
            let t = transaction(args.service.as_deref().expect("--service"), args.user.as_deref().expect("--user"), None);
            println!("{}", serde_json::to_string(&t).unwrap());
        }
        Some(other) => {
            eprintln!("bench_reauth: unknown role {other}");
            std::process::exit(2);
        }
    }
}

// ---- the PAM transaction --------------------------------------------------------------

fn cstring(s: &str) -> CString {
    CString::new(s).expect("no NUL byte")
}

/// pam_start, pam_authenticate, pam_acct_mgmt (if auth succeeded), pam_end.
fn transaction(service: &str, user: &str, password: Option<&str>) -> Txn {
    let (service, user) = (cstring(service), cstring(user));
    let mut state = ConvState::new(password);
    let conv = state.pam_conv();
    let mut pamh: *mut ffi::PamHandle = ptr::null_mut();
    let t0 = Instant::now();
    // SAFETY: valid strings; the conversation state outlives the handle.
    let rc = unsafe { ffi::pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) };
    assert_eq!(rc, ffi::PAM_SUCCESS, "pam_start");
    let t1 = Instant::now();
    // SAFETY: pamh is live.
    let auth_rc = unsafe { ffi::pam_authenticate(pamh, 0) };
    let auth_us = t1.elapsed().as_micros() as u64;
    // SAFETY: pamh is live.
    let acct_rc = if auth_rc == ffi::PAM_SUCCESS { unsafe { ffi::pam_acct_mgmt(pamh, 0) } } else { -1 };
    // SAFETY: pamh is live and not used afterwards.
    unsafe { ffi::pam_end(pamh, if acct_rc == ffi::PAM_SUCCESS { acct_rc } else { auth_rc }) };
    let txn_us = t0.elapsed().as_micros() as u64;
    Txn { auth_us, txn_us, auth_rc, acct_rc, prompts: state.prompts.len() as u32 }
}

// ---- orchestration (root, with the harness) ------------------------------------------

fn orchestrate(args: &Args) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bench_reauth: needs root (vigild answers re-authentication for root callers only)");
        std::process::exit(1);
    }
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus().config(
        "[defaults]\nidle_timeout = \"1h\"\nreauth_window = \"1h\"\nreauth_after_idle = \"0\"\n\
         sensitive_services = [\"vigil-test-reauth-*\"]\n",
    ));
    let user = h.create_user("bench");
    let module = paths::pam_module();
    let session_service = h.install_vigil_service("benchsess", &h.vigil_args());
    let reauth_service = h.install_pam_service("reauth", &reauth_stack(&module, &h.vigil_args()));
    let baseline_service = h.install_pam_service("baseline", &reauth_stack_baseline());
    let unix_service = h.install_pam_service(
        "unix",
        &PamStack::new()
            .auth("[success=1 default=ignore]", "pam_unix.so", &[])
            .auth("requisite", "pam_deny.so", &[])
            .auth("required", "pam_permit.so", &[])
            .account("required", "pam_unix.so", &[]),
    );

    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(&exe);
    cmd.args(["--role", "leader", "--user", &user.name])
        .arg("--uid")
        .arg(user.uid.to_string())
        .args(["--session-service", &session_service, "--reauth-service", &reauth_service])
        .args(["--baseline-service", &baseline_service, "--unix-service", &unix_service])
        .arg("--n")
        .arg(args.n.to_string())
        .arg("--cold")
        .arg(args.cold.to_string())
        .arg("--password-runs")
        .arg(args.password_runs.to_string())
        .env(PASSWORD_ENV, &user.password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("bench_reauth: {} warm and {} cold transactions per stack, {} with a password", args.n, args.cold, args.password_runs);
    let started = Instant::now();
    let child = cmd.spawn().expect("start the leader");
    let out = child.wait_with_output().expect("wait for the leader");
    assert!(out.status.success(), "the leader failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.lines().last().expect("the worker's results");
    let r: Results = serde_json::from_str(json).unwrap_or_else(|e| panic!("results: {e}: {json}"));
    eprintln!("bench_reauth: done in {:.1} s", started.elapsed().as_secs_f64());
    let granted = h.auth_log().iter().filter(|l| l.is_event("vigild", "reauth_granted")).count();
    report(&r, granted);
}

fn stats(txns: &[Txn], f: impl Fn(&Txn) -> u64) -> Stats {
    Stats::from_samples(&txns.iter().map(f).collect::<Vec<_>>())
}

fn failures(txns: &[Txn], expect_prompts: bool) -> usize {
    txns.iter().filter(|t| t.auth_rc != 0 || t.acct_rc != 0 || (t.prompts > 0) != expect_prompts).count()
}

fn report(r: &Results, granted: usize) {
    let prove = r.prove.expect("the proving transaction");
    println!(
        "Proof: auth_rc={} acct_rc={} prompts={} ({} µs). vigild wrote {granted} reauth_granted records.",
        prove.auth_rc, prove.acct_rc, prove.prompts, prove.txn_us
    );
    println!();
    println!("| stack (µs) | n | pam_authenticate p50 | p99 | max | whole transaction p50 | p99 | max | failures |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let rows: [(&str, &[Txn], bool); 5] = [
        ("pam_permit in place of pam_vigil, warm", &r.warm_baseline, false),
        ("pam_vigil, proof fresh, warm", &r.warm_vigil, false),
        ("pam_permit in place of pam_vigil, new process each", &r.cold_baseline, false),
        ("pam_vigil, proof fresh, new process each", &r.cold_vigil, false),
        ("pam_unix checks the password (no cache)", &r.password, true),
    ];
    for (name, txns, prompts) in rows {
        let a = stats(txns, |t| t.auth_us);
        let t = stats(txns, |t| t.txn_us);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            a.n,
            a.p50,
            a.p99,
            a.max,
            t.p50,
            t.p99,
            t.max,
            failures(txns, prompts)
        );
    }
    let (bw, vw) = (stats(&r.warm_baseline, |t| t.auth_us), stats(&r.warm_vigil, |t| t.auth_us));
    let (bc, vc) = (stats(&r.cold_baseline, |t| t.txn_us), stats(&r.cold_vigil, |t| t.txn_us));
    println!();
    println!(
        "Added by a cached decision: pam_authenticate +{} µs p50 / +{} µs p99 (warm); whole transaction in a new process +{} µs p50 / +{} µs p99.",
        vw.p50 as i64 - bw.p50 as i64,
        vw.p99 as i64 - bw.p99 as i64,
        vc.p50 as i64 - bc.p50 as i64,
        vc.p99 as i64 - bc.p99 as i64
    );
}

// ---- the leader (root): the session's leader process -------------------------------------

fn leader(args: &Args) -> i32 {
    let user = args.user.as_deref().expect("--user");
    let service = cstring(args.session_service.as_deref().expect("--session-service"));
    let user_c = cstring(user);
    let mut state = ConvState::new(None);
    let conv = state.pam_conv();
    let mut pamh: *mut ffi::PamHandle = ptr::null_mut();
    // SAFETY: valid strings; the conversation outlives the handle.
    assert_eq!(unsafe { ffi::pam_start(service.as_ptr(), user_c.as_ptr(), &conv, &mut pamh) }, ffi::PAM_SUCCESS);
    // SAFETY: pamh is live.
    let rc = unsafe { ffi::pam_open_session(pamh, 0) };
    // SAFETY: pamh is live; the string is copied at once.
    let id = unsafe {
        let p = ffi::pam_getenv(pamh, c"VIGIL_SESSION_ID".as_ptr());
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    eprintln!("bench_reauth: leader {} opened vigil session {id:?} (rc {rc})", std::process::id());
    let code = if rc == ffi::PAM_SUCCESS && id.is_some() {
        run_worker(args)
    } else {
        eprintln!("bench_reauth: the session did not open");
        1
    };
    // SAFETY: pamh is live and not used afterwards.
    unsafe {
        if rc == ffi::PAM_SUCCESS {
            ffi::pam_close_session(pamh, 0);
        }
        ffi::pam_end(pamh, rc);
    }
    code
}

/// Starts the worker as the user (real uid) with effective uid root, like sudo; its
/// stdout is ours. Ended (SIGKILL) past [`WORKER_TIMEOUT`].
fn run_worker(args: &Args) -> i32 {
    let uid = args.uid.expect("--uid");
    // The same arguments with the role "worker" (its value follows --role).
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let at = argv.iter().position(|a| a == "--role").expect("--role");
    argv[at + 1] = "worker".into();
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(&argv).stdin(Stdio::null());
    // SAFETY: setresuid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || if libc::setresuid(uid, 0, 0) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
    }
    let mut child = cmd.spawn().expect("start the worker");
    let deadline = Instant::now() + WORKER_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the worker") {
            return status.code().unwrap_or(1);
        }
        if Instant::now() > deadline {
            eprintln!("bench_reauth: the worker ran past {WORKER_TIMEOUT:?}; killing it (pid {})", child.id());
            let _ = child.kill();
            let _ = child.wait();
            return 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- the worker (real uid = the user, effective uid = root, like sudo) ----------------------

fn worker(args: &Args) {
    let user = args.user.as_deref().expect("--user");
    let reauth = args.reauth_service.as_deref().expect("--reauth-service");
    let baseline = args.baseline_service.as_deref().expect("--baseline-service");
    let unix = args.unix_service.as_deref().expect("--unix-service");
    let password = std::env::var(PASSWORD_ENV).expect("the password in the environment");
    // SAFETY: getuid/geteuid cannot fail.
    let (ruid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    eprintln!("bench_reauth: worker {} ruid={ruid} euid={euid}", std::process::id());

    let mut r = Results { prove: Some(transaction(reauth, user, Some(&password))), ..Results::default() };
    let check = transaction(reauth, user, None);
    if check.auth_rc != 0 || check.prompts != 0 {
        eprintln!("bench_reauth: the proof is not used: prove={:?} check={check:?}", r.prove);
    }
    // Warm: alternating blocks, so that drift (another process, frequency) hits both.
    let blocks = 10u32;
    for b in 0..blocks {
        let per = args.n / blocks + u32::from(b < args.n % blocks);
        r.warm_vigil.extend((0..per).map(|_| transaction(reauth, user, None)));
        r.warm_baseline.extend((0..per).map(|_| transaction(baseline, user, None)));
    }
    // Cold: a new process per transaction (its child keeps ruid/euid).
    let exe = std::env::current_exe().expect("current_exe");
    let cold_one = |service: &str| -> Txn {
        let out = Command::new(&exe)
            .args(["--role", "cold-one", "--user", user, "--service", service])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run cold-one");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("cold-one: {e}: {text}"))
    };
    for _ in 0..args.cold {
        r.cold_vigil.push(cold_one(reauth));
        r.cold_baseline.push(cold_one(baseline));
    }
    r.password = (0..args.password_runs).map(|_| transaction(unix, user, Some(&password))).collect();
    println!("{}", serde_json::to_string(&r).unwrap());
}
