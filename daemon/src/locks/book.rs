//! The locks in force, in memory and on disk: `<lock dir>/<uid>`, one file per locked
//! user in the format of `vigil_protocol::lock`. The file is what refuses the user (the
//! module reads it in PAM's account stage, with or without vigild), so every change is
//! on disk — written to a temporary file, synced, renamed, the directory synced —
//! before the call that made it returns: a SIGKILL or a power cut right after
//! `vigilctl lock` answers still leaves the lock.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::Notify;
use vigil_host::files::read_root_only;
use vigil_protocol::lock::{LockInfo, MAX_LOCK_FILE_BYTES};

use crate::sys::dirs;

pub struct LockBook {
    /// `None` in unit tests of other parts: nothing is written.
    dir: Option<PathBuf>,
    locks: Mutex<BTreeMap<u32, LockInfo>>,
    /// Woken when a lock is taken, so that the expiry task sleeps until the nearest end.
    pub changed: Notify,
}

/// A file in the lock directory that is not a lock vigild can hold (left in place: the
/// module ignores it too, and the admin sees it named at start).
#[derive(Debug)]
pub struct NotALock {
    pub path: PathBuf,
    pub why: String,
}

impl LockBook {
    /// Opens (creating it with mode 0700) the lock directory and reads the locks in it.
    pub fn open(dir: PathBuf) -> io::Result<(Self, Vec<NotALock>)> {
        dirs::create_private_dir(&dir)?;
        let mut locks = BTreeMap::new();
        let mut strays = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') {
                // A temporary file a crash left before its rename: never a lock.
                let _ = fs::remove_file(&path);
                continue;
            }
            match read_lock(&path) {
                Ok(lock) if LockInfo::file_name(lock.uid) == name => {
                    locks.insert(lock.uid, lock);
                }
                Ok(lock) => strays.push(NotALock { why: format!("holds uid {} under another name", lock.uid), path }),
                Err(why) => strays.push(NotALock { path, why }),
            }
        }
        Ok((Self { dir: Some(dir), locks: Mutex::new(locks), changed: Notify::new() }, strays))
    }

    /// A book that keeps nothing on disk, for unit tests.
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Self { dir: None, locks: Mutex::new(BTreeMap::new()), changed: Notify::new() }
    }

    fn locks(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, LockInfo>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `lock` (replacing the user's lock if there is one), on disk first.
    /// Returns the lock it replaced.
    pub fn put(&self, lock: LockInfo) -> io::Result<Option<LockInfo>> {
        if let Some(dir) = &self.dir {
            write_durably(dir, &LockInfo::file_name(lock.uid), lock.to_file().as_bytes())?;
        }
        let replaced = self.locks().insert(lock.uid, lock);
        self.changed.notify_one();
        Ok(replaced)
    }

    /// Lifts `uid`'s lock, on disk first. Returns it, if there was one.
    pub fn remove(&self, uid: u32) -> io::Result<Option<LockInfo>> {
        if let Some(dir) = &self.dir {
            match fs::remove_file(dir.join(LockInfo::file_name(uid))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => sync_dir(dir)?,
            }
        }
        Ok(self.locks().remove(&uid))
    }

    /// The locks in force, by uid.
    pub fn list(&self) -> Vec<LockInfo> {
        self.locks().values().cloned().collect()
    }

    /// How many locks are in force at `now_usec` (the metrics' gauge).
    pub fn count_in_force(&self, now_usec: u64) -> usize {
        self.locks().values().filter(|l| l.in_force_at(now_usec)).count()
    }

    /// The lock of the user named `user`, if any (for an unlock of a user NSS no
    /// longer knows).
    pub fn by_name(&self, user: &str) -> Option<LockInfo> {
        self.locks().values().find(|l| l.user == user).cloned()
    }

    /// Whether `uid` is locked at `now_usec`.
    pub fn in_force(&self, uid: u32, now_usec: u64) -> bool {
        self.locks().get(&uid).is_some_and(|l| l.in_force_at(now_usec))
    }

    /// The locks whose time ran out at `now_usec`.
    pub fn expired(&self, now_usec: u64) -> Vec<LockInfo> {
        self.locks().values().filter(|l| !l.in_force_at(now_usec)).cloned().collect()
    }

    /// The nearest end of a lock with an end, µs since the epoch.
    pub fn next_end(&self) -> Option<u64> {
        self.locks().values().map(|l| l.until_usec).filter(|&u| u != 0).min()
    }
}

/// Reads one lock file, with the module's own reader and rules (`lock_check.rs`): what
/// the module would ignore is no lock of vigild's either.
fn read_lock(path: &Path) -> Result<LockInfo, String> {
    match read_root_only(path, MAX_LOCK_FILE_BYTES as u64) {
        Ok(Some(text)) => LockInfo::parse_file(&text).map_err(|e| e.to_string()),
        Ok(None) => Err("gone while read".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `bytes` as `dir/name`, durably: a temporary file written and synced, renamed over
/// the old one, the directory synced. A crash leaves the old file or the new one.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(uid: u32, until_usec: u64) -> LockInfo {
        LockInfo { user: format!("u{uid}"), uid, by: "root".into(), why: "test".into(), since_usec: 1, until_usec }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-lockbook-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn locks_survive_a_reopen_and_an_unlock_removes_the_file() {
        let dir = scratch("reopen");
        let (book, strays) = LockBook::open(dir.clone()).unwrap();
        assert!(strays.is_empty());
        book.put(lock(1001, 0)).unwrap();
        book.put(lock(1002, 50)).unwrap();
        let (again, _) = LockBook::open(dir.clone()).unwrap();
        assert_eq!(again.list(), vec![lock(1001, 0), lock(1002, 50)]);
        assert_eq!(again.remove(1001).unwrap(), Some(lock(1001, 0)));
        assert!(!dir.join("1001").exists());
        assert_eq!(again.remove(1001).unwrap(), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn strays_are_named_and_left_and_crash_leftovers_removed() {
        let dir = scratch("strays");
        let (book, _) = LockBook::open(dir.clone()).unwrap();
        book.put(lock(1001, 0)).unwrap();
        fs::write(dir.join("1002"), "garbage\n").unwrap();
        fs::copy(dir.join("1001"), dir.join("1003")).unwrap();
        fs::write(dir.join(".1004.tmp"), "half").unwrap();
        let (again, strays) = LockBook::open(dir.clone()).unwrap();
        assert_eq!(again.list(), vec![lock(1001, 0)]);
        let mut named: Vec<_> = strays.iter().map(|s| s.path.file_name().unwrap().to_str().unwrap().to_string()).collect();
        named.sort();
        assert_eq!(named, ["1002", "1003"]);
        assert!(!dir.join(".1004.tmp").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_nearest_end_ignores_locks_without_one() {
        let book = LockBook::in_memory();
        assert_eq!(book.next_end(), None);
        book.put(lock(1, 0)).unwrap();
        book.put(lock(2, 300)).unwrap();
        book.put(lock(3, 200)).unwrap();
        assert_eq!(book.next_end(), Some(200));
        assert_eq!(book.expired(250), vec![lock(3, 200)]);
        assert!(book.expired(199).is_empty());
    }
}
