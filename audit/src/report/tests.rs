//! Tests of `audit report`: counts per day and user, chain state per host, and numbers
//! that agree with what `audit show` lists.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_protocol::audit::Record;
use vigil_protocol::events::{CallRefusal, Event};

use super::unusual::Unusual;
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
    report_with(text, filter, Thresholds::default())
}

fn report_with(text: &str, filter: &Filter, thresholds: Thresholds) -> Report {
    report_readers(vec![(PathBuf::from("auth.log"), text.as_bytes())], filter, thresholds, None, now()).unwrap()
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

/// The report of `text` with `verify`'s result under `key` (`--key`), and that result.
fn report_verified(text: &[u8], key: KeyFile) -> (Report, verify::Report) {
    let verified = verify::verify_readers(vec![(PathBuf::from("auth.log"), text)], &[key]).unwrap();
    let report =
        report_readers(vec![(PathBuf::from("auth.log"), text)], &Filter::default(), Thresholds::default(), Some(&verified), now()).unwrap();
    (report, verified)
}

#[test]
fn verified_with_the_key() {
    let key = sample_key(1);
    let mut file = Vec::new();
    write_sample_log(&mut file, 200, Layout::Traditional, Encoding::KeyValue, &key).unwrap();
    let (r, _) = report_verified(&file, key);
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

/// Hand-written records of the unusual rules' tests: sealed `vigild` lines on host1
/// (so that only the lines meant to be unauthenticated are), in file order.
struct Lines {
    chain: ChainState,
    lines: Vec<String>,
}

impl Lines {
    fn new() -> Lines {
        Lines { chain: ChainState { next_seq: 1, key: Key::from_bytes([9; KEY_BYTES]), last_mac: String::new() }, lines: Vec::new() }
    }

    /// A sealed vigild record at T + `secs`; its line number (1-based).
    fn vigild(&mut self, secs: u64, kv: &str) -> usize {
        let sealed = self.chain.seal(kv, Encoding::KeyValue);
        self.raw(secs, "vigild", &sealed)
    }

    fn record(&mut self, secs: u64, record: Record) -> usize {
        self.vigild(secs, &record.to_kv_line())
    }

    /// A line as given (a forged one, an unsealed one).
    fn raw(&mut self, secs: u64, tag: &str, message: &str) -> usize {
        self.lines.push(syslog_line(Layout::HighPrecision, T + secs, 0, "host1", tag, 812, message));
        self.lines.len()
    }

    fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    fn unusual(&self, filter: &Filter) -> Unusual {
        report(&self.text(), filter).unusual
    }

    fn unusual_with(&self, thresholds: Thresholds) -> Unusual {
        report_with(&self.text(), &Filter::default(), thresholds).unusual
    }
}

fn open_from(session: u64, user: &str, rhost: &str) -> Record {
    Record::new(Event::SessionOpen).number("session", session).text("user", user).text("service", "sshd").text("rhost", rhost)
}

fn of_rule<'a>(u: &'a Unusual, rule: &str) -> Vec<&'a unusual::Item> {
    u.items.iter().filter(|i| i.rule == rule).collect()
}

fn at(line: usize) -> String {
    format!("auth.log:{line}")
}

#[test]
fn unusual_new_rhost_is_a_users_first_login_from_a_host_after_others() {
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    l.record(60, open_from(2, "alice", "10.0.0.1"));
    let new = l.record(120, open_from(3, "alice", "10.0.0.2"));
    l.record(180, open_from(4, "bob", "10.0.0.2"));
    let u = l.unusual(&Filter::default());
    let items = of_rule(&u, "new_rhost");
    assert_eq!(items.len(), 1, "{u:?}");
    let item = items[0];
    assert_eq!((item.session, item.user.as_deref(), item.host.as_str()), (Some(3), Some("alice"), "host1"));
    assert_eq!(item.evidence, vec![at(new)]);
    assert!(item.detail.contains("rhost=10.0.0.2"), "{}", item.detail);
    assert_eq!(u.items.len(), 1, "bob's first login sets what is known: {u:?}");
    assert_eq!(u.counts.get("new_rhost"), Some(&1));
    let text = report(&l.text(), &Filter::default()).render();
    assert!(text.contains("new_rhost: host host1 session 3 user alice") && text.contains(&format!("[{}]", at(new))), "{text}");
}

