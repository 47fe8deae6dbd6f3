//! Arbitrary bytes as what a new peer of vigild's private socket sends, delivered in
//! chunks the fuzzer chooses, through the quick path (`daemon/src/rpc/single_call.rs`, the
//! very file vigild compiles): `OpeningReader` decides whether the opening is one of the
//! module's calls, and a call it keeps is answered and framed as vigild sends it. Any
//! panic is a bug (any local user may send these bytes), and so is:
//! - reading more than the opening's bound;
//! - handing zbus other bytes than those read, in another order (`Opening::Other`);
//! - keeping a call that is not exactly the module's handshake followed by one of the
//!   module's method calls on the manager object, without descriptors, or losing or
//!   moving the bytes behind it (`Opening::Call`);
//! - an answer that is not a reply to that call, or `Gone` when the peer's read did
//!   not fail.
//!
//! Input: byte 0 = number of cut points k (low 4 bits) and how the peer's side ends
//! (bits 4-5: 0 and 3 closed, 1 silent, 2 a failing read), then k little-endian u16 cut
//! offsets (taken modulo the stream's length + 1), then the stream. The peer's uid is
//! 1000 (the seeds authenticate as 1000); bit 6 makes vigild's answer an error.
//! `SINGLE_CALL_SHOW=1` prints what each input decided.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use vigil_protocol::frame::pipelined_handshake;
use vigil_protocol::{MANAGER_INTERFACE, MANAGER_PATH};
use zbus::message::Type;

#[path = "../../src/rpc/single_call.rs"]
#[allow(dead_code)]
mod single_call;

use single_call::{OPENING_LIMIT, Opening, OpeningReader};

/// The peer's credentials, as vigild's `caller` module holds them.
mod caller {
    #[derive(Debug, Clone, Copy)]
    pub struct Caller {
        pub uid: u32,
        pub pid: u32,
    }
}

/// Stands in for vigild's registry behind the calls the quick path answers: a value of
/// each method's real reply type, or a refusal.
mod sessions {
    pub mod manager {
        use std::sync::Arc;

        use vigil_protocol::{OpenRequest, ReauthAnswer, VigilError};

        use crate::caller::Caller;

        pub struct Manager {
            pub refuse: bool,
        }

        impl Manager {
            fn result<T>(&self, value: T) -> Result<T, VigilError> {
                if self.refuse { Err(VigilError::AccessDenied("OpenSession: root only".into())) } else { Ok(value) }
            }

            pub async fn open_session(self: &Arc<Self>, caller: Caller, r: OpenRequest) -> Result<u64, VigilError> {
                self.result(u64::from(caller.uid) + r.user.len() as u64 + r.truncated.len() as u64)
            }

            pub fn close_session(&self, _caller: Caller, _id: u64) -> Result<(), VigilError> {
                self.result(())
            }

            pub fn check_reauth(&self, _caller: Caller, service: &str, user: &str) -> Result<ReauthAnswer, VigilError> {
                self.result(ReauthAnswer { fresh: service == user, reason: service.to_owned(), proof_age_usec: 0, session: 1 })
            }

            pub fn record_auth(&self, _caller: Caller, _service: &str, _user: &str) -> Result<(), VigilError> {
                self.result(())
            }

            pub fn record_auth_failure(&self, _caller: Caller, _service: &str) -> Result<(), VigilError> {
                self.result(())
            }
        }
    }
}

const UID: u32 = 1000;
const GUID: &str = "0123456789abcdef0123456789abcdef";
/// `OpeningReader` reads in chunks of this much.
const READ_CHUNK: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer shut its side down after its last byte.
    Closed,
    /// The peer says nothing more and keeps the connection.
    Silent,
    /// The read after its last byte fails (a reset).
    Failed,
}

/// The peer's side: what the socket holds now (up to the current cut), then how it ends.
struct Peer<'a> {
    stream: &'a [u8],
    read: usize,
    available: usize,
    end: End,
}

impl Peer<'_> {
    fn try_read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.read < self.available {
            let n = buffer.len().min(self.available - self.read);
            buffer[..n].copy_from_slice(&self.stream[self.read..self.read + n]);
            self.read += n;
            return Ok(n);
        }
        if self.available < self.stream.len() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        match self.end {
            End::Closed => Ok(0),
            End::Silent => Err(std::io::ErrorKind::WouldBlock.into()),
            End::Failed => Err(std::io::ErrorKind::ConnectionReset.into()),
        }
    }
}

