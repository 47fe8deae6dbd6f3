//! Warnings: names that do not resolve, blocks that match everything; and the refusal
//! of `exempt = true` in such a block.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::path::Path;

use super::{ORIGIN, assert_refused, parse};
use crate::{Accounts, Config, ConfigWarning, MAX_LOOKUPS, NssAccounts, WarningKind};

/// Accounts from lists; remembers every lookup.
#[derive(Default)]
pub(crate) struct Fake {
    users: HashSet<&'static str>,
    groups: HashSet<&'static str>,
    /// Names whose lookup fails (as an unreachable LDAP server would).
    failing: HashSet<&'static str>,
    pub(crate) asked: RefCell<Vec<String>>,
}

impl Fake {
    pub(crate) fn new(users: &[&'static str], groups: &[&'static str]) -> Self {
        Self { users: users.iter().copied().collect(), groups: groups.iter().copied().collect(), ..Self::default() }
    }

    fn lookup(&self, set: &HashSet<&'static str>, name: &str) -> io::Result<bool> {
        self.asked.borrow_mut().push(name.to_owned());
        if self.failing.contains(name) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "ldap server timed out"));
        }
        Ok(set.contains(name))
    }
}

impl Accounts for Fake {
    fn user_exists(&self, name: &str) -> io::Result<bool> {
        self.lookup(&self.users, name)
    }

    fn group_exists(&self, name: &str) -> io::Result<bool> {
        self.lookup(&self.groups, name)
    }
}

/// (line, column, key, kind) of each warning.
fn places(warnings: &[ConfigWarning]) -> Vec<(usize, usize, &str, WarningKind)> {
    warnings.iter().map(|w| (w.line, w.column, w.key.as_str(), w.kind)).collect()
}

fn warnings_of(text: &str, accounts: &Fake) -> Vec<ConfigWarning> {
    parse(text).warnings(accounts)
}

/// Asserts that `text` gets one warning, at `place`, saying `says`.
#[track_caller]
fn assert_one_warning(text: &str, accounts: &Fake, place: (usize, usize, &str, WarningKind), says: &str) {
    let warnings = warnings_of(text, accounts);
    assert_eq!(places(&warnings), [place]);
    assert!(warnings[0].message.contains(says), "{}", warnings[0]);
}

#[test]
fn unknown_user_is_placed_and_shown_like_an_error() {
    let text = "[[policy]]\nname = \"a\"\nmatch = { users = [\"alice\", \"bobb\"] }\n";
    let warnings = warnings_of(text, &Fake::new(&["alice", "bob"], &[]));
    assert_eq!(places(&warnings), [(3, 29, "policy[1].match.users", WarningKind::UnknownUser)]);
    assert_eq!(
        warnings[0].to_string(),
        "/etc/vigil/vigil.toml:3:29: policy[1].match.users: no user \"bobb\" on this system \
         (getpwnam found none); this entry matches no session until such a user exists"
    );
}

#[test]
fn unknown_group_in_a_match_table() {
    let text = "[[policy]]\nmatch = { tty = true }\n\n[[policy]]\nname = \"ops\"\n\
                [policy.match]\ngroups = [\n  \"wheel\",\n  \"opps\",\n]\n";
    assert_one_warning(
        text,
        &Fake::new(&[], &["wheel", "ops"]),
        (9, 3, "policy[2].match.groups", WarningKind::UnknownGroup),
        "no group \"opps\" on this system (getgrnam found none)",
    );
}

#[test]
fn users_and_groups_are_asked_of_their_own_database() {
    // a user "ops" does not make a group "ops" exist, nor the other way round
    let text = "[[policy]]\nmatch = { users = [\"ops\"], groups = [\"alice\"] }\n";
    let warnings = warnings_of(text, &Fake::new(&["alice"], &["ops"]));
    assert_eq!(
        places(&warnings),
        [(2, 20, "policy[1].match.users", WarningKind::UnknownUser), (2, 38, "policy[1].match.groups", WarningKind::UnknownGroup),]
    );
}

#[test]
fn globs_are_not_looked_up() {
    let fake = Fake::new(&[], &[]);
    let text = "[[policy]]\nmatch = { users = [\"svc-*\", \"adm?\"], groups = [\"*\"] }\n";
    assert!(warnings_of(text, &fake).is_empty());
    assert!(fake.asked.borrow().is_empty(), "{:?}", fake.asked);
}