#[test]
fn unusual_hostile_rhost_and_user_names_forge_no_item() {
    let mut l = Lines::new();
    l.record(0, open_from(1, "bob", "10.0.0.1"));
    // A remote host made to look like more fields, a new item line and a user.
    let hostile = l.record(60, open_from(2, "bob", "10.0.0.1 user=root\n  new_rhost: host host1 session 9 user root: x [auth.log:1]"));
    // A user named like another user's fields.
    l.record(120, open_from(3, "eve user=alice rhost=10.0.0.1", "10.0.0.1"));
    l.record(180, open_from(4, "eve user=alice rhost=10.0.0.1", "10.0.0.1"));
    // A module line claiming alice logged in from somewhere new: anyone's.
    let forged = l.raw(200, "pam_vigil", "event=session_open session=5 user=alice rhost=10.6.6.6");
    l.record(240, open_from(6, "alice", "10.0.0.1"));
    let u = l.unusual(&Filter::default());
    let items = of_rule(&u, "new_rhost");
    assert_eq!(items.len(), 1, "only bob's second host: {u:?}");
    assert_eq!((items[0].session, items[0].user.as_deref()), (Some(2), Some("bob")));
    assert_eq!(items[0].evidence, vec![at(hostile)]);
    assert!(!items[0].detail.contains('\n'), "{}", items[0].detail);
    let unauth = of_rule(&u, "unauthenticated");
    assert_eq!(unauth.len(), 1, "{u:?}");
    assert_eq!(unauth[0].evidence, vec![at(forged)]);
    assert!(
        u.items.iter().all(|i| i.user.as_deref() != Some("root") && i.user.as_deref() != Some("alice") || i.rule == "unauthenticated"),
        "{u:?}"
    );
    let text = report(&l.text(), &Filter::default()).render();
    let section = text.split("\nunusual").nth(1).unwrap();
    let item_lines: Vec<&str> = section.lines().filter(|line| line.starts_with("  new_rhost")).collect();
    assert_eq!(item_lines.len(), 1, "one line per item, values escaped:\n{text}");
    assert!(item_lines[0].contains("user bob") && item_lines[0].contains("\\n"), "{text}");
    let json = serde_json::to_value(&u).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 2, "{json}");
}

#[test]
fn unusual_new_hour_needs_seven_days_of_the_users_logins() {
    let mut l = Lines::new();
    // carol: 09:00 every day for 8 days, then at 03:00.
    for day in 0..8 {
        l.record(day * 86_400 + 5 * 3600, open_from(10 + day, "carol", "10.0.0.1"));
    }
    let odd = l.record(8 * 86_400 + 23 * 3600, open_from(30, "carol", "10.0.0.1"));
    // dave: two days of logins, then a new hour: too little history.
    l.record(5 * 3600, open_from(40, "dave", "10.0.0.1"));
    l.record(2 * 86_400 + 23 * 3600, open_from(41, "dave", "10.0.0.1"));
    // carol again at an hour now seen.
    l.record(9 * 86_400 + 23 * 3600, open_from(31, "carol", "10.0.0.1"));
    let u = l.unusual(&Filter::default());
    let items = of_rule(&u, "new_hour");
    assert_eq!(items.len(), 1, "{u:?}");
    assert_eq!((items[0].session, items[0].user.as_deref()), (Some(30), Some("carol")));
    assert_eq!(items[0].evidence, vec![at(odd)]);
}

#[test]
fn unusual_reauth_failures_three_in_ten_minutes_of_one_session() {
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    l.record(0, open_from(2, "bob", "10.0.0.1"));
    let failed = |s: u64, u: &str| session_record(Event::ReauthFailed, s, u).text("reauth_service", "sudo");
    let a = l.record(10, failed(1, "alice"));
    let b = l.record(200, failed(1, "alice"));
    // bob's failures are 25 minutes apart in all: never 3 in 10 minutes.
    l.record(300, failed(2, "bob"));
    let c = l.record(500, failed(1, "alice"));
    l.record(900, failed(2, "bob"));
    l.record(1800, failed(2, "bob"));
    // Two more of alice's: not a second burst.
    l.record(600, failed(1, "alice"));
    l.record(610, failed(1, "alice"));
    let u = l.unusual(&Filter::default());
    let items = of_rule(&u, "reauth_failures");
    assert_eq!(items.len(), 1, "{u:?}");
    assert_eq!((items[0].session, items[0].user.as_deref()), (Some(1), Some("alice")));
    assert_eq!(items[0].evidence, vec![at(a), at(b), at(c)]);
    assert!(items[0].detail.contains("reauth_service=sudo"), "{}", items[0].detail);
}

