//! Who made an admin call, as the records name them: `by=` (the user name), `by_uid=`
//! and `pid=`. Root and a user polkit authorised are named the same way, so a trail
//! shows which admin ended a session, reloaded or locked, however they were allowed.

use vigil_protocol::audit::Record;

use crate::rpc::caller::Caller;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By {
    pub name: String,
    pub uid: u32,
    pub pid: u32,
}

impl By {
    /// The caller, named through NSS off the async thread (its uid as a name when NSS
    /// has none).
    pub async fn of(caller: &Caller) -> By {
        let uid = caller.uid;
        let name = tokio::task::spawn_blocking(move || vigil_host::users::by_uid(uid).map(|u| u.name))
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| uid.to_string());
        By { name, uid, pid: caller.pid }
    }

    /// vigild itself (`on_reauth_failures = "lock"`).
    pub fn vigild() -> By {
        By { name: "vigild".into(), uid: nix::unistd::getuid().as_raw(), pid: std::process::id() }
    }

    pub fn write(&self, record: Record) -> Record {
        record.text("by", &self.name).number("by_uid", self.uid).number("pid", self.pid)
    }
}
