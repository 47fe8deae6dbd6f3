//! The D-Bus face of vigild: `org.vigil1.Manager` at `/org/vigil1` and the
//! `org.vigil1.Session` objects at `/org/vigil1/session/ID`, on the system bus and on
//! the private socket alike. Session objects are served from the registry on demand
//! (`SessionObjects`), never copied onto every connection: a PAM call pays for none.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use vigil_protocol::{InhibitorInfo, MyStatus, OpenRequest, ReauthAnswer, SessionInfo, StatusReply, VigilError, session_path};
use zbus::message::Header;
use zbus::names::{InterfaceName, MemberName};
use zbus::object_server::{DispatchResult, Interface, SignalEmitter};
use zbus::zvariant::{OwnedVariant, Variant};
use zbus::{BoxDBusError, Connection, Message, ObjectServer, interface};

use crate::caller::Caller;
use crate::manager::{Hooks, Manager};

pub struct ManagerIface {
    pub core: Arc<Manager>,
    /// The peer of a private-socket connection, read with SO_PEERCRED at accept.
    /// `None` on the bus, where each message may come from another sender.
    pub peer: Option<Caller>,
}

impl ManagerIface {
    async fn caller(&self, connection: &Connection, header: &Header<'_>) -> Result<Caller, VigilError> {
        if let Some(peer) = self.peer {
            return Ok(peer);
        }
        Caller::identify(connection, header).await.map_err(|e| VigilError::Failed(format!("cannot identify the caller: {e}")))
    }

    /// OpenSession and OpenSessionEx: one request, from the transport's caller.
    async fn open(&self, request: OpenRequest, header: &Header<'_>, connection: &Connection) -> Result<u64, VigilError> {
        let caller = self.caller(connection, header).await?;
        self.core.open_session(caller, request).await
    }
}

