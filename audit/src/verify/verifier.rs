//! The verifier: reads each line, finds the key a sealed record claims, checks its mac,
//! and hands authentic records to their host's chain.

use std::collections::HashMap;

use vigil_protocol::events::Event;

use super::host_chain::{HostChain, Last, Retired};
use super::keys::{Derived, KeySlot, no_key_detail};
use super::report::{FileStats, Finding, FindingKind, HostReport, Location, Report};
use super::sealed::{Position, dropped_claim, is_event_name, position};
use super::{DAEMON_TAG, MAX_FINDINGS_PER_KIND, MAX_HOSTS, MODULE_TAG, ModuleRecords, WORK_BASE, WORK_PER_LINE};
use crate::chain::{Encoding, Key, KeyFile, NO_PREV, PREV_HEX, split_mac};
use crate::display::{display_path, escaped};
use crate::duplicates::{DUPLICATE_WINDOW, Recent, mac_of};
use crate::syslog_line::{MAX_LINE_BYTES, parse_line};

/// Unverified claims kept for matching with a gap (see `pending`).
pub(super) const MAX_PENDING: usize = 1024;

/// What trying a record's candidate keys found.
struct Tried {
    found: Option<(usize, Key)>,
    /// The fewest key evolutions a key would have needed past the budget.
    over_budget: Option<u64>,
    implausible: bool,
}

pub(super) struct Verifier {
    pub(super) keys: Vec<KeySlot>,
    pub(super) budget: u64,
    pub(super) hosts: Vec<HostChain>,
    pub(super) host_index: HashMap<String, usize>,
    pub(super) files: Vec<FileStats>,
    pub(super) findings: Vec<Finding>,
    pub(super) per_kind: HashMap<(usize, FindingKind), u64>,
    /// Lines of hosts beyond MAX_HOSTS (reported on the first such host).
    pub(super) overflow_host: Option<usize>,
    pub(super) module_records: ModuleRecords,
    /// Records per host remembered for recognising exact copies.
    pub(super) window: usize,
}

impl Verifier {
    pub(super) fn new(keys: &[KeyFile]) -> Self {
        Verifier {
            keys: keys.iter().map(KeySlot::new).collect(),
            budget: WORK_BASE,
            hosts: Vec::new(),
            host_index: HashMap::new(),
            files: Vec::new(),
            findings: Vec::new(),
            per_kind: HashMap::new(),
            overflow_host: None,
            module_records: ModuleRecords::default(),
            window: DUPLICATE_WINDOW,
        }
    }

    pub(super) fn place(&self, at: Location) -> String {
        let name = self.files.get(at.file).map(|f| display_path(&f.path)).unwrap_or_default();
        format!("{name}:{}", at.line)
    }

    /// `line N` in the same file as `from`, else `FILE:N`.
    pub(super) fn line_ref(&self, at: Location, from: Location) -> String {
        if at.file == from.file { format!("line {}", at.line) } else { self.place(at) }
    }

    pub(super) fn add(&mut self, kind: FindingKind, host: usize, at: Location, seq: Option<u64>, detail: String) -> Option<usize> {
        let count = self.per_kind.entry((host, kind)).or_insert(0);
        *count += 1;
        if *count as usize > MAX_FINDINGS_PER_KIND {
            return None;
        }
        self.findings.push(Finding { kind, host, at, seq, seq_end: None, end_line: None, detail });
        Some(self.findings.len() - 1)
    }

    pub(super) fn host(&mut self, name: &str, at: Location) -> Option<usize> {
        if let Some(&index) = self.host_index.get(name) {
            return Some(index);
        }
        if self.hosts.len() >= MAX_HOSTS {
            let first = *self.overflow_host.get_or_insert(self.hosts.len() - 1);
            let detail = format!("vigild line from host {}: more than {MAX_HOSTS} hosts, not checked", escaped(name.as_bytes()));
            self.add(FindingKind::TooManyHosts, first, at, None, detail);
            return None;
        }
        self.hosts.push(HostChain {
            report: HostReport { host: name.to_string(), ..HostReport::default() },
            recent: Recent::new(self.window),
            ..HostChain::default()
        });
        self.host_index.insert(name.to_string(), self.hosts.len() - 1);
        Some(self.hosts.len() - 1)
    }

