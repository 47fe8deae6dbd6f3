//! Where things are in the file: byte offsets to line:column, offsets to key paths
//! (`policy[2].match.users`) and key paths back to offsets.
//!
//! Built on the toml crate's spanned document tree (`DeTable`), which keeps the byte
//! span of every key and value, even for a document with syntax errors.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    /// 0-based index into an array of tables; shown 1-based (`policy[1]` is the first).
    Index(usize),
}

/// The key an error belongs to, e.g. `defaults.idle_timeout` or `policy[2].match.users`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    pub(crate) fn key(mut self, key: &str) -> Self {
        self.0.push(Segment::Key(key.to_owned()));
        self
    }

    pub(crate) fn index(mut self, index: usize) -> Self {
        self.0.push(Segment::Index(index));
        self
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    fn depth(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare_key(key) {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{}]", index.saturating_add(1))?,
            }
        }
        Ok(())
    }
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The parsed document tree with its source text.
pub(crate) struct Document<'i> {
    text: &'i str,
    root: Spanned<DeTable<'i>>,
}

impl<'i> Document<'i> {
    /// Parses as much of `text` as possible; syntax errors come back beside the tree so
    /// that they can still be placed under the key they interrupt.
    pub(crate) fn parse(text: &'i str) -> (Self, Vec<toml::de::Error>) {
        let (root, errors) = DeTable::parse_recoverable(text);
        (Self { text, root }, errors)
    }

    pub(crate) fn text(&self) -> &'i str {
        self.text
    }

    pub(crate) fn root(&self) -> &Spanned<DeTable<'i>> {
        &self.root
    }

    /// 1-based line and column (in characters) of byte offset `pos`.
    pub(crate) fn line_col(&self, pos: usize) -> (usize, usize) {
        line_col(self.text, pos)
    }

    /// The deepest key whose key or value text covers `pos`; failing that, the table
    /// whose `[header]` precedes `pos`; failing that, the top level.
    pub(crate) fn path_at(&self, pos: usize) -> KeyPath {
        let mut best = None;
        deepest_at(self.root.get_ref(), pos, &KeyPath::root(), &mut best);
        if let Some(path) = best {
            return path;
        }
        let mut header: Option<(usize, KeyPath)> = None;
        last_header_before(self.root.get_ref(), self.text, pos, &KeyPath::root(), &mut header);
        header.map(|(_, path)| path).unwrap_or_default()
    }

    /// The span of the value at `path`, if the document has one there.
    pub(crate) fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        self.find(path).map(|(span, _)| span)
    }

    /// The value at `path` (`None` for the top level, which is not a value).
    pub(crate) fn value_at(&self, path: &KeyPath) -> Option<&DeValue<'i>> {
        self.find(path).and_then(|(_, value)| value)
    }

    fn find(&self, path: &KeyPath) -> Option<(Range<usize>, Option<&DeValue<'i>>)> {
        let mut span = self.root.span();
        let mut value: Option<&DeValue<'i>> = None;
        let mut table = Some(self.root.get_ref());
        for segment in path.segments() {
            let found = match segment {
                Segment::Key(key) => table?.get(key.as_str()),
                Segment::Index(index) => match value? {
                    DeValue::Array(array) => array.get(*index),
                    _ => None,
                },
            }?;
            span = found.span();
            value = Some(found.get_ref());
            table = match found.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        Some((span, value))
    }
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
pub(crate) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let mut end = pos.min(text.len());
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let before = text.get(..end).unwrap_or_default();
    let line = before.matches('\n').count().saturating_add(1);
    let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
    let column = before.get(line_start..).unwrap_or_default().chars().count().saturating_add(1);
    (line, column)
}

/// [`line_col`] of each of `offsets`, which must ascend (a smaller one starts the count
/// over): one pass over the text for all of them.
pub(crate) fn line_cols(text: &str, offsets: &[usize]) -> Vec<(usize, usize)> {
    let (mut at, mut line, mut column) = (0_usize, 1_usize, 1_usize);
    let mut positions = Vec::with_capacity(offsets.len());
    for &pos in offsets {
        let mut end = pos.min(text.len());
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        if end < at {
            (at, line, column) = (0, 1, 1);
        }
        for c in text.get(at..end).unwrap_or_default().chars() {
            if c == '\n' {
                line = line.saturating_add(1);
                column = 1;
            } else {
                column = column.saturating_add(1);
            }
        }
        at = end;
        positions.push((line, column));
    }
    positions
}

fn covers(span: &Range<usize>, pos: usize) -> bool {
    span.start <= pos && (pos < span.end || pos == span.start)
}

fn keep_deeper(best: &mut Option<KeyPath>, candidate: KeyPath) {
    if best.as_ref().is_none_or(|b| candidate.depth() > b.depth()) {
        *best = Some(candidate);
    }
}

