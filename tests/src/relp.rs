//! docs/fleet.md's RELP forwarding ("Forwarding that loses nothing") as a test runs it:
//! the host's and the center's rsyslog configuration are the document's own code
//! blocks, so the text admins copy is the text tested; only the example's address, port
//! and directory become the test's.

use std::path::{Path, PathBuf};

use crate::paths::workspace_root;

const FLEET_DOC: &str = "docs/fleet.md";
/// The first line of each block, which names the file it is.
const HOST_BLOCK: &str = "# /etc/rsyslog.d/60-vigil-forward.conf on each host";
const CENTER_BLOCK: &str = "# /etc/rsyslog.d/60-vigil-center.conf on the central log host";
/// The example's values, replaced by the test's.
const DOC_TARGET: &str = "target=\"logs.example.com\"";
const DOC_ADDRESS: &str = "address=\"192.0.2.10\"";
const DOC_PORT: &str = "port=\"2514\"";
const DOC_HOSTS_DIR: &str = "/var/log/vigil/";

/// The host's configuration: authpriv to the center at 127.0.0.1:`port` over RELP,
/// through the disk-assisted queue (in the instance's work directory).
pub fn host_config(port: u16) -> Vec<String> {
    let block = fleet_block(HOST_BLOCK);
    let lines = replaced(&block, &[(DOC_TARGET, "target=\"127.0.0.1\"".into()), (DOC_PORT, format!("port=\"{port}\""))]);
    lines.split('\n').map(str::to_owned).collect()
}

/// The center's configuration: imrelp on 127.0.0.1:`port`, one file per host in
/// `hosts_dir` ([`host_file`]).
pub fn center_config(port: u16, hosts_dir: &Path) -> Vec<String> {
    let block = fleet_block(CENTER_BLOCK);
    let dir = format!("{}/", hosts_dir.display());
    let lines =
        replaced(&block, &[(DOC_ADDRESS, "address=\"127.0.0.1\"".into()), (DOC_PORT, format!("port=\"{port}\"")), (DOC_HOSTS_DIR, dir)]);
    lines.split('\n').map(str::to_owned).collect()
}

/// Where the center writes the records of `host` (the host name its lines carry).
pub fn host_file(hosts_dir: &Path, host: &str) -> PathBuf {
    hosts_dir.join(format!("{host}.log"))
}

/// `text` with each example value replaced; panics when the document no longer has one.
fn replaced(text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (example, value) in pairs {
        assert!(out.contains(example), "{FLEET_DOC}: the block no longer has {example}:\n{text}");
        out = out.replace(example, value);
    }
    out
}

/// The fenced code block of docs/fleet.md whose first line is `first_line`, without the
/// fences.
fn fleet_block(first_line: &str) -> String {
    let path = workspace_root().join(FLEET_DOC);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text.find(&format!("```\n{first_line}\n")).unwrap_or_else(|| panic!("{FLEET_DOC}: no code block starts {first_line:?}"));
    let body = &text[start + 4..];
    let end = body.find("\n```").unwrap_or_else(|| panic!("{FLEET_DOC}: the block {first_line:?} has no end"));
    body[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_blocks_become_the_tests_configuration() {
        let host = host_config(40001).join("\n");
        assert!(host.contains("type=\"omrelp\" target=\"127.0.0.1\" port=\"40001\""), "{host}");
        assert!(host.contains("queue.filename=") && host.contains("queue.saveOnShutdown=\"on\""), "{host}");
        let center = center_config(40001, Path::new("/tmp/x/hosts")).join("\n");
        assert!(center.contains("address=\"127.0.0.1\" port=\"40001\""), "{center}");
        assert!(center.contains("string=\"/tmp/x/hosts/%HOSTNAME:::secpath-replace%.log\""), "{center}");
        assert!(!center.contains("/var/log") && !host.contains("example.com"));
    }
}
