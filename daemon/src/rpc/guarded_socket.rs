//! The socket halves vigild gives zbus, for its private socket's peers and for its own
//! system bus connection: every byte read passes a frame guard before zbus sees it, and
//! each method call's object path is handed over before the call is dispatched, so that
//! a call to `/org/vigil1/session/ID` gets that session's object on the connection just
//! then (session objects are served on demand, never copied onto connections).
//!
//! For a private-socket peer (`Source::Peer`):
//! - the credentials are the ones vigild read with SO_PEERCRED at accept: zbus's own
//!   unix socket, as a server, resolves the peer's supplementary groups through NSS (on
//!   a blocking-pool thread) during every handshake, and vigild decides from the uid and
//!   pid alone while every PAM call is a new connection;
//! - zbus allocates whatever length a message header claims; the guard
//!   (`vigil_protocol::frame`) fails the read that delivers a header over 64 KiB, so
//!   nothing is allocated for it, and the connection closes;
//! - an unprivileged peer that sends nothing for `UNPRIVILEGED_IDLE` is dropped;
//! - zbus runs every call in a task of its own, and each reply then waits for the socket:
//!   a peer that sends calls and never reads the replies would have vigild hold them
//!   without end. The reader counts the calls it hands over and the writer the replies
//!   it writes (`Backlog`); at [`UNPRIVILEGED_BACKLOG`] calls unanswered (root:
//!   [`ROOT_BACKLOG`]) the reader stops reading from that peer until replies go out, and
//!   an unprivileged peer that leaves it stopped for `UNPRIVILEGED_IDLE` is dropped
//!   (`message_refused reason=replies_unread`). What vigild holds for one peer is then
//!   at most that many calls and their replies, and for one user the per-uid connection
//!   limit times that.
//!
//! For the bus (`Source::Bus`, see `bus_socket`) the guard follows the bus daemon's side of
//! the handshake and messages up to the specification's largest.
//!
//! The bus is one connection for every client: its reader is never paused (that would
//! stop root's calls with a user's); fair shares there are per caller (`bus_shares`).
//!
//! No file descriptors are passed either way (no method takes one).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use vigil_protocol::events::MessageRefusal;
use vigil_protocol::frame::{FrameGuard, Refusal};
use zbus::ObjectServer;
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split, WriteHalf};
use zbus::fdo::ConnectionCredentials;
use zbus::message::{Message, Type};

use crate::rpc::bus_shares::BusShares;
use crate::rpc::caller::{self, Caller};
use crate::rpc::session_objects::SessionObjects;

/// How long an unprivileged peer may send nothing before it is dropped: `vigilctl
/// status` needs milliseconds, and every held connection is a file descriptor of
/// vigild's. Root's connections (PAM calls, admin verbs that wait for a session's
/// processes to end) have no such limit.
pub const UNPRIVILEGED_IDLE: Duration = Duration::from_secs(5);

/// Calls an unprivileged peer may have unanswered before vigild stops reading from it.
/// `vigilctl` makes one call at a time; the largest reply (`Introspect` of the manager)
/// is about 16 KiB.
pub const UNPRIVILEGED_BACKLOG: usize = 8;
/// The same for root's connections (the module and admin verbs, never pipelined deep).
pub const ROOT_BACKLOG: usize = 64;

/// A peer's credentials as read at accept; none for the bus (zbus, as a bus client,
/// asks for none).
fn credentials(peer: Option<Caller>) -> ConnectionCredentials {
    match peer {
        Some(peer) => ConnectionCredentials::default().set_unix_user_id(peer.uid).set_process_id(peer.pid),
        None => ConnectionCredentials::default(),
    }
}

/// Why a private-socket peer's connection is closed by its guard.
pub enum Dropped<'a> {
    /// The frame guard refused its input.
    Input(&'a Refusal),
    /// It kept its calls' replies unread past [`UNPRIVILEGED_IDLE`] with the backlog full.
    RepliesUnread { limit: usize },
}

impl Dropped<'_> {
    pub fn reason(&self) -> MessageRefusal {
        match self {
            Dropped::Input(refusal) => refusal.reason(),
            Dropped::RepliesUnread { .. } => MessageRefusal::RepliesUnread,
        }
    }
}

