//! Exact copies of records, as RELP writes them on a central host when the link broke
//! before the acknowledgements arrived: skipped and counted, never a failure; a copy
//! that differs, or one too far from its original, still is.

use super::*;

fn typical_lines(encoding: Encoding) -> (KeyFile, Log) {
    let k = key(10, 1);
    let log = Log::typical(&k, encoding, Layout::Traditional);
    (k, log)
}

#[test]
fn an_exact_copy_shortly_after_its_original_is_counted_not_failed() {
    for encoding in [Encoding::KeyValue, Encoding::Json] {
        let (k, log) = typical_lines(encoding);
        let mut lines = log.lines.clone();
        let copy = lines[log.line_of(3) as usize - 1].clone();
        lines.insert(log.line_of(6) as usize, copy);
        let report = verify_lines(&lines, &[k]);
        assert_clean(&report);
        let host = &report.hosts[0];
        assert_eq!((host.duplicates, host.authentic), (1, 10), "{}", report.render());
        assert_eq!(host.ranges.len(), 1, "the copy does not split the verified range: {}", report.render());
        let render = report.render();
        let copy_line = log.line_of(6) + 1;
        assert!(
            render.contains(&format!(
                "  duplicates: 1 exact copy of records verified just before, skipped (forwarding that delivers at least once); the first at auth.log:{copy_line}\n"
            )),
            "{render}"
        );
        assert!(
            render.ends_with(
                "result: OK: every vigild record verifies (warnings: 2 unauthenticated pam_vigil records; duplicates: 1 skipped)\n"
            ),
            "{render}"
        );
    }
}

/// What a central host's file holds after a RELP session broke: the records up to the
/// break, the unacknowledged ones again, then the rest.
#[test]
fn a_block_sent_again_after_a_broken_link_verifies_with_its_count() {
    let (k, log) = typical_lines(Encoding::KeyValue);
    let resent_from = log.line_of(4) as usize - 1;
    let break_at = log.line_of(8) as usize;
    let mut lines: Vec<String> = log.lines[..break_at].to_vec();
    lines.extend_from_slice(&log.lines[resent_from..]);
    let resent = log.lines[resent_from..break_at].iter().filter(|l| l.contains(" vigild[")).count() as u64;
    assert!(resent >= 4, "{resent}");
    let report = verify_lines(&lines, &[k]);
    assert_clean(&report);
    assert_eq!(report.hosts[0].duplicates, resent, "{}", report.render());
    assert_eq!(report.duplicates(), resent);
    assert!(!report.render().contains("missing seqs"), "{}", report.render());
}

#[test]
fn the_same_seq_with_other_content_is_still_an_edit() {
    let (k, log) = typical_lines(Encoding::KeyValue);
    let mut lines = log.lines.clone();
    let original = lines[log.line_of(3) as usize - 1].clone();
    assert!(original.contains("user=alice"), "{original}");
    lines.insert(log.line_of(6) as usize, original.replace("user=alice", "user=mallory"));
    let report = verify_lines(&lines, &[k]);
    assert_eq!(failures(&report), [(FindingKind::EditedOrForged, log.line_of(6) + 1)], "{}", report.render());
    assert_eq!(report.hosts[0].duplicates, 0);
}

/// The same record under another host name is that host's, not a copy.
#[test]
fn a_copy_under_another_host_name_is_not_a_duplicate() {
    let (k, log) = typical_lines(Encoding::KeyValue);
    let mut lines = log.lines.clone();
    let original = lines[log.line_of(3) as usize - 1].clone();
    lines.push(original.replace(" host1 ", " host2 "));
    let report = verify_lines(&lines, &[k]);
    assert!(!report.is_clean(), "{}", report.render());
    assert_eq!(report.duplicates(), 0, "{}", report.render());
}

#[test]
fn a_copy_further_back_than_the_window_is_a_duplicate_seq() {
    let (k, log) = typical_lines(Encoding::KeyValue);
    let mut lines = log.lines.clone();
    let copy = lines[log.line_of(3) as usize - 1].clone();
    lines.insert(log.line_of(6) as usize, copy);
    let mut text = lines.join("\n");
    text.push('\n');
    // Seqs 4, 5 and 6 came after seq 3: a window of 2 has let it go.
    let report = verify_readers_window(vec![(PathBuf::from("auth.log"), text.as_bytes())], &[k], 2).unwrap();
    assert_eq!(failures(&report), [(FindingKind::DuplicateSeq, log.line_of(6) + 1)], "{}", report.render());
    assert!(
        report.failures().next().unwrap().detail.starts_with("duplicate seq 3: already verified in auth.log lines 1.."),
        "{}",
        report.render()
    );
    assert_eq!(report.duplicates(), 0);
}
