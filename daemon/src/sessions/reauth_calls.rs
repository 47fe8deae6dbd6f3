//! The re-authentication methods of `org.vigil1.Manager` (CheckReauth, RecordAuth,
//! RecordAuthFailure, RevokeReauth, MyStatus): which session a calling process belongs
//! to, and what its proofs of identity say. The judgement itself is `reauth::judge`.

use vigil_protocol::audit::Record;
use vigil_protocol::events::{CallRefusal, Event, REAUTH_FRESH, ReauthReason, RevokeReason};
use vigil_protocol::{MAX_FIELD_BYTES, MyStatus, ReauthAnswer, VigilError};

use crate::audit::records::session_record;
use crate::rpc::caller::Caller;
use crate::sessions::manager::{Manager, now_usec};
use crate::sessions::reauth::{self, Judgement, Proof};
use crate::sys::procfs::{self, NO_AUDIT_SESSION};
use crate::sys::ttys::{self, TtyNr};

/// How far up the process tree a caller is followed to its session's leader.
const MAX_ANCESTORS: usize = 64;

fn check_field(name: &str, value: &str) -> Result<(), VigilError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(VigilError::InvalidArgument(format!("{name} is longer than {MAX_FIELD_BYTES} bytes")));
    }
    Ok(())
}

/// The calling process as /proc shows it: its tty, its session's clues, its real uid.
struct CallerProcess {
    tty: TtyNr,
    /// The caller and its ancestors, nearest first.
    ancestors: Vec<procfs::Stat>,
    audit_session: u32,
    real_uid: Option<u32>,
}

impl CallerProcess {
    /// Read before the registry's lock is taken.
    fn read(pid: u32) -> Option<Self> {
        let ancestors = procfs::ancestors(pid, MAX_ANCESTORS);
        let me = ancestors.first()?;
        Some(Self { tty: me.tty_nr, audit_session: procfs::audit_session_id(pid), real_uid: procfs::real_uid(pid), ancestors })
    }
}

impl Manager {
    /// The login session a process belongs to: the session that owns its kernel audit
    /// session, else the nearest session leader among its ancestors. The process's
    /// real uid must be the session's user.
    fn session_of(&self, process: &CallerProcess) -> Option<u64> {
        let registry = self.registry();
        let by_ses = (process.audit_session != NO_AUDIT_SESSION).then(|| registry.by_audit_session(process.audit_session)).flatten();
        let pid = process.ancestors.first()?.pid;
        let id = by_ses.or_else(|| registry.enclosing_session(pid, |p| process.ancestors.iter().find(|s| s.pid == p).map(|s| s.ppid)))?;
        registry.get(id).filter(|s| Some(s.who.uid) == process.real_uid).map(|s| s.id)
    }

    /// CheckReauth: root only (sudo, su, pkexec run as root). Every answer is one
    /// record, `reauth_granted` or `reauth_required`, and counted as such.
    pub fn check_reauth(&self, caller: Caller, service: &str, user: &str) -> Result<ReauthAnswer, VigilError> {
        let answer = self.judge_reauth(caller, service, user)?;
        if answer.fresh {
            self.metrics.reauth_granted.inc()
        } else {
            self.metrics.reauth_asked.inc()
        }
        Ok(answer)
    }

    fn judge_reauth(&self, caller: Caller, service: &str, user: &str) -> Result<ReauthAnswer, VigilError> {
        self.require_root(&caller, "CheckReauth")?;
        // A step of the clock the watch has not passed on yet must not stretch a proof.
        let _ = self.clock_changed();
        check_field("service", service)?;
        check_field("user", user)?;
        let process = CallerProcess::read(caller.pid);
        let tty = process.as_ref().map_or(0, |p| p.tty);
        let answer =
            |fresh: bool, reason: &str, age: u64, session: u64| ReauthAnswer { fresh, reason: reason.into(), proof_age_usec: age, session };
        let unknown = || {
            self.audit.write(
                Record::new(Event::ReauthRequired)
                    .text("reason", ReauthReason::UnknownSession)
                    .text("service", service)
                    .number("pid", caller.pid)
                    .number("uid", process.as_ref().and_then(|p| p.real_uid).map_or(-1, i128::from))
                    .text("tty", ttys::short_name(tty)),
            );
            Ok(answer(false, ReauthReason::UnknownSession.as_str(), 0, 0))
        };
        let Some(id) = process.as_ref().and_then(|p| self.session_of(p)) else { return unknown() };
        let now = now_usec();
        let Some(session) = self.session(id) else { return unknown() };
        let record = |event| {
            session_record(event, &session)
                .text("reauth_service", service)
                .text("reauth_tty", ttys::short_name(tty))
                .number("pid", caller.pid)
        };
        if user != session.who.user {
            // The password asked is someone else's (su bob): this session's proof does
            // not stand for it.
            self.audit.write(record(Event::ReauthRequired).text("reason", ReauthReason::OtherUser).text("target_user", user));
            return Ok(answer(false, ReauthReason::OtherUser.as_str(), 0, id));
        }
        if !session.policy.is_sensitive(service) {
            self.audit.write(record(Event::ReauthRequired).text("reason", ReauthReason::NotSensitive));
            return Ok(answer(false, ReauthReason::NotSensitive.as_str(), 0, id));
        }
        let proof = session.activity.proofs.get(&tty).copied();
        let age = proof.map_or(0, |p| now.saturating_sub(p.at));
        match reauth::judge(&session.policy, proof, session.last_activity_usec, session.activity.proofs_revoked, now) {
            Judgement::Fresh { age } => {
                self.audit.write(record(Event::ReauthGranted).number("proof_age_s", age / 1_000_000));
                Ok(answer(true, REAUTH_FRESH, age, id))
            }
            Judgement::Required(why) => {
                self.audit.write(record(Event::ReauthRequired).text("reason", why.reason()).number("proof_age_s", age / 1_000_000));
                Ok(answer(false, why.reason().as_str(), age, id))
            }
        }
    }

