//! The conformance check: every documented promise (configuration key, vigilctl verb
//! and flag, module argument, audit event and field) has an entry in
//! `tests/conformance.toml` naming the end-to-end test that shows it, every entry is
//! still documented and names a test that exists, and (after an e2e run) each named
//! test declared at run time that it exercised its item, while every record the run
//! captured carried only documented events and fields.
//!
//! Where the documented sets come from: docs/configuration.md's key tables (checked
//! against the parser's own key list and the two other references), vigilctl's clap
//! definitions (which also write its man pages), pam_vigil(8)'s OPTIONS, and AUDIT.md's
//! tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::conformance::Kind;

/// Items by kind.
pub type Items = BTreeMap<Kind, BTreeSet<String>>;

/// The map: for each kind, item → the tests that show it (`e2e_idle::test_name`).
pub type Map = BTreeMap<Kind, BTreeMap<String, Vec<String>>>;

/// What each test declared: (kind, item) → tests.
pub type Declared = BTreeMap<(Kind, String), BTreeSet<String>>;

/// The container stage (tests/container/run.sh) as the map names it: its records are
/// declared after it ran (a real systemd and logind show what no other test can).
pub const CONTAINER_STAGE: &str = "container::run_sh";

/// A unit test the map names where no end-to-end test can provoke the item
/// (`unit:daemon/src/x.rs::fn_name`): (file, fn). It ran in tests/run.sh's unit test
/// stage, before the e2e run; the run check takes it as shown.
fn unit_test(test: &str) -> Option<(&str, &str)> {
    test.strip_prefix("unit:")?.rsplit_once("::")
}

/// Fewer distinct events than this in a run's captures means the capture did not
/// work (a full run sees 40 and more); the record check would then pass vacuously.
pub const MIN_EVENTS_SEEN: usize = 25;

/// Fields every record carries that the events table does not repeat: the chain's,
/// and `event` itself.
const RECORD_FIELDS: &[&str] = &["event", "seq", "prev", "mac"];

pub fn repo_root() -> PathBuf {
    crate::paths::workspace_root()
}

fn read(repo: &Path, file: &str) -> Result<String, String> {
    std::fs::read_to_string(repo.join(file)).map_err(|e| format!("{file}: {e}"))
}

/// The backticked words of a markdown table row's cells: `| \`a\` | x | \`b=c\` |`.
fn cells(row: &str) -> Vec<&str> {
    let row = row.trim();
    let inner = row.strip_prefix('|').and_then(|r| r.strip_suffix('|')).unwrap_or(row);
    inner.split('|').map(str::trim).collect()
}

fn backticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// A bare identifier: `idle_timeout`, `session_open`.
fn is_name(word: &str) -> bool {
    !word.is_empty()
        && word.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// docs/configuration.md: the first cell of each key table, named by the section it is
/// in (`match.users`, `audit.format`, `metrics.textfile`).
pub fn documented_config_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut prefix: Option<&str> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim();
            prefix = match heading {
                "Settings" | "Policies" => Some(""),
                "`match`" => Some("match."),
                "`[audit]`" => Some("audit."),
                "`[metrics]`" => Some("metrics."),
                _ => None,
            };
            continue;
        }
        let Some(prefix) = prefix else { continue };
        if !line.trim_start().starts_with('|') {
            continue;
        }
        let row = cells(line);
        if let Some(key) = row.first().and_then(|c| backticked(c).first().copied()).filter(|k| is_name(k)) {
            keys.insert(format!("{prefix}{key}"));
        }
    }
    keys
}

/// pam_vigil(8): the names of the arguments under `.TP` in OPTIONS.
pub fn documented_module_args(man: &str) -> BTreeSet<String> {
    let mut args = BTreeSet::new();
    let mut in_options = false;
    let mut after_tp = false;
    for line in man.lines() {
        if let Some(section) = line.strip_prefix(".SH ") {
            in_options = section.trim_matches('"') == "OPTIONS";
            continue;
        }
        if !in_options {
            continue;
        }
        if line.starts_with(".TP") {
            after_tp = true;
            continue;
        }
        if after_tp {
            after_tp = false;
            let word = line.split_whitespace().nth(1).unwrap_or("");
            let name = word.split('=').next().unwrap_or("");
            if is_name(name) {
                args.insert(name.to_string());
            }
        }
    }
    args
}

/// AUDIT.md's events: the first cell of each row of the events table.
pub fn documented_events(audit_md: &str) -> BTreeSet<String> {
    table_rows(audit_md, "## Events")
        .filter_map(|row| backticked(row.first()?).first().map(|e| e.to_string()))
        .filter(|e| is_name(e))
        .collect()
}

