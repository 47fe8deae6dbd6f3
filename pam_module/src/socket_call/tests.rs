//! Tests of the one blocking exchange against scripted servers on a real socket:
//! deadlines, bounds on what a server sends, and bus replies.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::*;
use crate::args::Target;

/// Tests that open sockets take this first: one of them counts this process's
/// descriptors, which a socket of a test running meanwhile would change.
static SOCKETS: Mutex<()> = Mutex::new(());

fn sockets() -> std::sync::MutexGuard<'static, ()> {
    SOCKETS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn private(path: &Path) -> Endpoint {
    Endpoint::of(&Target::Socket(path.to_path_buf())).unwrap()
}

fn bus(path: &Path) -> Endpoint {
    Endpoint::of(&Target::Bus(format!("unix:path={}", path.display()))).unwrap()
}

/// A directory of its own for a test's socket, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vigil-socket-call-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("socket")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a fake server saw of the client: its handshake lines, then the members of
/// its messages in order, all read before the server wrote anything.
#[derive(Debug, PartialEq)]
struct Seen {
    lines: Vec<String>,
    members: Vec<String>,
}

const GUID: &str = "0123456789abcdef0123456789abcdef";

/// A server on `path` for one connection: it reads the client's handshake and
/// `messages` messages, then writes what `answer` makes of those messages. Bounded:
/// it waits at most 2 s for the client to connect and to send.
fn serve(path: &Path, messages: usize, answer: impl FnOnce(&[Message]) -> Vec<u8> + Send + 'static) -> JoinHandle<Seen> {
    let listener = UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut accepted = None;
        for _ in 0..200 {
            match listener.accept() {
                Ok((stream, _)) => {
                    accepted = Some(stream);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let stream = accepted.expect("the client connects within 2 s");
        stream.set_nonblocking(false).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut incoming = Incoming::new(stream, Instant::now() + Duration::from_secs(2), Duration::from_secs(2));
        let lines = vec![incoming.sasl_line().unwrap(), incoming.sasl_line().unwrap()];
        let received: Vec<Message> = (0..messages).map(|_| incoming.message().unwrap()).collect();
        let members = received.iter().map(|m| m.header().member().map(|n| n.to_string()).unwrap_or_default()).collect();
        writer.write_all(&answer(&received)).unwrap();
        Seen { lines, members }
    })
}

/// One `CloseSession` call to a fake server on a fresh socket, vigild's own or (`on_bus`)
/// a bus's, that answers with what `answer` makes of the messages it read (one, or
/// `Hello` and the call); the call's result and what the server saw.
fn exchange(name: &str, on_bus: bool, answer: impl FnOnce(&[Message]) -> Vec<u8> + Send + 'static) -> (Result<Message, ClientError>, Seen) {
    let _sockets = sockets();
    let scratch = Scratch::new(name);
    let path = scratch.socket();
    let (endpoint, messages) = if on_bus { (bus(&path), 2) } else { (private(&path), 1) };
    let server = serve(&path, messages, answer);
    let result = call(&endpoint, "CloseSession", &(7u64,), Duration::from_secs(2));
    (result, server.join().unwrap())
}

fn ok_line() -> Vec<u8> {
    format!("OK {GUID}\r\n").into_bytes()
}

/// What dbus-daemon sends a new client before the reply to its first call.
fn greeting(hello: &Message) -> Vec<u8> {
    let mut out = ok_line();
    out.extend_from_slice(Message::method_return(&hello.header()).build(&(":1.7",)).unwrap().data().bytes());
    let acquired = Message::signal(BUS_PATH, BUS_NAME, "NameAcquired").destination(":1.7").build(&(":1.7",)).unwrap();
    out.extend_from_slice(acquired.data().bytes());
    out
}

fn error(to: &Message, name: &str, text: &str) -> Vec<u8> {
    Message::error(&to.header(), name).build(&(text,)).unwrap().data().bytes().to_vec()
}

#[test]
fn message_length_counts_header_padding_and_body() {
    let m = Message::method_call("/org/vigil1", "CloseSession").build(&(7u64,)).unwrap();
    let bytes = m.data().bytes();
    assert_eq!(message_length(&bytes[..FIXED_HEADER_BYTES]).unwrap(), bytes.len());
}

#[test]
fn a_missing_socket_is_unreachable_and_costs_no_descriptor() {
    let _sockets = sockets();
    let before = std::fs::read_dir("/proc/self/fd").unwrap().count();
    for endpoint in [private(Path::new("/nonexistent/vigil/private")), bus(Path::new("/nonexistent/dbus/system_bus_socket"))] {
        let e = call(&endpoint, "CloseSession", &(1u64,), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::Unreachable(_)), "{e:?}");
    }
    assert_eq!(std::fs::read_dir("/proc/self/fd").unwrap().count(), before);
}

