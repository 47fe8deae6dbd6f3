//! The handshake as zbus's server sees it (zbus 6, `EXTERNAL` mechanism), line by line.
//!
//! The guard must leave the handshake on the very `BEGIN` on which zbus does:
//! - if the guard left earlier, zbus would still be buffering handshake lines (without
//!   any bound) while the guard let "messages" through;
//! - if it left later, zbus would read a primary header the guard has not checked.
//!
//! zbus's server accepts `BEGIN` only once `AUTH EXTERNAL` (or the `DATA` that follows
//! it) has succeeded for the peer's uid, and answers a misplaced `BEGIN` with `ERROR`,
//! staying in the handshake. The specification says the server disconnects there; the
//! guard refuses it, so the two never part. Where zbus would fail the handshake (an
//! unknown command, bad hex, an uid that is not a number), the guard refuses too;
//! commands only a server sends (`OK`, `REJECTED`, `AGREE_UNIX_FD`) are refused.
//! Words are split as zbus splits them (ASCII whitespace, `\r` included).

use super::{MAX_HANDSHAKE_LINE_BYTES, MAX_HANDSHAKE_LINES, Refusal};

/// Where zbus's server handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Auth,
    /// `AUTH EXTERNAL` came without an identity; `DATA` carries it (or none).
    Data,
    Begin,
}

/// A client SASL command, as zbus parses it.
enum Command {
    /// `AUTH [mechanism [hex]]`; the mechanism is `Some(true)` for `EXTERNAL`,
    /// `Some(false)` for `ANONYMOUS` (which this server rejects).
    Auth(Option<bool>, Option<Vec<u8>>),
    Data(Option<Vec<u8>>),
    Begin,
    /// `CANCEL` or `ERROR`: both send the server back to waiting for `AUTH`.
    Cancel,
    NegotiateUnixFd,
}

#[derive(Debug)]
pub(super) struct Sasl {
    peer_uid: u32,
    seen_nul: bool,
    line: Vec<u8>,
    lines: usize,
    awaiting: Awaiting,
}

impl Sasl {
    pub(super) fn new(peer_uid: u32) -> Self {
        Self { peer_uid, seen_nul: false, line: Vec::new(), lines: 0, awaiting: Awaiting::Auth }
    }

    /// Consumes a prefix of `input` (at least one byte): up to the end of the `BEGIN`
    /// line that ends the handshake, or all of it. Returns its length and whether the
    /// handshake ended there.
    pub(super) fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), Refusal> {
        for (at, &byte) in input.iter().enumerate() {
            if !self.seen_nul {
                if byte != 0 {
                    return Err(Refusal::Malformed("first byte is not NUL"));
                }
                self.seen_nul = true;
                continue;
            }
            if self.line.len() == MAX_HANDSHAKE_LINE_BYTES {
                return Err(Refusal::HandshakeTooLong);
            }
            self.line.push(byte);
            if byte != b'\n' {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            self.lines += 1;
            if self.command(&line)? {
                return Ok((at + 1, true));
            }
            if self.lines == MAX_HANDSHAKE_LINES {
                return Err(Refusal::HandshakeTooLong);
            }
        }
        Ok((input.len(), false))
    }

    /// Follows one complete line (ending in `\n`); true when it ends the handshake.
    fn command(&mut self, line: &[u8]) -> Result<bool, Refusal> {
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(Refusal::Malformed("handshake line not ended by CR LF"));
        };
        let text = std::str::from_utf8(text).map_err(|_| Refusal::Malformed("handshake line not UTF-8"))?;
        let command = parse(text)?;
        self.awaiting = match (self.awaiting, command) {
            (Awaiting::Begin, Command::Begin) => return Ok(true),
            (_, Command::Begin) => return Err(Refusal::Malformed("BEGIN before authentication")),
            (Awaiting::Auth, Command::Auth(Some(true), None)) => Awaiting::Data,
            (Awaiting::Auth, Command::Auth(Some(true), Some(id))) => self.external(&id)?,
            // Another mechanism or none: REJECTED.
            (Awaiting::Auth, Command::Auth(..) | Command::Cancel) => Awaiting::Auth,
            // An empty DATA: the server takes the socket's credentials.
            (Awaiting::Data, Command::Data(None)) => Awaiting::Begin,
            (Awaiting::Data, Command::Data(Some(id))) => self.external(&id)?,
            (Awaiting::Begin, Command::Cancel) => Awaiting::Auth,
            // Answered with ERROR (or AGREE_UNIX_FD / ERROR for NEGOTIATE_UNIX_FD);
            // zbus stays where it was.
            (state, Command::Auth(..) | Command::Data(_) | Command::Cancel | Command::NegotiateUnixFd) => state,
        };
        Ok(false)
    }

    /// The outcome of an `EXTERNAL` identity: accepted only for the peer's own uid.
    fn external(&self, id: &[u8]) -> Result<Awaiting, Refusal> {
        let id = std::str::from_utf8(id).map_err(|_| Refusal::Malformed("EXTERNAL identity not UTF-8"))?;
        // The same parse as zbus's (which accepts a leading '+').
        let uid: u32 = id.parse().map_err(|_| Refusal::Malformed("EXTERNAL identity not a uid"))?;
        Ok(if uid == self.peer_uid { Awaiting::Begin } else { Awaiting::Auth })
    }
}

fn parse(text: &str) -> Result<Command, Refusal> {
    let mut words = text.split_ascii_whitespace();
    let command = match words.next() {
        Some("AUTH") => {
            let mechanism = match words.next() {
                None => None,
                Some("EXTERNAL") => Some(true),
                Some("ANONYMOUS") => Some(false),
                Some(_) => return Err(Refusal::Malformed("unknown SASL mechanism")),
            };
            Command::Auth(mechanism, words.next().map(hex).transpose()?)
        }
        Some("DATA") => Command::Data(words.next().map(hex).transpose()?),
        Some("BEGIN") => Command::Begin,
        Some("CANCEL" | "ERROR") => Command::Cancel,
        Some("NEGOTIATE_UNIX_FD") => Command::NegotiateUnixFd,
        _ => return Err(Refusal::Malformed("not a client SASL command")),
    };
    Ok(command)
}

/// Hex as the `hex` crate (zbus's) decodes it: pairs of digits in either case.
fn hex(text: &str) -> Result<Vec<u8>, Refusal> {
    let bad = Refusal::Malformed("bad hex in handshake");
    if !text.len().is_multiple_of(2) {
        return Err(bad);
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err(bad.clone()),
        })
        .collect()
}