/// AUDIT.md's fields: the first cell of the session fields table, of the table of
/// what the last activity was measured by, and of the field index ("Every field").
pub fn documented_fields(audit_md: &str) -> BTreeSet<String> {
    let mut fields: BTreeSet<String> = RECORD_FIELDS.iter().map(|f| f.to_string()).collect();
    for heading in [SESSION_FIELDS_HEADING, ACTIVITY_FIELDS_HEADING, FIELD_INDEX_HEADING] {
        for row in table_rows(audit_md, heading) {
            if let Some(first) = row.first() {
                fields.extend(backticked(first).into_iter().filter(|w| is_name(w)).map(str::to_string));
            }
        }
    }
    fields
}

const SESSION_FIELDS_HEADING: &str = "## One grep links a session";
const ACTIVITY_FIELDS_HEADING: &str = "### What the last activity was measured by";
const FIELD_INDEX_HEADING: &str = "### Every field";

/// AUDIT.md's field index: each event-specific field and the events that carry it.
pub fn field_index(audit_md: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut index = BTreeMap::new();
    for row in table_rows(audit_md, FIELD_INDEX_HEADING) {
        let (Some(field), Some(events)) = (row.first().and_then(|c| backticked(c).first().copied()), row.get(1)) else { continue };
        let events: BTreeSet<String> = backticked(events).into_iter().filter(|e| is_name(e)).map(str::to_string).collect();
        index.insert(field.to_string(), events);
    }
    index
}

/// The rows (as cells) of the first table after `heading`, up to the next heading.
fn table_rows<'a>(text: &'a str, heading: &'a str) -> impl Iterator<Item = Vec<&'a str>> + 'a {
    text.lines()
        .skip_while(move |l| l.trim() != heading)
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.trim_start().starts_with('|') && !l.contains("---"))
        .skip(1) // the header row
        .map(cells)
}

/// vigilctl's verbs (`list`, `audit verify`), each verb's flags (`list --json`) and the
/// global flags (`--timeout`), from its clap definitions.
pub fn vigilctl_surface(cmd: &clap::Command) -> BTreeSet<String> {
    // Global flags once, at the top (clap repeats them in every verb).
    fn flags(cmd: &clap::Command, top: bool) -> Vec<String> {
        cmd.get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set() && (top || !a.is_global_set()))
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|f| f != "--help" && f != "--version")
            .collect()
    }
    fn walk(cmd: &clap::Command, verb: &str, out: &mut BTreeSet<String>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            let name = if verb.is_empty() { sub.get_name().to_string() } else { format!("{verb} {}", sub.get_name()) };
            if sub.has_subcommands() {
                walk(sub, &name, out);
                continue;
            }
            for flag in flags(sub, false) {
                out.insert(format!("{name} {flag}"));
            }
            out.insert(name);
        }
    }
    let mut out: BTreeSet<String> = flags(cmd, true).into_iter().filter(|f| f != "--socket" && f != "--bus").collect();
    walk(cmd, "", &mut out);
    out
}

/// Everything documented, by kind.
pub fn documented(repo: &Path, vigilctl: &clap::Command) -> Result<Items, String> {
    let mut items = Items::new();
    items.insert(Kind::Config, documented_config_keys(&read(repo, "docs/configuration.md")?));
    items.insert(Kind::Vigilctl, vigilctl_surface(vigilctl));
    items.insert(Kind::ModuleArg, documented_module_args(&read(repo, "packaging/man/pam_vigil.8")?));
    let audit = read(repo, "AUDIT.md")?;
    items.insert(Kind::Event, documented_events(&audit));
    items.insert(Kind::Field, documented_fields(&audit));
    Ok(items)
}

/// Reads `tests/conformance.toml`.
pub fn read_map(repo: &Path) -> Result<Map, String> {
    let text = read(repo, "tests/conformance.toml")?;
    let doc: toml::Table = text.parse().map_err(|e| format!("tests/conformance.toml: {e}"))?;
    let mut map = Map::new();
    for (table, entries) in doc {
        let kind = Kind::from_table(&table).ok_or_else(|| format!("tests/conformance.toml: unknown table [{table}]"))?;
        let entries = entries.as_table().ok_or_else(|| format!("tests/conformance.toml: [{table}] is not a table"))?;
        let mut items = BTreeMap::new();
        for (item, tests) in entries {
            let tests = match tests {
                toml::Value::String(t) => vec![t.clone()],
                toml::Value::Array(list) => list.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
                _ => return Err(format!("tests/conformance.toml: [{table}] {item:?}: expected a test name or a list of them")),
            };
            items.insert(item.clone(), tests);
        }
        map.insert(kind, items);
    }
    Ok(map)
}

