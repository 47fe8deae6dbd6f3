//! Where the harness finds what it tests: the workspace, the release binaries
//! (`VIGIL_BIN_DIR` overrides `<workspace>/target/release`), the PAM host program and
//! the packaging files it installs from. The module must have been built by a cargo
//! invocation of its own (tests/run.sh does so), never together with the daemon.

use std::path::{Path, PathBuf};

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

pub fn vigilctl_bin() -> PathBuf {
    require(bin_dir().join("vigilctl"))
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
    package_bin("flood", "VIGIL_FLOOD")
}

/// The `pipeline` program built with this crate: `VIGIL_PIPELINE` if set, else found as
/// [`pam_host_bin`] is.
pub fn pipeline_bin() -> PathBuf {
    package_bin("pipeline", "VIGIL_PIPELINE")
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
