//! End-to-end tests of re-authentication (issue 4): inside real login sessions — a real
//! sshd whose session stack is pam_unix + `pam_vigil.so`, interactive ssh sessions in
//! tmux ptys — a test user runs the real `sudo` (and, last, the real `su`) against a
//! sudo-like PAM stack with `pam_vigil.so reauth` / `authfail` / account lines (see
//! `vigil_e2e::sudo::reauth_stack`). What is checked is what the user sees (a password
//! prompt or none, the exit code, the command's output) and the audit records in
//! auth.log.
//!
//! sudo is pointed at the test stack by a harness-owned sudoers file
//! (`Defaults:USER pam_service=…`); `/etc/pam.d/sudo` and `/etc/sudoers` are never
//! touched. The su test patches `/etc/pam.d/su` and restores it byte for byte (on drop
//! and on panic too); it runs last (tests run in name order with `--test-threads=1`).
//!
//! Timing: vigild runs with `reauth_window = 20s`, `reauth_after_idle = 8s`. Typing in
//! the pane is activity and waiting without typing is idleness, so each test says which
//! it does; a test that must stay active types a key (and erases it) every 2 s. Only
//! lower bounds matter (a proof is not dropped early); waits for what is due are
//! generous. Needs root and the release build of the workspace: see tests/README.md.

use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use vigil_e2e::login::{Login, login_with};
use vigil_e2e::sshd::unix_stack;
use vigil_e2e::sudo::{self, SU_PROMPT, SUDO_PROMPT, reauth_stack, run_prompted};
use vigil_e2e::{Answer, Harness, LogLine, Prompted, SshOpts, SshSession, SshdOpts, TestUser, VigildOpts, paths, require_root, wait_for};

const WINDOW: Duration = Duration::from_secs(20);
const AFTER_IDLE: Duration = Duration::from_secs(8);
const CONFIG: &str = "[defaults]\n\
    idle_timeout = \"10m\"\n\
    reauth_window = \"20s\"\n\
    reauth_after_idle = \"8s\"\n\
    sensitive_services = [\"vigil-test-sudo-*\", \"su\", \"su-l\"]\n";

/// One step: a command's output, a record that is already due.
const STEP: Duration = Duration::from_secs(15);
/// How often a test that keeps a session active types a key.
const KEY_PERIOD: Duration = Duration::from_secs(2);

static TAG: AtomicU32 = AtomicU32::new(0);

fn tag() -> String {
    format!("r{}", TAG.fetch_add(1, Ordering::Relaxed) + 1)
}

/// rsyslogd, vigild (private socket, [`CONFIG`]), sshd with pam_vigil in its session
/// stack, a test user allowed to sudo through the re-authentication stack.
struct Env {
    h: Harness,
    user: TestUser,
    sudo_service: String,
}

fn env() -> Env {
    env_with(CONFIG)
}

