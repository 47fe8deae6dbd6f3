//! Where a client reaches vigild: its private socket (the default) or a bus.

use std::path::PathBuf;

use zbus::address::transport::{Transport, Unix, UnixSocket};
use zbus::connection::Builder;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// vigild's private peer-to-peer socket: no broker between the caller and vigild.
    Socket(PathBuf),
    /// A D-Bus bus address; calls go to the well-known name `org.vigil1`.
    Bus(String),
}

impl Default for Target {
    fn default() -> Self {
        Target::Socket(PathBuf::from(crate::DEFAULT_SOCKET))
    }
}

impl Target {
    /// The system bus: `DBUS_SYSTEM_BUS_ADDRESS`, or its well-known socket.
    pub fn system_bus() -> Target {
        Target::Bus(system_bus_address())
    }

    /// Opens a connection. The caller chooses the executor; the connection serves no
    /// objects of its own.
    pub async fn connect(&self) -> zbus::Result<zbus::Connection> {
        let builder = match self {
            Target::Socket(path) => {
                let address = zbus::Address::from(Transport::Unix(Unix::new(UnixSocket::File(path.clone()))));
                Builder::address(address).p2p()
            }
            Target::Bus(address) => Builder::address(address.as_str()),
        };
        builder.build().await
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Socket(path) => format!("socket {}", path.display()),
            Target::Bus(address) => format!("bus {address}"),
        }
    }
}

/// The system bus's address: `DBUS_SYSTEM_BUS_ADDRESS`, or the well-known socket.
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".to_string())
}
