//! Warnings: a file that parses but probably does not do what its author meant.
//!
//! - a `match.users` or `match.groups` entry naming a user or group that does not exist
//!   (asked of NSS through [`Accounts`] each time the warnings are asked for: accounts
//!   come and go while the file stays);
//! - a block whose `match` is empty or absent, which applies to every session.
//!
//! A warning is placed like a refusal (`FILE:LINE:COLUMN: key: message`). Entries that
//! are globs (`*`, `?`) are not looked up: only enumerating every account could tell
//! whether one matches, and NSS back ends (LDAP, sssd) need not allow that.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use toml::de::DeValue;

use crate::document::{Document, KeyPath, line_cols};
use crate::validate::Policy;

/// Distinct names looked up per call of [`crate::Config::warnings`]: each lookup may
/// go to a network directory, and no real file lists more.
pub const MAX_LOOKUPS: usize = 1024;

/// The user and group database, as the daemon sees it.
pub trait Accounts {
    /// Whether a user of this name exists (`getpwnam`).
    fn user_exists(&self, name: &str) -> io::Result<bool>;
    /// Whether a group of this name exists (`getgrnam`).
    fn group_exists(&self, name: &str) -> io::Result<bool>;
}

/// [`Accounts`] through NSS (`/etc/nsswitch.conf`: files, LDAP, sssd...). A lookup
/// blocks for as long as the NSS back end takes: call it off any async runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct NssAccounts;

impl Accounts for NssAccounts {
    fn user_exists(&self, name: &str) -> io::Result<bool> {
        vigil_host::users::user_exists(name)
    }

    fn group_exists(&self, name: &str) -> io::Result<bool> {
        vigil_host::users::group_exists(name)
    }
}

/// What a warning is about; [`WarningKind::name`] is stable (for audit records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// A `match.users` entry names no existing user.
    UnknownUser,
    /// A `match.groups` entry names no existing group.
    UnknownGroup,
    /// NSS could not answer for a user or group (the entry is kept, unchecked).
    LookupFailed,
    /// More names than [`MAX_LOOKUPS`]: the rest were not looked up.
    NotChecked,
    /// A block with an empty or absent `match`: it applies to every session.
    EmptyMatch,
}

impl WarningKind {
    /// `unknown_user`, `unknown_group`, `lookup_failed`, `not_checked`, `empty_match`.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::UnknownGroup => "unknown_group",
            Self::LookupFailed => "lookup_failed",
            Self::NotChecked => "not_checked",
            Self::EmptyMatch => "empty_match",
        }
    }
}

/// A file that is accepted but probably wrong, placed like a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub path: PathBuf,
    /// 1-based line and column (in characters) of the value concerned.
    pub line: usize,
    pub column: usize,
    /// The key path, e.g. `policy[2].match.users`.
    pub key: String,
    pub kind: WarningKind,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.path.display(), self.line, self.column, self.key, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NameKind {
    User,
    Group,
}

/// A literal user or group name in a `match` list, and where it is.
#[derive(Debug, Clone)]
struct NameSite {
    kind: NameKind,
    name: String,
    line: usize,
    column: usize,
    key: String,
}

/// What the warnings need from the file, gathered while it is parsed: the positions of
/// the names to look up, and the warnings that do not depend on the accounts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lint {
    origin: PathBuf,
    names: Vec<NameSite>,
    fixed: Vec<ConfigWarning>,
    /// While gathering: the byte offset of each name site and fixed warning, placed at
    /// the end in one pass over the text (a list of 100,000 names in a 1 MiB file must
    /// not cost 100,000 passes).
    offsets: Vec<(usize, Slot)>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Name(usize),
    Fixed(usize),
}

impl Lint {
    /// Gathers from the parsed document; `policies` are its blocks, in file order.
    pub(crate) fn gather(doc: &Document<'_>, origin: &Path, policies: &[Policy]) -> Self {
        let mut lint = Self { origin: origin.to_path_buf(), ..Self::default() };
        for (index, policy) in policies.iter().enumerate() {
            let block = KeyPath::root().key("policy").index(index);
            let criteria = block.clone().key("match");
            for (list, kind) in [("users", NameKind::User), ("groups", NameKind::Group)] {
                lint.gather_names(doc, &criteria.clone().key(list), kind);
            }
            if policy.criteria.is_empty() {
                let later = policies.len().saturating_sub(index.saturating_add(1));
                lint.empty_match(doc, &block, &criteria, later);
            }
        }
        lint.place(doc.text());
        lint
    }

