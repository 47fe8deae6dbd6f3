//! The guard's handshake against a real zbus server: it must leave the handshake on the
//! very `BEGIN` on which zbus does (see `sasl`), so each script here is also played to a
//! zbus 6 p2p server, followed by a method call that only gets an answer if zbus reads
//! it as a message from the same byte on.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use zbus::message::Message;

use super::*;
use crate::MANAGER_PATH;

/// The peer's uid the guard and the zbus server are both given.
const UID: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Both leave the handshake at the end of the script.
    Begun,
    /// The guard refuses; zbus's server fails the handshake as well.
    RefusedLikeZbus,
    /// The guard refuses where zbus's server goes on (it answers `ERROR`, the
    /// specification says to disconnect): the caller drops the connection.
    RefusedZbusGoesOn,
}

// 1000 is "31303030" in hex, "+1000" is "2b31303030"; 0 is "30".
const HANDSHAKES: &[(&str, Expect)] = &[
    ("\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH EXTERNAL\r\nDATA 31303030\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH EXTERNAL 2b31303030\r\nBEGIN\r\n", Expect::Begun),
    ("\0 AUTH\tEXTERNAL\r31303030 x\r\n BEGIN  now\r\n", Expect::Begun),
    ("\0AUTH ANONYMOUS 7a627573\r\nAUTH EXTERNAL 31303030\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH\r\nAUTH EXTERNAL 31303030\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH EXTERNAL 30\r\nAUTH EXTERNAL 31303030\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH EXTERNAL 31303030\r\nCANCEL\r\nAUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n", Expect::Begun),
    ("\0AUTH EXTERNAL 31303030\r\nAUTH EXTERNAL 30\r\nDATA 30\r\nBEGIN\r\n", Expect::Begun),
    ("\0DATA\r\nNEGOTIATE_UNIX_FD\r\nAUTH EXTERNAL 31303030\r\nBEGIN\r\n", Expect::Begun),
    ("\0BEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH EXTERNAL 30\r\nBEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH ANONYMOUS\r\nBEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH EXTERNAL\r\nBEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH EXTERNAL\r\nDATA 30\r\nBEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH EXTERNAL 31303030\r\nERROR oops\r\nBEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH EXTERNAL 31303030\r\nOK 0123456789abcdef0123456789abcdef\r\nBEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH EXTERNAL 31303030\r\nAGREE_UNIX_FD\r\nBEGIN\r\n", Expect::RefusedZbusGoesOn),
    ("\0AUTH EXTERNAL 3\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0AUTH EXTERNAL 7a7a\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0AUTH EXTERNAL ff\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0AUTH EXTERNAL \u{e9}\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0AUTH KERBEROS\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0HELLO\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0AUTH EXTERNAL 31303030\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("AUTH EXTERNAL 31303030\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
    ("\0AUTH EXTERNAL 31303030\r\nDATA 3\r\nBEGIN\r\n", Expect::RefusedLikeZbus),
];

#[test]
fn handshakes_end_on_the_begin_zbus_accepts() {
    for &(script, expect) in HANDSHAKES {
        let mut guard = FrameGuard::new(UID);
        let result = guard.observe(script.as_bytes(), &mut |_| {});
        match expect {
            Expect::Begun => assert!(result.is_ok() && guard.in_messages(), "{script:?}: {result:?}"),
            _ => assert!(matches!(result, Err(Refusal::Malformed(_))), "{script:?}: {result:?}"),
        }
        // Byte by byte gives the same.
        let mut guard = FrameGuard::new(UID);
        let one_by_one = script.as_bytes().iter().try_for_each(|b| guard.observe(&[*b], &mut |_| {}));
        assert_eq!(one_by_one, result, "{script:?}");
    }
}

struct Test;

#[zbus::interface(name = "org.vigil1.Test")]
impl Test {
    fn answer(&self) -> u32 {
        42
    }
}

/// How a real zbus p2p server (as vigild builds it) takes `script` followed by a call.
#[derive(Debug, PartialEq, Eq)]
enum Zbus {
    /// The handshake failed.
    Failed,
    /// The handshake ended and the call after it was answered.
    Answered,
    /// The handshake ended but the call went unanswered: zbus left it elsewhere.
    Unanswered,
}

fn zbus_server_takes(script: &[u8]) -> Zbus {
    let call = Message::method_call(MANAGER_PATH, "Answer").interface("org.vigil1.Test").build(&()).expect("a valid call");
    let (mut client, server) = UnixStream::pair().expect("a socket pair");
    client.write_all(&[script, call.data()].concat()).expect("write");
    // EOF after the script: a server still in its handshake fails instead of waiting.
    client.shutdown(Shutdown::Write).expect("shutdown");
    let built = zruntime::block_on(async {
        zbus::connection::Builder::unix_stream(server)
            .server(zbus::Guid::generate())
            .p2p()
            .user_id(UID)
            .serve_at(MANAGER_PATH, Test)
            .build()
            .await
    });
    let Ok(_connection) = built else { return Zbus::Failed };
    // The answer, a METHOD_RETURN ('l', 2, flags, 1) after the handshake's text lines;
    // the connection runs on zruntime's helper thread meanwhile. Bounded: 2 s.
    client.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let (mut received, mut buf, start) = (Vec::new(), [0u8; 4096], Instant::now());
    while start.elapsed() < Duration::from_secs(2) {
        if received.windows(4).any(|w| w[0] == b'l' && w[1] == 2 && w[3] == 1) {
            return Zbus::Answered;
        }
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    Zbus::Unanswered
}

#[test]
fn handshakes_end_where_zbus_ends_them() {
    for &(script, expect) in HANDSHAKES {
        let zbus = zbus_server_takes(script.as_bytes());
        match expect {
            Expect::Begun => assert_eq!(zbus, Zbus::Answered, "{script:?}"),
            Expect::RefusedLikeZbus => assert_eq!(zbus, Zbus::Failed, "{script:?}"),
            // zbus would go on past the line the guard refuses; what it does after
            // does not matter, as the caller drops the connection at the refusal.
            Expect::RefusedZbusGoesOn => {}
        }
    }
}

#[test]
fn the_guard_reports_the_call_after_each_accepted_handshake() {
    let call = Message::method_call(MANAGER_PATH, "Answer").build(&()).expect("a valid call");
    for &(script, expect) in HANDSHAKES.iter().filter(|(_, expect)| *expect == Expect::Begun) {
        let mut paths = Vec::new();
        let mut guard = FrameGuard::new(UID);
        let stream = [script.as_bytes(), call.data()].concat();
        assert_eq!(guard.observe(&stream, &mut |p| paths.push(p.to_owned())), Ok(()), "{script:?} {expect:?}");
        assert_eq!(paths, [MANAGER_PATH], "{script:?}");
    }
}

/// zbus 6.2's server handshake panics (an index out of bounds in its line reader) on a
/// line that is a bare `\n` after a complete line; the guard refuses that `\n` before
/// zbus sees it.
#[test]
fn a_bare_line_feed_that_makes_zbus_panic_is_refused() {
    let script = b"\0AUTH EXTERNAL 31303030\r\n\n";
    let mut guard = FrameGuard::new(UID);
    assert_eq!(guard.observe(&script[..script.len() - 1], &mut |_| {}), Ok(()));
    assert_eq!(guard.observe(b"\n", &mut |_| {}), Err(Refusal::Malformed("handshake line not ended by CR LF")));
}
