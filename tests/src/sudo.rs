//! sudo and su for the re-authentication tests, without touching the machine's own
//! configuration of either.
//!
//! **sudo.** `/etc/pam.d/sudo` and `/etc/sudoers` are never read or written. A test
//! sudoers file `/etc/sudoers.d/vigil-test-<n>-<pid>` (mode 0440, no `.` in the name:
//! sudo skips such names) gives one test user `USER ALL=(ALL) ALL` and points sudo at a
//! test PAM service with `Defaults:USER pam_service=…` (and `pam_login_service=…`, so
//! `sudo -i` does not use `/etc/pam.d/sudo-i` either). The file is written under a name
//! with a `.` (ignored by sudo), checked with `visudo -cf`, then linked to its final
//! name (never over an existing file); the whole configuration is then checked with
//! `visudo -c` and the file removed again if that fails. Removed on drop; a file of a
//! dead test process is removed by the next harness.
//!
//! **su.** util-linux su has no `pam_service` option: its stack is `/etc/pam.d/su` (and
//! `su-l`, which includes it). [`SuPatch`] saves the file to
//! `/etc/pam.d/.vigil-test-su-backup-<pid>` (same bytes, mode and owner; written before
//! anything changes), replaces `su` atomically (rename) with the test lines inserted
//! before its first `auth` line, and restores it byte for byte (rename of a copy with
//! the original mode and owner) on drop — also when the test panics. If a test process
//! dies with the file patched, the next harness restores it from the backup.
//!
//! **Driving them in a session.** [`run_prompted`] types
//! `echo BEGIN-<tag>; COMMAND; echo RC-<tag>=$?` in an interactive ssh session, answers
//! each password prompt that appears after `BEGIN-<tag>` as told, and returns how many
//! prompts there were, the exit code and the output lines.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use crate::pam::{PamStack, VigilArgs};
use crate::process::{describe_output, pid_alive, run_bounded};
use crate::tmux::SshSession;
use crate::wait::wait_for;

pub const SUDOERS_DIR: &str = "/etc/sudoers.d";
/// `/etc/sudoers.d/vigil-test-<n>-<pid>`.
pub const SUDOERS_PREFIX: &str = "vigil-test-";
pub const SU_PAM_FILE: &str = "/etc/pam.d/su";
/// `/etc/pam.d/.vigil-test-su-backup-<pid>`: the saved `/etc/pam.d/su`.
pub const SU_BACKUP_PREFIX: &str = ".vigil-test-su-backup-";
/// The prompt the tests give sudo (`sudo -S -p 'VIGIL-PROMPT:'`).
pub const SUDO_PROMPT: &str = "VIGIL-PROMPT:";
/// util-linux su's prompt (pam_unix's).
pub const SU_PROMPT: &str = "Password:";
/// What every line the harness adds to `/etc/pam.d/su` ends with (a PAM comment is a
/// whole line, so the marker is a line of its own, before and after the block).
const SU_MARKER: &str = "# vigil-e2e: temporary lines, restored when the test ends";
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

static SWEEP: Once = Once::new();

/// Removes sudoers files and restores `/etc/pam.d/su` left by dead test processes.
/// Runs once per process, when the first harness is created.
pub(crate) fn sweep_once() {
    SWEEP.call_once(sweep);
}

/// The pid at the end of `<prefix>…-<pid>` (a `.tmp` suffix allowed), if it is dead.
fn dead_owner(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let rest = rest.strip_suffix(".tmp").unwrap_or(rest);
    let pid: u32 = rest.rsplit('-').next()?.parse().ok()?;
    (pid != std::process::id() && !pid_alive(pid)).then_some(pid)
}