    fn place(&mut self, text: &str) {
        let mut offsets = std::mem::take(&mut self.offsets);
        offsets.sort_by_key(|(offset, _)| *offset);
        let ascending: Vec<usize> = offsets.iter().map(|(offset, _)| *offset).collect();
        for ((line, column), (_, slot)) in line_cols(text, &ascending).into_iter().zip(offsets) {
            let place = match slot {
                Slot::Name(i) => self.names.get_mut(i).map(|n| (&mut n.line, &mut n.column)),
                Slot::Fixed(i) => self.fixed.get_mut(i).map(|w| (&mut w.line, &mut w.column)),
            };
            if let Some((l, c)) = place {
                (*l, *c) = (line, column);
            }
        }
    }

    fn gather_names(&mut self, doc: &Document<'_>, list: &KeyPath, kind: NameKind) {
        let Some(DeValue::Array(entries)) = doc.value_at(list) else {
            return;
        };
        for entry in entries {
            let DeValue::String(name) = entry.get_ref() else {
                continue;
            };
            if name.contains(['*', '?']) {
                continue;
            }
            self.offsets.push((entry.span().start, Slot::Name(self.names.len())));
            self.names.push(NameSite { kind, name: name.to_string(), line: 0, column: 0, key: list.to_string() });
        }
    }

    fn empty_match(&mut self, doc: &Document<'_>, block: &KeyPath, criteria: &KeyPath, later: usize) {
        let (key, what) = match doc.span_of(criteria) {
            Some(_) => (criteria, "empty match"),
            None => (block, "no match"),
        };
        let pos = doc.span_of(key).map_or(0, |span| span.start);
        self.offsets.push((pos, Slot::Fixed(self.fixed.len())));
        let unreachable = match later {
            0 => String::new(),
            1 => "; the block after it never applies".to_owned(),
            n => format!("; the {n} blocks after it never apply"),
        };
        self.fixed.push(ConfigWarning {
            path: self.origin.clone(),
            line: 0,
            column: 0,
            key: key.to_string(),
            kind: WarningKind::EmptyMatch,
            message: format!(
                "{what}: this block applies to every session that no block before it matched{unreachable}; \
                 expected users, groups, services, tty or rhosts"
            ),
        });
    }

    /// Every warning, in file order; names are looked up through `accounts`.
    pub(crate) fn warnings(&self, accounts: &dyn Accounts) -> Vec<ConfigWarning> {
        let mut warnings = self.fixed.clone();
        let mut answers: HashMap<(NameKind, &str), io::Result<bool>> = HashMap::new();
        // the first site not looked up, and how many were not
        let mut unchecked: Option<&NameSite> = None;
        let mut unchecked_count = 0_usize;
        for site in &self.names {
            let lookup = (site.kind, site.name.as_str());
            if !answers.contains_key(&lookup) && answers.len() >= MAX_LOOKUPS {
                unchecked.get_or_insert(site);
                unchecked_count = unchecked_count.saturating_add(1);
                continue;
            }
            let answer = answers.entry(lookup).or_insert_with(|| match site.kind {
                NameKind::User => accounts.user_exists(&site.name),
                NameKind::Group => accounts.group_exists(&site.name),
            });
            if let Some(warning) = self.name_warning(site, answer) {
                warnings.push(warning);
            }
        }
        if let Some(first) = unchecked {
            warnings.push(self.warning(
                first,
                WarningKind::NotChecked,
                format!(
                    "{unchecked_count} user and group names from here on not looked up \
                     (at most {MAX_LOOKUPS} distinct names are checked)"
                ),
            ));
        }
        warnings.sort_by_key(|w| (w.line, w.column));
        warnings
    }

    fn name_warning(&self, site: &NameSite, answer: &io::Result<bool>) -> Option<ConfigWarning> {
        let (what, call) = match site.kind {
            NameKind::User => ("user", "getpwnam"),
            NameKind::Group => ("group", "getgrnam"),
        };
        let name = &site.name;
        let (kind, message) = match answer {
            Ok(true) => return None,
            Ok(false) => (
                match site.kind {
                    NameKind::User => WarningKind::UnknownUser,
                    NameKind::Group => WarningKind::UnknownGroup,
                },
                format!(
                    "no {what} {name:?} on this system ({call} found none); \
                     this entry matches no session until such a {what} exists"
                ),
            ),
            Err(error) => (WarningKind::LookupFailed, format!("{what} {name:?} could not be looked up ({call}: {error}); not checked")),
        };
        Some(self.warning(site, kind, message))
    }

    fn warning(&self, site: &NameSite, kind: WarningKind, message: String) -> ConfigWarning {
        ConfigWarning { path: self.origin.clone(), line: site.line, column: site.column, key: site.key.clone(), kind, message }
    }
}
