//! The private socket's connections as zbus sockets whose peer credentials are the ones
//! vigild read with SO_PEERCRED at accept.
//!
//! zbus's own unix socket, as a server, resolves the peer's supplementary groups
//! through NSS (on a blocking-pool thread) during every handshake; vigild decides from
//! the uid and pid alone, and every PAM call is a new connection, so that lookup would
//! sit in every login's path. No file descriptors are passed on this socket (no method
//! takes one), so the halves are plain reads and writes.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split, WriteHalf};
use zbus::fdo::ConnectionCredentials;

use crate::caller::Caller;

fn credentials(peer: Caller) -> ConnectionCredentials {
    ConnectionCredentials::default().set_unix_user_id(peer.uid).set_process_id(peer.pid)
}

#[derive(Debug)]
struct PeerRead {
    inner: OwnedReadHalf,
    peer: Caller,
}

#[derive(Debug)]
struct PeerWrite {
    inner: OwnedWriteHalf,
    peer: Caller,
}

#[async_trait::async_trait]
impl ReadHalf for PeerRead {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
        let n = self.inner.read(buffer).await?;
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

/// The accepted stream, for `zbus::connection::Builder::socket`.
pub fn peer_socket(stream: UnixStream, peer: Caller) -> BoxedSplit {
    let (read, write) = stream.into_split();
    Split::new(Box::new(PeerRead { inner: read, peer }), Box::new(PeerWrite { inner: write, peer }))
}
