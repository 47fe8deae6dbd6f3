//! Text to a checked configuration: syntax, shape, values, then cross-checks.

use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::Config;
use crate::document::{Document, KeyPath};
use crate::error::ConfigError;
use crate::explain;
use crate::schema::FileDoc;
use crate::validate::{self, Problem};
use crate::warnings::Lint;

/// Parses and checks `text`; `origin` only names the file in errors and warnings.
pub(crate) fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let (doc, syntax_errors) = Document::parse(text);
    let first_syntax_error = syntax_errors.iter().min_by_key(|e| e.span().map_or(0, |s| s.start));
    if let Some(error) = first_syntax_error {
        return Err(explain::syntax_error(&doc, origin, error));
    }
    check_shape(doc.root().get_ref()).map_err(|p| explain::problem(&doc, origin, p))?;
    let deserializer = toml::de::Deserializer::from(doc.root().clone());
    let file = FileDoc::deserialize(deserializer).map_err(|e| explain::value_error(&doc, origin, &e))?;
    let defaults = crate::AuditSettings::default();
    let audit = crate::AuditSettings {
        format: file.audit.format.unwrap_or(defaults.format),
        chain: file.audit.chain.unwrap_or(defaults.chain),
        spool_max_bytes: file.audit.spool_max_bytes.unwrap_or(defaults.spool_max_bytes),
    };
    let metrics = crate::MetricsSettings {
        textfile: file.metrics.textfile.as_ref().map(|t| t.0.clone()),
        interval: file.metrics.interval.map_or(crate::MetricsSettings::DEFAULT_INTERVAL, |i| i.0),
    };
    let (defaults, policies) = validate::assemble(file).map_err(|p| explain::problem(&doc, origin, p))?;
    let lint = Lint::gather(&doc, origin, &policies);
    Ok(Config { audit, metrics, defaults, policies, lint })
}

/// Refuses bytes that are not UTF-8, pointing at the first bad byte.
pub(crate) fn utf8<'b>(bytes: &'b [u8], origin: &Path) -> Result<&'b str, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(error) => Err(explain::not_utf8(bytes, error, origin)),
    }
}

/// Tables must be tables before serde sees them: serde would also accept an array
/// for a struct (field by position) and refuse it with a confusing message.
fn check_shape(root: &DeTable<'_>) -> Result<(), Problem> {
    let top = KeyPath::root();
    if let Some(defaults) = root.get("defaults") {
        expect_table(defaults.get_ref(), &top.clone().key("defaults"))?;
    }
    for table in ["audit", "metrics"] {
        if let Some(value) = root.get(table) {
            expect_table(value.get_ref(), &top.clone().key(table))?;
        }
    }
    let Some(policies) = root.get("policy") else {
        return Ok(());
    };
    let path = top.key("policy");
    let DeValue::Array(policies) = policies.get_ref() else {
        return Err(Problem {
            path,
            message: format!(
                "wrong type: found {}, expected an array of tables (write each block as [[policy]])",
                policies.get_ref().type_str()
            ),
        });
    };
    for (index, policy) in policies.iter().enumerate() {
        let path = path.clone().index(index);
        expect_table(policy.get_ref(), &path)?;
        if let Some(criteria) = policy.get_ref().as_table().and_then(|t| t.get("match")) {
            expect_table(criteria.get_ref(), &path.key("match"))?;
        }
    }
    Ok(())
}

fn expect_table(value: &DeValue<'_>, path: &KeyPath) -> Result<(), Problem> {
    if value.is_table() {
        return Ok(());
    }
    Err(Problem { path: path.clone(), message: format!("wrong type: found {}, expected a table", value.type_str()) })
}
