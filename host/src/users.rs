//! Accounts through NSS (local files, LDAP, sssd — whatever the host uses).
//!
//! nix's lookups call the reentrant `getpw*_r` and grow their buffer on ERANGE (up to
//! 1 MiB), so a long entry (an LDAP user with a large gecos) is found, not missed.

use nix::unistd::{Group, Uid, User};

/// The user of this name; `None` when NSS does not know it or the lookup failed.
/// Blocking: NSS may go to the network.
pub fn by_name(name: &str) -> Option<User> {
    User::from_name(name).ok().flatten()
}

/// The user with this uid; `None` when NSS does not know it or the lookup failed.
pub fn by_uid(uid: u32) -> Option<User> {
    User::from_uid(Uid::from_raw(uid)).ok().flatten()
}

/// Whether NSS knows a user of this name (`getpwnam`), with the lookup's own failure
/// (an LDAP server that does not answer) kept apart from "no such user".
pub fn user_exists(name: &str) -> std::io::Result<bool> {
    found(User::from_name(name).map(|user| user.is_some()))
}

/// Whether NSS knows a group of this name (`getgrnam`); see [`user_exists`].
pub fn group_exists(name: &str) -> std::io::Result<bool> {
    found(Group::from_name(name).map(|group| group.is_some()))
}

/// getpwnam(3): ENOENT, ESRCH, EBADF and EPERM also mean "not found" for some back ends.
fn found(result: nix::Result<bool>) -> std::io::Result<bool> {
    use nix::errno::Errno;
    match result {
        Ok(exists) => Ok(exists),
        Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => Ok(false),
        Err(errno) => Err(std::io::Error::from(errno)),
    }
}

/// The uid of a user name as PAM hands it (bytes). A name that is not UTF-8 or holds
/// a NUL names nobody.
pub fn uid_of_name(name: &[u8]) -> Option<u32> {
    by_name(std::str::from_utf8(name).ok()?).map(|u| u.uid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_else() {
        assert_eq!(uid_of_name(b"root"), Some(0));
        assert_eq!(uid_of_name(b"no-such-user-vigil-test"), None);
        assert_eq!(uid_of_name(b"ro\0ot"), None);
        assert_eq!(uid_of_name(b"\xffroot"), None);
        assert_eq!(by_uid(0).map(|u| u.name), Some("root".to_string()));
    }
}
