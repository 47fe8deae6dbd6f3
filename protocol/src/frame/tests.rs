use zbus::message::Message;
use zbus::wire::Endian as ZEndian;

use super::*;
use crate::{MANAGER_INTERFACE, MANAGER_PATH};

pub(super) const UID: u32 = 1000;

/// What zbus's client sends: `AUTH EXTERNAL` with the uid in hex, `NEGOTIATE_UNIX_FD`,
/// `BEGIN`, in one write.
pub(super) fn handshake(uid: u32) -> Vec<u8> {
    let hex: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
    format!("\0AUTH EXTERNAL {hex}\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n").into_bytes()
}

pub(super) fn open_session(endian: ZEndian) -> Message {
    Message::method_call(MANAGER_PATH, "OpenSession")
        .interface(MANAGER_INTERFACE)
        .endian(endian)
        .build(&("alice", "sshd", "/dev/pts/3", "192.0.2.7", "", 4242u32, 17u32))
        .expect("a valid call")
}

pub(super) fn call(path: &str, member: &str, endian: ZEndian) -> Vec<u8> {
    Message::method_call(path, member)
        .interface("org.vigil1.Session")
        .sender(":1.7")
        .endian(endian)
        .build(&())
        .expect("a valid call")
        .data()
        .to_vec()
}

/// A signal, a method return and an error: messages whose fields the guard skips.
pub(super) fn not_calls() -> Vec<u8> {
    let signal = Message::signal(MANAGER_PATH, MANAGER_INTERFACE, "SessionOpened").build(&(7u64,)).expect("a valid signal");
    let reply = Message::method_return(&open_session(ZEndian::Little).header()).build(&(7u64,)).expect("a reply");
    let error = Message::error(&open_session(ZEndian::Big).header(), "org.vigil1.Error.Failed").build(&("no",)).expect("an error");
    [signal.data().to_vec(), reply.data().to_vec(), error.data().to_vec()].concat()
}

/// Feeds `bytes` in chunks of `size` (0: all at once); returns the reported paths and
/// the first refusal with the index of the chunk that carried it.
pub(super) fn run(bytes: &[u8], size: usize) -> (Vec<String>, Option<(usize, Refusal)>) {
    let mut guard = FrameGuard::new(UID);
    let mut paths = Vec::new();
    let chunks: Vec<&[u8]> = if size == 0 { vec![bytes] } else { bytes.chunks(size).collect() };
    for (index, chunk) in chunks.into_iter().enumerate() {
        if let Err(refusal) = guard.observe(chunk, &mut |path| paths.push(path.to_owned())) {
            return (paths, Some((index, refusal)));
        }
    }
    (paths, None)
}

/// The refusal with the byte that caused it (0-based), delivering one byte at a time.
fn refused_at(bytes: &[u8]) -> Option<(usize, Refusal)> {
    run(bytes, 1).1
}