/// A server that accepts and never answers: the call ends at its deadline.
#[test]
fn a_silent_server_costs_the_deadline_and_no_more() {
    let _sockets = sockets();
    let scratch = Scratch::new("silent");
    let path = scratch.socket();
    let listener = UnixListener::bind(&path).unwrap();
    for endpoint in [private(&path), bus(&path)] {
        let started = Instant::now();
        let e = call(&endpoint, "CloseSession", &(1u64,), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ClientError::Timeout(_)), "{e:?}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(3), "{took:?}");
    }
    drop(listener);
}

/// A peer that answers with a reply claiming a huge body is cut off, not believed.
#[test]
fn a_reply_claiming_a_huge_body_is_refused() {
    let mut fixed = [0u8; FIXED_HEADER_BYTES];
    fixed[0] = b'l';
    fixed[1] = 2; // method return
    fixed[3] = 1; // version
    fixed[4..8].copy_from_slice(&(100_000_000u32).to_le_bytes());
    fixed[8..12].copy_from_slice(&1u32.to_le_bytes());
    let total = message_length(&fixed).unwrap();
    assert!(total > MAX_REPLY_BYTES);
}

/// The whole client side is written before the server says anything: AUTH, BEGIN,
/// Hello, the call; the Hello reply and NameAcquired are skipped for the call's reply.
#[test]
fn a_bus_call_is_one_write_and_its_reply_is_found_after_the_greeting() {
    let (reply, seen) = exchange("bus", true, |m| {
        let mut out = greeting(&m[0]);
        out.extend_from_slice(Message::method_return(&m[1].header()).build(&(42u64,)).unwrap().data().bytes());
        out
    });
    assert_eq!(reply.unwrap().body().deserialize::<u64>().unwrap(), 42);
    let handshake = vigil_protocol::frame::pipelined_handshake(nix::unistd::geteuid().as_raw());
    let auth = String::from_utf8_lossy(&handshake[..handshake.len() - b"\r\nBEGIN\r\n".len()]).into_owned();
    assert_eq!(seen, Seen { lines: vec![auth, "BEGIN".into()], members: vec!["Hello".into(), "CloseSession".into()] });
}

#[test]
fn the_private_socket_gets_no_hello() {
    let (reply, seen) = exchange("private", false, |m| {
        let mut out = ok_line();
        out.extend_from_slice(Message::method_return(&m[0].header()).build(&()).unwrap().data().bytes());
        out
    });
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(seen.members, vec!["CloseSession".to_string()]);
}

/// The error of one bus call against a server that greets and then answers the call
/// with `answer(call)`.
fn bus_error(name: &str, answer: impl FnOnce(&Message) -> Vec<u8> + Send + 'static) -> ClientError {
    let (result, _) = exchange(name, true, move |m| {
        let mut out = greeting(&m[0]);
        out.extend_from_slice(&answer(&m[1]));
        out
    });
    result.unwrap_err()
}

