//! Following one file as it grows, like `tail -F`: complete lines only, through a
//! logrotate-style rename and a copytruncate.
//!
//! The file is looked at when the caller asks (polling, every [`super::POLL_INTERVAL`])
//! rather than woken by inotify: a trail gains a few lines a second at most, a poll
//! costs two `stat`s and a `read`, and polling sees the same things on every file
//! system (NFS, overlays) and through every kind of rotation without a watch on the
//! directory to keep in step with renames.
//!
//! Memory is bounded whatever the file does: one read buffer and the line being read,
//! of which at most [`MAX_LINE_BYTES`] are kept (the readers' own bound: a longer line is
//! never a record).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::display::display_path;
use crate::syslog_line::{MAX_LINE_BYTES, line_text};

/// What one `read` asks for.
const READ_CHUNK: usize = 64 * 1024;

/// The line being read, until its line break arrives: a writer (rsyslog) may be in the
/// middle of it.
#[derive(Default)]
struct PendingLine {
    /// Its first [`MAX_LINE_BYTES`] bytes.
    bytes: Vec<u8>,
    /// More than that came; the rest was dropped.
    cut: bool,
}

impl PendingLine {
    fn push(&mut self, chunk: &[u8]) {
        let room = MAX_LINE_BYTES - self.bytes.len();
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.cut = true;
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.cut
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.cut = false;
    }
}

/// A file followed by its path: the file open now, how far it was read, and the line
/// not finished yet.
pub(crate) struct Tail {
    path: PathBuf,
    file: File,
    /// (device, inode) of `file`: the path naming another one means a rotation.
    identity: (u64, u64),
    /// Bytes of `file` read so far.
    offset: u64,
    /// Lines of `file` handed out so far.
    lines: u64,
    pending: PendingLine,
    buffer: Vec<u8>,
}

/// Opens `path` if it is a regular file, with its identity.
fn open_regular(path: &Path) -> io::Result<(File, (u64, u64))> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", display_path(path)));
    let file = File::open(path).map_err(named)?;
    let meta = file.metadata().map_err(named)?;
    if !meta.is_file() {
        return Err(named(io::Error::new(io::ErrorKind::InvalidInput, "--follow needs a regular file")));
    }
    Ok((file, (meta.dev(), meta.ino())))
}

impl Tail {
    /// Opens `path` (a regular file) to follow it from its start.
    pub(crate) fn open(path: &Path) -> io::Result<Tail> {
        let (file, identity) = open_regular(path)?;
        Ok(Tail {
            path: path.to_path_buf(),
            file,
            identity,
            offset: 0,
            lines: 0,
            pending: PendingLine::default(),
            buffer: vec![0; READ_CHUNK],
        })
    }

    /// Reads what was written since the last call, at most about `budget` bytes, and
    /// hands each complete line to `each` (its number in its file, its text without the
    /// line break, whether it was cut). Returns true when it read all there was (the
    /// caller may pause before the next call), false when the budget ran out first.
    ///
    /// Once the open file is read to its end, the path is looked at. When it names
    /// another file that has something in it (the open one was renamed and the writer
    /// reopened the path and wrote there) and a call found nothing new in the open file,
    /// the open file's last line is handed out even without a line break (nothing more
    /// will come to it, and `show` reads a file's last line so too) and the new file is
    /// read from its start. Until then the open file is kept: between logrotate's rename
    /// (and `create`) and its postrotate HUP the writer still appends to it.
    pub(crate) fn poll(&mut self, budget: usize, each: &mut impl FnMut(u64, &str, bool)) -> io::Result<bool> {
        self.check_truncated()?;
        let (read, at_end) = self.read_available(budget, each)?;
        if !at_end || read > 0 || !self.rotated() {
            return Ok(at_end);
        }
        let Ok((file, identity)) = open_regular(&self.path) else {
            // Gone again, or not a file we may read: keep the open one and look again.
            return Ok(true);
        };
        self.finish_line(each);
        self.file = file;
        self.identity = identity;
        self.offset = 0;
        self.lines = 0;
        let (_, at_end) = self.read_available(budget, each)?;
        Ok(at_end)
    }

    /// copytruncate: the open file is now shorter than what was read, so it was emptied
    /// (and maybe written again): read it from its start. The unfinished line went with
    /// what was cut away and is dropped. A file emptied and refilled past the old length
    /// between two polls cannot be told from one that grew (as with `tail -F`).
    fn check_truncated(&mut self) -> io::Result<()> {
        if self.file.metadata()?.len() < self.offset {
            self.file.seek(SeekFrom::Start(0))?;
            self.offset = 0;
            self.lines = 0;
            self.pending.clear();
        }
        Ok(())
    }

    /// The path names a regular file other than the open one, and it is not empty. A
    /// missing path (renamed, the new file not created yet) or an empty new file (created
    /// by logrotate, the writer not told yet) is no rotation yet: the open file is kept.
    fn rotated(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|meta| meta.is_file() && meta.len() > 0 && (meta.dev(), meta.ino()) != self.identity)
    }

    /// Reads until the end of the open file or until `budget` bytes were read; returns
    /// the bytes read and whether the end was reached.
    fn read_available(&mut self, budget: usize, each: &mut impl FnMut(u64, &str, bool)) -> io::Result<(usize, bool)> {
        let mut read = 0;
        while read < budget {
            let n = match self.file.read(&mut self.buffer) {
                Ok(0) => return Ok((read, true)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", display_path(&self.path)))),
            };
            read += n;
            self.offset += n as u64;
            let mut rest = &self.buffer[..n];
            while let Some(end) = rest.iter().position(|&b| b == b'\n') {
                self.pending.push(&rest[..end]);
                self.lines += 1;
                each(self.lines, &line_text(&self.pending.bytes), self.pending.cut);
                self.pending.clear();
                rest = &rest[end + 1..];
            }
            self.pending.push(rest);
        }
        Ok((read, false))
    }

    /// The open file's last line, without its line break.
    fn finish_line(&mut self, each: &mut impl FnMut(u64, &str, bool)) {
        if !self.pending.is_empty() {
            self.lines += 1;
            each(self.lines, &line_text(&self.pending.bytes), self.pending.cut);
            self.pending.clear();
        }
    }

    /// The line being read, and the bytes kept of it (for tests).
    #[cfg(test)]
    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending.bytes.len()
    }
}

#[cfg(test)]
mod tests;
