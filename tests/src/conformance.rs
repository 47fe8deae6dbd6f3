//! What each end-to-end test exercised, declared at run time: the configuration keys it
//! gave vigild, the vigilctl verbs and flags it ran, the module arguments in its PAM
//! files and the audit events and fields its rsyslogd received. The conformance check
//! (`src/bin/conformance.rs`, run by tests/run.sh after the e2e tests) compares these
//! declarations with `tests/conformance.toml`, the map from every documented promise to
//! the test that shows it.
//!
//! The harness declares on its own (vigild's config, `Vigild::vigilctl`, PAM files,
//! rsyslog captures), so a test cannot claim what it did not run; a test that drives
//! vigilctl another way (typed in an ssh session) declares with [`vigilctl_ran`].

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// What a declaration is about; the words are the map's table names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A configuration key as docs/configuration.md writes it: `idle_timeout`,
    /// `match.users`, `audit.format`, `name`, `match`.
    Config,
    /// A vigilctl verb (`list`, `audit verify`) or a verb with one flag
    /// (`list --json`).
    Vigilctl,
    /// A module argument's name (`timeout`, `fail`, `debug`).
    ModuleArg,
    /// An audit event seen in a record (`session_open`).
    Event,
    /// A field seen in a record (`ttys`).
    Field,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Config, Kind::Vigilctl, Kind::ModuleArg, Kind::Event, Kind::Field];

    pub fn table(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Vigilctl => "vigilctl",
            Kind::ModuleArg => "module_args",
            Kind::Event => "events",
            Kind::Field => "fields",
        }
    }

    pub fn from_table(table: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.table() == table)
    }
}

/// Where declarations are written: `$VIGIL_CONFORMANCE_DIR`, or `target/conformance`
/// of the workspace. tests/run.sh empties it before the e2e run.
pub fn declarations_dir() -> PathBuf {
    match std::env::var_os("VIGIL_CONFORMANCE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::paths::workspace_root().join("target").join("conformance"),
    }
}

/// The test binary's name without cargo's hash: `e2e_idle`.
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe.as_deref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// The test running now: libtest names each test's thread after the test. Threads a
/// test starts itself are unnamed; their declarations go to the last named test seen.
fn current_test() -> String {
    static LAST: Mutex<String> = Mutex::new(String::new());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(name) = std::thread::current().name()
        && name != "main"
    {
        *last = name.to_string();
    }
    if last.is_empty() { "(outside a test)".to_string() } else { last.clone() }
}

/// Records that the running test exercised `item`. Written once per test and item;
/// failures to write are reported on stderr and never fail the test (the check after
/// the run does, for what is missing).
pub fn declare(kind: Kind, item: &str) {
    declare_for(&running_test(), kind.table(), item);
}

/// `binary::test` for the test running now.
fn running_test() -> String {
    format!("{}::{}", binary_name(), current_test())
}

/// Declares for `test`, named by the caller (the container stage's records, which no
/// Rust test captured).
fn declare_for(test: &str, table: &'static str, item: &str) {
    /// (test, table, item) already written.
    type Seen = HashSet<(String, &'static str, String)>;
    static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
    let item = item.trim();
    if item.is_empty() || item.len() > 200 || item.contains(['\n', '\t']) || test.contains(['\n', '\t']) {
        return;
    }
    let test = test.to_string();
    {
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.get_or_insert_with(HashSet::new).insert((test.clone(), table, item.to_string())) {
            return;
        }
    }
    let dir = declarations_dir();
    let path = dir.join(format!("{}.{}.tsv", binary_name(), std::process::id()));
    let line = format!("{test}\t{table}\t{item}\n");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path))
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("vigil-e2e: cannot write the conformance declaration to {}: {e}", path.display());
    }
}

/// The events and fields of records written one message per line, without the
/// syslog prefix (`journalctl -t vigild -o cat`), declared for `test`.
pub fn messages_seen(path: &std::path::Path, test: &str) -> std::io::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    let lines = text.lines().map(|m| crate::LogLine { raw: m.to_string(), tag: "vigild".to_string(), pid: None, message: m.to_string() });
    Ok(lines.filter(|line| declare_record(test, line)).count())
}

/// Declares a record's event, its fields, and which event carried each field (table
/// `record_shape`: AUDIT.md's field index is checked against it) for `test`; false when
/// the line is no record.
fn declare_record(test: &str, line: &crate::LogLine) -> bool {
    let Some((event, fields)) = record_shape(line) else { return false };
    declare_for(test, Kind::Event.table(), &event);
    for field in &fields {
        declare_for(test, Kind::Field.table(), field);
        declare_for(test, "record_shape", &format!("{event} {field}"));
    }
    true
}

/// The configuration keys a vigil.toml text sets, as the docs name them. A text that
/// does not parse declares nothing (tests of refused files exercise the refusal, not
/// the keys).
pub fn config_written(text: &str) {
    let Ok(doc) = text.parse::<toml::Table>() else { return };
    for key in config_keys(&doc) {
        declare(Kind::Config, &key);
    }
}

