//! vigilctl: the admin and user CLI for vigild.

mod admin;
mod follow;
mod inhibit;
mod locks;
mod remote;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use vigil_daemon::cli::vigilctl::{AuditCommand, Cli, Command};
use vigil_daemon::connection_limits::ConnectionLimits;
use vigil_protocol::events::ReauthReason;
use vigil_protocol::time::{compact, human, now_usec};
use vigil_protocol::{ManagerProxy, SessionInfo, Target, VigilError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(host) = &cli.host {
        return remote::run(host, &cli, &std::env::args_os().collect::<Vec<_>>());
    }
    let outcome = match &cli.command {
        Command::CheckConfig { file, strict } => check_config(file.clone(), *strict),
        Command::Audit { command: AuditCommand::Verify { files, keys, strict } } => return verify(files, keys, *strict),
        Command::Audit { command: AuditCommand::Show { files, user, session, event, since, until, json, follow } } => {
            let filter =
                vigil_audit::timeline::Filter { user: user.clone(), session: *session, event: event.clone(), since: *since, until: *until };
            if *follow { follow::follow(files, &filter, *json) } else { show(files, &filter, *json) }
        }
        Command::Audit {
            command: AuditCommand::Report { files, since, until, keys, json, new_hour_after, reauth_failures, reauth_window, long_session },
        } => {
            let thresholds = vigil_audit::report::Thresholds {
                new_hour_after: *new_hour_after,
                reauth_failures: usize::from(*reauth_failures),
                reauth_window: *reauth_window,
                long_session: *long_session,
            };
            report(files, *since, *until, thresholds, keys, *json)
        }
        _ => talk_to_vigild(&cli),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vigilctl: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `audit show`: the timeline, to stdout.
fn show(files: &[PathBuf], filter: &vigil_audit::timeline::Filter, json: bool) -> Result<(), String> {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
    match vigil_audit::timeline::show_files(files, filter, json, &mut out) {
        // A reader that stopped early (`| head`) wanted no more.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        outcome => outcome.map_err(|e| e.to_string()),
    }
}

/// `audit report`: the same reading and filters as `audit show`; `thresholds` are the
/// unusual rules'.
fn report(
    files: &[PathBuf],
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    thresholds: vigil_audit::report::Thresholds,
    keys: &[PathBuf],
    json: bool,
) -> Result<(), String> {
    let keys = keys.iter().map(read_key).collect::<Result<Vec<_>, _>>()?;
    let filter = vigil_audit::timeline::Filter { since, until, ..Default::default() };
    let report = vigil_audit::report::report_files(files, &filter, thresholds, &keys).map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

fn read_key(path: &PathBuf) -> Result<vigil_audit::chain::KeyFile, String> {
    let refused = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| refused(&e))?;
    vigil_audit::chain::KeyFile::parse(&text).map_err(|e| refused(&e))
}

/// `audit verify`: exit 0 only when every record verifies (and, with `strict`, no
/// record is unauthenticated); 1 when not; 2 when a file or key cannot be read.
fn verify(files: &[PathBuf], keys: &[PathBuf], strict: bool) -> ExitCode {
    let key_files = match keys.iter().map(read_key).collect::<Result<Vec<_>, _>>() {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("vigilctl: {e}");
            return ExitCode::from(2);
        }
    };
    match vigil_audit::verify::verify_files(files, &key_files) {
        Ok(report) => {
            print!("{}", report.render_with(strict));
            if report.passes(strict) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("vigilctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// `check-config`: errors fail; warnings go to stderr and fail only with `strict`.
fn check_config(file: Option<PathBuf>, strict: bool) -> Result<(), String> {
    // The default file is optional (vigild runs on the built-in defaults without it); a
    // file named on the command line is the one the admin means to check.
    if file.is_none() && !std::path::Path::new(vigil_config::DEFAULT_PATH).exists() {
        println!("{}: no such file: vigild runs on the built-in defaults (OK)", vigil_config::DEFAULT_PATH);
        return Ok(());
    }
    let path = file.unwrap_or_else(|| PathBuf::from(vigil_config::DEFAULT_PATH));
    let config = vigil_config::Config::load(&path).map_err(|e| e.to_string())?;
    let warnings = config.warnings(&vigil_config::NssAccounts);
    for warning in &warnings {
        eprintln!("vigilctl: warning: {warning}");
    }
    let count = match warnings.len() {
        0 => String::new(),
        1 => ", 1 warning".to_owned(),
        n => format!(", {n} warnings"),
    };
    if strict && !warnings.is_empty() {
        return Err(format!("{}: refused with --strict: {} policy block(s){count}", path.display(), config.policy_count()));
    }
    println!("{}: OK, {} policy block(s){count}", path.display(), config.policy_count());
    Ok(())
}

/// Where this command's call goes: `--bus`, `--socket` (or VIGIL_SOCKET), else the
/// private socket, but for a user other than root the system bus for the admin verbs
/// polkit may delegate (list and show fall back to the socket, for the user's own
/// sessions, when vigild is not on the system bus).
fn route(cli: &Cli) -> (Target, Option<Target>) {
    if let Some(address) = &cli.bus {
        return (Target::Bus(address.clone()), None);
    }
    if let Some(path) = &cli.socket {
        return (Target::Socket(path.clone()), None);
    }
    let socket = Target::default();
    match &cli.command {
        _ if nix::unistd::geteuid().is_root() => (socket, None),
        Command::List { .. } | Command::Show { .. } => (Target::system_bus(), Some(socket)),
        command if needs_authorization(command) => (Target::system_bus(), None),
        _ => (socket, None),
    }
}

/// The verbs vigild refuses to a user other than root unless polkit says yes.
fn needs_authorization(command: &Command) -> bool {
    matches!(command, Command::Terminate { .. } | Command::Reload | Command::Lock { .. } | Command::Unlock { .. } | Command::Locks { .. })
}

fn talk_to_vigild(cli: &Cli) -> Result<(), String> {
    let (target, fallback) = route(cli);
    // A prompt for an admin's password, on this terminal, when polkit wants one.
    let may_ask = matches!(target, Target::Bus(_))
        && needs_authorization(&cli.command)
        && !cli.no_ask_password
        && !nix::unistd::geteuid().is_root()
        && nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let timeout = if may_ask { cli.timeout + admin::PROMPT_ALLOWANCE } else { cli.timeout };
    zruntime::block_on(async {
        let runtime = zruntime::SharedRuntime::current().map_err(|e| e.to_string())?;
        match runtime.timeout(timeout, run(&cli.command, &target, fallback.as_ref(), may_ask)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer from vigild on {} within {}", target.describe(), human(timeout))),
        }
    })
}

/// A connection to vigild at `target`, or at `fallback` when vigild is not on that bus.
async fn connect(target: &Target, fallback: Option<&Target>) -> Result<zbus::Connection, String> {
    let Some(fallback) = fallback else { return target.connect().await.map_err(|e| cannot_connect(target, &e)) };
    if let Ok(connection) = target.connect().await {
        let on_bus = match zbus::fdo::DBusProxy::new(&connection).await {
            Ok(dbus) => dbus.name_has_owner(vigil_protocol::BUS_NAME.try_into().map_err(|e| format!("{e}"))?).await.unwrap_or(false),
            Err(_) => false,
        };
        if on_bus {
            return Ok(connection);
        }
    }
    fallback.connect().await.map_err(|e| cannot_connect(fallback, &e))
}

async fn run(command: &Command, target: &Target, fallback: Option<&Target>, may_ask: bool) -> Result<(), String> {
    let connection = connect(target, fallback).await?;
    let manager = ManagerProxy::new(&connection).await.map_err(|e| e.to_string())?;
    // polkit's text agent on this terminal, registered before the call reaches polkit.
    let agent = if may_ask { admin::TtyAgent::start() } else { None };
    let admin = admin::AdminCalls::new(&manager, agent.is_some());
    match command {
        Command::List { json } => {
            let sessions = manager.list_sessions().await.map_err(explain)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&sessions.iter().map(session_json).collect::<Vec<_>>()).map_err(|e| e.to_string())?
                );
            } else {
                // An older vigild has no inhibitors to list.
                let inhibitors = manager.list_inhibitors().await.unwrap_or_default();
                table::print_table(sessions, &inhibitors, table::colour_wanted());
            }
        }
        Command::Show { id, json } => {
            let s = manager.get_session(*id).await.map_err(explain)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&session_json(&s)).map_err(|e| e.to_string())?);
            } else {
                print_session(&s);
            }
        }
        Command::Terminate { id } => {
            admin.call::<_, ()>("TerminateSession", &(*id,)).await.map_err(explain)?;
            println!("session {id} terminated: its processes got SIGHUP; what is left after the policy's kill_grace gets SIGKILL");
        }
        Command::Reload => println!("{}", admin.call::<_, String>("Reload", &()).await.map_err(explain)?),
        Command::Daemon => {
            let s = manager.status().await.map_err(explain)?;
            println!("vigild {}\nconfig: {} ({} policy block(s))\nsessions: {}", s.version, s.config_path, s.policy_count, s.session_count);
        }
        Command::Metrics => print!("{}", manager.metrics().await.map_err(explain)?),
        Command::Status { json } => {
            let s = manager.my_status().await.map_err(explain)?;
            let inhibitor = inhibit::of_session(&manager, s.session.id).await;
            if *json {
                let mut value = session_json(&s.session);
                value["idle"] = serde_json::json!(s.idle_usec / 1_000_000);
                value["next_sudo_asks"] = serde_json::json!(s.next_sudo_asks);
                value["reauth_reason"] = serde_json::json!(s.reauth_reason);
                value["proof_age"] = serde_json::json!(s.proof_age_usec / 1_000_000);
                value["inhibitor"] =
                    inhibitor.map_or(serde_json::Value::Null, |i| serde_json::json!({"until": i.until_usec / 1_000_000, "why": i.why}));
                println!("{}", serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?);
            } else {
                print_session(&s.session);
                println!("  idle for:      {}", human(Duration::from_secs(s.idle_usec / 1_000_000)));
                let sudo = if s.next_sudo_asks {
                    format!("asks the password ({})", reauth_words(&s.reauth_reason))
                } else {
                    format!("does not ask (password typed {} ago)", human(Duration::from_secs(s.proof_age_usec / 1_000_000)))
                };
                println!("  next sudo:     {sudo}");
                if let Some(i) = &inhibitor {
                    println!("  inhibited:     {}", inhibit::describe(i));
                }
            }
        }
        Command::Inhibit { duration, why, cancel, session } => inhibit::run(&manager, *duration, why.as_deref(), *cancel, *session).await?,
        Command::Lock { user, why, duration } => locks::lock(&admin, user, why, *duration).await?,
        Command::Unlock { user, why } => locks::unlock(&admin, user, why.as_deref()).await?,
        Command::Locks { json } => locks::list(&admin, *json).await?,
        Command::Reauth { revoke } => {
            if !*revoke {
                return Err("say what to do: vigilctl reauth --revoke".into());
            }
            let dropped = manager.revoke_reauth().await.map_err(explain)?;
            println!("proof of identity dropped ({dropped}); the next sudo, su or pkexec asks the password");
        }
        Command::Audit { command: AuditCommand::Init { out } } => match out {
            Some(path) => init_key_into(&manager, path).await?,
            None => print!("{}", manager.audit_init().await.map_err(explain)?),
        },
        Command::Audit { command: AuditCommand::Seal } => {
            let seq = manager.audit_seal().await.map_err(explain)?;
            println!("seal record written (seq {seq})");
        }
        Command::CheckConfig { .. } | Command::Audit { .. } => unreachable!("handled without vigild"),
    }
    Ok(())
}

