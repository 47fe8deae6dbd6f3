//! Checks that span more than one value (which serde cannot place on its own), and the
//! assembly of the checked file into resolved policies.

use humantime::format_duration;

use crate::document::KeyPath;
use crate::matching::Criteria;
use crate::resolve::{DEFAULTS_NAME, ResolvedPolicy};
use crate::schema::{FileDoc, Layer};

/// A refusal found after parsing, placed by key path (the caller finds its position).
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) path: KeyPath,
    pub(crate) message: String,
}

/// A `[[policy]]` block, ready to match sessions.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) criteria: Criteria,
    pub(crate) resolved: ResolvedPolicy,
}

const MAX_NAME_CHARS: usize = 64;

/// Resolves `[defaults]` and every policy block against the built-ins and checks each
/// resolved result.
pub(crate) fn assemble(file: FileDoc) -> Result<(ResolvedPolicy, Vec<Policy>), Problem> {
    let defaults_path = KeyPath::root().key("defaults");
    let defaults = ResolvedPolicy::builtin().overridden_by(&file.defaults);
    check_idle_pair(&defaults, &file.defaults, &defaults_path, None)?;

    let mut policies: Vec<Policy> = Vec::with_capacity(file.policy.len());
    for (index, block) in file.policy.into_iter().enumerate() {
        let path = KeyPath::root().key("policy").index(index);
        let name = match block.name.clone() {
            Some(name) => {
                check_name(&name, &path.clone().key("name"))?;
                name
            }
            None => format!("policy#{}", index.saturating_add(1)),
        };
        if let Some(earlier) = policies.iter().position(|p| p.resolved.policy_name == name) {
            return Err(Problem {
                path: block_key_or_self(&path, block.name.is_some(), "name"),
                message: format!(
                    "duplicate policy name {name:?} (also used by policy[{}]); \
                     expected a name unique in the file, so that audit records tell them apart",
                    earlier.saturating_add(1)
                ),
            });
        }
        let layer = block.layer();
        let criteria = block.criteria.unwrap_or_default();
        check_exempt_has_criteria(&criteria, &layer, &path)?;
        let mut resolved = defaults.clone().overridden_by(&layer);
        resolved.policy_name = name;
        check_idle_pair(&resolved, &layer, &path, Some(&file.defaults))?;
        policies.push(Policy { criteria, resolved });
    }
    Ok((defaults, policies))
}

fn block_key_or_self(block: &KeyPath, has_key: bool, key: &str) -> KeyPath {
    if has_key { block.clone().key(key) } else { block.clone() }
}

fn check_name(name: &str, path: &KeyPath) -> Result<(), Problem> {
    let problem = |why: &str| Problem { path: path.clone(), message: format!("invalid policy name {name:?}: {why}") };
    if name.trim().is_empty() {
        return Err(problem(r#"expected a short name like "operators""#));
    }
    if name.chars().any(char::is_control) {
        return Err(problem("expected a name without control characters"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(problem(&format!("expected at most {MAX_NAME_CHARS} characters")));
    }
    if name == DEFAULTS_NAME {
        return Err(problem(r#"expected another name: "defaults" is what sessions that match no policy report"#));
    }
    Ok(())
}

/// A block that matches every session and exempts it switches vigil off for everyone:
/// never what an admin means, so it is refused rather than warned about.
fn check_exempt_has_criteria(criteria: &Criteria, layer: &Layer, block: &KeyPath) -> Result<(), Problem> {
    if layer.exempt != Some(true) || !criteria.is_empty() {
        return Ok(());
    }
    Err(Problem {
        path: block.clone().key("exempt"),
        message: "exempt = true in a block with an empty match exempts every session; \
                  expected match criteria (users, groups, services, tty or rhosts) naming \
                  the sessions to exempt"
            .to_owned(),
    })
}

/// The warning must come before the end: `idle_warning < idle_timeout` once the block's
/// values are combined with what it inherits. The error points at the key this block
/// sets that makes the pair wrong: its `idle_warning` if it sets one, else its
/// `idle_timeout`.
fn check_idle_pair(resolved: &ResolvedPolicy, layer: &Layer, block: &KeyPath, inherited_from: Option<&Layer>) -> Result<(), Problem> {
    let Some(timeout) = resolved.idle_timeout else {
        return Ok(());
    };
    let warning = resolved.idle_warning;
    if warning < timeout {
        return Ok(());
    }
    let origin = |set_in_defaults: bool| match (inherited_from.is_some(), set_in_defaults) {
        (true, true) => "from [defaults]",
        _ => "built-in default",
    };
    let (key, message) = if layer.idle_warning.is_some() {
        let timeout_origin = if layer.idle_timeout.is_some() {
            "set in this block".to_owned()
        } else {
            origin(inherited_from.is_some_and(|d| d.idle_timeout.is_some())).to_owned()
        };
        (
            "idle_warning",
            format!(
                "idle_warning ({}) must be shorter than idle_timeout ({}, {timeout_origin}); \
                 expected a warning period that ends before the timeout",
                format_duration(warning),
                format_duration(timeout),
            ),
        )
    } else {
        let warning_origin = origin(inherited_from.is_some_and(|d| d.idle_warning.is_some()));
        (
            "idle_timeout",
            format!(
                "idle_timeout ({}) must be longer than idle_warning ({}, {warning_origin}); \
                 expected a longer timeout, or a shorter idle_warning in this block",
                format_duration(timeout),
                format_duration(warning),
            ),
        )
    };
    Err(Problem { path: block.clone().key(key), message })
}
