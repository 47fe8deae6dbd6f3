//! End-to-end tests of the audit trail, with a real rsyslogd writing the file that is then
//! read back: timelines (`vigilctl audit show`), tampering found by `vigilctl audit
//! verify` at the right line, hostile strings that cannot forge a field or a line (both
//! encodings), the spool while rsyslogd is stopped, and forwarding to a second rsyslogd
//! over TCP.
//!
//! Needs root and the release build of the workspace (`cargo build --release`): see
//! tests/README.md. Each test skips (with a note) when not run as root.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use vigil_e2e::process::{describe_output, run_bounded};
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::{Harness, LogLine, PamHostRun, PamStack, RsyslogOpts, VigildOpts, paths, require_root, wait_for};

const LOG_WAIT: Duration = Duration::from_secs(10);
const VIGILCTL_TIMEOUT: Duration = Duration::from_secs(60);
const TTY: &str = "pts/9";
const RHOST: &str = "203.0.113.7";
/// Longest value a record carries (`vigil_protocol::audit::MAX_VALUE_BYTES`).
const MAX_VALUE: usize = 256;
/// Longest string vigild accepts from a peer (`vigil_protocol::MAX_FIELD_BYTES`).
const MAX_FIELD: usize = 1024;

fn harness() -> Harness {
    let h = Harness::with_syslog();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    h
}

/// `vigil.toml` with `[audit] format = FORMAT` and the chain on.
fn config(format: &str) -> String {
    format!("[defaults]\n\n[audit]\nformat = \"{format}\"\nchain = true\n")
}

fn config_with(format: &str, extra: &str) -> String {
    format!("{}{extra}", config(format))
}

/// The starting key vigild wrote at its first start.
fn key_file(h: &Harness) -> PathBuf {
    h.vigild().state_dir().join("audit").join("audit-initial.key")
}

fn spool_file(h: &Harness) -> PathBuf {
    h.vigild().state_dir().join("audit").join("audit-spool")
}

/// `vigilctl ARGS` without a daemon (audit verify, audit show).
fn vigilctl(args: &[&OsStr]) -> Output {
    vigil_e2e::conformance::vigilctl_ran(args);
    let mut cmd = Command::new(paths::vigilctl_bin());
    cmd.args(args);
    run_bounded(&mut cmd, VIGILCTL_TIMEOUT, "vigilctl")
}

/// `vigilctl audit verify FILE --key KEY`: (exit status success, stdout).
fn verify(file: &Path, key: &Path) -> (bool, String, Output) {
    let out = vigilctl(&["audit".as_ref(), "verify".as_ref(), file.as_os_str(), "--key".as_ref(), key.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), stdout, out)
}

#[track_caller]
fn assert_verifies(file: &Path, key: &Path) -> String {
    let (ok, stdout, out) = verify(file, key);
    assert!(ok, "{} must verify: {}", file.display(), describe_output(&out));
    assert!(stdout.contains("result: OK"), "{}", stdout);
    stdout
}

/// One record of vigild or pam_vigil in a log file, values decoded.
#[derive(Debug, Clone)]
struct Rec {
    /// 1-based line number in the file.
    line: usize,
    tag: String,
    pid: Option<u32>,
    raw: String,
    fields: Vec<(String, Vec<u8>)>,
}

impl Rec {
    fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn event(&self) -> String {
        self.text("event").unwrap_or_default()
    }

    fn is(&self, tag: &str, event: &str) -> bool {
        self.tag == tag && self.event() == event
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.text(key)?.parse().ok()
    }

    fn seq(&self) -> Option<u64> {
        self.number("seq")
    }

    fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// A JSON object's members in the order written, duplicates kept.
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, serde_json::Value>()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// A record's fields: `key=value` with `vigil_protocol::audit::parse_kv_line`, a JSON
/// object with serde_json (strings as their UTF-8 bytes, numbers as decimal text).
fn parse_message(message: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    if message.starts_with('{') {
        let Ordered(members) = serde_json::from_str(message).map_err(|e| format!("JSON: {e}"))?;
        members
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s.into_bytes())),
                serde_json::Value::Number(n) => Ok((k, n.to_string().into_bytes())),
                other => Err(format!("member {k} is {other}")),
            })
            .collect()
    } else {
        vigil_protocol::audit::parse_kv_line(message).map_err(|e| format!("kv: {} at byte {}", e.reason, e.offset))
    }
}

/// Every line of `path`: vigild and pam_vigil lines parsed as records, `Err` with the
/// line for those that are not records; other lines skipped.
fn read_records(path: &Path) -> (Vec<Rec>, Vec<String>) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = LogLine::parse(raw);
        if line.tag != "vigild" && line.tag != "pam_vigil" {
            continue;
        }
        match parse_message(&line.message) {
            Ok(fields) => records.push(Rec { line: index + 1, tag: line.tag, pid: line.pid, raw: line.raw, fields }),
            Err(e) => bad.push(format!("line {}: {e}: {raw}", index + 1)),
        }
    }
    (records, bad)
}

fn records(path: &Path) -> Vec<Rec> {
    read_records(path).0
}

/// Waits until a record in `path` satisfies `pred`.
#[track_caller]
fn wait_record(path: &Path, what: &str, pred: impl Fn(&Rec) -> bool) -> Rec {
    wait_for(LOG_WAIT, &format!("{what} in {}", path.display()), || {
        let recs = records(path);
        recs.iter().find(|r| pred(r)).cloned().ok_or_else(|| {
            let from = recs.len().saturating_sub(5);
            format!("{} records; last: {:#?}", recs.len(), recs[from..].iter().map(|r| &r.raw).collect::<Vec<_>>())
        })
    })
}