#[test]
fn bus_errors_keep_their_meaning() {
    let nobody = bus_error("unknown", |c| error(c, "org.freedesktop.DBus.Error.ServiceUnknown", "The name is not activatable"));
    assert!(matches!(nobody, ClientError::Unreachable(_)), "{nobody:?}");
    let policy = bus_error("denied", |c| error(c, "org.freedesktop.DBus.Error.AccessDenied", "Rejected send message"));
    assert_eq!((policy.reason().as_str(), policy.error_name()), ("access_denied", Some("org.freedesktop.DBus.Error.AccessDenied")));
    let gone = bus_error("gone", |c| error(c, "org.vigil1.Error.NoSuchSession", "no session 1"));
    assert!(matches!(gone, ClientError::NoSuchSession), "{gone:?}");
}

#[test]
fn a_refused_hello_is_an_outage() {
    let (result, _) = exchange("hello", true, |m| {
        let mut out = ok_line();
        out.extend_from_slice(&error(&m[0], "org.freedesktop.DBus.Error.LimitsExceeded", "too many connections"));
        out
    });
    match result.unwrap_err() {
        ClientError::Unreachable(text) => assert!(text.contains("Hello") && text.contains("too many connections"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_messages_are_skipped_a_few_times_only() {
    let e = bus_error("chatty", |c| {
        let mut out = Vec::new();
        for _ in 0..MAX_OTHER_MESSAGES {
            out.extend_from_slice(Message::signal("/a", "a.b", "C").build(&("x",)).unwrap().data().bytes());
        }
        out.extend_from_slice(Message::method_return(&c.header()).build(&(1u64,)).unwrap().data().bytes());
        out
    });
    assert!(matches!(&e, ClientError::Unreachable(t) if t.contains("among")), "{e:?}");
}

#[test]
fn everything_before_the_reply_counts_towards_the_size_bound() {
    let e = bus_error("big", |c| {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.extend_from_slice(Message::signal("/a", "a.b", "C").build(&("x".repeat(20_000),)).unwrap().data().bytes());
        }
        out.extend_from_slice(Message::method_return(&c.header()).build(&(1u64,)).unwrap().data().bytes());
        out
    });
    assert!(matches!(&e, ClientError::Unreachable(t) if t.contains("first")), "{e:?}");
}

#[test]
fn the_ok_line_must_carry_the_guid_the_address_names() {
    let named = |guid: &str| Endpoint::of(&Target::Bus(format!("unix:path=/x,guid={guid}"))).unwrap();
    assert!(check_ok(&format!("OK {GUID}"), &named(GUID)).is_ok());
    assert!(check_ok(&format!("OK {GUID}"), &named(&"f".repeat(32))).is_err());
    assert!(check_ok(&format!("OK {GUID}"), &bus(Path::new("/x"))).is_ok());
    assert!(check_ok("REJECTED EXTERNAL", &bus(Path::new("/x"))).is_err());
}

#[test]
fn answers_are_told_apart_by_reply_serial() {
    let call = Message::method_call("/org/vigil1", "CloseSession").build(&(1u64,)).unwrap();
    let hello = Message::method_call(BUS_PATH, "Hello").build(&()).unwrap();
    let serials = Serials { call: call.primary_header().serial_num(), hello: Some(hello.primary_header().serial_num()) };
    let hello_reply = Message::method_return(&hello.header()).build(&(":1.7",)).unwrap();
    assert!(serials.answer(hello_reply, "CloseSession").is_none());
    let signal = Message::signal(BUS_PATH, BUS_NAME, "NameAcquired").build(&(":1.7",)).unwrap();
    assert!(serials.answer(signal, "CloseSession").is_none());
    let reply = Message::method_return(&call.header()).build(&()).unwrap();
    assert!(matches!(serials.answer(reply, "CloseSession"), Some(Ok(_))));
    let refusal = Message::error(&call.header(), "org.vigil1.Error.InvalidArgument").build(&("bad",)).unwrap();
    assert!(matches!(serials.answer(refusal, "CloseSession"), Some(Err(ClientError::Refused { .. }))));
}