/// Told when a peer's connection is closed by its guard (one for all connections).
pub type RefusalAuditor = Arc<dyn Fn(Caller, Dropped<'_>) + Send + Sync>;

/// The calls one peer has sent that vigild has not answered yet, by serial (a peer may
/// reuse one; each use counts), shared by the connection's reader and writer.
#[derive(Debug, Default)]
struct Backlog {
    unanswered: Mutex<HashMap<u32, usize>>,
    answered: Notify,
}

impl Backlog {
    fn len(&self) -> usize {
        self.unanswered.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }

    fn called(&self, serials: Vec<u32>) {
        let mut unanswered = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
        for serial in serials {
            *unanswered.entry(serial).or_insert(0) += 1;
        }
    }

    /// A reply went out: its call is answered (a reply to no call of the peer's counts
    /// for nothing, so it cannot make room for more).
    fn replied(&self, reply_serial: u32) {
        let mut unanswered = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = unanswered.get_mut(&reply_serial) {
            *count -= 1;
            if *count == 0 {
                unanswered.remove(&reply_serial);
            }
            drop(unanswered);
            self.answered.notify_waiters();
        }
    }

    /// Returns once fewer than `limit` calls are unanswered.
    async fn room(&self, limit: usize) {
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if self.len() < limit {
                return;
            }
            answered.await;
        }
    }
}

/// What a connection's reader needs from the rest of vigild.
pub struct Services {
    pub objects: Arc<SessionObjects>,
    /// Set once the connection is built: where session objects are added.
    pub object_server: OnceLock<ObjectServer>,
    /// Paths of calls read during the handshake (a client sends its first call right
    /// behind BEGIN), served as soon as the connection is built.
    pub early_paths: Mutex<Vec<String>>,
    /// Whose connection it is.
    pub source: Source,
}

/// Whose bytes a connection reads.
pub enum Source {
    /// A private-socket peer, with the credentials read at accept and who is told once
    /// the guard refuses its input.
    Peer(Caller, RefusalAuditor),
    /// The bus daemon, on vigild's own bus connection (`bus_socket`), whose served
    /// objects are taken out again when their session ends.
    Bus(Box<BusSide>),
}

/// What the bus connection's halves share: each user's share of it (`bus_shares`), and
/// the bus's GUID, set once the connection is built, under which callers are known.
pub struct BusSide {
    pub shares: BusShares,
    pub guid: OnceLock<String>,
}

impl BusSide {
    fn caller(&self, sender: &str) -> Option<Caller> {
        caller::known_on_bus(self.guid.get()?, sender)
    }
}

impl Source {
    fn peer(&self) -> Option<Caller> {
        match self {
            Source::Peer(peer, _) => Some(*peer),
            Source::Bus(_) => None,
        }
    }

    fn bus(&self) -> Option<&BusSide> {
        match self {
            Source::Bus(side) => Some(side),
            Source::Peer(..) => None,
        }
    }
}

struct GuardedRead {
    inner: OwnedReadHalf,
    guard: FrameGuard,
    services: Arc<Services>,
    /// A private-socket peer's calls not answered yet (none kept for the bus).
    backlog: Option<Arc<Backlog>>,
    /// Bytes vigild read before zbus took the connection (`single_call`), handed over
    /// first, through the guard like any others.
    replay: Vec<u8>,
    replayed: usize,
}

impl std::fmt::Debug for GuardedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedRead").field("peer", &self.services.source.peer()).finish_non_exhaustive()
    }
}

struct GuardedWrite {
    inner: OwnedWriteHalf,
    peer: Option<Caller>,
    services: Arc<Services>,
    backlog: Option<Arc<Backlog>>,
    /// A write failed part-way: the peer can make no sense of anything after it.
    broken: bool,
}

impl GuardedRead {
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.replayed < self.replay.len() {
            let n = buffer.len().min(self.replay.len() - self.replayed);
            buffer[..n].copy_from_slice(&self.replay[self.replayed..self.replayed + n]);
            self.replayed += n;
            if self.replayed == self.replay.len() {
                self.replay = Vec::new();
                self.replayed = 0;
            }
            return Ok(n);
        }
        if let (Some(backlog), Some(peer)) = (&self.backlog, self.services.source.peer()) {
            self.wait_for_room(backlog.clone(), peer).await?;
        }
        match self.services.source.peer() {
            Some(peer) if !peer.is_root() => match tokio::time::timeout(UNPRIVILEGED_IDLE, self.inner.read(buffer)).await {
                Ok(read) => read,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "idle unprivileged peer")),
            },
            _ => self.inner.read(buffer).await,
        }
    }
}

