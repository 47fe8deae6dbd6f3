//! Printing what came from a file: values and paths a user may have chosen never reach
//! the admin's terminal raw.

use std::path::Path;

use vigil_protocol::audit::push_escaped;

/// A value from the file, made safe to print: bare when plain, else quoted and escaped
/// like a record value.
pub fn escaped(bytes: &[u8]) -> String {
    let mut out = String::new();
    push_escaped(&mut out, bytes);
    out
}

/// A path as given, escaped when it holds anything but printable ASCII.
pub fn display_path(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.iter().all(|b| (0x21..=0x7e).contains(b)) { String::from_utf8_lossy(bytes).into_owned() } else { escaped(bytes) }
}
