//! Admin verbs delegated through polkit, as logind does: a caller on the system bus who
//! is not root may list everyone's sessions, terminate, reload or lock when polkit says
//! yes for the verb's action (`/usr/share/polkit-1/actions/org.vigil1.policy`, with the
//! admin's rules in `/etc/polkit-1/rules.d`).
//!
//! polkit is asked about the message's sender as a `system-bus-name` subject, never its
//! pid: a pid can be reused between the call and the check, a bus name is never given
//! twice while the bus runs. Interaction (a password prompt through the caller's
//! pkttyagent) is allowed only when the message carries ALLOW_INTERACTIVE_AUTHORIZATION.
//! A prompt may take minutes: the check holds no registry lock (it runs before the
//! manager is called) and holds one of the caller's calls in flight on the bus
//! (`bus_shares.rs`), so a user cannot pile up prompts past that bound.
//!
//! Root is never asked. On the private socket admin verbs stay root's: no polkit there.

use std::collections::HashMap;
use std::time::Duration;

use zbus::Connection;
use zbus::Variant;
use zbus::message::{Flags, Header};

/// The admin verbs polkit may grant, one action each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// ListSessions and GetSession of every user's sessions (not only the caller's).
    ListSessions,
    /// TerminateSession.
    TerminateSession,
    /// Reload.
    Reload,
    /// LockUser, UnlockUser and ListLocks.
    ManageLocks,
}

impl AdminAction {
    #[cfg(test)]
    pub const ALL: [AdminAction; 4] =
        [AdminAction::ListSessions, AdminAction::TerminateSession, AdminAction::Reload, AdminAction::ManageLocks];

    /// The polkit action id (`org.vigil1.policy`).
    pub const fn id(self) -> &'static str {
        match self {
            AdminAction::ListSessions => "org.vigil1.list-sessions",
            AdminAction::TerminateSession => "org.vigil1.terminate-session",
            AdminAction::Reload => "org.vigil1.reload",
            AdminAction::ManageLocks => "org.vigil1.manage-locks",
        }
    }
}

/// No answer from polkit within this long, for a check without interaction: the verb is
/// refused (polkitd hung or overloaded; the caller may retry).
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// The same with interaction: a person types a password (pkttyagent's own prompt has no
/// end; an admin who walked away gets a refusal, not a call held forever).
const INTERACTIVE_DEADLINE: Duration = Duration::from_secs(300);
/// `CheckAuthorization`'s flag that lets polkit ask the caller's agent.
const ALLOW_USER_INTERACTION: u32 = 1;

/// What polkit said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authorized,
    /// Not authorised; `challenge` when a password would have been accepted (interaction
    /// was not allowed, or no agent answered).
    NotAuthorized {
        challenge: bool,
    },
    /// polkit could not be asked (not installed, not running, no answer in time).
    Unavailable(String),
}

