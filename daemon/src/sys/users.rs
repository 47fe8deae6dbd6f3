//! Account lookups through NSS (local files, LDAP, sssd — whatever the host uses).

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::unistd::{Group, getgrouplist};

/// A user's uid and the names of their groups (primary first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub groups: Vec<String>,
}

/// Looks the user up; `None` when NSS does not know them. Blocking: NSS may go to the
/// network, so callers run this off the async threads.
pub fn lookup(name: &str) -> Option<Account> {
    let user = vigil_host::users::by_name(name)?;
    let cname = CString::new(name).ok()?;
    let gids = getgrouplist(&cname, user.gid).unwrap_or_else(|_| vec![user.gid]);
    let groups = gids.into_iter().filter_map(|gid| Group::from_gid(gid).ok().flatten().map(|g| g.name)).collect();
    Some(Account { uid: user.uid.as_raw(), groups })
}

/// Recent lookups, so that a burst of logins by the same user (cron, scripted ssh)
/// does not go to NSS and a worker thread each time. Entries live `TTL`: a change of
/// group membership reaches policy matching within that time, as with nscd.
pub struct AccountCache {
    entries: Mutex<HashMap<String, (Instant, Account)>>,
}

const TTL: Duration = Duration::from_secs(30);
/// Bound on the cache: beyond it, expired entries are dropped, then everything.
const MAX_ENTRIES: usize = 4096;

impl AccountCache {
    pub fn new() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }

    pub async fn get(&self, name: &str) -> Option<Account> {
        if let Some((at, account)) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(name)
            && at.elapsed() < TTL
        {
            return Some(account.clone());
        }
        let owned = name.to_string();
        let account = tokio::task::spawn_blocking(move || lookup(&owned)).await.ok().flatten()?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(name.to_string(), (Instant::now(), account.clone()));
        Some(account)
    }
}