#[test]
fn unusual_activity_suspect_refused_calls_and_refused_logins_each_an_item() {
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    let suspect = l.record(
        10,
        session_record(Event::ActivitySuspect, 1, "alice")
            .text("source", "tty_read")
            .text("reason", "periodic")
            .text("suspect_tty", "pts/4"),
    );
    let refused = l.record(
        20,
        Record::new(Event::CallRefused).text("method", "TerminateSession").number("uid", 1000).text("reason", CallRefusal::RootOnly),
    );
    let locked = l.record(
        25,
        Record::new(Event::LoginRefused)
            .text("reason", "locked")
            .text("user", "bob")
            .number("uid", 1001)
            .text("service", "sshd")
            .text("rhost", "203.0.113.9")
            .text("locked_by", "root"),
    );
    // Forged by anyone: no call_refused item, an unauthenticated one.
    l.raw(30, "pam_vigil", "event=call_refused method=Lock uid=0 reason=root_only");
    let u = l.unusual(&Filter::default());
    let lr = of_rule(&u, "login_refused");
    assert_eq!(lr.len(), 1, "{u:?}");
    assert_eq!((lr[0].user.as_deref(), lr[0].evidence.clone()), (Some("bob"), vec![at(locked)]));
    assert!(lr[0].detail.contains("service=sshd") && lr[0].detail.contains("locked_by=root"), "{}", lr[0].detail);
    let s = of_rule(&u, "activity_suspect");
    assert_eq!(s.len(), 1, "{u:?}");
    assert_eq!((s[0].session, s[0].user.as_deref(), s[0].evidence.clone()), (Some(1), Some("alice"), vec![at(suspect)]));
    assert!(s[0].detail.contains("reason=periodic"), "{}", s[0].detail);
    let r = of_rule(&u, "call_refused");
    assert_eq!(r.len(), 1, "{u:?}");
    assert_eq!(r[0].evidence, vec![at(refused)]);
    assert!(r[0].detail.contains("method=TerminateSession") && r[0].detail.contains("uid=1000"), "{}", r[0].detail);
    assert_eq!(of_rule(&u, "unauthenticated").len(), 1);
}

#[test]
fn unusual_unauthenticated_lines_and_with_the_key_the_chains_failures() {
    let key = Key::from_bytes([9; KEY_BYTES]);
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    let module = l.raw(5, "pam_vigil", "event=daemon_unreachable session=1 user=alice");
    let unsealed = l.raw(6, "vigild", "event=session_end session=1 user=alice reason=idle");
    // Sealed, then left out: a gap.
    let _ = l.chain.seal("event=seal", Encoding::KeyValue);
    let after_gap = l.record(10, Record::new(Event::Seal));
    let u = l.unusual(&Filter::default());
    let items = of_rule(&u, "unauthenticated");
    assert_eq!(items.iter().map(|i| i.evidence.clone()).collect::<Vec<_>>(), vec![vec![at(module)], vec![at(unsealed)]], "{u:?}");
    assert!(of_rule(&u, "chain").is_empty(), "no key, no chain items");

    let text = l.text();
    let key_file = KeyFile { key, start_seq: 1 };
    let verified = verify::verify_readers(vec![(PathBuf::from("auth.log"), text.as_bytes())], std::slice::from_ref(&key_file)).unwrap();
    let r = report_readers(
        vec![(PathBuf::from("auth.log"), text.as_bytes())],
        &Filter::default(),
        Thresholds::default(),
        Some(&verified),
        now(),
    )
    .unwrap();
    let chain = of_rule(&r.unusual, "chain");
    assert!(chain.iter().any(|i| i.detail.starts_with("missing seqs") && i.evidence.first() == Some(&at(after_gap))), "{:?}", r.unusual);
    assert_eq!(of_rule(&r.unusual, "unauthenticated").len(), 2, "the unsealed line once, not again as a chain item");
    assert!(chain.iter().all(|i| !i.detail.starts_with("unsealed")));
}

