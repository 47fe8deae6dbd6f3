//! One method call to vigild: a blocking exchange in one round trip, on the calling
//! thread, over vigild's private socket or through a bus.
//!
//! A PAM module's calls are small and one to a connection. Through zbus's client each
//! one cost the PAM host (sshd, sudo) an executor, an epoll instance and a wake-up pipe,
//! and several round trips (the handshake, `Hello` on a bus, then the call): some 600 µs
//! of the host's CPU per open+close under load (BENCHMARKS.md), on the private socket
//! and on a bus alike. Here the client's whole side is one write — `AUTH EXTERNAL`,
//! `BEGIN`, on a bus the `Hello` every bus wants first, and the method call back to
//! back, which the D-Bus specification lets a client pipeline (sd-bus does) — then reads
//! of `OK` and of messages until the call's reply. On a bus the messages before it (the
//! `Hello` reply, the `NameAcquired` signal) are skipped, a few and a few KiB at most.
//! Every system call is bounded by what is left of the deadline (SO_SNDTIMEO also
//! bounds `connect` on a full listen backlog). zbus still builds and checks the
//! messages; only the transport is here. The socket is closed when the call returns: no
//! thread, no descriptor outlives it.

use std::io::{self, Read, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, sockopt};
use nix::sys::time::TimeVal;
use zbus::message::{Message, Type};
use zbus::wire::serialized::{Context, Data};
use zbus::wire::{DynamicType, Endian};

use crate::endpoint::{Endpoint, Kind};
use crate::error::{ClientError, error_reply};

/// Replies the module gets are a few dozen bytes, a bus's greeting a few hundred;
/// anything near this, all messages of a call together, is not theirs.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// The server's `OK <32 hex digits>` line, with room to spare.
const MAX_SASL_LINE_BYTES: usize = 256;
/// The D-Bus primary header, with the length of the header fields.
const FIXED_HEADER_BYTES: usize = vigil_protocol::frame::PRIMARY_HEADER_BYTES;
/// Messages other than the reply skipped before giving up: on a bus, the `Hello`
/// reply and `NameAcquired`; on the private socket, none are expected.
const MAX_OTHER_MESSAGES: usize = 8;

/// The bus itself, which every bus client greets with `Hello` before anything else.
const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

/// Calls `member` of vigild's manager with `body`; the reply, or why there is none.
pub fn call<B>(endpoint: &Endpoint, member: &str, body: &B, timeout: Duration) -> Result<Message, ClientError>
where
    B: serde::Serialize + DynamicType,
{
    let deadline = Instant::now() + timeout;
    let cannot_build = |what: &str, e: zbus::Error| ClientError::Unreachable(format!("cannot build the {what} call: {e}"));
    let request = Message::method_call(vigil_protocol::MANAGER_PATH, member)
        .interface(vigil_protocol::MANAGER_INTERFACE)
        .destination(vigil_protocol::BUS_NAME)
        .build(body)
        .map_err(|e| cannot_build(member, e))?;
    // A bus drops a connection whose first message is not `Hello`.
    let hello = match endpoint.kind {
        Kind::Bus { .. } => Some(
            Message::method_call(BUS_PATH, "Hello")
                .interface(BUS_NAME)
                .destination(BUS_NAME)
                .build(&())
                .map_err(|e| cannot_build("Hello", e))?,
        ),
        Kind::Private => None,
    };
    let serials = Serials { call: request.primary_header().serial_num(), hello: hello.as_ref().map(|h| h.primary_header().serial_num()) };

    let mut stream = connect(endpoint, deadline, timeout)?;
    let mut out = Vec::with_capacity(64 + hello.as_ref().map_or(0, |h| h.data().len()) + request.data().len());
    out.extend_from_slice(&vigil_protocol::frame::pipelined_handshake(nix::unistd::geteuid().as_raw()));
    if let Some(hello) = &hello {
        out.extend_from_slice(hello.data().bytes());
    }
    out.extend_from_slice(request.data().bytes());
    bounded(&stream, Direction::Send, deadline, timeout)?;
    stream.write_all(&out).map_err(|e| io_error(e, timeout))?;
    if endpoint.kind == Kind::Private {
        // Nothing more comes from this side: vigild answers, and closes without waiting
        // for us (`daemon/src/rpc/single_call.rs`). Not on a bus, which drops a client that
        // shuts its side, replies and all.
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }

    let mut reader = Incoming::new(stream, deadline, timeout);
    let line = reader.sasl_line()?;
    check_ok(&line, endpoint)?;
    for _ in 0..MAX_OTHER_MESSAGES {
        if let Some(answer) = serials.answer(reader.message()?, member) {
            return answer;
        }
    }
    Err(ClientError::Unreachable(format!("no reply to {member} among {MAX_OTHER_MESSAGES} messages")))
}

