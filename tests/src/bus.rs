//! A private message bus acting as the system bus, on `<dir>/bus.sock`: dbus-daemon, or
//! dbus-broker ([`BusKind`]) with the same configuration file.
//!
//! Its configuration mirrors the default policy of Debian's
//! `/usr/share/dbus-1/system.conf`, then either includes the repository's
//! `packaging/dbus/org.vigil1.conf` by absolute path (a drift in that file breaks the
//! tests) or, for [`BusPolicy::Permissive`], lets anyone call anything on `org.vigil1`
//! (to prove vigild's own checks without the bus policy's help).
//!
//! dbus-broker runs outside systemd as `dbus-broker-launch --scope system --config-file
//! FILE` under `systemd-socket-activate -l <dir>/bus.sock` (the launcher only takes a
//! listening socket handed over, as systemd's `dbus.socket` does). Two things the
//! launcher insists on are given to it in a mount namespace of its own
//! (`unshare --mount`), so the machine's `/run` is never touched: its log goes to
//! `/run/systemd/journal/socket` (a datagram socket of this harness, read into
//! `<dir>/dbus-broker.journal`; the launcher exits if it cannot connect), and it connects
//! to the bus it serves through `DBUS_SYSTEM_BUS_ADDRESS`. Nothing asks systemd or the
//! audit subsystem as long as no service is D-Bus activated and `--audit` is not given.

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::paths::bus_policy_file;
use crate::process::{Ledger, ManagedChild, TERM_GRACE, describe_output, run_bounded};
use crate::procfs::{ProcInfo, all_processes, children_in};
use crate::wait::{try_wait_for, wait_for};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The broker's log kept at most (it logs a line or two per start and per refusal).
const JOURNAL_LIMIT: u64 = 1 << 20;

/// `dbus-send` arguments after the transport: OpenSessionEx with made-up values, as a
/// non-root caller would try it (the bus's policy or vigild must refuse it).
pub const OPEN_SESSION_ARGS: [&str; 12] = [
    "--print-reply",
    "--dest=org.vigil1",
    "/org/vigil1",
    "org.vigil1.Manager.OpenSessionEx",
    "string:x",
    "string:y",
    "string:z",
    "string:h",
    "string:r",
    "uint32:1",
    "uint32:1",
    "array:string:rhost",
];

/// Which rules govern calls to `org.vigil1` on the private bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusPolicy {
    /// The repository's `packaging/dbus/org.vigil1.conf`, included by path.
    Packaging,
    /// Root may own `org.vigil1`; anyone may send anything to it.
    Permissive,
}

/// Which message bus daemon serves the private bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// The reference implementation, Debian's default (`dbus-daemon`).
    DbusDaemon,
    /// Debian's `dbus-broker` package, started by `dbus-broker-launch`.
    DbusBroker,
}

impl BusKind {
    /// The name of the process that relays the messages.
    pub fn name(self) -> &'static str {
        match self {
            BusKind::DbusDaemon => "dbus-daemon",
            BusKind::DbusBroker => "dbus-broker",
        }
    }

    /// What the bus says in its AccessDenied error when its policy refused a call.
    pub fn policy_refusal_text(self) -> &'static str {
        match self {
            BusKind::DbusDaemon => "Rejected send message",
            BusKind::DbusBroker => "Sender is not authorized to send message",
        }
    }
}

impl std::str::FromStr for BusKind {
    type Err = String;

    fn from_str(s: &str) -> Result<BusKind, String> {
        match s {
            "dbus-daemon" => Ok(BusKind::DbusDaemon),
            "dbus-broker" => Ok(BusKind::DbusBroker),
            other => Err(format!("unknown bus {other:?}: dbus-daemon or dbus-broker")),
        }
    }
}

impl std::fmt::Display for BusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub struct Bus {
    policy: BusPolicy,
    kind: BusKind,
    conf: PathBuf,
    socket: PathBuf,
    address: String,
    /// dbus-daemon, or dbus-broker-launch (in its `unshare`, exec'd in place).
    child: RefCell<ManagedChild>,
    /// dbus-broker itself: the launcher's child, which relays the messages.
    broker: Option<ProcInfo>,
    journal: RefCell<Option<JournalSink>>,
}

impl Bus {
    pub(crate) fn start_in(dir: &Path, policy: BusPolicy, kind: BusKind, ledger: &Ledger) -> Bus {
        let conf = dir.join("bus.conf");
        let socket = dir.join("bus.sock");
        std::fs::write(&conf, config_text(&socket, policy)).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        match kind {
            BusKind::DbusDaemon => start_dbus_daemon(dir, policy, conf, socket, ledger),
            BusKind::DbusBroker => start_dbus_broker(dir, policy, conf, socket, ledger),
        }
    }

    pub fn kind(&self) -> BusKind {
        self.kind
    }

