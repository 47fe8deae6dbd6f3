//! A user lock: what `vigilctl lock` makes, what vigild keeps on disk, and what the
//! module reads in PAM's account stage — without a call to vigild, so that a lock
//! holds while vigild is down, hung or restarting.
//!
//! One file per locked user, `<lock dir>/<uid>`, root's and mode 0600 in a directory
//! of mode 0700: an unlocked user costs the module one failed `open`. The file is one
//! `key=value` line in the audit records' escaping (`audit::push_escaped`), so that
//! nothing in `why` can add a line or a field.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

use crate::audit::{parse_kv_line, push_escaped};

/// Where vigild keeps the locks and the module looks for them (`--lock-dir`, `locks=`).
/// Under /var/lib: a lock must survive a reboot.
pub const DEFAULT_LOCK_DIR: &str = "/var/lib/vigil/locks";

/// Longest `why` a lock takes, in bytes: a sentence for the admin who reads `locks`
/// and for the user who is refused, not a document.
pub const MAX_LOCK_WHY_BYTES: usize = 256;

/// Longest lock file the module reads: a file over this is not vigild's and is ignored.
pub const MAX_LOCK_FILE_BYTES: usize = 4096;

/// The one uid a lock is never taken on: vigil never locks out the admin.
pub const NEVER_LOCKED_UID: u32 = 0;

/// One user's lock, as `ListLocks` returns it and as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct LockInfo {
    pub user: String,
    pub uid: u32,
    /// Who locked: `root` or the admin's user name, with their uid (`root(0)`).
    pub by: String,
    pub why: String,
    /// When the lock was taken, µs since the epoch.
    pub since_usec: u64,
    /// When it ends by itself, µs since the epoch; 0: when it is lifted.
    pub until_usec: u64,
}

/// Why a lock file was not taken as a lock (the module then ignores it: a broken file
/// must never lock anyone out, nor everyone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockFileError {
    #[error("not one key=value line: {0}")]
    Syntax(&'static str),
    #[error("field {0} is missing or malformed")]
    Field(&'static str),
}

impl LockInfo {
    /// The file name of `uid`'s lock in the lock directory.
    pub fn file_name(uid: u32) -> String {
        uid.to_string()
    }

    /// Whether the lock refuses at `now_usec`.
    pub fn in_force_at(&self, now_usec: u64) -> bool {
        self.until_usec == 0 || now_usec < self.until_usec
    }

    /// The file's text: one line, newline-terminated.
    pub fn to_file(&self) -> String {
        let mut line = String::new();
        let numbers = [("uid", u64::from(self.uid)), ("since_usec", self.since_usec), ("until_usec", self.until_usec)];
        for (key, value) in numbers {
            line.push_str(&format!("{key}={value} "));
        }
        for (key, value) in [("user", &self.user), ("by", &self.by), ("why", &self.why)] {
            line.push_str(key);
            line.push('=');
            push_escaped(&mut line, value.as_bytes());
            line.push(' ');
        }
        line.pop();
        line.push('\n');
        line
    }

    /// Reads a lock file's text. Refuses anything [`LockInfo::to_file`] could not have
    /// written.
    pub fn parse_file(text: &str) -> Result<LockInfo, LockFileError> {
        let line = text.strip_suffix('\n').ok_or(LockFileError::Syntax("no newline at the end"))?;
        let fields = parse_kv_line(line).map_err(|e| LockFileError::Syntax(e.reason))?;
        let get = |key: &'static str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice()).ok_or(LockFileError::Field(key));
        let text = |key: &'static str| get(key).and_then(|v| String::from_utf8(v.to_vec()).map_err(|_| LockFileError::Field(key)));
        let number = |key: &'static str| text(key).and_then(|v| v.parse::<u64>().map_err(|_| LockFileError::Field(key)));
        Ok(LockInfo {
            user: text("user")?,
            uid: u32::try_from(number("uid")?).map_err(|_| LockFileError::Field("uid"))?,
            by: text("by")?,
            why: text("why")?,
            since_usec: number("since_usec")?,
            until_usec: number("until_usec")?,
        })
    }

    /// What the refused user reads (sshd shows it as a banner, su and sudo print it):
    /// who locked, until when, why. Control characters are shown as `?`, whatever the
    /// file holds.
    pub fn message(&self) -> String {
        let until = match self.until_usec {
            0 => "until an admin lifts it".to_string(),
            usec => format!("until {}", humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(usec))),
        };
        let why: String = self.why.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        let by: String = self.by.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        format!("vigil: account {} is locked by {by} {until}: {why}", self.user.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> LockInfo {
        LockInfo {
            user: "alice".into(),
            uid: 1001,
            by: "root(0)".into(),
            why: "laptop stolen; call \"security\"\nevent=forged".into(),
            since_usec: 1_800_000_000_000_000,
            until_usec: 1_800_000_600_000_000,
        }
    }

    #[test]
    fn a_lock_file_reads_back_whole_and_stays_one_line() {
        let text = lock().to_file();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(!text.contains(" event=forged"), "{text}");
        assert_eq!(LockInfo::parse_file(&text), Ok(lock()));
    }

    #[test]
    fn broken_files_are_refused_not_guessed() {
        assert!(LockInfo::parse_file("").is_err());
        assert!(LockInfo::parse_file("uid=1001 user=alice\n").is_err());
        let text = lock().to_file();
        assert!(LockInfo::parse_file(text.trim_end()).is_err(), "a file cut before its newline is a half-written one");
        assert!(LockInfo::parse_file(&text.replace("uid=1001", "uid=-1")).is_err());
        assert!(LockInfo::parse_file(&text.replace("uid=1001", "uid=99999999999")).is_err());
    }

    #[test]
    fn a_lock_ends_at_its_until_and_a_lock_without_one_does_not() {
        let l = lock();
        assert!(l.in_force_at(l.until_usec - 1));
        assert!(!l.in_force_at(l.until_usec));
        assert!(LockInfo { until_usec: 0, ..l }.in_force_at(u64::MAX));
    }

    #[test]
    fn the_message_names_who_until_and_why_without_control_characters() {
        let message = lock().message();
        assert!(message.contains("locked by root(0) until 2027-01-15T08:10:00Z"), "{message}");
        assert!(message.contains("call \"security\"?event=forged"), "{message}");
        assert!(LockInfo { until_usec: 0, ..lock() }.message().contains("until an admin lifts it"));
    }
}
