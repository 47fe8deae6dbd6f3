//! Account lookups through NSS (local files, LDAP, sssd — whatever the host uses).

use std::ffi::CString;

use nix::unistd::{Group, User, getgrouplist};

/// A user's uid and the names of their groups (primary first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub groups: Vec<String>,
}

/// Looks the user up; `None` when NSS does not know them. Blocking: NSS may go to the
/// network, so callers run this off the async threads.
pub fn lookup(name: &str) -> Option<Account> {
    let user = User::from_name(name).ok()??;
    let cname = CString::new(name).ok()?;
    let gids = getgrouplist(&cname, user.gid).unwrap_or_else(|_| vec![user.gid]);
    let groups = gids
        .into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten().map(|g| g.name))
        .collect();
    Some(Account { uid: user.uid.as_raw(), groups })
}
