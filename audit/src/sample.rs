//! Sealed sample logs: for benchmarks (`verify` throughput), tests and the fuzz corpus.
//!
//! [`write_sample_log`] writes an N-line syslog file the way rsyslog would: vigild's
//! sealed records for a stream of sessions (open, idle warning, reauth, end), with one
//! line in ten from other programs, starting with `daemon_start` and ending with
//! `daemon_stop`, so that the file verifies clean with the returned key.

use std::io::{self, Write};

use vigil_protocol::audit::Record;
use vigil_protocol::events::{EndReason, Event, Limit, ReauthReason};
use vigil_protocol::time::civil_from_days;

use crate::chain::{ChainState, Encoding, KEY_BYTES, Key, KeyFile};

/// How each line is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `Nov 26 04:14:10 host vigild[812]: ...`
    Traditional,
    /// `2026-11-26T04:14:10.000123+00:00 host vigild[812]: ...`
    HighPrecision,
    /// `<86>1 2026-11-26T04:14:10.000123Z host vigild 812 - - ...`
    Rfc5424,
}

/// A fixed key (not secret: for tests, benchmarks and the fuzz corpus).
pub fn sample_key(start_seq: u64) -> KeyFile {
    KeyFile { start_seq, key: Key::from_bytes([0x5a; KEY_BYTES]) }
}

/// 2026-11-26T04:14:10Z, where sample logs start.
pub const SAMPLE_EPOCH: u64 = 1_795_666_450;

/// (year, month, day, hour, minute, second) of a Unix time (UTC).
pub fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (year, month, day, (rem / 3600) as u32, (rem / 60 % 60) as u32, (rem % 60) as u32)
}

/// One syslog line (without line break) for `message` from `tag` at Unix time `secs`
/// (plus `micros`), as rsyslog writes it in `layout`.
pub fn syslog_line(layout: Layout, secs: u64, micros: u32, host: &str, tag: &str, pid: u32, message: &str) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, mo, d, h, mi, s) = civil(secs);
    match layout {
        Layout::Traditional => {
            let month = MONTHS.get(mo as usize - 1).copied().unwrap_or("Jan");
            format!("{month} {d:>2} {h:02}:{mi:02}:{s:02} {host} {tag}[{pid}]: {message}")
        }
        Layout::HighPrecision => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}+00:00 {host} {tag}[{pid}]: {message}"),
        Layout::Rfc5424 => format!("<86>1 {y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z {host} {tag} {pid} - - {message}"),
    }
}

fn encode(record: &Record, encoding: Encoding) -> String {
    match encoding {
        Encoding::KeyValue => record.to_kv_line(),
        Encoding::Json => record.to_json_line(),
    }
}

/// A session record as vigild writes it (`core::session_record`'s fields).
pub fn session_record(event: Event, session: u64, user: &str) -> Record {
    Record::new(event)
        .number("session", session)
        .number("ses", session + 3)
        .text("user", user)
        .number("uid", 1000 + (session % 50))
        .text("service", "sshd")
        .text("tty", "ssh")
        .text("rhost", "203.0.113.7")
        .text("ruser", "")
        .number("leader_pid", 9000 + session)
        .text("policy", "defaults")
        .number("parent", 0)
}

/// Writes `lines` lines (at least 2) to `out`, sealed with `key` from its start seq.
/// Returns how many records were sealed.
pub fn write_sample_log<W: Write>(out: W, lines: u64, layout: Layout, encoding: Encoding, key: &KeyFile) -> io::Result<u64> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut chain = ChainState { next_seq: key.start_seq, key: key.key.clone(), last_mac: String::new() };
    let host = "host1";
    let mut written = 0u64;
    let mut sealed = 0u64;
    let mut session = 0u64;
    let mut step = 0u64;
    let lines = lines.max(2);
    while written < lines {
        let secs = SAMPLE_EPOCH + written / 4;
        let micros = (written % 1_000_000) as u32;
        let record = if written == 0 {
            Record::new(Event::DaemonStart).text("version", "0.1.0").number("pid", 812).text("config", "/etc/vigil/vigil.toml")
        } else if written == lines - 1 {
            Record::new(Event::DaemonStop).text("signal", "SIGTERM").number("sessions", 0)
        } else if written % 10 == 9 {
            let line =
                syslog_line(layout, secs, micros, host, "sshd", 4242, "Accepted publickey for alice from 203.0.113.7 port 50522 ssh2");
            writeln!(out, "{line}")?;
            written += 1;
            continue;
        } else {
            step += 1;
            match step % 5 {
                1 => {
                    session += 1;
                    session_record(Event::SessionOpen, session, "alice")
                }
                2 => session_record(Event::IdleWarning, session, "alice").text("limit", Limit::Idle).number("ends_in_s", 60),
                3 => session_record(Event::ReauthRequired, session, "alice").text("reason", ReauthReason::Idle),
                4 => session_record(Event::ReauthGranted, session, "alice").text("method", "password"),
                _ => session_record(Event::SessionEnd, session, "alice").text("reason", EndReason::Idle),
            }
        };
        let message = chain.seal(&encode(&record, encoding), encoding);
        let line = syslog_line(layout, secs, micros, host, "vigild", 812, &message);
        writeln!(out, "{line}")?;
        written += 1;
        sealed += 1;
    }
    out.flush()?;
    Ok(sealed)
}

