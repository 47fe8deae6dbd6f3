//! Small files only root may have written (vigild's lock files), read by the module in
//! sshd or sudo and by vigild at start alike.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The text of `path` when it is a regular file of root's, writable by root only, of at
/// most `max_bytes`; `Ok(None)` when there is none. A symlink is not followed (and is an
/// error), nor does a FIFO block the open. Anything else is an error with its reason.
pub fn read_root_only(path: &Path, max_bytes: u64) -> io::Result<Option<String>> {
    let file = match File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 || meta.len() > max_bytes {
        return Err(io::Error::other("not a regular file of root's, writable by root only, of the expected size"));
    }
    let mut text = String::new();
    file.take(max_bytes).read_to_string(&mut text)?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn only_a_small_regular_root_only_file_is_read() {
        let dir = std::env::temp_dir().join(format!("vigil-host-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        assert!(read_root_only(&file, 10).unwrap().is_none(), "absent");
        std::fs::write(&file, "text\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_root_only(&file, 10).unwrap().as_deref(), Some("text\n"));
        assert!(read_root_only(&file, 3).is_err(), "too large");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(read_root_only(&file, 10).is_err(), "group-writable");
        std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
        assert!(read_root_only(&dir.join("link"), 10).is_err(), "a symlink");
        assert!(read_root_only(&dir, 10).is_err(), "a directory");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
