//! Test users: `vtest-<short>-<n>-<pid>` (at most 32 characters), created with a home
//! and a random password, removed with `userdel -r`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::process::{describe_output, run_bounded};
use crate::wait::wait_for;

pub const PREFIX: &str = "vtest-";
const MAX_NAME: usize = 32;
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// useradd/userdel take a lock on /etc/passwd and fail when it is held: one at a time.
static ACCOUNTS: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub password: String,
}

/// Creates `vtest-<short>-<n>-<pid>`; `short` is 1–8 of `[a-z0-9]`.
pub(crate) fn create(short: &str, n: u32) -> TestUser {
    assert!(
        (1..=8).contains(&short.len()) && short.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "test user short name {short:?}: use 1-8 of [a-z0-9]"
    );
    let name = format!("{PREFIX}{short}-{n}-{}", std::process::id());
    assert!(name.len() <= MAX_NAME, "user name {name} is longer than {MAX_NAME}");
    let password = random_password();
    let _lock = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        nix::unistd::User::from_name(&name).ok().flatten().is_none(),
        "user {name} exists already; a stale one from an earlier run? remove it with `userdel -r {name}`"
    );
    let out =
        retry_locked("useradd", || run_bounded(Command::new("useradd").args(["-m", "-s", "/bin/bash", &name]), TOOL_TIMEOUT, "useradd"));
    assert!(out.status.success(), "useradd {name}: {}", describe_output(&out));
    set_password(&name, &password);
    let entry = nix::unistd::User::from_name(&name).ok().flatten().unwrap_or_else(|| panic!("user {name} not found after useradd"));
    TestUser { uid: entry.uid.as_raw(), gid: entry.gid.as_raw(), home: entry.dir, name, password }
}

fn set_password(name: &str, password: &str) {
    let mut child =
        Command::new("chpasswd").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("cannot run chpasswd");
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(format!("{name}:{password}\n").as_bytes()).expect("write to chpasswd");
    }
    let status =
        wait_for(TOOL_TIMEOUT, "chpasswd to finish", || child.try_wait().map_err(|e| e.to_string())?.ok_or_else(|| "running".to_string()));
    let mut err = String::new();
    let _ = child.stderr.take().expect("piped stderr").read_to_string(&mut err);
    assert!(status.success(), "chpasswd for {name}: {status}: {err}");
}

/// Removes a user and their home; reports failures on stderr (called from Drop).
pub(crate) fn remove(name: &str) {
    let _lock = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let out = retry_locked("userdel", || run_bounded(Command::new("userdel").args(["-r", name]), TOOL_TIMEOUT, "userdel"));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // userdel -r exits 12 when the mail spool is missing, after removing the user.
        let only_mail_noise = err.lines().all(|l| l.contains("mail spool") || l.trim().is_empty());
        if !(only_mail_noise && nix::unistd::User::from_name(name).ok().flatten().is_none()) {
            eprintln!("vigil-e2e: userdel -r {name} failed: {}", describe_output(&out));
        }
    }
}

/// Runs `f` again (up to 10 times, 200 ms apart) while the tool says a lock is held.
fn retry_locked(tool: &str, mut f: impl FnMut() -> std::process::Output) -> std::process::Output {
    let mut out = f();
    for _ in 0..10 {
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !(err.contains("lock") || err.contains("try again")) {
            break;
        }
        eprintln!("vigil-e2e: {tool} found a lock held, retrying: {}", err.trim());
        std::thread::sleep(Duration::from_millis(200));
        out = f();
    }
    out
}

fn random_password() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("read /dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("Vt-{hex}")
}
