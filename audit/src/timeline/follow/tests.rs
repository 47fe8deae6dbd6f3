//! `audit show --follow` end to end on real files, the waits scripted: records printed as
//! they arrive with `show`'s filters, alerts marked, through a rotation; the stop; a
//! write error; the bound on what `--user` keeps.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use vigil_protocol::audit::Record;
use vigil_protocol::events::Event as EventName;

use super::test_dir::{Dir, append};
use super::*;
use crate::chain::{ChainState, Encoding, KEY_BYTES, Key};
use crate::sample::{Layout, SAMPLE_EPOCH, session_record, syslog_line};

const T: u64 = SAMPLE_EPOCH;

/// vigild's records, chained as vigild chains them.
struct Trail {
    chain: ChainState,
    secs: u64,
}

impl Trail {
    fn new() -> Trail {
        Trail { chain: ChainState { next_seq: 1, key: Key::from_bytes([7; KEY_BYTES]), last_mac: String::new() }, secs: T }
    }

    /// A vigild line (with its line break) for the kv record `body`, a second after the
    /// previous one; timestamps with their year, so that `--since` does not depend on
    /// today's date.
    fn vigild(&mut self, body: &str) -> String {
        self.secs += 1;
        format!("{}\n", syslog_line(Layout::HighPrecision, self.secs, 0, "web1", "vigild", 812, &self.chain.seal(body, Encoding::KeyValue)))
    }

    fn record(&mut self, record: Record) -> String {
        self.vigild(&record.to_kv_line())
    }

    fn open(&mut self, session: u64, user: &str) -> String {
        self.record(session_record(EventName::SessionOpen, session, user))
    }

    fn module(&mut self, body: &str) -> String {
        self.secs += 1;
        format!("{}\n", syslog_line(Layout::HighPrecision, self.secs, 0, "web1", "pam_vigil", 4000, body))
    }
}

/// Follows `path` with `filter`; at the n-th pause `script(n)` changes the files and
/// says whether to stop. Returns the output and the pauses asked for.
fn follow(path: &Path, filter: &Filter, json: bool, mut script: impl FnMut(usize) -> bool) -> (String, Vec<Duration>) {
    let mut out = Vec::new();
    let mut pauses = Vec::new();
    follow_files(&[path.to_path_buf()], filter, json, &mut out, |pause| {
        pauses.push(pause);
        assert!(pauses.len() < 100, "the follow did not stop");
        script(pauses.len())
    })
    .unwrap();
    (String::from_utf8(out).unwrap(), pauses)
}