/// The opening as vigild reads it, `None` when the reader would wait past the last byte
/// (vigild's deadline then makes it `Gone`); and how many bytes were read.
fn read_opening(stream: &[u8], cuts: &[usize], end: End) -> (Option<Opening>, usize) {
    let mut reader = OpeningReader::new(UID);
    let mut peer = Peer { stream, read: 0, available: 0, end };
    for &available in cuts.iter().chain([stream.len()].iter()) {
        peer.available = available.max(peer.available);
        if let Some(opening) = reader.decide_now(&mut |buffer| peer.try_read(buffer)) {
            return (Some(opening), peer.read);
        }
    }
    (None, peer.read)
}

/// `SINGLE_CALL_SHOW=1`: say what each input decided (to check the seeds).
fn show() -> bool {
    static SHOW: OnceLock<bool> = OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("SINGLE_CALL_SHOW").is_some())
}

fn describe(opening: &Option<Opening>) -> String {
    match opening {
        None => "waits".into(),
        Some(Opening::Gone) => "gone".into(),
        Some(Opening::Other(bytes)) => format!("other ({} bytes for zbus)", bytes.len()),
        Some(Opening::Call { call, rest, closed }) => {
            format!("call {:?} ({} bytes behind, closed: {closed})", call.header().member().map(|m| m.to_string()), rest.len())
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

fn check_call(stream: &[u8], read: usize, end: End, call: &zbus::Message, rest: &[u8], closed: bool, refuse: bool) {
    let handshake = pipelined_handshake(UID);
    assert!(stream.starts_with(&handshake), "kept without the module's handshake");
    let bytes = call.data().bytes();
    let call_end = handshake.len() + bytes.len();
    assert_eq!(&stream[handshake.len()..call_end], bytes, "the call is not the bytes after the handshake");
    assert_eq!(&stream[call_end..read], rest, "the bytes behind the call were lost or moved");
    assert!(!closed || (end == End::Closed && read == stream.len()), "closed, but the peer's side is {end:?} after {read} bytes");
    let header = call.header();
    assert_eq!(call.message_type(), Type::MethodCall);
    assert_eq!(header.path().map(|p| p.as_str()), Some(MANAGER_PATH));
    assert_eq!(header.interface().map(|i| i.as_str()), Some(MANAGER_INTERFACE));
    assert_eq!(header.unix_fds().unwrap_or(0), 0, "a call that claims descriptors");

    let core = Arc::new(sessions::manager::Manager { refuse });
    let peer = caller::Caller { uid: UID, pid: 4242 };
    let answer = runtime().block_on(single_call::answer(&core, peer, call)).expect("an answer to a kept call");
    assert!(matches!(answer.message_type(), Type::MethodReturn | Type::Error), "{answer:?}");
    assert_eq!(answer.header().reply_serial(), Some(call.primary_header().serial_num()), "not a reply to the call");
    let out = single_call::answer_bytes(GUID, &answer);
    assert!(out.starts_with(format!("OK {GUID}\r\n").as_bytes()) && out.ends_with(answer.data().bytes()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let k = usize::from(first & 15);
    let end = match (first >> 4) & 3 {
        1 => End::Silent,
        2 => End::Failed,
        _ => End::Closed,
    };
    let refuse = first & 64 != 0;
    if rest.len() < 2 * k {
        return;
    }
    let (offsets, stream) = rest.split_at(2 * k);
    let mut cuts: Vec<usize> =
        offsets.chunks_exact(2).map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (stream.len() + 1)).collect();
    cuts.sort_unstable();

    let (opening, read) = read_opening(stream, &cuts, end);
    if show() {
        eprintln!("{} bytes read: {}", read, describe(&opening));
    }
    assert!(read <= stream.len());
    // Reads go on while the opening may be a module's call (under the bound), then one
    // more to see whether the peer closed behind it.
    assert!(read <= OPENING_LIMIT + 2 * READ_CHUNK, "read {read} bytes");
    match opening {
        None => assert_eq!(end, End::Silent, "waits for a peer whose side is {end:?}"),
        Some(Opening::Gone) => assert_eq!(end, End::Failed, "gone, but the peer's side is {end:?}"),
        Some(Opening::Other(bytes)) => assert_eq!(bytes, &stream[..read], "zbus would not get the bytes read"),
        Some(Opening::Call { call, rest, closed }) => check_call(stream, read, end, &call, &rest, closed, refuse),
    }
});
