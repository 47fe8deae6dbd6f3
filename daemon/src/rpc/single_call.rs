//! The PAM module's calls on the private socket, answered without a zbus connection.
//!
//! The module (sshd's or sudo's guest) makes one call per connection and sends its whole
//! side at once: `\0AUTH EXTERNAL <uid>`, `BEGIN` and the call in one write, then shuts
//! its side down (`pam_module/src/socket_call.rs`). A zbus server connection for that one
//! call (its handshake, reader task and object server) would cost more than the call
//! (BENCHMARKS.md). When a peer's opening is exactly that — the
//! handshake for the uid the socket reports and one complete call of the module's — vigild
//! answers it here: `OK` and the reply in one write, from the same `Manager` methods and
//! with the same replies the object server gives (a unit test holds the two together).
//!
//! Anything else — a client that waits for `OK` (zbus, sd-bus), negotiates descriptors,
//! calls another method, or sends more than a module's call — goes to zbus, with
//! what was read so far replayed through the frame guard (`guarded_socket`). A peer that
//! goes on after its answered call gets zbus for the rest of its connection, already
//! authenticated. Nothing here trusts the message beyond what zbus's parser checks: the
//! opening is bounded ([`OPENING_LIMIT`]) before a byte of it is parsed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::Instant;
use vigil_protocol::frame::{PRIMARY_HEADER_BYTES, claimed_length, pipelined_handshake};
use vigil_protocol::{MANAGER_INTERFACE, MANAGER_PATH, OpenRequest, VigilError};
use zbus::DBusError;
use zbus::message::{Flags, Header, Message, Type};
use zbus::wire::serialized::{Context, Data};
use zbus::wire::{DynamicType, Endian};

use super::caller::Caller;
use crate::sessions::manager::Manager;

/// Most bytes read before deciding: a module's largest call (`OpenSessionEx` with every
/// field at its limit) is under 8 KiB.
pub const OPENING_LIMIT: usize = 16 * 1024;
/// How long writing an answer may take (a few dozen bytes into an empty socket buffer:
/// only a peer that stops reading makes it wait).
const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// The methods answered here, with the body signature each takes.
const MODULE_CALLS: [(&str, &str); 5] =
    [("OpenSessionEx", "sssssuuas"), ("CloseSession", "t"), ("CheckReauth", "ss"), ("RecordAuth", "ss"), ("RecordAuthFailure", "s")];

/// How a connection opened.
pub enum Opening {
    /// The handshake and one of the module's calls; `rest` is what came after it, and
    /// `closed` whether the peer has shut its side down.
    Call { call: Message, rest: Vec<u8>, closed: bool },
    /// Anything else: the bytes read so far, for zbus.
    Other(Vec<u8>),
    /// The peer closed, failed or fell silent before its opening was whole.
    Gone,
}

/// What the bytes read so far are.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// A part of a module's opening: more is coming.
    Partial,
    /// A whole one: the handshake ends at `begin_end`, the call at `call_end`.
    Whole { begin_end: usize, call_end: usize },
    /// Not a module's opening.
    Other,
}

fn progress(bytes: &[u8], handshake: &[u8]) -> Progress {
    if bytes.len() < handshake.len() {
        // A client that waits for `OK` stops at the end of its AUTH line: that is
        // zbus's to answer. The module's one write arrives whole or not at all; a part
        // that stops elsewhere is a slow writer, read on.
        let at_line_end = bytes.ends_with(b"\r\n");
        return if handshake.starts_with(bytes) && !at_line_end { Progress::Partial } else { Progress::Other };
    }
    if !bytes.starts_with(handshake) {
        return Progress::Other;
    }
    let message = &bytes[handshake.len()..];
    if message.len() < PRIMARY_HEADER_BYTES {
        return if message.first().is_none_or(|b| matches!(b, b'l' | b'B')) { Progress::Partial } else { Progress::Other };
    }
    match claimed_length(message) {
        Some(total) if total <= (OPENING_LIMIT - handshake.len()) as u64 => {
            let call_end = handshake.len() + total as usize;
            if bytes.len() >= call_end { Progress::Whole { begin_end: handshake.len(), call_end } } else { Progress::Partial }
        }
        _ => Progress::Other,
    }
}

/// Parses a whole call and keeps it if it is one of the module's, as the module sends it.
fn module_call(bytes: &[u8]) -> Option<Message> {
    let endian = if bytes.first() == Some(&b'B') { Endian::Big } else { Endian::Little };
    // SAFETY: `from_bytes` is unsafe only because a message's descriptors must match its
    // header; none come with these bytes, and a header that claims some is refused below.
    let message = unsafe { Message::from_bytes(Data::new(bytes.to_vec(), Context::new(endian, 0))) }.ok()?;
    let header = message.header();
    let expected = MODULE_CALLS.iter().find(|(member, _)| header.member().is_some_and(|m| m.as_str() == *member))?;
    let is_module_call = message.message_type() == Type::MethodCall
        && !message.primary_header().flags().contains(Flags::NO_REPLY_EXPECTED)
        && header.unix_fds().unwrap_or(0) == 0
        && header.path().is_some_and(|p| p.as_str() == MANAGER_PATH)
        && header.interface().is_some_and(|i| i.as_str() == MANAGER_INTERFACE)
        && header.signature().to_string_no_parens() == expected.1;
    is_module_call.then_some(message)
}

/// A new peer's opening as it is read: at most [`OPENING_LIMIT`] bytes (and one read
/// more), until it is a module's call or cannot be one.
pub struct OpeningReader {
    handshake: Vec<u8>,
    bytes: Vec<u8>,
    closed: bool,
}