#[test]
fn records_already_there_then_each_new_one_through_a_rename() {
    let dir = Dir::new("rename");
    let trail = dir.trail();
    let mut t = Trail::new();
    append(&trail, &(t.record(Record::new(EventName::DaemonStart).text("version", "0.1.0")) + &t.open(12, "alice")));
    let later = t.record(session_record(EventName::IdleWarning, 12, "alice").text("limit", "idle"));
    let (half, rest) = later.split_at(later.len() / 2);
    let after_rotation = t.record(session_record(EventName::SessionEnd, 12, "alice").text("reason", "idle"));
    let (text, pauses) = follow(&trail, &Filter::default(), false, |step| {
        match step {
            1 => append(&trail, half),
            2 => append(&trail, rest),
            3 => {
                std::fs::rename(&trail, dir.0.join("trail.1")).unwrap();
                append(&trail, &after_rotation);
            }
            _ => {}
        }
        step == 5
    });
    assert!(pauses.iter().all(|p| *p == POLL_INTERVAL), "a small file is read in one poll: {pauses:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("  2026-11-26T04:14:11.000000+00:00  web1  daemon_start version=0.1.0"), "{text}");
    assert!(lines[1].starts_with("  2026-11-26T04:14:12.000000+00:00  web1  session_open session=12 ses=15 user=alice "), "{text}");
    assert!(lines[2].contains(" idle_warning session=12 "), "printed once its line break arrived: {text}");
    assert!(lines[3].contains(" session_end session=12 ") && lines[3].contains(" reason=idle"), "{text}");
    assert!(!text.contains(" seq=") && !text.contains(" mac="), "the chain's fields are left out, as in show: {text}");
}

#[test]
fn show_filters_hold_and_a_forged_line_cannot_move_a_session_to_another_user() {
    let dir = Dir::new("filters");
    let trail = dir.trail();
    let mut t = Trail::new();
    let mut text = t.open(12, "alice") + &t.open(13, "bob");
    // Anyone can write a pam_vigil line: this one names alice for bob's session.
    text += &t.module("event=daemon_unreachable call=close_session session=13 user=alice reason=timeout");
    text += &t.module("event=daemon_unreachable call=close_session session=12 user=alice reason=timeout");
    text += &t.record(Record::new(EventName::CallRefused).text("method", "Terminate").text("user", "alice").number("uid", 1000));
    append(&trail, &text);
    let filter = Filter { user: Some("alice".into()), ..Filter::default() };
    let arrive =
        t.record(session_record(EventName::SessionClose, 12, "alice")) + &t.record(session_record(EventName::SessionClose, 13, "bob"));
    let (shown, _) = follow(&trail, &filter, false, |step| {
        if step == 1 {
            append(&trail, &arrive);
        }
        step == 2
    });
    let events: Vec<(&str, &str)> =
        shown.lines().map(|l| (l.split_whitespace().nth(2).unwrap(), l.split("session=").nth(1).map_or("-", |s| &s[..2]))).collect();
    assert_eq!(
        events,
        [("session_open", "12"), ("daemon_unreachable", "12"), ("call_refused", "-"), ("session_close", "12")],
        "alice's session and daemon record, bob's never: {shown}"
    );
    assert!(shown.contains("daemon_unreachable (pam_vigil, unauthenticated) "), "labelled as show labels it: {shown}");

    let filter = Filter { session: Some(13), event: Some("session_close".into()), ..Filter::default() };
    let (shown, _) = follow(&trail, &filter, false, |_| true);
    assert_eq!(shown.lines().count(), 1, "{shown}");
    assert!(shown.contains(" session_close session=13 "), "{shown}");

    let filter = Filter {
        since: Some(UNIX_EPOCH + Duration::from_secs(T + 6)),
        until: Some(UNIX_EPOCH + Duration::from_secs(T + 6)),
        ..Filter::default()
    };
    let (shown, _) = follow(&trail, &filter, false, |_| true);
    assert_eq!(shown.lines().count(), 1, "{shown}");
    assert!(shown.contains(" session_close session=12 "), "{shown}");
}

#[test]
fn alerts_are_marked_in_text_and_flagged_in_json() {
    let dir = Dir::new("alerts");
    let trail = dir.trail();
    let mut t = Trail::new();
    let mut text = t.open(12, "alice");
    text += &t.vigild("event=alert kind=reauth_failures session=12 user=alice failures=3 window_s=600");
    text += &t.module("event=alert kind=forged session=12 user=alice");
    append(&trail, &text);
    let (shown, _) = follow(&trail, &Filter::default(), false, |_| true);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(lines[0].starts_with("  "), "{shown}");
    assert!(
        lines[1].starts_with(
            "! 2026-11-26T04:14:12.000000+00:00  web1  alert kind=reauth_failures session=12 user=alice failures=3 window_s=600"
        ),
        "{shown}"
    );
    assert!(
        lines[2].starts_with("  ") && lines[2].contains("alert (pam_vigil, unauthenticated) kind=forged"),
        "a module line is no alert: {shown}"
    );

    let (json, _) = follow(&trail, &Filter::default(), true, |_| true);
    let objects: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 3, "{json}");
    let flags: Vec<bool> = objects.iter().map(|o| o["alert"].as_bool().unwrap()).collect();
    assert_eq!(flags, [false, true, false]);
    let alert = &objects[1];
    assert_eq!((alert["host"].as_str(), alert["session"].as_u64(), alert["event"].as_str()), (Some("web1"), Some(12), Some("alert")));
    assert_eq!((alert["file"].as_str(), alert["line"].as_u64()), (Some(trail.to_str().unwrap()), Some(2)));
    assert_eq!(alert["fields"]["kind"].as_str(), Some("reauth_failures"));
    assert!(alert["authenticated"].is_null(), "it carries a mac: null, as in show: {alert}");
    assert_eq!(objects[2]["authenticated"].as_bool(), Some(false));
    assert!(alert.get("offset_s").is_none(), "no block, no offset: {alert}");
}

