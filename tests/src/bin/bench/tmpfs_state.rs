//! vigild's session files on tmpfs, as in production (`/run/vigil/sessions`), for the
//! benchmarks: the harness puts the state directory under its own directory in /tmp,
//! which may be a disk filesystem (ext4 here), where creating, renaming and unlinking a
//! file per open and close costs vigild inode allocation and journal work that
//! /run/vigil never has. The audit directory stays on the harness's filesystem, as
//! /var/lib/vigil is on disk.
//!
//! Before vigild starts, `<harness dir>/state` is made a symlink to a directory under
//! /dev/shm, and `<state>/audit` a symlink back to `<harness dir>/audit`. The /dev/shm
//! directory is removed on drop: make the guard before the harness, so that it drops
//! after vigild has stopped.

use std::path::PathBuf;

use vigil_e2e::Harness;

pub struct TmpfsState {
    root: PathBuf,
}

impl TmpfsState {
    pub fn new() -> TmpfsState {
        let root = PathBuf::from(format!("/dev/shm/vigil-bench-{}", std::process::id()));
        // Only an earlier process with this pid can have left it.
        let _ = std::fs::remove_dir_all(&root);
        let state = root.join("state");
        std::fs::create_dir_all(&state).unwrap_or_else(|e| panic!("mkdir {}: {e}", state.display()));
        TmpfsState { root }
    }

    /// Points the harness's state directory here; call before `start_vigild`.
    pub fn link(&self, h: &Harness) {
        let state = self.root.join("state");
        let audit = h.path("audit");
        std::fs::create_dir_all(&audit).unwrap_or_else(|e| panic!("mkdir {}: {e}", audit.display()));
        std::os::unix::fs::symlink(&audit, state.join("audit")).expect("symlink the audit directory");
        std::os::unix::fs::symlink(&state, h.path("state"))
            .unwrap_or_else(|e| panic!("symlink {} (start vigild after this): {e}", h.path("state").display()));
    }
}

impl Drop for TmpfsState {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("bench: cannot remove {}: {e}", self.root.display());
        }
    }
}
