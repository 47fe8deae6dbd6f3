//! Side by side with systemd-logind. Where logind tracks a login, its session id is
//! the kernel audit session id pam_loginuid gave the login, and it keeps
//! `/run/systemd/sessions/<id>`: vigild's session records name it (`logind_session=`),
//! and a session vigild ends (idle, max age, admin) is also ended in logind
//! (`TerminateSession`), so that `loginctl` and `vigilctl` agree. Without logind
//! (no such directory) nothing changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::procfs::NO_AUDIT_SESSION;

/// Where logind keeps one file per session it tracks.
const SESSIONS_DIR: &str = "/run/systemd/sessions";
/// A call to logind never holds anything of vigild's: the end of the session's
/// processes is vigild's own work, logind's is bookkeeping.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// logind's id for the login whose audit session is `ses`, when logind tracks it.
pub fn session_of(ses: u32) -> Option<String> {
    session_in(Path::new(SESSIONS_DIR), ses)
}

fn session_in(dir: &Path, ses: u32) -> Option<String> {
    if ses == NO_AUDIT_SESSION || ses == 0 {
        return None;
    }
    let id = ses.to_string();
    let file: PathBuf = dir.join(&id);
    file.is_file().then_some(id)
}

/// Asks logind to end the session `id` (in the background, bounded); a failure is
/// handed to `failed` (the caller records it), never fatal: vigild ends the processes
/// itself either way. `bus`: the address of the bus vigild was given (`--bus`), where
/// logind is asked too; `None`: the system bus.
pub fn terminate(id: String, bus: Option<String>, failed: impl FnOnce(&str, String) + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let outcome = tokio::time::timeout(CALL_TIMEOUT, call_terminate(&id, bus.as_deref())).await;
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer from logind within {CALL_TIMEOUT:?}"),
        };
        failed(&id, error);
    });
}

async fn call_terminate(id: &str, address: Option<&str>) -> zbus::Result<()> {
    let bus = match address {
        Some(address) => zbus::connection::Builder::address(address).build().await?,
        None => zbus::Connection::system().await?,
    };
    bus.call_method(
        Some("org.freedesktop.login1"),
        "/org/freedesktop/login1",
        Some("org.freedesktop.login1.Manager"),
        "TerminateSession",
        &(id,),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_named_only_when_logind_keeps_its_file() {
        let dir = std::env::temp_dir().join(format!("vigil-logind-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("42"), "UID=1000\n").unwrap();
        assert_eq!(session_in(&dir, 42).as_deref(), Some("42"));
        assert_eq!(session_in(&dir, 43), None);
        assert_eq!(session_in(&dir, NO_AUDIT_SESSION), None, "no audit session, no logind session");
        assert_eq!(session_in(Path::new("/nonexistent/vigil"), 42), None, "no logind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
