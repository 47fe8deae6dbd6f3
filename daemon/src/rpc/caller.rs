//! Who is calling: from the transport, never from the message body.
//!
//! On the private socket that is the socket's peer credentials (SO_PEERCRED); on the
//! bus, the bus daemon's GetConnectionCredentials for the message's sender, asked once
//! per sender: a bus connection's credentials are fixed when it connects and its unique
//! name is never given to another connection while that bus runs, so the answer is
//! kept (`SenderCache`). A sender not yet known is asked about on a connection of its
//! own (`open_lookup`): its input holds only the bus's answers to vigild, so the
//! question does not wait behind every call queued for `org.vigil1` a second time.
//! Under one user's flood of calls, asking on the serving connection for every call
//! kept the module's calls on the bus past their deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use zbus::Connection;
use zbus::message::Header;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub pid: u32,
    /// polkit authorised this call's admin verb for this caller (`rpc/polkit.rs`): set
    /// only by the bus interface, for the one call it asked polkit about.
    pub polkit_authorized: bool,
}

/// Why the caller of a message could not be told.
#[derive(Debug, thiserror::Error)]
pub enum Unidentified {
    #[error("message without sender")]
    NoSender,
    #[error(transparent)]
    Bus(#[from] zbus::Error),
    #[error(transparent)]
    BusDaemon(#[from] zbus::fdo::Error),
    #[error(transparent)]
    Peer(#[from] std::io::Error),
    #[error("the transport gave no uid or pid for the caller")]
    NoCredentials,
}

impl Caller {
    pub const fn new(uid: u32, pid: u32) -> Caller {
        Caller { uid, pid, polkit_authorized: false }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// May make this call's admin verb: root, or a user polkit authorised for it.
    pub fn is_admin(&self) -> bool {
        self.is_root() || self.polkit_authorized
    }

    /// The peer of a unix socket, from SO_PEERCRED (fixed at connect time).
    pub fn of_socket(socket: &impl std::os::fd::AsFd) -> std::io::Result<Caller> {
        let creds = nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerCredentials)?;
        Ok(Caller::new(creds.uid(), creds.pid() as u32))
    }

    /// The sender of a message on a bus connection (or the peer of a p2p one).
    pub async fn identify(connection: &Connection, header: &Header<'_>) -> Result<Caller, Unidentified> {
        let (uid, pid) = if connection.is_bus() {
            let sender = header.sender().ok_or(Unidentified::NoSender)?;
            let guid = connection.server_guid().as_str();
            if let Some(known) = known_on_bus(guid, sender.as_str()) {
                return Ok(known);
            }
            let lookup = LOOKUP.get().filter(|lookup| lookup.server_guid() == connection.server_guid()).unwrap_or(connection);
            let dbus = zbus::fdo::DBusProxy::new(lookup).await?;
            let creds = dbus.get_connection_credentials(sender.clone().into()).await?;
            if let (Some(uid), Some(pid)) = (creds.unix_user_id(), creds.process_id()) {
                senders().insert(guid, sender.as_str(), Caller::new(uid, pid));
            }
            (creds.unix_user_id(), creds.process_id())
        } else {
            let creds = connection.peer_creds().await?;
            (creds.unix_user_id(), creds.process_id())
        };
        match (uid, pid) {
            (Some(uid), Some(pid)) => Ok(Caller::new(uid, pid)),
            _ => Err(Unidentified::NoCredentials),
        }
    }
}

/// The caller behind `sender` on the bus whose GUID is `bus_guid`, when already known.
pub fn known_on_bus(bus_guid: &str, sender: &str) -> Option<Caller> {
    senders().get(bus_guid, sender)
}

/// vigild's second connection to the bus it serves on, for its questions about callers.
static LOOKUP: OnceLock<Connection> = OnceLock::new();

/// Opens the lookup connection to the bus at `address` (once; without it, callers are
/// asked about on the serving connection).
pub async fn open_lookup(address: &str) {
    if LOOKUP.get().is_some() {
        return;
    }
    match zbus::connection::Builder::address(address).build().await {
        Ok(connection) => {
            let _ = LOOKUP.set(connection);
        }
        Err(e) => eprintln!("vigild: no second bus connection for caller lookups ({e}); using the serving one"),
    }
}

/// Senders whose credentials are kept at once: a name that went is forgotten only when
/// newer ones push it out (a bus gives no name twice while it runs, and its GUID is part
/// of the key, so a restarted bus starts afresh).
const SENDERS_KEPT: usize = 4096;

/// Bus senders' credentials, by bus GUID and unique name (looked up without
/// allocating: every message read from the bus asks), oldest first out.
#[derive(Default)]
pub struct SenderCache {
    callers: HashMap<String, HashMap<String, Caller>>,
    order: VecDeque<(String, String)>,
}

impl SenderCache {
    pub fn get(&self, guid: &str, sender: &str) -> Option<Caller> {
        self.callers.get(guid)?.get(sender).copied()
    }

    pub fn insert(&mut self, guid: &str, sender: &str, caller: Caller) {
        let on_bus = self.callers.entry(guid.to_string()).or_default();
        if on_bus.insert(sender.to_string(), caller).is_none() {
            self.order.push_back((guid.to_string(), sender.to_string()));
        }
        while self.order.len() > SENDERS_KEPT {
            let Some((guid, sender)) = self.order.pop_front() else { break };
            if let Some(on_bus) = self.callers.get_mut(&guid) {
                on_bus.remove(&sender);
                if on_bus.is_empty() {
                    self.callers.remove(&guid);
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.callers.values().map(HashMap::len).sum()
    }
}

/// The bus senders vigild has identified (one bus connection per vigild).
fn senders() -> std::sync::MutexGuard<'static, SenderCache> {
    static SENDERS: OnceLock<Mutex<SenderCache>> = OnceLock::new();
    SENDERS.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: usize) -> String {
        format!(":1.{n}")
    }

    #[test]
    fn the_sender_cache_keeps_the_newest_senders_up_to_its_bound() {
        let mut cache = SenderCache::default();
        for n in 0..SENDERS_KEPT + 10 {
            cache.insert("guid", &name(n), Caller::new(n as u32, 1));
        }
        assert_eq!(cache.len(), SENDERS_KEPT);
        assert_eq!(cache.get("guid", &name(0)), None, "the oldest went first");
        assert_eq!(cache.get("guid", &name(SENDERS_KEPT + 9)), Some(Caller::new((SENDERS_KEPT + 9) as u32, 1)));
        cache.insert("guid", &name(SENDERS_KEPT + 9), Caller::new(7, 1));
        assert_eq!(cache.len(), SENDERS_KEPT, "a sender seen again takes no second place");
    }

    #[test]
    fn the_same_name_on_another_bus_is_another_sender() {
        let mut cache = SenderCache::default();
        cache.insert("bus-a", ":1.5", Caller::new(0, 1));
        assert_eq!(cache.get("bus-b", ":1.5"), None);
    }
}
