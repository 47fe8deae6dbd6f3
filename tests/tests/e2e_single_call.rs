//! vigild answers the PAM module's one call per connection itself, without a zbus
//! connection (`daemon/src/rpc/single_call.rs`); every other opening goes to zbus with what
//! was read replayed. These tests speak to a real vigild over its private socket with
//! raw bytes, the way clients other than the module do, and check that each way of
//! opening a connection gets the answer zbus would give: a module call written in
//! pieces, a second call pipelined behind the first on the same connection, a call too
//! long for the quick path, a client that waits for `OK`. The module's own calls are in
//! every other e2e file. Needs root and the release build: see tests/README.md.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vigil_e2e::{Harness, TestUser, VigildOpts, require_root};
use zbus::message::{Message, Type};
use zbus::wire::serialized::{Context, Data};
use zbus::wire::{DynamicType, Endian};

const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A session id vigild never gave out.
const NO_SUCH_ID: u64 = 4_000_000_000;

fn vigild() -> Harness {
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    h
}

fn connect(h: &Harness) -> UnixStream {
    let stream = UnixStream::connect(h.private_socket()).expect("connect to vigild's private socket");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

/// `\0AUTH EXTERNAL <hex of "0">` and `BEGIN`, as the module sends them (we are root).
const ROOT_HANDSHAKE: &[u8] = b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n";

fn manager_call<B: serde::Serialize + DynamicType>(member: &str, body: &B) -> Message {
    Message::method_call(vigil_protocol::MANAGER_PATH, member)
        .interface(vigil_protocol::MANAGER_INTERFACE)
        .destination(vigil_protocol::BUS_NAME)
        .build(body)
        .unwrap()
}

/// The module's whole side of a connection: the handshake, then `calls`.
fn opening(calls: &[&Message]) -> Vec<u8> {
    let mut bytes = ROOT_HANDSHAKE.to_vec();
    for call in calls {
        bytes.extend_from_slice(call.data().bytes());
    }
    bytes
}

/// Reads the server's `OK` line, then messages until one replies to `serial`.
struct Replies {
    stream: UnixStream,
    buffer: Vec<u8>,
}

impl Replies {
    fn new(stream: UnixStream) -> Self {
        Replies { stream, buffer: Vec::new() }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).expect("vigild answers within the timeout");
        assert!(n > 0, "vigild closed the connection before answering");
        self.buffer.extend_from_slice(&chunk[..n]);
    }

    fn ok_line(&mut self) -> String {
        for _ in 0..64 {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                assert!(line.starts_with("OK "), "the handshake's answer: {line:?}");
                return line;
            }
            self.fill();
        }
        panic!("no handshake line in {:?}", self.buffer);
    }

    fn message(&mut self) -> Message {
        for _ in 0..64 {
            if self.buffer.len() >= 16 {
                let total = vigil_protocol::frame::claimed_length(&self.buffer).unwrap() as usize;
                if self.buffer.len() >= total {
                    let bytes: Vec<u8> = self.buffer.drain(..total).collect();
                    // SAFETY: no descriptors travel on this socket.
                    return unsafe { Message::from_bytes(Data::new(bytes, Context::new(Endian::Little, 0))) }.unwrap();
                }
            }
            self.fill();
        }
        panic!("no whole message in {} bytes", self.buffer.len());
    }

    fn reply_to(&mut self, call: &Message) -> Message {
        let serial = call.primary_header().serial_num();
        for _ in 0..8 {
            let message = self.message();
            if message.header().reply_serial() == Some(serial) {
                return message;
            }
        }
        panic!("no reply to serial {serial}");
    }
}

fn error_name(reply: &Message) -> String {
    assert_eq!(reply.message_type(), Type::Error, "an error reply: {reply:?}");
    reply.header().error_name().unwrap().to_string()
}

/// Shuts the client's side down, as the module does after its one write, and reads
/// the error `call` gets.
fn refusal_after_shutdown(stream: UnixStream, call: &Message) -> String {
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut replies = Replies::new(stream);
    replies.ok_line();
    error_name(&replies.reply_to(call))
}

#[test]
fn a_module_call_written_in_pieces_is_answered() {
    require_root!();
    let h = vigild();
    let call = manager_call("CloseSession", &(NO_SUCH_ID,));
    let opening = opening(&[&call]);
    let mut stream = connect(&h);
    // Cut inside the AUTH line, inside the header and inside the body.
    for piece in [&opening[..7], &opening[7..40], &opening[40..opening.len() - 3], &opening[opening.len() - 3..]] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(refusal_after_shutdown(stream, &call), "org.vigil1.Error.NoSuchSession");
}

