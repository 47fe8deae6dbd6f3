//! The hash chain over audit records, with a key that evolves forward.
//!
//! Record `i` carries `seq=i` and `prev=` (the first 16 hex digits of record `i-1`'s
//! mac) and ends with `mac=`: HMAC-SHA256 under key `k_i` over the record's text up to
//! the mac, cut to 128 bits. After each record the key moves on,
//! `k_{i+1} = HMAC-SHA256(k_i, "vigil audit key evolution v1")`, and `k_i` is erased.
//! Whoever takes root at record `n` learns `k_n` and can forge records from `n` on, but
//! cannot recompute `k_i` for `i < n`: earlier records cannot be rewritten without
//! detection. The admin keeps the starting key (`k_s` for the first seq `s`) off the
//! host; from it the verifier derives every later key.

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;

pub const KEY_BYTES: usize = 32;
/// Hex digits of `mac=` (128 bits).
pub const MAC_HEX: usize = 32;
/// Hex digits of `prev=` (64 bits of the previous mac).
pub const PREV_HEX: usize = 16;
const EVOLVE_LABEL: &[u8] = b"vigil audit key evolution v1";
/// `prev=` of the first record of a chain.
pub const NO_PREV: &str = "0000000000000000";

/// A chain key. Erased from memory when dropped or evolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_BYTES]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        text.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    text
}

/// Whether `text` is `bytes` in lowercase hex (what [`hex`] writes), without writing it.
fn is_hex_of(text: &[u8], bytes: &[u8]) -> bool {
    text.len() == bytes.len() * 2
        && bytes
            .iter()
            .zip(text.chunks_exact(2))
            .all(|(&b, pair)| pair[0] == HEX_DIGITS[usize::from(b >> 4)] && pair[1] == HEX_DIGITS[usize::from(b & 0x0f)])
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

impl Key {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Key(bytes)
    }

    pub fn random() -> std::io::Result<Self> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Key(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes: [u8; KEY_BYTES] = unhex(text)?.try_into().ok()?;
        Some(Key(bytes))
    }

    /// The key of the next record; this one is erased.
    pub fn evolve(&mut self) {
        let next = hmac(&self.0, EVOLVE_LABEL);
        self.0.zeroize();
        self.0 = next;
    }

    /// The mac of a record's text (everything before ` mac=`), as hex.
    pub fn mac(&self, body: &str) -> String {
        hex(&hmac(&self.0, body.as_bytes())[..MAC_HEX / 2])
    }

    /// Whether `mac` is [`Key::mac`] of `body` (the verifier's question, asked of every
    /// record: no text is built for it).
    pub fn mac_is(&self, body: &str, mac: &str) -> bool {
        is_hex_of(mac.as_bytes(), &hmac(&self.0, body.as_bytes())[..MAC_HEX / 2])
    }
}

/// The starting key as the admin keeps it: `vigil-audit-key v1 start_seq=N key=HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub start_seq: u64,
    pub key: Key,
}

impl KeyFile {
    pub fn render(&self) -> String {
        format!("vigil-audit-key v1 start_seq={} key={}\n", self.start_seq, self.key.to_hex())
    }

    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut words = text.split_whitespace();
        if (words.next(), words.next()) != (Some("vigil-audit-key"), Some("v1")) {
            return Err(KeyFileError::NotAKeyFile);
        }
        let mut start_seq = None;
        let mut key = None;
        for word in words {
            match word.split_once('=') {
                Some(("start_seq", v)) => start_seq = v.parse().ok(),
                Some(("key", v)) => key = Key::from_hex(v),
                _ => return Err(KeyFileError::Unexpected(word.to_string())),
            }
        }
        match (start_seq, key) {
            (Some(start_seq), Some(key)) => Ok(KeyFile { start_seq, key }),
            _ => Err(KeyFileError::Incomplete),
        }
    }
}

/// Why a key file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("not a vigil audit key file (expected \"vigil-audit-key v1 start_seq=N key=HEX\")")]
    NotAKeyFile,
    #[error("unexpected {0:?} in the key file")]
    Unexpected(String),
    #[error("the key file needs start_seq=N and key=<64 hex digits>")]
    Incomplete,
}

/// How a record's text ends, per encoding: the verifier strips it to find the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `key=value ... seq=N prev=HEX mac=HEX`
    KeyValue,
    /// `{"event":...,"seq":N,"prev":"HEX","mac":"HEX"}`
    Json,
}

