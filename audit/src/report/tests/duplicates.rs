//! Exact copies of records (RELP delivers at least once): the report and `show` count
//! each record once and say how many copies they skipped, with and without the key.

use super::*;

/// The trail with a copy of alice's `session_open` two records after it, as a central
/// host's file holds a record sent again after a broken link.
fn trail_with_copy() -> String {
    trail_with_changed_copy(|line| line.to_owned())
}

fn trail_with_changed_copy(change: impl Fn(&str) -> String) -> String {
    let text = trail();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let open = lines.iter().position(|l| l.contains("event=session_open session=12 ")).unwrap();
    let copy = change(&lines[open]);
    lines.insert(open + 3, copy);
    format!("{}\n", lines.join("\n"))
}

#[test]
fn a_copy_is_counted_once_and_reported_as_a_duplicate() {
    let plain = report(&trail(), &Filter::default());
    let copied = report(&trail_with_copy(), &Filter::default());
    assert_eq!(copied.total, plain.total, "the copy counts no second login");
    assert_eq!(copied.days, plain.days);
    let (h, p) = (&copied.hosts[0], &plain.hosts[0]);
    assert_eq!((h.records, h.missing_seqs, h.unauthenticated), (p.records, p.missing_seqs, p.unauthenticated));
    assert_eq!((h.duplicates, p.duplicates), (1, 0));
    let text = copied.render();
    assert!(text.contains(", 1 unauthenticated lines, 1 duplicates (exact copies, skipped); not verified"), "{text}");
    let json = serde_json::to_value(&copied).unwrap();
    assert_eq!(json["hosts"][0]["duplicates"], 1, "{json}");
    assert_eq!(shown(&trail_with_copy(), &Filter::default(), "session_open", None), 3, "show lists it once");
}

#[test]
fn with_the_key_the_copy_is_verified_and_counted() {
    let text = trail_with_copy();
    let (r, verified) = report_verified(text.as_bytes(), KeyFile { start_seq: 1, key: Key::from_bytes([9; KEY_BYTES]) });
    let v = r.hosts[0].verified.clone().unwrap();
    // The trail leaves two seqs out on purpose: those are its only failure.
    assert_eq!((v.duplicates, v.missing_seqs, v.failures), (1, 2, 1), "{}", verified.render());
    assert!(r.render().contains("2 missing seqs, 1 failure(s), 1 duplicates"), "{}", r.render());
}

#[test]
fn a_changed_copy_is_a_record_of_its_own() {
    let text = trail_with_changed_copy(|line| line.replacen(" uid=1012 ", " uid=0 ", 1));
    assert!(text.contains(" uid=0 "), "{text}");
    let r = report(&text, &Filter::default());
    assert_eq!(r.hosts[0].duplicates, 0);
    assert_eq!(r.total.logins, 4, "an edited copy is counted: verify tells it is forged");
}

#[test]
fn show_says_how_many_copies_it_skipped() {
    let text = trail_with_copy();
    let out = show_readers(vec![(PathBuf::from("auth.log"), text.as_bytes())], &Filter::default(), false, now()).unwrap();
    assert!(out.contains("; 1 duplicates (exact copies, skipped)\n"), "{out}");
}