fn deepest_at(table: &DeTable<'_>, pos: usize, prefix: &KeyPath, best: &mut Option<KeyPath>) {
    for (key, value) in table.iter() {
        let here = prefix.clone().key(key.get_ref());
        if covers(&key.span(), pos) || covers(&value.span(), pos) {
            keep_deeper(best, here.clone());
        }
        match value.get_ref() {
            DeValue::Table(inner) => deepest_at(inner, pos, &here, best),
            DeValue::Array(array) => {
                for (i, element) in array.iter().enumerate() {
                    if let DeValue::Table(inner) = element.get_ref() {
                        let item = here.clone().index(i);
                        if covers(&element.span(), pos) {
                            keep_deeper(best, item.clone());
                        }
                        deepest_at(inner, pos, &item, best);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Finds the `[table]` or `[[array]]` header that starts last before `pos`.
fn last_header_before(table: &DeTable<'_>, text: &str, pos: usize, prefix: &KeyPath, best: &mut Option<(usize, KeyPath)>) {
    for (key, value) in table.iter() {
        let here = prefix.clone().key(key.get_ref());
        match value.get_ref() {
            DeValue::Table(inner) => {
                consider_header(text, value.span(), pos, &here, best);
                last_header_before(inner, text, pos, &here, best);
            }
            DeValue::Array(array) => {
                for (i, element) in array.iter().enumerate() {
                    if let DeValue::Table(inner) = element.get_ref() {
                        let item = here.clone().index(i);
                        consider_header(text, element.span(), pos, &item, best);
                        last_header_before(inner, text, pos, &item, best);
                    }
                }
            }
            _ => {}
        }
    }
}

fn consider_header(text: &str, span: Range<usize>, pos: usize, path: &KeyPath, best: &mut Option<(usize, KeyPath)>) {
    // after a syntax error the recovered tree can hold odd spans: a header must start
    // with `[` and name the table
    let name = path.segments().iter().rev().find_map(|s| match s {
        Segment::Key(key) => Some(key.as_str()),
        Segment::Index(_) => None,
    });
    let is_header = text.get(span.clone()).is_some_and(|s| s.starts_with('[') && name.is_some_and(|n| s.contains(n)));
    let later = best.as_ref().is_none_or(|(start, _)| span.start >= *start);
    if is_header && span.start <= pos && later {
        *best = Some((span.start, path.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# c\n[defaults]\nidle_timeout = \"15m\"\n\n[[policy]]\nname = \"a\"\nmatch = { users = [\"x\", \"y\"], tty = true }\n\n[[policy]]\n[policy.match]\nusers = [\"z\"]\n";

    fn at(text: &str, needle: &str) -> usize {
        text.find(needle).unwrap()
    }

    #[test]
    fn line_col_counts_characters_from_one() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("é=1\nx", 3), (1, 3));
        assert_eq!(line_col("é", 1), (1, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    #[test]
    fn line_cols_agree_with_line_col() {
        let text = "é=1\nab\n\n[x]\n\u{202e}y = \"\u{1F600}\"\n";
        let offsets: Vec<usize> = (0..=text.len() + 2).collect();
        let one_by_one: Vec<(usize, usize)> = offsets.iter().map(|&pos| line_col(text, pos)).collect();
        assert_eq!(line_cols(text, &offsets), one_by_one);
        // out of order: counted again from the start
        assert_eq!(line_cols(text, &[9, 1, 0]), [line_col(text, 9), line_col(text, 1), (1, 1)]);
    }

    #[test]
    fn paths_at_positions() {
        let (doc, errors) = Document::parse(DOC);
        assert!(errors.is_empty());
        let path = |needle: &str| doc.path_at(at(DOC, needle)).to_string();
        assert_eq!(path("idle_timeout"), "defaults.idle_timeout");
        assert_eq!(path("\"15m\""), "defaults.idle_timeout");
        assert_eq!(path("[defaults]"), "defaults");
        assert_eq!(path("\"y\""), "policy[1].match.users");
        assert_eq!(path("tty"), "policy[1].match.tty");
        assert_eq!(path("[policy.match]"), "policy[2].match");
        assert_eq!(path("[\"z\"]"), "policy[2].match.users");
        assert_eq!(path("# c"), "(top level)");
        // a blank line inside [defaults] belongs to the table whose header precedes it
        assert_eq!(doc.path_at(at(DOC, "\n\n[[policy]]") + 1).to_string(), "defaults");
    }

    #[test]
    fn spans_of_paths() {
        let (doc, _) = Document::parse(DOC);
        let path = KeyPath::root().key("policy").index(1).key("match").key("users");
        let span = doc.span_of(&path).unwrap();
        assert_eq!(&DOC[span], "[\"z\"]");
        assert!(doc.span_of(&KeyPath::root().key("policy").index(5)).is_none());
        assert!(doc.span_of(&KeyPath::root().key("nope")).is_none());
    }

    #[test]
    fn odd_keys_are_quoted() {
        let path = KeyPath::root().key("defaults").key("a.b");
        assert_eq!(path.to_string(), "defaults.\"a.b\"");
    }
}