/// `vigilctl audit seal`, then waits until the seal record is in `log`; returns its seq.
#[track_caller]
fn seal(h: &Harness, log: &Path) -> u64 {
    let out = h.vigild().vigilctl(&["audit", "seal"]);
    assert!(out.status.success(), "vigilctl audit seal: {}", describe_output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seq: u64 = stdout
        .split("(seq ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("vigilctl audit seal printed no seq: {stdout}"));
    let rec = wait_record(log, &format!("seal record seq={seq}"), |r| r.is("vigild", "seal") && r.seq() == Some(seq));
    assert_eq!(rec.number("last_seq"), Some(seq - 1), "{}", rec.raw);
    seq
}

/// One open+close through real libpam (pam_host, one cycle); returns the run and the
/// session id vigild gave.
#[track_caller]
fn one_session(h: &Harness, service: &str, user: &str) -> (PamHostRun, u64) {
    let run = h.run_pam_host(&h.pam_host(service, user).tty(TTY).rhost(RHOST));
    let r = run.report();
    assert!(r.open_rc.all(PAM_SUCCESS) && r.close_rc.all(PAM_SUCCESS), "{r:?}\nstderr:\n{}", run.stderr);
    let id = r.session_ids.first().cloned().flatten().and_then(|i| i.parse().ok());
    let id = id.unwrap_or_else(|| panic!("no VIGIL_SESSION_ID: {r:?}\nstderr:\n{}", run.stderr));
    (run, id)
}

/// vigild's records in file order must carry seq 1, 2, 3, ... (no gap, no repeat).
#[track_caller]
fn assert_seqs_consecutive(recs: &[Rec]) {
    let seqs: Vec<u64> = recs.iter().filter(|r| r.tag == "vigild").map(|r| r.seq().expect("a seq")).collect();
    assert!(!seqs.is_empty());
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "seq must go up by one in file order: {seqs:?}");
    }
    assert_eq!(seqs[0], 1, "a fresh chain starts at seq 1: {seqs:?}");
}

// ---- 1. timeline -------------------------------------------------------------------

#[test]
fn session_timeline_from_the_rsyslog_file() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(&config("kv")));
    let user = h.create_user("tl");
    let service = h.install_vigil_service("tl", &h.vigil_args());
    // Another session, open around the one shown: the timeline leaves it out.
    let other = h.open_pam_session(&h.pam_host(&service, &user.name).tty("pts/8").rhost("198.51.100.4"));
    let other_id = other.session_id_u64();
    let session = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST));
    let id = session.session_id_u64();
    std::thread::sleep(Duration::from_millis(2100));
    let (closed, _) = session.close();
    assert_eq!(closed, Some(PAM_SUCCESS));
    let (closed, _) = other.close();
    assert_eq!(closed, Some(PAM_SUCCESS));
    let auth = h.path("auth.log");
    let close = wait_record(&auth, "session_close", |r| r.is("vigild", "session_close") && r.number("session") == Some(id));
    let open = wait_record(&auth, "session_open", |r| r.is("vigild", "session_open") && r.number("session") == Some(id));
    assert!(close.number("duration_s").is_some_and(|d| (2..=10).contains(&d)), "{}", close.raw);
    wait_record(&auth, "the other session_close", |r| r.is("vigild", "session_close") && r.number("session") == Some(other_id));

    let id_text = id.to_string();
    let out = vigilctl(&["audit".as_ref(), "show".as_ref(), auth.as_os_str(), "--session".as_ref(), id_text.as_ref()]);
    assert!(out.status.success(), "vigilctl audit show: {}", describe_output(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("vigilctl audit show --session {id}:\n{text}");
    let header = text.lines().next().unwrap_or_default();
    assert!(header.starts_with(&format!("session {id} on ")), "{text}");
    for field in [
        format!("user={}", user.name),
        format!("uid={}", user.uid),
        format!("service={service}"),
        format!("tty={TTY}"),
        format!("rhost={RHOST}"),
    ] {
        assert!(header.contains(&field), "header without {field}: {text}");
    }
    let position = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the timeline:\n{text}"));
    let (opened, open_at, close_at, ended) =
        (position("\n  opened "), position(" session_open"), position(" session_close"), position("\n  ended "));
    assert!(opened < open_at && open_at < close_at && close_at < ended, "open → close → end, in order:\n{text}");
    let ended_line = text[ended..].lines().nth(1).unwrap_or_default();
    assert!(ended_line.contains("(session_close)"), "{ended_line}");
    let lasted: u64 = ended_line
        .split(", lasted ")
        .nth(1)
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {ended_line:?}:\n{text}"));
    assert!((2..=10).contains(&lasted), "held 2.1 s, the timeline says {lasted} s:\n{text}");
    assert!(!text.contains(&format!("session {other_id} ")), "only session {id} is shown:\n{text}");
    assert!(text.is_ascii(), "timeline output is plain ASCII");

    // --json: one object per line, parsed.
    let out = vigilctl(&["audit".as_ref(), "show".as_ref(), auth.as_os_str(), "--session".as_ref(), id_text.as_ref(), "--json".as_ref()]);
    assert!(out.status.success(), "vigilctl audit show --json: {}", describe_output(&out));
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    let blocks: Vec<serde_json::Value> = json
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(blocks.len(), 1, "{json}");
    let block = &blocks[0];
    assert_eq!(block["session"], serde_json::json!(id), "{block}");
    assert_eq!(block["user"], serde_json::json!(user.name), "{block}");
    let duration = block["duration_s"].as_f64().unwrap_or_else(|| panic!("duration_s: {block}"));
    assert!((2.0..=10.0).contains(&duration), "{block}");
    let events: Vec<&str> = block["events"].as_array().expect("events").iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["session_open", "session_close"], "{block}");
    let lines: Vec<u64> = block["events"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [open.line as u64, close.line as u64], "events point at their auth.log lines: {block}");
}

// ---- 2. tampering ------------------------------------------------------------------

