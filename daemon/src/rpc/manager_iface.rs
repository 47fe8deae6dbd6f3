//! `org.vigil1.Manager` at `/org/vigil1`, on the system bus and on the private socket
//! alike: each method reads its arguments, takes the caller from the transport, and
//! calls the manager (`sessions/`).

use std::sync::Arc;

use vigil_protocol::events::CallRefusal;
use vigil_protocol::{InhibitorInfo, LockInfo, MyStatus, OpenRequest, ReauthAnswer, SessionInfo, StatusReply, VigilError};
use zbus::message::Header;
use zbus::{Connection, interface};

use crate::rpc::caller::Caller;
use crate::rpc::polkit::{self, AdminAction, Verdict};
use crate::sessions::lock_calls;
use crate::sessions::manager::Manager;

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

    /// The caller, and whether polkit is to be asked about its admin verbs: a user other
    /// than root on the system bus (root is never asked; on the private socket the
    /// manager keeps the verbs root's).
    async fn caller_for_polkit(&self, connection: &Connection, header: &Header<'_>) -> Result<(Caller, bool), VigilError> {
        let caller = self.caller(connection, header).await?;
        Ok((caller, self.peer.is_none() && !caller.is_root()))
    }

    /// The caller of an admin verb. A user other than root on the bus is asked about to
    /// polkit (`rpc/polkit.rs`), with the `details` its rules see (built only then):
    /// authorised, the call goes on as an admin's; otherwise it is refused here
    /// (`call_refused reason=not_authorized`).
    async fn admin(
        &self,
        connection: &Connection,
        header: &Header<'_>,
        method: &'static str,
        action: AdminAction,
        details: impl FnOnce() -> Details,
    ) -> Result<Caller, VigilError> {
        let (caller, ask) = self.caller_for_polkit(connection, header).await?;
        if !ask {
            return Ok(caller);
        }
        let refusal = match polkit::check(connection, header, action, &borrowed(&details())).await {
            Verdict::Authorized => return Ok(Caller { polkit_authorized: true, ..caller }),
            Verdict::NotAuthorized { challenge: true } if !polkit::interactive(header) => format!(
                "an admin's password is needed for {} and the call did not allow asking for it (vigilctl asks on the \
                 terminal of a login session, unless --no-ask-password)",
                action.id()
            ),
            Verdict::NotAuthorized { .. } => format!("polkit did not authorize {} for uid {}", action.id(), caller.uid),
            Verdict::Unavailable(why) => format!("polkit could not be asked about {} ({why}); only root may", action.id()),
        };
        self.core.refuse(&caller, method, CallRefusal::NotAuthorized);
        Err(VigilError::AccessDenied(format!("{method}: {refusal}")))
    }

    /// The caller of ListSessions or GetSession: a user polkit authorised (without
    /// asking anyone unless the call allows it) sees every session, any other their own.
    async fn viewer(&self, connection: &Connection, header: &Header<'_>, details: impl FnOnce() -> Details) -> Result<Caller, VigilError> {
        let (caller, ask) = self.caller_for_polkit(connection, header).await?;
        if !ask {
            return Ok(caller);
        }
        let authorized = polkit::check(connection, header, AdminAction::ListSessions, &borrowed(&details())).await == Verdict::Authorized;
        Ok(Caller { polkit_authorized: authorized, ..caller })
    }
}

