//! Every kind of refusal, with its exact line:column and key.

use std::path::Path;

use super::{ORIGIN, assert_refused, refusal_of, refuse};
use crate::{Config, ConfigError};

// ---- TOML syntax ----

#[test]
fn syntax_unquoted_string() {
    assert_refused("[defaults]\nidle_timeout = 15m\n", 2, 16, "defaults.idle_timeout", "must be quoted");
}

#[test]
fn syntax_unclosed_header() {
    assert_refused("# vigil\n[defaults\nexempt = true\n", 2, 10, "defaults", "expected `]`");
}

#[test]
fn syntax_missing_equals() {
    assert_refused("[[policy]]\nexempt true\n", 2, 8, "policy[1]", "expected `=`");
}

#[test]
fn syntax_duplicate_key_and_table() {
    assert_refused("[defaults]\nidle_timeout = \"1m\"\nidle_timeout = \"2m\"\n", 3, 1, "defaults.idle_timeout", "set twice");
    assert_refused("[defaults]\n\n[defaults]\n", 3, 2, "defaults", "defined twice");
    assert_refused("[[policy]]\n[policy.match]\ntty = true\n[policy.match]\n", 4, 9, "policy[1].match", "defined twice");
}

// ---- unknown keys ----

#[test]
fn unknown_key_at_top_level() {
    assert_refused("idle_timeout = \"5m\"\n", 1, 1, "idle_timeout", "unknown key; expected one of defaults, policy, audit, metrics");
    assert_refused("[defaults]\n[auditing]\nx = 1\n", 2, 2, "auditing", "unknown key");
}

#[test]
fn unknown_key_in_defaults() {
    let refusal = refuse("[defaults]\nidle_timeout = \"15m\"\nidle_timout = \"15m\"\n");
    assert_eq!((refusal.line, refusal.column, refusal.key.as_str()), (3, 1, "defaults.idle_timout"));
    assert_eq!(
        refusal.message,
        "unknown key; expected one of idle_timeout, idle_warning, idle_action, output_is_activity, \
         max_session_age, notty_idle_timeout, kill_grace, reauth_window, reauth_after_idle, sensitive_services, exempt, max_inhibit, \
         max_inhibit_total, on_reauth_failures"
    );
}

#[test]
fn unknown_key_in_policy() {
    assert_refused(
        "[[policy]]\nname = \"x\"\n  idle_timout = \"1h\"\n",
        3,
        3,
        "policy[1].idle_timout",
        "unknown key; expected one of name, match, idle_timeout,",
    );
}

#[test]
fn unknown_key_in_match() {
    assert_refused(
        "[[policy]]\nmatch = { user = [\"a\"] }\n",
        2,
        11,
        "policy[1].match.user",
        "unknown key; expected one of users, groups, services, tty, rhosts",
    );
    assert_refused("[[policy]]\n[[policy]]\n[policy.match]\nhost = [\"a\"]\n", 4, 1, "policy[2].match.host", "unknown key");
}

#[test]
fn match_and_name_refused_in_defaults() {
    assert_refused("[defaults]\nmatch = { users = [\"a\"] }\n", 2, 1, "defaults.match", "`match` belongs in a [[policy]] block");
    assert_refused("[defaults]\nexempt = true\nname = \"x\"\n", 3, 1, "defaults.name", "`name` belongs in a [[policy]] block");
    assert_refused("[defaults.match]\nusers = [\"a\"]\n", 1, 11, "defaults.match", "belongs in a [[policy]] block");
}

// ---- wrong types ----

#[test]
fn wrong_type_string_for_bool() {
    assert_refused("[defaults]\nexempt = \"yes\"\n", 2, 10, "defaults.exempt", "wrong type: found string \"yes\", expected a boolean");
    assert_refused("[[policy]]\nmatch = { tty = 1 }\n", 2, 17, "policy[1].match.tty", "found integer `1`, expected a boolean");
}

