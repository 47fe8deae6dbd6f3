//! The calls the PAM module makes for a login (OpenSession, OpenSessionEx,
//! CloseSession): what a registration must carry, how a new session finds the session it
//! is nested in, and the order the reply, the file and the record follow (see
//! `manager.rs`).

use std::sync::Arc;

use vigil_protocol::audit::Record;
use vigil_protocol::events::{CallRefusal, Event};
use vigil_protocol::{MAX_FIELD_BYTES, OpenRequest, VigilError};

use crate::audit::records::{EndReason, session_record};
use crate::rpc::caller::Caller;
use crate::sessions::manager::{Manager, now_usec};
use crate::sessions::session::{Identity, Session};
use crate::sys::procfs::{self, NO_AUDIT_SESSION};
use crate::sys::ttys;

/// Fields the module may name as cut in `OpenSessionEx`.
const TRUNCATABLE: [&str; 5] = ["user", "service", "tty", "rhost", "ruser"];
/// How far up the process tree a new session looks for the session it is nested in.
const MAX_ANCESTORS: usize = 64;

/// The record of an OpenSession vigild refused for what it carried.
fn open_refused(caller: &Caller, reason: CallRefusal) -> Record {
    Record::new(Event::CallRefused).text("method", "OpenSession").number("uid", caller.uid).number("pid", caller.pid).text("reason", reason)
}

impl Manager {
    fn check_request(&self, caller: &Caller, r: &OpenRequest) -> Result<(), VigilError> {
        for (name, value) in [("user", &r.user), ("service", &r.service), ("tty", &r.tty), ("rhost", &r.rhost), ("ruser", &r.ruser)] {
            if value.len() > MAX_FIELD_BYTES {
                self.audit.write(open_refused(caller, CallRefusal::FieldTooLong).text("field", name).number("bytes", value.len() as i128));
                return Err(VigilError::InvalidArgument(format!("{name} is longer than {MAX_FIELD_BYTES} bytes")));
            }
        }
        if r.truncated.len() > TRUNCATABLE.len() || r.truncated.iter().any(|f| !TRUNCATABLE.contains(&f.as_str())) {
            return Err(VigilError::InvalidArgument(format!("truncated names only {}", TRUNCATABLE.join(", "))));
        }
        if r.leader_pid != caller.pid {
            return Err(self.refuse(caller, "OpenSession", CallRefusal::LeaderNotCaller));
        }
        if r.audit_session_id != procfs::audit_session_id(caller.pid) {
            return Err(self.refuse(caller, "OpenSession", CallRefusal::AuditSessionMismatch));
        }
        Ok(())
    }