#[test]
fn the_pipelined_handshake_is_the_uid_in_hex_of_its_decimal_digits() {
    assert_eq!(pipelined_handshake(0), b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n");
    assert_eq!(pipelined_handshake(1000), b"\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n");
}

#[test]
fn a_real_open_session_call_reports_its_path_in_both_byte_orders() {
    for endian in [ZEndian::Little, ZEndian::Big] {
        let stream = [handshake(UID), open_session(endian).data().to_vec()].concat();
        assert_eq!(run(&stream, 0), (vec![MANAGER_PATH.to_owned()], None), "{endian:?}");
    }
}

#[test]
fn the_path_is_reported_before_the_body() {
    let message = open_session(ZEndian::Little).data().to_vec();
    let fields_len = u32::from_le_bytes(message[12..16].try_into().expect("4 bytes")) as usize;
    let mut guard = FrameGuard::new(UID);
    let mut paths = Vec::new();
    guard.observe(&handshake(UID), &mut |p| paths.push(p.to_owned())).expect("handshake");
    assert!(guard.in_messages());
    guard.observe(&message[..16 + fields_len], &mut |p| paths.push(p.to_owned())).expect("header");
    assert_eq!(paths, [MANAGER_PATH]);
    guard.observe(&message[16 + fields_len..], &mut |p| paths.push(p.to_owned())).expect("body");
    assert_eq!(paths, [MANAGER_PATH], "reported once");
}

#[test]
fn messages_back_to_back_report_each_call_once_whatever_the_chunking() {
    let mut stream = handshake(UID);
    let mut expected = Vec::new();
    for id in 0..20u64 {
        let path = crate::session_path(id);
        let endian = if id % 3 == 0 { ZEndian::Big } else { ZEndian::Little };
        stream.extend(call(&path, "Status", endian));
        expected.push(path);
        if id % 5 == 0 {
            stream.extend(not_calls());
        }
    }
    stream.extend(open_session(ZEndian::Little).data().iter());
    expected.push(MANAGER_PATH.to_owned());
    for size in [0, 1, 2, 3, 5, 7, 8, 13, 16, 17, 64, 100, 1000, 100 * 1024] {
        assert_eq!(run(&stream, size), (expected.clone(), None), "chunks of {size}");
    }
}

#[test]
fn a_claimed_120_mb_body_is_refused_at_the_16th_byte() {
    let mut message = call(MANAGER_PATH, "OpenSession", ZEndian::Little);
    message[4..8].copy_from_slice(&120_000_000u32.to_le_bytes());
    message.extend(vec![0; 4096]);
    let prefix = handshake(UID);
    let stream = [prefix.clone(), message.clone()].concat();
    let fields_len = u64::from(u32::from_le_bytes(message[12..16].try_into().expect("4 bytes")));
    let bytes = (16 + fields_len).next_multiple_of(8) + 120_000_000;
    let refusal = Refusal::TooLarge { bytes };
    assert_eq!(refused_at(&stream), Some((prefix.len() + 15, refusal.clone())));
    assert_eq!(run(&stream, 0).1, Some((0, refusal.clone())));
    // The same in big-endian, with the header split at every point.
    let mut big = call(MANAGER_PATH, "OpenSession", ZEndian::Big);
    big[4..8].copy_from_slice(&120_000_000u32.to_be_bytes());
    let mut guard = FrameGuard::new(UID);
    guard.observe(&prefix, &mut |_| {}).expect("handshake");
    guard.observe(&big[..15], &mut |_| panic!("no call before the fields")).expect("15 bytes are fine");
    assert!(matches!(guard.observe(&big[15..16], &mut |_| {}), Err(Refusal::TooLarge { .. })));
    assert!(matches!(guard.observe(b"", &mut |_| {}), Err(Refusal::TooLarge { .. })), "stays refused");
}

#[test]
fn the_limit_counts_header_fields_and_padding() {
    // A signal whose fields alone claim more than the limit.
    let mut signal = not_calls()[..16].to_vec();
    signal[4..8].copy_from_slice(&0u32.to_le_bytes());
    signal[12..16].copy_from_slice(&(MAX_MESSAGE_BYTES as u32).to_le_bytes());
    let stream = [handshake(UID), signal].concat();
    assert_eq!(run(&stream, 0).1, Some((0, Refusal::TooLarge { bytes: MAX_MESSAGE_BYTES as u64 + 16 })));
    // A message of exactly the limit passes: 16 + 8 bytes of fields + body.
    let body = MAX_MESSAGE_BYTES as u32 - 24;
    let exact = raw(2, &field_u(5, 1), body);
    assert_eq!(exact.len(), MAX_MESSAGE_BYTES);
    assert_eq!(run(&[handshake(UID), exact].concat(), 4096), (vec![], None));
}

#[test]
fn malformed_primary_headers_are_refused_at_the_16th_byte() {
    let good = call(MANAGER_PATH, "Status", ZEndian::Little);
    let cases: [(usize, u8, &str); 5] = [
        (0, b'x', "unknown byte order"),
        (1, 0, "unknown message type"),
        (1, 5, "unknown message type"),
        (3, 2, "unknown protocol version"),
        (8, 0, "serial 0"),
    ];
    for (at, value, why) in cases {
        let mut bad = good.clone();
        bad[at] = value;
        if at == 8 {
            bad[8..12].fill(0);
        }
        let stream = [handshake(UID), bad].concat();
        assert_eq!(refused_at(&stream), Some((handshake(UID).len() + 15, Refusal::Malformed(why))), "{why}");
    }
}

/// A little-endian message of type `kind` with the fields array `fields` and a zero
/// body of `body_len` bytes.
fn raw(kind: u8, fields: &[u8], body_len: u32) -> Vec<u8> {
    let mut message = vec![b'l', kind, 0, 1];
    message.extend(body_len.to_le_bytes());
    message.extend(1u32.to_le_bytes());
    message.extend((fields.len() as u32).to_le_bytes());
    message.extend(fields);
    message.resize(message.len().next_multiple_of(8) + body_len as usize, 0);
    message
}

/// One header field, 8-aligned from the array's start, with a string-like value.
fn field_s(array: &mut Vec<u8>, code: u8, signature: &str, value: &str) {
    array.resize(array.len().next_multiple_of(8), 0);
    array.extend([code, signature.len() as u8]);
    array.extend(signature.as_bytes());
    array.push(0);
    array.resize(array.len().next_multiple_of(4), 0);
    array.extend((value.len() as u32).to_le_bytes());
    array.extend(value.as_bytes());
    array.push(0);
}

/// A `u` header field alone.
fn field_u(code: u8, value: u32) -> Vec<u8> {
    let mut array = vec![code, 1, b'u', 0];
    array.extend(value.to_le_bytes());
    array
}

fn outcome_of_call(fields: &[u8]) -> (Vec<String>, Option<Refusal>) {
    let (paths, refusal) = run(&[handshake(UID), raw(1, fields, 8)].concat(), 3);
    (paths, refusal.map(|(_, r)| r))
}

#[test]
fn header_fields_are_parsed_strictly() {
    let mut fields = Vec::new();
    field_s(&mut fields, 200, "s", "an unknown field is stepped over");
    field_s(&mut fields, 1, "o", "/org/vigil1/session/3");
    field_s(&mut fields, 3, "s", "Status");
    assert_eq!(outcome_of_call(&fields), (vec!["/org/vigil1/session/3".to_owned()], None));

    let mut no_path = Vec::new();
    field_s(&mut no_path, 3, "s", "Status");
    assert_eq!(outcome_of_call(&no_path).1, Some(Refusal::Malformed("method call without a path")));
    assert_eq!(outcome_of_call(&[]).1, Some(Refusal::Malformed("method call without a path")));

    let refused = |fields: &[u8]| outcome_of_call(fields).1.map(|r| r.to_string());
    let mut wrong_type = Vec::new();
    field_s(&mut wrong_type, 1, "s", "/org/vigil1");
    assert_eq!(refused(&wrong_type).as_deref(), Some("malformed input: header field of the wrong type"));
    let mut array_type = Vec::new();
    field_s(&mut array_type, 200, "ay", "xx");
    assert_eq!(refused(&array_type).as_deref(), Some("malformed input: header field of an unsupported type"));
    let mut twice = Vec::new();
    field_s(&mut twice, 1, "o", "/a");
    field_s(&mut twice, 1, "o", "/b");
    assert_eq!(refused(&twice).as_deref(), Some("malformed input: header field repeated"));
    for bad_path in ["", "org", "/org/", "//", "/a-b", "/é"] {
        let mut fields = Vec::new();
        field_s(&mut fields, 1, "o", bad_path);
        assert_eq!(refused(&fields).as_deref(), Some("malformed input: bad object path"), "{bad_path:?}");
    }
    let mut cut = Vec::new();
    field_s(&mut cut, 1, "o", "/org/vigil1");
    cut.pop();
    assert!(refused(&cut).is_some(), "a string without its NUL");
    let mut long_string = Vec::new();
    field_s(&mut long_string, 1, "o", "/org");
    long_string[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(refused(&long_string).as_deref(), Some("malformed input: header field runs past the fields array"));
    let mut code_zero = Vec::new();
    field_s(&mut code_zero, 0, "s", "x");
    assert_eq!(refused(&code_zero).as_deref(), Some("malformed input: header field code 0"));
}

#[test]
fn handshake_lines_are_bounded() {
    let auth = "AUTH EXTERNAL 31303030\r\n";
    // A 512-byte line (CR LF included) passes, one byte more is refused at that byte.
    let padded = |len: usize| format!("\0AUTH EXTERNAL 31303030{}\r\nBEGIN\r\n", " ".repeat(len - auth.len()));
    assert!(run(padded(MAX_HANDSHAKE_LINE_BYTES).as_bytes(), 1).1.is_none());
    let long = padded(MAX_HANDSHAKE_LINE_BYTES + 1);
    assert_eq!(refused_at(long.as_bytes()), Some((1 + MAX_HANDSHAKE_LINE_BYTES, Refusal::HandshakeTooLong)));
    // A line that never ends is refused as soon as it is too long.
    let endless = [b"\0".as_slice(), &[b'A'; 100_000]].concat();
    assert_eq!(run(&endless, 0).1, Some((0, Refusal::HandshakeTooLong)));
    // 16 lines with BEGIN last pass; a 16th that is not BEGIN is refused.
    let lines = |n: usize, last: &str| format!("\0{}{auth}{last}", "NEGOTIATE_UNIX_FD\r\n".repeat(n - 2));
    assert!(run(lines(MAX_HANDSHAKE_LINES, "BEGIN\r\n").as_bytes(), 0).1.is_none());
    let too_many = lines(MAX_HANDSHAKE_LINES, "NEGOTIATE_UNIX_FD\r\n");
    assert_eq!(refused_at(too_many.as_bytes()), Some((too_many.len() - 1, Refusal::HandshakeTooLong)));
}

#[test]
fn refusals_have_stable_reasons() {
    assert_eq!(Refusal::TooLarge { bytes: 1 }.reason().as_str(), "too_large");
    assert_eq!(Refusal::Malformed("x").reason().as_str(), "malformed");
    assert_eq!(Refusal::HandshakeTooLong.reason().as_str(), "handshake_too_long");
}

#[test]
fn bytes_after_begin_in_the_same_chunk_are_a_message() {
    let stream = [handshake(UID), b"l".to_vec()].concat();
    assert_eq!(run(&stream, 0), (vec![], None), "a header's first byte waits for the rest");
    let mut guard = FrameGuard::new(UID);
    let mut header = call(MANAGER_PATH, "Status", ZEndian::Little);
    header[0] = b'x';
    assert_eq!(guard.observe(&[handshake(UID), header].concat(), &mut |_| {}), Err(Refusal::Malformed("unknown byte order")));
}

/// The guard's cost for one login's input (zbus client handshake + `OpenSession`), in
/// the chunks vigild's read half gets them (the handshake's 1024-byte reads, then a
/// 16-byte header read, then the rest), beside zbus deserialising the same call's body,
/// which vigild does for every call anyway. For BENCHMARKS.md:
/// `cargo test --release -p vigil-protocol -- --ignored --nocapture bench_guard_cost_of_a_login`.
#[test]
#[ignore]
fn bench_guard_cost_of_a_login() {
    use std::hint::black_box;
    use std::time::Instant;
    const ROUNDS: u32 = 200_000;
    let message = open_session(ZEndian::Little);
    let (hello, bytes) = (handshake(UID), message.data().to_vec());
    let chunks = [hello.as_slice(), &bytes[..16], &bytes[16..]];
    let best_of_5 = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                (0..ROUNDS).for_each(|_| f());
                start.elapsed() / ROUNDS
            })
            .min()
            .expect("5 runs")
    };
    let guard = best_of_5(&|| {
        let mut guard = FrameGuard::new(UID);
        for chunk in chunks {
            black_box(guard.observe(black_box(chunk), &mut |path| {
                black_box(path);
            }))
            .expect("a login passes");
        }
    });
    let body = best_of_5(&|| {
        let body = black_box(&message).body();
        let args: (&str, &str, &str, &str, &str, u32, u32) = body.deserialize().expect("body");
        black_box(args);
    });
    println!(
        "{} bytes: guard {guard:?} per login; baseline, zbus deserialising the OpenSession body: {body:?} (best of 5 x {ROUNDS})",
        hello.len() + bytes.len()
    );
}