#[test]
fn wrong_type_number_for_duration() {
    assert_refused(
        "[defaults]\nidle_timeout = 900\n",
        2,
        16,
        "defaults.idle_timeout",
        "found integer `900`, expected a duration string like \"15m\"",
    );
}

#[test]
fn wrong_type_for_tables_and_lists() {
    assert_refused("[[policy]]\nmatch = { users = \"alice\" }\n", 2, 19, "policy[1].match.users", "expected an array");
    assert_refused("[[policy]]\nmatch = { groups = [\"a\", 7] }\n", 2, 26, "policy[1].match.groups", "found integer `7`");
    assert_refused("defaults = []\n", 1, 12, "defaults", "expected a table");
    assert_refused("[policy]\nexempt = true\n", 1, 1, "policy", "found table, expected an array of tables");
    assert_refused("defaults = [\"15m\"]\n", 1, 12, "defaults", "found array, expected a table");
    assert_refused("[[policy]]\n[[policy]]\nmatch = [\"alice\"]\n", 3, 9, "policy[2].match", "found array, expected a table");
    assert_refused("policy = [1]\n", 1, 11, "policy[1]", "found integer, expected a table");
    assert_refused("[[policy]]\nmatch = \"alice\"\n", 2, 9, "policy[1].match", "found string, expected a table");
    assert_refused("[[policy]]\nname = 3\n", 2, 8, "policy[1].name", "expected a string");
}

// ---- values ----

#[test]
fn bad_duration() {
    let text = "[defaults]\nidle_timeout = \"15m\"\n\n[[policy]]\nname = \"a\"\n[[policy]]\nidle_timeout = \"15 minuts\"\n";
    let error = Config::parse(text, Path::new(ORIGIN)).err().map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            "/etc/vigil/vigil.toml:7:16: policy[2].idle_timeout: invalid duration \"15 minuts\": \
             expected a duration like \"15m\", \"1h30m\", \"90s\""
        )
    );
    assert_refused("[defaults]\nkill_grace = \"\"\n", 2, 14, "defaults.kill_grace", "invalid duration \"\"");
    assert_refused("[defaults]\nreauth_window = \"-5m\"\n", 2, 17, "defaults.reauth_window", "invalid duration \"-5m\"");
    assert_refused(
        "[[policy]]\nname = \"ops\"\nmax_inhibit = \"4 hours please\"\n",
        3,
        15,
        "policy[1].max_inhibit",
        "invalid duration \"4 hours please\"",
    );
}

#[test]
fn bad_on_reauth_failures() {
    assert_refused(
        "[[policy]]\nname = \"x\"\non_reauth_failures = \"kill\"\n",
        3,
        22,
        "policy[1].on_reauth_failures",
        "invalid value \"kill\"; expected \"off\", \"end\" or \"lock\"",
    );
    assert_refused("[defaults]\non_reauth_failures = 3\n", 2, 22, "defaults.on_reauth_failures", "expected \"off\", \"end\" or \"lock\"");
}

#[test]
fn bad_idle_action() {
    assert_refused(
        "[[policy]]\nidle_action = \"kill\"\n",
        2,
        15,
        "policy[1].idle_action",
        "invalid value \"kill\"; expected \"terminate\" or \"none\"",
    );
    assert_refused("[defaults]\nidle_action = \"Terminate\"\n", 2, 15, "defaults.idle_action", "invalid value \"Terminate\"");
    assert_refused("[defaults]\nidle_action = true\n", 2, 15, "defaults.idle_action", "expected one of \"terminate\", \"none\"");
}

#[test]
fn bad_rhost_pattern() {
    assert_refused(
        "[[policy]]\nmatch = { rhosts = [\"10.0.0.0/8\", \"10.0.0.0/99\"] }\n",
        2,
        35,
        "policy[1].match.rhosts",
        "invalid rhost pattern \"10.0.0.0/99\": prefix length must be 0 to 32",
    );
    assert_refused(
        "[[policy]]\n[policy.match]\nrhosts = [\n  \"2001:db8::/32\",\n  \"web 1.example.com\",\n]\n",
        5,
        3,
        "policy[1].match.rhosts",
        "expected a CIDR block like \"10.0.0.0/8\"",
    );
}