/// The lines of `text`, each with its line break.
fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn write_copy(h: &Harness, name: &str, lines: &[Vec<u8>]) -> PathBuf {
    let path = h.path(name);
    std::fs::write(&path, lines.concat()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Verifies `file`, which must fail with a finding at `line` whose text starts with
/// `starts` (after `FILE:LINE: FAIL: `) and contains each of `contains`.
#[track_caller]
fn assert_finding(file: &Path, key: &Path, line: usize, starts: &str, contains: &[&str]) -> String {
    let (ok, stdout, out) = verify(file, key);
    eprintln!("verify {}:\n{stdout}", file.display());
    assert!(!ok, "a tampered file must not verify: {}", describe_output(&out));
    assert_eq!(out.status.code(), Some(1), "exit 1 for findings: {}", describe_output(&out));
    let prefix = format!("  {}:{line}: FAIL: {starts}", file.display());
    let found = stdout.lines().find(|l| l.starts_with(&prefix));
    let found = found.unwrap_or_else(|| panic!("no finding {prefix:?} in:\n{stdout}"));
    for needle in contains {
        assert!(found.contains(needle), "{needle:?} not in {found:?}");
    }
    assert!(stdout.contains("result: FAILED"), "{stdout}");
    stdout
}

/// The vigild record after `rec` in the file.
fn next_after<'a>(daemon: &[&'a Rec], rec: &Rec) -> &'a Rec {
    daemon.iter().find(|r| r.line > rec.line).copied().expect("a record after it")
}

#[test]
fn tampering_is_reported_at_its_line() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(&config("kv")));
    let user = h.create_user("tamper");
    let service = h.install_vigil_service("tamper", &h.vigil_args());
    let auth = h.path("auth.log");
    let key = key_file(&h);
    for _ in 0..3 {
        one_session(&h, &service, &user.name);
    }
    let seal_a = seal(&h, &auth);
    for _ in 0..2 {
        one_session(&h, &service, &user.name);
    }
    let seal_b = seal(&h, &auth);

    // The untouched file, as it is now.
    let clean_bytes = std::fs::read(&auth).expect("read auth.log");
    let clean = write_copy(&h, "clean.log", &split_lines(&clean_bytes));
    assert_verifies(&clean, &key);
    let lines = split_lines(&clean_bytes);
    let recs = records(&clean);
    assert_seqs_consecutive(&recs);
    let daemon: Vec<&Rec> = recs.iter().filter(|r| r.tag == "vigild").collect();
    let opens: Vec<&&Rec> = daemon.iter().filter(|r| r.event() == "session_open").collect();
    assert_eq!(opens.len(), 5, "{:#?}", daemon.iter().map(|r| &r.raw).collect::<Vec<_>>());

    // Deleting one line: the seq is missing, reported at the next record.
    let victim = opens[1];
    let next = next_after(&daemon, victim);
    let mut copy = lines.clone();
    copy.remove(victim.line - 1);
    let deleted = write_copy(&h, "tamper-delete.log", &copy);
    let s = victim.seq().unwrap();
    assert_finding(&deleted, &key, next.line - 1, &format!("missing seqs {s}..{s}"), &[]);

    // Editing one value: that record does not verify.
    let victim = opens[2];
    let original = String::from_utf8(lines[victim.line - 1].clone()).unwrap();
    let uid = format!(" uid={} ", user.uid);
    assert!(original.contains(&uid), "{original}");
    let mut copy = lines.clone();
    copy[victim.line - 1] = original.replacen(&uid, " uid=0 ", 1).into_bytes();
    let edited = write_copy(&h, "tamper-edit.log", &copy);
    let s = victim.seq().unwrap();
    assert_finding(&edited, &key, victim.line, "edited or forged", &[&format!("claims seq {s}")]);

    // Swapping two lines: the second is reported as out of order.
    let first = opens[0];
    let second = next_after(&daemon, first);
    let mut copy = lines.clone();
    copy.swap(first.line - 1, second.line - 1);
    let swapped = write_copy(&h, "tamper-swap.log", &copy);
    let (s1, s2) = (first.seq().unwrap(), second.seq().unwrap());
    assert_eq!(s2, s1 + 1);
    assert_finding(&swapped, &key, second.line, &format!("reordered: seq {s1} comes after seq {s2}"), &[]);

    // Cutting the tail: everything after seal A removed; the seal vigild wrote later
    // (seal B) is appended to the cut file, and shows the cut.
    let seal_a_rec = daemon.iter().find(|r| r.is("vigild", "seal") && r.seq() == Some(seal_a)).unwrap();
    let seal_b_rec = daemon.iter().find(|r| r.is("vigild", "seal") && r.seq() == Some(seal_b)).unwrap();
    let mut copy: Vec<Vec<u8>> = lines[..seal_a_rec.line].to_vec();
    copy.extend_from_slice(&lines[seal_b_rec.line - 1..]);
    let cut = write_copy(&h, "tamper-cut.log", &copy);
    assert_finding(
        &cut,
        &key,
        seal_a_rec.line + 1,
        &format!("missing seqs {}..{}", seal_a + 1, seal_b - 1),
        &["before seal", "the end of the previous run was cut"],
    );

    // A record forged by an unprivileged user with logger: it lands in the real file.
    let last = daemon.last().unwrap();
    assert_eq!(last.seq(), Some(seal_b));
    let prev = last.text("mac").unwrap()[..16].to_string();
    let forged = format!(
        "event=session_open session=999999 ses=4294967295 user=root uid=0 service=sshd tty=ssh rhost=203.0.113.66 ruser=\"\" leader_pid=1 policy=defaults parent=0 exempt=no seq={} prev={prev} mac={}",
        seal_b + 1,
        "0123456789abcdef0123456789abcdef"
    );
    let socket = h.log_socket();
    let out = h.run_as(&user.name, &["logger", "-u", socket.to_str().unwrap(), "-p", "authpriv.notice", "-t", "vigild", &forged]);
    assert!(out.status.success(), "logger as {}: {}", user.name, describe_output(&out));
    let forged_rec = wait_record(&auth, "the forged record", |r| r.tag == "vigild" && r.number("session") == Some(999_999));
    // vigild's next record takes the seq the forger claimed.
    let seal_c = seal(&h, &auth);
    assert_eq!(seal_c, seal_b + 1);
    assert_finding(&auth, &key, forged_rec.line, "edited or forged", &[&format!("claims seq {}", seal_b + 1)]);

    // The untouched copy still verifies.
    assert_verifies(&clean, &key);
}

// ---- 3. hostile strings -------------------------------------------------------------