    /// OpenSession: root only; the leader is the calling process. Returns once the
    /// session is registered and saved; its record (with the client's port, looked up
    /// afterwards) keeps its place in the trail.
    pub async fn open_session(self: &Arc<Self>, caller: Caller, r: OpenRequest) -> Result<u64, VigilError> {
        self.require_root(&caller, "OpenSession")?;
        self.check_request(&caller, &r)?;
        let ses = r.audit_session_id;
        let Some(account) = self.accounts.get(&r.user).await else {
            self.audit.write(
                open_refused(&caller, CallRefusal::UnknownUser)
                    .text("user", &r.user)
                    .text("service", &r.service)
                    .text("tty", &r.tty)
                    .text("rhost", &r.rhost),
            );
            return Err(VigilError::InvalidArgument(format!("unknown user {:?}", r.user)));
        };
        // The leader's ancestry is read before the lock is taken: an open never walks
        // the process table, only this short chain.
        let ancestors = procfs::ancestors(caller.pid, MAX_ANCESTORS);
        let leader = ancestors.first().copied();
        let parent = ancestors.get(1).copied();
        // The parent's audit session matters only when the caller has one.
        let parent_ses = parent.filter(|_| ses != NO_AUDIT_SESSION).map(|p| procfs::audit_session_id(p.pid));
        let owns_audit_session = ses != NO_AUDIT_SESSION && parent_ses != Some(ses);
        let inherited_tty = parent.map_or(0, |p| p.tty_nr);
        // The tty PAM names, when it is a device of its own (login on tty1).
        let pam_tty = ttys::tty_nr_of_name(&r.tty).filter(|&t| t != inherited_tty);
        let config = self.config();
        let id = self.ids.lock().unwrap_or_else(|p| p.into_inner()).allocate();
        let now = now_usec();

        let (session, replaced) = {
            let mut registry = self.registry();
            // A session the sweep adopted before this registration arrived (a module
            // that gave up on a busy vigild, then a late call) is this one: its leader is
            // the caller, so it goes before the caller's nesting is looked at.
            let replaced = owns_audit_session
                .then(|| registry.by_audit_session(ses))
                .flatten()
                .filter(|&old| registry.get(old).is_some_and(|s| s.who.adopted))
                .and_then(|old| registry.remove(old));
            let nested_in = registry.enclosing_session(caller.pid, |pid| ancestors.iter().find(|s| s.pid == pid).map(|s| s.ppid));
            let who = Identity {
                user: r.user.clone(),
                uid: account.uid,
                groups: account.groups,
                service: r.service.clone(),
                tty: r.tty.clone(),
                rhost: r.rhost.clone(),
                ruser: r.ruser.clone(),
                rport: None,
                leader_pid: caller.pid,
                leader_start: leader.map_or(0, |l| l.start_time),
                audit_session_id: ses,
                owns_audit_session,
                inherited_tty,
                parent: nested_in.unwrap_or(0),
                started_usec: now,
                adopted: false,
            };
            let policy = who.policy_in(&config, pam_tty.is_some());
            registry.insert(Session::new(id, who, policy, now));
            for tty in replaced.iter().flat_map(|old| old.ttys().iter().copied()).chain(pam_tty.filter(|_| nested_in.is_none())) {
                registry.adopt_tty(id, tty);
            }
            (registry.get(id).cloned(), replaced)
        };
        let Some(session) = session else { return Err(VigilError::Failed("the session vanished while registering".into())) };
        self.save(Some(session.saved()));
        if let Some(old) = &replaced {
            self.remove_file(old.id);
            for hooks in self.hooks() {
                hooks.session_removed(old.id);
            }
        }
        // The record waits for the client's port (sshd's leader holds the TCP
        // connection): looked up after the reply, in the record's reserved place.
        let record = self.audit.defer();
        self.metrics.logins.inc();
        let truncated = (!r.truncated.is_empty()).then(|| r.truncated.join(","));
        let replaced_id = replaced.map(|old| old.id);
        let manager = self.clone();
        tokio::spawn(async move {
            let mut session = session;
            if !session.who.rhost.is_empty() {
                // Not saved now (a second file write per login): the file gets it with
                // the next change, and a restarted vigild asks the leader's socket again
                // (`restore_session`).
                // On the runtime's thread, after the reply: the blocking pool would add a
                // thread wake-up per login for a read of one /proc file.
                session.who.rport = procfs::remote_port(session.who.leader_pid);
                if let Some(live) = manager.registry().get_mut(session.id) {
                    live.who.rport = session.who.rport;
                }
            }
            record.send(
                session_record(Event::SessionOpen, &session)
                    .text("exempt", if session.policy.exempt { "yes" } else { "no" })
                    .text_opt("truncated", truncated)
                    .number_opt("replaces", replaced_id),
            );
            manager.end_if_locked(&session);
        });
        for hooks in self.hooks() {
            hooks.session_added(id, caller.pid);
        }
        Ok(id)
    }

    /// CloseSession: root only. A registration that reached vigild after the module
    /// gave up waiting has no close: its leader's exit ends it (`leader_gone`).
    pub fn close_session(&self, caller: Caller, id: u64) -> Result<(), VigilError> {
        self.require_root(&caller, "CloseSession")?;
        if self.end(id, EndReason::Closed, None) { Ok(()) } else { Err(VigilError::NoSuchSession(format!("no session {id}"))) }
    }
}
