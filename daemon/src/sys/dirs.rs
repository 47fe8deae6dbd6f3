//! Directories vigild creates: always with a mode of its own, never the umask's.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates a directory vigild owns with mode 0700, and fixes the mode of one that
/// exists: it is never left to the umask.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    create_dir_with_mode(dir, 0o700)
}

/// Creates `dir` and its missing parents with `mode` (the parents too: vigild creates
/// nothing with the umask's mode), then sets `mode` on `dir` itself.
pub fn create_dir_with_mode(dir: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}
