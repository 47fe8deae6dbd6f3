//! The warning vigild writes on a session's terminals before ending it.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use vigil_protocol::time::human;

use crate::supervise::idle::Limit;
use crate::sys::ttys::{self, TtyNr};

/// The text, with CR LF so that it reads right in raw mode (vim, less) too.
pub fn text(limit: Limit, idle_for: Duration, left: Duration, max_age: Option<Duration>) -> String {
    match limit {
        Limit::Idle => format!(
            "\r\n\x07*** vigil: no input on this session for {}. It will be ended in {} unless you press a key. ***\r\n",
            human(idle_for),
            human(left)
        ),
        Limit::MaxAge => format!(
            "\r\n\x07*** vigil: this session reaches its maximum age of {}. It will be ended in {}. ***\r\n",
            human(max_age.unwrap_or_default()),
            human(left)
        ),
    }
}

/// Writes `text` on every tty; returns on how many it was written. Non-blocking: a
/// terminal that does not drain (a stopped ssh client) never holds up vigild.
pub fn write_to_ttys(ttys: &BTreeSet<TtyNr>, text: &str) -> usize {
    ttys.iter()
        .filter_map(|&t| ttys::device_path(t))
        .filter(|path| {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
                .open(path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .is_ok()
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_says_how_long_and_how_to_stay() {
        let t = text(Limit::Idle, Duration::from_secs(840), Duration::from_secs(60), None);
        assert!(t.contains("no input on this session for 14m"), "{t}");
        assert!(t.contains("ended in 1m unless you press a key"), "{t}");
        let t = text(Limit::MaxAge, Duration::ZERO, Duration::from_secs(30), Some(Duration::from_secs(43200)));
        assert!(t.contains("maximum age of 12h") && t.contains("ended in 30s"), "{t}");
    }
}