// ---- vigild's bus connection -----------------------------------------------------------

/// What a bus daemon answers zbus's pipelined client handshake with (no fd passing).
const BUS_ANSWER: &[u8] = b"OK 0123456789abcdef0123456789abcdef\r\n";

fn run_bus(bytes: &[u8], size: usize) -> (Vec<String>, Option<Refusal>) {
    let mut guard = FrameGuard::for_bus();
    let mut paths = Vec::new();
    let chunks: Vec<&[u8]> = if size == 0 { vec![bytes] } else { bytes.chunks(size).collect() };
    for chunk in chunks {
        if let Err(refusal) = guard.observe(chunk, &mut |path| paths.push(path.to_owned())) {
            return (paths, Some(refusal));
        }
    }
    (paths, None)
}

#[test]
fn on_the_bus_each_call_path_is_reported_after_the_answer_line_whatever_the_chunking() {
    let stream = [
        BUS_ANSWER.to_vec(),
        not_calls(),
        call("/org/vigil1/session/12", "Get", ZEndian::Little),
        call("/org/vigil1/session/13", "Get", ZEndian::Big),
    ]
    .concat();
    for size in [0, 1, 2, 7, 64] {
        let (paths, refusal) = run_bus(&stream, size);
        assert_eq!(paths, ["/org/vigil1/session/12", "/org/vigil1/session/13"], "chunks of {size}");
        assert_eq!(refusal, None, "chunks of {size}");
    }
}

