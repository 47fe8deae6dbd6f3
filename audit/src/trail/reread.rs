//! Reading a record again from where it was: `audit show` keeps only where each
//! record of a block is (a few bytes), and reads the lines again when it prints the
//! block.
//!
//! A regular file is read again through its open descriptor (`pread`), so a rotation
//! in between does not matter; a stream's record lines were kept in memory by the
//! first read.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::At;
use crate::syslog_line::{MAX_LINE_BYTES, line_text};

/// Files are read again a page at a time, and the pages kept a while: the records of
/// the blocks printed one after the other lie in the same stretch of the file.
const PAGE_BYTES: u64 = 16 * 1024;
const PAGES_KEPT: usize = 512;

pub(crate) enum Data {
    File(File),
    /// The record lines of a stream, each followed by `\n`, as text.
    Memory(Vec<u8>),
    /// A stream whose lines were not kept.
    Gone,
}

struct Source {
    data: Data,
    /// Lines and bytes of the files before this one.
    line_base: u64,
    offset_base: u64,
}

/// The files read, in order.
#[derive(Default)]
pub(crate) struct Sources {
    files: Vec<Source>,
    lines: u64,
    bytes: u64,
}

impl Sources {
    /// Where the next file's lines and bytes start.
    pub(crate) fn bases(&self) -> (u64, u64) {
        (self.lines, self.bytes)
    }

    pub(crate) fn push(&mut self, data: Data, lines: u64, bytes: u64) {
        self.files.push(Source { data, line_base: self.lines, offset_base: self.bytes });
        self.lines += lines;
        self.bytes += bytes;
    }

    /// The file holding `at`, and the line's number and offset in it.
    fn locate(&self, at: At) -> Option<(usize, u64, u64)> {
        // The last file starting at or before the offset (empty files start where the
        // next one does, and come before it).
        let index = self.files.partition_point(|f| f.offset_base <= at.offset).checked_sub(1)?;
        let file = self.files.get(index)?;
        Some((index, at.line.checked_sub(file.line_base)?, at.offset - file.offset_base))
    }
}

/// A line read again: (file, line number in it, text, whether it is longer than the
/// readers keep).
pub(crate) type Found<'a> = (usize, u64, Cow<'a, str>, bool);

/// Reads lines again.
pub(crate) struct Reread<'a> {
    sources: &'a Sources,
    pages: Pages,
    line: Vec<u8>,
}

/// Pages of files by (file, page number), and the order they came in.
#[derive(Default)]
struct Pages {
    kept: HashMap<(usize, u64), Vec<u8>>,
    order: VecDeque<(usize, u64)>,
}

impl<'a> Reread<'a> {
    pub(crate) fn new(sources: &'a Sources) -> Reread<'a> {
        Reread { sources, pages: Pages::default(), line: Vec::new() }
    }

    /// The line at `at`: (file, line number in it, text, whether it is longer than the
    /// readers keep). `None` when it cannot be found (a stream not kept).
    pub(crate) fn line(&mut self, at: At) -> io::Result<Option<Found<'_>>> {
        let Some((index, line, offset)) = self.sources.locate(at) else { return Ok(None) };
        let Some(source) = self.sources.files.get(index) else { return Ok(None) };
        match &source.data {
            Data::Gone => Ok(None),
            Data::Memory(kept) => {
                let Some(rest) = usize::try_from(offset).ok().and_then(|o| kept.get(o..)) else { return Ok(None) };
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                Ok(Some((index, line, String::from_utf8_lossy(&rest[..end]), false)))
            }
            Data::File(file) => {
                let cut = self.copy_line(index, file, offset)?;
                Ok(Some((index, line, line_text(&self.line), cut)))
            }
        }
    }

    /// Copies the line at `offset` into `self.line` (at most the longest kept);
    /// whether it was longer.
    fn copy_line(&mut self, index: usize, file: &File, offset: u64) -> io::Result<bool> {
        self.line.clear();
        let mut page = offset / PAGE_BYTES;
        let mut from = (offset % PAGE_BYTES) as usize;
        loop {
            let bytes = self.pages.get(index, file, page)?;
            let rest = bytes.get(from..).unwrap_or_default();
            let (chunk, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => (&rest[..end], true),
                // A short page is the file's end.
                None => (rest, (bytes.len() as u64) < PAGE_BYTES),
            };
            let room = (MAX_LINE_BYTES + 1).saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if ended || self.line.len() > MAX_LINE_BYTES {
                break;
            }
            page += 1;
            from = 0;
        }
        let cut = self.line.len() > MAX_LINE_BYTES;
        self.line.truncate(MAX_LINE_BYTES);
        Ok(cut)
    }
}

impl Pages {
    fn get(&mut self, index: usize, file: &File, page: u64) -> io::Result<&[u8]> {
        let key = (index, page);
        if !self.kept.contains_key(&key) {
            let mut bytes = if self.order.len() >= PAGES_KEPT {
                self.order.pop_front().and_then(|old| self.kept.remove(&old)).unwrap_or_default()
            } else {
                Vec::new()
            };
            bytes.resize(PAGE_BYTES as usize, 0);
            let mut filled = 0;
            while filled < bytes.len() {
                match file.read_at(&mut bytes[filled..], page * PAGE_BYTES + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            bytes.truncate(filled);
            self.kept.insert(key, bytes);
            self.order.push_back(key);
        }
        Ok(self.kept.get(&key).map(Vec::as_slice).unwrap_or_default())
    }
}

/// Where a block's records are, while it takes records: LEB128 deltas of line and
/// offset, a few bytes each. The position last added is the caller's to keep.
#[derive(Default)]
pub(crate) struct Positions {
    bytes: Vec<u8>,
}

impl Positions {
    /// Adds `at`, which follows `last`, the position added before it (if any).
    pub(crate) fn push(&mut self, at: At, last: Option<At>) {
        let (line, offset) = match last {
            Some(last) => (at.line.saturating_sub(last.line), at.offset.saturating_sub(last.offset)),
            None => (at.line, at.offset),
        };
        push_varint(&mut self.bytes, line);
        push_varint(&mut self.bytes, offset);
    }
}

/// Where a finished block's records are: its [`Positions`], moved into one buffer with
/// every other finished block's, so that a million blocks are not a million
/// allocations.
#[derive(Default)]
pub(crate) struct Stored {
    bytes: Vec<u8>,
}

/// A block's positions in [`Stored`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    start: usize,
    len: usize,
}

impl Span {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Stored {
    pub(crate) fn keep(&mut self, positions: Positions) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&positions.bytes);
        Span { start, len: positions.bytes.len() }
    }

    pub(crate) fn iter(&self, span: Span) -> impl Iterator<Item = At> + '_ {
        let mut rest = self.bytes.get(span.start..span.start + span.len).unwrap_or_default();
        let mut at = At { line: 0, offset: 0 };
        std::iter::from_fn(move || {
            let line = take_varint(&mut rest)?;
            let offset = take_varint(&mut rest)?;
            at = At { line: at.line + line, offset: at.offset + offset };
            Some(at)
        })
    }
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
