//! Arbitrary bytes as `/etc/vigil/vigil.toml`: through the loader's UTF-8 check, the
//! TOML parser, validation and, for an accepted file, its warnings (with a fixed fake
//! account database) and the resolution of a few sessions. Any panic is a bug; so is a
//! refusal or warning not placed at a real line and column of the input.
#![no_main]

use std::io;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_config::{Accounts, Config, ConfigError, SessionFacts};

/// Deterministic accounts: a name exists when its length is even; a name with an `x`
/// fails to look up (as an unreachable directory would).
struct Fake;

impl Fake {
    fn lookup(name: &str) -> io::Result<bool> {
        if name.contains('x') {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "directory timed out"));
        }
        Ok(name.len() % 2 == 0)
    }
}

impl Accounts for Fake {
    fn user_exists(&self, name: &str) -> io::Result<bool> {
        Self::lookup(name)
    }

    fn group_exists(&self, name: &str) -> io::Result<bool> {
        Self::lookup(name)
    }
}

/// A position the input has: lines count from 1 to one past the last newline.
fn assert_placed(data: &[u8], line: usize, column: usize, key: &str, message: &str) {
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    assert!(line >= 1 && line <= lines && column >= 1, "{line}:{column} in a {lines}-line input");
    assert!(column <= data.len() + 1, "column {column} past the input");
    assert!(!key.is_empty() && !message.is_empty(), "{key:?}: {message:?}");
}

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz.toml");
    match Config::from_bytes(data, origin) {
        Ok(config) => {
            for warning in config.warnings(&Fake) {
                assert_placed(data, warning.line, warning.column, &warning.key, &warning.message);
                assert!(warning.to_string().starts_with("fuzz.toml:"), "{warning}");
            }
            let groups = vec!["ops".to_owned(), "wheel".to_owned()];
            for (user, tty, rhost) in [("alice", true, Some("10.1.2.3")), ("svc-backup", false, None), ("", true, Some("[::ffff:10.0.0.1]"))] {
                let policy = config.resolve(&SessionFacts { user, groups: &groups, service: "sshd", has_tty: tty, rhost });
                assert!(!policy.policy_name.is_empty());
                let _ = policy.is_sensitive("sudo");
            }
        }
        Err(ConfigError::Invalid { line, column, ref key, ref message, .. }) => assert_placed(data, line, column, key, message),
        Err(error @ ConfigError::Read { .. }) => panic!("from_bytes does not read files: {error}"),
    }
});
