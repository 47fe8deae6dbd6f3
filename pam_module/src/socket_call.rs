//! One method call to vigild over its private socket: a blocking exchange in one round
//! trip, on the calling thread.
//!
//! A PAM module's calls are small and one to a connection. Through zbus's client each
//! one cost the PAM host (sshd, sudo) an executor, an epoll instance and a wake-up pipe,
//! and two round trips (the handshake, then the call): some 600 µs of the host's CPU per
//! open+close under load (BENCHMARKS.md). Here the client's whole side is one write —
//! `AUTH EXTERNAL`, `BEGIN` and the method call back to back, which the D-Bus
//! specification lets a client pipeline — then reads of `OK` and the reply. Every
//! system call is bounded by what is left of the deadline (SO_SNDTIMEO also bounds
//! `connect` on a full listen backlog). zbus still builds and checks the messages; only
//! the transport is here. The socket is closed when the call returns: no thread, no
//! descriptor outlives it.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
use nix::sys::time::TimeVal;
use zbus::message::{Message, Type};
use zbus::wire::serialized::{Context, Data};
use zbus::wire::{DynamicType, Endian};

use crate::client::ClientError;

/// Replies the module gets are a few dozen bytes; anything near this is not vigild's.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// The server's `OK <32 hex digits>` line, with room to spare.
const MAX_SASL_LINE_BYTES: usize = 256;
/// The D-Bus primary header, with the length of the header fields.
const FIXED_HEADER_BYTES: usize = 16;
/// Messages other than the reply (none are expected on a peer connection) skipped
/// before giving up.
const MAX_OTHER_MESSAGES: usize = 8;

/// vigild's error name for a session it does not know.
const NO_SUCH_SESSION: &str = "org.vigil1.Error.NoSuchSession";

/// Calls `member` of vigild's manager with `body`; the reply, or why there is none.
pub fn call<B>(socket_path: &Path, member: &str, body: &B, timeout: Duration) -> Result<Message, ClientError>
where
    B: serde::Serialize + DynamicType,
{
    let deadline = Instant::now() + timeout;
    let request = Message::method_call(vigil_protocol::MANAGER_PATH, member)
        .interface(vigil_protocol::MANAGER_INTERFACE)
        .destination(vigil_protocol::BUS_NAME)
        .build(body)
        .map_err(|e| ClientError::Unreachable(format!("cannot build the {member} call: {e}")))?;
    let serial = request.primary_header().serial_num();

    let mut stream = connect(socket_path, deadline, timeout)?;
    let mut out = Vec::with_capacity(64 + request.data().len());
    out.push(0);
    out.extend_from_slice(b"AUTH EXTERNAL ");
    out.extend_from_slice(hex(&nix::unistd::geteuid().as_raw().to_string()).as_bytes());
    out.extend_from_slice(b"\r\nBEGIN\r\n");
    out.extend_from_slice(request.data().bytes());
    bounded(&stream, Direction::Send, deadline, timeout)?;
    stream.write_all(&out).map_err(|e| io_error(e, timeout))?;

    let mut reader = Incoming { stream, buffer: Vec::with_capacity(512), deadline, timeout };
    let line = reader.sasl_line()?;
    if !line.starts_with("OK ") {
        return Err(ClientError::Unreachable(format!("vigild refused the handshake: {}", line.escape_debug())));
    }
    for _ in 0..MAX_OTHER_MESSAGES {
        let message = reader.message()?;
        let header = message.header();
        if header.reply_serial() != Some(serial) {
            continue;
        }
        return match message.message_type() {
            Type::MethodReturn => Ok(message),
            Type::Error => Err(refusal(&message)),
            other => Err(ClientError::Unreachable(format!("unexpected {other:?} in reply to {member}"))),
        };
    }
    Err(ClientError::Unreachable(format!("no reply to {member} among {MAX_OTHER_MESSAGES} messages")))
}

/// An error reply as the module reports it.
fn refusal(message: &Message) -> ClientError {
    let name = message.header().error_name().map(|n| n.to_string()).unwrap_or_default();
    if name == NO_SUCH_SESSION {
        return ClientError::NoSuchSession;
    }
    // vigild's errors carry their text as the one string of the body.
    let text = message.body().deserialize::<String>().unwrap_or_default();
    ClientError::Refused { name, message: text }
}

/// A connected socket, its connect bounded by the deadline.
fn connect(path: &Path, deadline: Instant, timeout: Duration) -> Result<UnixStream, ClientError> {
    let unreachable = |what: &str, e: nix::Error| ClientError::Unreachable(format!("{what} {}: {e}", path.display()));
    let address = UnixAddr::new(path).map_err(|e| unreachable("socket path", e))?;
    let fd: OwnedFd =
        socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| unreachable("socket for", e))?;
    let stream = UnixStream::from(fd);
    bounded(&stream, Direction::Send, deadline, timeout)?;
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&stream), &address) {
        Ok(()) => Ok(stream),
        // The listen backlog stayed full until SO_SNDTIMEO ran out: vigild is slow.
        Err(nix::Error::EAGAIN | nix::Error::ETIMEDOUT | nix::Error::EINTR) => Err(ClientError::Timeout(timeout)),
        Err(e) => Err(unreachable("connect to", e)),
    }
}

/// Which timeout a system call obeys: SO_SNDTIMEO bounds `connect` and `write`,
/// SO_RCVTIMEO `read`.
#[derive(Clone, Copy)]
enum Direction {
    Send,
    Receive,
}

