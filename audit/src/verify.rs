//! `vigilctl audit verify`: checks the hash chain of vigild's records in syslog files.
//!
//! Files are streamed line by line (never held whole). Only lines tagged `vigild` are
//! chained; `pam_vigil` records (the module's own, without a mac) are warnings: listed
//! with their lines as unauthenticated, failing only `--strict` ([`Report::passes`]). For each sealed
//! record the mac is recomputed with the key of the chain it claims to belong to; the
//! authentic records then give the chain: per host, seq must go up by exactly one in file
//! order (files in the order given) and `prev=` must match the mac of the record before.
//!
//! What is reported, each finding with `FILE:LINE`: records that do not verify (edited
//! or forged), missing seqs, records out of order, duplicate seqs, `prev` mismatches,
//! records no given key covers, records without a mac, lines tagged `vigild` that are not
//! records, and records sealed with a key the chain had already left. Notes (not
//! failures): where records may be missing after the last one, seqs vigild itself
//! reported as dropped (`records_dropped`), a new key, a new chain. An exact copy of
//! one of a host's last records (RELP and other forwarding that delivers at least once
//! send a record again when its acknowledgement was lost) is skipped and counted per
//! host ([`crate::duplicates`]).
//!
//! Hostile input: every line may have been written by any local user (`logger -t
//! vigild ...`). Nothing here panics on input, memory stays bounded by the number of
//! genuine gaps and hosts, and key derivation has a work budget so that a forged
//! `seq=4000000000` cannot keep the verifier busy for an hour.

// Nested `if let`s: let chains need Rust 1.88, the workspace declares 1.85.
#![allow(clippy::collapsible_if)]

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use vigil_protocol::events::Event;

use crate::chain::KeyFile;
use crate::display::display_path;
use crate::syslog_line::for_each_line;

mod host_chain;
mod keys;
mod module_records;
mod placement;
mod report;
mod sealed;
mod verifier;

pub use module_records::{ModuleRecord, ModuleRecords};
pub use report::{FileStats, Finding, FindingKind, HostReport, Location, Report, VerifiedRange};

use verifier::Verifier;

/// The tag of vigild's records (chained).
pub const DAEMON_TAG: &str = "vigild";
/// The tag of the PAM module's records (not chained).
pub const MODULE_TAG: &str = "pam_vigil";
/// Events after which nothing is expected: the chain's end is known.
pub const END_EVENTS: [Event; 2] = [Event::Seal, Event::DaemonStop];
/// Events that start a run (or mark a point): a gap just before one of them means the
/// end of the previous run was cut.
pub const RUN_START_EVENTS: [Event; 2] = [Event::DaemonStart, Event::Seal];

/// Key evolutions allowed up front (a file may start far into a chain: rotated logs).
pub const WORK_BASE: u64 = 1 << 24;
/// Key evolutions added to the budget per line read.
pub const WORK_PER_LINE: u64 = 16;
/// Detailed findings kept per host and kind; more are counted.
pub const MAX_FINDINGS_PER_KIND: usize = 200;
/// Hosts followed at once; lines of further hosts are reported, not checked.
pub const MAX_HOSTS: usize = 4096;

/// Verifies the chains in `paths` (read in that order) with `keys`.
pub fn verify_files(paths: &[PathBuf], keys: &[KeyFile]) -> io::Result<Report> {
    let mut inputs = Vec::with_capacity(paths.len());
    for path in paths {
        let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", display_path(path))))?;
        inputs.push((path.clone(), BufReader::with_capacity(256 * 1024, file)));
    }
    verify_readers(inputs, keys)
}

/// Like [`verify_files`], from readers (each with the name to report).
pub fn verify_readers<R: BufRead>(inputs: Vec<(PathBuf, R)>, keys: &[KeyFile]) -> io::Result<Report> {
    verify_readers_limited(inputs, keys, WORK_BASE)
}

/// Like [`verify_readers`] with another up-front work budget (key evolutions; the fuzz
/// target uses a small one to stay fast).
pub fn verify_readers_limited<R: BufRead>(inputs: Vec<(PathBuf, R)>, keys: &[KeyFile], work_base: u64) -> io::Result<Report> {
    let mut verifier = Verifier::new(keys);
    verifier.budget = work_base;
    run(verifier, inputs)
}

/// Like [`verify_readers`], remembering `window` records per host for recognising
/// copies (tests: a copy out of the window).
#[cfg(test)]
pub(crate) fn verify_readers_window<R: BufRead>(inputs: Vec<(PathBuf, R)>, keys: &[KeyFile], window: usize) -> io::Result<Report> {
    let mut verifier = Verifier::new(keys);
    verifier.window = window;
    run(verifier, inputs)
}

fn run<R: BufRead>(mut verifier: Verifier, inputs: Vec<(PathBuf, R)>) -> io::Result<Report> {
    for (index, (path, reader)) in inputs.into_iter().enumerate() {
        verifier.files.push(FileStats { path, ..FileStats::default() });
        let read = for_each_line(reader, |line, text, cut| verifier.line(index, line, text, cut))?;
        if let Some(stats) = verifier.files.get_mut(index) {
            stats.lines = read.lines;
            stats.overlong = read.overlong;
        }
    }
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests;
