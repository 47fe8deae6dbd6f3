//! The seed corpus of the fuzz target `frame_guard` (protocol/fuzz/corpus/frame_guard/),
//! written from real zbus messages, and its replay on stable.
//!
//! A corpus file is: byte 0 = number of cut points k (low 4 bits), k little-endian u16
//! cut offsets, then the bytes a peer sends (see protocol/fuzz/fuzz_targets/frame_guard.rs).

use std::path::{Path, PathBuf};

use zbus::message::Message;
use zbus::wire::Endian;

use super::tests::{UID, call, handshake, not_calls, open_session, run};
use crate::{MANAGER_INTERFACE, MANAGER_PATH};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame_guard")
}

/// A corpus file: `stream` cut at `cuts`.
fn seed(cuts: &[u16], stream: &[u8]) -> Vec<u8> {
    let mut data = vec![cuts.len() as u8];
    for cut in cuts {
        data.extend(cut.to_le_bytes());
    }
    data.extend(stream);
    data
}

fn open_session_ex() -> Vec<u8> {
    let truncated: &[&str] = &["rhost"];
    Message::method_call(MANAGER_PATH, "OpenSessionEx")
        .interface(MANAGER_INTERFACE)
        .build(&("alice", "sshd", "/dev/pts/3", "x".repeat(1024), "", 4242u32, 17u32, truncated))
        .expect("a valid call")
        .data()
        .to_vec()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let hello = handshake(UID);
    let open = open_session(Endian::Little).data().to_vec();
    let open_big = open_session(Endian::Big).data().to_vec();
    let mut huge = call(MANAGER_PATH, "OpenSession", Endian::Little);
    huge[4..8].copy_from_slice(&120_000_000u32.to_le_bytes());
    huge.extend([0; 64]);
    let mut many = hello.clone();
    for id in 1..4 {
        many.extend(call(&crate::session_path(id), "Status", Endian::Little));
        many.extend(call(&crate::session_path(id), "Close", Endian::Big));
    }
    many.extend(not_calls());
    many.extend(open_session_ex());
    let at_header = hello.len() as u16;
    vec![
        ("open_session", seed(&[], &[hello.as_slice(), &open].concat())),
        ("open_session_big_endian", seed(&[], &[hello.as_slice(), &open_big].concat())),
        ("open_session_cut", seed(&[5, at_header - 3, at_header + 15, at_header + 40], &[hello.as_slice(), &open].concat())),
        ("data_handshake", seed(&[], &[b"\0AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n".as_slice(), &open].concat())),
        ("wrong_uid_then_begin", seed(&[], &[b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n".as_slice(), &open].concat())),
        ("claimed_120mb_body", seed(&[at_header + 16], &[hello.as_slice(), &huge].concat())),
        ("back_to_back", seed(&[], &many)),
        ("back_to_back_cut", seed(&[1, 30, 31, 200, 201, 202, 700], &many)),
    ]
}

/// Writes the seed corpus: `cargo test -p vigil-protocol -- --ignored regenerate_fuzz_corpus`.
#[test]
#[ignore]
fn regenerate_fuzz_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    for (name, data) in seeds() {
        std::fs::write(dir.join(name), data).expect("write a seed");
    }
}

/// Every corpus file (seeds and crashes found and fixed) gives the same outcome whole
/// and byte by byte.
#[test]
fn the_fuzz_corpus_replays_alike_whole_and_byte_by_byte() {
    let entries = std::fs::read_dir(corpus_dir()).expect("the corpus is in the repository");
    let mut replayed = 0;
    for entry in entries {
        let data = std::fs::read(entry.expect("a corpus entry").path()).expect("read a corpus file");
        let Some(&first) = data.first() else { continue };
        let Some(stream) = data.get(1 + 2 * usize::from(first & 15)..) else { continue };
        let (whole, bytewise) = (run(stream, 0), run(stream, 1));
        assert_eq!(whole.0, bytewise.0);
        assert_eq!(whole.1.map(|(_, refusal)| refusal), bytewise.1.map(|(_, refusal)| refusal));
        replayed += 1;
    }
    assert!(replayed >= seeds().len(), "{replayed} corpus files");
}