/// Why the password will be asked, in words; a reason this vigilctl does not know (a
/// newer vigild's) as vigild wrote it.
fn reauth_words(reason: &str) -> &str {
    match reason.parse::<ReauthReason>() {
        Ok(ReauthReason::NoProof) => "no password typed in this session yet",
        Ok(ReauthReason::Expired) => "the last password is older than reauth_window",
        Ok(ReauthReason::Idle) => "the session sat idle since the last password",
        Ok(ReauthReason::Revoked) => "the proof was revoked",
        Ok(ReauthReason::Always) => "policy: always ask",
        // Not MyStatus answers today (they concern another user, service or caller),
        // shown as vigild wrote them.
        Ok(ReauthReason::OtherUser | ReauthReason::NotSensitive | ReauthReason::UnknownSession | ReauthReason::DaemonUnreachable)
        | Err(_) => reason,
    }
}

/// Turns vigild's error replies into what the user should know.
/// Why no connection was made, and what to do. vigild closes a connection over its
/// limits as soon as it accepts it, before a byte is read: a handshake cut short on a
/// socket that accepts connections is that refusal, not a daemon that is down.
fn cannot_connect(target: &Target, error: &zbus::Error) -> String {
    let cut_short = match error {
        zbus::Error::InputOutput(e) => {
            matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof)
        }
        zbus::Error::Handshake(why) => why.contains("EOF"),
        _ => false,
    };
    if let Target::Socket(path) = target
        && cut_short
        && std::os::unix::net::UnixStream::connect(path).is_ok()
    {
        let limits = ConnectionLimits::DEFAULT;
        let which = if nix::unistd::geteuid().is_root() {
            format!("vigild takes at most {} at a time from root", limits.root_total)
        } else {
            format!(
                "vigild takes at most {} at a time from one user, {} from all users together",
                limits.per_uid, limits.unprivileged_total
            )
        };
        return format!(
            "vigild refused the connection on {}: too many connections ({which}); close other vigilctl commands or programs \
             connected to it and retry ({error})",
            target.describe(),
        );
    }
    format!("cannot reach vigild on {}: {error}\n  is vigild running? (systemctl status vigild, or see the README)", target.describe())
}

