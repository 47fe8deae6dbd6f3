//! Where the harness finds what it tests: the workspace, the release binaries
//! (`VIGIL_BIN_DIR` overrides `<workspace>/target/release`), the PAM host program and
//! the packaging files it installs from. The module must have been built by a cargo
//! invocation of its own (tests/run.sh does so), never together with the daemon.
//!
//! What a test user runs (`vigilctl`, `flood`, `pipeline`) must be reachable by that
//! user: from a checkout under a directory others may not search (root's home, mode
//! 0700) it is run from a copy in `/tmp/vigil-e2e-<pid>-bin/` (see [`user_runnable`]).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent directory").to_path_buf()
}

/// The directory holding `vigild`, `vigilctl` and `libpam_vigil.so`.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("VIGIL_BIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("release"),
    }
}

pub fn vigild_bin() -> PathBuf {
    require(bin_dir().join("vigild"))
}

/// `vigilctl`, runnable by any user (test users run it through runuser and in their
/// ssh sessions).
pub fn vigilctl_bin() -> PathBuf {
    user_runnable(require(bin_dir().join("vigilctl")))
}

/// `libpam_vigil.so`, refused when it carries tokio: built in one cargo invocation
/// with the daemon (`cargo build --release` of the whole workspace), it gets zbus's
/// `tokio` feature, and the tests would not test the module that install.sh installs.
pub fn pam_module() -> PathBuf {
    let path = require(bin_dir().join("libpam_vigil.so"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        !carries_tokio(&bytes),
        "{} carries tokio: it was built together with the daemon. Build the module on its own, \
         after the rest: `cargo build --release -p pam_vigil` in {}",
        path.display(),
        workspace_root().display()
    );
    path
}

/// True when a built file names tokio anywhere (symbols, panic locations).
pub fn carries_tokio(bytes: &[u8]) -> bool {
    bytes.windows(5).any(|w| w == b"tokio")
}

/// The repository's bus policy; the private bus includes it by this path, never a copy.
pub fn bus_policy_file() -> PathBuf {
    let path = workspace_root().join("packaging").join("dbus").join("org.vigil1.conf");
    assert!(path.is_file(), "the bus policy {} is missing", path.display());
    path
}

/// The `pam_host` program built with this crate: `VIGIL_PAM_HOST` if set, else next to
/// the running test binary's `deps/` directory, where cargo puts a package's binaries.
pub fn pam_host_bin() -> PathBuf {
    package_bin("pam_host", "VIGIL_PAM_HOST")
}

/// The `flood` program built with this crate: `VIGIL_FLOOD` if set, else found as
/// [`pam_host_bin`] is.
pub fn flood_bin() -> PathBuf {
    user_runnable(package_bin("flood", "VIGIL_FLOOD"))
}

/// The `pipeline` program built with this crate: `VIGIL_PIPELINE` if set, else found as
/// [`pam_host_bin`] is.
pub fn pipeline_bin() -> PathBuf {
    user_runnable(package_bin("pipeline", "VIGIL_PIPELINE"))
}

fn package_bin(name: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut candidates = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        candidates.push(dir.join(name));
    }
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "{name} not found (looked at {candidates:?}); build it with \
                 `cargo build -p vigil-e2e --bin {name}` or set {env}"
        )
    })
}

/// `path` if a user other than root can run it (every directory on the way searchable by
/// others, the file executable by others), else a copy that can be run: the checkout
/// may be anywhere root can reach, e.g. under `/root` (0700), where `runuser` and ssh
/// sessions of test users fail with "Permission denied". One copy per file and process,
/// in `/tmp/vigil-e2e-<pid>-bin/` (0755), removed when the process exits (and by the
/// next run's sweep if it is killed).
pub fn user_runnable(path: PathBuf) -> PathBuf {
    if others_can_run(&path) {
        return path;
    }
    static COPIES: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
    let copies = copies.get_or_insert_with(HashMap::new);
    if let Some(copy) = copies.get(&path) {
        return copy.clone();
    }
    let dir = runnable_dir();
    // Each source in a subdirectory of its own: the copy keeps its file name (process
    // names are matched by the tests), and two sources may share one.
    let sub = dir.join(copies.len().to_string());
    let name = path.file_name().unwrap_or_else(|| panic!("{} has no file name", path.display()));
    let copy = sub.join(name);
    let made = std::fs::create_dir(&sub)
        .and_then(|()| std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| std::fs::copy(&path, &copy))
        .and_then(|_| std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)));
    if let Err(e) = made {
        panic!("{} cannot be run by test users, and copying it to {} failed: {e}", path.display(), copy.display());
    }
    copies.insert(path, copy.clone());
    copy
}

/// True when every directory above `path` is searchable by others and `path` is
/// executable by others.
fn others_can_run(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else { return false };
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    mode(&path) & 0o001 != 0 && path.ancestors().skip(1).all(|dir| mode(dir) & 0o001 != 0)
}

/// This process's directory of runnable copies, created once (0755); removed at exit.
fn runnable_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/{}{}-bin", crate::tempdir::PREFIX, std::process::id()));
        // Only an earlier process with this pid can have left one: ours to replace.
        if dir.symlink_metadata().is_ok() {
            let _ = std::fs::remove_file(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
        extern "C" fn remove_at_exit() {
            let dir = format!("/tmp/{}{}-bin", crate::tempdir::PREFIX, std::process::id());
            let _ = std::fs::remove_dir_all(dir);
        }
        // SAFETY: registers a plain function with no captured state, called once at exit.
        unsafe {
            libc::atexit(remove_at_exit);
        }
        dir
    })
    .clone()
}

#[track_caller]
fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} does not exist: build it first with `cargo build --release` in {} \
         (or point VIGIL_BIN_DIR at the directory holding vigild, vigilctl and libpam_vigil.so)",
        path.display(),
        workspace_root().display()
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_under_a_closed_directory_is_run_from_a_copy() {
        let closed = PathBuf::from(format!("/tmp/vigil-paths-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&closed);
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let program = closed.join("tool");
        std::fs::write(&program, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();

        assert!(!others_can_run(&program));
        let copy = user_runnable(program.clone());
        assert_ne!(copy, program);
        assert_eq!(copy.file_name(), program.file_name(), "the copy keeps the name");
        assert!(others_can_run(&copy), "{} is not runnable by others", copy.display());
        assert_eq!(user_runnable(program.clone()), copy, "one copy per file");

        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(user_runnable(program.clone()), program, "a reachable program is run where it is");
        std::fs::remove_dir_all(&closed).unwrap();
    }
}
