//! Tests of `audit verify` on sealed sample logs: untouched files pass, and each kind of
//! tampering is reported at its line.

use std::path::PathBuf;

use vigil_protocol::audit::Record;
use vigil_protocol::events::Event;

use super::*;
use crate::chain::{ChainState, Encoding, KEY_BYTES, Key, KeyFile, split_mac, with_position};
use crate::sample::{Layout, SAMPLE_EPOCH, session_record, syslog_line};

/// A syslog file under construction: vigild's sealed records and other lines.
struct Log {
    lines: Vec<String>,
    chain: ChainState,
    encoding: Encoding,
    layout: Layout,
    host: String,
}

fn key(byte: u8, start_seq: u64) -> KeyFile {
    KeyFile { start_seq, key: Key::from_bytes([byte; KEY_BYTES]) }
}

impl Log {
    fn new(key: &KeyFile, encoding: Encoding, layout: Layout) -> Self {
        Log {
            lines: Vec::new(),
            chain: ChainState { next_seq: key.start_seq, key: key.key.clone(), last_mac: String::new() },
            encoding,
            layout,
            host: "host1".into(),
        }
    }

    fn now(&self) -> u64 {
        SAMPLE_EPOCH + 7 * self.lines.len() as u64
    }

    /// Seals and appends a record; returns its line number.
    fn record(&mut self, record: Record) -> u64 {
        let encoded = match self.encoding {
            Encoding::KeyValue => record.to_kv_line(),
            Encoding::Json => record.to_json_line(),
        };
        let message = self.chain.seal(&encoded, self.encoding);
        self.tagged("vigild", &message)
    }

    fn tagged(&mut self, tag: &str, message: &str) -> u64 {
        let line = syslog_line(self.layout, self.now(), 0, &self.host, tag, 812, message);
        self.raw(&line)
    }

    fn raw(&mut self, line: &str) -> u64 {
        self.lines.push(line.to_string());
        self.lines.len() as u64
    }

    /// A log holding one [`Log::typical_run`].
    fn typical(key: &KeyFile, encoding: Encoding, layout: Layout) -> Self {
        let mut log = Log::new(key, encoding, layout);
        log.typical_run(1);
        log
    }

    /// A daemon run: start, two sessions with warnings and reauths, other programs'
    /// lines in between, stop.
    fn typical_run(&mut self, first_session: u64) {
        self.record(Record::new(Event::DaemonStart).text("version", "0.1.0").number("pid", 812));
        for session in first_session..first_session + 2 {
            self.tagged("sshd", "Accepted publickey for alice from 203.0.113.7 port 50522 ssh2");
            self.record(session_record(Event::SessionOpen, session, "alice"));
            self.record(session_record(Event::IdleWarning, session, "alice").text("limit", "idle").number("ends_in_s", 60));
            self.tagged("pam_vigil", "event=module_argument_ignored argument=bogus");
            self.record(session_record(Event::ReauthGranted, session, "alice").text("method", "password"));
            self.record(session_record(Event::SessionEnd, session, "alice").text("reason", "idle"));
        }
        self.record(Record::new(Event::DaemonStop).text("signal", "SIGTERM").number("sessions", 0));
    }

    /// Line number (1-based) of the record with this seq.
    fn line_of(&self, seq: u64) -> u64 {
        let kv = format!(" seq={seq} ");
        let json = format!(",\"seq\":{seq},");
        self.lines.iter().position(|l| l.contains(&kv) || l.contains(&json)).map(|i| i as u64 + 1).unwrap_or_else(|| panic!("no seq {seq}"))
    }
}

fn verify_text(text: &str, keys: &[KeyFile]) -> Report {
    verify_readers(vec![(PathBuf::from("auth.log"), text.as_bytes())], keys).unwrap()
}

fn verify_lines(lines: &[String], keys: &[KeyFile]) -> Report {
    let mut text = lines.join("\n");
    text.push('\n');
    verify_text(&text, keys)
}

/// Failures as (kind, line).
fn failures(report: &Report) -> Vec<(FindingKind, u64)> {
    report.failures().map(|f| (f.kind, f.at.line)).collect()
}

fn notes(report: &Report) -> Vec<(FindingKind, u64)> {
    report.notes().map(|f| (f.kind, f.at.line)).collect()
}

fn assert_clean(report: &Report) {
    assert!(report.is_clean(), "{}", report.render());
    let render = report.render();
    let result = render.lines().last().unwrap_or_default();
    assert!(
        result == "result: OK: every vigild record verifies"
            || result.starts_with("result: OK: every vigild record verifies (warnings: ")
            || result.starts_with("result: OK: every vigild record verifies (duplicates: "),
        "{render}"
    );
}