fn config_keys(doc: &toml::Table) -> Vec<String> {
    let mut keys = Vec::new();
    for (table, value) in doc {
        match (table.as_str(), value) {
            ("defaults", toml::Value::Table(t)) => keys.extend(t.keys().cloned()),
            ("audit", toml::Value::Table(t)) => keys.extend(t.keys().map(|k| format!("audit.{k}"))),
            ("metrics", toml::Value::Table(t)) => keys.extend(t.keys().map(|k| format!("metrics.{k}"))),
            ("policy", toml::Value::Array(blocks)) => {
                for block in blocks.iter().filter_map(|b| b.as_table()) {
                    for (key, value) in block {
                        keys.push(key.clone());
                        if let ("match", toml::Value::Table(criteria)) = (key.as_str(), value) {
                            keys.extend(criteria.keys().map(|k| format!("match.{k}")));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    keys
}

/// A vigilctl command line (without `--socket PATH`): its verb (one or two words:
/// `audit verify`) and the verb with each flag it was given.
pub fn vigilctl_ran<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut words: Vec<String> = Vec::new();
    let mut global_flags = Vec::new();
    let mut flags = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        if arg == "--socket" || arg == "--bus" {
            skip_value = true;
            continue;
        }
        // Global options with a value: the option is declared (by its long name), its
        // value is no verb (`-H web1`).
        if arg == "--host" || arg == "-H" || arg == "--timeout" {
            global_flags.push(if arg == "-H" { "--host".to_string() } else { arg.to_string() });
            skip_value = true;
            continue;
        }
        let flag = if let Some(long) = arg.strip_prefix("--") {
            Some(format!("--{}", long.split('=').next().unwrap_or(long)))
        } else if arg.starts_with('-') && arg.len() > 1 && !arg[1..].bytes().all(|b| b.is_ascii_digit()) {
            Some(arg.to_string())
        } else {
            None
        };
        match flag {
            Some(flag) if words.is_empty() => global_flags.push(flag),
            Some(flag) => flags.push(flag),
            None if flags.is_empty() && is_verb_word(&words, arg) => words.push(arg.to_string()),
            None => {}
        }
    }
    for flag in global_flags {
        declare(Kind::Vigilctl, &flag);
    }
    if words.is_empty() {
        return;
    }
    let verb = words.join(" ");
    declare(Kind::Vigilctl, &verb);
    for flag in flags {
        declare(Kind::Vigilctl, &format!("{verb} {flag}"));
    }
}

/// Only the words of a verb: `audit show` has two, `show 7` one (7 is an argument).
fn is_verb_word(words: &[String], arg: &str) -> bool {
    let lowercase_word = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    match words {
        [] => lowercase_word,
        [first] => first == "audit" && lowercase_word,
        _ => false,
    }
}

/// The arguments of pam_vigil lines in a PAM service file text.
pub fn pam_file_written(text: &str) {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(module_at) = fields.clone().position(|w| w.ends_with("pam_vigil.so")) else { continue };
        if line.trim_start().starts_with('#') {
            continue;
        }
        for arg in fields.by_ref().skip(module_at + 1) {
            declare(Kind::ModuleArg, arg.split('=').next().unwrap_or(arg));
        }
    }
}

/// The events and fields of the audit records in a log file rsyslogd wrote: the lines
/// tagged vigild or pam_vigil, in either format (`key=value` or JSON).
pub fn records_seen(path: &std::path::Path) {
    let test = running_test();
    for line in crate::logs::read_log(path) {
        if line.tag == "vigild" || line.tag == "pam_vigil" {
            declare_record(&test, &line);
        }
    }
}

/// A record's event and field names; none when the line is not a record (vigild's
/// own diagnostics).
pub fn record_shape(line: &crate::LogLine) -> Option<(String, Vec<String>)> {
    let message = line.message.trim();
    if message.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(message).ok()?;
        let object = value.as_object()?;
        let event = object.get("event")?.as_str()?.to_string();
        return Some((event, object.keys().cloned().collect()));
    }
    let fields = line.fields();
    let event = fields.iter().find(|(k, _)| k == "event")?.1.clone();
    Some((event, fields.into_iter().map(|(k, _)| k).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_are_named_as_the_docs_name_them() {
        let doc: toml::Table = "[defaults]\nidle_timeout = \"1m\"\n[[policy]]\nname = \"a\"\nmatch = { users = [\"x\"], tty = true }\nexempt = true\n[audit]\nchain = false\n"
            .parse()
            .unwrap();
        let mut keys = config_keys(&doc);
        keys.sort();
        assert_eq!(keys, ["audit.chain", "exempt", "idle_timeout", "match", "match.tty", "match.users", "name"]);
    }

    #[test]
    fn verbs_are_one_or_two_words() {
        assert!(is_verb_word(&[], "list"));
        assert!(!is_verb_word(&["show".to_string()], "7"));
        assert!(is_verb_word(&["audit".to_string()], "verify"));
        assert!(!is_verb_word(&["terminate".to_string()], "abc"));
    }
}