/// Strings users or remote peers control. PAM items are C strings: no NUL.
fn hostile_strings() -> Vec<Vec<u8>> {
    let mut all_bytes: Vec<u8> = (1u8..=255).collect();
    all_bytes.reverse();
    let texts: Vec<String> = vec![
        "a\nb".into(),
        "\n".into(),
        "\r\n".into(),
        "x\nNov 26 04:14:10 host vigild[1]: event=session_open user=root uid=0".into(),
        "a=b".into(),
        "=".into(),
        "user=root".into(),
        " user=root".into(),
        "x uid=0".into(),
        "\"".into(),
        "\"\"".into(),
        "a\" uid=0 x=\"".into(),
        "'single' quotes".into(),
        "mac=00000000000000000000000000000000".into(),
        " mac=00000000000000000000000000000000".into(),
        "seq=1 prev=0000000000000000".into(),
        " seq=99999".into(),
        "event=session_close".into(),
        " event=daemon_stop".into(),
        "truncated=user".into(),
        "not_utf8=rhost".into(),
        "session=1 ses=2".into(),
        "\u{1b}[31mred\u{1b}[0m".into(),
        "\u{1b}]0;title\u{7}".into(),
        "\u{1b}[2J\u{1b}[H".into(),
        "\u{202e}evil\u{202c}".into(),
        "\u{2066}isolate\u{2069}".into(),
        "\u{200f}rtl mark".into(),
        "\u{feff}BOM".into(),
        "\u{2028}line\u{2029}para".into(),
        "\u{85}NEL".into(),
        "e\u{301}\u{302}\u{303}".into(),
        "\u{1f642} emoji".into(),
        "\u{7f}".into(),
        "\t".into(),
        " ".into(),
        "a b c".into(),
        "\",\"uid\":0,\"".into(),
        "{\"event\":\"session_open\"}".into(),
        "\"}".into(),
        ",\"mac\":\"00000000000000000000000000000000\"}".into(),
        "\\".into(),
        "\\\\".into(),
        "\\\"".into(),
        "\\x41".into(),
        "\\n".into(),
        "#012".into(),
        "#015#012event=x".into(),
        "<13>Jan  1 00:00:00 host vigild: event=x".into(),
        "]: event=forged".into(),
        "vigild[1]: event=session_open".into(),
        "%s%n%x".into(),
        "$(id)`id`;rm -rf /".into(),
        "-".into(),
        "--rhost".into(),
        "x".repeat(MAX_VALUE),
        "x".repeat(MAX_VALUE + 1),
        "y".repeat(MAX_FIELD),
        "z".repeat(MAX_FIELD + 1),
        "\u{e9}".repeat(200),
        "\u{20ac}".repeat(100),
        "\n".repeat(300),
        "A".repeat(64 * 1024),
    ];
    let mut strings: Vec<Vec<u8>> = texts.into_iter().map(String::into_bytes).collect();
    strings.extend([
        b"\xff\xfe\xfd".to_vec(),
        b"\xc3\x28".to_vec(),
        b"\x80abc".to_vec(),
        b"ok\xc0\xafslash".to_vec(),
        all_bytes,
        (1u8..32).collect(),
    ]);
    strings
}

/// What a record says about a value the module read from PAM: (value, cut, not UTF-8).
/// The module turns items into UTF-8 (U+FFFD for bad bytes) for D-Bus; a record keeps
/// at most 256 bytes; JSON turns what is not UTF-8 after the cut into U+FFFD too.
fn expected_value(input: &[u8], json: bool) -> (Vec<u8>, bool, bool) {
    let sent = String::from_utf8_lossy(input).into_owned().into_bytes();
    let cut = sent.len() > MAX_VALUE;
    let clipped = sent[..sent.len().min(MAX_VALUE)].to_vec();
    if !json {
        return (clipped, cut, false);
    }
    // JSON cuts valid UTF-8 at a character boundary (what the module sends is valid
    // UTF-8: it converted lossily).
    let text = String::from_utf8_lossy(&sent).into_owned();
    let clipped = text.as_bytes()[..text.floor_char_boundary(MAX_VALUE)].to_vec();
    (clipped, cut, false)
}

/// What the module sends vigild for `input` (the 1 KiB limit applies to this).
fn sent_len(input: &[u8]) -> usize {
    String::from_utf8_lossy(input).len()
}

/// Shows a value for a failure message.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let shown: String = text.chars().take(80).collect();
    format!("{shown:?}{}", if text.chars().count() > 80 { format!("... ({} bytes)", bytes.len()) } else { String::new() })
}

/// Checks that `rec` has exactly `keys` in this order (`rport`, `ttys` may appear where
/// vigild puts them), and `truncated`/`not_utf8` naming exactly the fields given.
#[track_caller]
fn assert_keys(rec: &Rec, keys: &[&str], truncated: &[&str], not_utf8: &[&str], what: &str) {
    let actual: Vec<&str> = rec.keys().into_iter().filter(|k| !matches!(*k, "rport" | "ttys")).collect();
    let mut expected: Vec<&str> = Vec::new();
    for key in keys {
        if *key == "seq" {
            // The record's own fields end here; the chain's follow.
            if !truncated.is_empty() {
                expected.push("truncated");
            }
            if !not_utf8.is_empty() {
                expected.push("not_utf8");
            }
        }
        expected.push(key);
    }
    if !keys.contains(&"seq") {
        if !truncated.is_empty() {
            expected.push("truncated");
        }
        if !not_utf8.is_empty() {
            expected.push("not_utf8");
        }
    }
    assert_eq!(actual, expected, "{what}: keys of line {}: {}", rec.line, rec.raw);
    if !truncated.is_empty() {
        assert_eq!(rec.text("truncated").unwrap(), truncated.join(","), "{what}: {}", rec.raw);
    }
    if !not_utf8.is_empty() {
        assert_eq!(rec.text("not_utf8").unwrap(), not_utf8.join(","), "{what}: {}", rec.raw);
    }
}

/// The fields of every session record (`core::session_record`), in order.
const SESSION_KEYS: [&str; 12] =
    ["event", "session", "ses", "user", "uid", "service", "tty", "rhost", "ruser", "leader_pid", "policy", "parent"];

