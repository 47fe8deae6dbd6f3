//! The private socket's input guard: a state machine that sees every byte vigild reads
//! from one peer, before zbus does, and refuses input that would make vigild allocate
//! or buffer more than a legitimate peer ever needs.
//!
//! zbus reads a message's 16-byte primary header and then allocates (and zero-fills)
//! the whole length it claims, up to 128 MiB; during the handshake it buffers a line
//! until it ends, however long. Any local user may connect to `/run/vigil/private`, so
//! the server's read half hands every chunk to [`FrameGuard::observe`] and fails the
//! read when it is refused: zbus never sees the bytes that would cost it memory.
//!
//! The guard follows the stream in two phases:
//! - **Handshake**: the client's NUL byte, then SASL lines (see `sasl`), at most
//!   [`MAX_HANDSHAKE_LINES`] of at most [`MAX_HANDSHAKE_LINE_BYTES`] bytes each. The
//!   guard leaves the handshake on exactly the `BEGIN` that ends zbus's server
//!   handshake, which is why it is given the peer's uid.
//! - **Messages**: each primary header is checked and the message's total length
//!   bounded by [`MAX_MESSAGE_BYTES`] in the very `observe` call that delivers its 16th
//!   byte. For a method call, the header fields (never the body) are buffered and
//!   parsed, and the call's object path is handed to the caller before the body, so
//!   that vigild can serve a session object on demand before zbus dispatches to it.
//!
//! The result depends only on the bytes, never on how they are split into chunks.
//!
//! [`FrameGuard::for_bus`] follows vigild's own connection to the system bus the same
//! way, from the other side: the bus daemon's handshake answers, then its messages, up
//! to the specification's largest (the bus bounds what it relays); it is there to hand
//! over each call's object path, so that session objects are served on demand on the
//! bus connection too.

mod fields;
#[cfg(test)]
mod fuzz_corpus;
#[cfg(test)]
mod handshake_tests;
mod sasl;
#[cfg(test)]
mod tests;

use sasl::Sasl;

use crate::events::MessageRefusal;

/// Largest message vigild reads from a peer, in bytes, headers included. The largest
/// legitimate call, `OpenSessionEx` with every string at [`crate::MAX_FIELD_BYTES`], is
/// under 8 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest handshake line, its `\r\n` included. The longest legitimate one is
/// `AUTH EXTERNAL` with a hex-encoded uid (under 40 bytes).
pub const MAX_HANDSHAKE_LINE_BYTES: usize = 512;
/// Most handshake lines, `BEGIN` included. A legitimate client sends two or three.
pub const MAX_HANDSHAKE_LINES: usize = 16;

/// The largest message the D-Bus specification allows: what a bus may relay.
pub const MAX_BUS_MESSAGE_BYTES: usize = 128 * 1024 * 1024;
/// Longest handshake answer line a bus sends (`OK` and a 32-digit GUID, `REJECTED`
/// with its mechanisms), with room to spare.
const MAX_SERVER_LINE_BYTES: usize = 1024;

/// Length of a D-Bus message's primary header (the fixed part of the header).
pub const PRIMARY_HEADER_BYTES: usize = 16;
/// Message type of a method call.
const METHOD_CALL: u8 = 1;
/// Header flag of a method call that wants no reply.
const NO_REPLY_EXPECTED: u8 = 0x1;

/// Why a peer's input was refused. Once refused, a guard refuses everything after.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A message claims more than [`MAX_MESSAGE_BYTES`] in total.
    #[error("a message of {bytes} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { bytes: u64 },
    /// The input is not what a D-Bus client sends.
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    /// The handshake has a line or a number of lines over the limits.
    #[error("handshake over {MAX_HANDSHAKE_LINES} lines or a line over {MAX_HANDSHAKE_LINE_BYTES} bytes")]
    HandshakeTooLong,
}

impl Refusal {
    /// A stable word for audit records.
    pub fn reason(&self) -> MessageRefusal {
        match self {
            Refusal::TooLarge { .. } => MessageRefusal::TooLarge,
            Refusal::Malformed(_) => MessageRefusal::Malformed,
            Refusal::HandshakeTooLong => MessageRefusal::HandshakeTooLong,
        }
    }
}

/// Byte order of a message, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        }
    }
}

#[derive(Debug)]
enum Phase {
    Handshake(Sasl),
    /// A bus's handshake answers, as its client reads them: lines, until a message's
    /// first byte starts a line (no answer starts with `l` or `B`).
    ServerLines {
        line_bytes: usize,
        lines: usize,
    },
    /// Collecting a primary header.
    Header {
        bytes: [u8; PRIMARY_HEADER_BYTES],
        have: usize,
    },
    /// Collecting a method call's header fields array (`need` bytes in all).
    Fields {
        endian: Endian,
        bytes: Vec<u8>,
        need: usize,
        then_skip: u64,
    },
    /// Passing over the rest of a message unread.
    Skip {
        left: u64,
    },
}