#[test]
fn on_the_bus_a_message_over_the_peer_limit_passes_unread_and_the_next_is_seen() {
    // 1 MiB: more than a private-socket peer may send, well within what a bus relays.
    let big = raw(1, &[], 1 << 20);
    let stream = [BUS_ANSWER.to_vec(), big, call("/org/vigil1/session/4", "Get", ZEndian::Little)].concat();
    assert_eq!(run_bus(&stream, 4096), (vec!["/org/vigil1/session/4".to_owned()], None));
}

#[test]
fn on_the_bus_only_what_no_bus_relays_is_refused() {
    let too_big = raw(1, &[], 0).into_iter().take(16).collect::<Vec<u8>>();
    let mut header = too_big;
    header[4..8].copy_from_slice(&(MAX_BUS_MESSAGE_BYTES as u32).to_le_bytes());
    let (_, refusal) = run_bus(&[BUS_ANSWER.to_vec(), header].concat(), 0);
    assert!(matches!(refusal, Some(Refusal::TooLarge { .. })), "{refusal:?}");
    let endless = [b"OK ".to_vec(), vec![b'0'; 2000]].concat();
    assert_eq!(run_bus(&endless, 100).1, Some(Refusal::HandshakeTooLong));
}

#[test]
fn calls_awaiting_a_reply_are_taken_once_each_with_their_serials_and_calls_that_want_none_are_not() {
    let mut stream = handshake(UID);
    let mut serials = Vec::new();
    for id in 0..7u64 {
        let endian = if id % 2 == 0 { ZEndian::Big } else { ZEndian::Little };
        let message = Message::method_call(crate::session_path(id).as_str(), "Status")
            .interface("org.vigil1.Session")
            .endian(endian)
            .build(&())
            .expect("a valid call");
        serials.push(message.primary_header().serial_num().get());
        stream.extend(message.data().iter());
        stream.extend(not_calls());
    }
    let no_reply = Message::method_call(MANAGER_PATH, "Ping")
        .interface("org.freedesktop.DBus.Peer")
        .with_flags(zbus::message::Flags::NO_REPLY_EXPECTED)
        .build(&())
        .expect("a valid call");
    stream.extend(no_reply.data().iter());
    for size in [0, 1, 16, 17, 100] {
        let mut guard = FrameGuard::new(UID);
        let chunks: Vec<&[u8]> = if size == 0 { vec![&stream] } else { stream.chunks(size).collect() };
        let mut taken = Vec::new();
        for chunk in chunks {
            guard.observe(chunk, &mut |_| {}).expect("well-formed input");
            taken.extend(guard.take_awaiting_replies());
        }
        assert_eq!(taken, serials, "chunks of {size}");
    }
}