fn session_keys(event: &str) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = SESSION_KEYS.to_vec();
    match event {
        "session_open" => keys.push("exempt"),
        // The leader's exit: with the processes left on its terminals.
        "session_end" => keys.extend(["reason", "duration_s", "processes"]),
        _ => keys.extend(["reason", "duration_s"]),
    }
    keys.extend(["seq", "prev", "mac"]);
    keys
}

const REFUSED_KEYS: [&str; 12] = ["event", "method", "uid", "pid", "reason", "user", "service", "tty", "rhost", "seq", "prev", "mac"];
const MODULE_KEYS: [&str; 12] = ["event", "call", "user", "service", "tty", "rhost", "pid", "ses", "fail", "reason", "error_name", "error"];

/// One pam_host run with a hostile value and what it must have left in auth.log.
struct HostileRun {
    value: Vec<u8>,
    /// As the user name (else as tty, rhost and ruser).
    as_user: bool,
    pid: u32,
    session: Option<u64>,
    /// pam_open_session succeeded (libpam itself fails an open whose items make its
    /// kernel audit message too long, after the modules ran).
    opened: bool,
}

fn hostile_strings_survive(format: &str) {
    let json = format == "json";
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(&config(format)));
    let user = h.create_user("hostile");
    let service = h.install_vigil_service("hostile", &h.vigil_args());
    // The same items through pam_permit alone: what libpam itself answers. (Debian's
    // libpam sends each session open to the kernel audit log and fails it with
    // PAM_SYSTEM_ERR, after the modules ran, when rhost or tty make that message longer
    // than libaudit's ~8.9 KB: pam_vigil must not change libpam's answer, fail=open.)
    let permit = h.install_pam_service("permit", &PamStack::permit_only());
    let auth = h.path("auth.log");
    let strings = hostile_strings();
    assert!(strings.len() >= 50, "{} hostile strings", strings.len());

    let mut runs = Vec::new();
    for value in &strings {
        // As tty, rhost and ruser of a real user's session.
        let items = |cmd: vigil_e2e::PamHostCmd| cmd.raw("--tty", value).raw("--rhost", value).raw("--ruser", value);
        let baseline = h.run_pam_host(&items(h.pam_host(&permit, &user.name)));
        let run = h.run_pam_host(&items(h.pam_host(&service, &user.name)));
        let r = run.report();
        assert_eq!(r.open_rc, baseline.report().open_rc, "{}: as with pam_permit alone: {r:?}\nstderr:\n{}", show(value), run.stderr);
        if value.len() <= 8192 {
            assert!(r.open_rc.all(PAM_SUCCESS), "{}: {r:?}", show(value));
        }
        let session: Option<u64> = r.session_ids.first().cloned().flatten().and_then(|i| i.parse().ok());
        // Items over 1 KiB are cut by the module: every session is registered.
        let Some(id) = session else { panic!("{}: no session id; {r:?}", show(value)) };
        let opened = r.open_rc.all(PAM_SUCCESS);
        if !opened {
            // pam_host did not close it; its exit ends it before the next run.
            wait_record(&auth, "session_end of the session libpam failed", |r| {
                r.is("vigild", "session_end") && r.number("session") == Some(id)
            });
        }
        runs.push(HostileRun { value: value.clone(), as_user: false, pid: run.pid, session, opened });
        // As the name of a user that does not exist.
        if value.is_empty() {
            continue;
        }
        let cmd = h.pam_host(&service, "unused").raw("--user", value).tty(TTY).rhost(RHOST);
        let run = h.run_pam_host(&cmd);
        let r = run.report();
        let baseline = h.run_pam_host(&h.pam_host(&permit, "unused").raw("--user", value).tty(TTY).rhost(RHOST));
        assert_eq!(r.open_rc, baseline.report().open_rc, "{}: as with pam_permit alone: {r:?}", show(value));
        assert!(r.open_rc.all(PAM_SUCCESS), "fail=open: {}: {r:?}\nstderr:\n{}", show(value), run.stderr);
        assert_eq!(r.session_ids, vec![None], "no session for unknown user {}", show(value));
        runs.push(HostileRun { value: value.clone(), as_user: true, pid: run.pid, session: None, opened: true });
    }
    let last_seq = seal(&h, &auth);

    // Every line of the file is printable ASCII, and every vigild/pam_vigil line is one
    // whole record.
    let bytes = std::fs::read(&auth).expect("read auth.log");
    if let Some(i) = bytes.iter().position(|&b| !(b == b'\n' || (0x20..=0x7e).contains(&b))) {
        panic!(
            "auth.log byte {i} is {:#04x}: {}",
            bytes[i],
            String::from_utf8_lossy(&bytes[i.saturating_sub(200)..(i + 50).min(bytes.len())])
        );
    }
    for (index, raw) in String::from_utf8_lossy(&bytes).lines().enumerate() {
        let line = LogLine::parse(raw);
        assert!(
            ["vigild", "pam_vigil", "vigil-e2e-probe"].contains(&line.tag.as_str()),
            "line {} is not a line of vigild, pam_vigil or the harness's probe (a forged line?): {raw}",
            index + 1
        );
    }
    let (recs, bad) = read_records(&auth);
    assert!(bad.is_empty(), "lines that are not whole records:\n{}", bad.join("\n"));
    assert_seqs_consecutive(&recs);
    if json {
        assert!(recs.iter().filter(|r| r.tag == "vigild").all(|r| r.raw.contains(": {\"event\":")), "JSON records");
    }
    let mut claimed = vec![false; recs.len()];
    let mut take = |pred: &dyn Fn(&Rec) -> bool| -> Vec<Rec> {
        let mut found = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            if pred(r) {
                claimed[i] = true;
                found.push(r.clone());
            }
        }
        found
    };

    for run in &runs {
        let what = format!("{} as {}", show(&run.value), if run.as_user { "user" } else { "tty, rhost, ruser" });
        let (value, cut, bad_utf8) = expected_value(&run.value, json);
        // Records of vigild about this run, and the module's lines (pid in the tag).
        let module = take(&|r: &Rec| r.tag == "pam_vigil" && r.pid == Some(run.pid));
        let daemon = take(&|r: &Rec| {
            r.tag == "vigild"
                && (r.number("leader_pid") == Some(u64::from(run.pid))
                    || (r.event() == "call_refused" && r.number("pid") == Some(u64::from(run.pid))))
        });
        let accepted = sent_len(&run.value) <= MAX_FIELD;
        if !run.as_user {
            let id = run.session.expect("a session id");
            assert!(module.is_empty(), "{what}: no module record when vigild registers: {module:#?}");
            let events: Vec<String> = daemon.iter().map(Rec::event).collect();
            let end = if run.opened { "session_close" } else { "session_end" };
            assert_eq!(events, ["session_open", end], "{what}: one line per record: {daemon:#?}");
            for rec in &daemon {
                assert_eq!(rec.number("session"), Some(id), "{what}: {}", rec.raw);
                let fields: &[&str] = &["tty", "rhost", "ruser"];
                let truncated: Vec<&str> = if cut { fields.to_vec() } else { vec![] };
                let not_utf8: Vec<&str> = if bad_utf8 { fields.to_vec() } else { vec![] };
                assert_keys(rec, &session_keys(&rec.event()), &truncated, &not_utf8, &what);
                for key in fields {
                    assert_eq!(rec.get(key), Some(value.as_slice()), "{what}: {key} of line {}: {}", rec.line, rec.raw);
                }
                assert_eq!(rec.text("user").as_deref(), Some(user.name.as_str()), "{}", rec.raw);
            }
        } else {
            // An unknown user: vigild refuses and audits it (when it reads the name at all),
            // and the module writes its own line, a refusal (the name is never cut).
            assert_eq!(module.len(), 1, "{what}: one module record: {module:#?}");
            let rec = &module[0];
            assert_eq!(rec.event(), "call_refused", "{}", rec.raw);
            // A name over 1 KiB is not even sent (vigild would refuse it); a shorter one
            // is refused by vigild.
            let reason = if accepted { "invalid_argument" } else { "user_too_long" };
            assert_eq!(rec.text("reason").as_deref(), Some(reason), "{}", rec.raw);
            // The module bounds its line as a whole (under 2 KiB): a value may be cut
            // below 256 bytes then, never inside a character, and `truncated=` says so.
            assert!(rec.raw.len() < 2048, "{what}: a module line of {} bytes", rec.raw.len());
            let (kv_value, kv_cut, _) = expected_value(&run.value, false);
            let shown = rec.get("user").unwrap_or_default();
            assert!(kv_value.starts_with(shown), "{what}: user: {}", rec.raw);
            let mut truncated = if kv_cut || shown.len() < kv_value.len() { vec!["user"] } else { vec![] };
            if rec.text("truncated").is_some_and(|t| t.split(',').any(|k| k == "error")) {
                truncated.push("error");
            }
            // Not sent, the refusal is the module's own: no D-Bus error name.
            let keys: Vec<&str> = MODULE_KEYS.iter().copied().filter(|&k| accepted || k != "error_name").collect();
            assert_keys(rec, &keys, &truncated, &[], &what);
            if accepted {
                assert_eq!(daemon.len(), 1, "{what}: one call_refused record: {daemon:#?}");
                let rec = &daemon[0];
                assert_eq!(rec.event(), "call_refused", "{}", rec.raw);
                assert_eq!(rec.text("reason").as_deref(), Some("unknown_user"), "{}", rec.raw);
                assert_eq!(rec.text("method").as_deref(), Some("OpenSession"), "{}", rec.raw);
                let truncated: Vec<&str> = if cut { vec!["user"] } else { vec![] };
                let not_utf8: Vec<&str> = if bad_utf8 { vec!["user"] } else { vec![] };
                assert_keys(rec, &REFUSED_KEYS, &truncated, &not_utf8, &what);
                assert_eq!(rec.get("user"), Some(value.as_slice()), "{what}: user: {}", rec.raw);
                assert_eq!(rec.text("tty").as_deref(), Some(TTY));
                assert_eq!(rec.text("rhost").as_deref(), Some(RHOST));
            } else {
                assert!(daemon.is_empty(), "{what}: an overlong user is never sent, so vigild has nothing to say: {daemon:#?}");
            }
        }
    }
    // Nothing else: vigild's own records (start, key, seal) and no stray lines.
    let others: Vec<&Rec> = recs
        .iter()
        .zip(&claimed)
        .filter(|(r, c)| !(**c || (r.tag == "vigild" && ["daemon_start", "audit_key_init", "seal"].contains(&r.event().as_str()))))
        .map(|(r, _)| r)
        .collect();
    assert!(others.is_empty(), "records no run accounts for: {:#?}", others.iter().map(|r| &r.raw).collect::<Vec<_>>());
    let sealed = recs.iter().filter(|r| r.tag == "vigild").count() as u64;
    assert_eq!(sealed, last_seq, "every vigild record from seq 1 to the seal is in the file");
    let report = assert_verifies(&auth, &key_file(&h));
    eprintln!("{} hostile strings, {} pam_host runs, {} records; verify:\n{report}", strings.len(), runs.len(), recs.len());

    // The timeline of this file: plain ASCII on the terminal, JSON that parses, one block
    // per registered session.
    let sessions = runs.iter().filter(|r| r.session.is_some()).count();
    let out = vigilctl(&["audit".as_ref(), "show".as_ref(), auth.as_os_str()]);
    assert!(out.status.success(), "vigilctl audit show: {}", describe_output(&out));
    assert!(out.stdout.iter().all(|&b| b == b'\n' || (0x20..=0x7e).contains(&b)), "audit show prints plain ASCII only");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("session ")).count(), sessions, "{text}");
    let out = vigilctl(&["audit".as_ref(), "show".as_ref(), auth.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success(), "vigilctl audit show --json: {}", describe_output(&out));
    assert!(out.stdout.iter().all(|&b| b == b'\n' || (0x20..=0x7e).contains(&b)), "audit show --json is ASCII");
    let blocks: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(blocks.iter().filter(|b| b["session"].is_u64()).count(), sessions);
    for run in runs.iter().filter(|r| r.session.is_some() && !r.as_user) {
        let block = blocks.iter().find(|b| b["session"].as_u64() == run.session).expect("a block per session");
        let (value, _, _) = expected_value(&run.value, json);
        let shown = block["tty"].as_str().expect("tty in the header").as_bytes().to_vec();
        // JSON output is text: bytes that are not UTF-8 come back as U+FFFD.
        assert_eq!(shown, String::from_utf8_lossy(&value).into_owned().into_bytes(), "{}: {block}", show(&run.value));
    }
}

