//! Tests of the trail that follows sessions across files: when a session is let go, and
//! how its records' lines are read again.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use vigil_protocol::events::Event as EventName;

use super::reread::{Positions, Reread, Stored};
use super::*;
use crate::sample::{Layout, SAMPLE_EPOCH, session_record, syslog_line};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SAMPLE_EPOCH + 86_400)
}

/// `sessions` sessions one after the other, each opened, warned and ended, then a
/// record of the first session (a late one).
fn sequential(sessions: u64) -> String {
    let mut text = String::new();
    for id in 1..=sessions {
        for (i, event) in [EventName::SessionOpen, EventName::IdleWarning, EventName::SessionEnd].into_iter().enumerate() {
            let record = session_record(event, id, "alice").to_kv_line();
            text.push_str(&syslog_line(Layout::Traditional, SAMPLE_EPOCH + id * 10 + i as u64, 0, "h", "vigild", 1, &record));
            text.push('\n');
        }
    }
    let late = session_record(EventName::ReauthRequired, 1, "alice").to_kv_line();
    text.push_str(&syslog_line(Layout::Traditional, SAMPLE_EPOCH + sessions * 10 + 9, 0, "h", "vigild", 1, &late));
    text.push('\n');
    text
}

/// Records which block each record went to, and how many blocks took records at most.
#[derive(Default)]
struct Seen {
    records: Vec<(BlockId, Option<u64>, At)>,
    live: std::collections::HashSet<BlockId>,
    most_live: usize,
    finished: Vec<BlockId>,
}

impl Visit for Seen {
    type Block = ();

    fn record(&mut self, place: Place<'_>, _event: &Event, _block: &mut ()) {
        assert_eq!(place.fresh, self.live.insert(place.id), "fresh exactly when the block is new");
        self.most_live = self.most_live.max(self.live.len());
        self.records.push((place.id, place.session, place.at));
    }

    fn finished(&mut self, id: BlockId, _block: ()) {
        assert!(self.live.remove(&id), "finished once, after its records");
        self.finished.push(id);
    }
}

fn run(text: &str, kept: usize) -> (Seen, Scan) {
    let mut seen = Seen::default();
    let scan = scan_keeping(streams(vec![(PathBuf::from("t"), text.as_bytes())]), now(), true, kept, &mut seen).unwrap();
    (seen, scan)
}

#[test]
fn a_session_is_let_go_after_its_end() {
    let (seen, _) = run(&sequential(1000), 8);
    // Never more than the ended sessions kept, the open one and the newest.
    assert!(seen.most_live <= 10, "{} blocks live at once", seen.most_live);
    assert_eq!(seen.finished.len(), 1001, "every block is finished, the late record's too");
    // Session 1's late record, long after its end: a block of its own.
    let (last_id, last_session, _) = *seen.records.last().unwrap();
    assert_eq!((last_id, last_session), (1000, Some(1)));
    assert!(seen.live.is_empty());
}

#[test]
fn a_record_soon_after_the_end_joins_the_session() {
    let (seen, _) = run(&sequential(5), 8);
    let (last_id, last_session, _) = *seen.records.last().unwrap();
    assert_eq!((last_id, last_session), (0, Some(1)), "the late record is in session 1's block");
}

#[test]
fn daemon_blocks_last_until_the_end() {
    let mut text = syslog_line(Layout::Traditional, SAMPLE_EPOCH, 0, "h", "vigild", 1, "event=daemon_start version=1");
    text.push('\n');
    text.push_str(&sequential(50));
    text.push_str(&syslog_line(Layout::Traditional, SAMPLE_EPOCH + 999, 0, "h", "vigild", 1, "event=daemon_stop"));
    text.push('\n');
    let (seen, _) = run(&text, 4);
    let daemon: Vec<BlockId> = seen.records.iter().filter(|(_, s, _)| s.is_none()).map(|(id, _, _)| *id).collect();
    assert_eq!(daemon, [0, 0], "{daemon:?}");
    assert_eq!(seen.finished.iter().filter(|&&id| id == 0).count(), 1, "finished once, at the end");
}

#[test]
fn positions_give_back_the_records_lines() {
    let text = sequential(20);
    let (seen, scan) = run(&text, CLOSED_KEPT);
    let mut positions = Positions::default();
    let mut last = None;
    for &(_, _, at) in &seen.records {
        positions.push(at, last);
        last = Some(at);
    }
    let mut stored = Stored::default();
    stored.keep(Positions::default());
    let span = stored.keep(positions);
    let back: Vec<At> = stored.iter(span).collect();
    assert_eq!(back, seen.records.iter().map(|r| r.2).collect::<Vec<_>>());
    let mut reread = Reread::new(&scan.sources);
    for (at, expected) in back.iter().zip(text.lines()) {
        let (file, _, line, cut) = reread.line(*at).unwrap().unwrap();
        assert_eq!((file, line.as_ref(), cut), (0, expected, false));
    }
}

#[test]
fn files_are_read_again_through_their_descriptor() {
    let dir = std::env::temp_dir().join(format!("vigil-trail-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.log"), dir.join("b.log"));
    // A line across a page boundary, one without a final line break, a CRLF.
    let mut first = "x".repeat(16 * 1024 - 10);
    first.push('\n');
    first.push_str(&sequential(300).replace("\n", "\r\n"));
    std::fs::write(&a, &first).unwrap();
    let second = sequential(3);
    std::fs::File::create(&b).unwrap().write_all(second.trim_end().as_bytes()).unwrap();
    let inputs = open_files(&[a.clone(), PathBuf::from("/dev/null"), b.clone()]).unwrap();
    let mut seen = Seen::default();
    let scan = scan(inputs, now(), true, &mut seen).unwrap();
    let expected: Vec<(usize, u64, String)> = first
        .lines()
        .enumerate()
        .skip(1)
        .map(|(n, l)| (0, n as u64 + 1, l.to_string()))
        .chain(second.lines().enumerate().map(|(n, l)| (2, n as u64 + 1, l.to_string())))
        .collect();
    let mut reread = Reread::new(&scan.sources);
    let back: Vec<(usize, u64, String)> = seen
        .records
        .iter()
        .map(|&(_, _, at)| {
            let (file, line, text, _) = reread.line(at).unwrap().unwrap();
            (file, line, text.into_owned())
        })
        .collect();
    assert_eq!(back, expected);
    std::fs::remove_dir_all(&dir).unwrap();
}
