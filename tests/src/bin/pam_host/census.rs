//! Counting what a PAM module may leave behind in its host: threads
//! (`/proc/self/task`) and open descriptors (`/proc/self/fd`).

use std::collections::BTreeMap;

pub struct Census {
    /// tid → thread name.
    pub threads: BTreeMap<u32, String>,
    /// fd → what it points to.
    pub fds: BTreeMap<u32, String>,
}

impl Census {
    pub fn take() -> Census {
        let mut threads = BTreeMap::new();
        for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
            if let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                threads.insert(tid, comm.trim_end().to_string());
            }
        }
        let own_dir = format!("/proc/{}/fd", std::process::id());
        let mut fds = BTreeMap::new();
        for entry in std::fs::read_dir("/proc/self/fd").into_iter().flatten().flatten() {
            if let Ok(fd) = entry.file_name().to_string_lossy().parse::<u32>() {
                let target = std::fs::read_link(entry.path()).map(|p| p.display().to_string()).unwrap_or_else(|_| "?".to_string());
                // The descriptor read_dir itself holds open while listing.
                if target != own_dir {
                    fds.insert(fd, target);
                }
            }
        }
        Census { threads, fds }
    }

    /// Threads in `self` that `before` did not have, by name.
    pub fn new_threads(&self, before: &Census) -> Vec<String> {
        self.threads.iter().filter(|(tid, _)| !before.threads.contains_key(tid)).map(|(tid, name)| format!("{tid} {name}")).collect()
    }

    /// Descriptors in `self` that `before` did not have (or that point elsewhere now).
    pub fn new_fds(&self, before: &Census) -> Vec<String> {
        self.fds.iter().filter(|(fd, target)| before.fds.get(fd) != Some(target)).map(|(fd, target)| format!("{fd} -> {target}")).collect()
    }
}
