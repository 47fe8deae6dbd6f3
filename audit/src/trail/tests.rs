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

/// Hostile and odd lines: odd bytes, huge fields, a forged ` mac=` inside a quoted
/// value, duplicated keys, a second `event`, JSON, leap seconds at the year's end.
fn hostile_lines() -> Vec<String> {
    let kv = |message: &str| format!("Aug  1 10:00:00 web01 vigild[812]: {message}");
    let mut lines = vec![
        kv("event=session_open session=9 user=\"a mac=0123456789abcdef0123456789abcdef\" uid=1 seq=5 prev=0000000000000000"),
        kv("event=session_open session=9 user=\"a\\\" mac=0123456789abcdef0123456789abcdef seq=9\" seq=5"),
        kv("event=session_end session=9 reason=idle reason=admin user=x user=y seq=6 seq=7 mac=ffffffffffffffffffffffffffffffff mac=00"),
        kv("event=session_open event=session_end session=1 user=b"),
        kv("event=session_open session=2 user=\"\\xff\\x00\\n\\t\" rhost=\"evil host\" seq=1"),
        kv(&format!("event=session_open session=3 user={}", "A".repeat(70_000))),
        kv(&format!("event=session_open session=3 user={} seq=77 mac={}", "B".repeat(5_000), "c".repeat(32))),
        kv(&format!("event=session_open session=3 {}=1 seq=8", "k".repeat(3_000))),
        kv("event=Session_Open session=4 user=q"),
        kv("event= session=4 user=q"),
        kv("event=\"\" session=4 user=q"),
        kv("event=session_open  session=4 user=q"),
        kv("event=session_open session=4 user=\"unterminated"),
        kv("event=session_open session=4 user=\"bad\\q\""),
        kv("event=session_open session=4 user=\"tab\there\""),
        kv("event=session_open session=4 user=caf\u{e9} seq=1"),
        kv("event=session_open session=4 user=\u{202e}x seq=1"),
        kv("event=session_open session=4 User=q seq=1"),
        kv("session=4 user=q"),
        kv("event=session_open session=18446744073709551615 seq=18446744073709551615"),
        kv("event=session_open session=18446744073709551616 seq=99999999999999999999"),
        kv("event=session_open session=-1 seq=+1"),
        kv("{\"event\":\"session_open\",\"session\":5,\"user\":\"j\",\"seq\":\"3\",\"mac\":\"0123456789abcdef0123456789abcdef\"}"),
        kv("{\"event\":\"session_end\",\"event\":\"session_open\",\"session\":5,\"reason\":\"idle\"}"),
        kv("{\"event\":\"session_end\",\"Reason\":\"idle\"}"),
        kv("{\"event\":5}"),
        kv("[1,2]"),
        "Aug  1 10:00:00 web01 pam_vigil[1]: event=session_end session=5 reason=idle user=j".into(),
        "Aug  1 10:00:00 web01 sshd[1]: event=session_end session=5 reason=idle user=j".into(),
        "Dec 31 23:59:60 web02 vigild[812]: event=session_end session=11 reason=idle user=leap seq=9".into(),
        "Dec 31 23:59:59 web02 vigild[812]: event=session_open session=12 user=leap seq=10".into(),
        "Jan  1 00:00:00 web02 vigild[812]: event=session_open session=12 user=leap seq=11".into(),
        "2026-12-31T23:59:60.5+00:00 web03 vigild[812]: event=session_end session=13 reason=idle seq=4".into(),
        "<38>1 2026-08-01T10:00:13.123Z web04 vigild 812 - [x@1 a=\"]\"] event=session_open session=14 user=r seq=2".into(),
        "Aug  1 10:00:00 web\u{1b}[31m vigild[812]: event=session_open session=21 user=esc seq=1".into(),
        "not a syslog line".into(),
        String::new(),
        kv(&"k=v ".repeat(3_000)),
    ];
    lines.push(kv("event=daemon_start version=0.1.0 pid=812 seq=1 prev=0000000000000000 mac=1d0a2165d3a71acce278bcb416999d56"));
    lines
}

/// What a line reads as, as owned values: the answer, host, message, and the record
/// (every field in order, and what the readers ask of it).
fn read_as(read: Read<'_>, event: &Event) -> String {
    let (host, message) = match read {
        Read::NotSyslog => return "not syslog".into(),
        Read::Other => return "other".into(),
        Read::NotRecord => return "not a record".into(),
        Read::Record(host, message) => (host, message),
    };
    let asked: Vec<Option<&[u8]>> =
        ["seq", "mac", "session", "user", "reason", "rhost", "uid", "event", "prev", "k"].iter().map(|key| event.get(key)).collect();
    format!(
        "{host:?} {message:?} {} {} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {} {:?} {} {}",
        event.file,
        event.line,
        event.module,
        event.time,
        event.time_text,
        event.stamp,
        event.name,
        event.kind,
        event.fields.raw().collect::<Vec<_>>(),
        asked,
        event.unauthenticated(),
        event.session(),
        event.is_end(),
        END_EVENTS.iter().any(|&e| event.is(e))
    )
}

