//! Just enough of the D-Bus wire format to attack vigild's framing from the `flood`
//! tool: the SASL `AUTH EXTERNAL` line and method-call headers written byte by byte
//! (little-endian), so that a header may claim any body length. Written from the
//! specification ("Message Format", "Authentication Protocol"), not from zbus, so the
//! daemon's parser is checked against an independent writer.

/// The NUL byte and `AUTH EXTERNAL <hex of the decimal uid>` a client sends first.
pub fn auth_external(uid: u32) -> Vec<u8> {
    let hex: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
    format!("\0AUTH EXTERNAL {hex}\r\n").into_bytes()
}

pub const BEGIN: &[u8] = b"BEGIN\r\n";

/// Message type 1 (the spec's METHOD_CALL).
const METHOD_CALL: u8 = 1;
const PROTOCOL_VERSION: u8 = 1;

// Header field codes.
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// A method call's header, up to where the body starts (padding included).
#[derive(Debug, Clone)]
pub struct MethodCall<'a> {
    pub serial: u32,
    pub flags: u8,
    /// The bus name the call is for (`None` peer to peer).
    pub destination: Option<&'a str>,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    /// The body's signature; `None` for a call without arguments.
    pub signature: Option<&'a str>,
    /// What the header claims the body's length is (nothing checks it against a body).
    pub body_len: u32,
}

impl MethodCall<'_> {
    /// `org.freedesktop.DBus.Peer.Ping` on `path`, which every zbus object answers.
    pub fn ping(serial: u32, path: &str) -> MethodCall<'_> {
        MethodCall {
            serial,
            flags: 0,
            destination: None,
            path,
            interface: "org.freedesktop.DBus.Peer",
            member: "Ping",
            signature: None,
            body_len: 0,
        }
    }

    /// The bus's `Hello`, a bus client's first call.
    pub fn hello(serial: u32) -> MethodCall<'static> {
        MethodCall {
            serial,
            flags: 0,
            destination: Some("org.freedesktop.DBus"),
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "Hello",
            signature: None,
            body_len: 0,
        }
    }

    /// The header bytes: the fixed 16 bytes, the field array, padding to 8.
    pub fn header(&self) -> Vec<u8> {
        let mut out = vec![b'l', METHOD_CALL, self.flags, PROTOCOL_VERSION];
        out.extend_from_slice(&self.body_len.to_le_bytes());
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // the field array's length, set below
        let start = out.len(); // 16: already 8-aligned, so no padding before the first field
        string_field(&mut out, FIELD_PATH, b'o', self.path);
        string_field(&mut out, FIELD_INTERFACE, b's', self.interface);
        string_field(&mut out, FIELD_MEMBER, b's', self.member);
        if let Some(destination) = self.destination {
            string_field(&mut out, FIELD_DESTINATION, b's', destination);
        }
        if let Some(signature) = self.signature {
            pad(&mut out, 8);
            out.extend_from_slice(&[FIELD_SIGNATURE, 1, b'g', 0]);
            let len = u8::try_from(signature.len()).expect("a signature is at most 255 bytes");
            out.push(len);
            out.extend_from_slice(signature.as_bytes());
            out.push(0);
        }
        let fields_len = u32::try_from(out.len() - start).expect("small header");
        out[12..16].copy_from_slice(&fields_len.to_le_bytes());
        pad(&mut out, 8);
        out
    }

    /// The whole message's length as the header claims it: header plus body.
    pub fn claimed_total(&self) -> u64 {
        self.header().len() as u64 + u64::from(self.body_len)
    }
}