fn sweep() {
    for entry in std::fs::read_dir(SUDOERS_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead_owner(&name, SUDOERS_PREFIX).is_some() {
            eprintln!("vigil-e2e: removing stale {SUDOERS_DIR}/{name}");
            if let Err(e) = std::fs::remove_file(entry.path()) {
                eprintln!("vigil-e2e: cannot remove {SUDOERS_DIR}/{name}: {e}");
            }
        }
    }
    for entry in std::fs::read_dir("/etc/pam.d").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead_owner(&name, SU_BACKUP_PREFIX).is_some() {
            eprintln!("vigil-e2e: restoring {SU_PAM_FILE} from the stale backup /etc/pam.d/{name}");
            // The backup has the original's bytes, mode and owner: renaming it back is
            // the restore, atomically.
            if let Err(e) = std::fs::rename(entry.path(), SU_PAM_FILE) {
                eprintln!("vigil-e2e: cannot restore {SU_PAM_FILE} from /etc/pam.d/{name}: {e}");
            }
        } else if let Some(pid) = ["new", "restore"].iter().find_map(|kind| dead_owner(&name, &format!(".vigil-test-su-{kind}-"))) {
            eprintln!("vigil-e2e: removing /etc/pam.d/{name} (temporary file of dead process {pid})");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

// ---- sudo ---------------------------------------------------------------------------

/// An installed test sudoers file; removed on drop.
pub struct SudoersFile {
    path: PathBuf,
}

impl SudoersFile {
    /// Writes, checks and installs `/etc/sudoers.d/vigil-test-<n>-<pid>` for `user`,
    /// using PAM service `pam_service`. `scratch` is a directory of the harness (the
    /// candidate file is checked there first).
    pub(crate) fn install(scratch: &Path, n: u32, user: &str, pam_service: &str) -> SudoersFile {
        assert!(
            user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && pam_service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "sudoers: unexpected characters in {user:?} / {pam_service:?}"
        );
        let name = format!("{SUDOERS_PREFIX}{n}-{}", std::process::id());
        let text = sudoers_text(user, pam_service);
        let candidate = scratch.join(format!("sudoers-{n}"));
        std::fs::write(&candidate, &text).unwrap_or_else(|e| panic!("write {}: {e}", candidate.display()));
        visudo_ok(&["-cf"], Some(&candidate)).unwrap_or_else(|e| panic!("the test sudoers file is refused: {e}\n{text}"));

        let dir = Path::new(SUDOERS_DIR);
        let tmp = dir.join(format!("{name}.tmp")); // sudo skips names with a '.'
        let path = dir.join(&name);
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
            file.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
            file.set_permissions(std::fs::Permissions::from_mode(0o440)).expect("chmod 0440");
            file.sync_all().expect("fsync");
        }
        // link(2) never replaces an existing file.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        linked.unwrap_or_else(|e| panic!("cannot install {} (a stale file?): {e}", path.display()));
        let installed = SudoersFile { path };
        // The whole configuration must still parse: a broken sudoers breaks sudo for all.
        if let Err(e) = visudo_ok(&["-c"], None) {
            drop(installed); // removes it at once
            panic!("visudo -c fails with the test file installed (removed again): {e}");
        }
        installed
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SudoersFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("vigil-e2e: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The test sudoers text: no sudo timestamp (vigil decides), the test PAM service for
/// sudo and `sudo -i`, one password try (a wrong password ends sudo: one failure
/// record, an exit code), no mail (no MTA here).
pub fn sudoers_text(user: &str, pam_service: &str) -> String {
    format!(
        "# written by vigil-e2e; removed when the test ends\n\
         Defaults:{user} timestamp_timeout=0\n\
         Defaults:{user} pam_service={pam_service}\n\
         Defaults:{user} pam_login_service={pam_service}\n\
         Defaults:{user} passwd_tries=1\n\
         Defaults:{user} !mail_badpass\n\
         {user} ALL=(ALL) ALL\n"
    )
}

fn visudo_ok(args: &[&str], file: Option<&Path>) -> Result<(), String> {
    let mut cmd = Command::new("visudo");
    cmd.args(args);
    if let Some(f) = file {
        cmd.arg(f);
    }
    let out = run_bounded(&mut cmd, TOOL_TIMEOUT, "visudo");
    if out.status.success() { Ok(()) } else { Err(describe_output(&out)) }
}

/// The sudo-like stack of the re-authentication tests:
///
/// ```text
/// auth     sufficient                 <so> reauth ARGS timeout=1s
/// auth     [success=2 default=ignore] pam_unix.so
/// auth     [default=die]              <so> authfail ARGS
/// auth     requisite                  pam_deny.so
/// auth     required                   pam_permit.so
/// account  [perm_denied=die default=ignore] <so> ARGS
/// account  required                   pam_unix.so
/// session  required                   pam_unix.so
/// ```
///
/// `args` should name the socket and the syslog socket (e.g. from
/// `Harness::vigil_args`); its timeout is replaced by 1 s on the reauth line.
pub fn reauth_stack(module: &Path, args: &VigilArgs) -> PamStack {
    let so = module.display().to_string();
    let base = VigilArgs { timeout: None, fail: None, extra: Vec::new(), ..args.clone() };
    PamStack::new()
        .auth("sufficient", &so, &base.clone().timeout("1s").extra("reauth").to_args())
        .auth("[success=2 default=ignore]", "pam_unix.so", &[])
        .auth("[default=die]", &so, &base.clone().extra("authfail").to_args())
        .auth("requisite", "pam_deny.so", &[])
        .auth("required", "pam_permit.so", &[])
        .account("[perm_denied=die default=ignore]", &so, &base.to_args())
        .account("required", "pam_unix.so", &[])
        .session("required", "pam_unix.so", &[])
}

/// The same stack with `pam_permit.so` in place of every pam_vigil line (the baseline).
pub fn reauth_stack_baseline() -> PamStack {
    PamStack::new()
        .auth("sufficient", "pam_permit.so", &[])
        .auth("[success=2 default=ignore]", "pam_unix.so", &[])
        .auth("[default=die]", "pam_permit.so", &[])
        .auth("requisite", "pam_deny.so", &[])
        .auth("required", "pam_permit.so", &[])
        .account("optional", "pam_permit.so", &[])
        .account("required", "pam_unix.so", &[])
        .session("required", "pam_unix.so", &[])
}

// ---- su -----------------------------------------------------------------------------

/// `/etc/pam.d/su` with test lines in it, restored byte for byte on [`SuPatch::restore`]
/// or drop (also while panicking).
pub struct SuPatch {
    original: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    backup: PathBuf,
    restored: bool,
}

impl SuPatch {
    /// Saves `/etc/pam.d/su` and inserts `lines` (whole PAM lines) before its first
    /// `auth` line (or its `@include common-auth` if it has none).
    pub fn apply(lines: &[String]) -> SuPatch {
        let pid = std::process::id();
        for entry in std::fs::read_dir("/etc/pam.d").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(SU_BACKUP_PREFIX) {
                panic!("/etc/pam.d/{name} exists: another test process has {SU_PAM_FILE} patched; not touching it");
            }
        }
        let meta = std::fs::metadata(SU_PAM_FILE).unwrap_or_else(|e| panic!("{SU_PAM_FILE}: {e}"));
        let original = std::fs::read(SU_PAM_FILE).unwrap_or_else(|e| panic!("read {SU_PAM_FILE}: {e}"));
        let text = String::from_utf8(original.clone()).unwrap_or_else(|_| panic!("{SU_PAM_FILE} is not UTF-8"));
        assert!(!text.contains(SU_MARKER), "{SU_PAM_FILE} already has vigil-e2e lines in it; restore it by hand");
        let patched =
            insert_before_first_auth(&text, lines).unwrap_or_else(|| panic!("{SU_PAM_FILE} has no auth line to insert before:\n{text}"));

        // 1. The backup, complete and on disk, before anything changes.
        let backup = Path::new("/etc/pam.d").join(format!("{SU_BACKUP_PREFIX}{pid}"));
        write_file_like(&backup, &original, meta.mode(), meta.uid(), meta.gid(), true)
            .unwrap_or_else(|e| panic!("cannot save {SU_PAM_FILE} to {}: {e}", backup.display()));
        let patch = SuPatch { original, mode: meta.mode(), uid: meta.uid(), gid: meta.gid(), backup, restored: false };
        // 2. The patched file under a temporary name, renamed over su (atomic: a
        //    concurrent su sees the old or the new file, never half of one).
        let new = Path::new("/etc/pam.d").join(format!(".vigil-test-su-new-{pid}"));
        write_file_like(&new, patched.as_bytes(), patch.mode, patch.uid, patch.gid, false)
            .and_then(|()| std::fs::rename(&new, SU_PAM_FILE).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| {
                let _ = std::fs::remove_file(&new);
                panic!("cannot write the patched {SU_PAM_FILE}: {e}")
            });
        patch
    }

    /// What `/etc/pam.d/su` held before.
    pub fn original(&self) -> &[u8] {
        &self.original
    }

    /// Puts the original back (same bytes, mode, owner) and removes the backup; checks
    /// the bytes read back. Idempotent.
    pub fn restore(&mut self) -> Result<(), String> {
        if self.restored {
            return Ok(());
        }
        let tmp = Path::new("/etc/pam.d").join(format!(".vigil-test-su-restore-{}", std::process::id()));
        write_file_like(&tmp, &self.original, self.mode, self.uid, self.gid, false)
            .and_then(|()| std::fs::rename(&tmp, SU_PAM_FILE).map_err(|e| e.to_string()))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("cannot restore {SU_PAM_FILE} (the backup {} is kept): {e}", self.backup.display())
            })?;
        let back = std::fs::read(SU_PAM_FILE).map_err(|e| format!("read {SU_PAM_FILE} back: {e}"))?;
        if back != self.original {
            return Err(format!("{SU_PAM_FILE} differs from the original after restore; the backup {} is kept", self.backup.display()));
        }
        self.restored = true;
        std::fs::remove_file(&self.backup).map_err(|e| format!("remove {}: {e}", self.backup.display()))
    }
}

impl Drop for SuPatch {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("vigil-e2e: {e}");
        }
    }
}