#[test]
fn a_second_call_pipelined_behind_a_module_call_is_answered_by_zbus() {
    require_root!();
    let h = vigild();
    let first = manager_call("CloseSession", &(NO_SUCH_ID,));
    let second = manager_call("Status", &());
    let mut stream = connect(&h);
    stream.write_all(&opening(&[&first, &second])).unwrap();
    let mut replies = Replies::new(stream.try_clone().unwrap());
    replies.ok_line();
    assert_eq!(error_name(&replies.reply_to(&first)), "org.vigil1.Error.NoSuchSession");
    let status = replies.reply_to(&second);
    assert_eq!(status.message_type(), Type::MethodReturn, "{status:?}");
    // And a third, written after the answers: the same connection serves it.
    let third = manager_call("CloseSession", &(NO_SUCH_ID,));
    stream.write_all(third.data().bytes()).unwrap();
    assert_eq!(error_name(&replies.reply_to(&third)), "org.vigil1.Error.NoSuchSession");
}

#[test]
fn a_call_longer_than_the_quick_path_takes_is_answered_by_zbus() {
    require_root!();
    let h = vigild();
    // 20 KiB of service name: over the 16 KiB the quick path reads, under the frame
    // guard's 64 KiB; vigild refuses the field, as it refuses it on any path.
    let service = "s".repeat(20 * 1024);
    let call = manager_call("CheckReauth", &(service.as_str(), "root"));
    let mut stream = connect(&h);
    stream.write_all(&opening(&[&call])).unwrap();
    assert_eq!(refusal_after_shutdown(stream, &call), "org.vigil1.Error.InvalidArgument");
}

#[test]
fn a_client_that_waits_for_ok_gets_the_ordinary_handshake() {
    require_root!();
    let h = vigild();
    let mut stream = connect(&h);
    stream.write_all(b"\0AUTH EXTERNAL 30\r\n").unwrap();
    let mut replies = Replies::new(stream.try_clone().unwrap());
    replies.ok_line();
    let call = manager_call("CloseSession", &(NO_SUCH_ID,));
    stream.write_all(b"BEGIN\r\n").unwrap();
    stream.write_all(call.data().bytes()).unwrap();
    assert_eq!(error_name(&replies.reply_to(&call)), "org.vigil1.Error.NoSuchSession");
}

#[test]
fn connections_answered_quickly_leave_no_descriptor_behind() {
    require_root!();
    let h = vigild();
    let before = h.vigild().fd_count();
    for _ in 0..200 {
        let call = manager_call("CloseSession", &(NO_SUCH_ID,));
        let mut stream = connect(&h);
        stream.write_all(&opening(&[&call])).unwrap();
        let mut replies = Replies::new(stream);
        replies.ok_line();
        error_name(&replies.reply_to(&call));
        // Dropped without a shutdown: vigild sees the close after its answer.
    }
    let settled = vigil_e2e::wait_for(Duration::from_secs(5), "vigild's descriptors back to where they were", || {
        let now = h.vigild().fd_count();
        if now <= before { Ok(now) } else { Err(format!("{now} open, {before} before")) }
    });
    assert!(settled <= before);
}

/// A socket connected to vigild as `user`: the credentials a Unix socket reports are the
/// connecting process's, so a child that has become the user connects it, and this
/// process keeps using the same socket.
fn connect_as(h: &Harness, user: &TestUser) -> UnixStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use nix::unistd::{ForkResult, Gid, Uid, fork, setgid, setuid};
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    let address = UnixAddr::new(&h.private_socket()).unwrap();
    // SAFETY: the child makes only system calls (no allocation, no lock) and exits.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let ok = setgid(Gid::from_raw(user.gid)).is_ok()
                && setuid(Uid::from_raw(user.uid)).is_ok()
                && connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &address).is_ok();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "the child connected as {}", user.name);
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    stream
}

#[test]
fn a_user_who_keeps_an_answered_connection_silent_is_dropped_after_5s() {
    require_root!();
    let h = vigild();
    let user = h.create_user("quiet");
    let mut stream = connect_as(&h, &user);
    let call = manager_call("CheckReauth", &("sudo", user.name.as_str()));
    let mut opening = vigil_protocol::frame::pipelined_handshake(user.uid);
    opening.extend_from_slice(call.data().bytes());
    // The module's whole side, but without shutting the writing side down: the
    // connection stays open after the answer.
    stream.write_all(&opening).unwrap();
    let mut replies = Replies::new(stream.try_clone().unwrap());
    replies.ok_line();
    assert_eq!(error_name(&replies.reply_to(&call)), "org.vigil1.Error.AccessDenied", "root only");
    let answered = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = stream.read(&mut byte);
    let after = answered.elapsed();
    assert!(matches!(read, Ok(0)), "vigild closed the connection: {read:?} after {after:?}");
    assert!(after >= Duration::from_secs(4) && after < Duration::from_secs(12), "closed {after:?} after the answer (the contract: 5 s)");
}