/// Appends `seq` and `prev` to a rendered record (no mac yet).
pub fn with_position(encoded: &str, encoding: Encoding, seq: u64, prev: &str) -> String {
    match encoding {
        Encoding::KeyValue => format!("{encoded} seq={seq} prev={prev}"),
        Encoding::Json => {
            let open = encoded.strip_suffix('}').unwrap_or(encoded);
            format!("{open},\"seq\":{seq},\"prev\":\"{prev}\"}}")
        }
    }
}

/// Adds the mac to a body.
pub fn sealed(body: &str, encoding: Encoding, mac: &str) -> String {
    match encoding {
        Encoding::KeyValue => format!("{body} mac={mac}"),
        Encoding::Json => {
            let open = body.strip_suffix('}').unwrap_or(body);
            format!("{open},\"mac\":\"{mac}\"}}")
        }
    }
}

/// Splits a sealed record into (body, mac, encoding). `None` when it carries no mac.
/// A kv body is borrowed from `message` (no copy per record); a JSON body is rebuilt.
pub fn split_mac(message: &str) -> Option<(Cow<'_, str>, &str, Encoding)> {
    let is_mac = |m: &str| m.len() == MAC_HEX && m.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    // The mac is the last MAC_HEX characters (none of them a space or a quote), so the
    // last ` mac=` can only be just before them: looked for there, not searched.
    if let Some(open) = message.strip_suffix("\"}") {
        let (head, mac) = split_at_tail(open, ",\"mac\":\"", MAC_HEX)?;
        return is_mac(mac).then(|| (Cow::Owned(format!("{head}}}")), mac, Encoding::Json));
    }
    let (body, mac) = split_at_tail(message, " mac=", MAC_HEX)?;
    is_mac(mac).then_some((Cow::Borrowed(body), mac, Encoding::KeyValue))
}

/// `(before, tail)` when `text` ends with `separator` and `tail_len` more bytes.
pub(crate) fn split_at_tail<'a>(text: &'a str, separator: &str, tail_len: usize) -> Option<(&'a str, &'a str)> {
    let at = text.len().checked_sub(tail_len + separator.len())?;
    let (head, rest) = (text.get(..at)?, text.get(at..)?);
    Some((head, rest.strip_prefix(separator)?))
}

/// The writer's side: the key for the next record, its seq, and the last mac.
#[derive(Debug, Clone)]
pub struct ChainState {
    pub next_seq: u64,
    pub key: Key,
    pub last_mac: String,
}

impl ChainState {
    /// A new chain starting at `start_seq` with a fresh random key; the key file is
    /// what the admin keeps.
    pub fn start(start_seq: u64) -> std::io::Result<(ChainState, KeyFile)> {
        let key = Key::random()?;
        let file = KeyFile { start_seq, key: key.clone() };
        Ok((ChainState { next_seq: start_seq, key, last_mac: String::new() }, file))
    }

    /// Seals one encoded record: adds seq, prev and mac, and moves the chain on.
    pub fn seal(&mut self, encoded: &str, encoding: Encoding) -> String {
        let prev = if self.last_mac.is_empty() { NO_PREV } else { &self.last_mac[..PREV_HEX] };
        let body = with_position(encoded, encoding, self.next_seq, prev);
        let mac = self.key.mac(&body);
        self.key.evolve();
        self.next_seq = self.next_seq.saturating_add(1);
        self.last_mac = mac.clone();
        sealed(&body, encoding, &mac)
    }
}

/// Derives keys for the verifier: `k_seq` from the starting key, evolving forward
/// only, with checkpoints so that records out of order do not start over each time.
pub struct KeyDeriver {
    start_seq: u64,
    checkpoints: Vec<Key>,
    current_seq: u64,
    current: Key,
}

/// Keys are kept every this many seqs.
const CHECKPOINT_EVERY: u64 = 4096;
/// A seq further than this past the start is not believed (a forged `seq=` must not
/// make the verifier compute keys for hours).
pub const MAX_SEQ_SPAN: u64 = 1 << 32;

impl KeyDeriver {
    pub fn new(file: &KeyFile) -> Self {
        Self { start_seq: file.start_seq, checkpoints: vec![file.key.clone()], current_seq: file.start_seq, current: file.key.clone() }
    }

