//! A method call's header fields array, `a(yv)`, read for its `PATH`.
//!
//! Each field is a struct (8-aligned, offsets counted from the message start; the array
//! starts at offset 16, so offsets within it align the same way) of a code byte and a
//! variant: a signature (length byte, characters, NUL) then the value, aligned for its
//! type. Only the basic types the specification gives the known fields (`o`, `s`, `g`,
//! `u`) can be stepped over without a full D-Bus parser, so any other type is refused.

use super::{Endian, Refusal};

const PATH: u8 = 1;
/// The type of each known field code (1 to 9), as the specification fixes it.
const KNOWN: [(u8, u8); 9] = [(1, b'o'), (2, b's'), (3, b's'), (4, b's'), (5, b'u'), (6, b's'), (7, b's'), (8, b'g'), (9, b'u')];

/// The object path of a method call, from its complete fields array `bytes`.
pub(super) fn method_call_path(bytes: &[u8], endian: Endian) -> Result<&str, Refusal> {
    let mut reader = Reader { bytes, at: 0, endian };
    let mut path = None;
    let mut seen = [false; 10];
    while reader.at < bytes.len() {
        reader.align(8)?;
        let code = reader.byte()?;
        if code == 0 {
            return Err(Refusal::Malformed("header field code 0"));
        }
        let signature = reader.signature()?;
        let &[kind] = signature else {
            return Err(Refusal::Malformed("header field of an unsupported type"));
        };
        if let Some(&(_, expected)) = KNOWN.iter().find(|(known, _)| *known == code) {
            if kind != expected {
                return Err(Refusal::Malformed("header field of the wrong type"));
            }
            let seen = &mut seen[usize::from(code)];
            if *seen {
                return Err(Refusal::Malformed("header field repeated"));
            }
            *seen = true;
        }
        match kind {
            b'o' | b's' => {
                let text = reader.string()?;
                if kind == b'o' && !is_object_path(text) {
                    return Err(Refusal::Malformed("bad object path"));
                }
                if code == PATH {
                    path = Some(text);
                }
            }
            b'g' => {
                reader.signature()?;
            }
            b'u' => {
                reader.align(4)?;
                reader.take(4)?;
            }
            _ => return Err(Refusal::Malformed("header field of an unsupported type")),
        }
    }
    path.ok_or(Refusal::Malformed("method call without a path"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    endian: Endian,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(Refusal::Malformed("header field runs past the fields array"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    /// Skips padding up to a multiple of `to`; padding must be zero.
    fn align(&mut self, to: usize) -> Result<(), Refusal> {
        let pad = self.at.next_multiple_of(to) - self.at;
        if self.take(pad)?.iter().any(|&b| b != 0) {
            return Err(Refusal::Malformed("nonzero padding"));
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }

    /// A `g`: length byte, characters, NUL.
    fn signature(&mut self) -> Result<&'a [u8], Refusal> {
        let len = usize::from(self.byte()?);
        let text = self.take(len)?;
        self.nul()?;
        Ok(text)
    }

    /// An `s` or `o`: 4-aligned u32 length, UTF-8 without NUL, NUL.
    fn string(&mut self) -> Result<&'a str, Refusal> {
        self.align(4)?;
        let len = self.take(4)?;
        let len = self.endian.u32([len[0], len[1], len[2], len[3]]);
        let text = self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        self.nul()?;
        if text.contains(&0) {
            return Err(Refusal::Malformed("NUL inside a header string"));
        }
        std::str::from_utf8(text).map_err(|_| Refusal::Malformed("header string not UTF-8"))
    }

    fn nul(&mut self) -> Result<(), Refusal> {
        if self.byte()? != 0 {
            return Err(Refusal::Malformed("header string not NUL-terminated"));
        }
        Ok(())
    }
}

/// The specification's object path: `/`, or `/`-separated non-empty elements of
/// `[A-Za-z0-9_]` with no trailing `/`.
fn is_object_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(elements) = path.strip_prefix('/') else {
        return false;
    };
    elements.split('/').all(|element| !element.is_empty() && element.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}