// wildmatch compiles every string, so a glob cannot be malformed; an empty one is refused.
#[test]
fn empty_glob_and_empty_list() {
    assert_refused("[[policy]]\nmatch = { users = [\"\"] }\n", 2, 20, "policy[1].match.users", "empty pattern");
    assert_refused("[[policy]]\nmatch = { services = [] }\n", 2, 22, "policy[1].match.services", "empty list matches no session");
}

#[test]
fn bad_policy_names() {
    assert_refused("[[policy]]\nname = \"a\"\n[[policy]]\nname = \"a\"\n", 4, 8, "policy[2].name", "duplicate policy name \"a\"");
    assert_refused("[[policy]]\n[[policy]]\nname = \"policy#1\"\n", 3, 8, "policy[2].name", "also used by policy[1]");
    assert_refused("[[policy]]\nname = \"defaults\"\n", 2, 8, "policy[1].name", "\"defaults\" is what sessions");
    assert_refused("[[policy]]\nname = \"  \"\n", 2, 8, "policy[1].name", "expected a short name");
    assert_refused("[[policy]]\nname = \"a\\nb\"\n", 2, 8, "policy[1].name", "control characters");
}

// ---- idle_warning must be shorter than idle_timeout ----

#[test]
fn warning_not_shorter_than_timeout_in_defaults() {
    assert_refused(
        "[defaults]\nidle_timeout = \"10m\"\nidle_warning = \"10m\"\n",
        3,
        16,
        "defaults.idle_warning",
        "idle_warning (10m) must be shorter than idle_timeout (10m, set in this block)",
    );
    // only the timeout is set here: it is the key that makes the pair wrong
    assert_refused(
        "[defaults]\nidle_timeout = \"30s\"\n",
        2,
        16,
        "defaults.idle_timeout",
        "idle_timeout (30s) must be longer than idle_warning (1m, built-in default)",
    );
}

#[test]
fn warning_not_shorter_than_timeout_in_policy() {
    assert_refused(
        "[[policy]]\nname = \"x\"\nidle_warning = \"20m\"\n",
        3,
        16,
        "policy[1].idle_warning",
        "idle_warning (20m) must be shorter than idle_timeout (15m, built-in default)",
    );
    assert_refused(
        "[defaults]\nidle_warning = \"5m\"\n[[policy]]\n[[policy]]\nidle_timeout = \"3m\"\n",
        5,
        16,
        "policy[2].idle_timeout",
        "idle_warning (5m, from [defaults])",
    );
    assert_refused(
        "[defaults]\nidle_timeout = \"2m\"\n[[policy]]\nidle_warning = \"3m\"\n",
        4,
        16,
        "policy[1].idle_warning",
        "idle_timeout (2m, from [defaults])",
    );
}

#[test]
fn warning_check_uses_resolved_values() {
    // the policy fixes what [defaults] alone would allow, and vice versa
    super::parse("[defaults]\nidle_timeout = \"1h\"\nidle_warning = \"30m\"\n[[policy]]\nidle_timeout = \"2h\"\n");
    super::parse("[defaults]\nidle_warning = \"5m\"\n[[policy]]\nidle_timeout = \"3m\"\nidle_warning = \"1m\"\n");
    // a disabled timeout has no warning to come before it
    super::parse("[defaults]\nidle_timeout = \"0\"\nidle_warning = \"1h\"\n");
    super::parse("[[policy]]\nidle_timeout = \"0\"\nidle_warning = \"1h\"\n");
}

// ---- order, encoding, files ----

