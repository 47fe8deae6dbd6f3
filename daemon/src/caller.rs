//! Who is calling: from the transport, never from the message body.
//!
//! On the private socket that is the socket's peer credentials (SO_PEERCRED); on the
//! bus, the bus daemon's GetConnectionCredentials for the message's sender.

use zbus::Connection;
use zbus::message::Header;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub pid: u32,
}

impl Caller {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// The peer of a unix socket, from SO_PEERCRED (fixed at connect time).
    pub fn of_socket(socket: &impl std::os::fd::AsFd) -> std::io::Result<Caller> {
        let creds = nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerCredentials)?;
        Ok(Caller { uid: creds.uid(), pid: creds.pid() as u32 })
    }

    /// The sender of a message on a bus connection (or the peer of a p2p one).
    pub async fn identify(connection: &Connection, header: &Header<'_>) -> Result<Caller, String> {
        let (uid, pid) = if connection.is_bus() {
            let sender = header.sender().ok_or("message without sender")?;
            let dbus = zbus::fdo::DBusProxy::new(connection).await.map_err(|e| e.to_string())?;
            let creds = dbus.get_connection_credentials(sender.clone().into()).await.map_err(|e| e.to_string())?;
            (creds.unix_user_id(), creds.process_id())
        } else {
            let creds = connection.peer_creds().await.map_err(|e| e.to_string())?;
            (creds.unix_user_id(), creds.process_id())
        };
        match (uid, pid) {
            (Some(uid), Some(pid)) => Ok(Caller { uid, pid }),
            _ => Err("the transport gave no uid or pid for the caller".into()),
        }
    }
}