    pub(super) fn line(&mut self, file: usize, line: u64, text: &str, cut: bool) {
        self.budget = self.budget.saturating_add(WORK_PER_LINE);
        let Some(stats) = self.files.get_mut(file) else { return };
        let Some(parsed) = parse_line(text) else {
            stats.not_syslog += 1;
            return;
        };
        let looks_like_record = |m: &str| m.starts_with("event=") || m.starts_with('{');
        if parsed.tag == MODULE_TAG && !cut && looks_like_record(parsed.message) {
            stats.module_records += 1;
            self.module_records.add(Location { file, line }, parsed.host, parsed.message);
            return;
        }
        if parsed.tag != DAEMON_TAG {
            stats.other_lines += 1;
            return;
        }
        stats.daemon_lines += 1;
        let at = Location { file, line };
        let Some(host) = self.host(parsed.host, at) else { return };
        let message = parsed.message;
        if cut {
            self.add(FindingKind::NotARecord, host, at, None, format!("vigild line longer than {MAX_LINE_BYTES} bytes: not a record"));
            return;
        }
        match split_mac(message) {
            Some((body, mac, encoding)) => self.sealed(host, at, &body, mac, encoding),
            None if looks_like_record(message) => {
                let event = message.strip_prefix("event=").map(|r| r.split(' ').next().unwrap_or(r)).filter(|e| is_event_name(e));
                let what = event.map(|e| format!(" ({e})")).unwrap_or_default();
                self.add(
                    FindingKind::Unsealed,
                    host,
                    at,
                    None,
                    format!("unsealed record{what}: no mac (forged, or written before the chain existed)"),
                );
            }
            None => {
                let excerpt: String = message.chars().take(60).collect();
                self.add(
                    FindingKind::NotARecord,
                    host,
                    at,
                    None,
                    format!("vigild line that is not an audit record: {}", escaped(excerpt.as_bytes())),
                );
            }
        }
    }

    /// Keys to try for `seq` on `host`, best first: the host's current key, keys not
    /// bound to another host (latest start first), then keys the host retired.
    pub(super) fn candidates(&self, host: usize, seq: u64) -> (Vec<usize>, bool) {
        let chain = &self.hosts[host];
        let usable = |k: usize| self.keys[k].host.is_none() || self.keys[k].host == Some(host);
        let retired = |k: usize| chain.retired.iter().any(|r| r.key == k);
        let mut order: Vec<usize> = Vec::new();
        if let Some(k) = chain.current_key {
            if self.keys[k].start <= seq {
                order.push(k);
            }
        }
        let mut others: Vec<usize> =
            (0..self.keys.len()).filter(|&k| usable(k) && self.keys[k].start <= seq && Some(k) != chain.current_key).collect();
        others.sort_by_key(|&k| (retired(k), std::cmp::Reverse(self.keys[k].start), k));
        order.extend(others);
        let any_usable = (0..self.keys.len()).any(usable);
        (order, any_usable)
    }

    pub(super) fn sealed(&mut self, host: usize, at: Location, body: &str, mac: &str, encoding: Encoding) {
        let Some(pos) = position(body, encoding) else {
            self.add(
                FindingKind::EditedOrForged,
                host,
                at,
                None,
                "edited or forged: a mac, but no readable seq= and prev= before it".into(),
            );
            return;
        };
        let mut tried = Tried { found: None, over_budget: None, implausible: false };
        // Nearly every record is under its host's current key, the first candidate:
        // tried before the others are listed.
        let current = self.hosts[host].current_key.filter(|&k| self.keys[k].start <= pos.seq);
        if let Some(k) = current {
            self.hosts[host].last_no_key = None;
            self.try_key(k, pos.seq, body, mac, &mut tried);
        }
        if tried.found.is_none() {
            let (candidates, any_usable) = self.candidates(host, pos.seq);
            if candidates.is_empty() {
                self.no_key(host, at, pos.seq, any_usable);
                return;
            }
            self.hosts[host].last_no_key = None;
            for k in candidates.into_iter().filter(|&k| Some(k) != current) {
                if self.try_key(k, pos.seq, body, mac, &mut tried) {
                    break;
                }
            }
        }
        let Tried { found, over_budget, implausible } = tried;
        let Some((k, key)) = found else {
            let seq = pos.seq;
            if let Some(cost) = over_budget {
                let detail = format!(
                    "not checked: claims seq {seq}, {cost} key steps away from what was derived so far (the work limit keeps forged seqs from stalling verify)"
                );
                self.add(FindingKind::NotChecked, host, at, Some(seq), detail);
                return;
            }
            let far = if implausible { ", implausibly far from the key's start" } else { "" };
            let index = self.add(
                FindingKind::EditedOrForged,
                host,
                at,
                Some(seq),
                format!("edited or forged: does not verify (claims seq {seq}{far})"),
            );
            let pending = &mut self.hosts[host].pending;
            if pending.len() < MAX_PENDING {
                pending.push((seq, at, index));
            }
            return;
        };
        if self.skip_copy(host, at, mac, pos.seq) {
            return;
        }
        self.authentic(host, at, k, key, &pos, mac, body, encoding);
    }