#[test]
fn hostile_strings_kv() {
    require_root!();
    hostile_strings_survive("kv");
}

#[test]
fn hostile_strings_json() {
    require_root!();
    hostile_strings_survive("json");
}

// ---- 4. syslog away: the spool --------------------------------------------------------

#[test]
fn rsyslog_stopped_records_spool_then_arrive_in_order() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(&config("kv")));
    let user = h.create_user("spool");
    let service = h.install_vigil_service("spool", &h.vigil_args());
    let auth = h.path("auth.log");
    let (_, first) = one_session(&h, &service, &user.name);
    wait_record(&auth, "the first session_close", |r| r.is("vigild", "session_close") && r.number("session") == Some(first));
    let spool = spool_file(&h);
    let spool_len = || std::fs::metadata(&spool).map(|m| m.len()).unwrap_or(0);
    assert_eq!(spool_len(), 0, "nothing spooled while syslog runs");
    let lines_before = records(&auth).len();

    h.rsyslog().stop();
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    // vigild's writer thread sends records after the PAM calls return: the spool is
    // read once it has grown (bounded wait).
    let grown = |before: u64| {
        wait_for(Duration::from_secs(5), "the spool to grow", || {
            let now = spool_len();
            if now > before { Ok(now) } else { Err(format!("{now} bytes")) }
        })
    };
    for _ in 0..5 {
        // Sessions still open and close while syslog is away.
        let (_, id) = one_session(&h, &service, &user.name);
        ids.push(id);
        sizes.push(grown(sizes.last().copied().unwrap_or(0)));
    }
    // A burst: 100 sessions on one handle (200 records), far more than the socket's
    // queue holds (net.unix.max_dgram_qlen, 10 by default).
    let burst = h.run_pam_host(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST).cycles(100));
    let r = burst.report();
    assert!(r.open_rc.all(PAM_SUCCESS) && r.close_rc.all(PAM_SUCCESS) && r.open_rc.total() == 100, "{r:?}");
    sizes.push(grown(sizes[sizes.len() - 1]));
    // A session held open across the restart.
    let held = h.open_pam_session(&h.pam_host(&service, &user.name).tty(TTY).rhost(RHOST));
    let held_id = held.session_id_u64();
    sizes.push(grown(sizes[sizes.len() - 1]));
    eprintln!("spool sizes while rsyslogd is stopped: {sizes:?}");
    assert!(sizes[0] > 0, "the first records went to the spool {}", spool.display());
    for pair in sizes.windows(2) {
        assert!(pair[1] > pair[0], "the spool grows with each session: {sizes:?}");
    }
    // The burst's records may still be going to the spool when the held session opens
    // (the spool grew, but not yet by its record): wait for that record itself.
    let held_open = format!("session={held_id} ");
    wait_for(Duration::from_secs(10), "the held session's record in the spool", || {
        let spooled = std::fs::read_to_string(&spool).map_err(|e| format!("read the spool: {e}"))?;
        if spooled.lines().any(|l| l.contains(&held_open)) { Ok(()) } else { Err(format!("{} spooled lines", spooled.lines().count())) }
    });
    assert_eq!(records(&auth).len(), lines_before, "nothing reached auth.log while rsyslogd was stopped");

    h.rsyslog().start();
    let restarted = std::time::Instant::now();
    let (closed, _) = held.close();
    assert_eq!(closed, Some(PAM_SUCCESS));
    wait_record(&auth, "the held session's close", |r| r.is("vigild", "session_close") && r.number("session") == Some(held_id));
    // The first session, five, the burst of 100, the held one.
    wait_for(LOG_WAIT, "all 107 session_close records in auth.log", || {
        let n = records(&auth).iter().filter(|r| r.is("vigild", "session_close")).count();
        if n == 107 { Ok(()) } else { Err(format!("{n}")) }
    });
    wait_for(LOG_WAIT, "the spool to empty", || if spool_len() == 0 { Ok(()) } else { Err(format!("{} bytes", spool_len())) });
    eprintln!("spooled records all in auth.log {:?} after rsyslogd's restart", restarted.elapsed());
    let recs = records(&auth);
    assert_seqs_consecutive(&recs);
    for id in ids.iter().chain([&held_id]) {
        let events: Vec<String> = recs.iter().filter(|r| r.tag == "vigild" && r.number("session") == Some(*id)).map(Rec::event).collect();
        assert_eq!(events, ["session_open", "session_close"], "session {id}");
    }
    seal(&h, &auth);
    assert_verifies(&auth, &key_file(&h));
}

