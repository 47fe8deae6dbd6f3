//! The audit trail, vigild's side: the writer that chains every record and sends it to
//! syslog (spooling what syslog cannot take), and the records written about sessions.

pub mod audit_log;
pub mod records;