fn env_with(config: &str) -> Env {
    let mut h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h.start_vigild(VigildOpts::default().no_bus().config(config));
    let module = paths::pam_module();
    let stack = unix_stack().session("required", &module.display().to_string(), &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user("alice");
    // `debug`: the module says why it answered as it did (t1 reads it).
    let sudo_service = h.install_sudo(&user, &reauth_stack(&module, &h.vigil_args().debug()));
    Env { h, user, sudo_service }
}

#[track_caller]
fn login(h: &Harness, user: &TestUser) -> Login {
    login_with(h, user, &SshOpts::default(), STEP)
}

// ---- driving sudo -------------------------------------------------------------------

/// sudo in the session, typing the user's password if asked.
#[track_caller]
fn sudo_with_password(login: &Login, user: &TestUser, command: &str) -> Prompted {
    sudo::sudo(&login.client, &tag(), command, &Answer::Password(user.password.clone()), STEP)
}

/// sudo in the session, pressing Ctrl-C if asked (for a sudo that must not ask).
#[track_caller]
fn sudo_no_password(login: &Login, command: &str) -> Prompted {
    sudo::sudo(&login.client, &tag(), command, &Answer::Interrupt, STEP)
}

/// A proof of identity for the session: sudo asks, the password is typed, vigild records.
#[track_caller]
fn prove(e: &Env, login: &Login) {
    let from = mark(&e.h);
    let run = sudo_with_password(login, &e.user, "true");
    assert!(run.asked() && run.rc == 0, "sudo with the password: {run:?}");
    wait_record(&e.h, from, "reauth_recorded", login.id());
}

/// Types a key every [`KEY_PERIOD`] until `until` (a bounded number of keys).
fn keep_active_until(client: &SshSession, until: Instant) {
    let keys = until.saturating_duration_since(Instant::now()).as_millis() / KEY_PERIOD.as_millis() + 2;
    for _ in 0..keys {
        client.press_key();
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        sleep(left.min(KEY_PERIOD));
    }
}

/// Runs a non-prompting command in the session; returns its output lines and exit code.
#[track_caller]
fn run_in(login: &Login, command: &str) -> Prompted {
    run_prompted(&login.client, &tag(), command, SUDO_PROMPT, &Answer::Interrupt, STEP)
}

// ---- audit records ------------------------------------------------------------------

/// How many lines auth.log has now: records after this mark are the next step's.
fn mark(h: &Harness) -> usize {
    h.auth_log().len()
}

fn new_lines(h: &Harness, from: usize) -> Vec<LogLine> {
    h.auth_log().into_iter().skip(from).collect()
}

/// Waits for vigild's record `event` for session `id` after `from`.
#[track_caller]
fn wait_record(h: &Harness, from: usize, event: &str, id: u64) -> LogLine {
    let id_text = id.to_string();
    wait_for(STEP, &format!("vigild: event={event} session={id} in auth.log"), || {
        let lines = new_lines(h, from);
        lines.iter().find(|l| l.is_event("vigild", event) && l.has("session", &id_text)).cloned().ok_or_else(|| {
            let shown: Vec<&str> = lines.iter().map(|l| l.raw.as_str()).collect();
            format!("new lines:\n{}", shown.join("\n"))
        })
    })
}

/// vigild's records `event` after `from` (any session).
fn records_after(h: &Harness, from: usize, event: &str) -> Vec<LogLine> {
    new_lines(h, from).into_iter().filter(|l| l.is_event("vigild", event)).collect()
}

/// The PAM service a re-authentication record is about. The record also names the
/// session's own service (sshd's); the sensitive one is `reauth_service` or, in the
/// first version of the daemon, a second `service` field.
fn reauth_service(line: &LogLine) -> Option<String> {
    line.field("reauth_service").or_else(|| line.fields().into_iter().filter(|(k, _)| k == "service").map(|(_, v)| v).next_back())
}

#[track_caller]
fn assert_reason(line: &LogLine, reason: &str, service: &str) {
    assert_eq!(line.field("reason").as_deref(), Some(reason), "{}", line.raw);
    assert_eq!(reauth_service(line).as_deref(), Some(service), "{}", line.raw);
}

fn proof_age_s(line: &LogLine) -> u64 {
    line.field("proof_age_s").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no proof_age_s in {}", line.raw))
}

// ---- the tests ------------------------------------------------------------------------

#[test]
fn t1_sudo_asks_once_then_trusts_the_proof_within_the_window() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);

    let from = mark(&e.h);
    let first = sudo_with_password(&a, &e.user, "id -u");
    assert_eq!((first.prompts, first.rc), (1, 0), "the first sudo asks the password: {first:?}");
    assert!(first.output.iter().any(|l| l.trim() == "0"), "the command ran as root: {first:?}");
    let required = wait_record(&e.h, from, "reauth_required", a.id());
    assert_reason(&required, "none", &e.sudo_service);
    assert_eq!(required.field("reauth_tty"), Some(a.tty()), "{}", required.raw);
    assert_eq!(required.field("user").as_deref(), Some(e.user.name.as_str()));
    let recorded = wait_record(&e.h, from, "reauth_recorded", a.id());
    assert_eq!(reauth_service(&recorded).as_deref(), Some(e.sudo_service.as_str()), "{}", recorded.raw);
    assert_eq!(recorded.field("reauth_tty"), Some(a.tty()), "{}", recorded.raw);

    let from = mark(&e.h);
    let second = sudo_no_password(&a, "id -u");
    assert_eq!((second.prompts, second.rc), (0, 0), "the second sudo within the window does not ask: {second:?}");
    assert!(second.output.iter().any(|l| l.trim() == "0"), "{second:?}");
    let granted = wait_record(&e.h, from, "reauth_granted", a.id());
    assert_eq!(reauth_service(&granted).as_deref(), Some(e.sudo_service.as_str()), "{}", granted.raw);
    assert!(proof_age_s(&granted) < WINDOW.as_secs(), "{}", granted.raw);
    // With `debug` the module also says why, at debug severity (all.log), not as a record.
    let why = format!("reauth granted for {}", e.sudo_service);
    vigil_e2e::wait_for(STEP, "the module's debug line", || {
        e.h.all_log()
            .into_iter()
            .find(|l| l.tag == "pam_vigil" && l.event().is_none() && l.message.contains(&why))
            .ok_or_else(|| "not yet".to_string())
    });
    // A grant from the cache makes no new proof (else the window would never end).
    sleep(Duration::from_millis(300));
    assert!(records_after(&e.h, from, "reauth_recorded").is_empty(), "{:?}", records_after(&e.h, from, "reauth_recorded"));
}