#[test]
fn unusual_mostly_inhibited_users_and_long_sessions() {
    let mut l = Lines::new();
    // alice: 2 h session, inhibited 90 min of it.
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    let inhibit = l.record(600, session_record(Event::InhibitStart, 1, "alice").text("why", "build"));
    l.record(6000, session_record(Event::InhibitEnd, 1, "alice").text("reason", "cancelled"));
    l.record(7200, session_record(Event::SessionEnd, 1, "alice").text("reason", "idle"));
    // bob: 2 h, inhibited 30 min.
    l.record(0, open_from(2, "bob", "10.0.0.1"));
    l.record(600, session_record(Event::InhibitStart, 2, "bob").text("why", "build"));
    l.record(2400, session_record(Event::InhibitEnd, 2, "bob").text("reason", "expired"));
    l.record(7200, session_record(Event::SessionEnd, 2, "bob").text("reason", "idle"));
    // carol: a session of 25 h, ended; dan: one still open 30 h after it started.
    let carol_open = l.record(0, open_from(3, "carol", "10.0.0.1"));
    let dan_open = l.record(100, open_from(4, "dan", "10.0.0.1"));
    let carol_end = l.record(25 * 3600, session_record(Event::SessionEnd, 3, "carol").text("reason", "max_age"));
    l.record(23 * 3600, open_from(5, "erin", "10.0.0.1"));
    l.record(23 * 3600 + 60, session_record(Event::SessionClose, 5, "erin").text("reason", "closed"));
    l.record(30 * 3600 + 100, Record::new(Event::Seal));
    let u = l.unusual(&Filter::default());
    let inhibited = of_rule(&u, "mostly_inhibited");
    assert_eq!(inhibited.len(), 1, "{u:?}");
    assert_eq!((inhibited[0].user.as_deref(), inhibited[0].session), (Some("alice"), None));
    assert_eq!(inhibited[0].evidence, vec![at(inhibit)]);
    let long = of_rule(&u, "long_session");
    assert_eq!(long.len(), 2, "{u:?}");
    assert_eq!((long[0].session, long[0].evidence.clone()), (Some(3), vec![at(carol_open), at(carol_end)]));
    assert_eq!((long[1].session, long[1].evidence.clone()), (Some(4), vec![at(dan_open)]));
    assert!(long[1].detail.contains("still open"), "{}", long[1].detail);
}

#[test]
fn unusual_items_follow_the_user_and_time_filters() {
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    l.record(10, open_from(2, "alice", "10.0.0.2"));
    l.record(20, open_from(3, "bob", "10.0.0.1"));
    l.record(30, open_from(4, "bob", "10.0.0.3"));
    let bobs = l.unusual(&Filter { user: Some("bob".into()), ..Filter::default() });
    assert_eq!(bobs.items.iter().map(|i| i.session).collect::<Vec<_>>(), vec![Some(4)], "{bobs:?}");
    let late = l.unusual(&Filter { since: Some(UNIX_EPOCH + Duration::from_secs(T + 25)), ..Filter::default() });
    assert_eq!(late.items.iter().map(|i| i.session).collect::<Vec<_>>(), vec![Some(4)], "history before --since still counts: {late:?}");
}

fn sessions_of(u: &Unusual, rule: &str) -> Vec<Option<u64>> {
    of_rule(u, rule).iter().map(|i| i.session).collect()
}

#[test]
fn unusual_thresholds_default_to_the_documented_ones_and_the_report_says_which() {
    let d = Thresholds::default();
    assert_eq!(
        (d.new_hour_after, d.reauth_failures, d.reauth_window, d.long_session),
        (Duration::from_secs(7 * 86_400), 3, Duration::from_secs(600), Duration::from_secs(86_400))
    );
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    let r = report(&l.text(), &Filter::default());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["unusual"]["thresholds"],
        serde_json::json!({"new_hour_after_s": 604_800, "reauth_failures": 3, "reauth_window_s": 600, "long_session_s": 86_400}),
        "{json}"
    );
    let text = r.render();
    assert!(
        text.contains("\nunusual (new_hour after 7days of a user's logins, reauth_failures 3 within 10m, long_session over 1day"),
        "{text}"
    );
    let given = Thresholds {
        new_hour_after: Duration::from_secs(2 * 86_400),
        reauth_failures: 5,
        reauth_window: Duration::from_secs(90),
        long_session: Duration::from_secs(1),
    };
    let r = report_with(&l.text(), &Filter::default(), given);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["unusual"]["thresholds"],
        serde_json::json!({"new_hour_after_s": 172_800, "reauth_failures": 5, "reauth_window_s": 90, "long_session_s": 1}),
        "{json}"
    );
    let text = r.render();
    assert!(text.contains("new_hour after 2days of a user's logins, reauth_failures 5 within 1m30s, long_session over 1s"), "{text}");
}

