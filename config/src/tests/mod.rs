//! Unit tests of the public API: the shipped file, resolution, every kind of refusal,
//! and garbage input.

mod errors;
mod garbage;
mod resolution;
mod shipped;
mod warnings;

use std::path::Path;

use crate::{Config, ConfigError, SessionFacts};

pub(crate) const ORIGIN: &str = "/etc/vigil/vigil.toml";

pub(crate) fn parse(text: &str) -> Config {
    Config::parse(text, Path::new(ORIGIN)).unwrap_or_else(|e| panic!("refused: {e}\n{text}"))
}

/// Where and why `text` is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) key: String,
    pub(crate) message: String,
}

pub(crate) fn refusal_of(result: Result<Config, ConfigError>) -> Refusal {
    match result {
        Err(ConfigError::Invalid { line, column, key, message, .. }) => Refusal { line, column, key, message },
        Err(other) => panic!("expected Invalid, got {other:?}"),
        Ok(config) => panic!("accepted: {config:?}"),
    }
}

pub(crate) fn refuse(text: &str) -> Refusal {
    refusal_of(Config::parse(text, Path::new(ORIGIN)))
}

/// Asserts the position and key of the refusal and that its message says `says`.
#[track_caller]
pub(crate) fn assert_refused(text: &str, line: usize, column: usize, key: &str, says: &str) {
    let refusal = refuse(text);
    assert_eq!((refusal.line, refusal.column, refusal.key.as_str()), (line, column, key), "{refusal:?}\n--- for ---\n{text}");
    assert!(refusal.message.contains(says), "message {:?} lacks {says:?}", refusal.message);
}

/// An owned session description, lent out as `SessionFacts`.
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
    pub(crate) service: String,
    pub(crate) has_tty: bool,
    pub(crate) rhost: Option<String>,
}

/// alice, group users, over sshd with a tty from 203.0.113.7.
pub(crate) fn session() -> Session {
    Session { user: "alice".into(), groups: vec!["users".into()], service: "sshd".into(), has_tty: true, rhost: Some("203.0.113.7".into()) }
}

impl Session {
    pub(crate) fn user(mut self, user: &str) -> Self {
        self.user = user.into();
        self
    }
    pub(crate) fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }
    pub(crate) fn service(mut self, service: &str) -> Self {
        self.service = service.into();
        self
    }
    pub(crate) fn tty(mut self, has_tty: bool) -> Self {
        self.has_tty = has_tty;
        self
    }
    pub(crate) fn rhost(mut self, rhost: Option<&str>) -> Self {
        self.rhost = rhost.map(Into::into);
        self
    }
    pub(crate) fn facts(&self) -> SessionFacts<'_> {
        SessionFacts { user: &self.user, groups: &self.groups, service: &self.service, has_tty: self.has_tty, rhost: self.rhost.as_deref() }
    }
}