#[test]
fn t2_the_window_ends_even_for_an_active_session() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);
    prove(&e, &a);
    let proved = Instant::now();

    // Active past reauth_after_idle (a key every 2 s): the proof still counts.
    keep_active_until(&a.client, proved + AFTER_IDLE + Duration::from_secs(3));
    let from = mark(&e.h);
    let mid = sudo_no_password(&a, "true");
    assert_eq!((mid.prompts, mid.rc), (0, 0), "{:?} after the proof, active: no password: {mid:?}", proved.elapsed());
    let granted = wait_record(&e.h, from, "reauth_granted", a.id());
    assert!(proof_age_s(&granted) >= AFTER_IDLE.as_secs(), "{}", granted.raw);

    // Still active, past reauth_window: asked again.
    keep_active_until(&a.client, proved + WINDOW + Duration::from_millis(1500));
    let from = mark(&e.h);
    let late = sudo_with_password(&a, &e.user, "true");
    assert_eq!((late.prompts, late.rc), (1, 0), "{:?} after the proof: asks: {late:?}", proved.elapsed());
    let required = wait_record(&e.h, from, "reauth_required", a.id());
    assert_reason(&required, "expired", &e.sudo_service);
    assert!(proof_age_s(&required) >= WINDOW.as_secs(), "{}", required.raw);
    // The password typed now is a new proof.
    wait_record(&e.h, from, "reauth_recorded", a.id());
    let again = sudo_no_password(&a, "true");
    assert_eq!((again.prompts, again.rc), (0, 0), "{again:?}");
}

#[test]
fn t3_idleness_voids_the_proof_inside_the_window() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);
    prove(&e, &a);
    let proved = Instant::now();

    // Nothing typed for longer than reauth_after_idle, well inside reauth_window.
    sleep(AFTER_IDLE + Duration::from_secs(2));
    let from = mark(&e.h);
    let run = sudo_with_password(&a, &e.user, "true");
    assert_eq!((run.prompts, run.rc), (1, 0), "idle {:?} after the proof: asks: {run:?}", proved.elapsed());
    let required = wait_record(&e.h, from, "reauth_required", a.id());
    assert_reason(&required, "idle", &e.sudo_service);
    assert!(proof_age_s(&required) < WINDOW.as_secs(), "inside the window: {}", required.raw);
    wait_record(&e.h, from, "reauth_recorded", a.id());
    let again = sudo_no_password(&a, "true");
    assert_eq!((again.prompts, again.rc), (0, 0), "the new proof counts: {again:?}");
}

