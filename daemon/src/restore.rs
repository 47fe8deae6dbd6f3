//! Sessions across a restart or a crash of vigild. Every session is on disk under
//! `<state-dir>/sessions` from the moment it is registered (`store.rs`); at start, each
//! saved session whose leader still runs (same pid and start time) is supervised again,
//! under the running configuration, with a `session_restored` record and no second
//! `session_open`. The others ended while vigild was away: `session_end
//! reason=leader_gone`. Proofs of identity are not kept: after a restart the next sudo
//! asks the password (the safe side).

use std::path::Path;
use std::sync::Arc;

use vigil_protocol::audit::Record;
use vigil_protocol::events::{EndReason, Event};

use crate::manager::Manager;
use crate::procfs;
use crate::records::session_record;
use crate::registry::Session;

impl Manager {
    /// Registers a session saved by an earlier vigild whose leader still runs.
    pub fn restore_session(&self, mut session: Session) {
        let (id, leader) = (session.id, session.who.leader_pid);
        // The client's port is not in the file: the leader still holds the connection.
        if !session.who.rhost.is_empty() && session.who.rport.is_none() {
            session.who.rport = procfs::remote_port(leader);
        }
        let restored = {
            let mut registry = self.registry();
            registry.insert(session);
            registry.get(id).cloned()
        };
        let Some(restored) = restored else { return };
        self.save(Some(restored.saved()));
        self.audit.write(session_record(Event::SessionRestored, &restored));
        for hooks in self.hooks() {
            hooks.session_added(id, leader);
        }
    }
}

/// What a start found: (restored, ended meanwhile, unreadable files).
pub fn restore(core: &Arc<Manager>) -> (usize, usize, usize) {
    let store = core.store();
    let (saved, unreadable) = store.load_all();
    for bad in &unreadable {
        core.audit
            .write(Record::new(Event::SessionFileUnreadable).text("path", bad.path.as_os_str().as_encoded_bytes()).text("error", &bad.why));
    }
    let config = core.config();
    let (mut restored, mut gone) = (0, 0);
    for saved in saved {
        let session = Session::from_saved(saved, &config);
        let leader = &session.who;
        if leader.leader_start != 0 && procfs::stat(leader.leader_pid).map(|s| s.start_time) == Some(leader.leader_start) {
            core.restore_session(session);
            restored += 1;
        } else {
            let _ = store.remove(session.id);
            core.inhibitor_ended_with(&session);
            core.audit.write(
                session_record(Event::SessionEnd, &session).text("reason", EndReason::LeaderGone).text("while", "vigild was stopped"),
            );
            gone += 1;
        }
    }
    (restored, gone, unreadable.len())
}

/// The single state file of vigil 0.1 (`sessions.json`, written at a clean stop only):
/// read no more, removed so that it cannot mislead.
pub fn remove_legacy_state(state_dir: &Path) {
    let _ = std::fs::remove_file(state_dir.join("sessions.json"));
}
