//! Tests of `audit show`: sessions in order with durations, filters, JSON output, and
//! hostile values kept off the terminal.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_protocol::audit::Record;
use vigil_protocol::events::Event;

use super::*;
use crate::chain::{ChainState, Encoding, KEY_BYTES, Key};
use crate::sample::{Layout, SAMPLE_EPOCH, session_record, syslog_line};

const T: u64 = SAMPLE_EPOCH;

/// A day's log: a daemon start, alice's session 12 (open, idle warning, reauth, end),
/// bob's session 13, a config reload, a module record about session 12.
fn day(encoding: Encoding, layout: Layout) -> String {
    let mut chain = ChainState { next_seq: 1, key: Key::from_bytes([9; KEY_BYTES]), last_mac: String::new() };
    let mut lines = Vec::new();
    let mut add = |secs: u64, record: Record| {
        let encoded = match encoding {
            Encoding::KeyValue => record.to_kv_line(),
            Encoding::Json => record.to_json_line(),
        };
        lines.push(syslog_line(layout, secs, 0, "host1", "vigild", 812, &chain.seal(&encoded, encoding)));
    };
    add(T - 10, Record::new(Event::DaemonStart).text("version", "0.1.0"));
    add(T, session_record(Event::SessionOpen, 12, "alice"));
    add(T + 60, session_record(Event::SessionOpen, 13, "bob"));
    add(T + 133, session_record(Event::IdleWarning, 12, "alice").text("limit", "idle").number("ends_in_s", 60));
    add(T + 150, Record::new(Event::ConfigReload).text("result", "ok"));
    add(T + 200, session_record(Event::ReauthGranted, 12, "alice").text("method", "password"));
    add(T + 950, session_record(Event::SessionEnd, 12, "alice").text("reason", "idle"));
    lines.push(syslog_line(
        layout,
        T + 951,
        0,
        "host1",
        "pam_vigil",
        4000,
        "event=daemon_unreachable call=close_session session=12 user=alice reason=timeout",
    ));
    lines.push(syslog_line(layout, T + 952, 0, "host1", "sshd", 4000, "pam_unix(sshd:session): session closed for user alice"));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn show(text: &str, filter: &Filter, json: bool) -> String {
    show_readers(vec![(PathBuf::from("auth.log"), text.as_bytes())], filter, json, UNIX_EPOCH + Duration::from_secs(T + 86_400)).unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_session_renders_in_order_with_durations() {
    for encoding in [Encoding::KeyValue, Encoding::Json] {
        let out = show(&day(encoding, Layout::HighPrecision), &Filter::default(), false);
        let block: Vec<&str> =
            out.split("\n\n").find(|b| b.starts_with("session 12 ")).unwrap_or_else(|| panic!("{out}")).lines().collect();
        let ts = |secs: u64| {
            let (y, mo, d, h, mi, s) = crate::sample::civil(secs);
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000000+00:00")
        };
        let expected = [
            "session 12 on host1: user=alice uid=1012 service=sshd tty=ssh rhost=203.0.113.7 ses=15".to_string(),
            format!("  opened {}", ts(T)),
            format!("  {}  +0s       session_open ruser=\"\" leader_pid=9012 policy=defaults parent=0", ts(T)),
            format!("  {}  +2m13s    idle_warning ends_in_s=60 limit=idle", ts(T + 133)),
            format!("  {}  +3m20s    reauth_granted method=password", ts(T + 200)),
            format!("  {}  +15m50s   session_end reason=idle", ts(T + 950)),
            format!("  {}  +15m51s   daemon_unreachable (pam_vigil, unauthenticated) call=close_session reason=timeout", ts(T + 951)),
            format!("  ended {} (session_end), lasted 15m50s", ts(T + 950)),
        ];
        // JSON records come back with their keys sorted; kv keeps the written order.
        let expected: Vec<String> = expected
            .iter()
            .map(|l| {
                if encoding == Encoding::KeyValue {
                    l.replace("ends_in_s=60 limit=idle", "limit=idle ends_in_s=60")
                } else {
                    l.replace(
                        "session_open ruser=\"\" leader_pid=9012 policy=defaults parent=0",
                        "session_open leader_pid=9012 parent=0 policy=defaults ruser=\"\"",
                    )
                }
            })
            .collect();
        assert_eq!(block, expected, "{out}");
        assert!(out.starts_with("daemon on host1:\n"), "{out}");
        assert!(out.contains("config_reload result=ok"), "{out}");
        assert!(out.contains("session 13 on host1: user=bob"), "{out}");
        assert!(out.contains("  still open at the end of these files\n"), "{out}");
        assert!(out.ends_with("2 sessions, 1 daemon block shown; 8 records in 9 lines (0 not syslog, 0 vigild/pam_vigil lines that are not records); 1 unauthenticated (no mac: pam_vigil, or vigild without the chain)\n"), "{out}");
    }
}

#[test]
fn traditional_timestamps_give_offsets_too() {
    let out = show(&day(Encoding::KeyValue, Layout::Traditional), &Filter::default(), false);
    assert!(out.contains("+2m13s    idle_warning"), "{out}");
    assert!(out.contains("(session_end), lasted 15m50s"), "{out}");
}

#[test]
fn filters() {
    let text = day(Encoding::KeyValue, Layout::HighPrecision);
    let out = show(&text, &Filter { user: Some("bob".into()), ..Filter::default() }, false);
    assert!(out.starts_with("session 13 on host1: user=bob") && !out.contains("alice") && !out.contains("daemon on"), "{out}");
    let out = show(&text, &Filter { session: Some(12), ..Filter::default() }, false);
    assert!(out.starts_with("session 12 on host1:") && !out.contains("session 13") && !out.contains("daemon on"), "{out}");
    let out = show(&text, &Filter { event: Some("idle_warning".into()), ..Filter::default() }, false);
    assert!(out.starts_with("session 12 on host1:"), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("00  +")).count(), 1, "only the warning: {out}");
    assert!(out.contains("idle_warning") && out.contains("lasted 15m50s") && !out.contains("session 13"), "{out}");
    let out = show(&text, &Filter { event: Some("config_reload".into()), ..Filter::default() }, false);
    assert!(out.starts_with("daemon on host1:\n") && out.contains("config_reload") && !out.contains("daemon_start"), "{out}");
    let out = show(&text, &Filter { since: Some(at(T + 100)), until: Some(at(T + 300)), ..Filter::default() }, false);
    assert!(out.contains("idle_warning") && out.contains("reauth_granted") && out.contains("config_reload"), "{out}");
    assert!(!out.contains(" session_open") && !out.contains(" session_end") && !out.contains("session 13"), "{out}");
    let out = show(&text, &Filter { since: Some(at(T + 2000)), ..Filter::default() }, false);
    assert!(out.starts_with("0 sessions, 0 daemon blocks shown"), "{out}");
    let out = show(&text, &Filter { user: Some("nobody".into()), ..Filter::default() }, true);
    assert_eq!(out, "");
}

#[test]
fn json_is_one_ascii_object_per_block() {
    for encoding in [Encoding::KeyValue, Encoding::Json] {
        let out = show(&day(encoding, Layout::Rfc5424), &Filter::default(), true);
        let objects: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
        assert_eq!(objects.len(), 3, "{out}");
        assert_eq!(objects[0]["daemon"], true);
        let s12 = objects.iter().find(|o| o["session"] == 12).unwrap();
        assert_eq!(s12["user"], "alice");
        assert_eq!(s12["duration_s"], 950.0);
        let events: Vec<(&str, f64)> =
            s12["events"].as_array().unwrap().iter().map(|e| (e["event"].as_str().unwrap(), e["offset_s"].as_f64().unwrap())).collect();
        assert_eq!(
            events,
            [
                ("session_open", 0.0),
                ("idle_warning", 133.0),
                ("reauth_granted", 200.0),
                ("session_end", 950.0),
                ("daemon_unreachable", 951.0)
            ]
        );
        assert_eq!(s12["events"][1]["fields"]["limit"], "idle");
        assert_eq!(s12["events"][1]["line"], 4);
        assert!(s12["events"][1]["fields"].get("mac").is_none());
    }
}

#[test]
fn hostile_values_never_reach_the_terminal_raw() {
    let user = "\u{1b}[31m\u{202e}root\u{7}";
    let mut lines =
        vec![syslog_line(Layout::Traditional, T, 0, "host1", "vigild", 1, &session_record(Event::SessionOpen, 5, user).to_kv_line())];
    lines.push(syslog_line(Layout::Traditional, T, 0, "host1", "vigild", 1, &session_record(Event::SessionEnd, 6, user).to_json_line()));
    lines.push("Nov 26 04:14:10 host1 vigild[1]: {\"event\":\"x\\u001b[2J\",\"session\":7,\"user\":\"\\u202e\"}".to_string());
    lines.push("Nov 26 04:14:10 host1 vigild[1]: {\"event\":\"x\",\"Bad-Key\\u001b\":1}".into());
    lines.push("Nov 26 04:14:10 ho\u{1b}st1 vigild[1]: event=x".into());
    let text = lines.join("\n");
    for json in [false, true] {
        let out = show(&text, &Filter::default(), json);
        assert!(out.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "{out:?}");
        if !json {
            assert!(out.contains(r#"user="\x1b[31m\xe2\x80\xaeroot\x07""#), "{out}");
            assert!(out.contains(r#"1 vigild/pam_vigil lines that are not records"#), "{out}");
        }
    }
    // A user filter matches the decoded value.
    let out = show(&text, &Filter { user: Some(user.into()), ..Filter::default() }, false);
    assert!(out.contains("session 5 ") && out.contains("session 6 "), "{out}");
}

#[test]
fn a_session_whose_open_is_in_an_earlier_file_uses_duration_s() {
    let lines = [
        syslog_line(
            Layout::HighPrecision,
            T + 100,
            0,
            "host1",
            "vigild",
            1,
            &session_record(Event::IdleWarning, 3, "carol").text("limit", "idle").to_kv_line(),
        ),
        syslog_line(
            Layout::HighPrecision,
            T + 200,
            0,
            "host1",
            "vigild",
            1,
            &session_record(Event::SessionEnd, 3, "carol").text("reason", "idle").number("duration_s", 4000).to_kv_line(),
        ),
    ];
    let out = show(&lines.join("\n"), &Filter::default(), false);
    assert!(out.contains("  opened before these files (first record "), "{out}");
    assert!(out.contains("+1m40s    session_end"), "offsets from the first record: {out}");
    assert!(out.contains("(session_end), lasted 1h06m40s"), "{out}");
    let out = show(&lines.join("\n"), &Filter::default(), true);
    assert!(out.contains("\"opened\":null") && out.contains("\"duration_s\":4000"), "{out}");
}

#[test]
fn durations() {
    assert_eq!(duration(Duration::from_secs(0)), "0s");
    assert_eq!(duration(Duration::from_secs(133)), "2m13s");
    assert_eq!(duration(Duration::from_secs(3733)), "1h02m13s");
    assert_eq!(duration(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5 * 60)), "3d04h05m");
    assert_eq!(signed_duration(at(100), at(95)), "-5s");
}

/// A local user's `logger -t pam_vigil` lines about alice's session 12: one before the
/// open claiming the session is root's, one claiming it ended, and one for a session
/// that does not exist.
fn forged(encoding: Encoding) -> String {
    let mut text = day(encoding, Layout::HighPrecision);
    let line = |secs: u64, message: &str| syslog_line(Layout::HighPrecision, secs, 0, "host1", "pam_vigil", 6666, message) + "\n";
    text.insert_str(0, &line(T - 5, "event=daemon_unreachable call=open_session session=12 user=root uid=0 fail=open"));
    text.push_str(&line(T + 300, "{\"event\":\"session_end\",\"session\":12,\"reason\":\"idle\"}"));
    text.push_str(&line(T + 301, "event=session_open session=99 user=root"));
    text
}

#[test]
fn module_records_are_labelled_and_never_shape_a_session() {
    for encoding in [Encoding::KeyValue, Encoding::Json] {
        let out = show(&forged(encoding), &Filter { session: Some(12), ..Filter::default() }, false);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("session 12 on host1: user=alice uid=1012 "), "vigild's records give the header: {out}");
        assert!(!lines[0].contains("unauthenticated"), "{out}");
        let forged_open = lines.iter().find(|l| l.contains("call=open_session")).unwrap_or_else(|| panic!("{out}"));
        assert!(
            forged_open.contains(" daemon_unreachable (pam_vigil, unauthenticated) call=open_session user=root uid=0 fail=open"),
            "{forged_open}"
        );
        let forged_end = lines.iter().find(|l| l.contains("  +5m00s ")).unwrap_or_else(|| panic!("{out}"));
        assert!(forged_end.ends_with(" session_end (pam_vigil, unauthenticated) reason=idle"), "{forged_end}");
        assert!(out.contains("(session_end), lasted 15m50s"), "the end is vigild's: {out}");
        let sealed = lines.iter().filter(|l| l.contains(" +") && !l.contains("unauthenticated")).count();
        assert_eq!(sealed, 4, "vigild's own records are not labelled: {out}");

        let out = show(&forged(encoding), &Filter { session: Some(99), ..Filter::default() }, false);
        assert!(out.starts_with("session 99 on host1: user=root (only unauthenticated records)\n  opened before these files"), "{out}");
        assert!(out.contains("  still open at the end of these files"), "{out}");
        assert!(out.ends_with("; 4 unauthenticated (no mac: pam_vigil, or vigild without the chain)\n"), "{out}");
    }
}

#[test]
fn json_says_which_records_cannot_be_authenticated() {
    let out = show(&forged(Encoding::KeyValue), &Filter { session: Some(12), ..Filter::default() }, true);
    let block: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(block["user"], "alice");
    assert_eq!(block["ended"], block["events"][4]["time"], "{block}");
    let flags: Vec<(&str, &str, serde_json::Value)> = block["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["tag"].as_str().unwrap(), e["authenticated"].clone()))
        .collect();
    let (no, unknown) = (serde_json::Value::Bool(false), serde_json::Value::Null);
    assert_eq!(
        flags,
        [
            ("daemon_unreachable", "pam_vigil", no.clone()),
            ("session_open", "vigild", unknown.clone()),
            ("idle_warning", "vigild", unknown.clone()),
            ("reauth_granted", "vigild", unknown.clone()),
            ("session_end", "vigild", unknown),
            ("daemon_unreachable", "pam_vigil", no.clone()),
            ("session_end", "pam_vigil", no),
        ]
    );
}

#[test]
fn vigild_records_without_a_mac_are_unauthenticated_too() {
    let lines = [
        syslog_line(Layout::HighPrecision, T, 0, "host1", "vigild", 1, &session_record(Event::SessionOpen, 4, "dave").to_kv_line()),
        syslog_line(Layout::HighPrecision, T + 5, 0, "host1", "vigild", 1, &session_record(Event::SessionClose, 4, "dave").to_json_line()),
    ];
    let out = show(&lines.join("\n"), &Filter::default(), false);
    assert!(
        out.starts_with(
            "session 4 on host1: user=dave uid=1004 service=sshd tty=ssh rhost=203.0.113.7 ses=7 (only unauthenticated records)\n"
        ),
        "{out}"
    );
    assert!(out.contains(" session_open (no mac, unauthenticated) ruser="), "{out}");
    assert!(out.contains("(session_close), lasted 5s"), "vigild's records still open and end a session: {out}");
    let out = show(&lines.join("\n"), &Filter::default(), true);
    assert_eq!(out.matches("\"authenticated\":false").count(), 2, "{out}");
}