#[test]
fn t4_another_session_of_the_same_user_has_no_proof() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);
    let b = login(&e.h, &e.user);
    assert_ne!(a.id(), b.id());
    prove(&e, &a);

    let from = mark(&e.h);
    let in_b = sudo_with_password(&b, &e.user, "true");
    assert_eq!((in_b.prompts, in_b.rc), (1, 0), "the other session asks: {in_b:?}");
    let required = wait_record(&e.h, from, "reauth_required", b.id());
    assert_reason(&required, "none", &e.sudo_service);
    assert_eq!(required.field("reauth_tty"), Some(b.tty()), "{}", required.raw);
    wait_record(&e.h, from, "reauth_recorded", b.id());

    // The first session's proof was neither used nor changed by that.
    let from = mark(&e.h);
    let in_a = sudo_no_password(&a, "true");
    assert_eq!((in_a.prompts, in_a.rc), (0, 0), "the first session is still fresh: {in_a:?}");
    wait_record(&e.h, from, "reauth_granted", a.id());
}

#[test]
fn t5_vigild_down_means_the_password_is_asked_never_granted() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);
    prove(&e, &a);

    // Hung (SIGSTOP: the socket accepts, nobody answers): asked after the module's 1 s.
    e.h.vigild().sigstop();
    let from = mark(&e.h);
    let started = Instant::now();
    let hung = sudo_with_password(&a, &e.user, "true");
    let took = started.elapsed();
    e.h.vigild().sigcont();
    assert_eq!((hung.prompts, hung.rc), (1, 0), "vigild hung: asks, and works: {hung:?}");
    eprintln!("sudo with vigild stopped (SIGSTOP) took {took:?} (module timeout 1 s on auth and on account)");
    let timed_out = wait_for(STEP, "pam_vigil: event=reauth_required reason=daemon_unreachable (timeout)", || {
        new_lines(&e.h, from)
            .into_iter()
            .find(|l| l.is_event("pam_vigil", "reauth_required") && l.has("reason", "daemon_unreachable"))
            .ok_or_else(|| "not yet".to_string())
    });
    assert!(timed_out.field("error").is_some_and(|e| e.contains("within 1s")), "{}", timed_out.raw);
    // The proof typed while vigild was hung may or may not have been recorded after
    // SIGCONT (the module gave up at once; vigild may still answer the queued call).

    e.h.vigild().stop();
    let from = mark(&e.h);
    let run = sudo_with_password(&a, &e.user, "id -u");
    assert_eq!((run.prompts, run.rc), (1, 0), "vigild down, fresh proof or not: asks, and works: {run:?}");
    assert!(run.output.iter().any(|l| l.trim() == "0"), "{run:?}");
    let unreachable = wait_for(STEP, "pam_vigil: event=reauth_required reason=daemon_unreachable (down)", || {
        new_lines(&e.h, from)
            .into_iter()
            .find(|l| l.is_event("pam_vigil", "reauth_required") && l.has("reason", "daemon_unreachable"))
            .ok_or_else(|| "not yet".to_string())
    });
    assert_eq!(unreachable.field("service").as_deref(), Some(e.sudo_service.as_str()), "{}", unreachable.raw);
    assert_eq!(unreachable.field("user").as_deref(), Some(e.user.name.as_str()), "{}", unreachable.raw);
    assert!(unreachable.field("error").is_some_and(|e| e.contains("unreachable")), "{}", unreachable.raw);

    // A wrong password with vigild down: refused, and the module says so itself.
    let from = mark(&e.h);
    let wrong = sudo::sudo(&a.client, &tag(), "true", &Answer::Password("not-the-password".into()), STEP);
    assert_eq!(wrong.prompts, 1, "{wrong:?}");
    assert_ne!(wrong.rc, 0, "{wrong:?}");
    wait_for(STEP, "pam_vigil: event=reauth_failed", || {
        new_lines(&e.h, from).into_iter().find(|l| l.is_event("pam_vigil", "reauth_failed")).ok_or_else(|| "not yet".to_string())
    });

    // Back up: the new vigild takes the session over (saved at shutdown, leader still
    // running) but not its proofs of identity, so it cannot grant either.
    let from = mark(&e.h);
    e.h.vigild().start();
    wait_for(STEP, "vigild: event=session_restored for the session", || {
        new_lines(&e.h, from)
            .into_iter()
            .find(|l| l.is_event("vigild", "session_restored") && l.has("session", &a.id().to_string()))
            .ok_or_else(|| "not yet".to_string())
    });
    let from = mark(&e.h);
    let after = sudo_with_password(&a, &e.user, "true");
    assert_eq!((after.prompts, after.rc), (1, 0), "{after:?}");
    wait_for(STEP, "vigild: event=reauth_required reason=none (proofs are not kept across a restart)", || {
        records_after(&e.h, from, "reauth_required")
            .into_iter()
            .find(|l| l.has("reason", "none") && l.has("session", &a.id().to_string()))
            .ok_or_else(|| "not yet".to_string())
    });
    assert!(records_after(&e.h, from, "reauth_granted").is_empty());
}