/// Watches the bytes read from one peer of the private socket; see the module doc.
#[derive(Debug)]
pub struct FrameGuard {
    phase: Phase,
    refused: Option<Refusal>,
    /// Largest message accepted, headers included.
    max_message: u64,
    /// Serials of the method calls seen that expect a reply, not yet taken.
    awaiting_reply: Vec<u32>,
}

impl FrameGuard {
    /// A guard for a new connection whose peer has uid `peer_uid` (SO_PEERCRED): zbus's
    /// server accepts `AUTH EXTERNAL` for that uid only, and the guard must leave the
    /// handshake exactly when zbus does.
    pub fn new(peer_uid: u32) -> Self {
        Self {
            phase: Phase::Handshake(Sasl::new(peer_uid)),
            refused: None,
            max_message: MAX_MESSAGE_BYTES as u64,
            awaiting_reply: Vec::new(),
        }
    }

    /// A guard for a connection whose handshake vigild already took part in (it answered
    /// the peer's first call itself, `daemon/src/rpc/single_call.rs`): messages from the start.
    pub fn after_handshake() -> Self {
        Self {
            phase: Phase::Header { bytes: [0; PRIMARY_HEADER_BYTES], have: 0 },
            refused: None,
            max_message: MAX_MESSAGE_BYTES as u64,
            awaiting_reply: Vec::new(),
        }
    }

    /// A guard for what vigild reads from its bus: the bus's handshake answers, then
    /// messages of up to [`MAX_BUS_MESSAGE_BYTES`] (the bus bounds what it relays; a call
    /// with header fields over [`MAX_MESSAGE_BYTES`] is passed over without its path).
    pub fn for_bus() -> Self {
        Self {
            phase: Phase::ServerLines { line_bytes: 0, lines: 0 },
            refused: None,
            max_message: MAX_BUS_MESSAGE_BYTES as u64,
            awaiting_reply: Vec::new(),
        }
    }

    /// The serials of the method calls that expect a reply seen since the last time,
    /// each taken at its call's primary header: a reader matches them with the replies
    /// it writes to bound the calls it holds unanswered.
    pub fn take_awaiting_replies(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.awaiting_reply)
    }

    /// Whether the handshake is over (the peer now sends messages).
    pub fn in_messages(&self) -> bool {
        !matches!(self.phase, Phase::Handshake(_) | Phase::ServerLines { .. })
    }

    /// Observes the next `chunk` read from the peer, before it is handed on. Calls
    /// `on_call(path)` once per method call, as soon as its header fields are complete
    /// (before its body). On `Err`, the caller must fail the read: the chunk may hold
    /// the header that would make zbus allocate. After a refusal, every call returns it
    /// again.
    pub fn observe(&mut self, chunk: &[u8], on_call: &mut dyn FnMut(&str)) -> Result<(), Refusal> {
        if let Some(refusal) = &self.refused {
            return Err(refusal.clone());
        }
        let mut rest = chunk;
        while !rest.is_empty() {
            match self.step(rest, on_call) {
                Ok(used) => rest = &rest[used..],
                Err(refusal) => {
                    self.refused = Some(refusal.clone());
                    return Err(refusal);
                }
            }
        }
        Ok(())
    }

    /// Consumes a prefix of `input` and returns its length: at least one byte, but for
    /// the step that only leaves the bus's handshake answers (then none).
    fn step(&mut self, input: &[u8], on_call: &mut dyn FnMut(&str)) -> Result<usize, Refusal> {
        match &mut self.phase {
            Phase::Handshake(sasl) => {
                let (used, begun) = sasl.feed(input)?;
                if begun {
                    self.phase = Phase::Header { bytes: [0; PRIMARY_HEADER_BYTES], have: 0 };
                }
                Ok(used)
            }
            Phase::ServerLines { line_bytes, lines } => {
                if *line_bytes == 0 && matches!(input[0], b'l' | b'B') {
                    self.phase = Phase::Header { bytes: [0; PRIMARY_HEADER_BYTES], have: 0 };
                    return Ok(0);
                }
                let line_end = input.iter().position(|&b| b == b'\n');
                let used = line_end.map_or(input.len(), |at| at + 1);
                *line_bytes += used;
                if *line_bytes > MAX_SERVER_LINE_BYTES {
                    return Err(Refusal::HandshakeTooLong);
                }
                if line_end.is_some() {
                    *line_bytes = 0;
                    *lines += 1;
                    if *lines > MAX_HANDSHAKE_LINES {
                        return Err(Refusal::HandshakeTooLong);
                    }
                }
                Ok(used)
            }
            Phase::Header { bytes, have } => {
                let used = (PRIMARY_HEADER_BYTES - *have).min(input.len());
                bytes[*have..*have + used].copy_from_slice(&input[..used]);
                *have += used;
                if *have == PRIMARY_HEADER_BYTES {
                    let header = *bytes;
                    self.phase = start_message(&header, self.max_message)?;
                    if header[1] == METHOD_CALL && header[2] & NO_REPLY_EXPECTED == 0 {
                        self.awaiting_reply.push(serial_of(&header));
                    }
                    self.finish_fields_if_complete(on_call)?;
                }
                Ok(used)
            }
            Phase::Fields { bytes, need, .. } => {
                let used = (*need - bytes.len()).min(input.len());
                bytes.extend_from_slice(&input[..used]);
                self.finish_fields_if_complete(on_call)?;
                Ok(used)
            }
            Phase::Skip { left } => {
                let used = usize::try_from(*left).map_or(input.len(), |left| left.min(input.len()));
                *left -= used as u64;
                if *left == 0 {
                    self.phase = Phase::Header { bytes: [0; PRIMARY_HEADER_BYTES], have: 0 };
                }
                Ok(used)
            }
        }
    }

    /// Once a method call's fields array is complete: reports its path and passes on
    /// to the body.
    fn finish_fields_if_complete(&mut self, on_call: &mut dyn FnMut(&str)) -> Result<(), Refusal> {
        let Phase::Fields { endian, bytes, need, then_skip } = &mut self.phase else {
            return Ok(());
        };
        if bytes.len() < *need {
            return Ok(());
        }
        let path = fields::method_call_path(bytes, *endian)?;
        on_call(path);
        self.phase = after(*then_skip);
        Ok(())
    }
}

