//! The session objects vigild serves: from the registry on demand, never copied onto
//! every connection (a PAM call pays for none), and taken out of the bus's tree when
//! the session ends.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use vigil_protocol::session_path;
use zbus::Connection;

use crate::rpc::session_iface::SessionIface;
use crate::sessions::manager::{Hooks, Manager};

/// The session objects, served on demand: a connection gets `/org/vigil1/session/ID`
/// when a call for that path arrives on it (`serve`: the socket's reader calls it before
/// the call is dispatched), on the private socket and on the system bus alike
/// (`bus_socket`). The bus connection (one for every client) loses a session's object
/// when the session ends; a private connection is short-lived (closed when idle), and
/// the object reads the registry at each call, so there an ended session's object
/// answers UnknownObject until the connection goes. On a bus that vigild does not
/// connect to itself (not a `unix:` address), every session is served from the start.
pub struct SessionObjects {
    core: Weak<Manager>,
    /// The system bus connection, which serves every client.
    bus: Mutex<Option<BusObjects>>,
}

struct BusObjects {
    connection: Connection,
    /// Every session is put in the bus's object tree when registered (zbus connected
    /// to the bus; no reader of vigild's sees the calls).
    eager: bool,
    /// The sessions whose object is in the bus's tree (on demand).
    served: HashSet<u64>,
}

impl SessionObjects {
    pub fn new(core: &Arc<Manager>) -> Arc<Self> {
        Arc::new(Self { core: Arc::downgrade(core), bus: Mutex::default() })
    }

    fn bus(&self) -> std::sync::MutexGuard<'_, Option<BusObjects>> {
        self.bus.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The system bus connection. `on_demand`: its reader hands over each call's path
    /// (`serve_on_bus`); otherwise every current session, and each new one, is served
    /// on it from the start.
    pub async fn attach_bus(&self, connection: &Connection, on_demand: bool) {
        *self.bus() = Some(BusObjects { connection: connection.clone(), eager: !on_demand, served: HashSet::new() });
        if on_demand {
            return;
        }
        let Some(core) = self.core.upgrade() else { return };
        for id in core.session_ids() {
            let _ = connection.object_server().at(session_path(id), SessionIface::new(self.core.clone(), id)).await;
        }
    }

    /// Gives a connection (its object server) the object at `path` if it names a live
    /// session (called for each incoming call's path, before the call is dispatched).
    pub async fn serve(&self, server: &zbus::ObjectServer, path: &str) {
        let Some(id) = self.live_session(path) else { return };
        // `at` leaves an object the connection has already in place.
        let _ = server.at(session_path(id), SessionIface::new(self.core.clone(), id)).await;
    }

    /// `serve` on the bus connection, remembering the object so that the session's end
    /// takes it out of the tree again.
    pub async fn serve_on_bus(&self, server: &zbus::ObjectServer, path: &str) {
        let Some(id) = self.live_session(path) else { return };
        let added = match self.bus().as_mut() {
            Some(bus) => bus.served.insert(id),
            None => return,
        };
        if !added {
            return;
        }
        let _ = server.at(session_path(id), SessionIface::new(self.core.clone(), id)).await;
        // Ended while the object was being added (its removal may have run first): take
        // it out again, so that no ended session's object stays in the bus's tree.
        if self.live_session(path).is_none() {
            if let Some(bus) = self.bus().as_mut() {
                bus.served.remove(&id);
            }
            let _ = server.remove::<SessionIface, _>(session_path(id)).await;
        }
    }

    /// The id in `path` if it names a session that is registered now.
    fn live_session(&self, path: &str) -> Option<u64> {
        let id = path.strip_prefix(vigil_protocol::SESSION_PATH_PREFIX)?.strip_prefix('/')?.parse::<u64>().ok()?;
        self.core.upgrade()?.session_info(id).map(|_| id)
    }
}

impl Hooks for SessionObjects {
    fn session_added(&self, id: u64, _leader_pid: u32) {
        let bus = match self.bus().as_ref() {
            Some(bus) if bus.eager => bus.connection.clone(),
            _ => return,
        };
        let iface = SessionIface::new(self.core.clone(), id);
        tokio::spawn(async move {
            let _ = bus.object_server().at(session_path(id), iface).await;
        });
    }

    fn session_removed(&self, id: u64) {
        let bus = {
            let mut guard = self.bus();
            let Some(bus) = guard.as_mut() else { return };
            let served = bus.served.remove(&id);
            if !bus.eager && !served {
                return;
            }
            bus.connection.clone()
        };
        tokio::spawn(async move {
            let _ = bus.object_server().remove::<SessionIface, _>(session_path(id)).await;
        });
    }
}
