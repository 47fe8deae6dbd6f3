//! One host's chain as the verifier holds it: its current and retired keys, the
//! segment since its last new chain, and that segment's gaps.

use std::collections::BTreeMap;

use super::report::{HostReport, Location};
use crate::duplicates::Recent;

/// A key the host's chain has left: at `until` (a new key in the same chain; records
/// before that seq are still fine) or entirely (`None`: a new chain replaced it).
pub(super) struct Retired {
    pub(super) key: usize,
    pub(super) until: Option<u64>,
    pub(super) at: Location,
}

pub(super) struct Gap {
    pub(super) end: u64,
    pub(super) before: Location,
    pub(super) after: Location,
    #[allow(dead_code)]
    pub(super) after_seq: u64,
    pub(super) after_event: String,
}

/// The chain since the last new chain on this host.
pub(super) struct Segment {
    pub(super) first: u64,
    pub(super) first_at: Location,
    pub(super) frontier: u64,
    pub(super) frontier_at: Location,
    pub(super) frontier_event: String,
    pub(super) gaps: BTreeMap<u64, Gap>,
    /// VerifiedRange indexes by their first seq (ranges never overlap in seq).
    pub(super) ranges_by_seq: BTreeMap<u64, usize>,
}

pub(super) struct Last {
    pub(super) seq: u64,
    pub(super) mac_prefix: String,
}

#[derive(Default)]
pub(super) struct HostChain {
    pub(super) report: HostReport,
    pub(super) current_key: Option<usize>,
    pub(super) current_since: Location,
    pub(super) retired: Vec<Retired>,
    pub(super) segment: Option<Segment>,
    pub(super) last: Option<Last>,
    /// Sealed records that did not verify since the last in-order authentic record:
    /// (claimed seq, where, index of the finding). A gap they fill was most likely
    /// edited rather than deleted.
    pub(super) pending: Vec<(u64, Location, Option<usize>)>,
    /// Index of the last `NoKey` finding, to merge consecutive ones.
    pub(super) last_no_key: Option<usize>,
    /// Records verified under a key at a seq where a later key (not yet seen) starts:
    /// (later key, key used, seq, where), the first per later key. Each key covers the
    /// seqs from its start to the next key's start: if the later key turns out to be
    /// this host's, these were forged with the old key (which an intruder may know).
    pub(super) past_next_key: Vec<(usize, usize, u64, Location)>,
    /// The last authentic records placed in the chain: an authentic record with the
    /// seq and mac of one of them is a copy of it.
    pub(super) recent: Recent<()>,
}