/// The phase after a message's part that was read: the rest of it, or the next header.
fn after(left: u64) -> Phase {
    if left == 0 { Phase::Header { bytes: [0; PRIMARY_HEADER_BYTES], have: 0 } } else { Phase::Skip { left } }
}

/// What a client that pipelines its handshake sends before its first message, as the PAM
/// module does: the NUL byte, `AUTH EXTERNAL` with the uid's decimal digits hex-encoded,
/// and `BEGIN`. vigild recognises exactly these bytes (`daemon/src/rpc/single_call.rs`).
pub fn pipelined_handshake(uid: u32) -> Vec<u8> {
    let mut out = b"\0AUTH EXTERNAL ".to_vec();
    for digit in uid.to_string().bytes() {
        out.extend_from_slice(format!("{digit:02x}").as_bytes());
    }
    out.extend_from_slice(b"\r\nBEGIN\r\n");
    out
}

/// The whole length (primary header, header fields, padding to 8, body) that a message
/// whose first 16 bytes are `primary` claims; `None` when they cannot start a message.
/// A claim, not a check: bound it before reading that much.
pub fn claimed_length(primary: &[u8]) -> Option<u64> {
    let endian = match primary.first()? {
        b'l' => Endian::Little,
        b'B' => Endian::Big,
        _ => return None,
    };
    let fixed = primary.get(..PRIMARY_HEADER_BYTES)?;
    let word = |at: usize| u64::from(endian.u32([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]));
    // 64-bit sums: two claimed u32 lengths cannot overflow.
    Some((PRIMARY_HEADER_BYTES as u64 + word(12)).next_multiple_of(8) + word(4))
}

/// The serial of a message whose primary header `start_message` accepted.
fn serial_of(header: &[u8; PRIMARY_HEADER_BYTES]) -> u32 {
    let serial = [header[8], header[9], header[10], header[11]];
    if header[0] == b'B' { u32::from_be_bytes(serial) } else { u32::from_le_bytes(serial) }
}

/// Checks a primary header and bounds the message; returns how to read the rest.
fn start_message(header: &[u8; PRIMARY_HEADER_BYTES], max_message: u64) -> Result<Phase, Refusal> {
    let endian = match header[0] {
        b'l' => Endian::Little,
        b'B' => Endian::Big,
        _ => return Err(Refusal::Malformed("unknown byte order")),
    };
    let kind = header[1];
    if !(1..=4).contains(&kind) {
        return Err(Refusal::Malformed("unknown message type"));
    }
    // header[2] holds flags: unknown ones are ignored, as the specification says.
    if header[3] != 1 {
        return Err(Refusal::Malformed("unknown protocol version"));
    }
    let word = |at: usize| endian.u32([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let (serial, fields_len) = (word(8), word(12));
    if serial == 0 {
        return Err(Refusal::Malformed("serial 0"));
    }
    let header_len = (PRIMARY_HEADER_BYTES as u64) + u64::from(fields_len);
    let total = claimed_length(header).ok_or(Refusal::Malformed("unknown byte order"))?;
    if total > max_message {
        return Err(Refusal::TooLarge { bytes: total });
    }
    let after_fields = total - header_len;
    // Header fields are buffered (for the path) only within MAX_MESSAGE_BYTES: a bus's
    // larger message is passed over without a look.
    if kind != METHOD_CALL || total > MAX_MESSAGE_BYTES as u64 {
        return Ok(after(total - PRIMARY_HEADER_BYTES as u64));
    }
    let need = fields_len as usize;
    Ok(Phase::Fields { endian, bytes: Vec::with_capacity(need), need, then_skip: after_fields })
}
