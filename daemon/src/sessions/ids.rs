//! Session ids: small numbers an admin can type, never reused across restarts.
//!
//! The next id is kept in `<state-dir>/next-session-id`. Ids are reserved in blocks so
//! that opening a session rarely touches the disk; a restart skips the rest of a block.

use std::fs;
use std::path::PathBuf;

const BLOCK: u64 = 1000;

pub struct IdAllocator {
    file: Option<PathBuf>,
    next: u64,
    reserved_until: u64,
}

impl IdAllocator {
    /// Starts after the last reserved block recorded in `file` (or at 1).
    pub fn open(file: Option<PathBuf>) -> Self {
        let next = file.as_ref().and_then(|f| fs::read_to_string(f).ok()).and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1).max(1);
        Self { file, next, reserved_until: next }
    }

    pub fn allocate(&mut self) -> u64 {
        if self.next >= self.reserved_until {
            self.reserved_until = self.next + BLOCK;
            if let Some(file) = &self.file {
                // Write-then-rename so a crash never leaves a half-written number.
                let tmp = file.with_extension("tmp");
                let saved = fs::write(&tmp, format!("{}\n", self.reserved_until)).and_then(|()| fs::rename(&tmp, file));
                if let Err(e) = saved {
                    eprintln!("vigild: cannot save {}: {e}; ids may repeat after a restart", file.display());
                }
            }
        }
        let id = self.next;
        self.next += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_restart_without_reuse() {
        let dir = std::env::temp_dir().join(format!("vigil-ids-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("next-session-id");
        let mut a = IdAllocator::open(Some(file.clone()));
        assert_eq!((a.allocate(), a.allocate()), (1, 2));
        let mut b = IdAllocator::open(Some(file.clone()));
        assert!(b.allocate() > 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
