//! vigild's connection to the system bus, over socket halves of its own
//! (`guarded_socket::split`) that see each message before zbus dispatches it.
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

use tokio::net::UnixStream;
use zbus::address::transport::{Transport, UnixSocket};
use zbus::connection::socket::BoxedSplit;

use crate::rpc::bus_shares::BusShares;
use crate::rpc::guarded_socket::{self, BusSide, Services, Source};
use crate::rpc::session_objects::SessionObjects;

/// Connects to the bus at `address` when it is a `unix:` address (`Ok(None)` for any
/// other: let zbus connect). The services learn the connection's object server once it
/// is built (`Services::connected`).
pub async fn connect(address: &str, objects: &Arc<SessionObjects>, shares: BusShares) -> io::Result<Option<(BoxedSplit, Arc<Services>)>> {
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
    let source = Source::Bus(Box::new(BusSide { shares, guid: OnceLock::new() }));
    let services = Arc::new(Services { objects: objects.clone(), object_server: OnceLock::new(), early_paths: Mutex::default(), source });
    Ok(Some((guarded_socket::split(stream, services.clone()), services)))
}