    pub fn start_seq(&self) -> u64 {
        self.start_seq
    }

    /// The key of record `seq`; `None` before the start or implausibly far.
    pub fn key(&mut self, seq: u64) -> Option<&Key> {
        if seq < self.start_seq || seq - self.start_seq > MAX_SEQ_SPAN {
            return None;
        }
        if seq < self.current_seq {
            let index = ((seq - self.start_seq) / CHECKPOINT_EVERY) as usize;
            let index = index.min(self.checkpoints.len() - 1);
            self.current = self.checkpoints[index].clone();
            self.current_seq = self.start_seq + index as u64 * CHECKPOINT_EVERY;
        }
        while self.current_seq < seq {
            self.current.evolve();
            self.current_seq += 1;
            if (self.current_seq - self.start_seq).is_multiple_of(CHECKPOINT_EVERY)
                && ((self.current_seq - self.start_seq) / CHECKPOINT_EVERY) as usize == self.checkpoints.len()
            {
                self.checkpoints.push(self.current.clone());
            }
        }
        Some(&self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> (ChainState, KeyFile) {
        let key = Key::from_bytes([7; KEY_BYTES]);
        (ChainState { next_seq: 10, key: key.clone(), last_mac: String::new() }, KeyFile { start_seq: 10, key })
    }

    #[test]
    fn sealed_records_verify_with_derived_keys() {
        let (mut state, file) = chain();
        let lines: Vec<String> = (0..10).map(|i| state.seal(&format!("event=test n={i}"), Encoding::KeyValue)).collect();
        assert!(lines[0].contains(" seq=10 prev=0000000000000000 mac="), "{}", lines[0]);
        let mut deriver = KeyDeriver::new(&file);
        for (i, line) in lines.iter().enumerate().rev() {
            let (body, mac, encoding) = split_mac(line).unwrap();
            assert_eq!(encoding, Encoding::KeyValue);
            assert_eq!(deriver.key(10 + i as u64).unwrap().mac(&body), mac, "record {i}");
        }
        // prev links each record to the one before.
        let mac0 = split_mac(&lines[0]).unwrap().1.to_string();
        assert!(lines[1].contains(&format!("prev={}", &mac0[..PREV_HEX])));
    }

    #[test]
    fn json_records_seal_and_split() {
        let (mut state, file) = chain();
        let line = state.seal("{\"event\":\"test\",\"user\":\"a\"}", Encoding::Json);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["seq"], 10);
        let (body, mac, encoding) = split_mac(&line).unwrap();
        assert_eq!(encoding, Encoding::Json);
        assert_eq!(KeyDeriver::new(&file).key(10).unwrap().mac(&body), mac);
    }

    #[test]
    fn an_edit_breaks_the_mac() {
        let (mut state, file) = chain();
        let line = state.seal("event=session_open user=alice", Encoding::KeyValue);
        let edited = line.replace("alice", "alicf");
        let (body, mac, _) = split_mac(&edited).unwrap();
        assert_ne!(KeyDeriver::new(&file).key(10).unwrap().mac(&body), mac);
    }

    #[test]
    fn evolution_forgets_the_past() {
        let mut key = Key::from_bytes([1; KEY_BYTES]);
        let before = key.clone();
        key.evolve();
        assert_ne!(key, before);
    }

    #[test]
    fn key_file_round_trip_and_errors() {
        let file = KeyFile { start_seq: 42, key: Key::from_bytes([0xab; KEY_BYTES]) };
        assert_eq!(KeyFile::parse(&file.render()).unwrap(), file);
        assert!(KeyFile::parse("garbage").is_err());
        assert!(KeyFile::parse("vigil-audit-key v1 start_seq=1 key=zz").is_err());
    }

    #[test]
    fn deriver_refuses_implausible_seqs() {
        let (_, file) = chain();
        let mut d = KeyDeriver::new(&file);
        assert!(d.key(9).is_none());
        assert!(d.key(10 + MAX_SEQ_SPAN + 1).is_none());
        let far = d.key(10 + 10_000).unwrap().clone();
        let near = d.key(12).unwrap().clone();
        let mut k = file.key.clone();
        k.evolve();
        k.evolve();
        assert_eq!(near, k);
        assert_eq!(d.key(10 + 10_000).unwrap(), &far);
    }
}
