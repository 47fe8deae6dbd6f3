//! Where each authentic record goes in its host's chain (in order, after a gap, out of
//! order, a copy), and what is reported when the chain's segment closes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::host_chain::{Gap, Segment};
use super::report::{FindingKind, Location, VerifiedRange};
use super::verifier::Verifier;
use super::{END_EVENTS, RUN_START_EVENTS};
use crate::display::{display_path, escaped};

impl Verifier {
    /// Puts an authentic record into its host's chain: in order, after a gap, or out of
    /// order.
    pub(super) fn place_in_chain(&mut self, host: usize, at: Location, k: usize, seq: u64, event: &str, dropped: Option<(u64, u64)>) {
        let Some(segment) = self.hosts[host].segment.as_ref() else {
            self.hosts[host].segment = Some(Segment {
                first: seq,
                first_at: at,
                frontier: seq,
                frontier_at: at,
                frontier_event: event.to_string(),
                gaps: BTreeMap::new(),
                ranges_by_seq: BTreeMap::new(),
            });
            self.extend_range(host, at, k, seq, true);
            self.hosts[host].pending.clear();
            self.hosts[host].report.last_seq = Some(seq);
            return;
        };
        let frontier = segment.frontier;
        let frontier_at = segment.frontier_at;
        if seq > frontier {
            if seq > frontier + 1 {
                self.open_gap(host, frontier + 1, seq - 1, frontier_at, at, seq, event, dropped);
            }
            let continues = seq == frontier + 1;
            if let Some(segment) = self.hosts[host].segment.as_mut() {
                segment.frontier = seq;
                segment.frontier_at = at;
                segment.frontier_event.clear();
                segment.frontier_event.push_str(event);
            }
            self.extend_range(host, at, k, seq, !continues);
            self.hosts[host].pending.clear();
            self.hosts[host].report.last_seq = Some(seq);
            return;
        }
        // Behind the frontier: a record out of order, or a copy.
        let frontier_ref = self.line_ref(frontier_at, at);
        enum Behind {
            InGap(Location, Location),
            BeforeFirst(u64, Location),
            Seen(Option<usize>),
        }
        let behind = {
            let Some(segment) = self.hosts[host].segment.as_mut() else { return };
            let gap_start = segment.gaps.range(..=seq).next_back().filter(|(_, g)| g.end >= seq).map(|(s, _)| *s);
            match gap_start.and_then(|start| Some((start, segment.gaps.remove(&start)?))) {
                Some((start, gap)) => {
                    let (before, after) = (gap.before, gap.after);
                    if start < seq {
                        segment.gaps.insert(
                            start,
                            Gap { end: seq - 1, before, after, after_seq: gap.after_seq, after_event: gap.after_event.clone() },
                        );
                    }
                    if seq < gap.end {
                        segment
                            .gaps
                            .insert(seq + 1, Gap { end: gap.end, before, after, after_seq: gap.after_seq, after_event: gap.after_event });
                    }
                    Behind::InGap(before, after)
                }
                None if seq < segment.first => Behind::BeforeFirst(segment.first, segment.first_at),
                None => Behind::Seen(segment.ranges_by_seq.range(..=seq).next_back().map(|(_, &i)| i)),
            }
        };
        let (kind, detail) = match behind {
            Behind::InGap(before, after) => (
                FindingKind::Reordered,
                format!(
                    "reordered: seq {seq} comes after seq {frontier} ({frontier_ref}); it belongs between {} and {}",
                    self.line_ref(before, at),
                    self.line_ref(after, at)
                ),
            ),
            Behind::BeforeFirst(first, first_at) => (
                FindingKind::Reordered,
                format!(
                    "reordered: seq {seq} comes after seq {frontier} ({frontier_ref}); it belongs before seq {first} ({})",
                    self.line_ref(first_at, at)
                ),
            ),
            Behind::Seen(range) => {
                let seen = range
                    .and_then(|i| self.hosts[host].report.ranges.get(i))
                    .filter(|r| r.last_seq >= seq && r.first_seq <= seq)
                    .map(|r| (r.from, r.to));
                let detail = match seen {
                    Some((from, to)) if from.file == to.file => format!(
                        "duplicate seq {seq}: already verified in {} lines {}..{}",
                        self.files.get(from.file).map(|f| display_path(&f.path)).unwrap_or_default(),
                        from.line,
                        to.line
                    ),
                    Some((from, to)) => format!("duplicate seq {seq}: already verified in {} .. {}", self.place(from), self.place(to)),
                    None => format!("duplicate seq {seq}: this seq was already accounted for earlier in the chain"),
                };
                (FindingKind::DuplicateSeq, detail)
            }
        };
        self.add(kind, host, at, Some(seq), detail);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_gap(
        &mut self,
        host: usize,
        first: u64,
        last: u64,
        before: Location,
        after: Location,
        after_seq: u64,
        event: &str,
        dropped: Option<(u64, u64)>,
    ) {
        let mut last = last;
        // vigild's own account: `records_dropped first_seq=A count=N` right after A..A+N-1.
        if let Some((claimed_first, count)) = dropped {
            if claimed_first.checked_add(count) == Some(after_seq) && count > 0 {
                let from = claimed_first.max(first);
                let detail =
                    format!("seqs {from}..{last} were dropped by vigild (its spool was full), as its records_dropped record here says");
                self.add(FindingKind::DroppedByDaemon, host, after, Some(from), detail);
                if from == first {
                    return;
                }
                last = from - 1;
            }
        }
        // Seqs claimed by records that did not verify, between the two: edited records.
        let mut edited: Vec<(u64, Option<usize>)> = self.hosts[host]
            .pending
            .iter()
            .filter(|(s, l, _)| (first..=last).contains(s) && *l > before && *l < after)
            .map(|(s, _, i)| (*s, *i))
            .collect();
        edited.sort_unstable();
        edited.dedup_by_key(|(s, _)| *s);
        for (_, index) in &edited {
            if let Some(f) = index.and_then(|i| self.findings.get_mut(i)) {
                f.detail.push_str(": its seq is absent from the chain here, so this is most likely the original record, edited");
            }
        }
        let Some(segment) = self.hosts[host].segment.as_mut() else { return };
        let mut start = first;
        for (seq, _) in edited.iter().map(|(s, i)| (*s, *i)).chain(std::iter::once((last.saturating_add(1), None))) {
            if seq > start {
                segment.gaps.insert(start, Gap { end: seq - 1, before, after, after_seq, after_event: event.to_string() });
            }
            start = seq.saturating_add(1);
        }
    }

    pub(super) fn extend_range(&mut self, host: usize, at: Location, k: usize, seq: u64, new_range: bool) {
        let chain = &mut self.hosts[host];
        if !new_range {
            if let Some(r) = chain.report.ranges.last_mut() {
                if r.last_seq.checked_add(1) == Some(seq) && r.to.file == at.file && r.key == k {
                    r.last_seq = seq;
                    r.to = at;
                    return;
                }
            }
        }
        chain.report.ranges.push(VerifiedRange { first_seq: seq, last_seq: seq, from: at, to: at, key: k });
        let index = chain.report.ranges.len() - 1;
        if let Some(segment) = chain.segment.as_mut() {
            segment.ranges_by_seq.insert(seq, index);
        }
    }

    /// Reports the open gaps of the host's current segment and whether its end is sealed.
    pub(super) fn close_segment(&mut self, host: usize) {
        let Some(segment) = self.hosts[host].segment.take() else { return };
        for (first, gap) in &segment.gaps {
            let mut detail = format!(
                "missing seqs {first}..{} (between {} and {})",
                gap.end,
                self.place(gap.before),
                self.line_ref(gap.after, gap.before)
            );
            if RUN_START_EVENTS.iter().any(|e| e.as_str() == gap.after_event) {
                let _ = write!(
                    detail,
                    ": before {} at {}: the end of the previous run was cut",
                    gap.after_event,
                    self.line_ref(gap.after, gap.before)
                );
            }
            if let Some(f) =
                self.add(FindingKind::MissingSeqs, host, gap.after, Some(*first), detail).and_then(|i| self.findings.get_mut(i))
            {
                f.seq_end = Some(gap.end);
            }
        }
        if !END_EVENTS.iter().any(|e| e.as_str() == segment.frontier_event) {
            let detail = format!(
                "records after seq {} may be missing: run `vigilctl audit seal`, then verify again (the last record is {}, not a seal or daemon_stop)",
                segment.frontier,
                escaped(segment.frontier_event.as_bytes())
            );
            self.add(FindingKind::TailMayBeMissing, host, segment.frontier_at, Some(segment.frontier), detail);
        }
    }
}
