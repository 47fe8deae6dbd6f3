//! One PAM host of bench_load: the program run again with [`WORKER_ARG`]. It loads the
//! service's modules through real libpam (pam_start), waits for the common start time,
//! then runs pam_open_session + pam_close_session on its handle until the end time, and
//! writes one line per cycle to its output file: `<µs> <VIGIL_SESSION_ID or -> <open rc>
//! <close rc or ->`. The last line is `END <unix µs>`, when its last cycle ended.

use std::ffi::{CStr, CString, c_int};
use std::io::Write;
use std::process::ExitCode;
use std::ptr;
use std::time::{Duration, Instant};

use crate::conv::ConvState;
use crate::ffi::{self, PamHandle};

pub const WORKER_ARG: &str = "--load-worker";

pub fn is_worker() -> bool {
    std::env::args().nth(1).as_deref() == Some(WORKER_ARG)
}

pub use vigil_protocol::time::now_usec;

/// The arguments the benchmark gives a worker.
pub struct Job {
    pub service: String,
    pub user: String,
    pub tty: String,
    pub rhost: String,
    /// Unix µs at which the first cycle starts, and the length of the run.
    pub start_usec: u64,
    pub seconds: u64,
    pub out: std::path::PathBuf,
}

impl Job {
    pub fn args(&self) -> Vec<String> {
        vec![
            WORKER_ARG.to_string(),
            self.service.clone(),
            self.user.clone(),
            self.tty.clone(),
            self.rhost.clone(),
            self.start_usec.to_string(),
            self.seconds.to_string(),
            self.out.display().to_string(),
        ]
    }

    fn parse(args: &[String]) -> Option<Job> {
        let [service, user, tty, rhost, start, seconds, out] = args else { return None };
        Some(Job {
            service: service.clone(),
            user: user.clone(),
            tty: tty.clone(),
            rhost: rhost.clone(),
            start_usec: start.parse().ok()?,
            seconds: seconds.parse().ok()?,
            out: out.into(),
        })
    }
}

fn cstring(s: &str) -> Option<CString> {
    CString::new(s).ok()
}

pub fn worker_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let Some(job) = Job::parse(&args) else {
        eprintln!("usage: {WORKER_ARG} SERVICE USER TTY RHOST START_USEC SECONDS OUT");
        return ExitCode::from(2);
    };
    let (Some(service), Some(user), Some(tty), Some(rhost)) =
        (cstring(&job.service), cstring(&job.user), cstring(&job.tty), cstring(&job.rhost))
    else {
        eprintln!("load worker: an argument has a NUL byte");
        return ExitCode::from(2);
    };
    let mut conv_state = ConvState::new(None);
    let conv = conv_state.pam_conv();
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and a conversation that outlives the handle.
    let rc = unsafe { ffi::pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) };
    if rc != ffi::PAM_SUCCESS {
        eprintln!("load worker: pam_start returned {rc}");
        return ExitCode::FAILURE;
    }
    for (item, value) in [(ffi::PAM_TTY, &tty), (ffi::PAM_RHOST, &rhost)] {
        // SAFETY: pamh is live; libpam copies string items.
        unsafe { ffi::pam_set_item(pamh, item, value.as_ptr().cast()) };
    }
    let lines = run_cycles(pamh, &job);
    let end = now_usec();
    // SAFETY: pamh is live and not used after this.
    unsafe { ffi::pam_end(pamh, ffi::PAM_SUCCESS) };
    let mut text = lines.join("\n");
    text.push_str(&format!("\nEND {end}\n"));
    match std::fs::File::create(&job.out).and_then(|mut f| f.write_all(text.as_bytes())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load worker: cannot write {}: {e}", job.out.display());
            ExitCode::FAILURE
        }
    }
}

/// The cycles between the start and end times, one line each.
fn run_cycles(pamh: *mut PamHandle, job: &Job) -> Vec<String> {
    let env_name = c"VIGIL_SESSION_ID";
    let wait = job.start_usec.saturating_sub(now_usec());
    std::thread::sleep(Duration::from_micros(wait));
    let until = Instant::now() + Duration::from_secs(job.seconds);
    let mut lines = Vec::new();
    while Instant::now() < until {
        let t0 = Instant::now();
        // SAFETY: pamh is live.
        let open_rc: c_int = unsafe { ffi::pam_open_session(pamh, 0) };
        // SAFETY: pamh is live; the returned string belongs to libpam, copied at once.
        let id = unsafe {
            let p = ffi::pam_getenv(pamh, env_name.as_ptr());
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        let close_rc = (open_rc == ffi::PAM_SUCCESS).then(|| {
            // SAFETY: pamh is live.
            unsafe { ffi::pam_close_session(pamh, 0) }
        });
        let us = t0.elapsed().as_micros();
        lines.push(format!("{us} {} {open_rc} {}", id.as_deref().unwrap_or("-"), close_rc.map_or("-".to_string(), |rc| rc.to_string())));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_survives_its_command_line() {
        let job = Job {
            service: "vigil-test-load-1-2-3".into(),
            user: "vtest-load-1-3".into(),
            tty: "pts/9".into(),
            rhost: "203.0.113.7".into(),
            start_usec: 1_796_000_000_000_000,
            seconds: 10,
            out: "/tmp/x/load-0.txt".into(),
        };
        let args = job.args();
        assert_eq!(args[0], WORKER_ARG);
        let back = Job::parse(&args[1..]).expect("parses");
        assert_eq!(back.args(), args);
        assert!(Job::parse(&args[1..4]).is_none());
    }
}