#[test]
fn untouched_files_verify_in_every_layout_and_encoding() {
    for layout in [Layout::Traditional, Layout::HighPrecision, Layout::Rfc5424] {
        for encoding in [Encoding::KeyValue, Encoding::Json] {
            let k = key(1, 1);
            let mut log = Log::new(&k, encoding, layout);
            log.typical_run(1);
            let report = verify_lines(&log.lines, std::slice::from_ref(&k));
            assert_clean(&report);
            assert!(notes(&report).is_empty(), "{}", report.render());
            assert_eq!(report.hosts.len(), 1);
            let ranges = &report.hosts[0].ranges;
            assert_eq!(ranges.len(), 1, "{}", report.render());
            assert_eq!(
                (ranges[0].first_seq, ranges[0].last_seq, ranges[0].from.line, ranges[0].to.line),
                (1, 10, 1, log.lines.len() as u64)
            );
            let render = report.render();
            assert!(render.contains(&format!("  seq 1..10 verified (auth.log lines 1..{})\n", log.lines.len())), "{render}");
            assert!(
                render.contains("auth.log: 14 lines: 10 vigild, 2 unchained module records (pam_vigil), 2 other, 0 not syslog"),
                "{render}"
            );
        }
    }
}

#[test]
fn rfc5424_with_structured_data_and_bom_verifies() {
    let k = key(2, 1);
    let mut log = Log::new(&k, Encoding::KeyValue, Layout::Rfc5424);
    log.typical_run(1);
    // The same records, as rsyslog writes them with structured data and a BOM.
    let lines: Vec<String> = log
        .lines
        .iter()
        .map(|l| l.replacen(" - - ", " - [origin ip=\"10.0.0.1\" x=\"a\\\"]b\"][meta sequenceId=\"7\"] \u{feff}", 1))
        .collect();
    assert!(lines[0].contains("[meta sequenceId"), "{}", lines[0]);
    assert_clean(&verify_lines(&lines, &[k]));
}

#[test]
fn deleting_one_line_is_a_missing_seq_at_the_next_record() {
    let k = key(3, 1);
    let log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let deleted = log.line_of(5) as usize;
    let mut lines = log.lines.clone();
    lines.remove(deleted - 1);
    let report = verify_lines(&lines, std::slice::from_ref(&k));
    // Reported at seq 6, the next record (one line up now), after seq 4.
    let next = log.line_of(6) - 1;
    assert_eq!(failures(&report), [(FindingKind::MissingSeqs, next)], "{}", report.render());
    let render = report.render();
    let expected = format!("  auth.log:{next}: FAIL: missing seqs 5..5 (between auth.log:{} and line {next})\n", log.line_of(4));
    assert!(render.contains(&expected), "{render}");
    assert!(render.ends_with("result: FAILED: 1 finding (warnings: 2 unauthenticated pam_vigil records)\n"), "{render}");
}

#[test]
fn editing_one_value_is_reported_at_its_line() {
    for encoding in [Encoding::KeyValue, Encoding::Json] {
        let k = key(4, 1);
        let log = Log::typical(&k, encoding, Layout::Traditional);
        let edited = log.line_of(4) as usize;
        let mut lines = log.lines.clone();
        lines[edited - 1] = lines[edited - 1].replace("alice", "alicf");
        assert_ne!(lines[edited - 1], log.lines[edited - 1]);
        let report = verify_lines(&lines, &[k]);
        assert_eq!(failures(&report), [(FindingKind::EditedOrForged, edited as u64)], "{}", report.render());
        let finding = report.failures().next().unwrap();
        assert_eq!(finding.seq, Some(4));
        assert!(
            finding.detail.contains("claims seq 4") && finding.detail.contains("most likely the original record, edited"),
            "{}",
            finding.detail
        );
    }
}

#[test]
fn swapping_two_lines_is_reordered_where_it_happened() {
    let k = key(5, 1);
    let log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let (a, b) = (log.line_of(6) as usize, log.line_of(7) as usize);
    let mut lines = log.lines.clone();
    lines.swap(a - 1, b - 1);
    let report = verify_lines(&lines, &[k]);
    // seq 7 now sits at line a, seq 6 at line b: seq 6 is the one out of order.
    assert_eq!(failures(&report), [(FindingKind::Reordered, b as u64)], "{}", report.render());
    let detail = &report.failures().next().unwrap().detail;
    assert_eq!(detail, &format!("reordered: seq 6 comes after seq 7 (line {a}); it belongs between line {} and line {a}", log.line_of(5)));
}