#[test]
fn full_spool_keeps_the_oldest_and_says_how_many_were_dropped() {
    require_root!();
    let mut h = harness();
    // Room for about three records.
    h.start_vigild(VigildOpts::default().no_bus().config(&config_with("kv", "spool_max_bytes = 1200\n")));
    let user = h.create_user("drop");
    let service = h.install_vigil_service("drop", &h.vigil_args());
    let auth = h.path("auth.log");
    let (_, first) = one_session(&h, &service, &user.name);
    wait_record(&auth, "the first session_close", |r| r.is("vigild", "session_close") && r.number("session") == Some(first));
    h.rsyslog().stop();
    for _ in 0..5 {
        one_session(&h, &service, &user.name);
    }
    h.rsyslog().start();
    let dropped = wait_record(&auth, "records_dropped", |r| r.is("vigild", "records_dropped"));
    let (count, first_seq) = (dropped.number("count").unwrap(), dropped.number("first_seq").unwrap());
    let recs = records(&auth);
    let seqs: Vec<u64> = recs.iter().filter(|r| r.tag == "vigild" && r.line < dropped.line).map(|r| r.seq().unwrap()).collect();
    // The kept records are consecutive and end just before the first dropped seq.
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{seqs:?}");
    }
    assert_eq!(seqs.last().map(|s| s + 1), Some(first_seq), "{seqs:?} then {}", dropped.raw);
    assert_eq!(dropped.seq(), Some(first_seq + count), "records_dropped takes the seq after the dropped ones: {}", dropped.raw);
    assert!(count > 0 && count < 10, "{}", dropped.raw);
    seal(&h, &auth);
    let (ok, stdout, out) = verify(&auth, &key_file(&h));
    eprintln!("{stdout}");
    assert!(ok, "vigild's own account of the drop verifies: {}", describe_output(&out));
    assert!(stdout.contains(&format!("note: seqs {first_seq}..{} were dropped by vigild", first_seq + count - 1)), "{stdout}");
}