#[test]
fn t6_a_wrong_password_is_refused_audited_and_proves_nothing() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);

    let from = mark(&e.h);
    let wrong = sudo::sudo(&a.client, &tag(), "id -u", &Answer::Password("not-the-password".into()), STEP);
    assert_eq!(wrong.prompts, 1, "{wrong:?}");
    assert_eq!(wrong.rc, 1, "sudo refuses: {wrong:?}");
    assert!(!wrong.output.iter().any(|l| l.trim() == "0"), "the command must not run: {wrong:?}");
    let failed = wait_record(&e.h, from, "reauth_failed", a.id());
    assert_eq!(reauth_service(&failed).as_deref(), Some(e.sudo_service.as_str()), "{}", failed.raw);
    assert_eq!(failed.field("reauth_tty"), Some(a.tty()), "{}", failed.raw);
    assert!(records_after(&e.h, from, "reauth_recorded").is_empty(), "no proof from a wrong password");

    let from = mark(&e.h);
    let next = sudo_with_password(&a, &e.user, "true");
    assert_eq!((next.prompts, next.rc), (1, 0), "the next sudo asks again: {next:?}");
    let required = wait_record(&e.h, from, "reauth_required", a.id());
    assert_reason(&required, "none", &e.sudo_service);
    wait_record(&e.h, from, "reauth_recorded", a.id());
}

/// The `next sudo:` line of `vigilctl status`, run by the user in their session.
#[track_caller]
fn next_sudo_line(login: &Login, socket: &str) -> String {
    let vigilctl = paths::vigilctl_bin().display().to_string();
    vigil_e2e::conformance::vigilctl_ran(&["status"]);
    let run = run_in(login, &format!("{vigilctl} --socket {socket} status"));
    assert_eq!(run.rc, 0, "vigilctl status as the user: {run:?}");
    run.output.iter().find(|l| l.trim_start().starts_with("next sudo:")).cloned().unwrap_or_else(|| panic!("no `next sudo:` line: {run:?}"))
}

#[test]
fn t7_revoke_by_the_user_and_status() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);
    let socket = e.h.private_socket().display().to_string();
    let vigilctl = paths::vigilctl_bin().display().to_string();

    let before = next_sudo_line(&a, &socket);
    assert!(before.contains("asks the password"), "{before}");
    prove(&e, &a);
    let fresh = next_sudo_line(&a, &socket);
    assert!(fresh.contains("does not ask"), "{fresh}");
    // The same answer for scripts: `status --json` names the session and what sudo does.
    vigil_e2e::conformance::vigilctl_ran(&["status", "--json"]);
    let json =
        run_in(&a, &format!("{vigilctl} --socket {socket} status --json | grep -o -e '\"id\": [0-9]*' -e '\"next_sudo_asks\": [a-z]*'"));
    assert_eq!(json.rc, 0, "{json:?}");
    assert!(json.output.iter().any(|l| l.trim() == format!("\"id\": {}", a.id())), "status --json names the session: {json:?}");
    assert!(json.output.iter().any(|l| l.trim() == "\"next_sudo_asks\": false"), "status --json: sudo does not ask: {json:?}");

    let from = mark(&e.h);
    vigil_e2e::conformance::vigilctl_ran(&["reauth", "--revoke"]);
    let revoke = run_in(&a, &format!("{vigilctl} --socket {socket} reauth --revoke"));
    assert_eq!(revoke.rc, 0, "{revoke:?}");
    assert!(revoke.output.iter().any(|l| l.contains("proof of identity dropped")), "{revoke:?}");
    let revoked = wait_record(&e.h, from, "reauth_revoked", a.id());
    assert_eq!(revoked.field("reason").as_deref(), Some("user"), "{}", revoked.raw);
    let after = next_sudo_line(&a, &socket);
    assert!(after.contains("asks the password") && after.contains("revoked"), "{after}");

    let from = mark(&e.h);
    let run = sudo_with_password(&a, &e.user, "true");
    assert_eq!((run.prompts, run.rc), (1, 0), "after the revoke sudo asks: {run:?}");
    let required = wait_record(&e.h, from, "reauth_required", a.id());
    assert_reason(&required, "revoked", &e.sudo_service);
    wait_record(&e.h, from, "reauth_recorded", a.id());
    let again = next_sudo_line(&a, &socket);
    assert!(again.contains("does not ask"), "{again}");
}