/// Sets the socket's timeout for the next system call to what is left of the deadline.
fn bounded(stream: &UnixStream, direction: Direction, deadline: Instant, timeout: Duration) -> Result<(), ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ClientError::Timeout(timeout));
    }
    // At least a millisecond: a zero timeout would mean "none".
    let left = left.max(Duration::from_millis(1));
    let tv = TimeVal::new(left.as_secs() as _, left.subsec_micros() as _);
    let fd = stream.as_fd();
    let set = match direction {
        Direction::Send => socket::setsockopt(&fd, sockopt::SendTimeout, &tv),
        Direction::Receive => socket::setsockopt(&fd, sockopt::ReceiveTimeout, &tv),
    };
    set.map_err(|e| ClientError::Unreachable(format!("socket timeout: {e}")))
}

fn io_error(e: io::Error, timeout: Duration) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => ClientError::Timeout(timeout),
        _ => ClientError::Unreachable(format!("vigild's socket: {e}")),
    }
}

/// What vigild sends back, read as it arrives, every read bounded.
struct Incoming {
    stream: UnixStream,
    buffer: Vec<u8>,
    deadline: Instant,
    timeout: Duration,
}

impl Incoming {
    /// Reads more bytes; `limit` bounds what may be buffered.
    fn fill(&mut self, limit: usize) -> Result<(), ClientError> {
        if self.buffer.len() >= limit {
            return Err(ClientError::Unreachable(format!("vigild's reply is longer than {limit} bytes")));
        }
        bounded(&self.stream, Direction::Receive, self.deadline, self.timeout)?;
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(limit - self.buffer.len());
        let n = self.stream.read(&mut chunk[..want]).map_err(|e| io_error(e, self.timeout))?;
        if n == 0 {
            return Err(ClientError::Unreachable("vigild closed the connection".into()));
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The server's first handshake line, without its CRLF.
    fn sasl_line(&mut self) -> Result<String, ClientError> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                return Ok(line);
            }
            self.fill(MAX_SASL_LINE_BYTES)?;
        }
    }

    /// The next whole message.
    fn message(&mut self) -> Result<Message, ClientError> {
        while self.buffer.len() < FIXED_HEADER_BYTES {
            self.fill(MAX_REPLY_BYTES)?;
        }
        let total = message_length(&self.buffer[..FIXED_HEADER_BYTES])?;
        if total > MAX_REPLY_BYTES {
            return Err(ClientError::Unreachable(format!("vigild's reply claims {total} bytes")));
        }
        while self.buffer.len() < total {
            self.fill(total)?;
        }
        let bytes: Vec<u8> = self.buffer.drain(..total).collect();
        let endian = if bytes[0] == b'B' { Endian::Big } else { Endian::Little };
        // SAFETY: `from_bytes` is unsafe only because a message may carry file
        // descriptors that must match its header; this one carries none (the socket passes
        // none), and the bytes are checked by zbus's parser as its own connections check
        // every message they receive.
        unsafe { Message::from_bytes(Data::new(bytes, Context::new(endian, 0))) }
            .map_err(|e| ClientError::Unreachable(format!("vigild's reply does not parse: {e}")))
    }
}

/// The whole length of the message whose first 16 bytes are `fixed`: the header
/// (primary header, the fields' array, padding to 8) and the body. zbus parses and
/// checks the message itself once it is whole.
fn message_length(fixed: &[u8]) -> Result<usize, ClientError> {
    let word = |at: usize| -> u32 {
        let b = [fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]];
        if fixed[0] == b'B' { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    };
    if fixed.len() < FIXED_HEADER_BYTES || !matches!(fixed[0], b'l' | b'B') {
        return Err(ClientError::Unreachable("vigild's reply is not a D-Bus message".into()));
    }
    let (body, fields) = (word(4) as usize, word(12) as usize);
    Ok((FIXED_HEADER_BYTES + fields).next_multiple_of(8).saturating_add(body))
}

/// `AUTH EXTERNAL`'s argument: the uid as decimal text, hex-encoded.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_is_sent_as_hex_of_its_decimal_text() {
        assert_eq!(hex("0"), "30");
        assert_eq!(hex("1000"), "31303030");
    }

    #[test]
    fn message_length_counts_header_padding_and_body() {
        let m = Message::method_call("/org/vigil1", "CloseSession").build(&(7u64,)).unwrap();
        let bytes = m.data().bytes();
        assert_eq!(message_length(&bytes[..FIXED_HEADER_BYTES]).unwrap(), bytes.len());
    }

    #[test]
    fn a_missing_socket_is_unreachable_and_costs_no_descriptor() {
        let before = std::fs::read_dir("/proc/self/fd").unwrap().count();
        let e = call(Path::new("/nonexistent/vigil/private"), "CloseSession", &(1u64,), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::Unreachable(_)), "{e:?}");
        assert_eq!(std::fs::read_dir("/proc/self/fd").unwrap().count(), before);
    }

    /// A server that accepts and never answers: the call ends at its deadline.
    #[test]
    fn a_silent_server_costs_the_deadline_and_no_more() {
        let dir = std::env::temp_dir().join(format!("vigil-socket-call-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("silent");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let started = Instant::now();
        let e = call(&path, "CloseSession", &(1u64,), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ClientError::Timeout(_)), "{e:?}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(3), "{took:?}");
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
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
}