// ---- 5. forwarding to a central log host ------------------------------------------------

#[test]
fn forwarded_records_verify_on_the_central_host() {
    require_root!();
    let mut h = Harness::new();
    h.set_pam_host_bin(env!("CARGO_BIN_EXE_pam_host"));
    let port = h.start_central_rsyslog().tcp_port().unwrap();
    h.start_rsyslog_with(&RsyslogOpts { extra_config: vec![format!("authpriv.* @@127.0.0.1:{port}")], ..RsyslogOpts::default() });
    h.start_vigild(VigildOpts::default().no_bus().config(&config("kv")));
    let user = h.create_user("fwd");
    let service = h.install_vigil_service("fwd", &h.vigil_args());
    let auth = h.path("auth.log");
    let central = h.central_rsyslog().auth_log_path().to_path_buf();
    for _ in 0..3 {
        one_session(&h, &service, &user.name);
    }
    let last = seal(&h, &auth);
    wait_record(&central, "the seal on the central host", |r| r.is("vigild", "seal") && r.seq() == Some(last));
    let local: Vec<String> = records(&auth).into_iter().filter(|r| r.tag == "vigild").map(|r| LogLine::parse(&r.raw).message).collect();
    let remote: Vec<String> = records(&central).into_iter().filter(|r| r.tag == "vigild").map(|r| LogLine::parse(&r.raw).message).collect();
    assert_eq!(remote, local, "the central file holds the same records, in order");
    assert_eq!(remote.len() as u64, last);
    let report = assert_verifies(&central, &key_file(&h));
    eprintln!("central {}:\n{report}", central.display());
}

// ---- key rotation ------------------------------------------------------------------

/// `vigilctl audit init --out FILE` starts a new key at the next seq: the chain goes on
/// (seq and prev continue), the file verifies with both keys, and not with either alone.
#[test]
fn a_new_key_continues_the_chain_and_both_keys_verify_it() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(&config("kv")));
    let user = h.create_user("rot");
    let service = h.install_vigil_service("rot", &h.vigil_args());
    let auth = h.path("auth.log");
    one_session(&h, &service, &user.name);
    let second_key = h.path("second.key");
    let out = h.vigild().vigilctl(&["audit", "init", "--out", second_key.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "vigilctl audit init: {}", describe_output(&out));
    let text = std::fs::read_to_string(&second_key).expect("the new key file");
    assert!(text.starts_with("vigil-audit-key v1 start_seq="), "{text}");
    let start: u64 =
        text.split("start_seq=").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("start_seq");
    wait_record(&auth, "audit_key_init of the new key", |r| r.is("vigild", "audit_key_init") && r.seq() == Some(start));
    one_session(&h, &service, &user.name);
    seal(&h, &auth);
    assert_seqs_consecutive(&records(&auth));

    let both = vigilctl(&[
        "audit".as_ref(),
        "verify".as_ref(),
        auth.as_os_str(),
        "--key".as_ref(),
        key_file(&h).as_os_str(),
        "--key".as_ref(),
        second_key.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&both.stdout);
    assert!(both.status.success() && stdout.contains("result: OK"), "both keys must verify: {}", describe_output(&both));
    let (old_only, stdout, _) = verify(&auth, &key_file(&h));
    assert!(!old_only, "the first key alone must not verify records sealed with the second: {stdout}");
    let (new_only, stdout, _) = verify(&auth, &second_key);
    assert!(!new_only, "the second key alone must not verify records before it: {stdout}");
}

/// `vigilctl audit init --out FILE` where FILE exists: refused before vigild starts a new
/// key, so the chain goes on under the key the admin has, and the file is untouched.
#[test]
fn a_new_key_is_not_started_when_its_file_cannot_be_written() {
    require_root!();
    let mut h = harness();
    h.start_vigild(VigildOpts::default().no_bus().config(&config("kv")));
    let user = h.create_user("keep");
    let service = h.install_vigil_service("keep", &h.vigil_args());
    let auth = h.path("auth.log");
    one_session(&h, &service, &user.name);
    let key_inits = |log: &Path| records(log).iter().filter(|r| r.is("vigild", "audit_key_init")).count();
    let inits_before = key_inits(&auth);
    let existing = h.path("existing.key");
    std::fs::write(&existing, "an admin's file\n").expect("write the existing file");
    let out = h.vigild().vigilctl(&["audit", "init", "--out", existing.to_str().expect("utf-8 path")]);
    assert!(!out.status.success(), "an existing --out file must refuse the command: {}", describe_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no new key was started"), "the refusal says the chain is unchanged: {stderr}");
    assert_eq!(std::fs::read_to_string(&existing).expect("the file"), "an admin's file\n", "the file is untouched");
    one_session(&h, &service, &user.name);
    seal(&h, &auth);
    assert_eq!(key_inits(&auth), inits_before, "no new key was started");
    let (ok, stdout, _) = verify(&auth, &key_file(&h));
    assert!(ok, "the first key still verifies everything: {stdout}");
}
