//! Every refusal as `file:line:column: key: message`: placing it (line, column, key
//! path) and wording it for an admin.

use std::ops::Range;
use std::path::Path;
use std::str::Utf8Error;

use crate::document::{Document, KeyPath, Segment};
use crate::error::ConfigError;
use crate::schema::SETTING_KEYS;
use crate::validate::Problem;

/// A TOML syntax error. The tree recovered around it may be partial, so lines that
/// are table headers are named from their own text.
pub(crate) fn syntax_error(doc: &Document<'_>, origin: &Path, error: &toml::de::Error) -> ConfigError {
    let span = error.span().unwrap_or_default();
    let message = error.message().trim();
    let header = header_at(doc, span.start);
    if message == "duplicate key" {
        let (path, message) = match header {
            Some((header, path)) => (
                path,
                format!(
                    "table [{header}] is defined twice; expected each table once \
                     (repeated blocks are written [[policy]])"
                ),
            ),
            None => {
                let key = doc.text().get(span.clone()).unwrap_or_default().trim();
                // the repeated key is not in the tree: its table's path plus its text
                let path = doc.path_at(span.start).key(key);
                (path, "key is set twice; expected each key once per table".to_owned())
            }
        };
        return invalid(doc, origin, span.start, path, message);
    }
    let path = header.map_or_else(|| doc.path_at(span.start), |(_, path)| path);
    invalid(doc, origin, span.start, path, message.to_owned())
}

/// A value serde refused (unknown key, wrong type, bad duration or pattern).
pub(crate) fn value_error(doc: &Document<'_>, origin: &Path, error: &toml::de::Error) -> ConfigError {
    let pos = error.span().map_or(0, |span| span.start);
    let path = doc.path_at(pos);
    let message = reword(&path, error.message().trim());
    invalid(doc, origin, pos, path, message)
}

/// A refusal found by key path, placed at that key's value.
pub(crate) fn problem(doc: &Document<'_>, origin: &Path, problem: Problem) -> ConfigError {
    let pos = nearest_span(doc, &problem.path).map_or(0, |span| span.start);
    invalid(doc, origin, pos, problem.path, problem.message)
}

/// Bytes that are not UTF-8, placed at the first bad byte. The key comes from the file
/// read with bad bytes replaced, so the tree around the bad byte is whole.
pub(crate) fn not_utf8(bytes: &[u8], error: Utf8Error, origin: &Path) -> ConfigError {
    let pos = error.valid_up_to();
    let bad = bytes.get(pos).copied().unwrap_or_default();
    let lossy = String::from_utf8_lossy(bytes);
    let (doc, _) = Document::parse(&lossy);
    let path = doc.path_at(pos);
    let message = format!("invalid UTF-8 (byte 0x{bad:02x}); expected a UTF-8 text file");
    invalid(&doc, origin, pos, path, message)
}

fn invalid(doc: &Document<'_>, origin: &Path, pos: usize, path: KeyPath, message: String) -> ConfigError {
    let (line, column) = doc.line_col(pos);
    ConfigError::Invalid { path: origin.to_path_buf(), line, column, key: path.to_string(), message }
}

/// When `pos` is on a `[table]` or `[[array]]` header line: the header's text and its
/// key path (with the array index when the tree knows it).
fn header_at(doc: &Document<'_>, pos: usize) -> Option<(String, KeyPath)> {
    let text = doc.text();
    let line_start = text.get(..pos).and_then(|before| before.rfind('\n')).map_or(0, |i| i.saturating_add(1));
    let line = text.get(line_start..)?.lines().next()?.trim();
    if !line.starts_with('[') {
        return None;
    }
    let header = line.trim_start_matches('[').split(']').next().unwrap_or_default().trim();
    let named = header.split('.').fold(KeyPath::root(), |path, key| path.key(key.trim()));
    let found = doc.path_at(pos);
    let keys = |p: &KeyPath| p.segments().iter().filter(|s| matches!(s, Segment::Key(_))).cloned().collect::<Vec<_>>();
    let path = if keys(&found) == keys(&named) { found } else { named };
    Some((header.to_owned(), path))
}

/// The span of `path`, or of its closest ancestor that the document has.
fn nearest_span(doc: &Document<'_>, path: &KeyPath) -> Option<Range<usize>> {
    let segments = path.segments();
    (0..=segments.len()).rev().find_map(|len| {
        let mut prefix = KeyPath::root();
        for segment in segments.get(..len).unwrap_or_default() {
            prefix = match segment {
                Segment::Key(key) => prefix.key(key),
                Segment::Index(index) => prefix.index(*index),
            };
        }
        doc.span_of(&prefix)
    })
}

const IDLE_ACTIONS: &str = r#""terminate", "none""#;

/// Rewords serde's messages for an admin: "unknown key; expected one of a, b" rather
/// than "unknown field `x`, expected one of `a`, `b`", TOML type names rather than
/// Rust ones. Messages written by this crate pass through unchanged.
fn reword(path: &KeyPath, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let in_defaults = matches!(path.segments(), [Segment::Key(t), Segment::Key(_)] if t == "defaults");
        if in_defaults && (key == "match" || key == "name") {
            return format!(
                "`{key}` belongs in a [[policy]] block, not in [defaults] (which applies to \
                 every session); expected one of {}",
                SETTING_KEYS.join(", ")
            );
        }
        return match rest.split_once(", expected ") {
            Some((_, "there are no fields")) | None => "unknown key".to_owned(),
            Some((_, expected)) => format!("unknown key; expected {}", expected.replace('`', "")),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
        return format!("invalid value {value:?}; expected {}", expected.replace('`', "\""));
    }
    if message == "wanted string or table" {
        // toml's refusal of a non-string for an enum; idle_action is the only enum
        return format!("wrong type: expected one of {IDLE_ACTIONS}");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!("wrong type: found {}, expected {}", toml_type(found), toml_type(expected));
    }
    message.to_owned()
}

/// serde's data-model names to TOML's.
fn toml_type(serde_name: &str) -> &str {
    match serde_name {
        "map" => "a table",
        "sequence" | "a sequence" => "an array",
        name if name.starts_with("struct ") => "a table",
        name => name,
    }
}
