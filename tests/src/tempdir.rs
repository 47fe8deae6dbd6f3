//! The harness's own directory: `/tmp/vigil-e2e-<pid>-<n>/`, mode 0755 so that test
//! users can reach the sockets in it, removed on drop unless `VIGIL_E2E_KEEP=1`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub const PREFIX: &str = "vigil-e2e-";

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct TestDir {
    path: PathBuf,
    keep: bool,
}

impl TestDir {
    pub fn create() -> TestDir {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(format!("/tmp/{PREFIX}{}-{n}", std::process::id()));
        // A directory by this name can only be left over by an earlier process that had
        // this pid: it is ours to replace.
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap_or_else(|e| panic!("cannot remove stale {}: {e}", path.display()));
        }
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
        TestDir { path, keep: keep_requested() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a subdirectory with `mode` and returns its path.
    pub fn subdir(&self, name: &str, mode: u32) -> PathBuf {
        let dir = self.path.join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
        dir
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("vigil-e2e: keeping {} (VIGIL_E2E_KEEP=1)", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("vigil-e2e: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// True when `VIGIL_E2E_KEEP=1`.
pub fn keep_requested() -> bool {
    std::env::var("VIGIL_E2E_KEEP").is_ok_and(|v| v == "1")
}