/// The calls a user may loop on to write records (RevokeReauth, Inhibit, CancelInhibit)
/// are limited per user and minute (`USER_CALLS_PER_MINUTE` in daemon/src/sessions/manager.rs).
const USER_CALLS_PER_MINUTE: usize = 30;

/// A user looping on `vigilctl reauth --revoke` gets 30 records a minute, then refusals,
/// recorded once.
#[test]
fn t10_a_user_looping_on_revoke_cannot_flood_the_trail() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);
    let socket = e.h.private_socket().display().to_string();
    let vigilctl = paths::vigilctl_bin().display().to_string();
    let from = mark(&e.h);
    let tries = 2 * USER_CALLS_PER_MINUTE;
    let command = format!(
        "ok=0; no=0; for i in $(seq {tries}); do if {vigilctl} --socket {socket} reauth --revoke >/dev/null 2>&1; \
         then ok=$((ok+1)); else no=$((no+1)); fi; done; echo LOOP-ok=$ok-no=$no"
    );
    let run = run_in(&a, &command);
    let summary = run.output.iter().find(|l| l.contains("LOOP-ok=")).unwrap_or_else(|| panic!("{run:?}"));
    assert!(
        summary.contains(&format!("LOOP-ok={USER_CALLS_PER_MINUTE}-no={}", tries - USER_CALLS_PER_MINUTE)),
        "30 revokes a minute, the rest refused: {summary}"
    );
    let refused = e.h.wait_for_event(STEP, "vigild", "call_refused", &[("method", "RevokeReauth"), ("reason", "rate_limited")]);
    let revoked = records_after(&e.h, from, "reauth_revoked");
    assert_eq!(revoked.len(), USER_CALLS_PER_MINUTE, "one record per allowed call");
    let refusals: Vec<LogLine> = records_after(&e.h, from, "call_refused");
    assert_eq!(refusals.len(), 1, "refusals recorded once a minute: {refusals:#?}");
    assert!(refused.has("uid", &e.user.uid.to_string()), "{}", refused.raw);
}

/// su in the session: `su [-] -c 'echo SU-AS-$(id -un)' TARGET`, typing `password` if asked.
#[track_caller]
fn su(login: &Login, dash: bool, target: &str, password: &str) -> Prompted {
    let command = format!("su {}-c 'echo SU-AS-$(id -un)' {target}", if dash { "- " } else { "" });
    run_prompted(&login.client, &tag(), &command, SU_PROMPT, &Answer::Password(password.to_string()), STEP)
}

fn ran_as(run: &Prompted, user: &str) -> bool {
    run.output.iter().any(|l| l.trim() == format!("SU-AS-{user}"))
}

