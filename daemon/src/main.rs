//! vigild: registers login sessions, ends idle ones, decides re-authentication, and
//! audits every decision. This file parses arguments and wires the pieces together.

mod audit;
mod locks;
mod metrics;
mod rpc;
mod sessions;
mod supervise;
mod sys;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use vigil_config::{Config, ConfigError};
use vigil_daemon::cli::vigild::Args;
use vigil_protocol::audit::Record;
use vigil_protocol::events::Event;
use zbus::connection::Builder;

use crate::audit::audit_log::AuditLog;
use crate::rpc::bus_shares::BusShares;
use crate::rpc::manager_iface::ManagerIface;
use crate::rpc::session_objects::SessionObjects;
use crate::sessions::ids::IdAllocator;
use crate::sessions::manager::Manager;
use crate::sessions::store::SessionStore;

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
        Err(error) => {
            eprintln!("vigild: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration at start: a missing file means built-in defaults; a bad file
/// stops the start, with the file, line and column.
fn initial_config(path: &Path) -> Result<(Config, &'static str), ConfigError> {
    if !path.exists() {
        return Ok((Config::builtin(), "builtin"));
    }
    Config::load(path).map(|c| (c, "file"))
}

/// Why vigild could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot open the audit trail in {}: {source}", path.display())]
    Audit { path: PathBuf, source: io::Error },
    #[error("cannot start the idle supervisor (inotify): {0}")]
    Supervisor(io::Error),
    #[error("cannot listen on {}: {source}", path.display())]
    Listen { path: PathBuf, source: io::Error },
    /// An explicit `--bus` that cannot be used (zbus's or the socket's error, as text).
    #[error("cannot own {} on {address}: {error}", vigil_protocol::BUS_NAME)]
    Bus { address: String, error: String },
}

async fn run(args: Args) -> Result<(), StartError> {
    let (config, config_source) = initial_config(&args.config)?;
    // Every private-socket peer is a descriptor: take the whole hard limit (admission
    // keeps users far below it), so that running out never costs a login.
    let nofile = sys::rlimit::raise_nofile_soft_to_hard().map_err(|e| eprintln!("vigild: cannot raise RLIMIT_NOFILE: {e}")).ok();
    // /run/vigil holds the private socket every user connects to: 0755, like
    // /run/systemd; what is in it is private (sessions/ 0700, files 0600).
    sys::dirs::create_dir_with_mode(&args.state_dir, 0o755)
        .map_err(|source| StartError::CreateDir { path: args.state_dir.clone(), source })?;
    let sessions_dir = args.state_dir.join("sessions");
    let store = SessionStore::open(sessions_dir.clone()).map_err(|source| StartError::CreateDir { path: sessions_dir.clone(), source })?;
    let ids = IdAllocator::open(Some(args.state_dir.join("next-session-id")));
    let (audit, first_key) = AuditLog::open(args.syslog_socket.clone(), Some(args.audit_dir.clone()), config.audit(), args.foreground)
        .map_err(|source| StartError::Audit { path: args.audit_dir.clone(), source })?;
    let audit = Arc::new(audit);
    if let Some(key) = &first_key {
        audit.write(
            Record::new(Event::AuditKeyInit)
                .number("start_seq", key.start_seq)
                .text("key_file", args.audit_dir.join(vigil_audit::writer::INITIAL_KEY_FILE).as_os_str().as_encoded_bytes())
                .text("by", "vigild first start"),
        );
    }
    let (locks, strays) = locks::book::LockBook::open(args.lock_dir.clone())
        .map_err(|source| StartError::CreateDir { path: args.lock_dir.clone(), source })?;
    for stray in strays {
        eprintln!("vigild: {} is not a lock vigild wrote ({}); left in place, and ignored", stray.path.display(), stray.why);
    }
    let core = Arc::new(Manager::new(config, args.config.clone(), audit, ids, store, locks));
    let objects = SessionObjects::new(&core);
    core.add_hooks(objects.clone());
    // A pidfd per session leader, as many as the descriptor limit leaves room for once
    // connections and files have theirs (supervise/leaders.rs); the sweep takes the rest.
    let leader_pidfds =
        supervise::leaders::budget_for(sys::rlimit::nofile_soft().unwrap_or(1024)).min(args.max_leader_pidfds.unwrap_or(usize::MAX));
    core.add_hooks(supervise::leaders::LeaderWatch::with_budget(&core, leader_pidfds));
    let supervisor = supervise::supervisor::spawn(core.clone()).map_err(StartError::Supervisor)?;
    core.add_hooks(supervisor);
    core.add_hooks(metrics::textfile::spawn(core.clone()));
    supervise::clock_steps::spawn(core.clone());

    let listener = rpc::private_socket::bind(&args.socket).map_err(|source| StartError::Listen { path: args.socket.clone(), source })?;
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
            .number_opt("nofile", nofile.map(|(_, soft)| soft))
            .number("leader_pidfds", leader_pidfds as u64),
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    for warning in core.audit_config_warnings(core.config()).await {
        eprintln!("vigild: warning: {warning}");
    }

    let (restored, gone, unreadable) = sessions::restore::restore(&core);
    if restored + gone + unreadable > 0 {
        eprintln!(
            "vigild: {restored} session(s) restored from {}, {gone} ended meanwhile, {unreadable} unreadable",
            sessions_dir.display()
        );
    }
    sessions::adopt::spawn(core.clone(), adoption_scope(&args));
    // Locks that ran out while vigild was down end first, then each at its time.
    locks::expiry::spawn(core.clone());

    let server = tokio::spawn(rpc::private_socket::serve(listener, core.clone(), objects.clone()));
    let stop_reason = wait_for_signals(&core).await;

    server.abort();
    // The sessions stay on disk while vigild restarts: the next vigild takes them over.
    let _ = std::fs::remove_file(&args.socket);
    core.audit.write(Record::new(Event::DaemonStop).text("signal", stop_reason).number("sessions", core.session_count() as i128));
    core.audit.close();
    drop(bus);
    Ok(())
}

fn adoption_scope(args: &Args) -> sessions::adopt::Scope {
    if args.no_adopt {
        sessions::adopt::Scope::Off
    } else if args.adopt_users.is_empty() {
        sessions::adopt::Scope::All
    } else {
        sessions::adopt::Scope::Users(args.adopt_users.iter().cloned().collect())
    }
}

/// Owns org.vigil1 on the bus given by --bus, or on the system bus when one runs.
/// A missing system bus is normal (containers, minimal hosts); a --bus that fails is
/// an error. Session objects are served on demand when vigild connects the socket
/// itself (`bus_socket`: every `unix:` address), from the start otherwise.
async fn connect_bus(args: &Args, core: &Arc<Manager>, objects: &Arc<SessionObjects>) -> Result<Option<zbus::Connection>, StartError> {
    if args.no_bus {
        return Ok(None);
    }
    let explicit = args.bus.is_some();
    let address = args.bus.clone().unwrap_or_else(vigil_protocol::system_bus_address);
    let unavailable = |e: String| {
        if explicit {
            Err(StartError::Bus { address: address.clone(), error: e })
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
    let (builder, services) = match rpc::bus_socket::connect(&address, objects, shares).await {
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
    crate::rpc::caller::open_lookup(&address).await;
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
                if let Err(e) = core.reload_config("sighup", None).await {
                    eprintln!("vigild: reload failed: {e}; the running policy is unchanged");
                }
            }
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
        }
    }
}