fn explain(error: VigilError) -> String {
    match error {
        VigilError::AccessDenied(m) if m.ends_with("root only") => format!("permission denied: {m} (run as root)"),
        VigilError::AccessDenied(m) => format!("permission denied: {m}"),
        VigilError::NoSuchSession(m) => m,
        VigilError::InvalidArgument(m) => format!("invalid argument: {m}"),
        VigilError::ConfigInvalid(m) => format!("configuration refused: {m}"),
        VigilError::Failed(m) => format!("vigild failed: {m}"),
        VigilError::ZBus(e) => format!("D-Bus error: {e}"),
    }
}

fn session_json(s: &SessionInfo) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "user": s.user,
        "uid": s.uid,
        "service": s.service,
        "tty": s.tty,
        "rhost": s.rhost,
        "leader_pid": s.leader_pid,
        "audit_session_id": (s.audit_session_id != u32::MAX).then_some(s.audit_session_id),
        "started": s.started_usec / 1_000_000,
        "last_activity": s.last_activity_usec / 1_000_000,
        "policy": s.policy,
        "ttys": s.ttys,
        "deadline": (s.deadline_usec != 0).then_some(s.deadline_usec / 1_000_000),
        "parent": (s.parent != 0).then_some(s.parent),
        "activity": {
            "by": s.activity_by,
            "tty": (!s.activity_tty.is_empty()).then_some(&s.activity_tty),
            "reader": (!s.activity_reader.is_empty()).then_some(&s.activity_reader),
            "accesses_ignored": s.accesses_ignored,
        },
    })
}

