//! conformance: checks that every documented promise has a test that shows it
//! (tests/conformance.toml), and after an e2e run that each named test exercised its
//! item and that the captured records carried only documented events and fields.
//!
//!   conformance static            the map against the documents (no e2e run needed)
//!   conformance check             static, then the run's declarations (tests/run.sh)
//!   conformance suggest           map entries for what has none, from the declarations
//!   conformance records FILE TEST the records in FILE (journalctl -o cat) declared for TEST
//!
//! Declarations are read from $VIGIL_CONFORMANCE_DIR (default target/conformance).

use std::process::ExitCode;

use vigil_e2e::conformance::declarations_dir;
use vigil_e2e::conformance_check::{check_run, check_static, documented, field_index, read_declarations, read_map, repo_root, suggest};

fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match run(&mode) {
        Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
        Ok(problems) => {
            for problem in &problems {
                eprintln!("conformance: {problem}");
            }
            eprintln!("conformance: FAIL: {} problem(s)", problems.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(mode: &str) -> Result<Vec<String>, String> {
    if mode == "records" {
        // `conformance records FILE TEST`: the records in FILE (one message per line)
        // declared for TEST, e.g. the container stage's journal.
        let args: Vec<String> = std::env::args().skip(2).collect();
        let [file, test] = args.as_slice() else { return Err("usage: conformance records FILE TEST".to_string()) };
        let count = vigil_e2e::conformance::messages_seen(std::path::Path::new(file), test).map_err(|e| format!("{file}: {e}"))?;
        println!("conformance: {count} records of {test} declared");
        return Ok(Vec::new());
    }
    let repo = repo_root();
    let documented = documented(&repo, &vigil_e2e::conformance_check::vigilctl_command())?;
    let map = read_map(&repo).or_else(|e| if mode == "suggest" { Ok(Default::default()) } else { Err(e) })?;
    let parser_keys = vigil_e2e::conformance_check::parser_keys();
    match mode {
        "static" => Ok(check_static(&repo, &documented, &map, &parser_keys)),
        "check" => {
            let mut problems = check_static(&repo, &documented, &map, &parser_keys);
            let (declared, shapes) = read_declarations(&declarations_dir())?;
            let audit_md = std::fs::read_to_string(repo.join("AUDIT.md")).map_err(|e| format!("AUDIT.md: {e}"))?;
            problems.extend(check_run(&documented, &map, &declared, &shapes, &field_index(&audit_md)));
            if problems.is_empty() {
                let entries: usize = map.values().map(|m| m.len()).sum();
                println!(
                    "conformance: {entries} documented items, each shown by the test the map names; every record carried documented events and fields"
                );
            }
            Ok(problems)
        }
        "suggest" => {
            let (declared, _) = read_declarations(&declarations_dir())?;
            print!("{}", suggest(&repo, &documented, &map, &declared));
            Ok(Vec::new())
        }
        _ => Err("usage: conformance static|check|suggest|records FILE TEST".to_string()),
    }
}
