//! Tests of the shipped `packaging/vigil.toml`: it parses without warnings, sets the
//! built-in defaults, and its commented examples parse.

use super::warnings::Fake;
use super::{parse, session};
use crate::{Config, ResolvedPolicy, WarningKind};

const SHIPPED: &str = include_str!("../../../packaging/vigil.toml");

#[test]
fn shipped_file_parses_and_has_no_active_policy() {
    let config = parse(SHIPPED);
    assert_eq!(config.policy_count(), 0);
}

#[test]
fn shipped_file_resolves_to_the_builtin_defaults() {
    let config = parse(SHIPPED);
    for s in [session(), session().tty(false).rhost(None).service("login")] {
        assert_eq!(config.resolve(&s.facts()), ResolvedPolicy::builtin());
        assert_eq!(config.resolve(&s.facts()), Config::builtin().resolve(&s.facts()));
    }
}

#[test]
fn shipped_file_sets_every_key_of_defaults() {
    for key in crate::schema::SETTING_KEYS {
        let line = format!("\n{key} = ");
        assert!(SHIPPED.contains(&line), "packaging/vigil.toml does not show {key}");
    }
}

/// The shipped file with its commented-out `[[policy]]` examples uncommented.
fn uncommented() -> String {
    let mut in_example = false;
    let mut uncommented = String::new();
    for line in SHIPPED.lines() {
        in_example = (in_example || line == "# [[policy]]") && !line.is_empty();
        let line = if in_example { line.trim_start_matches("# ") } else { line };
        uncommented.push_str(line);
        uncommented.push('\n');
    }
    uncommented
}

/// The commented-out examples must parse too once uncommented.
#[test]
fn shipped_examples_parse_when_uncommented() {
    let config = parse(&uncommented());
    assert_eq!(config.policy_count(), 2);
    let backup = config.resolve(&session().user("svc-backup").tty(false).facts());
    assert_eq!(backup.policy_name, "backup-account");
    assert!(backup.exempt);
    let ops = config.resolve(&session().groups(&["users", "ops"]).rhost(Some("10.3.4.5")).facts());
    assert_eq!(ops.policy_name, "operators");
    assert_eq!(ops.idle_timeout, Some(std::time::Duration::from_secs(3600)));
}

#[test]
fn shipped_file_has_no_warnings_and_its_examples_name_accounts() {
    let nobody = Fake::new(&[], &[]);
    assert!(parse(SHIPPED).warnings(&nobody).is_empty());
    assert!(nobody.asked.borrow().is_empty());
    let examples = parse(&uncommented());
    let warned: Vec<(String, WarningKind)> = examples.warnings(&nobody).into_iter().map(|w| (w.key, w.kind)).collect();
    assert_eq!(
        warned,
        [("policy[1].match.users".to_owned(), WarningKind::UnknownUser), ("policy[2].match.groups".to_owned(), WarningKind::UnknownGroup),]
    );
    let everyone = Fake::new(&["svc-backup"], &["ops"]);
    assert!(examples.warnings(&everyone).is_empty());
}