#[test]
fn names_that_resolve_give_no_warning() {
    let text = "[defaults]\nidle_timeout = \"30m\"\n[[policy]]\n\
                match = { users = [\"alice\"], groups = [\"ops\"], services = [\"nosuch\"] }\n";
    assert!(warnings_of(text, &Fake::new(&["alice"], &["ops"])).is_empty());
}

#[test]
fn a_failed_lookup_is_its_own_warning() {
    let mut fake = Fake::new(&[], &[]);
    fake.failing.insert("carol");
    assert_one_warning(
        "[[policy]]\nmatch = { users = [\"carol\"] }\n",
        &fake,
        (2, 20, "policy[1].match.users", WarningKind::LookupFailed),
        "user \"carol\" could not be looked up (getpwnam: ldap server timed out)",
    );
}

#[test]
fn each_name_is_asked_once_per_check_and_again_at_the_next() {
    let fake = Fake::new(&[], &[]);
    let text = "[[policy]]\nmatch = { users = [\"x\", \"x\"] }\n[[policy]]\nmatch = { users = [\"x\"] }\n";
    let config = parse(text);
    let warnings = config.warnings(&fake);
    assert_eq!(warnings.len(), 3, "every place is reported: {warnings:?}");
    assert_eq!(*fake.asked.borrow(), ["x"]);
    // accounts come and go: the next check asks again
    let _ = config.warnings(&fake);
    assert_eq!(fake.asked.borrow().len(), 2);
}

#[test]
fn lookups_are_bounded() {
    let names: Vec<String> = (0..MAX_LOOKUPS + 5).map(|i| format!("\"u{i}\"")).collect();
    let text = format!("[[policy]]\nmatch = {{ users = [\"u0\"] }}\n[[policy]]\nmatch = {{ groups = [{}] }}\n", names.join(", "));
    let fake = Fake::new(&[], &[]);
    let warnings = warnings_of(&text, &fake);
    assert_eq!(fake.asked.borrow().len(), MAX_LOOKUPS);
    let unchecked: Vec<&ConfigWarning> = warnings.iter().filter(|w| w.kind == WarningKind::NotChecked).collect();
    assert_eq!(unchecked.len(), 1, "{unchecked:?}");
    // user u0 and group u0 are different names: the group list has 1029 distinct names,
    // 1023 fit after user u0
    assert!(unchecked[0].message.starts_with("6 user and group names from here on not looked up"), "{}", unchecked[0]);
    assert_eq!(warnings.len(), MAX_LOOKUPS + 1, "one warning per name looked up, plus the one that says the rest was not");
}

// ---- blocks that match every session ----

#[test]
fn an_empty_match_is_a_warning_at_its_table() {
    let warnings = warnings_of("[[policy]]\nname = \"all\"\nmatch = {}\nidle_timeout = \"1h\"\n", &Fake::default());
    assert_eq!(places(&warnings), [(3, 9, "policy[1].match", WarningKind::EmptyMatch)]);
    assert_eq!(
        warnings[0].to_string(),
        "/etc/vigil/vigil.toml:3:9: policy[1].match: empty match: this block applies to every \
         session that no block before it matched; expected users, groups, services, tty or rhosts"
    );
    assert_one_warning(
        "[[policy]]\nname = \"all\"\n[policy.match]\n\n[[policy]]\nmatch = { tty = false }\n",
        &Fake::default(),
        (3, 1, "policy[1].match", WarningKind::EmptyMatch),
        "; the block after it never applies;",
    );
}

#[test]
fn no_match_is_a_warning_at_the_block() {
    let text = "[defaults]\nidle_timeout = \"20m\"\n\n[[policy]]\nname = \"x\"\nidle_timeout = \"1h\"\n\
                [[policy]]\nmatch = { users = [\"a\"] }\n[[policy]]\nmatch = { tty = true }\n";
    assert_one_warning(
        text,
        &Fake::new(&["a"], &[]),
        (4, 1, "policy[1]", WarningKind::EmptyMatch),
        "no match: this block applies to every session that no block before it matched; \
         the 2 blocks after it never apply",
    );
}

#[test]
fn warnings_come_in_file_order() {
    let text = "[[policy]]\nmatch = { users = [\"nobody1\"] }\n[[policy]]\nname = \"b\"\n\
                [[policy]]\nmatch = { groups = [\"nogroup1\"] }\n";
    let warnings = warnings_of(text, &Fake::default());
    assert_eq!(
        places(&warnings),
        [
            (2, 20, "policy[1].match.users", WarningKind::UnknownUser),
            (3, 1, "policy[2]", WarningKind::EmptyMatch),
            (6, 21, "policy[3].match.groups", WarningKind::UnknownGroup),
        ]
    );
}

