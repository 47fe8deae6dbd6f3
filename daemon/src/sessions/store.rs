//! Sessions on disk, one file each, as logind keeps `/run/systemd/sessions/ID`:
//! `<state-dir>/sessions/<id>` (tmpfs `/run/vigil`: gone at reboot, with the sessions).
//! Every change a restarted vigild needs is written (temporary file + rename, so a
//! crash leaves the old file or the new one, never half of one) before the PAM call
//! that made it returns; SIGKILL at any point loses no session.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sessions::session::SavedSession;
use crate::sys::dirs;

/// Largest session file read back: a saved session is a few hundred bytes (its strings
/// are bounded by the wire limit); anything larger is not vigild's.
const MAX_FILE_BYTES: u64 = 64 * 1024;

pub struct SessionStore {
    /// `None` in unit tests: nothing is saved.
    dir: Option<PathBuf>,
}

/// A file that could not be read back as a session.
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub why: NotASession,
}

/// Why a file under the sessions directory is not a session vigild takes over.
#[derive(Debug, thiserror::Error)]
pub enum NotASession {
    #[error("not a session file name")]
    Name,
    #[error("not a regular file of a session's size")]
    NotARegularFile,
    #[error(transparent)]
    Read(#[from] io::Error),
    #[error(transparent)]
    Parse(#[from] serde_json::Error),
    #[error("format version {version} / id {id} does not match")]
    Mismatch { version: u32, id: u64 },
}

impl SessionStore {
    /// Creates `dir` (mode 0700) if needed.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        dirs::create_private_dir(&dir)?;
        Ok(Self { dir: Some(dir) })
    }

    #[cfg(test)]
    pub fn none() -> Self {
        Self { dir: None }
    }

    fn path(dir: &Path, id: u64) -> PathBuf {
        dir.join(id.to_string())
    }

    /// Writes one session's file (mode 0600).
    pub fn save(&self, session: &SavedSession) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let bytes = serde_json::to_vec(session).map_err(io::Error::other)?;
        let path = Self::path(dir, session.id);
        let tmp = dir.join(format!(".{}.tmp", session.id));
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?.write_all(&bytes)?;
        fs::rename(&tmp, &path)
    }

    /// Removes a session's file; a file already gone is fine.
    pub fn remove(&self, id: u64) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        match fs::remove_file(Self::path(dir, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every saved session, and the files that are not one (those are removed, after
    /// being reported). Leftover temporary files of a crash are removed too.
    pub fn load_all(&self) -> (Vec<SavedSession>, Vec<Unreadable>) {
        let (mut sessions, mut bad) = (Vec::new(), Vec::new());
        let Some(dir) = &self.dir else { return (sessions, bad) };
        let Ok(entries) = fs::read_dir(dir) else { return (sessions, bad) };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                bad.push(Unreadable { path, why: NotASession::Name });
                continue;
            };
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            match read_one(&path, name) {
                Ok(saved) => sessions.push(saved),
                Err(why) => {
                    let _ = fs::remove_file(&path);
                    bad.push(Unreadable { path, why });
                }
            }
        }
        sessions.sort_by_key(|s| s.id);
        (sessions, bad)
    }
}

fn read_one(path: &Path, name: &str) -> Result<SavedSession, NotASession> {
    let id: u64 = name.parse().map_err(|_| NotASession::Name)?;
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(NotASession::NotARegularFile);
    }
    let saved: SavedSession = serde_json::from_slice(&fs::read(path)?)?;
    if saved.version != SavedSession::VERSION || saved.id != id {
        return Err(NotASession::Mismatch { version: saved.version, id: saved.id });
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::sessions::session::{Identity, SavedSession};

    fn saved(id: u64) -> SavedSession {
        let who = Identity {
            user: "bob".into(),
            uid: 1001,
            groups: vec![],
            service: "login".into(),
            tty: "tty1".into(),
            rhost: String::new(),
            ruser: String::new(),
            rport: None,
            leader_pid: 42,
            leader_start: 9,
            audit_session_id: 3,
            owns_audit_session: true,
            inherited_tty: 0,
            parent: 0,
            started_usec: 5,
            adopted: false,
        };
        SavedSession {
            version: SavedSession::VERSION,
            id,
            who,
            ttys: vec![1025],
            last_activity_usec: 6,
            inhibitor: None,
            inhibit_budget: Default::default(),
            clock_offset_usec: 0,
            io_total: Some(77),
        }
    }

    #[test]
    fn saves_loads_and_removes_and_throws_out_what_is_not_a_session() {
        let dir = std::env::temp_dir().join(format!("vigil-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = SessionStore::open(dir.clone()).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        store.save(&saved(7)).unwrap();
        store.save(&saved(8)).unwrap();
        assert_eq!(fs::metadata(dir.join("7")).unwrap().permissions().mode() & 0o777, 0o600);
        fs::write(dir.join("9"), b"{not json").unwrap();
        fs::write(dir.join("10"), serde_json::to_vec(&saved(11)).unwrap()).unwrap();
        fs::write(dir.join(".12.tmp"), b"half").unwrap();
        store.remove(8).unwrap();
        store.remove(8).unwrap();
        let (sessions, bad) = store.load_all();
        assert_eq!(sessions, vec![saved(7)]);
        assert_eq!(bad.len(), 2, "{bad:?}");
        let left: Vec<_> = fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("7")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A file written by a vigild that did not save I/O counters is read back, without
    /// them (the first sample then counts as activity, as it did).
    #[test]
    fn a_file_without_io_counters_is_still_a_session() {
        let mut json: serde_json::Value = serde_json::to_value(saved(7)).unwrap();
        json.as_object_mut().unwrap().remove("io_total");
        let older: SavedSession = serde_json::from_value(json).unwrap();
        assert_eq!(older, SavedSession { io_total: None, ..saved(7) });
    }
}
