//! "All audited": vigild's `session_open` and `session_close` lines in the harness's
//! auth.log, counted per session id. The file is read as it grows (from where the last
//! read stopped), since a load run writes hundreds of thousands of lines.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_e2e::LogLine;

/// The whole wait, and how long it may go without a new line.
const MAX_WAIT: Duration = Duration::from_secs(180);
const QUIET_LIMIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(250);

/// auth.log as read so far.
pub struct Trail {
    path: PathBuf,
    offset: u64,
    /// A line not yet ended by its newline.
    partial: Vec<u8>,
    /// Session id → (session_open lines, session_close lines).
    lines: HashMap<u64, (u32, u32)>,
    /// The records `records_dropped` lines say were lost.
    dropped_records: u64,
}

/// What the trail held for one load's session ids.
#[derive(Debug, Clone)]
pub struct AuditCount {
    pub ids: usize,
    /// Ids with exactly one open and one close line.
    pub complete: usize,
    pub missing_open: usize,
    pub missing_close: usize,
    /// Ids with more than one open or close line.
    pub repeated: usize,
    /// From the end of the load until the last id was complete (or the wait gave up).
    pub drain_seconds: f64,
    pub gave_up: bool,
    pub dropped_records: u64,
}

impl AuditCount {
    pub fn complete(&self) -> bool {
        self.complete == self.ids && self.dropped_records == 0
    }

    pub fn describe(&self) -> String {
        let mut text = format!("{} of {} ids", self.complete, self.ids);
        for (n, what) in [(self.missing_open, "no open"), (self.missing_close, "no close"), (self.repeated, "repeated")] {
            if n > 0 {
                text.push_str(&format!(", {n} {what}"));
            }
        }
        if self.dropped_records > 0 {
            text.push_str(&format!(", {} records_dropped", self.dropped_records));
        }
        text.push_str(&format!("; {} {:.1} s after the load", if self.gave_up { "gave up waiting" } else { "all in" }, self.drain_seconds));
        text
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ids": self.ids, "complete": self.complete, "missing_open": self.missing_open,
            "missing_close": self.missing_close, "repeated": self.repeated,
            "drain_seconds": self.drain_seconds, "gave_up": self.gave_up, "records_dropped": self.dropped_records,
        })
    }
}

impl Trail {
    pub fn new(path: PathBuf) -> Trail {
        Trail { path, offset: 0, partial: Vec::new(), lines: HashMap::new(), dropped_records: 0 }
    }

    /// Reads what was appended since the last call; the number of new lines.
    fn read_new(&mut self) -> usize {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return 0 };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return 0;
        }
        let mut bytes = std::mem::take(&mut self.partial);
        let Ok(n) = file.read_to_end(&mut bytes) else { return 0 };
        self.offset += n as u64;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        let text = String::from_utf8_lossy(&bytes);
        let mut count = 0;
        for raw in text.lines() {
            count += 1;
            let line = LogLine::parse(raw);
            if line.tag != "vigild" {
                continue;
            }
            match line.event().as_deref() {
                Some(event @ ("session_open" | "session_close")) => {
                    let Some(id) = line.field("session").and_then(|s| s.parse::<u64>().ok()) else { continue };
                    let entry = self.lines.entry(id).or_default();
                    if event == "session_open" { entry.0 += 1 } else { entry.1 += 1 }
                }
                Some("records_dropped") => {
                    self.dropped_records += line.field("count").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1);
                }
                _ => {}
            }
        }
        count
    }

    fn count(&self, ids: &[u64], drain_seconds: f64, gave_up: bool) -> AuditCount {
        let mut c = AuditCount {
            ids: ids.len(),
            complete: 0,
            missing_open: 0,
            missing_close: 0,
            repeated: 0,
            drain_seconds,
            gave_up,
            dropped_records: self.dropped_records,
        };
        for id in ids {
            let (opens, closes) = self.lines.get(id).copied().unwrap_or_default();
            match (opens, closes) {
                (1, 1) => c.complete += 1,
                _ => {
                    c.missing_open += usize::from(opens == 0);
                    c.missing_close += usize::from(closes == 0);
                    c.repeated += usize::from(opens > 1 || closes > 1);
                }
            }
        }
        c
    }

    /// Reads what has come and forgets the counts: the next load's ids are counted from
    /// here. With two vigilds (one per bus) both hand out the same ids.
    pub fn start_afresh(&mut self) {
        self.read_new();
        self.lines.clear();
    }

    /// Waits until every id has its open and close line (bounded: see [`MAX_WAIT`] and
    /// [`QUIET_LIMIT`]), reading the file as it grows.
    pub fn wait_for(&mut self, ids: &[u64], interrupted: &dyn Fn() -> bool) -> AuditCount {
        let start = Instant::now();
        let mut last_news = Instant::now();
        loop {
            if self.read_new() > 0 {
                last_news = Instant::now();
            }
            let count = self.count(ids, start.elapsed().as_secs_f64(), false);
            if count.complete + count.repeated == count.ids {
                return count;
            }
            if start.elapsed() >= MAX_WAIT || last_news.elapsed() >= QUIET_LIMIT || interrupted() {
                return self.count(ids, start.elapsed().as_secs_f64(), true);
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn line(event: &str, id: u64) -> String {
        format!("Dec  1 10:00:00 vm vigild[7]: event={event} session={id} user=u service=s\n")
    }

    #[test]
    fn counts_each_id_from_a_growing_file_with_a_line_cut_in_two() {
        let path = std::env::temp_dir().join(format!("vigil-bench-trail-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        let mut trail = Trail::new(path.clone());
        let first = format!("{}{}{}", line("session_open", 1), line("session_open", 2), line("session_close", 1));
        // The writer is in the middle of a line when the file is read.
        let cut = line("session_close", 2);
        let (head, tail) = cut.split_at(20);
        write!(file, "{first}{head}").unwrap();
        assert_eq!(trail.read_new(), 3);
        let c = trail.count(&[1, 2], 0.0, false);
        assert_eq!((c.complete, c.missing_open, c.missing_close), (1, 0, 1));
        write!(file, "{tail}{}", line("session_open", 3)).unwrap();
        writeln!(file, "Dec  1 10:00:01 vm pam_vigil[9]: event=session_open session=4").unwrap();
        writeln!(file, "Dec  1 10:00:01 vm vigild[7]: event=records_dropped count=5 where=queue").unwrap();
        write!(file, "{}", line("session_open", 3)).unwrap();
        assert_eq!(trail.read_new(), 5);
        let c = trail.count(&[1, 2, 3, 4], 0.0, false);
        assert_eq!(c.complete, 2, "{c:?}");
        assert_eq!(c.repeated, 1, "id 3 opened twice: {c:?}");
        assert_eq!(c.missing_open, 1, "id 4 was only the module's line: {c:?}");
        assert_eq!(c.dropped_records, 5);
        assert!(!c.complete());
        std::fs::remove_file(&path).unwrap();
    }
}
