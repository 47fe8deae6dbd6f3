//! vigild's connection to the system bus, over socket halves of its own that see each
//! message before zbus dispatches it.
//!
//! The bus connection is one for every client, and zbus serves only the objects put in
//! its object tree: serving every session there from the start cost about 1 KB a
//! session (zbus's tree node) and an object added and removed per login. Here the read
//! half hands each method call's object path over (`FrameGuard::for_bus`) before zbus
//! dispatches the call, so `/org/vigil1/session/ID` is put in the tree when a client
//! first asks for it, as on the private socket, and taken out when the session ends.
//!
//! Only `unix:` addresses (a path or an abstract name) are connected this way, which is
//! what a system bus listens on; for any other, zbus connects and every session is
//! served from the start.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use vigil_protocol::frame::FrameGuard;
use zbus::address::transport::{Transport, UnixSocket};
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split, WriteHalf};

use crate::bus::SessionObjects;
use crate::peer_socket::Services;

/// The system bus's address: `DBUS_SYSTEM_BUS_ADDRESS`, or the well-known socket.
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".to_string())
}

/// Connects to the bus at `address` when it is a `unix:` address (`Ok(None)` for any
/// other: let zbus connect). The services learn the connection's object server once it
/// is built (`Services::connected`).
pub async fn connect(address: &str, objects: &Arc<SessionObjects>) -> io::Result<Option<(BoxedSplit, Arc<Services>)>> {
    let Ok(parsed) = zbus::Address::try_from(address) else { return Ok(None) };
    let Transport::Unix(unix) = parsed.transport() else { return Ok(None) };
    let stream = match unix.path() {
        UnixSocket::File(path) => UnixStream::connect(path).await?,
        UnixSocket::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let name = name.as_encoded_bytes();
            let socket = std::os::unix::net::UnixStream::connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)?;
            socket.set_nonblocking(true)?;
            UnixStream::from_std(socket)?
        }
        _ => return Ok(None),
    };
    let services = Arc::new(Services {
        objects: objects.clone(),
        object_server: OnceLock::new(),
        early_paths: Mutex::default(),
        // The bus relays only well-formed messages of at most the specification's size;
        // anything else is a broken bus, and the connection ends as zbus would end it.
        on_refusal: Arc::new(|_, refusal| eprintln!("vigild: unexpected input from the bus: {refusal}")),
        on_bus: true,
    });
    let (read, write) = stream.into_split();
    let read: Box<dyn ReadHalf> = Box::new(BusRead { inner: read, guard: FrameGuard::for_bus(), services: services.clone() });
    let write: Box<dyn WriteHalf> = Box::new(BusWrite { inner: write });
    Ok(Some((Split::new(read, write), services)))
}

struct BusRead {
    inner: OwnedReadHalf,
    guard: FrameGuard,
    services: Arc<Services>,
}

impl std::fmt::Debug for BusRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusRead").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct BusWrite {
    inner: OwnedWriteHalf,
}

#[async_trait::async_trait]
impl ReadHalf for BusRead {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
        let n = self.inner.read(buffer).await?;
        let mut paths: Vec<String> = Vec::new();
        let observed = self.guard.observe(&buffer[..n], &mut |path: &str| {
            if path.starts_with(vigil_protocol::SESSION_PATH_PREFIX) {
                paths.push(path.to_owned());
            }
        });
        if let Err(refusal) = observed {
            (self.services.on_refusal)(crate::caller::Caller { uid: 0, pid: 0 }, &refusal);
            return Err(io::Error::new(io::ErrorKind::InvalidData, refusal.to_string()));
        }
        self.services.serve(paths).await;
        Ok((n, Vec::new()))
    }
}

#[async_trait::async_trait]
impl WriteHalf for BusWrite {
    async fn sendmsg(&mut self, buffer: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<usize> {
        if !fds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "vigild passes no file descriptors on the bus"));
        }
        self.inner.write(buffer).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}
