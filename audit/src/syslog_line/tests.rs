//! Tests of reading syslog lines: traditional and high-precision timestamps, lines that
//! are not syslog, the guessed year, and the byte cap.

use super::*;

#[test]
fn traditional() {
    let l = parse_line("Nov 26 04:14:10 host1 vigild[812]: event=daemon_start seq=1").unwrap();
    assert_eq!(l.format, Format::Traditional);
    assert_eq!((l.host, l.tag, l.pid, l.message), ("host1", "vigild", Some(812), "event=daemon_start seq=1"));
    assert_eq!(l.timestamp_text, "Nov 26 04:14:10");
    let ts = l.timestamp.unwrap();
    assert_eq!((ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second), (None, 11, 26, 4, 14, 10));
    let l = parse_line("Nov  6 04:14:10 h vigild: event=x").unwrap();
    assert_eq!((l.timestamp.unwrap().day, l.tag, l.pid, l.message), (6, "vigild", None, "event=x"));
    assert_eq!(l.timestamp_text, "Nov  6 04:14:10");
    let l = parse_line("<38>Nov 26 04:14:10 h pam_vigil[9]: event=y").unwrap();
    assert_eq!((l.tag, l.message), ("pam_vigil", "event=y"));
    // No tag: a syslog line, but not one of ours.
    let l = parse_line("Nov 26 04:14:10 h just some words").unwrap();
    assert_eq!((l.tag, l.message), ("", "just some words"));
    let l = parse_line("Nov 26 04:14:10 h vigild[1]: ").unwrap();
    assert_eq!((l.tag, l.message), ("vigild", ""));
}

#[test]
fn high_precision() {
    let l = parse_line("2026-11-26T04:14:10.123456+01:00 h vigild[812]: event=x").unwrap();
    assert_eq!(l.format, Format::HighPrecision);
    let ts = l.timestamp.unwrap();
    assert_eq!((ts.year, ts.nanos, ts.utc_offset_s), (Some(2026), 123_456_000, Some(3600)));
    let t = ts.to_system_time(SystemTime::now()).unwrap();
    assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_795_666_450 - 3600);
    assert_eq!(l.message, "event=x");
}

#[test]
fn rfc5424() {
    let l = parse_line("<38>1 2026-11-26T04:14:10.123Z host vigild 812 - - event=x seq=2").unwrap();
    assert_eq!((l.format, l.host, l.tag, l.pid, l.message), (Format::Rfc5424, "host", "vigild", Some(812), "event=x seq=2"));
    let l = parse_line("<38>1 2026-11-26T04:14:10Z host vigild - ID47 [a b=\"x\\\"] y\"][c@1 d=\"]\"] \u{feff}event=x").unwrap();
    assert_eq!((l.pid, l.message), (None, "event=x"));
    let l = parse_line("<38>1 - - vigild 1 - -").unwrap();
    assert_eq!((l.timestamp, l.message), (None, ""));
    // rsyslog keeps the space before a traditional message.
    let l = parse_line("<38>1 2026-11-26T04:14:10Z h vigild 1 - -  event=x").unwrap();
    assert_eq!(l.message, "event=x");
    assert!(parse_line("<38>1 2026-11-26T04:14:10Z h vigild 1 - [unclosed").is_none());
}

#[test]
fn not_syslog() {
    for bad in [
        "",
        "vigild[1]: ",
        "hello",
        "Nov",
        "Nov 26",
        "Nov 26 04:14:10",
        "Nov 26 25:14:10 h t: m",
        "Nov 32 04:14:10 h t: m",
        "<999>Nov 26 04:14:10 h t: m",
        "2026-13-26T04:14:10Z h t: m",
        "{\"event\":\"x\"}",
        "<38>1 ",
        "\u{1b}[31mNov 26 04:14:10 h t: m",
    ] {
        assert!(parse_line(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn year_is_guessed() {
    let now = UNIX_EPOCH + Duration::from_secs(1_795_666_450); // 2026-11-26T04:14:10Z
    let ts = parse_line("Dec 31 23:00:00 h t: m").unwrap().timestamp.unwrap();
    let t = ts.to_system_time(now).unwrap();
    assert_eq!(civil_year_of(unix_secs(t) + 7200), 2026, "December is last year's: {t:?}");
    let ts = parse_line("Nov 25 23:00:00 h t: m").unwrap().timestamp.unwrap();
    let t = ts.to_system_time(now).unwrap();
    assert!(t < now && now.duration_since(t).unwrap() < Duration::from_secs(3 * 86_400));
}

#[test]
fn lines_are_read_as_bytes_and_capped() {
    let mut data = b"a\r\n\xff\xfe\nlast".to_vec();
    data.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES * 2 + 7));
    data.extend_from_slice(b"\nend");
    let mut seen = Vec::new();
    let stats = for_each_line(io::BufReader::with_capacity(1000, &data[..]), |n, text, cut| seen.push((n, text.len(), cut))).unwrap();
    assert_eq!(stats, ReadStats { lines: 4, overlong: 1, bytes: data.len() as u64 });
    assert_eq!(seen, [(1, 1, false), (2, 6, false), (3, MAX_LINE_BYTES, true), (4, 3, false)]);
    let mut starts = Vec::new();
    for_each_line_at(io::BufReader::with_capacity(1000, &data[..]), |_, offset, _, _| starts.push(offset)).unwrap();
    assert_eq!(starts, [0, 3, 6, (data.len() - 3) as u64], "where each line starts");
}
