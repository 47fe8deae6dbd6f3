//! Every key the file accepts, named as docs/configuration.md names them: the list the
//! documentation gate (tests/conformance.toml) checks the three references against.

use crate::schema::SETTING_KEYS;

/// The keys of a `match` table, in the docs' order.
pub(crate) const MATCH_KEYS: &[&str] = &["users", "groups", "services", "tty", "rhosts"];

/// The keys of the `[audit]` table.
pub(crate) const AUDIT_KEYS: &[&str] = &["format", "chain", "spool_max_bytes"];

/// The keys of the `[metrics]` table.
pub(crate) const METRICS_KEYS: &[&str] = &["textfile", "interval"];

/// Every accepted key: the settings (in `[defaults]` and `[[policy]]`), a policy's
/// `name` and `match`, `match.KEY`, `audit.KEY` and `metrics.KEY`.
pub fn accepted_keys() -> Vec<String> {
    let settings = SETTING_KEYS.iter().map(|k| k.to_string());
    let policy = ["name", "match"].into_iter().map(str::to_string);
    let matching = MATCH_KEYS.iter().map(|k| format!("match.{k}"));
    let audit = AUDIT_KEYS.iter().map(|k| format!("audit.{k}"));
    let metrics = METRICS_KEYS.iter().map(|k| format!("metrics.{k}"));
    settings.chain(policy).chain(matching).chain(audit).chain(metrics).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    /// The keys a table's parser offers when given one it does not know.
    fn offered(table_prefix: &str, suffix: &str) -> String {
        let text = format!("{table_prefix}not_a_key = 1{suffix}\n");
        Config::parse(&text, Path::new("t.toml")).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn the_lists_are_what_the_parser_accepts() {
        let matching = offered("[[policy]]\nmatch = { ", " }");
        let audit = offered("[audit]\n", "");
        let metrics = offered("[metrics]\n", "");
        let defaults = offered("[defaults]\n", "");
        for (error, keys) in [(&matching, MATCH_KEYS), (&audit, AUDIT_KEYS), (&metrics, METRICS_KEYS), (&defaults, SETTING_KEYS)] {
            // serde lists three keys and more as "one of a, b, c", two as "a or b".
            let expected = error.rsplit("expected one of ").next().unwrap_or_default();
            let expected = if expected == error { error.rsplit("expected ").next().unwrap_or_default() } else { expected };
            let listed: Vec<&str> = expected.split(", ").flat_map(|k| k.split(" or ")).map(|k| k.trim()).collect();
            assert_eq!(listed, keys, "{error}");
        }
    }
}