impl GuardedRead {
    /// Pauses reading while the peer's backlog is full; an unprivileged peer that keeps it
    /// full (it does not read its replies) for [`UNPRIVILEGED_IDLE`] is dropped.
    async fn wait_for_room(&self, backlog: Arc<Backlog>, peer: Caller) -> io::Result<()> {
        let limit = if peer.is_root() { ROOT_BACKLOG } else { UNPRIVILEGED_BACKLOG };
        if peer.is_root() {
            backlog.room(limit).await;
            return Ok(());
        }
        if tokio::time::timeout(UNPRIVILEGED_IDLE, backlog.room(limit)).await.is_ok() {
            return Ok(());
        }
        if let Source::Peer(_, audit) = &self.services.source {
            audit(peer, Dropped::RepliesUnread { limit });
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "a peer that does not read its replies"))
    }
}

#[async_trait::async_trait]
impl ReadHalf for GuardedRead {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
        let n = self.read(buffer).await?;
        let mut paths: Vec<String> = Vec::new();
        let observed = self.guard.observe(&buffer[..n], &mut |path: &str| {
            if path.starts_with(vigil_protocol::SESSION_PATH_PREFIX) {
                paths.push(path.to_owned());
            }
        });
        if let Some(backlog) = &self.backlog {
            backlog.called(self.guard.take_awaiting_replies());
        }
        if let Err(refusal) = observed {
            match &self.services.source {
                Source::Peer(peer, audit) => audit(*peer, Dropped::Input(&refusal)),
                // The bus relays only well-formed messages of at most the
                // specification's size: anything else is a broken bus, and the
                // connection ends as zbus would end it.
                Source::Bus(_) => eprintln!("vigild: unexpected input from the bus: {refusal}"),
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, refusal.to_string()));
        }
        self.services.serve(paths).await;
        Ok((n, Vec::new()))
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(credentials(self.services.source.peer()))
    }
}

impl std::fmt::Debug for GuardedWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedWrite").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl GuardedWrite {
    /// Writes some of `buffer`; an unprivileged peer whose socket takes nothing for
    /// [`UNPRIVILEGED_IDLE`] fails the write.
    async fn write_some(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self.peer {
            Some(peer) if !peer.is_root() => match tokio::time::timeout(UNPRIVILEGED_IDLE, self.inner.write(buffer)).await {
                Ok(written) => written,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "a peer that does not read its replies")),
            },
            _ => self.inner.write(buffer).await,
        }
    }

    /// Ends the connection both ways, so that its reader stops too and the tasks that
    /// wait to write fail at once instead of holding their replies.
    fn break_off(&mut self) {
        self.broken = true;
        let _ = nix::sys::socket::shutdown(std::os::fd::AsRawFd::as_raw_fd(self.inner.as_ref()), nix::sys::socket::Shutdown::Both);
    }
}

#[async_trait::async_trait]
impl WriteHalf for GuardedWrite {
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        if self.broken {
            return Err(zbus::Error::InputOutput(Arc::new(io::Error::from(io::ErrorKind::BrokenPipe))));
        }
        if !msg.data().fds().is_empty() {
            return Err(zbus::Error::InputOutput(Arc::new(io::Error::new(
                io::ErrorKind::InvalidInput,
                "vigild passes no file descriptors",
            ))));
        }
        let data = msg.data();
        let mut written = 0;
        while written < data.len() {
            match self.write_some(&data[written..]).await {
                Ok(0) => {
                    self.break_off();
                    return Err(zbus::Error::InputOutput(Arc::new(io::Error::from(io::ErrorKind::WriteZero))));
                }
                Ok(n) => written += n,
                Err(e) => {
                    self.break_off();
                    return Err(zbus::Error::InputOutput(Arc::new(e)));
                }
            }
        }
        if matches!(msg.message_type(), Type::MethodReturn | Type::Error) {
            let header = msg.header();
            if let Some(backlog) = &self.backlog
                && let Some(serial) = header.reply_serial()
            {
                backlog.replied(serial.get());
            }
            if let Some(bus) = self.services.source.bus()
                && let Some(destination) = header.destination()
            {
                bus.shares.answered(destination.as_str(), bus.caller(destination.as_str()));
            }
        }
        Ok(())
    }

    async fn sendmsg(&mut self, buffer: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<usize> {
        if !fds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "vigild passes no file descriptors"));
        }
        self.write_some(buffer).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(credentials(self.peer))
    }
}

/// The bus connection's read half: [`GuardedRead`], and each call of an unprivileged
/// caller past their share (`bus_shares`) passed over before zbus dispatches it.
#[derive(Debug)]
struct SharedBusRead(GuardedRead);