#[test]
fn t8_an_idle_warning_revokes_the_proof() {
    require_root!();
    // Only the warning can void the proof here: no reauth_after_idle, a long window.
    let e = env_with(
        "[defaults]\nidle_timeout = \"16s\"\nidle_warning = \"8s\"\nreauth_window = \"5m\"\nreauth_after_idle = \"0\"\n\
         sensitive_services = [\"vigil-test-sudo-*\"]\n",
    );
    let a = login(&e.h, &e.user);
    prove(&e, &a);
    let from = mark(&e.h);
    // Idle: the warning comes 8 s after the last key.
    a.client.wait_for_text("*** vigil:", Duration::from_secs(8) + STEP);
    let revoked = wait_record(&e.h, from, "reauth_revoked", a.id());
    assert_eq!(revoked.field("reason").as_deref(), Some("idle_warning"), "{}", revoked.raw);
    assert_eq!(revoked.field("proofs").as_deref(), Some("1"), "{}", revoked.raw);
    let run = sudo_with_password(&a, &e.user, "true");
    assert_eq!((run.prompts, run.rc), (1, 0), "after the warning sudo asks: {run:?}");
    assert_reason(&wait_record(&e.h, from, "reauth_required", a.id()), "revoked", &e.sudo_service);
}

#[test]
fn t9_su_follows_the_same_policy() {
    require_root!();
    let before = std::fs::read(sudo::SU_PAM_FILE).expect("read /etc/pam.d/su");
    let e = env();
    let bob = e.h.create_user("bob");
    let module = paths::pam_module().display().to_string();
    let base = e.h.vigil_args();
    let args = |extra: Option<&str>| {
        let mut a = vigil_e2e::VigilArgs { timeout: None, fail: None, ..base.clone() };
        if let Some(x) = extra {
            a = a.timeout("1s").extra(x);
        }
        a.to_args().join(" ")
    };
    e.h.patch_su(&[
        format!("auth     sufficient  {module} {}", args(Some("reauth"))),
        format!("account  optional    {module} {}", args(None)),
    ]);
    let patched = std::fs::read(sudo::SU_PAM_FILE).unwrap();
    assert_ne!(patched, before);
    let a = login(&e.h, &e.user);
    let me = e.user.name.as_str();

    // su to oneself asks one's own password: the first time, then not within the window.
    let from = mark(&e.h);
    let first = su(&a, false, me, &e.user.password);
    assert_eq!((first.prompts, first.rc), (1, 0), "{first:?}");
    assert!(ran_as(&first, me), "{first:?}");
    assert_reason(&wait_record(&e.h, from, "reauth_required", a.id()), "none", "su");
    let recorded = wait_record(&e.h, from, "reauth_recorded", a.id());
    assert_eq!(reauth_service(&recorded).as_deref(), Some("su"), "{}", recorded.raw);

    let from = mark(&e.h);
    let second = su(&a, false, me, &e.user.password);
    assert_eq!((second.prompts, second.rc), (0, 0), "{second:?}");
    assert!(ran_as(&second, me), "{second:?}");
    let granted = wait_record(&e.h, from, "reauth_granted", a.id());
    assert_eq!(reauth_service(&granted).as_deref(), Some("su"), "{}", granted.raw);

    // `su -` is PAM service su-l (which includes su); the proof is the session's.
    let from = mark(&e.h);
    let login_shell = su(&a, true, me, &e.user.password);
    assert_eq!((login_shell.prompts, login_shell.rc), (0, 0), "{login_shell:?}");
    let via_sudo = sudo_no_password(&a, "true");
    assert_eq!((via_sudo.prompts, via_sudo.rc), (0, 0), "the proof typed for su counts for sudo: {via_sudo:?}");
    // Both grants logged before the next mark (so that none is counted after it).
    wait_for(STEP, "two reauth_granted records (su-l, sudo)", || {
        let services: Vec<Option<String>> = records_after(&e.h, from, "reauth_granted").iter().map(reauth_service).collect();
        if services.len() >= 2 { Ok(services) } else { Err(format!("{services:?}")) }
    });

    // su to ANOTHER user asks that user's password: the caller's proof proves nothing
    // about bob, and bob's password proves nothing about the caller.
    let from = mark(&e.h);
    let other = su(&a, false, &bob.name, &bob.password);
    assert_eq!(other.prompts, 1, "su to another user must ask that user's password: {other:?}");
    assert_eq!(other.rc, 0, "{other:?}");
    assert!(ran_as(&other, &bob.name), "{other:?}");
    let other_user = e.h.wait_for_log(STEP, "pam_vigil: event=reauth_required reason=other_user", |l| {
        l.is_event("pam_vigil", "reauth_required") && l.has("reason", "other_user") && l.has("user", &bob.name)
    });
    assert_eq!(other_user.field("uid"), Some(e.user.uid.to_string()), "{}", other_user.raw);
    // And root: the caller's own password is no way to become root through su.
    let to_root = run_prompted(&a.client, &tag(), "su -c 'echo SU-AS-$(id -un)' root", SU_PROMPT, &Answer::Interrupt, STEP);
    assert_eq!(to_root.prompts, 1, "su to root must ask root's password: {to_root:?}");
    assert!(!ran_as(&to_root, "root"), "{to_root:?}");
    sleep(Duration::from_millis(300));
    assert!(records_after(&e.h, from, "reauth_granted").is_empty(), "{:?}", records_after(&e.h, from, "reauth_granted"));
    assert!(records_after(&e.h, from, "reauth_recorded").is_empty(), "{:?}", records_after(&e.h, from, "reauth_recorded"));
    // The caller's own proof is untouched by all that.
    let mine = su(&a, false, me, &e.user.password);
    assert_eq!((mine.prompts, mine.rc), (0, 0), "{mine:?}");

    let restored = e.h.restore_su().expect("restore /etc/pam.d/su");
    assert_eq!(restored, before);
    assert_eq!(std::fs::read(sudo::SU_PAM_FILE).unwrap(), before, "/etc/pam.d/su is byte-identical again");
    drop(e);
    assert_eq!(std::fs::read(sudo::SU_PAM_FILE).unwrap(), before);
}