#[test]
fn exempt_with_an_empty_match_is_refused() {
    assert_refused(
        "[[policy]]\nname = \"everyone\"\nmatch = {}\nexempt = true\n",
        4,
        10,
        "policy[1].exempt",
        "exempt = true in a block with an empty match exempts every session",
    );
    assert_refused(
        "[[policy]]\nmatch = { users = [\"a\"] }\n[[policy]]\nexempt = true\n",
        4,
        10,
        "policy[2].exempt",
        "expected match criteria (users, groups, services, tty or rhosts)",
    );
    assert_refused("[[policy]]\nexempt = true\n[policy.match]\n", 2, 10, "policy[1].exempt", "exempts every session");
    let error = Config::parse("[[policy]]\nexempt = true\n", Path::new(ORIGIN)).err().map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            "/etc/vigil/vigil.toml:2:10: policy[1].exempt: exempt = true in a block with an empty \
             match exempts every session; expected match criteria (users, groups, services, tty \
             or rhosts) naming the sessions to exempt"
        )
    );
}

#[test]
fn exempt_with_criteria_or_false_is_accepted() {
    parse("[[policy]]\nmatch = { tty = false }\nexempt = true\n");
    parse("[[policy]]\nmatch = { users = [\"svc-*\"] }\nexempt = true\n");
    let warnings = warnings_of("[[policy]]\nexempt = false\n", &Fake::default());
    assert_eq!(places(&warnings), [(1, 1, "policy[1]", WarningKind::EmptyMatch)]);
    // [defaults] says every session is exempt: a block that inherits it is only warned about
    let warnings = warnings_of("[defaults]\nexempt = true\n[[policy]]\nidle_timeout = \"1h\"\n", &Fake::default());
    assert_eq!(places(&warnings), [(3, 1, "policy[1]", WarningKind::EmptyMatch)]);
}

#[test]
fn files_without_policies_have_no_warnings() {
    let fake = Fake::default();
    assert!(Config::builtin().warnings(&fake).is_empty());
    assert!(warnings_of("[defaults]\nidle_timeout = \"5m\"\n", &fake).is_empty());
    assert!(fake.asked.borrow().is_empty());
}

#[test]
fn the_system_accounts_through_nss() {
    let nss = NssAccounts;
    assert!(nss.user_exists("root").unwrap());
    assert!(nss.group_exists("root").unwrap());
    assert!(!nss.user_exists("vigil-no-such-user-4f1c").unwrap());
    assert!(!nss.group_exists("vigil-no-such-group-4f1c").unwrap());
    assert!(!nss.user_exists("nul\0byte").unwrap());
    let config = parse("[[policy]]\nmatch = { users = [\"root\", \"vigil-no-such-user-4f1c\"] }\n");
    assert_eq!(places(&config.warnings(&nss)), [(2, 28, "policy[1].match.users", WarningKind::UnknownUser)]);
}

#[test]
fn names_reach_the_terminal_escaped() {
    let text = "[[policy]]\nmatch = { users = [\"a\\u001b[2J\\u202eb\\n\"] }\n";
    let warnings = warnings_of(text, &Fake::default());
    assert_eq!(warnings.len(), 1);
    let shown = warnings[0].to_string();
    assert!(shown.contains(r#"no user "a\u{1b}[2J\u{202e}b\n" on this system"#), "{shown}");
    assert!(shown.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{shown:?}");
}

/// 100,000 names in a file near the 1 MiB limit, on one line: placed in one pass over
/// the text (placing each from the start would take minutes), looked up at most
/// MAX_LOOKUPS times.
#[test]
fn a_huge_list_is_placed_in_one_pass() {
    let names: Vec<String> = (0..100_000).map(|i| format!("\"n{i}\"")).collect();
    let text = format!("[[policy]]\nmatch = {{ users = [{}] }}\n", names.join(","));
    assert!(text.len() < 1024 * 1024);
    let fake = Fake::new(&["n99999"], &[]);
    let warnings = warnings_of(&text, &fake);
    assert_eq!(fake.asked.borrow().len(), MAX_LOOKUPS);
    assert_eq!(warnings.len(), MAX_LOOKUPS + 1);
    let last = &warnings[MAX_LOOKUPS - 1];
    let column = "match = { users = [".len() + (0..MAX_LOOKUPS - 1).map(|i| format!("\"n{i}\",").len()).sum::<usize>() + 1;
    assert_eq!((last.line, last.column), (2, column), "{last}");
    assert_eq!(warnings[MAX_LOOKUPS].kind, WarningKind::NotChecked);
}
