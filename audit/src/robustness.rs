//! Hostile-input tests for the readers: the fuzz corpus replayed on stable, a
//! deterministic pseudo-random input generator, and (ignored) the verify throughput
//! measure for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::chain::Encoding;
use crate::sample::{Layout, sample_key, write_sample_log};
use crate::timeline::{Filter, show_readers};
use crate::verify::verify_readers;

/// What the fuzz target does with one input: verify, show (text and JSON) and the
/// record parser on every line. Panics only when an output is not plain ASCII.
pub(crate) fn exercise(data: &[u8]) {
    let keys = [sample_key(1)];
    let report = verify_readers(vec![(PathBuf::from("input"), data)], &keys).unwrap_or_else(|e| panic!("reading a slice failed: {e}"));
    for strict in [false, true] {
        let text = report.render_with(strict);
        assert!(text.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "non-printable report: {text:?}");
        assert_eq!(report.passes(strict), report.is_clean() && (!strict || report.unauthenticated().count() == 0));
    }
    for json in [false, true] {
        let filter = Filter { user: Some("alice".into()), ..Filter::default() };
        for filter in [Filter::default(), filter] {
            let shown =
                show_readers(vec![(PathBuf::from("input"), data)], &filter, json, SystemTime::now()).unwrap_or_else(|e| panic!("{e}"));
            assert!(shown.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "non-printable timeline: {shown:?}");
        }
    }
    for line in String::from_utf8_lossy(data).lines() {
        let _ = vigil_protocol::audit::parse_kv_line(line);
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/audit_lines")
}

#[test]
fn the_fuzz_corpus_replays_without_panic() {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir()).unwrap_or_else(|e| panic!("{}: {e}", corpus_dir().display())).map(|e| e.unwrap().path()).collect();
    entries.sort();
    assert!(entries.len() >= 20, "only {} corpus files", entries.len());
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        exercise(&data);
    }
}

/// The seed corpus's untouched sample verifies clean: the corpus is in step with the
/// format (a format change must regenerate it: `cargo test -p vigil-audit -- --ignored
/// regenerate_fuzz_corpus`).
#[test]
fn the_corpus_good_samples_verify() {
    for name in ["good_kv_traditional", "good_json_rfc5424", "good_kv_high_precision"] {
        let data = std::fs::read(corpus_dir().join(name)).unwrap();
        let report = verify_readers(vec![(PathBuf::from(name), &data[..])], &[sample_key(1)]).unwrap();
        assert!(report.is_clean(), "{name}: {}", report.render());
    }
}

/// A small deterministic generator (xorshift): lines made of syslog-ish and record-ish
/// pieces, mutated at random bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn twenty_thousand_pseudo_random_inputs_never_panic() {
    let mut base = Vec::new();
    write_sample_log(&mut base, 40, Layout::Traditional, Encoding::KeyValue, &sample_key(1)).unwrap();
    let mut json = Vec::new();
    write_sample_log(&mut json, 20, Layout::Rfc5424, Encoding::Json, &sample_key(1)).unwrap();
    let base_lines: Vec<&[u8]> = base.split(|&b| b == b'\n').chain(json.split(|&b| b == b'\n')).filter(|l| !l.is_empty()).collect();
    let pieces: [&[u8]; 24] = [
        b"Nov 26 04:14:10 ",
        b"<38>1 2026-11-26T04:14:10Z ",
        b"2026-11-26T04:14:10.5+01:00 ",
        b"host1 ",
        b"vigild[812]: ",
        b"vigild: ",
        b"pam_vigil[1]: ",
        b"event=session_open ",
        b"session=1 ",
        b"user=\"a\\x1b\" ",
        b" seq=",
        b"1",
        b"18446744073709551616",
        b" prev=0000000000000000",
        b" mac=0123456789abcdef0123456789abcdef",
        b"{\"event\":\"x\"",
        b",\"seq\":2,\"prev\":\"0000000000000000\"",
        b",\"mac\":\"0123456789abcdef0123456789abcdef\"}",
        b"[a b=\"\\]\"] ",
        b"\xef\xbb\xbf",
        b"\xff\x00\x1b",
        b"#012",
        b"\n",
        b" - - ",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let mut input = Vec::new();
        for _ in 0..1 + rng.below(6) {
            match rng.below(3) {
                0 => {
                    let line = base_lines[rng.below(base_lines.len())];
                    input.extend_from_slice(line);
                }
                1 => {
                    for _ in 0..1 + rng.below(8) {
                        input.extend_from_slice(pieces[rng.below(pieces.len())]);
                    }
                }
                _ => {
                    for _ in 0..rng.below(40) {
                        input.push(rng.next() as u8);
                    }
                }
            }
            // A few random byte flips.
            for _ in 0..rng.below(3) {
                if !input.is_empty() {
                    let at = rng.below(input.len());
                    input[at] = rng.next() as u8;
                }
            }
            input.push(b'\n');
        }
        exercise(&input);
    }
}

/// `verify` throughput on a sealed 1,000,000-line file (release build):
/// `cargo test --release -p vigil-audit -- --ignored --nocapture verify_throughput`.
#[test]
#[ignore]
fn verify_throughput() {
    let lines: u64 = std::env::var("VIGIL_BENCH_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let path = std::env::temp_dir().join(format!("vigil-verify-bench-{}.log", std::process::id()));
    let key = sample_key(1);
    for (layout, encoding) in [(Layout::Traditional, Encoding::KeyValue), (Layout::Rfc5424, Encoding::Json)] {
        let file = std::fs::File::create(&path).unwrap();
        let started = Instant::now();
        let records = write_sample_log(file, lines, layout, encoding, &key).unwrap();
        let written = started.elapsed();
        let size = std::fs::metadata(&path).unwrap().len();
        let mut best = None;
        for _ in 0..3 {
            let started = Instant::now();
            let report = crate::verify::verify_files(std::slice::from_ref(&path), std::slice::from_ref(&key)).unwrap();
            let took = started.elapsed();
            assert!(report.is_clean(), "{}", report.render());
            best = Some(best.map_or(took, |b: std::time::Duration| b.min(took)));
        }
        let best = best.unwrap();
        let shown_started = Instant::now();
        let mut shown = Vec::new();
        crate::timeline::show_files(std::slice::from_ref(&path), &Filter::default(), false, &mut shown).unwrap();
        let shown_took = shown_started.elapsed();
        println!(
            "{layout:?}/{encoding:?}: {lines} lines ({records} records, {} MiB) written in {:.2?}; verify best of 3: {:.2?} ({:.0} lines/s); show: {:.2?} ({} bytes out)",
            size >> 20,
            written,
            best,
            lines as f64 / best.as_secs_f64(),
            shown_took,
            shown.len()
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// Writes the seed corpus of the fuzz target (audit/fuzz/corpus/audit_lines/):
/// `cargo test -p vigil-audit -- --ignored regenerate_fuzz_corpus`.
#[test]
#[ignore]
fn regenerate_fuzz_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in crate::sample::seed_corpus() {
        std::fs::write(dir.join(name), data).unwrap();
    }
}