#[test]
fn first_error_in_file_order_is_reported() {
    assert_refused("[defaults]\nzzz = 1\naaa = 2\n[[policy]]\nbad = 3\n", 2, 1, "defaults.zzz", "unknown key");
}

#[test]
fn columns_count_characters() {
    assert_refused("[[policy]]\nname = \"é\"\nexempt = \"é\"\n", 3, 10, "policy[1].exempt", "expected a boolean");
    assert_refused("[[policy]]\nmatch = { users = [\"é\"], tty = \"x\" }\n", 2, 32, "policy[1].match.tty", "boolean");
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let file = format!("vigil-config-test-{}-{name}", std::process::id());
    let path = std::env::temp_dir().join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn invalid_utf8_is_placed() {
    let path = temp_file("latin1.toml", b"[defaults]\nidle_timeout = \"15m\"\n[[policy]]\nname = \"caf\xe9\"\n");
    let refusal = refusal_of(Config::load(&path));
    assert_eq!((refusal.line, refusal.column, refusal.key.as_str()), (4, 12, "policy[1].name"));
    assert!(refusal.message.contains("invalid UTF-8 (byte 0xe9)"), "{}", refusal.message);
    let shown = Config::load(&path).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(shown.starts_with(&format!("{}:4:12: ", path.display())), "{shown}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn load_reads_a_good_file() {
    let path = temp_file("good.toml", b"[[policy]]\nname = \"x\"\n");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.policy_count(), 1);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn missing_and_oversized_files() {
    let missing = Path::new("/nonexistent/vigil.toml");
    match Config::load(missing) {
        Err(error @ ConfigError::Read { .. }) => {
            assert!(error.to_string().starts_with("/nonexistent/vigil.toml: cannot read: "), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let big = vec![b'#'; 2 * 1024 * 1024];
    let path = temp_file("big.toml", &big);
    assert!(matches!(Config::load(&path), Err(ConfigError::Read { .. })));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn error_display_format() {
    let error = Config::parse("[defaults]\nexempt = 1\n", Path::new("/tmp/x.toml")).err();
    assert_eq!(
        error.map(|e| e.to_string()).as_deref(),
        Some("/tmp/x.toml:2:10: defaults.exempt: wrong type: found integer `1`, expected a boolean")
    );
}

#[test]
fn audit_table_is_checked() {
    assert_refused("[audit]\nformat = \"xml\"\n", 2, 10, "audit.format", "");
    assert_refused("[audit]\nspool = 5\n", 2, 1, "audit.spool", "unknown key");
}

#[test]
fn metrics_table_is_checked() {
    assert_refused("[metrics]\ntextfile = \"vigil.prom\"\n", 2, 12, "metrics.textfile", "is not an absolute path");
    assert_refused(
        "[metrics]\ntextfile = \"/var/lib/prometheus/node-exporter/vigil.txt\"\n",
        2,
        12,
        "metrics.textfile",
        "reads only files named *.prom",
    );
    assert_refused("[metrics]\ntextfile = \"/var/lib/prometheus/\"\n", 2, 12, "metrics.textfile", "*.prom");
    assert_refused("[metrics]\ntextfile = \"/x/.prom\"\n", 2, 12, "metrics.textfile", "*.prom");
    assert_refused("[metrics]\ntextfile = 5\n", 2, 12, "metrics.textfile", "");
    assert_refused("[metrics]\ninterval = \"500ms\"\n", 2, 12, "metrics.interval", "shorter than a second");
    assert_refused("[metrics]\ninterval = \"0\"\n", 2, 12, "metrics.interval", "shorter than a second");
    assert_refused("[metrics]\ninterval = \"often\"\n", 2, 12, "metrics.interval", "invalid duration");
    assert_refused("[metrics]\nfile = \"/x/v.prom\"\n", 2, 1, "metrics.file", "unknown key; expected textfile or interval");
    assert_refused("metrics = 1\n", 1, 11, "metrics", "expected a table");
}
