//! The private socket: the same D-Bus objects, peer-to-peer, without a broker
//! (like systemd's /run/systemd/private). Logins never wait on dbus-daemon.
//!
//! Every local user may connect, so the socket is built to hold against them: a
//! bounded number of connections per uid and in total, with a pool of its own for root
//! (the PAM module calls as root, so users can never crowd out logins); each
//! connection's input passes the frame guard (see `guarded_socket`); a connection holds
//! its slot and its descriptor only while it is open. A limit that bites is audited at
//! most once per uid per minute.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};

use nix::sys::socket::SockFlag;
use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;
use vigil_protocol::audit::Record;
use vigil_protocol::events::Event;
use vigil_protocol::frame::{MAX_MESSAGE_BYTES, Refusal};
use zbus::Guid;
use zbus::connection::Builder;
use zbus::message::Message;

use crate::rpc::caller::Caller;
use crate::rpc::guarded_socket::{self, Dropped, RefusalAuditor, Services, Source, Start, UNPRIVILEGED_IDLE};
use crate::rpc::manager_iface::ManagerIface;
use crate::rpc::session_objects::SessionObjects;
use crate::rpc::single_call::{self, Opening, OpeningReader};
use crate::rpc::throttle::{Admission, ConnectionLimits, REPORT_PERIOD, ReportThrottle};
use crate::sessions::manager::Manager;

/// How long a peer may take to finish the D-Bus handshake before it is dropped.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Binds the socket. Mode 0666: every local user may connect (`vigilctl status`);
/// each method decides from the peer's credentials what the caller may do.
pub fn bind(path: &Path) -> std::io::Result<StdListener> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        crate::sys::dirs::create_dir_with_mode(dir, 0o755)?;
    }
    // A stale socket from a previous run would make bind fail.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = StdListener::bind(path)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Accepts peers forever; each admitted one gets its own connection task.
///
/// Peers are accepted as plain non-blocking sockets: one the module has already written
/// its call to and shut down (`single_call`) is answered and closed without ever being
/// registered with the event loop.
pub async fn serve(listener: StdListener, core: Arc<Manager>, objects: Arc<SessionObjects>) {
    let guid = Guid::generate();
    let admission = Admission::new(ConnectionLimits::DEFAULT);
    let refusals = Arc::new(Mutex::new(ReportThrottle::new(REPORT_PERIOD)));
    spawn_unreported_summary(&core, &admission, &refusals);
    let on_refusal = refusal_auditor(&core, &refusals);
    // SAFETY: `register` is unsafe only because the descriptor must stay open while it
    // is registered; the AsyncFd owns the listener, so it closes with the registration.
    let listener = match unsafe { AsyncFd::register(listener) } {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("vigild: cannot watch the private socket: {e}");
            return;
        }
    };
    loop {
        let accepted = match listener.readable().await {
            Ok(mut ready) => match ready.try_io(|l| accept(l.get_ref())) {
                Ok(accepted) => accepted,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) included: wait for connections to close.
                eprintln!("vigild: accept on the private socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Read once here; the connection is given these credentials, so that the
        // handshake does not resolve the peer's groups through NSS on a worker thread
        // (vigild never uses them) while a login waits.
        let Ok(peer) = Caller::of_socket(&stream) else { continue };
        let permit = match admission.admit(peer.uid, Instant::now()) {
            Ok(permit) => permit,
            Err(refused) => {
                // Closed before the handshake: the peer costs nothing more.
                drop(stream);
                if let Some(suppressed) = refused.report {
                    core.audit.write(
                        Record::new(Event::ConnectionRefused)
                            .number("uid", peer.uid)
                            .number("pid", peer.pid)
                            .text("reason", refused.reason.as_str())
                            .number("limit", refused.limit as u64)
                            .number("suppressed", suppressed),
                    );
                }
                continue;
            }
        };
        let context =
            PeerContext { core: core.clone(), objects: objects.clone(), guid: guid.clone().into(), on_refusal: on_refusal.clone() };
        tokio::spawn(async move {
            let _permit = permit;
            context.serve(stream, peer).await;
        });
    }
}

/// What a connection's task needs from the listener.
struct PeerContext {
    core: Arc<Manager>,
    objects: Arc<SessionObjects>,
    guid: zbus::OwnedGuid,
    on_refusal: RefusalAuditor,
}

impl PeerContext {
    /// One peer, from its first byte to its last: the module's call answered here
    /// (`single_call`), anything else served by zbus.
    async fn serve(self, stream: StdStream, peer: Caller) {
        let mut reader = OpeningReader::new(peer.uid);
        // What the peer has sent by now: the module's whole side, usually.
        let read_by_now = reader.decide_now(&mut |buffer| (&stream).read(buffer));
        if let Some(Opening::Call { call, rest, closed: true }) = &read_by_now
            && rest.is_empty()
        {
            // Answered and closed without registering the socket with the event loop.
            let Some(unsent) = self.answer(peer, call, |out| (&stream).write(out)).await else { return };
            if !unsent.is_empty()
                && let Ok(mut stream) = UnixStream::from_std(stream)
            {
                let _ = single_call::send_rest(&mut stream, &unsent).await;
            }
            return;
        }
        let Ok(mut stream) = UnixStream::from_std(stream) else { return };
        let opening = match read_by_now {
            Some(opening) => opening,
            None => reader.decide(&stream, tokio::time::Instant::now() + HANDSHAKE_DEADLINE).await,
        };
        let start = match opening {
            Opening::Gone => return,
            Opening::Other(read) => Start::Opening { read },
            Opening::Call { call, rest, closed } => {
                let Some(unsent) = self.answer(peer, &call, |out| stream.try_write(out)).await else { return };
                if single_call::send_rest(&mut stream, &unsent).await.is_err() {
                    return;
                }
                match self.after_answer(&stream, peer, rest, closed).await {
                    Some(read) => Start::Authenticated { read },
                    None => return,
                }
            }
        };
        let authenticated = matches!(start, Start::Authenticated { .. });
        let services = Arc::new(Services {
            objects: self.objects,
            object_server: OnceLock::new(),
            early_paths: Mutex::default(),
            source: Source::Peer(peer, self.on_refusal),
        });
        let socket = guarded_socket::split_at(stream, services.clone(), start);
        let guid = self.guid;
        let builder = if authenticated { Builder::authenticated_socket(socket, guid) } else { Builder::socket(socket).server(guid) };
        let pending = builder.p2p().serve_at(vigil_protocol::MANAGER_PATH, ManagerIface { core: self.core, peer: Some(peer) }).build();
        let Ok(Ok(connection)) = tokio::time::timeout(HANDSHAKE_DEADLINE, pending).await else {
            return;
        };
        services.connected(connection.object_server()).await;
        connection.closed().await;
    }

    /// Answers a module's call and writes what the socket takes at once (`write` is its
    /// non-blocking write); returns the rest. The call's records reach the audit writer
    /// once the answer is out, and are never held while vigild waits on the peer.
    async fn answer(&self, peer: Caller, call: &Message, write: impl FnOnce(&[u8]) -> std::io::Result<usize>) -> Option<Vec<u8>> {
        let _hold = self.core.audit.hold();
        let answer = single_call::answer(&self.core, peer, call).await.ok()?;
        let mut out = single_call::answer_bytes(self.guid.as_str(), &answer);
        // WouldBlock, or a peer already gone (then the rest fails the same way).
        let taken = write(&out).unwrap_or(0);
        Some(out.split_off(taken))
    }

    /// After an answered call: `None` once the peer closes (the module does at once),
    /// or what it sent next, for zbus. An unprivileged peer that keeps the connection
    /// open without a word is dropped after [`UNPRIVILEGED_IDLE`], as zbus's reader would.
    async fn after_answer(&self, stream: &UnixStream, peer: Caller, mut rest: Vec<u8>, closed: bool) -> Option<Vec<u8>> {
        if !rest.is_empty() {
            return Some(rest);
        }
        if closed {
            return None;
        }
        let quiet_until = (!peer.is_root()).then(|| tokio::time::Instant::now() + UNPRIVILEGED_IDLE);
        loop {
            let readable = stream.readable();
            match quiet_until {
                Some(deadline) => tokio::time::timeout_at(deadline, readable).await.ok()?.ok()?,
                None => readable.await.ok()?,
            }
            let mut chunk = [0u8; 4096];
            match stream.try_read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    rest.extend_from_slice(&chunk[..n]);
                    return Some(rest);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return None,
            }
        }
    }
}