#[test]
fn a_cut_tail_then_a_seal_is_missing_before_the_seal() {
    let k = key(6, 1);
    let mut log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let cut_from = log.line_of(8) as usize;
    log.lines.truncate(cut_from - 1);
    // The tail alone: only a note (verify cannot know), at the last record.
    let report = verify_lines(&log.lines, std::slice::from_ref(&k));
    assert!(report.is_clean());
    assert_eq!(notes(&report), [(FindingKind::TailMayBeMissing, log.line_of(7))]);
    assert!(
        report.render().contains("records after seq 7 may be missing: run `vigilctl audit seal`, then verify again"),
        "{}",
        report.render()
    );
    // vigild sealed 8, 9, 10 (now cut); `vigilctl audit seal` then writes 11.
    let seal_line = log.record(Record::new(Event::Seal).text("by", "root"));
    let report = verify_lines(&log.lines, &[k]);
    assert_eq!(failures(&report), [(FindingKind::MissingSeqs, seal_line)], "{}", report.render());
    let detail = &report.failures().next().unwrap().detail;
    assert!(detail.starts_with("missing seqs 8..10 (between auth.log:"), "{detail}");
    assert!(detail.ends_with(&format!(": before seal at line {seal_line}: the end of the previous run was cut")), "{detail}");
    assert!(notes(&report).is_empty(), "ends with a seal: {}", report.render());
}

#[test]
fn a_cut_run_before_the_next_daemon_start() {
    let k = key(7, 1);
    let mut log = Log::typical(&k, Encoding::Json, Layout::HighPrecision);
    let stop = log.line_of(10) as usize;
    log.lines.truncate(stop - 3); // seqs 8..10 gone
    log.typical_run(3);
    let start_line = log.line_of(11);
    let report = verify_lines(&log.lines, &[k]);
    assert_eq!(failures(&report), [(FindingKind::MissingSeqs, start_line)], "{}", report.render());
    assert!(report.failures().next().unwrap().detail.contains("before daemon_start at line"), "{}", report.render());
}

#[test]
fn a_line_forged_with_logger_is_reported_at_its_line() {
    let k = key(8, 1);
    let log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let forged = format!(
        "Nov 26 04:20:00 host1 vigild: event=session_open session=99 ses=1 user=root uid=0 service=sshd tty=ssh rhost=evil seq=5 prev={} mac={}",
        "0123456789abcdef", "0123456789abcdef0123456789abcdef"
    );
    let mut lines = log.lines.clone();
    lines.insert(6, forged);
    let report = verify_lines(&lines, &[k]);
    assert_eq!(failures(&report), [(FindingKind::EditedOrForged, 7)], "{}", report.render());
    assert!(report.render().contains("auth.log:7: FAIL: edited or forged: does not verify (claims seq 5)\n"), "{}", report.render());
}