/// `text` with `lines` and marker comments inserted before the first line whose first
/// word is `auth` (or `@include common-auth`).
fn insert_before_first_auth(text: &str, lines: &[String]) -> Option<String> {
    let is_auth = |l: &str| {
        let mut words = l.split_whitespace();
        match words.next() {
            Some("auth") | Some("-auth") => true,
            Some("@include") => words.next() == Some("common-auth"),
            _ => false,
        }
    };
    let mut out = String::with_capacity(text.len() + 512);
    let mut done = false;
    for line in text.split_inclusive('\n') {
        if !done && is_auth(line) {
            out.push_str(SU_MARKER);
            out.push('\n');
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(SU_MARKER);
            out.push('\n');
            done = true;
        }
        out.push_str(line);
    }
    done.then_some(out)
}

/// Writes `bytes` to `path` (a new file) with the given mode and owner, and fsyncs.
fn write_file_like(path: &Path, bytes: &[u8], mode: u32, uid: u32, gid: u32, exclusive: bool) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if exclusive {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    if path.starts_with(crate::pam::PAM_DIR) {
        crate::conformance::pam_file_written(&String::from_utf8_lossy(bytes));
    }
    let mut file = opts.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| format!("chmod {}: {e}", path.display()))?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", path.display()))?;
    file.sync_all().map_err(|e| format!("fsync {}: {e}", path.display()))
}

