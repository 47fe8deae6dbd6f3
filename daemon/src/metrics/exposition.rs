//! The Prometheus text exposition format (version 0.0.4), written by hand: `# HELP` and
//! `# TYPE` once per family, then its samples, one per line. Label values are escaped
//! (`\\`, `\"`, `\n`), as is help text (`\\`, `\n`); metric and label names are
//! vigild's own constants.

use std::fmt::{Display, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Gauge,
    Counter,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        }
    }
}

/// A text being written, family after family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// One family's samples, written after its HELP and TYPE lines. Borrowing the text, it
/// ends before the next family begins: a family's lines cannot be split.
pub struct Family<'e> {
    text: &'e mut String,
    name: &'static str,
}

impl Exposition {
    pub fn with_capacity(bytes: usize) -> Self {
        Self { text: String::with_capacity(bytes) }
    }

    /// Starts family `name`: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &'static str, kind: Type, help: &str) -> Family<'_> {
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        escape_into(&mut self.text, help, false);
        let _ = writeln!(self.text, "\n# TYPE {name} {}", kind.as_str());
        Family { text: &mut self.text, name }
    }

    /// A family with one sample and no labels.
    pub fn single(&mut self, name: &'static str, kind: Type, help: &str, value: impl Display) {
        self.family(name, kind, help).sample(&[], value);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

impl Family<'_> {
    /// One sample: `name{label="value",...} value`.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.text.push_str(self.name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(label);
                self.text.push_str("=\"");
                escape_into(self.text, value, true);
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }
}

/// Escapes `\` and newlines, and `"` too in a label value.
fn escape_into(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_type_once_then_the_samples() {
        let mut text = Exposition::default();
        text.family("vigil_sessions", Type::Gauge, "Sessions now.")
            .sample(&[("service", "sshd"), ("tty", "yes")], 3)
            .sample(&[("service", "cron"), ("tty", "no")], 1);
        text.single("vigil_logins_total", Type::Counter, "Logins.", 7);
        assert_eq!(
            text.finish(),
            "# HELP vigil_sessions Sessions now.\n# TYPE vigil_sessions gauge\n\
             vigil_sessions{service=\"sshd\",tty=\"yes\"} 3\nvigil_sessions{service=\"cron\",tty=\"no\"} 1\n\
             # HELP vigil_logins_total Logins.\n# TYPE vigil_logins_total counter\nvigil_logins_total 7\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut text = Exposition::default();
        text.family("m", Type::Gauge, "a \\ b\nc \"q\"").sample(&[("service", "x\"y\\z\nw}{,=")], 1);
        assert_eq!(text.finish(), "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{service=\"x\\\"y\\\\z\\nw}{,=\"} 1\n");
    }

    #[test]
    fn a_family_without_samples_still_says_what_it_is() {
        let mut text = Exposition::default();
        text.family("vigil_sessions", Type::Gauge, "Sessions now.");
        assert_eq!(text.finish(), "# HELP vigil_sessions Sessions now.\n# TYPE vigil_sessions gauge\n");
    }
}