/// The seed corpus of the fuzz target `audit_lines` (audit/fuzz/corpus/audit_lines/):
/// small files sealed with `sample_key(1)`, untouched and with each kind of tampering,
/// and hostile lines. (name, content)
pub fn seed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let key = sample_key(1);
    let sample = |lines: u64, layout: Layout, encoding: Encoding| -> Vec<String> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = write_sample_log(&mut out, lines, layout, encoding, &key);
        String::from_utf8_lossy(&out).lines().map(str::to_string).collect()
    };
    let join = |lines: &[String]| -> Vec<u8> {
        let mut text = lines.join("\n");
        text.push('\n');
        text.into_bytes()
    };
    let kv = sample(16, Layout::Traditional, Encoding::KeyValue);
    let mut corpus: Vec<(&'static str, Vec<u8>)> = vec![
        ("good_kv_traditional", join(&kv)),
        ("good_json_rfc5424", join(&sample(16, Layout::Rfc5424, Encoding::Json))),
        ("good_kv_high_precision", join(&sample(16, Layout::HighPrecision, Encoding::KeyValue))),
        ("good_json_traditional", join(&sample(12, Layout::Traditional, Encoding::Json))),
    ];
    let mut deleted = kv.clone();
    deleted.remove(5);
    corpus.push(("tamper_deleted_line", join(&deleted)));
    let mut edited = kv.clone();
    edited[4] = edited[4].replace("alice", "alicf");
    corpus.push(("tamper_edited_value", join(&edited)));
    let mut swapped = kv.clone();
    swapped.swap(3, 4);
    corpus.push(("tamper_swapped_lines", join(&swapped)));
    let mut duplicated = kv.clone();
    duplicated.push(kv[2].clone());
    corpus.push(("tamper_duplicate_line", join(&duplicated)));
    let mut cut = kv[..10].to_vec();
    let mut chain = ChainState { next_seq: key.start_seq, key: key.key.clone(), last_mac: String::new() };
    for _ in 0..15 {
        chain.seal("event=x", Encoding::KeyValue);
    }
    cut.push(syslog_line(
        Layout::Traditional,
        SAMPLE_EPOCH + 60,
        0,
        "host1",
        "vigild",
        812,
        &chain.seal("event=seal by=root", Encoding::KeyValue),
    ));
    corpus.push(("tamper_cut_tail_then_seal", join(&cut)));
    corpus.push(("tamper_cut_tail", join(&kv[..9])));
    let mut forged = kv.clone();
    forged.insert(6, "Nov 26 04:20:00 host1 vigild: event=session_open session=99 ses=1 user=root uid=0 service=sshd tty=ssh rhost=evil seq=5 prev=0123456789abcdef mac=0123456789abcdef0123456789abcdef".into());
    corpus.push(("forged_logger_line", join(&forged)));
    let mut unsealed = kv.clone();
    unsealed.insert(3, "Nov 26 04:20:00 host1 vigild: event=session_open session=99 user=root".into());
    corpus.push(("unsealed_record", join(&unsealed)));
    let mut dropped = Vec::new();
    let mut chain = ChainState { next_seq: key.start_seq, key: key.key.clone(), last_mac: String::new() };
    for (i, record) in ["event=daemon_start", "event=session_open session=1 user=alice"].iter().enumerate() {
        dropped.push(syslog_line(
            Layout::Traditional,
            SAMPLE_EPOCH + i as u64,
            0,
            "host1",
            "vigild",
            812,
            &chain.seal(record, Encoding::KeyValue),
        ));
    }
    for _ in 0..3 {
        chain.seal("event=lost", Encoding::KeyValue);
    }
    for record in ["event=records_dropped count=3 why=\"syslog unreachable and the spool full\" first_seq=3", "event=daemon_stop"] {
        dropped.push(syslog_line(
            Layout::Traditional,
            SAMPLE_EPOCH + 9,
            0,
            "host1",
            "vigild",
            812,
            &chain.seal(record, Encoding::KeyValue),
        ));
    }
    corpus.push(("records_dropped", join(&dropped)));
    let mut two_hosts = Vec::new();
    for (a, b) in kv.iter().zip(sample(16, Layout::Traditional, Encoding::Json)) {
        two_hosts.push(a.clone());
        two_hosts.push(b.replace(" host1 ", " host2 "));
    }
    corpus.push(("two_hosts_one_key", join(&two_hosts)));
    let mut new_chain = kv.clone();
    let other = KeyFile { start_seq: 1, key: Key::from_bytes([0x33; KEY_BYTES]) };
    let mut chain = ChainState { next_seq: 1, key: other.key.clone(), last_mac: String::new() };
    new_chain.push(syslog_line(
        Layout::Traditional,
        SAMPLE_EPOCH + 99,
        0,
        "host1",
        "vigild",
        813,
        &chain.seal("event=daemon_start", Encoding::KeyValue),
    ));
    new_chain.push(kv[3].clone());
    corpus.push(("new_chain_then_old_record", join(&new_chain)));
    let sd: Vec<String> = sample(10, Layout::Rfc5424, Encoding::KeyValue)
        .iter()
        .map(|l| l.replacen(" - - ", " - [origin ip=\"10.0.0.1\" x=\"a\\\"]b\"][meta sequenceId=\"7\"] \u{feff}", 1))
        .collect();
    corpus.push(("rfc5424_structured_data_bom", join(&sd)));
    let mut hostile: Vec<u8> = join(&kv[..4]);
    for line in [
        &b"\x00\x01\x02\xff\xfe\xfd binary"[..],
        b"Nov 26 04:14:10 host1 vigild[812]: event=x#012Nov 26 04:14:10 host1 vigild[812]: event=y seq=3",
        b"Nov 26 04:14:10 host1 vigild[812]: \x1b[2J\x1b]0;owned\x07 event=session_open",
        b"Nov 26 04:14:10 host1 vigild[812]: event=\xff\xfe seq=1 prev=0000000000000000 mac=00000000000000000000000000000000",
        b"vigild[1]: ",
        b"Nov 26 04:14:10 host1 vigild[1]: ",
        b"Nov 26 04:14:10 \xe2\x80\xaehost1 vigild[1]: event=x",
        b"Nov 26 04:14:10 host1 vigild[1]: {\"event\":",
        b"Nov 26 04:14:10 host1 vigild[1]: {\"event\":\"x\",\"seq\":18446744073709551616,\"prev\":\"0000000000000000\",\"mac\":\"00000000000000000000000000000000\"}",
        b"Nov 26 04:14:10 host1 vigild[1]: event=x seq=4294967296 prev=0000000000000000 mac=00000000000000000000000000000000",
        b"<38>1 - - vigild - - [a b=\"\\",
        b"Nov 26 04:14:10 host1 pam_vigil[1]: event=reauth_required reason=daemon_unreachable",
    ] {
        hostile.extend_from_slice(line);
        hostile.push(b'\n');
    }
    hostile.extend_from_slice(&join(&kv[4..]));
    corpus.push(("hostile_mix", hostile));
    let mut long = b"Nov 26 04:14:10 host1 vigild[1]: event=x user=".to_vec();
    long.extend(std::iter::repeat_n(b'B', 5000));
    long.extend_from_slice(b"\n\r\r\n\n");
    corpus.push(("long_line", long));
    let mut mixed = kv[..5].to_vec();
    mixed.extend(sample(16, Layout::HighPrecision, Encoding::Json).into_iter().skip(5).take(5));
    mixed.extend(sample(16, Layout::Rfc5424, Encoding::KeyValue).into_iter().skip(10));
    corpus.push(("mixed_layouts_and_encodings", join(&mixed)));
    let mut prev = Vec::new();
    let mut chain = ChainState { next_seq: key.start_seq, key: key.key.clone(), last_mac: String::new() };
    let line = |record: &str| syslog_line(Layout::Traditional, SAMPLE_EPOCH, 0, "host1", "vigild", 812, record);
    prev.push(line(&chain.seal("event=daemon_start", Encoding::KeyValue)));
    chain.last_mac = "ffffffffffffffffffffffffffffffff".into();
    prev.push(line(&chain.seal("event=daemon_stop", Encoding::KeyValue)));
    corpus.push(("prev_mismatch", join(&prev)));
    corpus.push(("json_fragments", b"Nov 26 04:14:10 h vigild[1]: {\"event\":\"session_open\",\"session\":1,\"user\":{\"a\":[1,2,{}]},\"seq\":1,\"prev\":\"0000000000000000\",\"mac\":\"0123456789abcdef0123456789abcdef\"}\nNov 26 04:14:11 h vigild[1]: {\"event\":\"x\",\"seq\":2}\nNov 26 04:14:12 h vigild[1]: {\"EVENT\":\"x\"}\n".to_vec()));
    corpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(SAMPLE_EPOCH), (2026, 11, 26, 4, 14, 10));
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn sample_lines_parse() {
        for layout in [Layout::Traditional, Layout::HighPrecision, Layout::Rfc5424] {
            let line = syslog_line(layout, SAMPLE_EPOCH, 5, "h", "vigild", 812, "event=x");
            let parsed = crate::syslog_line::parse_line(&line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!((parsed.host, parsed.tag, parsed.pid, parsed.message), ("h", "vigild", Some(812), "event=x"), "{line}");
        }
    }
}
