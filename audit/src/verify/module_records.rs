//! Records tagged `pam_vigil`: the PAM module writes them itself when it cannot reach
//! vigild, so they carry no mac, and any local user can write one (`logger -t pam_vigil
//! -p authpriv.err 'event=daemon_unreachable ...'`). `verify` lists them as warnings:
//! they prove nothing, and `--strict` fails on them.

use std::fmt::Write as _;

use super::{Location, MAX_FINDINGS_PER_KIND};
use crate::display::escaped;
use crate::timeline::parse_record;

/// One `pam_vigil` record, as read (values raw: escape before printing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRecord {
    pub at: Location,
    pub host: String,
    /// `None` when the line starts like a record but does not parse as one.
    pub event: Option<Vec<u8>>,
    /// The `session=` it names, if any.
    pub session: Option<u64>,
}

/// Every `pam_vigil` record of the files: counted, the first ones listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleRecords {
    listed: Vec<ModuleRecord>,
    count: u64,
}

impl ModuleRecords {
    pub(super) fn add(&mut self, at: Location, host: &str, message: &str) {
        self.count = self.count.saturating_add(1);
        if self.listed.len() >= MAX_FINDINGS_PER_KIND {
            return;
        }
        let record = parse_record(message);
        let session = record.as_ref().and_then(|(_, fields)| {
            let value = fields.get("session")?;
            std::str::from_utf8(value).ok()?.parse().ok()
        });
        self.listed.push(ModuleRecord { at, host: host.to_string(), event: record.map(|(name, _)| name), session });
    }

    /// How many (listed or not).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The first [`MAX_FINDINGS_PER_KIND`], in file order.
    pub fn listed(&self) -> &[ModuleRecord] {
        &self.listed
    }

    /// The warning block of the report; nothing when there is none.
    pub(super) fn render(&self, out: &mut String, place: impl Fn(Location) -> String) {
        if self.count == 0 {
            return;
        }
        let _ = writeln!(
            out,
            "unauthenticated records (tag pam_vigil, no mac: written by the PAM module when it cannot reach vigild, or by anyone with logger):"
        );
        for record in &self.listed {
            let event = record.event.as_deref().map_or_else(|| "(not a readable record)".to_string(), escaped);
            let session = record.session.map(|id| format!(" session={id}")).unwrap_or_default();
            let _ = writeln!(out, "  {}: warning: {event}{session} host={}", place(record.at), escaped(record.host.as_bytes()));
        }
        let unlisted = self.count.saturating_sub(self.listed.len() as u64);
        if unlisted > 0 {
            let _ = writeln!(out, "  warning: ... and {unlisted} more unauthenticated records, not listed");
        }
    }

    /// `2 unauthenticated pam_vigil records`, for the result line.
    pub(super) fn summary(&self) -> String {
        format!("{} unauthenticated pam_vigil record{}", self.count, if self.count == 1 { "" } else { "s" })
    }
}
