//! The documented-promises map (tests/conformance.toml) against the documents, without
//! an e2e run: every documented config key, vigilctl verb and flag, module argument and
//! audit event and field has an entry naming an e2e test that exists, and no entry is
//! stale; the three configuration references name exactly the keys the parser accepts.
//! What the named tests exercised is checked after the e2e run (`conformance check`,
//! tests/run.sh).

use vigil_e2e::conformance_check::{check_static, documented, parser_keys, read_map, repo_root, vigilctl_command};

#[test]
fn every_documented_promise_names_a_test_that_exists() {
    let repo = repo_root();
    let documented = documented(&repo, &vigilctl_command()).unwrap_or_else(|e| panic!("{e}"));
    let map = read_map(&repo).unwrap_or_else(|e| panic!("{e}"));
    let problems = check_static(&repo, &documented, &map, &parser_keys());
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
