//! vigild: registers login sessions, ends idle ones, decides re-authentication, and
//! audits every decision. This file parses arguments and wires the pieces together.

mod admission;
mod adopt;
mod audit_log;
mod bus;
mod bus_shares;
mod bus_socket;
mod caller;
mod clock;
mod guarded_socket;
mod idle;
mod ids;
mod inhibit;
mod leaders;
mod logind;
mod manager;
mod ownership;
mod pidfd;
mod private_socket;
mod procfs;
mod reauth;
mod reauth_calls;
mod records;
mod registry;
mod restore;
mod rlimit;
mod session_calls;
mod single_call;
mod store;
mod supervisor;
mod terminate;
mod tty_claims;
mod tty_input;
mod ttys;
mod users;
mod warning;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use vigil_config::Config;
use vigil_daemon::cli::vigild::Args;
use vigil_protocol::audit::Record;
use vigil_protocol::events::Event;
use zbus::connection::Builder;

use crate::audit_log::AuditLog;
use crate::bus::{ManagerIface, SessionObjects};
use crate::bus_shares::BusShares;
use crate::ids::IdAllocator;
use crate::manager::Manager;
use crate::store::SessionStore;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigild: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vigild: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration at start: a missing file means built-in defaults; a bad file
/// stops the start, with the file, line and column.
fn initial_config(path: &Path) -> Result<(Config, &'static str), String> {
    if !path.exists() {
        return Ok((Config::builtin(), "builtin"));
    }
    Config::load(path).map(|c| (c, "file")).map_err(|e| e.to_string())
}