    /// Checks the record's mac under key `k`; true when it verifies.
    fn try_key(&mut self, k: usize, seq: u64, body: &str, mac: &str, tried: &mut Tried) -> bool {
        match self.keys[k].derive(seq, &mut self.budget) {
            Derived::Key(key) => {
                if key.mac_is(body, mac) {
                    tried.found = Some((k, key));
                    return true;
                }
            }
            Derived::OverBudget(cost) => tried.over_budget = Some(tried.over_budget.map_or(cost, |c| c.min(cost))),
            Derived::Implausible => tried.implausible = true,
        }
        false
    }

    pub(super) fn no_key(&mut self, host: usize, at: Location, seq: u64, any_usable: bool) {
        // Consecutive records before the key's start make one finding.
        if let Some(index) = self.hosts[host].last_no_key {
            if let Some(f) = self.findings.get_mut(index) {
                let last_seq = f.seq_end.or(f.seq).unwrap_or(0);
                if f.at.file == at.file && seq == last_seq.wrapping_add(1) {
                    f.seq_end = Some(seq);
                    f.end_line = Some(at.line);
                    f.detail = no_key_detail(f.seq.unwrap_or(seq), seq, f.at.line, at.line, &self.keys, any_usable);
                    return;
                }
            }
        }
        let detail = no_key_detail(seq, seq, at.line, at.line, &self.keys, any_usable);
        let index = self.add(FindingKind::NoKey, host, at, Some(seq), detail);
        self.hosts[host].last_no_key = index;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn authentic(
        &mut self,
        host: usize,
        at: Location,
        k: usize,
        key: Key,
        pos: &Position<'_>,
        mac: &str,
        body: &str,
        encoding: Encoding,
    ) {
        let seq = pos.seq;
        let event = pos.event.unwrap_or("?");
        self.hosts[host].report.authentic += 1;
        if self.keys[k].host.is_none() {
            self.keys[k].host = Some(host);
            self.key_bound(k, host, at);
        }
        // A key the host already left.
        if let Some(r) = self.hosts[host].retired.iter().find(|r| r.key == k) {
            if r.until.is_none_or(|until| seq >= until) {
                let since = self.place(r.at);
                let detail = format!(
                    "sealed with key {} (seq {seq}), which this host's chain left at {since}: forged with an old key, or files out of order",
                    k + 1
                );
                self.add(FindingKind::RetiredKey, host, at, Some(seq), detail);
                self.remember_last(host, seq, mac);
                return;
            }
        }
        match self.hosts[host].current_key {
            None => {
                self.hosts[host].current_key = Some(k);
                self.hosts[host].current_since = at;
            }
            Some(current) if current == k => {}
            Some(current) => {
                let is_genesis = pos.prev == NO_PREV && seq == self.keys[k].start;
                if is_genesis {
                    self.close_segment(host);
                    let since = self.hosts[host].current_since;
                    self.hosts[host].retired.push(Retired { key: current, until: None, at });
                    self.hosts[host].current_key = Some(k);
                    self.hosts[host].current_since = at;
                    self.hosts[host].last = None;
                    // A copy of the old chain's records is a replay, not a re-send.
                    self.hosts[host].recent = Recent::new(self.window);
                    let detail = format!(
                        "a new chain starts here (seq {seq}, key {}; the previous chain, key {}, began at {}): vigild's chain state was reset",
                        k + 1,
                        current + 1,
                        self.place(since)
                    );
                    self.add(FindingKind::NewChain, host, at, Some(seq), detail);
                } else if self.keys[k].start > self.keys[current].start {
                    self.hosts[host].retired.push(Retired { key: current, until: Some(self.keys[k].start), at });
                    self.hosts[host].current_key = Some(k);
                    self.hosts[host].current_since = at;
                    let detail = format!("key {} takes over from key {} at seq {}", k + 1, current + 1, self.keys[k].start);
                    self.add(FindingKind::KeyChange, host, at, Some(seq), detail);
                } else {
                    let detail = format!(
                        "sealed with key {} (seq {seq}), but this host's chain uses key {} since {}: a second chain under the same host name",
                        k + 1,
                        current + 1,
                        self.place(self.hosts[host].current_since)
                    );
                    self.add(FindingKind::OtherChain, host, at, Some(seq), detail);
                    return;
                }
            }
        }
        // prev links this record to the authentic record before it.
        let genesis = pos.prev == NO_PREV && seq == self.keys[k].start;
        if let Some(last) = &self.hosts[host].last {
            if last.seq.checked_add(1) == Some(seq) && last.mac_prefix != pos.prev && !genesis {
                let detail =
                    format!("prev mismatch: seq {seq} has prev={} but seq {} before it has mac {}...", pos.prev, last.seq, last.mac_prefix);
                self.add(FindingKind::PrevMismatch, host, at, Some(seq), detail);
            }
        }
        self.remember_last(host, seq, mac);
        self.check_next_keys(host, k, seq, at);
        let dropped = if event == Event::RecordsDropped.as_str() { dropped_claim(body, encoding) } else { None };
        self.place_in_chain(host, at, k, seq, event, dropped);
        if let Some(mac) = mac_of(mac.as_bytes()) {
            self.hosts[host].recent.push(seq, mac, ());
        }
        self.keys[k].confirm(seq, key);
    }

    /// A record under key `k` at `seq`: notes any later key, not bound to a host yet,
    /// whose start it is past.
    pub(super) fn check_next_keys(&mut self, host: usize, k: usize, seq: u64, at: Location) {
        let start = self.keys[k].start;
        for later in 0..self.keys.len() {
            let slot = &self.keys[later];
            if slot.host.is_none()
                && slot.start > start
                && slot.start <= seq
                && !self.hosts[host].past_next_key.iter().any(|(l, ..)| *l == later)
            {
                self.hosts[host].past_next_key.push((later, k, seq, at));
            }
        }
    }

    /// Key `k` verified its first record, on `host`.
    pub(super) fn key_bound(&mut self, k: usize, host: usize, at: Location) {
        for h in 0..self.hosts.len() {
            let noted: Vec<(usize, usize, u64, Location)> = self.hosts[h].past_next_key.iter().filter(|(l, ..)| *l == k).copied().collect();
            self.hosts[h].past_next_key.retain(|(l, ..)| *l != k);
            if h != host {
                continue;
            }
            for (later, used, seq, when) in noted {
                let detail = format!(
                    "sealed with key {} at seq {seq}, but key {} starts at seq {} and verifies this host's records ({}): forged with the old key",
                    used + 1,
                    later + 1,
                    self.keys[later].start,
                    self.line_ref(at, when)
                );
                self.add(FindingKind::PastNextKey, host, when, Some(seq), detail);
            }
        }
    }

    /// An authentic record that is an exact copy of one of the host's last ones
    /// (forwarding that delivers at least once): counted and skipped. Both verified, with
    /// the same seq and mac: the same text (a mac is the text's, under the seq's key).
    pub(super) fn skip_copy(&mut self, host: usize, at: Location, mac: &str, seq: u64) -> bool {
        let chain = &mut self.hosts[host];
        if !chain.recent.may_hold(seq) || mac_of(mac.as_bytes()).is_none_or(|mac| chain.recent.find(seq, &mac).is_none()) {
            return false;
        }
        chain.report.duplicates += 1;
        chain.report.first_duplicate.get_or_insert(at);
        true
    }

    pub(super) fn remember_last(&mut self, host: usize, seq: u64, mac: &str) {
        let prefix = mac.get(..PREV_HEX).unwrap_or(mac);
        match &mut self.hosts[host].last {
            // The same buffer, record after record.
            Some(last) => {
                last.seq = seq;
                last.mac_prefix.clear();
                last.mac_prefix.push_str(prefix);
            }
            none => *none = Some(Last { seq, mac_prefix: prefix.to_string() }),
        }
    }

    pub(super) fn finish(mut self) -> Report {
        for host in 0..self.hosts.len() {
            self.close_segment(host);
            for (later, used, seq, at) in std::mem::take(&mut self.hosts[host].past_next_key) {
                let detail = format!(
                    "sealed with key {} at seq {seq}, past the start of key {} (seq {}), which verified no record: if key {} is this host's, the records from here on were forged with the old key; if it is another host's, verify without it",
                    used + 1,
                    later + 1,
                    self.keys[later].start,
                    later + 1
                );
                self.add(FindingKind::PastNextKey, host, at, Some(seq), detail);
            }
        }
        let mut findings = std::mem::take(&mut self.findings);
        findings.sort_by_key(|f| (f.host, f.at, !f.kind.is_failure()));
        let mut suppressed: Vec<(usize, FindingKind, u64)> = self
            .per_kind
            .iter()
            .filter(|(_, n)| **n as usize > MAX_FINDINGS_PER_KIND)
            .map(|((h, k), n)| (*h, *k, *n - MAX_FINDINGS_PER_KIND as u64))
            .collect();
        suppressed.sort();
        Report {
            files: self.files,
            hosts: self.hosts.into_iter().map(|h| h.report).collect(),
            key_starts: self.keys.iter().map(|k| k.start).collect(),
            findings,
            suppressed,
            module_records: self.module_records,
        }
    }
}