#[test]
fn unusual_new_hour_after_lowered_finds_more_and_raised_finds_none() {
    let mut l = Lines::new();
    for day in 0..8 {
        l.record(day * 86_400 + 5 * 3600, open_from(10 + day, "carol", "10.0.0.1"));
    }
    l.record(8 * 86_400 + 23 * 3600, open_from(30, "carol", "10.0.0.1"));
    l.record(5 * 3600, open_from(40, "dave", "10.0.0.1"));
    let dave = l.record(2 * 86_400 + 23 * 3600, open_from(41, "dave", "10.0.0.1"));
    l.record(9 * 86_400 + 23 * 3600, open_from(31, "carol", "10.0.0.1"));
    let with = |secs: u64| l.unusual_with(Thresholds { new_hour_after: Duration::from_secs(secs), ..Thresholds::default() });
    assert_eq!(sessions_of(&with(7 * 86_400), "new_hour"), vec![Some(30)]);
    let lowered = with(2 * 86_400);
    assert_eq!(sessions_of(&lowered, "new_hour"), vec![Some(30), Some(41)], "dave's 2 days now count: {lowered:?}");
    assert_eq!(of_rule(&lowered, "new_hour")[1].evidence, vec![at(dave)]);
    // 0s: any login at a new hour, but never a user's first (it only sets what is known).
    assert_eq!(sessions_of(&with(0), "new_hour"), vec![Some(30), Some(41)]);
    assert_eq!(sessions_of(&with(9 * 86_400), "new_hour"), Vec::<Option<u64>>::new(), "carol's 8 days are too few");
}

#[test]
fn unusual_reauth_failures_and_window_lowered_and_raised() {
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    let failed = || session_record(Event::ReauthFailed, 1, "alice").text("reauth_service", "sudo");
    // Three failures over 15 minutes: not 3 within 10.
    let a = l.record(0, failed());
    let b = l.record(300, failed());
    let c = l.record(900, failed());
    let with = |failures: usize, window: u64| {
        l.unusual_with(Thresholds { reauth_failures: failures, reauth_window: Duration::from_secs(window), ..Thresholds::default() })
    };
    assert!(of_rule(&with(3, 600), "reauth_failures").is_empty());
    let wider = with(3, 900);
    let items = of_rule(&wider, "reauth_failures");
    assert_eq!(items.len(), 1, "{wider:?}");
    assert_eq!(items[0].evidence, vec![at(a), at(b), at(c)]);
    assert!(items[0].detail.contains("within 15m"), "{}", items[0].detail);
    assert!(of_rule(&with(4, 900), "reauth_failures").is_empty(), "4 asked, 3 found");
    let two = with(2, 600);
    assert_eq!(of_rule(&two, "reauth_failures").iter().map(|i| i.evidence.clone()).collect::<Vec<_>>(), vec![vec![at(a), at(b)]]);
    assert_eq!(of_rule(&with(1, 600), "reauth_failures").len(), 3, "1: every failure");
    assert_eq!(of_rule(&with(0, 600), "reauth_failures").len(), 3, "0 is held to 1");

    // Over MAX_EVIDENCE failures asked: all counted, the first lines the evidence.
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    let lines: Vec<usize> = (0..12).map(|i| l.record(10 + i, failed())).collect();
    let many = l.unusual_with(Thresholds { reauth_failures: 12, ..Thresholds::default() });
    let items = of_rule(&many, "reauth_failures");
    assert_eq!(items.len(), 1, "{many:?}");
    assert!(items[0].detail.starts_with("12 failed re-authentication(s) within 10m"), "{}", items[0].detail);
    assert_eq!(items[0].evidence, lines[..unusual::MAX_EVIDENCE].iter().map(|&n| at(n)).collect::<Vec<_>>());
    assert!(of_rule(&l.unusual_with(Thresholds { reauth_failures: 13, ..Thresholds::default() }), "reauth_failures").is_empty());
}

#[test]
fn unusual_long_session_lowered_and_raised() {
    let mut l = Lines::new();
    l.record(0, open_from(1, "alice", "10.0.0.1"));
    l.record(60, session_record(Event::SessionClose, 1, "alice").text("reason", "closed"));
    l.record(0, open_from(2, "bob", "10.0.0.1"));
    l.record(7200, session_record(Event::SessionEnd, 2, "bob").text("reason", "idle"));
    l.record(0, open_from(3, "carol", "10.0.0.1"));
    l.record(25 * 3600, Record::new(Event::Seal));
    let with = |secs: u64| l.unusual_with(Thresholds { long_session: Duration::from_secs(secs), ..Thresholds::default() });
    assert_eq!(sessions_of(&with(86_400), "long_session"), vec![Some(3)]);
    let lowered = with(30);
    assert_eq!(sessions_of(&lowered, "long_session"), vec![Some(1), Some(2), Some(3)], "{lowered:?}");
    let alice = of_rule(&lowered, "long_session")[0];
    assert!(alice.detail.contains("ended after 1m (more than 30s)"), "{}", alice.detail);
    assert_eq!(sessions_of(&with(26 * 3600), "long_session"), Vec::<Option<u64>>::new());
}

mod duplicates;
