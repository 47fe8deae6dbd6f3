//! The follow tests' scratch directory and file appends (both test modules use them).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A directory of its own for one test, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    /// Unique per call: both test modules run at once and may pick the same name.
    pub fn new(name: &str) -> Dir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vigil-follow-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    pub fn trail(&self) -> PathBuf {
        self.0.join("trail")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn append(path: &Path, text: &str) {
    OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}
