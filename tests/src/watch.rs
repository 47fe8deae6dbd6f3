//! [`ProcWatch`]: a thread that samples one process's descriptor count and resident
//! memory from `/proc` at a fixed interval, so that a test or benchmark can assert the
//! peak a daemon reached during an attack, not only where it ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::procfs::{fd_count, rss_kib};

/// What the watch saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peaks {
    pub samples: u64,
    pub max_fds: usize,
    pub max_rss_kib: u64,
    /// Samples in which the process could not be read (it had exited).
    pub missed: u64,
}

pub struct ProcWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Peaks>>,
}

impl ProcWatch {
    /// Samples `pid` every `interval` until [`ProcWatch::stop`] or `max_span`, whichever
    /// comes first (a bound on the thread's life if a test forgets to stop it).
    pub fn start(pid: u32, interval: Duration, max_span: Duration) -> ProcWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let interval = interval.max(Duration::from_millis(1));
        let rounds = max_span.as_micros() / interval.as_micros() + 1;
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            let start = Instant::now();
            for _ in 0..rounds {
                if flag.load(Ordering::SeqCst) || start.elapsed() >= max_span {
                    break;
                }
                match (fd_count(pid), rss_kib(pid)) {
                    (Some(fds), Some(rss)) => {
                        peaks.samples += 1;
                        peaks.max_fds = peaks.max_fds.max(fds);
                        peaks.max_rss_kib = peaks.max_rss_kib.max(rss);
                    }
                    _ => peaks.missed += 1,
                }
                std::thread::sleep(interval);
            }
            peaks
        });
        ProcWatch { stop, thread: Some(thread) }
    }

    /// Stops sampling and returns the peaks.
    pub fn stop(mut self) -> Peaks {
        self.finish()
    }

    fn finish(&mut self) -> Peaks {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for ProcWatch {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_its_own_process() {
        let watch = ProcWatch::start(std::process::id(), Duration::from_millis(2), Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(30));
        let peaks = watch.stop();
        assert!(peaks.samples >= 2, "{peaks:?}");
        assert!(peaks.max_fds >= 3 && peaks.max_rss_kib > 0, "{peaks:?}");
    }

    #[test]
    fn ends_by_itself_after_its_span() {
        let watch = ProcWatch::start(std::process::id(), Duration::from_millis(1), Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(60));
        assert!(watch.thread.as_ref().is_some_and(|t| t.is_finished()));
    }
}