#[test]
fn hostile_values_stay_escaped() {
    let dir = Dir::new("hostile");
    let trail = dir.trail();
    let mut t = Trail::new();
    append(&trail, &t.record(session_record(EventName::SessionOpen, 12, "eve\x1b[2J\u{202e}\nevent=forged")));
    for json in [false, true] {
        let (shown, _) = follow(&trail, &Filter::default(), json, |_| true);
        assert_eq!(shown.lines().count(), 1, "{shown}");
        assert!(shown.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "ASCII only: {shown:?}");
    }
}

#[test]
fn earlier_files_are_read_once_and_the_last_one_followed() {
    let dir = Dir::new("earlier");
    let (old, trail) = (dir.0.join("trail.1"), dir.trail());
    let mut t = Trail::new();
    append(&old, &t.open(12, "alice"));
    append(&trail, &t.open(13, "bob"));
    let more = t.open(14, "carol");
    let mut out = Vec::new();
    let mut step = 0;
    follow_files(&[old.clone(), trail.clone()], &Filter::default(), true, &mut out, |_| {
        step += 1;
        if step == 1 {
            append(&trail, &more);
            append(&old, "an older file is not followed\n");
        }
        step == 2
    })
    .unwrap();
    let objects: Vec<serde_json::Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: Vec<(String, u64)> =
        objects.iter().map(|o| (o["file"].as_str().unwrap().to_string(), o["session"].as_u64().unwrap())).collect();
    let (old, trail) = (old.display().to_string(), trail.display().to_string());
    assert_eq!(seen, [(old, 12), (trail.clone(), 13), (trail, 14)]);
}

#[test]
fn the_follow_ends_with_an_error_when_the_output_is_gone() {
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let dir = Dir::new("closed");
    let trail = dir.trail();
    append(&trail, &Trail::new().open(12, "alice"));
    let error = follow_files(&[trail], &Filter::default(), false, &mut Closed, |_| panic!("no pause after a failed write")).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn the_users_kept_for_user_are_bounded() {
    let mut users = SessionUsers::default();
    let mut t = Trail::new();
    for session in 0..(SESSIONS_KEPT as u64 + 5000) {
        let line = t.open(session, "alice");
        let Line::Record(host, _, event) = read_line(0, 1, line.trim_end(), false, &mut MinuteCache::default(), SystemTime::now()) else {
            panic!("not a record: {line}")
        };
        assert!(users.is_users(host, session, &event, b"alice"));
        assert!(users.len() <= SESSIONS_KEPT);
    }
    assert_eq!(users.len(), SESSIONS_KEPT);
}

/// A record RELP delivers again after a broken link is printed once; a changed one is not
/// taken for a copy.
#[test]
fn a_record_delivered_twice_is_printed_once() {
    let dir = Dir::new("copies");
    let trail = dir.trail();
    let mut t = Trail::new();
    let open = t.open(12, "alice");
    let warning = t.record(session_record(EventName::IdleWarning, 12, "alice").text("limit", "idle"));
    append(&trail, &(open.clone() + &warning));
    let edited = warning.replacen("user=alice", "user=mallory", 1);
    let (shown, _) = follow(&trail, &Filter::default(), false, |step| {
        if step == 1 {
            append(&trail, &(open.clone() + &warning + &edited));
        }
        step == 2
    });
    let events: Vec<&str> = shown.lines().map(|l| l.split_whitespace().nth(2).unwrap()).collect();
    assert_eq!(events, ["session_open", "idle_warning", "idle_warning"], "{shown}");
    assert!(shown.lines().nth(2).unwrap().contains("user=mallory"), "{shown}");
}