// ---- driving a prompting command in a session -----------------------------------------

/// What to do at a password prompt.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Type this (and Enter) at every prompt.
    Password(String),
    /// Press Ctrl-C at the first prompt (a test that expects none gets out of it).
    Interrupt,
}

/// What a command driven by [`run_prompted`] did.
#[derive(Debug, Clone)]
pub struct Prompted {
    /// How many password prompts appeared.
    pub prompts: usize,
    /// The command's exit code (`$?`).
    pub rc: i32,
    /// The lines between `BEGIN-<tag>` and `RC-<tag>=`, prompts included.
    pub output: Vec<String>,
}

impl Prompted {
    pub fn asked(&self) -> bool {
        self.prompts > 0
    }
}

/// The part of the screen after the line `BEGIN-<tag>` (the output of `echo`, not the
/// typed command line, which shows `echo BEGIN-<tag>;`).
fn after_begin<'a>(screen: &'a str, tag: &str) -> Option<Vec<&'a str>> {
    let begin = format!("BEGIN-{tag}");
    let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
    let at = lines.iter().rposition(|l| *l == begin)?;
    Some(lines[at + 1..].to_vec())
}

/// `(prompts seen, rc if printed, output lines)` after `BEGIN-<tag>`.
fn scan(screen: &str, tag: &str, prompt: &str) -> Option<(usize, Option<i32>, Vec<String>)> {
    let lines = after_begin(screen, tag)?;
    let rc_marker = format!("RC-{tag}=");
    let mut output = Vec::new();
    let mut rc = None;
    for l in &lines {
        if let Some(v) = l.trim_start().strip_prefix(&rc_marker)
            && let Ok(code) = v.trim().parse::<i32>()
        {
            rc = Some(code);
            break;
        }
        output.push(l.to_string());
    }
    let prompts = output.iter().filter(|l| l.contains(prompt)).count();
    Some((prompts, rc, output))
}

