//! The private socket: the same D-Bus objects, peer-to-peer, without a broker
//! (like systemd's /run/systemd/private). Logins never wait on dbus-daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use zbus::Guid;
use zbus::connection::Builder;

use crate::bus::{ManagerIface, SessionObjects};
use crate::peer_socket::peer_socket;
use crate::caller::Caller;
use crate::manager::Manager;

/// How long a peer may take to finish the D-Bus handshake before it is dropped.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Binds the socket. Mode 0666: every local user may connect (`vigilctl status`);
/// each method decides from the peer's credentials what the caller may do.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A stale socket from a previous run would make bind fail.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Accepts peers forever; each gets its own connection task.
pub async fn serve(listener: UnixListener, core: Arc<Manager>, objects: Arc<SessionObjects>) {
    let guid = Guid::generate();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("vigild: accept on the private socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (core, _objects, guid) = (core.clone(), objects.clone(), guid.to_owned());
        tokio::spawn(async move {
            // Read once here; the connection is given these credentials, so that the
            // handshake does not resolve the peer's groups through NSS on a worker
            // thread (vigild never uses them) while a login waits.
            let Ok(peer) = Caller::of_socket(&stream) else { return };
            let pending = Builder::socket(peer_socket(stream, peer))
                .server(guid)
                .p2p()
                .serve_at(vigil_protocol::MANAGER_PATH, ManagerIface { core, peer: Some(peer) })
                .build();
            let Ok(Ok(connection)) = tokio::time::timeout(HANDSHAKE_DEADLINE, pending).await else {
                return;
            };
            connection.closed().await;
        });
    }
}