#[test]
fn unsealed_and_non_record_vigild_lines_are_findings() {
    let k = key(9, 1);
    let log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let mut lines = log.lines.clone();
    lines.insert(3, "Nov 26 04:20:00 host1 vigild: event=session_open session=99 user=root".into());
    lines.insert(4, "Nov 26 04:20:00 host1 vigild[812]: hello \u{1b}[31mworld".into());
    lines.insert(5, "<13>1 2026-11-26T04:20:00Z host1 vigild - - - {\"event\":\"session_open\",\"user\":\"root\"}".into());
    let report = verify_lines(&lines, &[k]);
    assert_eq!(
        failures(&report),
        [(FindingKind::Unsealed, 4), (FindingKind::NotARecord, 5), (FindingKind::Unsealed, 6)],
        "{}",
        report.render()
    );
    let render = report.render();
    assert!(
        render.contains("auth.log:4: FAIL: unsealed record (session_open): no mac (forged, or written before the chain existed)"),
        "{render}"
    );
    assert!(!render.contains('\u{1b}'), "raw escape reached the report: {render}");
    assert!(render.contains(r#""hello \x1b[31mworld""#), "{render}");
}

#[test]
fn a_new_key_mid_file_verifies_both_ranges() {
    let first = key(11, 1);
    let mut log = Log::new(&first, Encoding::KeyValue, Layout::Traditional);
    log.typical_run(1);
    // `vigilctl audit rekey` (Writer::new_key): same chain, new key from the next seq.
    let second = KeyFile { start_seq: log.chain.next_seq, key: Key::from_bytes([12; KEY_BYTES]) };
    log.chain.key = second.key.clone();
    let switch_line = log.lines.len() as u64 + 1;
    log.typical_run(3);
    let report = verify_lines(&log.lines, &[first.clone(), second.clone()]);
    assert_clean(&report);
    assert_eq!(notes(&report), [(FindingKind::KeyChange, switch_line)]);
    let ranges: Vec<(u64, u64, usize)> = report.hosts[0].ranges.iter().map(|r| (r.first_seq, r.last_seq, r.key)).collect();
    assert_eq!(ranges, [(1, 10, 0), (11, 20, 1)]);
    assert!(report.render().contains("seq 11..20 verified (auth.log lines 15..28, key 2)"), "{}", report.render());
    // Keys given in any order.
    assert_clean(&verify_lines(&log.lines, &[second.clone(), first.clone()]));
    // Only the second key: the first range is not verifiable, and says so once.
    let report = verify_lines(&log.lines, std::slice::from_ref(&second));
    assert_eq!(failures(&report), [(FindingKind::NoKey, 1)], "{}", report.render());
    assert!(
        report.failures().next().unwrap().detail.starts_with("seqs 1..10 (lines 1..14): before the key's start (seq 11)"),
        "{}",
        report.render()
    );
    // A record forged with the old key after the switch (the attacker knew it then).
    let mut old = ChainState { next_seq: 25, key: first.key.clone(), last_mac: String::new() };
    for _ in 1..25 {
        old.key.evolve();
    }
    let forged = old.seal(&session_record(Event::SessionOpen, 77, "mallory").to_kv_line(), Encoding::KeyValue);
    let mut lines = log.lines.clone();
    lines.push(syslog_line(Layout::Traditional, SAMPLE_EPOCH + 9999, 0, "host1", "vigild", 812, &forged));
    let report = verify_lines(&lines, &[first.clone(), second.clone()]);
    assert_eq!(failures(&report), [(FindingKind::RetiredKey, lines.len() as u64)], "{}", report.render());
    // The new key's records deleted, the old key goes on (forged by whoever knew it):
    // key 1 covers seqs up to key 2's start only.
    let mut old = ChainState { next_seq: 11, key: first.key.clone(), last_mac: String::new() };
    for _ in 1..11 {
        old.key.evolve();
    }
    let mut lines: Vec<String> = log.lines[..14].to_vec();
    let last = crate::syslog_line::parse_line(&lines[13]).unwrap();
    old.last_mac = split_mac(last.message).unwrap().1.to_string();
    let forged_from = lines.len() as u64 + 1;
    for n in 0..3 {
        let sealed = old.seal(&session_record(Event::SessionOpen, 70 + n, "mallory").to_kv_line(), Encoding::KeyValue);
        lines.push(syslog_line(Layout::Traditional, SAMPLE_EPOCH + 9999, 0, "host1", "vigild", 812, &sealed));
    }
    let report = verify_lines(&lines, &[first.clone(), second.clone()]);
    assert_eq!(failures(&report), [(FindingKind::PastNextKey, forged_from)], "{}", report.render());
    assert!(report.render().contains("past the start of key 2 (seq 11), which verified no record"), "{}", report.render());
    // ... and when key 2's records come after them, it says so too.
    lines.extend(log.lines[14..].iter().cloned());
    let report = verify_lines(&lines, &[first, second]);
    assert!(failures(&report).contains(&(FindingKind::PastNextKey, forged_from)), "{}", report.render());
    assert!(
        report.render().contains("but key 2 starts at seq 11 and verifies this host's records (line 18): forged with the old key"),
        "{}",
        report.render()
    );
}

#[test]
fn a_new_chain_after_a_state_reset_verifies_with_both_keys() {
    let first = key(13, 1);
    let mut log = Log::new(&first, Encoding::KeyValue, Layout::Traditional);
    log.typical_run(1);
    let second = key(14, 1);
    log.chain = ChainState { next_seq: 1, key: second.key.clone(), last_mac: String::new() };
    let reset_line = log.lines.len() as u64 + 1;
    log.typical_run(3);
    let report = verify_lines(&log.lines, &[first.clone(), second.clone()]);
    assert_clean(&report);
    assert_eq!(notes(&report), [(FindingKind::NewChain, reset_line)], "{}", report.render());
    // Replaying a line of the old chain after the reset is caught.
    let mut lines = log.lines.clone();
    lines.push(log.lines[2].clone());
    let report = verify_lines(&lines, &[first, second]);
    assert_eq!(failures(&report), [(FindingKind::RetiredKey, lines.len() as u64)], "{}", report.render());
}

#[test]
fn records_vigild_dropped_are_a_note_when_it_says_so() {
    let k = key(15, 1);
    let mut log = Log::new(&k, Encoding::KeyValue, Layout::Traditional);
    log.record(Record::new(Event::DaemonStart));
    log.record(session_record(Event::SessionOpen, 1, "alice"));
    for _ in 0..3 {
        log.chain.seal("event=lost", Encoding::KeyValue); // sealed, then dropped: spool full
    }
    let line = log.record(
        Record::new(Event::RecordsDropped).number("count", 3).text("why", "syslog unreachable and the spool full").number("first_seq", 3),
    );
    log.record(Record::new(Event::DaemonStop));
    let report = verify_lines(&log.lines, std::slice::from_ref(&k));
    assert_clean(&report);
    assert_eq!(notes(&report), [(FindingKind::DroppedByDaemon, line)]);
    // The record itself is chained: editing its claim is caught.
    let mut lines = log.lines.clone();
    lines[line as usize - 1] = lines[line as usize - 1].replace("count=3", "count=1");
    let report = verify_lines(&lines, &[k]);
    assert!(failures(&report).contains(&(FindingKind::EditedOrForged, line)), "{}", report.render());
}

#[test]
fn prev_mismatch_between_authentic_records() {
    let k = key(16, 1);
    let mut key1 = k.key.clone();
    let body1 = with_position("event=a", Encoding::KeyValue, 1, "0000000000000000");
    let mac1 = key1.mac(&body1);
    key1.evolve();
    let body2 = with_position("event=b", Encoding::KeyValue, 2, "ffffffffffffffff");
    let mac2 = key1.mac(&body2);
    let lines = vec![
        syslog_line(Layout::Traditional, SAMPLE_EPOCH, 0, "h", "vigild", 1, &format!("{body1} mac={mac1}")),
        syslog_line(Layout::Traditional, SAMPLE_EPOCH, 0, "h", "vigild", 1, &format!("{body2} mac={mac2}")),
    ];
    let report = verify_lines(&lines, &[k]);
    assert_eq!(failures(&report), [(FindingKind::PrevMismatch, 2)], "{}", report.render());
}

#[test]
fn hosts_are_separate_chains() {
    let (ka, kb) = (key(17, 1), key(18, 1));
    let mut a = Log::new(&ka, Encoding::KeyValue, Layout::Traditional);
    let mut b = Log::new(&kb, Encoding::Json, Layout::Traditional);
    b.host = "host2".into();
    a.typical_run(1);
    b.typical_run(1000);
    // A central log host: the two files interleaved.
    let mut lines = Vec::new();
    for i in 0..a.lines.len().max(b.lines.len()) {
        lines.extend(a.lines.get(i).cloned());
        lines.extend(b.lines.get(i).cloned());
    }
    let report = verify_lines(&lines, &[ka.clone(), kb.clone()]);
    assert_clean(&report);
    assert_eq!(report.hosts.iter().map(|h| (h.host.as_str(), h.authentic)).collect::<Vec<_>>(), [("host1", 10), ("host2", 10)]);
    // host2's line under host1's name: host1's chain does not take it.
    let mut mixed = lines.clone();
    let stolen = b.lines[b.line_of(4) as usize - 1].replace(" host2 ", " host1 ");
    mixed.push(stolen);
    let report = verify_lines(&mixed, &[ka.clone(), kb.clone()]);
    assert!(!report.is_clean());
    assert_eq!(report.failures().next().map(|f| (f.host, f.at.line)), Some((0, mixed.len() as u64)), "{}", report.render());
    // Only host1's key: host2 cannot be verified, host1 still is.
    let report = verify_lines(&lines, std::slice::from_ref(&ka));
    assert!(!report.is_clean());
    assert!(report.failures().all(|f| f.host == 1), "{}", report.render());
    assert_eq!(report.hosts[0].ranges.len(), 1);
}

#[test]
fn several_files_in_order() {
    let k = key(19, 1);
    let mut log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    log.typical_run(3);
    let (old, new) = log.lines.split_at(20);
    let join = |l: &[String]| {
        let mut t = l.join("\n");
        t.push('\n');
        t
    };
    let (old, new) = (join(old), join(new));
    let report = verify_readers(
        vec![(PathBuf::from("auth.log.1"), old.as_bytes()), (PathBuf::from("auth.log"), new.as_bytes())],
        std::slice::from_ref(&k),
    )
    .unwrap();
    assert_clean(&report);
    assert_eq!(report.hosts[0].ranges.len(), 2, "one range per file");
    // In the wrong order: reordered, at the right file.
    let report =
        verify_readers(vec![(PathBuf::from("auth.log"), new.as_bytes()), (PathBuf::from("auth.log.1"), old.as_bytes())], &[k]).unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .render()
            .contains("auth.log.1:1: FAIL: reordered: seq 1 comes after seq 20 (auth.log:8); it belongs before seq 15 (auth.log:1)"),
        "{}",
        report.render()
    );
}

#[test]
fn forged_huge_seqs_do_not_stall_verify() {
    let k = key(20, 1);
    let log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let mut lines = log.lines.clone();
    for seq in [u64::MAX, 1 << 40, crate::chain::MAX_SEQ_SPAN, 1 << 31, (1 << 31) + 1, 99_999_999_999_999_999] {
        lines.insert(
            3,
            format!("Nov 26 04:20:00 host1 vigild: event=x seq={seq} prev=0000000000000000 mac=0123456789abcdef0123456789abcdef"),
        );
    }
    let started = std::time::Instant::now();
    let report = verify_lines(&lines, &[k]);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let kinds: Vec<FindingKind> = report.failures().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), 6, "{}", report.render());
    assert!(kinds.iter().all(|k| matches!(k, FindingKind::EditedOrForged | FindingKind::NotChecked)), "{}", report.render());
    assert!(kinds.contains(&FindingKind::NotChecked), "{}", report.render());
    assert_eq!(report.hosts[0].ranges.len(), 1, "the chain itself is intact: {}", report.render());
}