#[test]
fn one_event_parsed_into_again_and_again_reads_each_line_as_a_new_one() {
    let lines = hostile_lines();
    // Forward, backward, and long lines between short ones: nothing of one record may
    // stay in the next.
    let mut orders: Vec<Vec<&String>> = vec![lines.iter().collect(), lines.iter().rev().collect()];
    orders.push(lines.iter().flat_map(|l| [l, &lines[6], l, &lines[0]]).collect());
    let mut clock = MinuteCache::default();
    for order in orders {
        let mut reused = Event::default();
        for (n, line) in order.into_iter().enumerate() {
            let cut = line.len() > crate::syslog_line::MAX_LINE_BYTES;
            let mut fresh = Event::default();
            let expected = read_as(read_line_into(1, n as u64, line, cut, &mut MinuteCache::default(), now(), &mut fresh), &fresh);
            let got = read_as(read_line_into(1, n as u64, line, cut, &mut clock, now(), &mut reused), &reused);
            assert_eq!(got, expected, "{line:?}");
        }
    }
}

#[test]
fn the_hot_keys_and_the_kind_are_what_the_kv_parser_and_the_event_names_say() {
    for line in hostile_lines() {
        let mut event = Event::default();
        let Read::Record(_, message) = read_line_into(0, 1, &line, false, &mut MinuteCache::default(), now(), &mut event) else { continue };
        if message.starts_with('{') {
            continue;
        }
        // The reference: the protocol's parser, whose result is a plain list.
        let fields = vigil_protocol::audit::parse_kv_line(message).unwrap();
        let first_event = fields.iter().position(|(k, _)| k == "event").unwrap();
        assert_eq!(event.name, fields[first_event].1, "{line}");
        let rest: Vec<(&[u8], &[u8])> =
            fields.iter().enumerate().filter(|&(i, _)| i != first_event).map(|(_, (k, v))| (k.as_bytes(), v.as_slice())).collect();
        assert_eq!(event.fields.raw().collect::<Vec<_>>(), rest, "{line}");
        for key in ["seq", "mac", "session", "user", "reason", "rhost", "uid", "prev", "event", "x"] {
            let first = rest.iter().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| *v);
            assert_eq!(event.get(key), first, "{key} of {line}");
        }
        let kind = EventName::ALL.iter().copied().find(|e| e.as_str().as_bytes() == event.name.as_slice());
        assert_eq!(event.kind, kind, "{line}");
        for e in EventName::ALL {
            assert_eq!(event.is(*e), event.name == e.as_str().as_bytes(), "{e:?} of {line}");
        }
    }
    // The forged mac inside a quoted value is no mac.
    let mut event = Event::default();
    let line = &hostile_lines()[0];
    assert!(matches!(read_line_into(0, 1, line, false, &mut MinuteCache::default(), now(), &mut event), Read::Record(..)));
    assert_eq!(event.get("mac"), None);
    assert!(event.unauthenticated());
}

#[test]
fn the_year_asked_once_a_minute_is_the_year_of_each_time() {
    let mut clock = MinuteCache::default();
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    for line in hostile_lines() {
        let Some(parsed) = crate::syslog_line::parse_line(&line) else { continue };
        let Some(t) = parsed.timestamp else { continue };
        // Twice: the minute's year is then asked of the cache.
        for _ in 0..2 {
            let Some(time) = clock.resolve(t, now()) else { continue };
            assert_eq!(clock.year(t, time), t.year.unwrap_or_else(|| local_year(time)), "{line}");
        }
    }
    // Every second of a year's last minutes and the next year's first, leap second too.
    let new_year = 1_798_761_600u64; // 2027-01-01T00:00:00Z
    for secs in new_year - 130..new_year + 70 {
        for second in [None, Some(60u8)] {
            let t = crate::syslog_line::parse_rfc3339(&{
                let s = crate::sample::syslog_line(Layout::HighPrecision, secs, 0, "h", "t", 1, "m");
                s.split(' ').next().unwrap().to_string()
            })
            .unwrap();
            let t = Timestamp { year: None, second: second.unwrap_or(t.second), utc_offset_s: None, ..t };
            let Some(time) = clock.resolve(t, at(new_year + 86_400 * 30)) else { continue };
            assert_eq!(clock.year(t, time), local_year(time), "{t:?}");
        }
    }
}