/// The `OK <guid>` line that ends the server's side of the handshake; on a bus whose
/// address names its guid, with that guid (as zbus checks it).
fn check_ok(line: &str, endpoint: &Endpoint) -> Result<(), ClientError> {
    let Some(guid) = line.strip_prefix("OK ") else {
        return Err(ClientError::Unreachable(format!("{} refused the handshake: {}", endpoint.shown, line.escape_debug())));
    };
    match &endpoint.kind {
        Kind::Bus { guid: Some(expected) } if !guid.trim().eq_ignore_ascii_case(expected) => Err(ClientError::Unreachable(format!(
            "{} answered as server {}, not the {expected} its address names",
            endpoint.shown,
            guid.escape_debug()
        ))),
        _ => Ok(()),
    }
}

/// The serials of what the module sent: which incoming message answers what.
struct Serials {
    call: NonZeroU32,
    hello: Option<NonZeroU32>,
}

impl Serials {
    /// What `message` means for the call: `None` to skip it (the `Hello` reply, a
    /// signal), else the call's answer.
    fn answer(&self, message: Message, member: &str) -> Option<Result<Message, ClientError>> {
        let reply_to = message.header().reply_serial();
        let kind = message.message_type();
        if reply_to.is_some() && reply_to == self.hello && kind == Type::Error {
            // The bus would not let the module on: nobody behind it can answer.
            let refused = error_reply(message).to_string();
            return Some(Err(ClientError::Unreachable(format!("the bus refused Hello: {refused}"))));
        }
        if reply_to != Some(self.call) {
            return None;
        }
        Some(match kind {
            Type::MethodReturn => Ok(message),
            Type::Error => Err(error_reply(message)),
            other => Err(ClientError::Unreachable(format!("unexpected {other:?} in reply to {member}"))),
        })
    }
}

/// A connected socket, its connect bounded by the deadline.
fn connect(endpoint: &Endpoint, deadline: Instant, timeout: Duration) -> Result<UnixStream, ClientError> {
    let unreachable = |what: &str, e: nix::Error| ClientError::Unreachable(format!("{what} {}: {e}", endpoint.shown));
    let fd: OwnedFd =
        socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| unreachable("socket for", e))?;
    let stream = UnixStream::from(fd);
    bounded(&stream, Direction::Send, deadline, timeout)?;
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&stream), &endpoint.address) {
        Ok(()) => Ok(stream),
        // The listen backlog stayed full until SO_SNDTIMEO ran out: the server is slow.
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
        _ => ClientError::Unreachable(format!("the socket: {e}")),
    }
}

/// What the server sends back, read as it arrives, every read bounded by the deadline
/// and all of it together by MAX_REPLY_BYTES.
struct Incoming {
    stream: UnixStream,
    buffer: Vec<u8>,
    /// Bytes read so far.
    received: usize,
    deadline: Instant,
    timeout: Duration,
}

impl Incoming {
    fn new(stream: UnixStream, deadline: Instant, timeout: Duration) -> Self {
        Incoming { stream, buffer: Vec::with_capacity(512), received: 0, deadline, timeout }
    }

    /// Reads more bytes; `limit` bounds what may be buffered.
    fn fill(&mut self, limit: usize) -> Result<(), ClientError> {
        if self.buffer.len() >= limit {
            return Err(ClientError::Unreachable(format!("a message is longer than {limit} bytes")));
        }
        if self.received >= MAX_REPLY_BYTES {
            return Err(ClientError::Unreachable(format!("no reply within the first {MAX_REPLY_BYTES} bytes")));
        }
        bounded(&self.stream, Direction::Receive, self.deadline, self.timeout)?;
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(limit - self.buffer.len()).min(MAX_REPLY_BYTES - self.received);
        let n = self.stream.read(&mut chunk[..want]).map_err(|e| io_error(e, self.timeout))?;
        if n == 0 {
            return Err(ClientError::Unreachable("the server closed the connection".into()));
        }
        self.received += n;
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
            return Err(ClientError::Unreachable(format!("a message claims {total} bytes")));
        }
        while self.buffer.len() < total {
            self.fill(total)?;
        }
        let bytes: Vec<u8> = self.buffer.drain(..total).collect();
        let endian = if bytes[0] == b'B' { Endian::Big } else { Endian::Little };
        // SAFETY: `from_bytes` is unsafe only because a message may carry file
        // descriptors that must match its header; this one carries none (the module
        // never negotiates descriptor passing, so neither vigild nor a bus sends any),
        // and the bytes are checked by zbus's parser as its own connections check every
        // message they receive.
        unsafe { Message::from_bytes(Data::new(bytes, Context::new(endian, 0))) }
            .map_err(|e| ClientError::Unreachable(format!("a message does not parse: {e}")))
    }
}

/// The whole length of the message whose first 16 bytes are `fixed`: the header
/// (primary header, the fields' array, padding to 8) and the body. zbus parses and
/// checks the message itself once it is whole.
fn message_length(fixed: &[u8]) -> Result<usize, ClientError> {
    vigil_protocol::frame::claimed_length(fixed)
        .map(|total| usize::try_from(total).unwrap_or(usize::MAX))
        .ok_or_else(|| ClientError::Unreachable("the server's answer is not a D-Bus message".into()))
}

#[cfg(test)]
mod tests;