    /// The bus's address: what dbus-daemon printed (`unix:path=...,guid=...`), or
    /// `unix:path=...` for dbus-broker.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> &Path {
        &self.conf
    }

    pub fn policy(&self) -> BusPolicy {
        self.policy
    }

    /// The process the harness started: dbus-daemon, or dbus-broker-launch.
    pub fn pid(&self) -> u32 {
        self.child.borrow().pid()
    }

    /// The process that relays every message: dbus-daemon, or dbus-broker (the
    /// launcher's child; the launcher only hands it the socket and the policy).
    pub fn relay_pid(&self) -> u32 {
        self.broker.as_ref().map_or_else(|| self.pid(), |b| b.pid)
    }

    /// stderr of the process started, and dbus-broker's log (its journal messages).
    pub fn stderr_text(&self) -> String {
        let mut text = self.child.borrow().stderr_text();
        if self.kind == BusKind::DbusBroker {
            text.push_str(&crate::process::read_lossy(&self.socket.with_file_name("dbus-broker.journal")));
        }
        text
    }

    /// Asks the bus (as root) whether `name` has an owner.
    pub fn name_has_owner(&self, name: &str) -> bool {
        name_has_owner(&self.address, name)
    }

    /// Stops the bus (it is also stopped when the harness is dropped). dbus-broker ends
    /// with its launcher (its parent-death signal); it is waited for, and killed by its
    /// pid if it outlives the grace.
    pub fn stop(&self) {
        self.child.borrow_mut().terminate();
        if let Some(broker) = &self.broker
            && try_wait_for(TERM_GRACE, || if broker.still_running() { Err("running".to_string()) } else { Ok(()) }).is_err()
        {
            eprintln!("vigil-e2e: dbus-broker ({}) outlived its launcher; sending SIGKILL", broker.pid);
            broker.signal(nix::sys::signal::Signal::SIGKILL);
        }
        drop(self.journal.borrow_mut().take());
    }
}

fn start_dbus_daemon(dir: &Path, policy: BusPolicy, conf: PathBuf, socket: PathBuf, ledger: &Ledger) -> Bus {
    let mut cmd = Command::new("dbus-daemon");
    cmd.arg(format!("--config-file={}", conf.display())).args(["--nofork", "--nopidfile", "--print-address=1"]);
    let mut child = ManagedChild::spawn_logged("dbus-daemon", &mut cmd, dir, ledger);
    let address = wait_for(READY_TIMEOUT, "dbus-daemon to print its address", || {
        if let Some(status) = child.try_exited() {
            panic!(
                "dbus-daemon exited ({status}); stderr:\n{}\nconfig {}:\n{}",
                child.stderr_text(),
                conf.display(),
                crate::process::read_lossy(&conf)
            );
        }
        let out = child.stdout_text();
        match out.lines().next() {
            Some(line) if out.contains('\n') && socket.exists() => Ok(line.trim().to_string()),
            _ => Err(format!("stdout so far: {out:?}")),
        }
    });
    Bus { policy, kind: BusKind::DbusDaemon, conf, socket, address, child: RefCell::new(child), broker: None, journal: RefCell::new(None) }
}

/// The launcher's shell, in its own mount namespace: a tmpfs on /run/systemd with the
/// journal socket pointing at `$1`, then systemd-socket-activate listening on `$2`,
/// which execs dbus-broker-launch with config `$3` at the first connection.
const BROKER_SCRIPT: &str = "mount -t tmpfs -o size=64k,mode=0755 vigil-e2e /run/systemd \
    && mkdir /run/systemd/journal && ln -s \"$1\" /run/systemd/journal/socket \
    && exec systemd-socket-activate -E \"DBUS_SYSTEM_BUS_ADDRESS=unix:path=$2\" -l \"$2\" \
       dbus-broker-launch --scope system --config-file \"$3\"";