/// One header field whose value is a string or an object path: the struct (byte code,
/// variant) aligned to 8, the variant's signature, the value aligned to 4.
fn string_field(out: &mut Vec<u8>, code: u8, kind: u8, value: &str) {
    pad(out, 8);
    out.extend_from_slice(&[code, 1, kind, 0]);
    pad(out, 4);
    let len = u32::try_from(value.len()).expect("short value");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

fn pad(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

/// The fixed part of an incoming message's header: (type, body length, total length
/// with the header's padding), or `None` when fewer than 16 bytes are there or the
/// byte order mark is not `l`/`B`.
pub fn frame_len(buf: &[u8]) -> Option<(u8, u32, usize)> {
    let fixed: [u8; 16] = buf.get(..16)?.try_into().ok()?;
    let word = |at: usize| {
        let bytes = [fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]];
        match fixed[0] {
            b'l' => Some(u32::from_le_bytes(bytes)),
            b'B' => Some(u32::from_be_bytes(bytes)),
            _ => None,
        }
    };
    let body = word(4)?;
    let fields = word(12)? as usize;
    let header = (16 + fields).div_ceil(8) * 8;
    Some((fixed[1], body, header + body as usize))
}

/// Removes the whole messages at the front of `inbox`; returns how many.
pub fn take_messages(inbox: &mut Vec<u8>) -> u64 {
    let mut count = 0;
    while let Some((_, _, total)) = frame_len(inbox) {
        if inbox.len() < total {
            break;
        }
        inbox.drain(..total);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_line_hex_encodes_the_decimal_uid() {
        assert_eq!(auth_external(1000), b"\0AUTH EXTERNAL 31303030\r\n");
        assert_eq!(auth_external(0), b"\0AUTH EXTERNAL 30\r\n");
    }

    #[test]
    fn ping_header_is_laid_out_as_the_spec_says() {
        let h = MethodCall::ping(7, "/a").header();
        assert_eq!(&h[..4], &[b'l', 1, 0, 1]);
        assert_eq!(&h[4..8], &0u32.to_le_bytes(), "no body");
        assert_eq!(&h[8..12], &7u32.to_le_bytes(), "serial");
        // PATH: code, sig "o", len 2, "/a\0" = 4 + 4 + 3 = 11 bytes, padded to 16;
        // INTERFACE: 4 + 4 + 25 + 1 = 34 bytes, padded to 40; MEMBER: 4 + 4 + 4 + 1 = 13.
        let fields = u32::from_le_bytes(h[12..16].try_into().unwrap());
        assert_eq!(fields, 16 + 40 + 13);
        assert_eq!(&h[16..24], &[1, 1, b'o', 0, 2, 0, 0, 0]);
        assert_eq!(&h[24..27], b"/a\0");
        assert_eq!(h.len() % 8, 0, "the body starts 8-aligned");
        assert_eq!(h.len(), (16 + fields as usize).div_ceil(8) * 8);
        assert_eq!(frame_len(&h), Some((1, 0, h.len())));
    }

    #[test]
    fn claimed_total_counts_the_body_the_header_announces() {
        let call = MethodCall {
            serial: 1,
            flags: 0,
            destination: None,
            path: "/org/vigil1",
            interface: "org.vigil1.Manager",
            member: "ListSessions",
            signature: Some("ay"),
            body_len: 120_000_000,
        };
        let h = call.header();
        assert_eq!(call.claimed_total(), h.len() as u64 + 120_000_000);
        assert_eq!(frame_len(&h).map(|(t, b, _)| (t, b)), Some((1, 120_000_000)));
        let sig_at = h.windows(4).position(|w| w == [FIELD_SIGNATURE, 1, b'g', 0]).expect("signature field");
        assert_eq!(sig_at % 8, 0);
        assert_eq!(&h[sig_at + 4..sig_at + 8], &[2, b'a', b'y', 0]);
    }

    #[test]
    fn frame_len_reads_both_byte_orders() {
        let mut big = vec![b'B', 2, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 8];
        assert_eq!(frame_len(&big), Some((2, 4, 24 + 4)));
        big[0] = b'x';
        assert_eq!(frame_len(&big), None);
        assert_eq!(frame_len(&big[..10]), None);
    }
}
