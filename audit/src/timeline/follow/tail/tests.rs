//! The follower on real files: appends, a line written in pieces, an overlong line, a
//! logrotate-style rename (with and without the writer's reopen yet), a copytruncate.

use std::fs::OpenOptions;

use super::super::test_dir::{Dir, append};
use super::*;

/// What one poll hands out: (line number, text, cut), and whether it caught up.
fn poll(tail: &mut Tail) -> (Vec<(u64, String, bool)>, bool) {
    let mut lines = Vec::new();
    let caught_up = tail.poll(1 << 20, &mut |n, text, cut| lines.push((n, text.to_string(), cut))).unwrap();
    (lines, caught_up)
}

/// The texts of the lines one poll hands out.
fn texts(tail: &mut Tail) -> Vec<String> {
    let (lines, caught_up) = poll(tail);
    assert!(caught_up);
    lines.into_iter().map(|(_, text, _)| text).collect()
}

#[test]
fn lines_already_there_then_each_appended_line_once() {
    let dir = Dir::new("append");
    append(&dir.trail(), "one\ntwo\r\n");
    let mut tail = Tail::open(&dir.trail()).unwrap();
    assert_eq!(poll(&mut tail), (vec![(1, "one".into(), false), (2, "two".into(), false)], true));
    assert!(texts(&mut tail).is_empty(), "nothing new: nothing handed out");
    append(&dir.trail(), "three\n");
    assert_eq!(poll(&mut tail), (vec![(3, "three".into(), false)], true));
    assert!(texts(&mut tail).is_empty());
}

#[test]
fn a_line_written_in_pieces_is_handed_out_once_its_line_break_arrives() {
    let dir = Dir::new("partial");
    append(&dir.trail(), "done\nevent=session_op");
    let mut tail = Tail::open(&dir.trail()).unwrap();
    assert_eq!(texts(&mut tail), ["done"], "the unfinished line waits");
    append(&dir.trail(), "en session=1");
    assert!(texts(&mut tail).is_empty(), "still no line break");
    append(&dir.trail(), "2\nnext\n");
    assert_eq!(poll(&mut tail), (vec![(2, "event=session_open session=12".into(), false), (3, "next".into(), false)], true));
}

#[test]
fn an_endless_line_keeps_only_the_bound_and_is_handed_out_cut() {
    let dir = Dir::new("overlong");
    append(&dir.trail(), "");
    let mut tail = Tail::open(&dir.trail()).unwrap();
    let piece = "x".repeat(256 * 1024);
    for _ in 0..8 {
        append(&dir.trail(), &piece);
        assert!(texts(&mut tail).is_empty());
        assert!(tail.pending_bytes() <= MAX_LINE_BYTES, "kept {} bytes of one line", tail.pending_bytes());
    }
    append(&dir.trail(), "\nafter\n");
    let (lines, _) = poll(&mut tail);
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0].1.len(), lines[0].2), (MAX_LINE_BYTES, true));
    assert_eq!(lines[1], (2, "after".into(), false));
}

#[test]
fn a_budget_stops_the_read_and_the_next_poll_goes_on() {
    let dir = Dir::new("budget");
    let text: String = (0..50_000).map(|n| format!("line {n}\n")).collect();
    append(&dir.trail(), &text);
    let mut tail = Tail::open(&dir.trail()).unwrap();
    let mut seen = Vec::new();
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(polls < 1000, "never caught up");
        if tail.poll(READ_CHUNK, &mut |n, _, _| seen.push(n)).unwrap() {
            break;
        }
    }
    assert!(polls > 2, "a 600 KB file read 64 KiB at a time takes several polls, took {polls}");
    assert_eq!(seen, (1..=50_000).collect::<Vec<u64>>());
}

#[test]
fn a_renamed_file_is_read_to_its_end_then_the_new_one_from_its_start() {
    let dir = Dir::new("rename");
    let rotated = dir.0.join("trail.1");
    append(&dir.trail(), "old 1\n");
    let mut tail = Tail::open(&dir.trail()).unwrap();
    assert_eq!(texts(&mut tail), ["old 1"]);
    // logrotate: rename, then the writer (not told yet) still appends to the old file.
    std::fs::rename(dir.trail(), &rotated).unwrap();
    append(&rotated, "old 2\n");
    assert_eq!(texts(&mut tail), ["old 2"], "the path is gone for now: the open file is kept");
    // `create`: an empty file at the path; the writer still has the old one.
    std::fs::File::create(dir.trail()).unwrap();
    append(&rotated, "old 3\nold 4 unfinished");
    assert_eq!(texts(&mut tail), ["old 3"], "an empty new file is no reason to leave the old one");
    // The writer reopened (HUP) and wrote to the new file.
    append(&dir.trail(), "new 1\nnew 2\n");
    let (lines, _) = poll(&mut tail);
    let (more, _) = poll(&mut tail);
    let all: Vec<(u64, String, bool)> = lines.into_iter().chain(more).collect();
    assert_eq!(
        all,
        [(4, "old 4 unfinished".into(), false), (1, "new 1".into(), false), (2, "new 2".into(), false)],
        "the old file's last line (nothing more will come to it), then the new file from line 1"
    );
    append(&rotated, "old 5, written after the switch\n");
    append(&dir.trail(), "new 3\n");
    assert_eq!(texts(&mut tail), ["new 3"], "only the file at the path is followed now");
}

#[test]
fn the_old_file_is_left_only_once_a_poll_finds_nothing_new_in_it() {
    let dir = Dir::new("drain");
    let rotated = dir.0.join("trail.1");
    append(&dir.trail(), "a\n");
    let mut tail = Tail::open(&dir.trail()).unwrap();
    assert_eq!(texts(&mut tail), ["a"]);
    std::fs::rename(dir.trail(), &rotated).unwrap();
    append(&rotated, "b\n");
    append(&dir.trail(), "c\n");
    assert_eq!(texts(&mut tail), ["b"], "the old file still grew: read it again next time");
    assert_eq!(texts(&mut tail), ["c"]);
}

#[test]
fn a_truncated_file_is_read_again_from_its_start() {
    let dir = Dir::new("truncate");
    append(&dir.trail(), "first\nsecond\nhalf a li");
    let mut tail = Tail::open(&dir.trail()).unwrap();
    assert_eq!(texts(&mut tail), ["first", "second"]);
    // copytruncate: the content copied elsewhere, the file emptied in place.
    OpenOptions::new().write(true).open(dir.trail()).unwrap().set_len(0).unwrap();
    assert!(texts(&mut tail).is_empty());
    append(&dir.trail(), "third\n");
    assert_eq!(
        poll(&mut tail),
        (vec![(1, "third".into(), false)], true),
        "from the new start, line 1; the unfinished line went with the old content"
    );
    append(&dir.trail(), "fourth\n");
    assert_eq!(texts(&mut tail), ["fourth"]);
}

#[test]
fn only_regular_files_are_followed() {
    let dir = Dir::new("regular");
    let error = Tail::open(&dir.0).err().expect("a directory is refused");
    assert!(error.to_string().contains("--follow needs a regular file"), "{error}");
    let error = Tail::open(&dir.trail()).err().expect("a missing file is refused");
    assert!(error.to_string().contains("trail"), "{error}");
}