/// What the session's last activity was measured by, in words.
fn activity_words(s: &SessionInfo) -> String {
    let tty = or_dash(&s.activity_tty);
    let mut words = match s.activity_by.as_str() {
        "start" => "none seen since the session started (or vigild took it over)".to_string(),
        "tty_read" => format!("input read from {tty} by {}, its foreground", or_dash(&s.activity_reader)),
        "tty_access" => format!("an access to {tty} that could not be checked (/proc unreadable)"),
        "tty_output" => format!("output on {tty} (output_is_activity)"),
        "tty_time" => format!("the times of {tty} (not watched through inotify)"),
        "process_io" => "I/O of the session's processes (no tty)".to_string(),
        other => printable(other),
    };
    if s.accesses_ignored > 0 {
        words.push_str(&format!("; since then {} access(es) to its ttys that were not reads, ignored", s.accesses_ignored));
    }
    words
}

fn age(usec: u64) -> String {
    let secs = now_usec().saturating_sub(usec) / 1_000_000;
    compact(Duration::from_secs(secs))
}

/// Names and hosts come from users and remote peers: show control characters escaped
/// so that they cannot rewrite the admin's terminal.
fn printable(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// The session's terminals as vigild found them, else what PAM said.
fn tty_column(s: &SessionInfo) -> String {
    if s.ttys.is_empty() { or_dash(&s.tty) } else { printable(&s.ttys.join(",")) }
}

/// Time left until the session is ended, `-` when no limit applies.
fn deadline_column(s: &SessionInfo) -> String {
    if s.deadline_usec == 0 {
        return "-".into();
    }
    let left = s.deadline_usec.saturating_sub(now_usec()) / 1_000_000;
    compact(Duration::from_secs(left))
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { printable(s) }
}

fn print_session(s: &SessionInfo) {
    let ses = if s.audit_session_id == u32::MAX { "-".to_string() } else { s.audit_session_id.to_string() };
    println!("session {}", s.id);
    println!("  user:          {} (uid {})", or_dash(&s.user), s.uid);
    println!("  service:       {}", or_dash(&s.service));
    println!("  tty:           {} (PAM_TTY {})", tty_column(s), or_dash(&s.tty));
    println!("  remote host:   {}", or_dash(&s.rhost));
    println!("  leader pid:    {}", s.leader_pid);
    println!("  audit session: {ses}");
    println!("  started:       {} ago", age(s.started_usec));
    println!("  last activity: {} ago", age(s.last_activity_usec));
    println!("  measured by:   {}", activity_words(s));
    println!("  ends in:       {}", deadline_column(s));
    if s.parent != 0 {
        println!("  inside:        session {}", s.parent);
    }
    println!("  policy:        {}", printable(&s.policy));
}

/// `audit init --out PATH`: the file is created (mode 0400, never over an existing one)
/// before vigild is asked for a new key, so that a path that cannot take the key refuses
/// the command while the chain still runs on the old key. Once vigild has switched, the
/// key must not be lost: if it cannot be written, it is printed instead.
async fn init_key_into(manager: &ManagerProxy<'_>, path: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(|e| format!("{}: {e}; no new key was started", path.display()))?;
    let key = match manager.audit_init().await {
        Ok(key) => key,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(explain(e));
        }
    };
    match file.write_all(key.as_bytes()).and_then(|()| file.sync_all()) {
        Ok(()) => {
            println!("new audit key written to {}: keep it off this host", path.display());
            Ok(())
        }
        Err(e) => {
            print!("{key}");
            Err(format!("{}: {e}; vigild already uses the new key, printed above: keep it", path.display()))
        }
    }
}