#[async_trait::async_trait]
impl ReadHalf for SharedBusRead {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
        self.0.recvmsg(buffer).await
    }

    async fn receive_message(
        &mut self,
        seq: u64,
        already_received_bytes: &mut Vec<u8>,
        already_received_fds: &mut Vec<std::os::fd::OwnedFd>,
    ) -> zbus::Result<Message> {
        loop {
            let message = self.0.receive_message(seq, already_received_bytes, already_received_fds).await?;
            if self.admits(&message) {
                return Ok(message);
            }
        }
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        self.0.peer_credentials().await
    }
}

impl SharedBusRead {
    /// Whether `message` is served: anything but a call that awaits a reply from an
    /// unprivileged caller past their share, or from a sender not known yet past the few
    /// calls it may have in flight.
    fn admits(&self, message: &Message) -> bool {
        if message.message_type() != Type::MethodCall || message.primary_header().flags().contains(zbus::message::Flags::NO_REPLY_EXPECTED)
        {
            return true;
        }
        let Some(bus) = self.0.services.source.bus() else { return true };
        let header = message.header();
        let Some(sender) = header.sender() else { return true };
        match bus.caller(sender.as_str()) {
            Some(caller) => bus.shares.admit(caller),
            None => bus.shares.admit_unknown(sender.as_str()),
        }
    }
}

impl Services {
    /// The connection is to the bus with this GUID (callers are known under it).
    pub fn on_bus(&self, guid: &str) {
        if let Some(bus) = self.source.bus() {
            let _ = bus.guid.set(guid.to_string());
        }
    }

    /// The connection is built: calls already read get their session objects now,
    /// before the connection's tasks first run (and dispatch them).
    pub async fn connected(&self, server: &ObjectServer) {
        let _ = self.object_server.set(server.clone());
        let early = std::mem::take(&mut *self.early_paths.lock().unwrap_or_else(|p| p.into_inner()));
        for path in early {
            self.serve_one(server, &path).await;
        }
    }

    async fn serve_one(&self, server: &ObjectServer, path: &str) {
        if matches!(self.source, Source::Bus(_)) {
            self.objects.serve_on_bus(server, path).await;
        } else {
            self.objects.serve(server, path).await;
        }
    }

    /// Gives the connection the session objects these calls (just read) are for, or
    /// keeps their paths until the connection is built.
    pub async fn serve(&self, paths: Vec<String>) {
        if paths.is_empty() {
            return;
        }
        match self.object_server.get() {
            Some(server) => {
                for path in paths {
                    self.serve_one(server, &path).await;
                }
            }
            None => self.early_paths.lock().unwrap_or_else(|p| p.into_inner()).extend(paths),
        }
    }
}

/// Where zbus takes over a connection.
pub enum Start {
    /// At its first byte; `read` holds what vigild read of it already.
    Opening { read: Vec<u8> },
    /// After a call vigild answered itself (`single_call`): the handshake is done, and
    /// `read` holds what the peer sent after that call.
    Authenticated { read: Vec<u8> },
}

/// The stream of the connection `services` describe (a private-socket peer's, or
/// vigild's own to the bus), for `zbus::connection::Builder::socket`.
pub fn split(stream: UnixStream, services: Arc<Services>) -> BoxedSplit {
    split_at(stream, services, Start::Opening { read: Vec::new() })
}

/// [`split`], for a connection zbus takes over at `start`.
pub fn split_at(stream: UnixStream, services: Arc<Services>, start: Start) -> BoxedSplit {
    let peer = services.source.peer();
    let (guard, replay) = match (peer, start) {
        (Some(peer), Start::Opening { read }) => (FrameGuard::new(peer.uid), read),
        (Some(_), Start::Authenticated { read }) => (FrameGuard::after_handshake(), read),
        (None, Start::Opening { read } | Start::Authenticated { read }) => (FrameGuard::for_bus(), read),
    };
    let backlog = peer.map(|_| Arc::new(Backlog::default()));
    let (read, write) = stream.into_split();
    let on_bus = services.source.bus().is_some();
    let write: Box<dyn WriteHalf> =
        Box::new(GuardedWrite { inner: write, peer, services: services.clone(), backlog: backlog.clone(), broken: false });
    let guarded = GuardedRead { inner: read, guard, services, backlog, replay, replayed: 0 };
    let read: Box<dyn ReadHalf> = if on_bus { Box::new(SharedBusRead(guarded)) } else { Box::new(guarded) };
    Split::new(read, write)
}
