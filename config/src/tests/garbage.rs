//! No input makes the parser panic, and every refusal is placed at a real position.

use std::path::Path;

use super::ORIGIN;
use super::warnings::Fake;
use crate::{Config, ConfigError};

const SHIPPED: &str = include_str!("../../../packaging/vigil.toml");

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

const PIECES: &[&str] = &[
    "[defaults]",
    "[[policy]]",
    "[policy.match]",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    " = ",
    ",",
    "\n",
    "\n",
    " ",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "#",
    ".",
    "\\",
    "\\u00e9",
    "idle_timeout",
    "idle_warning",
    "idle_action",
    "exempt",
    "match",
    "name",
    "users",
    "groups",
    "services",
    "tty",
    "rhosts",
    "\"15m\"",
    "\"0\"",
    "\"1h30m\"",
    "\"-1s\"",
    "\"99999999999999999999h\"",
    "\"terminate\"",
    "\"none\"",
    "true",
    "false",
    "1",
    "-0",
    "1e400",
    "nan",
    "1979-05-27T07:32:00Z",
    "[\"a\", \"b*\"]",
    "[\"10.0.0.0/8\"]",
    "[\"10.0.0.0/99\"]",
    "[]",
    "{}",
    "é",
    "\u{0}",
    "\r\n",
    "\t",
    "policy",
    "defaults",
];

/// Refusals and warnings are placed at real positions and say something.
fn check(result: Result<Config, ConfigError>, input: &dyn std::fmt::Debug) {
    let placed = |line: usize, column: usize, key: &str, message: &str| {
        assert!(line >= 1 && column >= 1, "{line}:{column} for {input:?}");
        assert!(!key.is_empty() && !message.is_empty(), "{key:?} {message:?} for {input:?}");
    };
    match result {
        Ok(config) => {
            for w in config.warnings(&Fake::new(&["a"], &["a"])) {
                placed(w.line, w.column, &w.key, &w.message);
            }
        }
        Err(ConfigError::Invalid { line, column, key, message, .. }) => placed(line, column, &key, &message),
        Err(ConfigError::Read { .. }) => {}
    }
}

#[test]
fn random_token_soup() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..400 {
        let text: String = (0..rng.below(40)).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        check(Config::parse(&text, Path::new(ORIGIN)), &text);
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next().to_le_bytes()[0]).collect();
        check(Config::from_bytes(&bytes, Path::new(ORIGIN)), &bytes);
    }
}

#[test]
fn mutated_shipped_file() {
    let mut rng = Rng(0xfeed_beef_0000_0042);
    let original = SHIPPED.as_bytes();
    for _ in 0..300 {
        let mut bytes = original.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len().max(1));
            match rng.below(4) {
                0 => bytes.truncate(at),
                1 => {
                    if at < bytes.len() {
                        bytes[at] = rng.next().to_le_bytes()[0];
                    }
                }
                2 => bytes.splice(at..at, PIECES[rng.below(PIECES.len())].bytes()).for_each(drop),
                _ => {
                    if at < bytes.len() {
                        bytes.remove(at);
                    }
                }
            }
        }
        // uncomment the examples now and then, to reach the policy code
        let bytes = if rng.below(2) == 0 {
            String::from_utf8_lossy(&bytes).replace("# [[policy]]", "[[policy]]").replace("\n# ", "\n").into_bytes()
        } else {
            bytes
        };
        check(Config::from_bytes(&bytes, Path::new(ORIGIN)), &String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn deep_nesting() {
    for text in [
        "a = ".to_owned() + &"[".repeat(10_000),
        "a = ".to_owned() + &"{ b = ".repeat(10_000),
        "[".repeat(10_000),
        "[defaults]\nidle_timeout = ".to_owned() + &"[".repeat(5_000) + &"]".repeat(5_000),
        format!("[{}]", "a.".repeat(5_000) + "b"),
    ] {
        check(Config::parse(&text, Path::new(ORIGIN)), &text.get(..40));
    }
}

/// The fuzz target's seed corpus (config/fuzz/corpus/config_parse), replayed on stable.
#[test]
fn the_fuzz_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_parse");
    let mut entries: Vec<_> =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    entries.sort();
    assert!(entries.len() >= 15, "only {} corpus files", entries.len());
    let mut accepted = 0;
    for path in entries {
        let bytes = std::fs::read(&path).unwrap();
        let result = Config::from_bytes(&bytes, Path::new(ORIGIN));
        accepted += usize::from(result.is_ok());
        check(result, &path);
    }
    assert!(accepted >= 8, "the corpus reaches the warnings: {accepted} files accepted");
}
