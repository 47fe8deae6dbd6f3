//! Where the module's one blocking exchange goes: vigild's private socket, or the unix
//! socket of a bus that routes the call to `org.vigil1`.
//!
//! A bus address (`bus=` on the PAM line) is parsed by zbus (`zbus::Address`), as the
//! connection builder parsed it before; the module then connects by itself, so it takes
//! only the addresses a blocking unix-socket client can reach: `unix:path=` and
//! `unix:abstract=`. Any other (`tcp:`, where AUTH EXTERNAL cannot vouch for the caller;
//! `unixexec:` and `autolaunch:`, which would run a program inside sshd; the listening
//! forms `unix:dir=` and `unix:tmpdir=`) is refused with the address named, as an
//! outage: the login follows `fail=`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;

use nix::sys::socket::UnixAddr;
use zbus::address::transport::{Transport, UnixSocket};

use crate::args::Target;
use crate::error::ClientError;

/// A resolved target: the socket to connect to and what to say on it.
#[derive(Debug)]
pub struct Endpoint {
    pub address: UnixAddr,
    pub kind: Kind,
    /// The socket as the admin wrote it, for error messages.
    pub shown: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// vigild itself: AUTH, BEGIN, the call.
    Private,
    /// A bus broker: AUTH, BEGIN, `Hello`, the call. `guid` is the server guid the
    /// address names, if it names one (the `OK` line must carry it).
    Bus { guid: Option<String> },
}

impl Endpoint {
    pub fn of(target: &Target) -> Result<Endpoint, ClientError> {
        match target {
            Target::Socket(path) => Ok(Endpoint { address: path_address(path)?, kind: Kind::Private, shown: path.display().to_string() }),
            Target::Bus(address) => bus(address),
        }
    }
}

fn path_address(path: &Path) -> Result<UnixAddr, ClientError> {
    UnixAddr::new(path).map_err(|e| ClientError::Unreachable(format!("socket path {}: {e}", path.display())))
}

fn bus(text: &str) -> Result<Endpoint, ClientError> {
    let refused = |why: String| ClientError::Unreachable(format!("bus address {text:?}: {why}"));
    let parsed = zbus::Address::from_str(text).map_err(|e| refused(e.to_string()))?;
    let address = match parsed.transport() {
        Transport::Unix(unix) => match unix.path() {
            UnixSocket::File(path) => path_address(path)?,
            UnixSocket::Abstract(name) => UnixAddr::new_abstract(name.as_bytes()).map_err(|e| refused(e.to_string()))?,
            _ => return Err(refused("a listening address (dir=, tmpdir=), not one a client connects to".into())),
        },
        _ => {
            let transport = text.split(':').next().unwrap_or(text);
            return Err(refused(format!(
                "the module reaches a bus only over a unix socket (unix:path=, unix:abstract=), not {transport}:"
            )));
        }
    };
    let guid = parsed.guid().map(|g| g.as_str().to_string());
    Ok(Endpoint { address, kind: Kind::Bus { guid }, shown: text.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_text(target: Target) -> String {
        match Endpoint::of(&target) {
            Err(ClientError::Unreachable(text)) => text,
            other => panic!("{target:?}: {other:?}"),
        }
    }

    #[test]
    fn the_private_socket_is_a_path() {
        let e = Endpoint::of(&Target::Socket("/run/vigil/private".into())).unwrap();
        assert_eq!(e.kind, Kind::Private);
        assert_eq!(e.address.path(), Some(Path::new("/run/vigil/private")));
    }

    #[test]
    fn unix_bus_addresses_resolve_to_their_socket() {
        let e = Endpoint::of(&Target::Bus("unix:path=/run/dbus/system_bus_socket".into())).unwrap();
        assert_eq!(e.kind, Kind::Bus { guid: None });
        assert_eq!(e.address.path(), Some(Path::new("/run/dbus/system_bus_socket")));
        assert_eq!(e.shown, "unix:path=/run/dbus/system_bus_socket");

        let e = Endpoint::of(&Target::Bus("unix:abstract=/tmp/dbus-x".into())).unwrap();
        assert_eq!(e.address.as_abstract(), Some(&b"/tmp/dbus-x"[..]));

        let guid = "0123456789abcdef0123456789abcdef";
        let e = Endpoint::of(&Target::Bus(format!("unix:path=/x,guid={guid}"))).unwrap();
        assert_eq!(e.kind, Kind::Bus { guid: Some(guid.into()) });
    }

    #[test]
    fn addresses_the_module_cannot_use_are_outages_naming_them() {
        let tcp = unreachable_text(Target::Bus("tcp:host=127.0.0.1,port=4000".into()));
        assert!(tcp.contains("tcp:host=127.0.0.1,port=4000") && tcp.contains("not tcp:"), "{tcp}");
        let dir = unreachable_text(Target::Bus("unix:dir=/tmp".into()));
        assert!(dir.contains("listening address"), "{dir}");
        for bad in ["launchd:env=X", "system", "unix:path=/a;unix:path=/b,x"] {
            assert!(unreachable_text(Target::Bus(bad.into())).contains(bad), "{bad}");
        }
        let long = format!("/{}", "x".repeat(200));
        assert!(unreachable_text(Target::Socket(long.clone().into())).contains(&long));
    }
}
