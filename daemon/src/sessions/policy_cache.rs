//! One shared copy of each resolved policy: 100,000 sessions under three policies hold
//! three (each copy has a policy name and a list of services on the heap).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use vigil_config::ResolvedPolicy;

/// Policies seen; those no session holds any more are dropped when the set grows past
/// this (a reload leaves the previous configuration's behind).
const SHARED_POLICIES_PRUNE_AT: usize = 256;

/// The shared copy of `policy`.
pub fn shared(policy: ResolvedPolicy) -> Arc<ResolvedPolicy> {
    static POLICIES: Mutex<Option<HashSet<Arc<ResolvedPolicy>>>> = Mutex::new(None);
    let mut guard = POLICIES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(known) = set.get(&policy) {
        return Arc::clone(known);
    }
    if set.len() >= SHARED_POLICIES_PRUNE_AT {
        set.retain(|p| Arc::strong_count(p) > 1);
    }
    let policy = Arc::new(policy);
    set.insert(Arc::clone(&policy));
    policy
}