/// Whether `tests/tests/BINARY.rs` (or a file it includes) defines `fn NAME`: the
/// test is written `BINARY::NAME` (a module path inside the file is allowed:
/// `BINARY::module::NAME`).
fn test_exists(repo: &Path, test: &str) -> bool {
    if test == CONTAINER_STAGE {
        return repo.join("tests/container/run.sh").exists();
    }
    if let Some((file, name)) = unit_test(test) {
        return std::fs::read_to_string(repo.join(file)).is_ok_and(|source| source.contains(&format!("fn {name}(")));
    }
    let Some((binary, path)) = test.split_once("::") else { return false };
    let name = path.rsplit("::").next().unwrap_or(path);
    let Ok(source) = std::fs::read_to_string(repo.join("tests/tests").join(format!("{binary}.rs"))) else { return false };
    source.contains(&format!("fn {name}("))
}

/// The text of `fn NAME` in `tests/tests/BINARY.rs`, up to the next item at the
/// file's top level.
fn test_body(repo: &Path, test: &str) -> Option<String> {
    let (binary, path) = test.split_once("::")?;
    let name = path.rsplit("::").next().unwrap_or(path);
    let source = std::fs::read_to_string(repo.join("tests/tests").join(format!("{binary}.rs"))).ok()?;
    let start = source.find(&format!("fn {name}("))?;
    let rest = &source[start..];
    let end = rest.find("\n}\n").map(|e| e + 3).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// The checks that need no e2e run: the map against the documents and the test files,
/// and the configuration references against each other and the parser.
pub fn check_static(repo: &Path, documented: &Items, map: &Map, parser_keys: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for kind in Kind::ALL {
        let docs = documented.get(&kind).cloned().unwrap_or_default();
        let entries = map.get(&kind).cloned().unwrap_or_default();
        for item in docs.difference(&entries.keys().cloned().collect()) {
            problems.push(format!("[{}] {item:?} is documented but tests/conformance.toml names no test that shows it", kind.table()));
        }
        for (item, tests) in &entries {
            if !docs.contains(item) {
                problems.push(format!("[{}] {item:?} is in tests/conformance.toml but not documented (stale entry?)", kind.table()));
            }
            if tests.is_empty() {
                problems.push(format!("[{}] {item:?}: no test named", kind.table()));
            }
            for test in tests {
                if !test_exists(repo, test) {
                    problems
                        .push(format!("[{}] {item:?}: the test {test} does not exist (tests/tests/BINARY.rs with fn NAME)", kind.table()));
                }
            }
        }
    }
    problems.extend(check_config_references(repo, documented.get(&Kind::Config).cloned().unwrap_or_default(), parser_keys));
    problems
}

/// docs/configuration.md, vigil.toml(5) and the commented packaging/vigil.toml name the
/// same keys as the parser accepts.
fn check_config_references(repo: &Path, documented: BTreeSet<String>, parser_keys: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for key in parser_keys.difference(&documented) {
        problems.push(format!("config key {key:?} is accepted by the parser but missing from docs/configuration.md"));
    }
    for key in documented.difference(parser_keys) {
        problems.push(format!("config key {key:?} is in docs/configuration.md but the parser does not accept it"));
    }
    for (file, found) in [
        (
            "packaging/man/vigil.toml.5",
            read(repo, "packaging/man/vigil.toml.5").map(|t| t.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")),
        ),
        ("packaging/vigil.toml", read(repo, "packaging/vigil.toml")),
    ] {
        let text = match found {
            Ok(text) => text,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for key in parser_keys {
            let last = key.rsplit('.').next().unwrap_or(key);
            if !mentions_word(&text, last) {
                problems.push(format!("config key {key:?} is not mentioned in {file}"));
            }
        }
    }
    problems
}

fn mentions_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

/// Which events the run's records carried each field in: (event, field) → tests.
pub type Shapes = BTreeMap<(String, String), BTreeSet<String>>;

/// Reads every declaration file in `dir`: what each test declared, and the
/// `record_shape` lines (which events carried which fields).
pub fn read_declarations(dir: &Path) -> Result<(Declared, Shapes), String> {
    let mut declared = Declared::new();
    let mut shapes = Shapes::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e} (run the e2e tests first)", dir.display()))?;
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
        for line in text.lines() {
            let mut parts = line.splitn(3, '\t');
            let (Some(test), Some(table), Some(item)) = (parts.next(), parts.next(), parts.next()) else { continue };
            if table == "record_shape" {
                if let Some((event, field)) = item.split_once(' ') {
                    shapes.entry((event.to_string(), field.to_string())).or_default().insert(test.to_string());
                }
            } else if let Some(kind) = Kind::from_table(table) {
                declared.entry((kind, item.to_string())).or_default().insert(test.to_string());
            }
        }
    }
    Ok((declared, shapes))
}

/// The checks after an e2e run. `shapes`: which events carried which fields
/// ([`read_declarations`]); `index`: AUDIT.md's field index ([`field_index`]).
pub fn check_run(
    documented: &Items,
    map: &Map,
    declared: &Declared,
    shapes: &Shapes,
    index: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for ((event, field), tests) in shapes {
        if let Some(events) = index.get(field)
            && !events.contains(event)
        {
            let tests: Vec<_> = tests.iter().take(2).cloned().collect();
            problems.push(format!(
                "a {event} record carried the field {field:?}, but AUDIT.md's field index lists it only for {} (seen in {})",
                events.iter().cloned().collect::<Vec<_>>().join(", "),
                tests.join(", ")
            ));
        }
    }
    for (kind, entries) in map {
        for (item, tests) in entries {
            let by = declared.get(&(*kind, item.clone()));
            if tests.iter().any(|t| unit_test(t).is_some()) {
                continue;
            }
            if !tests.iter().any(|t| by.is_some_and(|b| b.contains(t) || b.iter().any(|d| same_test(d, t)))) {
                let others = by.map(|b| b.iter().take(3).cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default();
                problems.push(format!(
                    "[{}] {item:?}: none of {} exercised it in this run{}",
                    kind.table(),
                    tests.join(", "),
                    if others.is_empty() { " (no test did)".to_string() } else { format!(" (these did: {others})") }
                ));
            }
        }
    }
    for kind in [Kind::Event, Kind::Field] {
        let docs = documented.get(&kind).cloned().unwrap_or_default();
        for ((k, item), tests) in declared {
            if *k == kind && !docs.contains(item) {
                let tests: Vec<_> = tests.iter().take(3).cloned().collect();
                problems.push(format!(
                    "a record carried the {} {item:?}, which AUDIT.md does not list (seen in {})",
                    if kind == Kind::Event { "event" } else { "field" },
                    tests.join(", ")
                ));
            }
        }
    }
    let events_seen = declared.keys().filter(|(k, _)| *k == Kind::Event).count();
    if events_seen < MIN_EVENTS_SEEN {
        problems.push(format!("the run's captures held {events_seen} distinct events (at least {MIN_EVENTS_SEEN} expected): the record capture did not work, so the record check would prove nothing"));
    }
    problems
}

/// `e2e_x::mod::name` declared for a test the map names `e2e_x::name`.
fn same_test(declared: &str, named: &str) -> bool {
    let split = |t: &str| t.split_once("::").map(|(b, p)| (b.to_string(), p.rsplit("::").next().unwrap_or(p).to_string()));
    split(declared).is_some() && split(declared) == split(named)
}

/// A map for the items that have none yet, from what the run's tests declared (the
/// first test by name): a starting point to review, never applied by itself.
pub fn suggest(repo: &Path, documented: &Items, map: &Map, declared: &Declared) -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        let mapped = map.get(&kind).cloned().unwrap_or_default();
        let missing: Vec<_> = documented.get(&kind).into_iter().flatten().filter(|i| !mapped.contains_key(*i)).collect();
        if missing.is_empty() {
            continue;
        }
        out.push_str(&format!("[{}]\n", kind.table()));
        for item in missing {
            let candidates: Vec<&String> =
                declared.get(&(kind, item.clone())).into_iter().flatten().filter(|t| !t.contains("(outside a test)")).collect();
            // A test whose own body names the item is likelier to assert it than one
            // that only passed by it.
            let word = item.rsplit([' ', '.']).next().unwrap_or(item);
            let chosen = candidates.iter().find(|t| test_body(repo, t).is_some_and(|b| b.contains(word))).or(candidates.first());
            match chosen {
                Some(test) => out.push_str(&format!("{item:?} = {test:?}\n")),
                None => out.push_str(&format!("# {item:?} = no test exercised it\n")),
            }
        }
        out.push('\n');
    }
    out
}

/// The configuration keys the parser accepts.
pub fn parser_keys() -> BTreeSet<String> {
    vigil_config::accepted_keys().into_iter().collect()
}

/// vigilctl's clap definitions: the source of its man pages.
pub fn vigilctl_command() -> clap::Command {
    <vigil_daemon::cli::vigilctl::Cli as clap::CommandFactory>::command()
}
