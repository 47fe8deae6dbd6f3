//! The private socket's connections as zbus sockets: the peer credentials are the ones
//! vigild read with SO_PEERCRED at accept, and every byte read passes the frame guard
//! before zbus sees it.
//!
//! - zbus's own unix socket, as a server, resolves the peer's supplementary groups
//!   through NSS (on a blocking-pool thread) during every handshake; vigild decides from
//!   the uid and pid alone, and every PAM call is a new connection.
//! - zbus allocates whatever length a message header claims; the guard
//!   (`vigil_protocol::frame`) fails the read that delivers a header over 64 KiB, so
//!   nothing is allocated for it, and the connection closes.
//! - The guard hands over each method call's object path before the call is dispatched:
//!   a call to `/org/vigil1/session/ID` gets that session's object on this connection
//!   just then (session objects are served on demand, never copied onto connections).
//! - An unprivileged peer that sends nothing for `UNPRIVILEGED_IDLE` is dropped.
//!
//! No file descriptors are passed on this socket (no method takes one).

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

fn credentials(peer: Caller) -> ConnectionCredentials {
    ConnectionCredentials::default().set_unix_user_id(peer.uid).set_process_id(peer.pid)
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
    /// Told once when the guard refuses the peer's input.
    pub on_refusal: RefusalAuditor,
    /// The connection is vigild's system bus connection (`bus_socket`), whose served
    /// objects are taken out again when their session ends.
    pub on_bus: bool,
}

struct PeerRead {
    inner: OwnedReadHalf,
    peer: Caller,
    guard: FrameGuard,
    services: Arc<Services>,
}

impl std::fmt::Debug for PeerRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerRead").field("peer", &self.peer).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct PeerWrite {
    inner: OwnedWriteHalf,
    peer: Caller,
}

#[async_trait::async_trait]
impl ReadHalf for PeerRead {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
        let n = if self.peer.is_root() {
            self.inner.read(buffer).await?
        } else {
            match tokio::time::timeout(UNPRIVILEGED_IDLE, self.inner.read(buffer)).await {
                Ok(read) => read?,
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "idle unprivileged peer")),
            }
        };
        let mut paths: Vec<String> = Vec::new();
        let observed = self.guard.observe(&buffer[..n], &mut |path: &str| {
            if path.starts_with(vigil_protocol::SESSION_PATH_PREFIX) {
                paths.push(path.to_owned());
            }
        });
        if let Err(refusal) = observed {
            (self.services.on_refusal)(self.peer, &refusal);
            return Err(io::Error::new(io::ErrorKind::InvalidData, refusal.to_string()));
        }
        self.services.serve(paths).await;
        Ok((n, Vec::new()))
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(credentials(self.peer))
    }
}

#[async_trait::async_trait]
impl WriteHalf for PeerWrite {
    async fn sendmsg(&mut self, buffer: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<usize> {
        if !fds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file descriptors on vigild's private socket"));
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
        if self.on_bus {
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

/// The accepted stream, for `zbus::connection::Builder::socket`.
pub fn peer_socket(stream: UnixStream, peer: Caller, services: Arc<Services>) -> BoxedSplit {
    let (read, write) = stream.into_split();
    Split::new(Box::new(PeerRead { inner: read, peer, guard: FrameGuard::new(peer.uid), services }), Box::new(PeerWrite { inner: write, peer }))
}