    /// RecordAuth (root only): a real password was accepted for `service`.
    pub fn record_auth(&self, caller: Caller, service: &str, user: &str) -> Result<(), VigilError> {
        self.require_root(&caller, "RecordAuth")?;
        check_field("service", service)?;
        check_field("user", user)?;
        let process = CallerProcess::read(caller.pid);
        let tty = process.as_ref().map_or(0, |p| p.tty);
        let id = process
            .as_ref()
            .and_then(|p| self.session_of(p))
            .ok_or_else(|| VigilError::NoSuchSession("the caller is in no vigil session".into()))?;
        let recorded = {
            let mut registry = self.registry();
            let session = registry.get_mut(id).ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))?;
            if !session.policy.is_sensitive(service) {
                return Err(VigilError::InvalidArgument(format!("{service} is not a sensitive service")));
            }
            if user != session.who.user {
                return Err(VigilError::InvalidArgument(format!("a password of {user:?} proves nothing about {:?}", session.who.user)));
            }
            session.activity.proofs.insert(tty, Proof::new(now_usec()));
            session.activity.proofs_revoked = false;
            session.clone()
        };
        self.metrics.reauth_recorded.inc();
        self.audit.write(
            session_record(Event::ReauthRecorded, &recorded)
                .text("reauth_service", service)
                .text("reauth_tty", ttys::short_name(tty))
                .number("pid", caller.pid),
        );
        Ok(())
    }

    /// RecordAuthFailure (root only): a wrong password for `service`. No proof.
    pub fn record_auth_failure(&self, caller: Caller, service: &str) -> Result<(), VigilError> {
        self.require_root(&caller, "RecordAuthFailure")?;
        check_field("service", service)?;
        let process = CallerProcess::read(caller.pid);
        let tty = process.as_ref().map_or(0, |p| p.tty);
        let session = process.as_ref().and_then(|p| self.session_of(p)).and_then(|id| self.session(id));
        let record = match &session {
            Some(session) => session_record(Event::ReauthFailed, session),
            None => Record::new(Event::ReauthFailed).number("uid", process.as_ref().and_then(|p| p.real_uid).map_or(-1, i128::from)),
        };
        let tty_name = ttys::short_name(tty);
        self.metrics.reauth_failed.inc();
        self.audit.write(record.text("reauth_service", service).text("reauth_tty", &tty_name).number("pid", caller.pid));
        if let Some(session) = session {
            self.count_reauth_failure(&session, service, &tty_name, caller.pid);
        }
        Ok(())
    }

    /// Drops every proof of a session (idle warning, the user, an admin).
    pub fn revoke_proofs(&self, id: u64, reason: RevokeReason) -> u32 {
        let revoked = {
            let mut registry = self.registry();
            let Some(session) = registry.get_mut(id) else { return 0 };
            let dropped = session.activity.proofs.len() as u32;
            session.activity.proofs.clear();
            session.activity.proofs_revoked = true;
            (dropped, session.clone())
        };
        let (dropped, session) = revoked;
        self.audit.write(session_record(Event::ReauthRevoked, &session).text("reason", reason).number("proofs", dropped));
        dropped
    }

    /// RevokeReauth: any user, for the session they call from.
    pub fn revoke_reauth(&self, caller: Caller) -> Result<u32, VigilError> {
        self.spend_user_call(&caller, "RevokeReauth")?;
        let (id, _) = self.caller_session(&caller, "RevokeReauth")?;
        Ok(self.revoke_proofs(id, RevokeReason::User))
    }

    /// The session the caller runs in (its user must be the caller), and the caller's
    /// tty.
    pub(crate) fn caller_session(&self, caller: &Caller, method: &'static str) -> Result<(u64, TtyNr), VigilError> {
        let process = CallerProcess::read(caller.pid);
        let id = process
            .as_ref()
            .and_then(|p| self.session_of(p))
            .ok_or_else(|| VigilError::NoSuchSession("this process is in no vigil session".into()))?;
        match self.session(id) {
            Some(s) if caller.is_root() || s.who.uid == caller.uid => Ok((id, process.map_or(0, |p| p.tty))),
            _ => Err(self.refuse(caller, method, CallRefusal::NotCallersSession)),
        }
    }

    /// MyStatus: any user, about the session they call from.
    pub fn my_status(&self, caller: Caller) -> Result<MyStatus, VigilError> {
        let (id, tty) = self.caller_session(&caller, "MyStatus")?;
        let now = now_usec();
        let session = self.session(id).ok_or_else(|| VigilError::NoSuchSession(format!("no session {id}")))?;
        let proof = session.activity.proofs.get(&tty).copied();
        let verdict = reauth::judge(&session.policy, proof, session.last_activity_usec, session.activity.proofs_revoked, now);
        let (asks, reason) = match verdict {
            Judgement::Fresh { .. } => (false, REAUTH_FRESH),
            Judgement::Required(why) => (true, why.reason().as_str()),
        };
        Ok(MyStatus {
            idle_usec: now.saturating_sub(session.last_activity_usec),
            next_sudo_asks: asks,
            reauth_reason: reason.into(),
            proof_age_usec: proof.map_or(0, |p| now.saturating_sub(p.at)),
            session: session.info(),
        })
    }
}