/// What one read gave.
enum Read {
    Some,
    /// Nothing yet (the read would block).
    None,
    Closed,
    Failed,
}

impl OpeningReader {
    pub fn new(uid: u32) -> Self {
        OpeningReader { handshake: pipelined_handshake(uid), bytes: Vec::with_capacity(1024), closed: false }
    }

    /// One read of what the peer has sent, without waiting: `try_read` is the stream's
    /// non-blocking read.
    fn read_now(&mut self, try_read: &mut dyn FnMut(&mut [u8]) -> std::io::Result<usize>) -> Read {
        let mut chunk = [0u8; 4096];
        match try_read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                Read::Closed
            }
            Ok(n) => {
                self.bytes.extend_from_slice(&chunk[..n]);
                Read::Some
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Read::None,
            Err(_) => Read::Failed,
        }
    }

    /// Reads what is there and decides, if it can: `None` while a module's opening may
    /// still be arriving.
    pub fn decide_now(&mut self, try_read: &mut dyn FnMut(&mut [u8]) -> std::io::Result<usize>) -> Option<Opening> {
        loop {
            match progress(&self.bytes, &self.handshake) {
                Progress::Whole { begin_end, call_end } => {
                    // Has the peer shut its side down behind the call? (No wait: zero or
                    // more bytes already there.)
                    if !self.closed && matches!(self.read_now(try_read), Read::Failed) {
                        return Some(Opening::Gone);
                    }
                    let mut bytes = std::mem::take(&mut self.bytes);
                    return Some(match module_call(&bytes[begin_end..call_end]) {
                        Some(call) => Opening::Call { call, rest: bytes.split_off(call_end), closed: self.closed },
                        None => Opening::Other(bytes),
                    });
                }
                Progress::Other => return Some(Opening::Other(std::mem::take(&mut self.bytes))),
                Progress::Partial if self.closed => return Some(Opening::Other(std::mem::take(&mut self.bytes))),
                Progress::Partial => match self.read_now(try_read) {
                    Read::Some | Read::Closed => {}
                    Read::None => return None,
                    Read::Failed => return Some(Opening::Gone),
                },
            }
        }
    }

    /// Reads until it can decide, waiting for the peer until `deadline`.
    pub async fn decide(mut self, stream: &UnixStream, deadline: Instant) -> Opening {
        loop {
            if let Some(opening) = self.decide_now(&mut |buffer| stream.try_read(buffer)) {
                return opening;
            }
            if tokio::time::timeout_at(deadline, stream.readable()).await.is_err() {
                return Opening::Gone;
            }
        }
    }
}

/// Answers a module's call for `peer`: the reply the object server would send.
pub async fn answer(core: &Arc<Manager>, peer: Caller, call: &Message) -> zbus::Result<Message> {
    let header = call.header();
    let body = call.body();
    let member = header.member().map(|m| m.as_str()).unwrap_or_default();
    let parsed = match member {
        "OpenSessionEx" => body.deserialize::<(String, String, String, String, String, u32, u32, Vec<String>)>().map(
            |(user, service, tty, rhost, ruser, leader_pid, audit_session_id, truncated)| {
                Call::Open(OpenRequest { user, service, tty, rhost, ruser, leader_pid, audit_session_id, truncated })
            },
        ),
        "CloseSession" => body.deserialize::<(u64,)>().map(|(id,)| Call::Close(id)),
        "CheckReauth" => body.deserialize::<(String, String)>().map(|(service, user)| Call::CheckReauth(service, user)),
        "RecordAuth" => body.deserialize::<(String, String)>().map(|(service, user)| Call::RecordAuth(service, user)),
        "RecordAuthFailure" => body.deserialize::<(String,)>().map(|(service,)| Call::RecordAuthFailure(service)),
        _ => return zbus::fdo::Error::UnknownMethod(format!("Unknown method '{member}'")).create_reply(&header),
    };
    let call = match parsed {
        Ok(call) => call,
        Err(e) => return zbus::fdo::Error::InvalidArgs(e.to_string()).create_reply(&header),
    };
    match call {
        Call::Open(request) => reply(&header, core.open_session(peer, request).await),
        Call::Close(id) => reply(&header, core.close_session(peer, id)),
        Call::CheckReauth(service, user) => reply(&header, core.check_reauth(peer, &service, &user)),
        Call::RecordAuth(service, user) => reply(&header, core.record_auth(peer, &service, &user)),
        Call::RecordAuthFailure(service) => reply(&header, core.record_auth_failure(peer, &service)),
    }
}

enum Call {
    Open(OpenRequest),
    Close(u64),
    CheckReauth(String, String),
    RecordAuth(String, String),
    RecordAuthFailure(String),
}

/// A method's result as the object server sends it: the value as the body, or the
/// error's own reply.
fn reply<T: serde::Serialize + DynamicType>(header: &Header<'_>, result: Result<T, VigilError>) -> zbus::Result<Message> {
    match result {
        Ok(value) => Message::method_return(header).build(&value),
        Err(e) => e.create_reply(header),
    }
}

/// The handshake's `OK` and the answer, to be sent in one write.
pub fn answer_bytes(guid: &str, answer: &Message) -> Vec<u8> {
    let reply = answer.data().bytes();
    let mut out = Vec::with_capacity(40 + reply.len());
    out.extend_from_slice(b"OK ");
    out.extend_from_slice(guid.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(reply);
    out
}

/// Sends `unsent` (what the socket did not take at once), within [`WRITE_DEADLINE`].
pub async fn send_rest(stream: &mut UnixStream, unsent: &[u8]) -> std::io::Result<()> {
    if unsent.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(WRITE_DEADLINE, stream.write_all(unsent)).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer does not read its answer")),
    }
}

#[cfg(test)]
mod tests;
