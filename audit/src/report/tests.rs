//! Tests of `audit report`: counts per day and user, chain state per host, and numbers
//! that agree with what `audit show` lists.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_protocol::audit::Record;
use vigil_protocol::events::{CallRefusal, Event};

use super::*;
use crate::chain::{ChainState, Encoding, KEY_BYTES, Key};
use crate::sample::{Layout, SAMPLE_EPOCH, sample_key, session_record, syslog_line, write_sample_log};
use crate::timeline::show_readers;

const T: u64 = SAMPLE_EPOCH;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T + 3 * 86_400)
}

/// Two days on host1 (alice and bob), a forged module line, an `sshd` line, and a
/// gap of two seqs (records sealed, then left out of the file).
fn trail() -> String {
    let mut chain = ChainState { next_seq: 1, key: Key::from_bytes([9; KEY_BYTES]), last_mac: String::new() };
    let mut lines = Vec::new();
    let mut add = |secs: u64, record: Record, keep: bool| {
        let sealed = chain.seal(&record.to_kv_line(), Encoding::KeyValue);
        if keep {
            lines.push(syslog_line(Layout::HighPrecision, secs, 0, "host1", "vigild", 812, &sealed));
        }
    };
    add(T - 10, Record::new(Event::DaemonStart).text("version", "0.1.0"), true);
    add(T, session_record(Event::SessionOpen, 12, "alice"), true);
    add(
        T + 5,
        session_record(Event::InhibitStart, 12, "alice").text("why", "db \"migration\"\nevent=x").text("until", "2026-11-26T06:14:15Z"),
        true,
    );
    add(T + 60, session_record(Event::ReauthRequired, 12, "alice").text("reason", "none"), true);
    add(T + 61, session_record(Event::ReauthGranted, 12, "alice").number("proof_age_s", 1), false);
    add(T + 62, session_record(Event::ReauthFailed, 12, "alice"), false);
    add(T + 950, session_record(Event::SessionEnd, 12, "alice").text("reason", "idle"), true);
    add(T + 1000, Record::new(Event::CallRefused).text("method", "Reload").number("uid", 1000).text("reason", CallRefusal::RootOnly), true);
    add(T + 86_400, session_record(Event::SessionOpen, 13, "bob"), true);
    add(T + 86_400 + 3600, session_record(Event::SessionEnd, 13, "bob").text("reason", "max_age"), true);
    add(T + 86_400 + 3700, session_record(Event::SessionOpen, 14, "bob"), true);
    add(T + 86_400 + 7300, session_record(Event::SessionEnd, 14, "bob").text("reason", "idle"), true);
    lines.push(syslog_line(
        Layout::HighPrecision,
        T + 20,
        0,
        "host1",
        "pam_vigil",
        4000,
        "event=session_end session=12 user=alice reason=idle",
    ));
    lines.push(syslog_line(Layout::HighPrecision, T + 21, 0, "host1", "sshd", 4000, "Accepted publickey for alice"));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn report(text: &str, filter: &Filter) -> Report {
    report_readers(vec![(PathBuf::from("auth.log"), text.as_bytes())], filter, None, now()).unwrap()
}

/// What `audit show --json --event NAME` lists, counted the report's way: vigild's
/// events, with the given reason.
fn shown(text: &str, filter: &Filter, name: &str, reason: Option<&str>) -> u64 {
    let filter = Filter { event: Some(name.to_owned()), ..filter.clone() };
    let out = show_readers(vec![(PathBuf::from("auth.log"), text.as_bytes())], &filter, true, now()).unwrap();
    let mut n = 0;
    for line in out.lines() {
        let block: serde_json::Value = serde_json::from_str(line).unwrap();
        for event in block["events"].as_array().unwrap() {
            let reason_ok = reason.is_none_or(|r| event["fields"]["reason"] == r);
            if event["tag"] == "vigild" && reason_ok {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn counts_per_day_and_user() {
    let r = report(&trail(), &Filter::default());
    let row = |day: &str, user: &str| {
        r.days.iter().find(|d| d.day == day && d.user == user).map(|d| d.counts).unwrap_or_else(|| panic!("{day} {user}: {r:?}"))
    };
    let alice = row("2026-11-26", "alice");
    assert_eq!((alice.logins, alice.idle_ends, alice.reauth_asked, alice.inhibitors), (1, 1, 1, 1));
    assert_eq!((alice.reauth_granted, alice.reauth_failed), (0, 0), "not in the file");
    let bob = row("2026-11-27", "bob");
    assert_eq!((bob.logins, bob.idle_ends, bob.max_age_ends), (2, 1, 1));
    assert_eq!(row("2026-11-26", "-").refused, 1);
    assert_eq!(r.total.logins, 3);
    assert_eq!(r.total.idle_ends, 2, "the forged pam_vigil session_end does not count");
    assert_eq!(r.idle_ends_by_hour[4] + r.idle_ends_by_hour[6], 2, "{:?}", r.idle_ends_by_hour);
}

#[test]
fn chain_state_per_host() {
    let r = report(&trail(), &Filter::default());
    assert_eq!(r.hosts.len(), 1);
    let h = &r.hosts[0];
    assert_eq!((h.host.as_str(), h.records, h.missing_seqs, h.unauthenticated), ("host1", 10, 2, 1));
    assert_eq!(h.verified, None);
}

#[test]
fn numbers_equal_what_show_lists() {
    let text = trail();
    let filters = [
        Filter::default(),
        Filter { since: Some(UNIX_EPOCH + Duration::from_secs(T + 86_000)), ..Filter::default() },
        Filter { until: Some(UNIX_EPOCH + Duration::from_secs(T + 900)), ..Filter::default() },
    ];
    for filter in filters {
        let r = report(&text, &filter);
        let got = r.total.values();
        for (i, (_, name, reason)) in COLUMNS.iter().enumerate() {
            assert_eq!(got[i], shown(&text, &filter, name.as_str(), reason.map(EndReason::as_str)), "{name} {reason:?} {filter:?}");
        }
        let by_day: u64 = r.days.iter().map(|d| d.counts.values().iter().sum::<u64>()).sum();
        assert_eq!(by_day, got.iter().sum::<u64>());
    }
}

#[test]
fn verified_with_the_key() {
    let key = sample_key(1);
    let mut file = Vec::new();
    write_sample_log(&mut file, 200, Layout::Traditional, Encoding::KeyValue, &key).unwrap();
    let verified = verify::verify_readers(vec![(PathBuf::from("auth.log"), file.as_slice())], std::slice::from_ref(&key)).unwrap();
    let r = report_readers(vec![(PathBuf::from("auth.log"), file.as_slice())], &Filter::default(), Some(&verified), now()).unwrap();
    let v = r.hosts[0].verified.clone().unwrap();
    assert_eq!((v.failures, v.missing_seqs, v.ranges), (0, 0, 1));
    assert_eq!(v.authentic, r.hosts[0].records);
    let text = r.render();
    assert!(text.contains("verified with the keys given: OK"), "{text}");
}

#[test]
fn hostile_values_stay_escaped_in_text_and_json() {
    let mut chain = ChainState { next_seq: 1, key: Key::from_bytes([9; KEY_BYTES]), last_mac: String::new() };
    let record = session_record(Event::SessionOpen, 1, "x\u{1b}[2J\nuser=root");
    let line = syslog_line(Layout::HighPrecision, T, 0, "host1", "vigild", 1, &chain.seal(&record.to_kv_line(), Encoding::KeyValue));
    let r = report(&format!("{line}\n"), &Filter::default());
    let text = r.render();
    assert!(!text.contains('\u{1b}') && text.contains("\"x\\x1b[2J\\nuser=root\""), "{text}");
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains('\u{1b}'));
}