/// A new peer's socket, non-blocking and close-on-exec from the start.
fn accept(listener: &StdListener) -> std::io::Result<StdStream> {
    let fd = nix::sys::socket::accept4(listener, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)?;
    Ok(StdStream::from(fd))
}

/// Refusals held back for a user who then went quiet would never be counted in a later
/// record: once a period, what is left is recorded (`refusals_unreported`).
fn spawn_unreported_summary(core: &Arc<Manager>, admission: &Admission, refusals: &Arc<Mutex<ReportThrottle<u32>>>) {
    let (core, admission, refusals) = (Arc::downgrade(core), admission.clone(), refusals.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REPORT_PERIOD).await;
            let Some(core) = core.upgrade() else { return };
            let now = Instant::now();
            let connections = admission.take_unreported(now);
            let messages = refusals.lock().unwrap_or_else(|p| p.into_inner()).take_unreported(now);
            if connections + messages > 0 {
                core.audit.write(Record::new(Event::RefusalsUnreported).number("connections", connections).number("messages", messages));
            }
        }
    });
}

/// Audits a peer whose connection its guard closed, at most once per uid a minute.
fn refusal_auditor(core: &Arc<Manager>, throttle: &Arc<Mutex<ReportThrottle<u32>>>) -> RefusalAuditor {
    let (core, throttle) = (Arc::downgrade(core), throttle.clone());
    Arc::new(move |peer: Caller, dropped: Dropped<'_>| {
        let Some(core) = core.upgrade() else { return };
        let report = throttle.lock().unwrap_or_else(|p| p.into_inner()).should_report(peer.uid, Instant::now());
        let Some(suppressed) = report else { return };
        let (bytes, limit) = match dropped {
            Dropped::Input(Refusal::TooLarge { bytes }) => (Some(*bytes), MAX_MESSAGE_BYTES),
            Dropped::Input(_) => (None, MAX_MESSAGE_BYTES),
            Dropped::RepliesUnread { limit } => (None, limit),
        };
        core.audit.write(
            Record::new(Event::MessageRefused)
                .number("uid", peer.uid)
                .number("pid", peer.pid)
                .text("reason", dropped.reason())
                .number_opt("bytes", bytes)
                .number("limit", limit as u64)
                .number("suppressed", suppressed),
        );
    })
}