/// A service that includes vigil-reauth but is not among `sensitive_services`: the
/// password is asked as usual, vigild records `reauth_required reason=not_sensitive`, and
/// the module offers no proof after it, so no unauthenticated `call_refused` line (which
/// `audit verify --strict` counts against the trail) is written at each sudo.
#[test]
fn a_service_that_is_not_sensitive_writes_no_refused_proof_at_each_sudo() {
    require_root!();
    let e = env_with("[defaults]\nidle_timeout = \"1h\"\nsensitive_services = [\"su\"]\n");
    let a = login(&e.h, &e.user);
    let from = mark(&e.h);
    for _ in 0..2 {
        let run = sudo_with_password(&a, &e.user, "true");
        assert_eq!((run.prompts, run.rc), (1, 0), "sudo of a service vigil does not decide for asks as usual: {run:?}");
    }
    assert_reason(&wait_record(&e.h, from, "reauth_required", a.id()), "not_sensitive", &e.sudo_service);
    let refused: Vec<String> =
        new_lines(&e.h, from).iter().filter(|l| l.is_event("pam_vigil", "call_refused")).map(|l| l.raw.clone()).collect();
    assert!(refused.is_empty(), "no call_refused from the module: {refused:#?}");
}

/// A sudo that gets no password at all (`sudo -S` reading an empty stdin) reaches the
/// `authfail` line like a wrong password does, but nothing was typed: nothing is recorded
/// as a failure. A wrong password right after is (one `reauth_failed`).
#[test]
fn a_sudo_without_a_password_typed_is_no_failed_password() {
    require_root!();
    let e = env();
    let a = login(&e.h, &e.user);
    let from = mark(&e.h);
    a.client.send_line("sudo -S true </dev/null; echo NOPASS-RC=$?");
    let rc = a.client.wait_for(STEP, "sudo -S with no input to give up", |screen| {
        let at = screen.rfind("NOPASS-RC=")? + "NOPASS-RC=".len();
        screen[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().ok()
    });
    assert_ne!(rc, 0, "sudo without a password fails");
    let wrong = sudo::sudo(&a.client, &tag(), "true", &Answer::Password("not-the-password".into()), STEP);
    assert_eq!((wrong.prompts, wrong.rc), (1, 1), "{wrong:?}");
    wait_record(&e.h, from, "reauth_failed", a.id());
    let failed = records_after(&e.h, from, "reauth_failed");
    assert_eq!(failed.len(), 1, "only the typed wrong password is a failure: {failed:#?}");
}
