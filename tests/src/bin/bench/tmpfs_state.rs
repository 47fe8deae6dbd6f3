//! vigild's session files on tmpfs, as in production (`/run/vigil/sessions`), for the
//! benchmarks: the harness puts the state directory under its own directory in /tmp,
//! which may be a disk filesystem (ext4 here), where creating, renaming and unlinking a
//! file per open and close costs vigild inode allocation and journal work that
//! /run/vigil never has. The audit directory stays on the harness's filesystem, as
//! /var/lib/vigil is on disk.
//!
//! Before vigild starts, `<harness dir>/state` is made a symlink to a directory under
//! /dev/shm, and `<state>/audit` a symlink back to `<harness dir>/audit` (with two
//! vigilds, the same for the second one's `<harness dir>/second/`). The /dev/shm
//! directory is removed on drop: make the guard before the harness, so that it drops
//! after vigild has stopped.

use std::path::PathBuf;

use vigil_e2e::Harness;

pub struct TmpfsState {
    root: PathBuf,
    vigilds: usize,
}

impl TmpfsState {
    /// For `vigilds` vigilds (1, or 2 with the harness's second one).
    pub fn new(vigilds: usize) -> TmpfsState {
        let root = PathBuf::from(format!("/dev/shm/vigil-bench-{}", std::process::id()));
        // Only an earlier process with this pid can have left it.
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("mkdir {}: {e}", root.display()));
        TmpfsState { root, vigilds }
    }

    /// Points the harness's state directories here; call before `start_vigild`.
    pub fn link(&self, h: &Harness) {
        let homes = [h.dir().to_path_buf(), h.path("second")];
        for (n, home) in homes.iter().take(self.vigilds).enumerate() {
            let state = self.root.join(format!("state-{n}"));
            let audit = home.join("audit");
            for dir in [&state, &audit] {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            }
            std::os::unix::fs::symlink(&audit, state.join("audit")).expect("symlink the audit directory");
            std::os::unix::fs::symlink(&state, home.join("state"))
                .unwrap_or_else(|e| panic!("symlink {} (start vigild after this): {e}", home.join("state").display()));
        }
    }
}

impl Drop for TmpfsState {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("bench: cannot remove {}: {e}", self.root.display());
        }
    }
}