#[zbus::proxy(
    interface = "org.freedesktop.PolicyKit1.Authority",
    default_service = "org.freedesktop.PolicyKit1",
    default_path = "/org/freedesktop/PolicyKit1/Authority"
)]
trait Authority {
    fn check_authorization(
        &self,
        subject: &(&str, HashMap<&str, Variant<'_>>),
        action_id: &str,
        details: HashMap<&str, &str>,
        flags: u32,
        cancellation_id: &str,
    ) -> zbus::Result<(bool, bool, HashMap<String, String>)>;
}

/// Whether the message asked for interactive authorization.
pub fn interactive(header: &Header<'_>) -> bool {
    header.primary().flags().contains(Flags::ALLOW_INTERACTIVE_AUTH)
}

/// Asks polkit whether the sender of `header` may do `action` (`details` go to the
/// admin's rules: `action.lookup("user")`).
pub async fn check(connection: &Connection, header: &Header<'_>, action: AdminAction, details: &[(&str, &str)]) -> Verdict {
    let Some(sender) = header.sender() else { return Verdict::Unavailable("the message has no sender".into()) };
    let interactive = interactive(header);
    let deadline = if interactive { INTERACTIVE_DEADLINE } else { CHECK_DEADLINE };
    check_sender(connection, sender.as_str(), action, details, interactive, deadline).await
}

/// `check` for the bus name `sender`, given up after `deadline`.
async fn check_sender(
    connection: &Connection,
    sender: &str,
    action: AdminAction,
    details: &[(&str, &str)],
    interactive: bool,
    deadline: Duration,
) -> Verdict {
    let ask = async {
        let authority = AuthorityProxy::new(connection).await?;
        let subject = ("system-bus-name", HashMap::from([("name", Variant::from(sender))]));
        let flags = if interactive { ALLOW_USER_INTERACTION } else { 0 };
        authority.check_authorization(&subject, action.id(), details.iter().copied().collect(), flags, "").await
    };
    match tokio::time::timeout(deadline, ask).await {
        Ok(Ok((true, _, _))) => Verdict::Authorized,
        Ok(Ok((false, challenge, _))) => Verdict::NotAuthorized { challenge },
        Ok(Err(e)) => Verdict::Unavailable(e.to_string()),
        Err(_) => Verdict::Unavailable(format!("no answer within {}s", deadline.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::sync::Mutex;

    use zbus::connection::Builder;

    use super::*;

    /// A stand-in for polkitd's Authority: answers `reply`, or never when `None`; keeps
    /// what it was asked.
    struct Authority {
        reply: Option<(bool, bool)>,
        asked: Mutex<Vec<(String, String, String, u32)>>,
    }

    #[zbus::interface(name = "org.freedesktop.PolicyKit1.Authority")]
    impl Authority {
        async fn check_authorization(
            &self,
            subject: (String, HashMap<String, zbus::OwnedVariant>),
            action_id: String,
            details: HashMap<String, String>,
            flags: u32,
            _cancellation_id: String,
        ) -> (bool, bool, HashMap<String, String>) {
            let name = subject.1.get("name").and_then(|v| String::try_from(v.clone()).ok()).unwrap_or_default();
            let user = details.get("user").cloned().unwrap_or_default();
            self.asked.lock().unwrap().push((format!("{}:{name}", subject.0), action_id, user, flags));
            match self.reply {
                Some((yes, challenge)) => (yes, challenge, HashMap::new()),
                None => std::future::pending().await,
            }
        }
    }

    /// vigild's side of a peer-to-peer connection to a stand-in Authority.
    async fn authority(reply: Option<(bool, bool)>) -> (Connection, Connection) {
        let (a, b) = UnixStream::pair().unwrap();
        let served = Authority { reply, asked: Mutex::default() };
        let server = Builder::unix_stream(a).server(zbus::Guid::generate()).p2p().serve_at("/org/freedesktop/PolicyKit1/Authority", served);
        let (server, client) = tokio::join!(server.build(), Builder::unix_stream(b).p2p().build());
        (server.unwrap(), client.unwrap())
    }

    async fn asked(server: &Connection) -> Vec<(String, String, String, u32)> {
        let iface = server.object_server().interface::<_, Authority>("/org/freedesktop/PolicyKit1/Authority").await.unwrap();
        iface.get().await.asked.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn polkit_is_asked_about_the_bus_name_and_its_answer_is_the_verdict() {
        let (server, client) = authority(Some((true, false))).await;
        let verdict = check_sender(&client, ":1.42", AdminAction::ManageLocks, &[("user", "alice")], false, CHECK_DEADLINE).await;
        assert_eq!(verdict, Verdict::Authorized);
        let (_server2, client2) = authority(Some((false, true))).await;
        let verdict = check_sender(&client2, ":1.43", AdminAction::Reload, &[], true, CHECK_DEADLINE).await;
        assert_eq!(verdict, Verdict::NotAuthorized { challenge: true });
        assert_eq!(
            asked(&server).await,
            vec![("system-bus-name::1.42".to_string(), "org.vigil1.manage-locks".to_string(), "alice".to_string(), 0)],
            "the subject is the bus name, never a pid; no interaction unless the call allowed it"
        );
    }

    #[tokio::test]
    async fn a_polkit_that_does_not_answer_is_given_up_after_the_deadline() {
        let (_server, client) = authority(None).await;
        let started = std::time::Instant::now();
        let verdict = check_sender(&client, ":1.7", AdminAction::TerminateSession, &[], true, Duration::from_millis(300)).await;
        assert!(matches!(&verdict, Verdict::Unavailable(why) if why.starts_with("no answer within")), "{verdict:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        assert!(CHECK_DEADLINE < INTERACTIVE_DEADLINE && INTERACTIVE_DEADLINE <= Duration::from_secs(300));
    }

    #[test]
    fn every_action_is_in_the_shipped_policy_file() {
        let policy = include_str!("../../../packaging/polkit/org.vigil1.policy");
        for action in AdminAction::ALL {
            assert!(policy.contains(&format!("<action id=\"{}\">", action.id())), "{action:?} missing from org.vigil1.policy");
        }
        assert_eq!(policy.matches("<action id=").count(), AdminAction::ALL.len(), "an action the daemon never asks about");
    }
}
