//! Leftovers of harnesses whose process died without running Drop (SIGKILL, abort):
//! PAM service files, test users and temporary directories whose name ends in the pid
//! of a process that no longer exists. Only names the harness itself makes are touched.
//! Runs once per process, when the first harness is created.

use std::path::Path;
use std::sync::Once;

use crate::pam::{PAM_DIR, SERVICE_PREFIX};
use crate::process::pid_alive;
use crate::tempdir::{PREFIX as DIR_PREFIX, keep_requested};
use crate::users::PREFIX as USER_PREFIX;

static SWEEP: Once = Once::new();

pub(crate) fn sweep_once() {
    SWEEP.call_once(sweep);
}

/// The pid at the end of `<prefix>...-<pid>`, if it is not alive.
fn dead_owner(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let pid: u32 = rest.rsplit('-').next()?.parse().ok()?;
    (pid != std::process::id() && !pid_alive(pid)).then_some(pid)
}

fn sweep() {
    for entry in std::fs::read_dir(PAM_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead_owner(&name, SERVICE_PREFIX).is_some() {
            eprintln!("vigil-e2e: removing stale {PAM_DIR}/{name}");
            if let Err(e) = std::fs::remove_file(entry.path()) {
                eprintln!("vigil-e2e: cannot remove {PAM_DIR}/{name}: {e}");
            }
        }
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in passwd.lines().filter_map(|l| l.split(':').next()) {
        if dead_owner(name, USER_PREFIX).is_some() {
            eprintln!("vigil-e2e: removing stale test user {name}");
            crate::users::remove(name);
        }
    }
    if keep_requested() {
        return;
    }
    for entry in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // /tmp/vigil-e2e-<pid>-<n>: the pid is the second-to-last part.
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else { continue };
        let Some((pid, _n)) = rest.rsplit_once('-') else { continue };
        if dead_owner(&format!("{DIR_PREFIX}{pid}"), DIR_PREFIX).is_some() && entry.path().is_dir() {
            eprintln!("vigil-e2e: removing stale {}", Path::new("/tmp").join(&name).display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_owner_parses_trailing_pid() {
        assert_eq!(dead_owner(&format!("vtest-a-1-{}", std::process::id()), "vtest-"), None);
        assert_eq!(dead_owner("vtest-a-1-notapid", "vtest-"), None);
        assert_eq!(dead_owner("other-a-1-999999999", "vtest-"), None);
        assert_eq!(dead_owner("vtest-a-1-999999999", "vtest-"), Some(999_999_999));
    }
}
