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
//! - an unprivileged peer that sends nothing for `UNPRIVILEGED_IDLE` is dropped.
//!
//! For the bus (`Source::Bus`, see `bus_socket`) the guard follows the bus daemon's side of
//! the handshake and messages up to the specification's largest.
//!
//! No file descriptors are passed either way (no method takes one).

use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use vigil_protocol::frame::{FrameGuard, Refusal};
use zbus::ObjectServer;
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split, WriteHalf};
use zbus::fdo::ConnectionCredentials;

use crate::bus::SessionObjects;
use crate::caller::Caller;

/// How long an unprivileged peer may send nothing before it is dropped: `vigilctl
/// status` needs milliseconds, and every held connection is a file descriptor of
/// vigild's. Root's connections (PAM calls, admin verbs that wait for a session's
/// processes to end) have no such limit.
pub const UNPRIVILEGED_IDLE: Duration = Duration::from_secs(5);

/// A peer's credentials as read at accept; none for the bus (zbus, as a bus client,
/// asks for none).
fn credentials(peer: Option<Caller>) -> ConnectionCredentials {
    match peer {
        Some(peer) => ConnectionCredentials::default().set_unix_user_id(peer.uid).set_process_id(peer.pid),
        None => ConnectionCredentials::default(),
    }
}

/// Told when the guard refuses a peer's input (one for all connections).
pub type RefusalAuditor = Arc<dyn Fn(Caller, &Refusal) + Send + Sync>;

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
    Bus,
}

impl Source {
    fn peer(&self) -> Option<Caller> {
        match self {
            Source::Peer(peer, _) => Some(*peer),
            Source::Bus => None,
        }
    }
}

struct GuardedRead {
    inner: OwnedReadHalf,
    guard: FrameGuard,
    services: Arc<Services>,
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

#[derive(Debug)]
struct GuardedWrite {
    inner: OwnedWriteHalf,
    peer: Option<Caller>,
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
        match self.services.source.peer() {
            Some(peer) if !peer.is_root() => match tokio::time::timeout(UNPRIVILEGED_IDLE, self.inner.read(buffer)).await {
                Ok(read) => read,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "idle unprivileged peer")),
            },
            _ => self.inner.read(buffer).await,
        }
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
        if let Err(refusal) = observed {
            match &self.services.source {
                Source::Peer(peer, audit) => audit(*peer, &refusal),
                // The bus relays only well-formed messages of at most the
                // specification's size: anything else is a broken bus, and the
                // connection ends as zbus would end it.
                Source::Bus => eprintln!("vigild: unexpected input from the bus: {refusal}"),
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

#[async_trait::async_trait]
impl WriteHalf for GuardedWrite {
    async fn sendmsg(&mut self, buffer: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<usize> {
        if !fds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "vigild passes no file descriptors"));
        }
        self.inner.write(buffer).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(credentials(self.peer))
    }
}

impl Services {
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
        if matches!(self.source, Source::Bus) {
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
    let (read, write) = stream.into_split();
    let read: Box<dyn ReadHalf> = Box::new(GuardedRead { inner: read, guard, services, replay, replayed: 0 });
    let write: Box<dyn WriteHalf> = Box::new(GuardedWrite { inner: write, peer });
    Split::new(read, write)
}