fn start_dbus_broker(dir: &Path, policy: BusPolicy, conf: PathBuf, socket: PathBuf, ledger: &Ledger) -> Bus {
    // The tmpfs needs a mount point; every machine with systemd's package has it.
    assert!(
        Path::new("/run/systemd").is_dir(),
        "dbus-broker-launch: /run/systemd is missing (the tmpfs for its journal socket goes there)"
    );
    let journal = JournalSink::start(&dir.join("dbus-broker-journal.sock"), &dir.join("dbus-broker.journal"));
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", BROKER_SCRIPT, "sh"])
        .arg(journal.socket())
        .arg(&socket)
        .arg(&conf)
        .env_remove("NOTIFY_SOCKET");
    let mut child = ManagedChild::spawn_logged("dbus-broker-launch", &mut cmd, dir, ledger);
    let exited = |child: &mut ManagedChild, what: &str| {
        if let Some(status) = child.try_exited() {
            panic!(
                "dbus-broker-launch exited ({status}) {what}; stderr:\n{}\nits log:\n{}\nconfig {}:\n{}",
                child.stderr_text(),
                crate::process::read_lossy(&dir.join("dbus-broker.journal")),
                conf.display(),
                crate::process::read_lossy(&conf)
            );
        }
    };
    wait_for(READY_TIMEOUT, "systemd-socket-activate to listen", || {
        exited(&mut child, "before listening");
        if socket.exists() { Ok(()) } else { Err(format!("no {}", socket.display())) }
    });
    // Every local user may connect, as to the system bus (dbus-daemon makes it 0777);
    // nobody connects before this, so no caller meets the narrower mode.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap_or_else(|e| panic!("chmod {}: {e}", socket.display()));
    let address = format!("unix:path={}", socket.display());
    // The first connection makes systemd-socket-activate exec the launcher, which
    // starts dbus-broker and hands it the socket: ready once the bus answers.
    wait_for(READY_TIMEOUT, "dbus-broker to answer GetId", || {
        exited(&mut child, "before answering");
        let out = run_bounded(
            Command::new("dbus-send").arg(format!("--bus={address}")).args([
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.GetId",
            ]),
            Duration::from_secs(5),
            "dbus-send GetId",
        );
        if out.status.success() { Ok(()) } else { Err(describe_output(&out)) }
    });
    let launcher = child.pid();
    let broker = wait_for(READY_TIMEOUT, "dbus-broker-launch's dbus-broker", || {
        children_in(&all_processes(), launcher)
            .into_iter()
            .find(|p| p.comm == "dbus-broker")
            .ok_or_else(|| format!("children of {launcher}: {:?}", children_in(&all_processes(), launcher)))
    });
    ledger.borrow_mut().push(crate::process::SpawnRecord { name: "dbus-broker".to_string(), pid: broker.pid });
    Bus {
        policy,
        kind: BusKind::DbusBroker,
        conf,
        socket,
        address,
        child: RefCell::new(child),
        broker: Some(broker),
        journal: RefCell::new(Some(journal)),
    }
}

/// A datagram socket standing in for journald's, whose messages are appended to a
/// file (up to [`JOURNAL_LIMIT`]) by a thread until the sink is dropped.
struct JournalSink {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl JournalSink {
    fn start(socket: &Path, file: &Path) -> JournalSink {
        let receiver = UnixDatagram::bind(socket).unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        receiver.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout on the journal socket");
        let mut out = std::fs::File::create(file).unwrap_or_else(|e| panic!("create {}: {e}", file.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let reader = std::thread::spawn(move || {
            let (mut buf, mut written) = (vec![0u8; 64 * 1024], 0u64);
            while !stopping.load(Ordering::Relaxed) {
                let Ok(n) = receiver.recv(&mut buf) else { continue };
                // One journal entry: KEY=VALUE lines; MESSAGE and PRIORITY say enough.
                let entry = String::from_utf8_lossy(&buf[..n]);
                let line: Vec<&str> = entry.lines().filter(|l| l.starts_with("MESSAGE=") || l.starts_with("PRIORITY=")).collect();
                let line = format!("{}\n", line.join(" "));
                if written < JOURNAL_LIMIT {
                    written += line.len() as u64;
                    let _ = out.write_all(line.as_bytes());
                }
            }
        });
        JournalSink { socket: socket.to_path_buf(), stop, reader: Some(reader) }
    }

    fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for JournalSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Asks the bus at `address` (as root) whether `name` has an owner; panics if the
/// question itself fails.
pub fn name_has_owner(address: &str, name: &str) -> bool {
    let out = run_bounded(
        Command::new("dbus-send")
            .arg(format!("--bus={address}"))
            .args(["--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"])
            .arg("org.freedesktop.DBus.NameHasOwner")
            .arg(format!("string:{name}")),
        Duration::from_secs(10),
        "dbus-send NameHasOwner",
    );
    assert!(out.status.success(), "NameHasOwner failed: {}", describe_output(&out));
    String::from_utf8_lossy(&out.stdout).contains("boolean true")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn config_text(socket: &Path, policy: BusPolicy) -> String {
    let vigil_rules = match policy {
        BusPolicy::Packaging => format!(
            "  <!-- the repository's policy, by path: a drift there must break the tests -->\n  <include>{}</include>\n",
            xml_escape(&bus_policy_file().display().to_string())
        ),
        BusPolicy::Permissive => "  <!-- permissive: vigild's own checks are all that stands -->\n\
             \x20 <policy user=\"root\">\n\
             \x20   <allow own=\"org.vigil1\"/>\n\
             \x20 </policy>\n\
             \x20 <policy context=\"default\">\n\
             \x20   <allow send_destination=\"org.vigil1\"/>\n\
             \x20 </policy>\n"
            .to_string(),
    };
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- written by vigil-e2e: a private system bus -->
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>

  <!-- the default policy of Debian's /usr/share/dbus-1/system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>

{vigil_rules}</busconfig>
"#,
        socket = xml_escape(&socket.display().to_string()),
    )
}