#[interface(name = "org.vigil1.Manager")]
impl ManagerIface {
    #[allow(clippy::too_many_arguments)]
    async fn open_session(
        &self,
        user: String,
        service: String,
        tty: String,
        rhost: String,
        ruser: String,
        leader_pid: u32,
        audit_session_id: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<u64, VigilError> {
        let request = OpenRequest { user, service, tty, rhost, ruser, leader_pid, audit_session_id, truncated: Vec::new() };
        self.open(request, &header, connection).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn open_session_ex(
        &self,
        user: String,
        service: String,
        tty: String,
        rhost: String,
        ruser: String,
        leader_pid: u32,
        audit_session_id: u32,
        truncated: Vec<String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<u64, VigilError> {
        let request = OpenRequest { user, service, tty, rhost, ruser, leader_pid, audit_session_id, truncated };
        self.open(request, &header, connection).await
    }

    async fn close_session(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), VigilError> {
        self.core.close_session(self.caller(connection, &header).await?, id)
    }

    async fn list_sessions(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<Vec<SessionInfo>, VigilError> {
        Ok(self.core.list_sessions(self.caller(connection, &header).await?))
    }

    async fn get_session(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<SessionInfo, VigilError> {
        self.core.get_session(self.caller(connection, &header).await?, id)
    }

    async fn terminate_session(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), VigilError> {
        self.core.terminate_session(self.caller(connection, &header).await?, id).await
    }

    async fn reload(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] connection: &Connection) -> Result<String, VigilError> {
        self.core.reload(self.caller(connection, &header).await?).await
    }

    async fn status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<StatusReply, VigilError> {
        Ok(self.core.status(self.caller(connection, &header).await?))
    }

    async fn check_reauth(
        &self,
        service: String,
        user: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<ReauthAnswer, VigilError> {
        self.core.check_reauth(self.caller(connection, &header).await?, &service, &user)
    }

    async fn record_auth(
        &self,
        service: String,
        user: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), VigilError> {
        self.core.record_auth(self.caller(connection, &header).await?, &service, &user)
    }

    async fn record_auth_failure(
        &self,
        service: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), VigilError> {
        self.core.record_auth_failure(self.caller(connection, &header).await?, &service)
    }

    async fn revoke_reauth(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<u32, VigilError> {
        self.core.revoke_reauth(self.caller(connection, &header).await?)
    }

    async fn audit_init(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<String, VigilError> {
        self.core.audit_init(self.caller(connection, &header).await?)
    }

    async fn audit_seal(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] connection: &Connection) -> Result<u64, VigilError> {
        self.core.audit_seal(self.caller(connection, &header).await?)
    }

    async fn my_status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<MyStatus, VigilError> {
        self.core.my_status(self.caller(connection, &header).await?)
    }

    async fn inhibit(
        &self,
        duration_usec: u64,
        why: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<u64, VigilError> {
        self.core.inhibit(self.caller(connection, &header).await?, duration_usec, &why)
    }

    async fn cancel_inhibit(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<bool, VigilError> {
        self.core.cancel_inhibit(self.caller(connection, &header).await?, id)
    }

    async fn list_inhibitors(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<Vec<InhibitorInfo>, VigilError> {
        Ok(self.core.list_inhibitors(self.caller(connection, &header).await?))
    }
}

/// `/org/vigil1/session/<id>`: read-only properties, read live from the registry.
/// Like ListSessions, a session's properties are for root and for the session's own
/// user: anyone else gets AccessDenied for each one and for GetAll (the object path
/// alone says only that a session with that id exists).
pub struct SessionProperties {
    core: Weak<Manager>,
    id: u64,
}

impl SessionProperties {
    async fn info(&self, header: Option<Header<'_>>, connection: &Connection) -> zbus::fdo::Result<SessionInfo> {
        let info = self
            .core
            .upgrade()
            .and_then(|core| core.session_info(self.id))
            .ok_or_else(|| zbus::fdo::Error::UnknownObject(format!("session {} has ended", self.id)))?;
        // No header: vigild's own use (not a peer's Get), nothing to check.
        if let Some(header) = header {
            let caller = Caller::identify(connection, &header).await.map_err(zbus::fdo::Error::Failed)?;
            if !caller.is_root() && caller.uid != info.uid {
                return Err(zbus::fdo::Error::AccessDenied(format!("session {} is not yours", self.id)));
            }
        }
        Ok(info)
    }
}

#[interface(name = "org.vigil1.Session")]
impl SessionProperties {
    #[zbus(property(emits_changed_signal = "const"))]
    async fn id(&self, #[zbus(header)] header: Option<Header<'_>>, #[zbus(connection)] connection: &Connection) -> zbus::fdo::Result<u64> {
        Ok(self.info(header, connection).await?.id)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    async fn user(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<String> {
        Ok(self.info(header, connection).await?.user)
    }
    #[zbus(property(emits_changed_signal = "const"), name = "UID")]
    async fn uid(&self, #[zbus(header)] header: Option<Header<'_>>, #[zbus(connection)] connection: &Connection) -> zbus::fdo::Result<u32> {
        Ok(self.info(header, connection).await?.uid)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    async fn service(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<String> {
        Ok(self.info(header, connection).await?.service)
    }
    #[zbus(property(emits_changed_signal = "const"), name = "TTY")]
    async fn tty(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<String> {
        Ok(self.info(header, connection).await?.tty)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    async fn remote_host(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<String> {
        Ok(self.info(header, connection).await?.rhost)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    async fn leader(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<u32> {
        Ok(self.info(header, connection).await?.leader_pid)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    async fn audit_session_id(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<u32> {
        Ok(self.info(header, connection).await?.audit_session_id)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    async fn timestamp(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<u64> {
        Ok(self.info(header, connection).await?.started_usec)
    }
    #[zbus(property(emits_changed_signal = "false"))]
    async fn last_activity(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<u64> {
        Ok(self.info(header, connection).await?.last_activity_usec)
    }
    #[zbus(property(emits_changed_signal = "false"))]
    async fn policy(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<String> {
        Ok(self.info(header, connection).await?.policy)
    }
}

/// The session object as served: [`SessionProperties`], with GetAll refused as each Get
/// is. zbus's own GetAll leaves out every property whose getter fails and answers with
/// what is left, which would tell anyone the session's id; everything else is the
/// generated interface's.
pub struct SessionIface(SessionProperties);

impl SessionIface {
    fn new(core: Weak<Manager>, id: u64) -> Self {
        SessionIface(SessionProperties { core, id })
    }
}

#[zbus::export::async_trait::async_trait]
impl Interface for SessionIface {
    fn name() -> InterfaceName<'static> {
        SessionProperties::name()
    }

    fn spawn_tasks_for_methods(&self) -> bool {
        self.0.spawn_tasks_for_methods()
    }

    async fn get(
        &self,
        property_name: &str,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<Result<OwnedVariant, BoxDBusError>> {
        self.0.get(property_name, server, connection, header, emitter).await
    }

    async fn get_all(
        &self,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> zbus::fdo::Result<HashMap<String, OwnedVariant>> {
        self.0.info(header.cloned(), connection).await?;
        self.0.get_all(server, connection, header, emitter).await
    }

    fn set<'call>(
        &'call self,
        property_name: &'call str,
        value: &'call Variant<'_>,
        server: &'call ObjectServer,
        connection: &'call Connection,
        header: Option<&'call Header<'_>>,
        emitter: &'call SignalEmitter<'_>,
    ) -> DispatchResult<'call> {
        self.0.set(property_name, value, server, connection, header, emitter)
    }

    async fn set_mut(
        &mut self,
        property_name: &str,
        value: &Variant<'_>,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<Result<(), BoxDBusError>> {
        self.0.set_mut(property_name, value, server, connection, header, emitter).await
    }

    fn call<'call>(
        &'call self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call Message,
        name: MemberName<'call>,
    ) -> DispatchResult<'call> {
        self.0.call(server, connection, msg, name)
    }

    fn call_mut<'call>(
        &'call mut self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call Message,
        name: MemberName<'call>,
    ) -> DispatchResult<'call> {
        self.0.call_mut(server, connection, msg, name)
    }

    fn introspect_to_writer(&self, writer: &mut dyn std::fmt::Write, level: usize) {
        self.0.introspect_to_writer(writer, level)
    }
}

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

#[cfg(test)]
mod tests {
    //! The served interface against the protocol crate's client proxy, over a real
    //! peer-to-peer D-Bus connection: a drift between the two breaks these tests.

    use std::os::unix::net::UnixStream;

    use vigil_protocol::ManagerProxy;
    use zbus::connection::Builder;

    use super::*;

    async fn pair() -> (Arc<Manager>, Arc<SessionObjects>, zbus::Connection, zbus::Connection) {
        let core = crate::manager::manager_for_tests();
        let objects = SessionObjects::new(&core);
        core.add_hooks(objects.clone());
        core.add_hooks(crate::leaders::LeaderWatch::new(&core));
        let (a, b) = UnixStream::pair().unwrap();
        let server = Builder::unix_stream(a)
            .server(zbus::Guid::generate())
            .p2p()
            .serve_at(vigil_protocol::MANAGER_PATH, ManagerIface { core: core.clone(), peer: None })
            .build();
        let client = Builder::unix_stream(b).p2p().build();
        let (server, client) = tokio::join!(server, client);
        (core, objects, server.unwrap(), client.unwrap())
    }

    #[tokio::test]
    async fn proxy_and_interface_agree() {
        let (_core, _objects, _server, client) = pair().await;
        let manager = ManagerProxy::new(&client).await.unwrap();
        assert!(manager.list_sessions().await.unwrap().is_empty());
        let status = manager.status().await.unwrap();
        assert_eq!(status.session_count, 0);
        assert!(matches!(manager.get_session(99).await, Err(VigilError::NoSuchSession(_))));
        assert!(matches!(manager.reload().await, Err(VigilError::ConfigInvalid(_))));
    }

    #[tokio::test]
    async fn open_list_and_close_when_root() {
        // OpenSession needs uid 0: as another user this test cannot run, and says so.
        assert!(nix::unistd::geteuid().is_root(), "this test needs root (OpenSession is root's only)");
        let (_core, objects, server, client) = pair().await;
        let manager = ManagerProxy::new(&client).await.unwrap();
        let pid = std::process::id();
        let ses = crate::procfs::audit_session_id(pid);
        let id = manager.open_session("root", "vigil-unit", "pts/7", "203.0.113.7", "", pid, ses).await.unwrap();
        let listed = manager.list_sessions().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id, listed[0].tty.as_str(), listed[0].rhost.as_str(), listed[0].leader_pid),
            (id, "pts/7", "203.0.113.7", pid)
        );
        // The session object answers its properties over the same connection, served
        // on demand (the private socket's reader asks for it as the call arrives).
        objects.serve(server.object_server(), &session_path(id)).await;
        let props = zbus::fdo::PropertiesProxy::builder(&client)
            .destination(vigil_protocol::BUS_NAME)
            .path(session_path(id))
            .build()
            .await
            .unwrap();
        let user = props.get(vigil_protocol::SESSION_INTERFACE.try_into().unwrap(), "User").await.unwrap();
        assert_eq!(String::try_from(user).unwrap(), "root");
        // A claimed leader that is not the caller is refused.
        assert!(matches!(manager.open_session("root", "s", "", "", "", 1, ses).await, Err(VigilError::AccessDenied(_))));
        // Oversized fields are refused, not cut.
        let long = "x".repeat(vigil_protocol::MAX_FIELD_BYTES + 1);
        assert!(matches!(manager.open_session("root", "s", &long, "", "", pid, ses).await, Err(VigilError::InvalidArgument(_))));
        manager.close_session(id).await.unwrap();
        assert!(manager.list_sessions().await.unwrap().is_empty());
        assert!(matches!(manager.close_session(id).await, Err(VigilError::NoSuchSession(_))));
    }
}
