//! Arbitrary bytes as what a peer of vigild's private socket sends, cut into chunks at
//! points the fuzzer chooses, through `FrameGuard`. Any panic is a bug (any local user
//! may send these bytes), and so is an outcome that depends on the chunking: the calls
//! reported and the refusal must be the same whole, cut, and byte by byte, and a
//! refusal must come in the chunk that holds the byte that causes it.
//!
//! Input: byte 0 = number of cut points k (low 4 bits), then k little-endian u16 cut
//! offsets (taken modulo the stream's length + 1), then the stream. The peer's uid is
//! 1000 (the seed corpus authenticates as 1000).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_protocol::frame::{FrameGuard, Refusal};

const UID: u32 = 1000;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    paths: Vec<String>,
    /// The refusal, with the range of stream offsets of the chunk it came in.
    refused: Option<(Refusal, usize, usize)>,
}

fn observe(stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut guard = FrameGuard::new(UID);
    let mut paths = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([stream.len()].iter()) {
        let mut on_call = |path: &str| paths.push(path.to_owned());
        if let Err(refusal) = guard.observe(&stream[start..end], &mut on_call) {
            // Refused for good: nothing more is reported, the same refusal returns.
            let again = guard.observe(&stream[end..], &mut |_| panic!("a call reported after a refusal"));
            assert_eq!(again.as_ref(), Err(&refusal));
            return Outcome { paths, refused: Some((refusal, start, end)) };
        }
        start = end;
    }
    Outcome { paths, refused: None }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let k = usize::from(first & 15);
    if rest.len() < 2 * k {
        return;
    }
    let (offsets, stream) = rest.split_at(2 * k);
    let mut cuts: Vec<usize> = offsets
        .chunks_exact(2)
        .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();

    let whole = observe(stream, &[]);
    let cut = observe(stream, &cuts);
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    let bytewise = observe(stream, &every_byte);

    assert_eq!(whole.paths, bytewise.paths);
    assert_eq!(cut.paths, bytewise.paths);
    for path in &bytewise.paths {
        assert!(path.starts_with('/'), "not an object path: {path:?}");
    }
    match &bytewise.refused {
        None => {
            assert!(whole.refused.is_none(), "{whole:?}");
            assert!(cut.refused.is_none(), "{cut:?}");
        }
        Some((refusal, at, _)) => {
            // Byte by byte, the chunk is the very byte: the others must hold it.
            for other in [&whole, &cut] {
                let Some((other_refusal, start, end)) = &other.refused else {
                    panic!("refused byte by byte at {at} ({refusal}) but not in chunks: {other:?}");
                };
                assert_eq!(other_refusal, refusal);
                assert!(start <= at && at < end, "refused at {at} but in chunk {start}..{end}");
            }
        }
    }
});