/// Types `echo BEGIN-<tag>; COMMAND; echo RC-<tag>=$?` in `session`, answers up to three
/// prompts (lines containing `prompt` after `BEGIN-<tag>`) as `answer` says, and waits
/// (each step up to `timeout`) for the exit code.
#[track_caller]
pub fn run_prompted(session: &SshSession, tag: &str, command: &str, prompt: &str, answer: &Answer, timeout: Duration) -> Prompted {
    session.send_line(&format!("echo BEGIN-{tag}; {command}; echo RC-{tag}=$?"));
    let mut answered = 0usize;
    let mut interrupted = false;
    loop {
        let (prompts, rc, output) = session.wait_for(timeout, &format!("a prompt or the exit code of `{command}` ({tag})"), |screen| {
            let (prompts, rc, output) = scan(screen, tag, prompt)?;
            // After Ctrl-C bash drops the rest of the line (no RC-): the prompt is back.
            let back_at_prompt = interrupted && output.iter().rev().find(|l| !l.trim().is_empty()).is_some_and(|l| l.ends_with('$'));
            (rc.is_some() || prompts > answered || back_at_prompt).then_some((prompts, rc, output))
        });
        if let Some(rc) = rc {
            return Prompted { prompts, rc, output };
        }
        if interrupted {
            return Prompted { prompts, rc: INTERRUPTED, output };
        }
        assert!(answered < 3, "more than three prompts for `{command}`: {output:?}");
        match answer {
            Answer::Password(p) => session.send_line(p),
            Answer::Interrupt => {
                session.send_key("C-c");
                interrupted = true;
            }
        }
        answered = prompts;
    }
}

/// [`Prompted::rc`] of a command ended with Ctrl-C (bash printed no exit code).
pub const INTERRUPTED: i32 = 130;

/// `sudo -S -p 'VIGIL-PROMPT:' COMMAND` driven by [`run_prompted`].
#[track_caller]
pub fn sudo(session: &SshSession, tag: &str, command: &str, answer: &Answer, timeout: Duration) -> Prompted {
    run_prompted(session, tag, &format!("sudo -S -p '{SUDO_PROMPT}' {command}"), SUDO_PROMPT, answer, timeout)
}

