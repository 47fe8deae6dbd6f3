//! `[metrics] textfile`: vigild rewrites the file every `interval` with what `vigilctl
//! metrics` prints, for node_exporter's textfile collector (which reads `*.prom` files
//! in its directory at each scrape). Each write is atomic: a temporary file in the same
//! directory (`.NAME.tmp`, which the collector does not read), mode 0644, renamed over
//! the file, so a scrape sees the old text or the new, never half of one.
//!
//! A reload applies a new path or interval at once; the file of a path no longer
//! configured is removed (no frozen figures left for the collector to serve). The file
//! stays when vigild stops: `node_textfile_mtime_seconds` tells a stale one.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::sessions::manager::{Hooks, Manager};

/// Wakes the writer when a reload may have changed `[metrics]`.
pub struct TextfileWriter {
    changed: Arc<Notify>,
}

impl Hooks for TextfileWriter {
    fn session_added(&self, _id: u64, _leader_pid: u32) {}

    fn session_removed(&self, _id: u64) {}

    fn policy_changed(&self) {
        self.changed.notify_one();
    }
}

/// Starts the writer task (it sleeps until a reload when no textfile is configured).
pub fn spawn(core: Arc<Manager>) -> Arc<TextfileWriter> {
    let changed = Arc::new(Notify::new());
    tokio::spawn(run(core, changed.clone()));
    Arc::new(TextfileWriter { changed })
}

async fn run(core: Arc<Manager>, changed: Arc<Notify>) {
    // The file this vigild wrote last, and whether the last write failed (said once on
    // stderr, and again when it works).
    let mut written: Option<PathBuf> = None;
    let mut failing = false;
    loop {
        let settings = core.config().metrics().clone();
        if written != settings.textfile
            && let Some(old) = written.take()
        {
            let _ = fs::remove_file(&old);
        }
        let Some(path) = settings.textfile else {
            changed.notified().await;
            continue;
        };
        let text = core.metrics_text();
        let target = path.clone();
        // Off the event loop: a slow filesystem must not hold back logins.
        let outcome = tokio::task::spawn_blocking(move || write_atomically(&target, text.as_bytes())).await;
        match outcome.unwrap_or_else(|e| Err(io::Error::other(e.to_string()))) {
            Ok(()) if failing => {
                eprintln!("vigild: metrics written to {} again", path.display());
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                eprintln!(
                    "vigild: cannot write the metrics to {}: {e}; trying again every {}",
                    path.display(),
                    vigil_protocol::time::human(settings.interval)
                );
                failing = true;
            }
            Err(_) => {}
        }
        written = Some(path);
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            () = changed.notified() => {}
        }
    }
}

/// Writes `bytes` to `path` through `.NAME.tmp` beside it and a rename. The temporary
/// name is removed first and created new (`O_EXCL`): a symlink planted there by
/// whoever may write the directory is never followed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other("no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let written = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp).and_then(|mut file| {
        // 0644 whatever the umask: node_exporter runs as its own user.
        file.set_permissions(Permissions::from_mode(0o644))?;
        file.write_all(bytes)
    });
    let renamed = written.and_then(|()| fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-metrics-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn written_whole_with_mode_0644_through_a_temporary_name() {
        let dir = temp_dir("write");
        let path = dir.join("vigil.prom");
        let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        write_atomically(&path, b"a 1\n").unwrap();
        nix::sys::stat::umask(old_umask);
        write_atomically(&path, b"a 2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 2\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["vigil.prom"], "no temporary file left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_at_the_temporary_name_is_not_followed() {
        let dir = temp_dir("symlink");
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".vigil.prom.tmp")).unwrap();
        write_atomically(&dir.join("vigil.prom"), b"a 1\n").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(dir.join("vigil.prom")).unwrap(), "a 1\n");
        assert!(!fs::symlink_metadata(dir.join("vigil.prom")).unwrap().file_type().is_symlink());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_and_leaves_nothing() {
        let dir = temp_dir("missing");
        assert!(write_atomically(&dir.join("nope").join("vigil.prom"), b"a 1\n").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