/// What polkit's rules see about a call (`action.lookup("user")`).
type Details = Vec<(&'static str, String)>;

fn borrowed(details: &Details) -> Vec<(&str, &str)> {
    details.iter().map(|(key, value)| (*key, value.as_str())).collect()
}

/// The user a lock call names, as a detail: only a name the manager would take (its
/// own check), else none.
fn user_detail(user: &str) -> Details {
    lock_calls::check_text("the user name", user, vigil_protocol::MAX_FIELD_BYTES)
        .map(|()| vec![("user", user.to_string())])
        .unwrap_or_default()
}

#[interface(name = "org.vigil1.Manager")]
impl ManagerIface {
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
        self.core.open_session(self.caller(connection, &header).await?, request).await
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
        Ok(self.core.list_sessions(self.viewer(connection, &header, Vec::new).await?))
    }

    async fn get_session(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<SessionInfo, VigilError> {
        self.core.get_session(self.viewer(connection, &header, || vec![("session", id.to_string())]).await?, id)
    }

    async fn terminate_session(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), VigilError> {
        let details = || vec![("session", id.to_string()), ("user", self.core.session(id).map(|s| s.who.user.clone()).unwrap_or_default())];
        let caller = self.admin(connection, &header, "TerminateSession", AdminAction::TerminateSession, details).await?;
        self.core.terminate_session(caller, id).await
    }

    async fn reload(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] connection: &Connection) -> Result<String, VigilError> {
        self.core.reload(self.admin(connection, &header, "Reload", AdminAction::Reload, Vec::new).await?).await
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

    async fn lock_user(
        &self,
        user: String,
        why: String,
        duration_usec: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(LockInfo, u32), VigilError> {
        let caller = self.admin(connection, &header, "LockUser", AdminAction::ManageLocks, || user_detail(&user)).await?;
        self.core.lock_user(caller, &user, &why, duration_usec).await
    }

    async fn unlock_user(
        &self,
        user: String,
        why: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<bool, VigilError> {
        let caller = self.admin(connection, &header, "UnlockUser", AdminAction::ManageLocks, || user_detail(&user)).await?;
        self.core.unlock_user(caller, &user, &why).await
    }

    async fn list_locks(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<Vec<LockInfo>, VigilError> {
        self.core.list_locks(self.admin(connection, &header, "ListLocks", AdminAction::ManageLocks, Vec::new).await?)
    }

    async fn metrics(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] connection: &Connection) -> Result<String, VigilError> {
        self.core.metrics_call(self.caller(connection, &header).await?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_login_refused(
        &self,
        user: String,
        pam_user: String,
        service: String,
        rhost: String,
        tty: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), VigilError> {
        self.core.record_login_refused(self.caller(connection, &header).await?, &user, &pam_user, &service, &rhost, &tty)
    }
}

#[cfg(test)]
mod tests {
    //! The served interface against the protocol crate's client proxy, over a real
    //! peer-to-peer D-Bus connection: a drift between the two breaks these tests.

    use std::os::unix::net::UnixStream;

    use vigil_protocol::{ManagerProxy, session_path};
    use zbus::connection::Builder;

    use super::*;
    use crate::rpc::session_objects::SessionObjects;

    async fn pair() -> (Arc<Manager>, Arc<SessionObjects>, zbus::Connection, zbus::Connection) {
        let core = crate::sessions::manager::manager_for_tests();
        let objects = SessionObjects::new(&core);
        core.add_hooks(objects.clone());
        core.add_hooks(crate::supervise::leaders::LeaderWatch::new(&core));
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
        // OpenSessionEx needs uid 0: as another user this test cannot run, and says so.
        assert!(nix::unistd::geteuid().is_root(), "this test needs root (OpenSessionEx is root's only)");
        let (_core, objects, server, client) = pair().await;
        let manager = ManagerProxy::new(&client).await.unwrap();
        let pid = std::process::id();
        let ses = crate::sys::procfs::audit_session_id(pid);
        let id = manager.open_session_ex("root", "vigil-unit", "pts/7", "203.0.113.7", "", pid, ses, &[]).await.unwrap();
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
        assert!(matches!(manager.open_session_ex("root", "s", "", "", "", 1, ses, &[]).await, Err(VigilError::AccessDenied(_))));
        // Oversized fields are refused, not cut.
        let long = "x".repeat(vigil_protocol::MAX_FIELD_BYTES + 1);
        assert!(matches!(manager.open_session_ex("root", "s", &long, "", "", pid, ses, &[]).await, Err(VigilError::InvalidArgument(_))));
        manager.close_session(id).await.unwrap();
        assert!(manager.list_sessions().await.unwrap().is_empty());
        assert!(matches!(manager.close_session(id).await, Err(VigilError::NoSuchSession(_))));
    }
}
