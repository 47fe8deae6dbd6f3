//! Sessions across a restart of vigild: saved at shutdown under the state directory
//! (`/run/vigil`: gone at reboot, when the sessions are gone too), restored at start for
//! the leaders that still run. A restart (an upgrade, `systemctl restart vigild`) keeps
//! every live session supervised. Proofs of identity are not kept: after a restart the
//! next sudo asks the password (the safe side).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vigil_protocol::SessionInfo;
use vigil_protocol::audit::Record;

use crate::core::{Activity, Session, Vigild, session_record};
use crate::procfs;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    sessions: Vec<SavedSession>,
}

#[derive(Serialize, Deserialize)]
struct SavedSession {
    info: SessionInfo,
    ruser: String,
    groups: Vec<String>,
    owns_audit_session: bool,
    inherited_tty: u32,
    rport: Option<u16>,
    leader_start: u64,
    ttys: Vec<u32>,
}

/// Writes every registered session to `path` (mode 0600). Returns how many.
pub fn save(core: &Vigild, path: &Path) -> io::Result<usize> {
    let sessions: Vec<SavedSession> = core
        .snapshot()
        .into_iter()
        .map(|s| SavedSession {
            ruser: s.ruser,
            groups: s.groups,
            owns_audit_session: s.owns_audit_session,
            inherited_tty: s.inherited_tty,
            rport: s.rport,
            leader_start: s.leader_start,
            ttys: s.activity.ttys.into_iter().collect(),
            info: s.info,
        })
        .collect();
    let count = sessions.len();
    let text = serde_json::to_vec(&Saved { version: FORMAT_VERSION, sessions }).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?.write_all(&text)?;
    fs::rename(&tmp, path)?;
    Ok(count)
}

/// Restores the sessions saved at `path` whose leader still runs (same pid and start
/// time); the others ended while vigild was away and are recorded so. The file is
/// removed: it describes one shutdown only.
pub fn restore(core: &Arc<Vigild>, path: &Path) -> (usize, usize) {
    let Ok(bytes) = fs::read(path) else { return (0, 0) };
    let _ = fs::remove_file(path);
    let saved = match serde_json::from_slice::<Saved>(&bytes) {
        Ok(saved) if saved.version == FORMAT_VERSION => saved,
        _ => {
            core.audit.write(&Record::new("sessions_not_restored").text("reason", "unreadable state file").text("path", path.as_os_str().as_encoded_bytes()));
            return (0, 0);
        }
    };
    let (mut restored, mut gone) = (0, 0);
    let config = core.config();
    for s in saved.sessions {
        let leader = s.info.leader_pid;
        let mut session = Session {
            policy: config.resolve(&vigil_config::SessionFacts {
                user: &s.info.user,
                groups: &s.groups,
                service: &s.info.service,
                has_tty: !s.ttys.is_empty(),
                rhost: (!s.info.rhost.is_empty()).then_some(s.info.rhost.as_str()),
            }),
            ruser: s.ruser,
            groups: s.groups,
            owns_audit_session: s.owns_audit_session,
            inherited_tty: s.inherited_tty,
            rport: s.rport,
            leader_start: s.leader_start,
            activity: Activity { ttys: s.ttys.into_iter().collect::<BTreeSet<_>>(), ..Activity::default() },
            info: s.info,
        };
        // The running configuration decides, as after a reload.
        session.info.policy = session.policy.policy_name.clone();
        if procfs::stat(leader).map(|s| s.start_time) == Some(session.leader_start) && session.leader_start != 0 {
            core.restore_session(session);
            restored += 1;
        } else {
            session.info.ttys.clear();
            core.audit.write(&session_record("session_end", &session).text("reason", "leader_gone").text("while", "vigild was stopped"));
            gone += 1;
        }
    }
    (restored, gone)
}