#[test]
fn hostile_lines_never_panic() {
    let k = key(21, 1);
    let log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let mut text = log.lines[..8].join("\n");
    text.push('\n');
    let mut hostile: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe\xfd binary".to_vec(),
        vec![b'A'; 64 * 1024],
        [b"Nov 26 04:14:10 host1 vigild[1]: event=x user=".as_slice(), &vec![b'B'; 70 * 1024]].concat(),
        b"Nov 26 04:14:10 host1 vigild[812]: event=x#012Nov 26 04:14:10 host1 vigild[812]: event=y seq=3".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[812]: \x1b[2J\x1b]0;owned\x07 event=session_open".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[812]: event=\xff\xfe seq=1 prev=0000000000000000 mac=00000000000000000000000000000000".to_vec(),
        b"vigild[1]: ".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: ".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]:".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[99999999999999999999]: event=x".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[: event=x".to_vec(),
        b"Nov 26 04:14:10 \xe2\x80\xaehost1 vigild[1]: event=x".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: {\"event\":\"x\",\"seq\":1,\"prev\":\"0000000000000000\",\"mac\":\"00000000000000000000000000000000\"}".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: {\"event\":".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: {\"event\":\"x\",\"seq\":18446744073709551616,\"prev\":\"0000000000000000\",\"mac\":\"00000000000000000000000000000000\"}".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: ,\"seq\":1,\"prev\":\"0000000000000000\"},\"mac\":\"00000000000000000000000000000000\"}".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: mac=00000000000000000000000000000000".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]:  seq= prev= mac=00000000000000000000000000000000".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: event=x seq=-1 prev=0000000000000000 mac=00000000000000000000000000000000".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: event=x seq=0 prev=0000000000000000 mac=00000000000000000000000000000000".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: event=x seq=1 prev=0000000000000000 mac=0000000000000000000000000000000G".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: event=x seq=1 prev=00000000000000000 mac=00000000000000000000000000000000".to_vec(),
        b"<38>1 - - vigild - - -".to_vec(),
        b"<38>1 - - vigild - - [".to_vec(),
        b"<38>1 - - vigild - - [a b=\"\\".to_vec(),
        b"<38>1 2026-11-26T04:14:10.1234567891Z h vigild 1 - - event=x".to_vec(),
        b"<38>1 9999-99-99T99:99:99Z h vigild 1 - - event=x".to_vec(),
        b"<191>1 0000-01-01T00:00:00+23:59 h vigild 1 - - event=x".to_vec(),
        b"<38>1 2026-11-26T04:14:10Z h vigild 1 - - \xef\xbb\xbf".to_vec(),
        b"0000-01-01T00:00:00Z h vigild[1]: event=x".to_vec(),
        b"9999-12-31T23:59:60.999999999-23:59 h vigild[1]: event=x".to_vec(),
        b"Feb 31 23:59:60 h vigild[1]: event=x".to_vec(),
        b"\r\r\r".to_vec(),
        b"".to_vec(),
        b" ".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: event=\"unterminated".to_vec(),
        b"Nov 26 04:14:10 host1 vigild[1]: event=x user=\"\\xZZ\" seq=1 prev=0000000000000000 mac=00000000000000000000000000000000".to_vec(),
        b"Nov 26 04:14:10 host1 pam_vigil[1]: event=reauth_required reason=daemon_unreachable".to_vec(),
        b"Nov 26 04:14:10 host1 pam_vigil[1]: \xff\xff".to_vec(),
        "Nov 26 04:14:10 host1 vigild[1]: event=x user=\u{202e}evil".as_bytes().to_vec(),
        "Nov 26 04:14:10 h\u{0}st vigild[1]: event=x".as_bytes().to_vec(),
    ];
    for i in 0..12u8 {
        hostile.push(
            format!(
                "Nov 26 04:14:1{} host1 vigild[812]: event=session_open seq={} prev=0000000000000000 mac={:032x}",
                i % 10,
                i,
                u128::from(i) * 7919
            )
            .into_bytes(),
        );
    }
    assert!(hostile.len() >= 50, "{}", hostile.len());
    let mut data = text.into_bytes();
    for h in &hostile {
        data.extend_from_slice(h);
        data.push(b'\n');
    }
    for l in &log.lines[8..] {
        data.extend_from_slice(l.as_bytes());
        data.push(b'\n');
    }
    data.extend_from_slice(b"Nov 26 04:14:10 host1 vigild[1]: no newline at the end");
    let report = verify_readers(vec![(PathBuf::from("hostile.log"), &data[..])], std::slice::from_ref(&k)).unwrap();
    let render = report.render();
    assert!(!report.is_clean());
    assert!(render.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "non-printable output: {render:?}");
    // The genuine records still verify as one chain.
    assert_eq!(report.hosts[0].ranges.iter().map(|r| (r.first_seq, r.last_seq)).collect::<Vec<_>>(), [(1, 10)], "{render}");
    assert!(!report.failures().any(|f| matches!(f.kind, FindingKind::MissingSeqs | FindingKind::Reordered)), "{render}");
    let lines = data.split(|&b| b == b'\n').count() as u64;
    assert_eq!(report.files[0].lines, lines);
    assert_eq!(report.files[0].overlong, 1, "a line of exactly 64 KiB is kept whole");
    // Timeline, same input.
    let shown = crate::timeline::show_readers(
        vec![(PathBuf::from("hostile.log"), &data[..])],
        &crate::timeline::Filter::default(),
        false,
        std::time::SystemTime::now(),
    )
    .unwrap();
    assert!(shown.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "non-printable output: {shown:?}");
    let shown = crate::timeline::show_readers(
        vec![(PathBuf::from("hostile.log"), &data[..])],
        &crate::timeline::Filter::default(),
        true,
        std::time::SystemTime::now(),
    )
    .unwrap();
    for line in shown.lines() {
        assert!(line.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{line:?}");
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn no_keys_or_no_records() {
    let k = key(22, 1);
    let log = Log::typical(&k, Encoding::KeyValue, Layout::Traditional);
    let report = verify_lines(&log.lines, &[]);
    assert!(!report.is_clean());
    assert_eq!(failures(&report), [(FindingKind::NoKey, 1)], "{}", report.render());
    let report = verify_text("Nov 26 04:14:10 h sshd[1]: hello\n", &[k]);
    assert!(!report.is_clean(), "nothing verified is not a pass");
    assert!(report.render().ends_with("result: FAILED: no vigild record to verify\n"), "{}", report.render());
}

#[test]
fn many_findings_are_capped() {
    let k = key(23, 1);
    let mut text = String::new();
    for i in 0..(MAX_FINDINGS_PER_KIND + 50) {
        text.push_str(&format!("Nov 26 04:14:10 h vigild: event=x n={i}\n"));
    }
    let report = verify_text(&text, &[k]);
    assert_eq!(report.failures().count(), MAX_FINDINGS_PER_KIND);
    assert_eq!(report.failure_count(), MAX_FINDINGS_PER_KIND as u64 + 50);
    assert!(report.render().contains("FAIL: ... and 50 more \"unsealed record\" findings, not listed"), "{}", report.render());
}

#[test]
fn keys_at_the_end_of_the_seq_space_do_not_overflow() {
    for start in [u64::MAX - 3, u64::MAX] {
        let k = key(24, start);
        let mut log = Log::new(&k, Encoding::KeyValue, Layout::Traditional);
        // ChainState::seal would overflow next_seq at u64::MAX: seal by hand.
        let mut state_key = k.key.clone();
        let mut prev = crate::chain::NO_PREV.to_string();
        let mut seq = start;
        loop {
            let body = with_position("event=x", Encoding::KeyValue, seq, &prev);
            let mac = state_key.mac(&body);
            log.tagged("vigild", &format!("{body} mac={mac}"));
            prev = mac[..crate::chain::PREV_HEX].to_string();
            state_key.evolve();
            if seq == u64::MAX {
                break;
            }
            seq += 1;
        }
        let mut lines = log.lines.clone();
        lines.push(lines[0].clone());
        let report = verify_lines(&lines, std::slice::from_ref(&k));
        assert_clean(&report);
        assert_eq!(report.hosts[0].duplicates, 1, "{}", report.render());
        // Not remembered: placed behind the frontier, as any other seq seen before.
        let mut text = lines.join("\n");
        text.push('\n');
        let report = verify_readers_window(vec![(PathBuf::from("auth.log"), text.as_bytes())], &[k], 0).unwrap();
        assert_eq!(failures(&report), [(FindingKind::DuplicateSeq, lines.len() as u64)], "{}", report.render());
    }
}

#[test]
fn module_records_are_warnings_with_their_lines() {
    for encoding in [Encoding::KeyValue, Encoding::Json] {
        let k = key(25, 1);
        let mut log = Log::typical(&k, encoding, Layout::Traditional);
        // what any local user can write: `logger -t pam_vigil -p authpriv.err '...'`
        let forged_kv = log.tagged("pam_vigil", "event=daemon_unreachable call=open_session session=1 user=alice fail=open");
        let forged_json = log.tagged("pam_vigil", "{\"event\":\"session_end\",\"session\":2,\"reason\":\"idle\"}");
        log.tagged("pam_vigil", "hello: not a record");
        let report = verify_lines(&log.lines, &[k]);
        assert!(report.is_clean() && report.passes(false) && !report.passes(true), "{}", report.render());
        let found = report.unauthenticated();
        assert_eq!(found.count(), 4);
        let listed: Vec<_> = found.listed().iter().map(|r| (r.at.line, r.event.as_deref(), r.session)).collect();
        assert_eq!(
            listed,
            [
                (5, Some(&b"module_argument_ignored"[..]), None),
                (11, Some(&b"module_argument_ignored"[..]), None),
                (forged_kv, Some(&b"daemon_unreachable"[..]), Some(1)),
                (forged_json, Some(&b"session_end"[..]), Some(2)),
            ]
        );
        let render = report.render();
        assert!(render.contains(&format!("  auth.log:{forged_kv}: warning: daemon_unreachable session=1 host=host1\n")), "{render}");
        assert!(render.contains(&format!("  auth.log:{forged_json}: warning: session_end session=2 host=host1\n")), "{render}");
        assert!(render.ends_with("result: OK: every vigild record verifies (warnings: 4 unauthenticated pam_vigil records)\n"), "{render}");
        let strict = report.render_with(true);
        assert!(
            strict.ends_with("result: FAILED (--strict): every vigild record verifies, but 4 unauthenticated pam_vigil records\n"),
            "{strict}"
        );
    }
}

#[test]
fn without_module_records_strict_changes_nothing() {
    let k = key(26, 1);
    let mut log = Log::new(&k, Encoding::KeyValue, Layout::Traditional);
    log.record(Record::new(Event::DaemonStart).text("version", "0.1.0"));
    log.record(Record::new(Event::DaemonStop).text("signal", "SIGTERM"));
    let report = verify_lines(&log.lines, &[k]);
    assert!(report.passes(true) && report.unauthenticated().count() == 0);
    assert_eq!(report.render_with(true), report.render());
    assert!(report.render().ends_with("\nresult: OK: every vigild record verifies\n"), "{}", report.render());
    // a failing report fails either way
    let report = verify_text("Nov 26 04:14:10 h pam_vigil[1]: event=x\n", &[key(26, 1)]);
    assert!(!report.passes(false) && !report.passes(true));
    assert!(
        report.render().ends_with("result: FAILED: no vigild record to verify (warnings: 1 unauthenticated pam_vigil record)\n"),
        "{}",
        report.render()
    );
}

#[test]
fn many_module_records_are_counted_and_capped() {
    let mut text = String::new();
    for i in 0..(MAX_FINDINGS_PER_KIND + 7) {
        text.push_str(&format!("Nov 26 04:14:10 h\u{1b}[2J pam_vigil[1]: event=x\u{7} n={i}\n"));
    }
    let report = verify_text(&text, &[key(27, 1)]);
    assert_eq!(report.unauthenticated().count(), MAX_FINDINGS_PER_KIND as u64 + 7);
    assert_eq!(report.unauthenticated().listed().len(), MAX_FINDINGS_PER_KIND);
    let render = report.render();
    assert!(render.contains("  warning: ... and 7 more unauthenticated records, not listed\n"), "{render}");
    assert!(render.contains("auth.log:1: warning: (not a readable record) host=\"h\\x1b[2J\"\n"), "{render}");
    assert!(render.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "{render:?}");
}

mod duplicates;
