//! `org.vigil1.Session` at `/org/vigil1/session/ID`: a session's read-only properties,
//! read live from the registry, for root and the session's own user only.

use std::collections::HashMap;
use std::sync::Weak;

use vigil_protocol::SessionInfo;
use zbus::message::Header;
use zbus::names::{InterfaceName, MemberName};
use zbus::object_server::{DispatchResult, Interface, SignalEmitter};
use zbus::zvariant::{OwnedVariant, Variant};
use zbus::{BoxDBusError, Connection, Message, ObjectServer, interface};

use crate::rpc::caller::Caller;
use crate::sessions::manager::Manager;

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
            let caller = Caller::identify(connection, &header).await.map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
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
    pub(super) fn new(core: Weak<Manager>, id: u64) -> Self {
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