/// Waits until `pred` holds for a line of `lines()` after the first `from` lines.
#[track_caller]
pub fn wait_for_new_line<T: Clone>(timeout: Duration, what: &str, from: usize, lines: impl Fn() -> Vec<T>, pred: impl Fn(&T) -> bool) -> T {
    wait_for(timeout, what, || {
        let all = lines();
        all.iter()
            .skip(from)
            .find(|l| pred(l))
            .cloned()
            .ok_or_else(|| format!("{} lines, {} new", all.len(), all.len().saturating_sub(from)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_before_the_first_auth_line() {
        let text = "# comment\nsession required pam_env.so\nauth       sufficient pam_rootok.so\n@include common-auth\n";
        let out = insert_before_first_auth(text, &["auth sufficient /x.so reauth".into(), "account optional /x.so".into()]).unwrap();
        assert_eq!(
            out,
            format!(
                "# comment\nsession required pam_env.so\n{SU_MARKER}\nauth sufficient /x.so reauth\naccount optional /x.so\n{SU_MARKER}\nauth       sufficient pam_rootok.so\n@include common-auth\n"
            )
        );
        let only_include = "@include common-auth\n@include common-account\n";
        assert!(insert_before_first_auth(only_include, &["x".into()]).unwrap().starts_with(SU_MARKER));
        assert_eq!(insert_before_first_auth("session required pam_env.so\n", &[]), None);
    }

    #[test]
    fn scans_prompts_and_exit_code_after_begin() {
        let screen = "u@h:~$ echo BEGIN-7; sudo -S -p 'VIGIL-PROMPT:' true; echo RC-7=$?\nBEGIN-7\nVIGIL-PROMPT:\nRC-7=0\nu@h:~$";
        assert_eq!(scan(screen, "7", SUDO_PROMPT), Some((1, Some(0), vec!["VIGIL-PROMPT:".to_string()])));
        let waiting = "u@h:~$ echo BEGIN-8; sudo -S -p 'VIGIL-PROMPT:' true; echo RC-8=$?\nBEGIN-8\nVIGIL-PROMPT:";
        assert_eq!(scan(waiting, "8", SUDO_PROMPT).map(|s| (s.0, s.1)), Some((1, None)));
        assert_eq!(scan(waiting, "9", SUDO_PROMPT), None, "another tag's BEGIN is not ours");
        let typed_only = "u@h:~$ echo BEGIN-10; sudo true; echo RC-10=$?";
        assert_eq!(scan(typed_only, "10", SUDO_PROMPT), None, "the typed command line is not the output");
    }

    #[test]
    fn sudoers_text_names_the_service() {
        let t = sudoers_text("vtest-a-1-2", "vigil-test-sudo-3-2");
        assert!(t.contains("Defaults:vtest-a-1-2 pam_service=vigil-test-sudo-3-2\n"));
        assert!(t.contains("Defaults:vtest-a-1-2 timestamp_timeout=0\n"));
        assert!(t.ends_with("vtest-a-1-2 ALL=(ALL) ALL\n"));
    }

    #[test]
    fn dead_owner_parses_sudoers_and_backup_names() {
        assert_eq!(dead_owner("vigil-test-3-999999999", SUDOERS_PREFIX), Some(999_999_999));
        assert_eq!(dead_owner("vigil-test-3-999999999.tmp", SUDOERS_PREFIX), Some(999_999_999));
        assert_eq!(dead_owner(&format!("vigil-test-3-{}", std::process::id()), SUDOERS_PREFIX), None);
        assert_eq!(dead_owner(".vigil-test-su-backup-999999999", SU_BACKUP_PREFIX), Some(999_999_999));
        assert_eq!(dead_owner("README", SUDOERS_PREFIX), None);
    }
}