async fn run(args: Args) -> Result<(), String> {
    let (config, config_source) = initial_config(&args.config)?;
    // Every private-socket peer is a descriptor: take the whole hard limit (admission
    // keeps users far below it), so that running out never costs a login.
    let nofile = rlimit::raise_nofile_soft_to_hard().map_err(|e| eprintln!("vigild: cannot raise RLIMIT_NOFILE: {e}")).ok();
    // /run/vigil holds the private socket every user connects to: 0755, like
    // /run/systemd; what is in it is private (sessions/ 0700, files 0600).
    store::create_dir_with_mode(&args.state_dir, 0o755).map_err(|e| format!("cannot create {}: {e}", args.state_dir.display()))?;
    let sessions_dir = args.state_dir.join("sessions");
    let store = SessionStore::open(sessions_dir.clone()).map_err(|e| format!("cannot create {}: {e}", sessions_dir.display()))?;
    restore::remove_legacy_state(&args.state_dir);
    let ids = IdAllocator::open(Some(args.state_dir.join("next-session-id")));
    let (audit, first_key) = AuditLog::open(args.syslog_socket.clone(), Some(args.audit_dir.clone()), config.audit(), args.foreground)
        .map_err(|e| format!("cannot open the audit trail in {}: {e}", args.audit_dir.display()))?;
    let audit = Arc::new(audit);
    if let Some(key) = &first_key {
        audit.write(
            Record::new(Event::AuditKeyInit)
                .number("start_seq", key.start_seq)
                .text("key_file", args.audit_dir.join(vigil_audit::writer::INITIAL_KEY_FILE).as_os_str().as_encoded_bytes())
                .text("by", "vigild first start"),
        );
    }
    let core = Arc::new(Manager::new(config, args.config.clone(), audit, ids, store));
    let objects = SessionObjects::new(&core);
    core.add_hooks(objects.clone());
    core.add_hooks(leaders::LeaderWatch::new(&core));
    let supervisor = supervisor::spawn(core.clone()).map_err(|e| format!("cannot start the idle supervisor (inotify): {e}"))?;
    core.add_hooks(supervisor);
    clock::spawn(core.clone());

    let listener = private_socket::bind(&args.socket).map_err(|e| format!("cannot listen on {}: {e}", args.socket.display()))?;
    let bus = connect_bus(&args, &core, &objects).await?;
    if let (Some(_), Some(address)) = (&bus, &args.bus) {
        core.set_logind_bus(address.clone());
    }

    core.audit.write(
        Record::new(Event::DaemonStart)
            .text("version", env!("CARGO_PKG_VERSION"))
            .number("pid", std::process::id())
            .text("config", args.config.as_os_str().as_encoded_bytes())
            .text("config_source", config_source)
            .text("socket", args.socket.as_os_str().as_encoded_bytes())
            .text("bus", if bus.is_some() { "yes" } else { "no" })
            .number_opt("nofile", nofile.map(|(_, soft)| soft)),
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    for warning in core.audit_config_warnings(core.config()).await {
        eprintln!("vigild: warning: {warning}");
    }

    let (restored, gone, unreadable) = restore::restore(&core);
    if restored + gone + unreadable > 0 {
        eprintln!(
            "vigild: {restored} session(s) restored from {}, {gone} ended meanwhile, {unreadable} unreadable",
            sessions_dir.display()
        );
    }
    adopt::spawn(core.clone(), adoption_scope(&args));

    let server = tokio::spawn(private_socket::serve(listener, core.clone(), objects.clone()));
    let stop_reason = wait_for_signals(&core).await;

    server.abort();
    // The sessions stay on disk while vigild restarts: the next vigild takes them over.
    let _ = std::fs::remove_file(&args.socket);
    core.audit.write(Record::new(Event::DaemonStop).text("signal", stop_reason).number("sessions", core.session_count() as i128));
    core.audit.close();
    drop(bus);
    Ok(())
}

fn adoption_scope(args: &Args) -> adopt::Scope {
    if args.no_adopt {
        adopt::Scope::Off
    } else if args.adopt_users.is_empty() {
        adopt::Scope::All
    } else {
        adopt::Scope::Users(args.adopt_users.iter().cloned().collect())
    }
}

/// Owns org.vigil1 on the bus given by --bus, or on the system bus when one runs.
/// A missing system bus is normal (containers, minimal hosts); a --bus that fails is
/// an error. Session objects are served on demand when vigild connects the socket
/// itself (`bus_socket`: every `unix:` address), from the start otherwise.
async fn connect_bus(args: &Args, core: &Arc<Manager>, objects: &Arc<SessionObjects>) -> Result<Option<zbus::Connection>, String> {
    if args.no_bus {
        return Ok(None);
    }
    let explicit = args.bus.is_some();
    let address = args.bus.clone().unwrap_or_else(bus_socket::system_bus_address);
    let unavailable = |e: String| {
        if explicit {
            Err(format!("cannot own {} on {}: {e}", vigil_protocol::BUS_NAME, address))
        } else {
            eprintln!("vigild: no system bus ({e}); serving the private socket only");
            Ok(None)
        }
    };
    let audit = Arc::downgrade(core);
    let shares = BusShares::new(Box::new(move |record| {
        if let Some(core) = audit.upgrade() {
            core.audit.write(record);
        }
    }));
    let (builder, services) = match bus_socket::connect(&address, objects, shares).await {
        Ok(Some((socket, services))) => (Builder::socket(socket), Some(services)),
        Ok(None) => (Builder::address(address.as_str()), None),
        Err(e) => return unavailable(e.to_string()),
    };
    let built = builder
        .name(vigil_protocol::BUS_NAME)
        .serve_at(vigil_protocol::MANAGER_PATH, ManagerIface { core: core.clone(), peer: None })
        .build()
        .await;
    let connection = match built {
        Ok(connection) => connection,
        Err(e) => return unavailable(e.to_string()),
    };
    if let Some(services) = &services {
        services.on_bus(connection.server_guid().as_str());
        services.connected(connection.object_server()).await;
    }
    objects.attach_bus(&connection, services.is_some()).await;
    crate::caller::open_lookup(&address).await;
    Ok(Some(connection))
}

/// Runs until SIGTERM or SIGINT; SIGHUP reloads the configuration.
async fn wait_for_signals(core: &Arc<Manager>) -> &'static str {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        eprintln!("vigild: cannot install signal handlers");
        return "none";
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Err(e) = core.reload_config("sighup").await {
                    eprintln!("vigild: reload failed: {e}");
                }
            }
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
        }
    }
}
