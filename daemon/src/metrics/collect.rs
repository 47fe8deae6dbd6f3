//! What one scrape reads: the gauges the registry keeps (`Registry::census`, under its
//! lock, no I/O inside), the counters, the audit writer's tally and vigild's own process, as
//! Prometheus text. The `Metrics` call (root only) and the textfile both use it.

use std::time::UNIX_EPOCH;

use vigil_protocol::VigilError;
use vigil_protocol::events::EndReason;

use crate::metrics::exposition::{Exposition, Type};
use crate::rpc::caller::Caller;
use crate::sessions::manager::{Manager, now_usec};
use crate::sys::procfs;

/// The counters of session ends that have a family of their own (as the issue and
/// `audit report` name them), beside `vigil_session_ends_total{reason}`.
const OWN_END_FAMILIES: [(&str, EndReason, &str); 4] = [
    ("vigil_idle_ends_total", EndReason::Idle, "Sessions ended for idleness (session_end reason=idle) since vigild started."),
    ("vigil_max_age_ends_total", EndReason::MaxAge, "Sessions ended at max_session_age (session_end reason=max_age) since vigild started."),
    (
        "vigil_admin_ends_total",
        EndReason::Admin,
        "Sessions ended by an admin's vigilctl terminate (session_end reason=admin) since vigild started.",
    ),
    (
        "vigil_lock_ends_total",
        EndReason::Lock,
        "Sessions ended because their user was locked (session_end reason=lock) since vigild started.",
    ),
];

impl Manager {
    /// Metrics: root only. The numbers are aggregates, but reading them walks every
    /// session under the registry's lock: an ordinary user calling it in a loop would
    /// hold back every login (and `vigilctl list` shows others' sessions to root only).
    pub fn metrics_call(&self, caller: Caller) -> Result<String, VigilError> {
        self.require_root(&caller, "Metrics")?;
        Ok(self.metrics_text())
    }

    /// The metrics as Prometheus text (version 0.0.4).
    pub fn metrics_text(&self) -> String {
        // The registry keeps the counts: no session is looked at (`Registry::census`).
        let gauges = self.registry().census();
        let counters = &self.metrics;
        let records = self.audit.counts();
        let mut text = Exposition::with_capacity(4096 + 80 * gauges.sessions.len());

        let mut sessions = text.family(
            "vigil_sessions",
            Type::Gauge,
            "Sessions vigild supervises now, by PAM service and whether the session holds a terminal.",
        );
        for ((service, tty), n) in &gauges.sessions {
            sessions.sample(&[("service", service), ("tty", if *tty { "yes" } else { "no" })], n);
        }
        text.single("vigil_inhibitors", Type::Gauge, "Sessions holding an idle inhibitor (vigilctl inhibit) now.", gauges.inhibitors);
        text.single("vigil_locks", Type::Gauge, "Users locked out (vigilctl lock) now.", self.locks.count_in_force(now_usec()));

        text.single(
            "vigil_logins_total",
            Type::Counter,
            "Logins registered by the module (session_open) since vigild started.",
            counters.logins.get(),
        );
        text.single(
            "vigil_adopted_sessions_total",
            Type::Counter,
            "Logins vigild found unregistered and took in (session_adopted) since vigild started.",
            counters.adopted.get(),
        );
        let mut ends = text.family(
            "vigil_session_ends_total",
            Type::Counter,
            "Sessions ended (session_end, session_close) since vigild started, by reason.",
        );
        for reason in EndReason::ALL {
            ends.sample(&[("reason", reason.as_str())], counters.ends(*reason));
        }
        for (name, reason, help) in OWN_END_FAMILIES {
            text.single(name, Type::Counter, help, counters.ends(reason));
        }
        for (name, counter, help) in [
            ("vigil_reauth_asked_total", &counters.reauth_asked, "sudo, su or pkexec told to ask the password (reauth_required)"),
            ("vigil_reauth_granted_total", &counters.reauth_granted, "sudo, su or pkexec let through on a fresh proof (reauth_granted)"),
            ("vigil_reauth_recorded_total", &counters.reauth_recorded, "Passwords typed and accepted (reauth_recorded)"),
            ("vigil_reauth_failed_total", &counters.reauth_failed, "Wrong passwords typed to sudo, su or pkexec (reauth_failed)"),
            (
                "vigil_refused_calls_total",
                &counters.refused_calls,
                "Calls vigild refused (call_refused, with those counted in suppressed=)",
            ),
            (
                "vigil_logins_refused_total",
                &counters.logins_refused,
                "Logins of locked users refused (login_refused, with those counted in suppressed=)",
            ),
        ] {
            let help = format!("{help} since vigild started.");
            text.single(name, Type::Counter, &help, counter.get());
        }
        for (name, value, help) in [
            ("vigil_records_written_total", records.written, "Audit records sent to syslog at once"),
            ("vigil_records_spooled_total", records.spooled, "Audit records spooled while syslog could not take them (sent when it can)"),
            ("vigil_records_dropped_total", records.dropped, "Audit records dropped (spool or queue full; records_dropped says how many)"),
        ] {
            let help = format!("{help} since vigild started.");
            text.single(name, Type::Counter, &help, value);
        }

        if let Some(bytes) = procfs::own_resident_bytes() {
            text.single("vigil_daemon_resident_memory_bytes", Type::Gauge, "vigild's resident memory.", bytes);
        }
        if let Some(fds) = procfs::own_open_fds() {
            text.single("vigil_daemon_open_fds", Type::Gauge, "Descriptors vigild holds.", fds);
        }
        let started = counters.started.duration_since(UNIX_EPOCH).unwrap_or_default();
        text.single(
            "vigil_daemon_start_time_seconds",
            Type::Gauge,
            "When vigild started, seconds since the Unix epoch.",
            format_args!("{}.{:03}", started.as_secs(), started.subsec_millis()),
        );
        text.family("vigil_build_info", Type::Gauge, "vigild's version (the value is 1).")
            .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1);
        text.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rpc::caller::Caller;

    /// The samples of a text: name with labels → value; and each family's HELP and TYPE
    /// line counts.
    fn parse(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, (usize, usize)>) {
        let mut samples = BTreeMap::new();
        let mut families: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                current = rest.split(' ').next().unwrap().to_string();
                families.entry(current.clone()).or_default().0 += 1;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(name, current, "TYPE follows its HELP");
                assert!(kind == "gauge" || kind == "counter", "{line}");
                families.entry(name.to_string()).or_default().1 += 1;
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(series.starts_with(&current), "a sample of {current}'s family: {line}");
                value.parse::<f64>().unwrap_or_else(|_| panic!("a number: {line}"));
                assert!(samples.insert(series.to_string(), value.to_string()).is_none(), "one sample per series: {line}");
            }
        }
        (samples, families)
    }

    #[test]
    fn every_family_once_with_help_and_type_and_counters_that_count() {
        let core = crate::sessions::manager::manager_for_tests();
        let (samples, families) = parse(&core.metrics_text());
        assert!(families.values().all(|&(help, kind)| (help, kind) == (1, 1)), "{families:?}");
        for name in [
            "vigil_sessions",
            "vigil_inhibitors",
            "vigil_locks",
            "vigil_logins_total",
            "vigil_idle_ends_total",
            "vigil_max_age_ends_total",
            "vigil_admin_ends_total",
            "vigil_lock_ends_total",
            "vigil_reauth_asked_total",
            "vigil_reauth_granted_total",
            "vigil_reauth_failed_total",
            "vigil_refused_calls_total",
            "vigil_records_written_total",
            "vigil_records_spooled_total",
            "vigil_records_dropped_total",
            "vigil_daemon_resident_memory_bytes",
            "vigil_daemon_open_fds",
            "vigil_daemon_start_time_seconds",
        ] {
            assert!(families.contains_key(name), "{name} missing");
        }
        assert_eq!(samples["vigil_idle_ends_total"], "0");
        assert_eq!(samples["vigil_session_ends_total{reason=\"idle\"}"], "0");
        assert!(samples["vigil_daemon_resident_memory_bytes"].parse::<u64>().unwrap() > 1 << 20);

        core.metrics.ended(EndReason::Idle);
        core.metrics.ended(EndReason::Idle);
        core.metrics.ended(EndReason::Closed);
        core.metrics.logins.inc();
        // A refused call counts, whoever makes it.
        let user = Caller::new(1000, std::process::id());
        assert!(core.metrics_call(user).is_err());
        let root = Caller::new(0, std::process::id());
        let (samples, _) = parse(&core.metrics_call(root).unwrap());
        assert_eq!(samples["vigil_idle_ends_total"], "2");
        assert_eq!(samples["vigil_session_ends_total{reason=\"idle\"}"], "2");
        assert_eq!(samples["vigil_session_ends_total{reason=\"closed\"}"], "1");
        assert_eq!(samples["vigil_max_age_ends_total"], "0");
        assert_eq!(samples["vigil_logins_total"], "1");
        assert_eq!(samples["vigil_refused_calls_total"], "1");
    }

    #[test]
    fn sessions_by_service_and_tty_and_inhibitors() {
        use crate::sessions::registry::tests::identity;
        use crate::sessions::session::Session;
        let core = crate::sessions::manager::manager_for_tests();
        let policy = std::sync::Arc::new(crate::sessions::manager::policy_for_tests());
        for (id, service, tty) in [(1, "sshd", true), (2, "sshd", false), (3, "cron", false), (4, "sshd", true), (5, "a\"b", false)] {
            let mut who = identity(100 + id as u32, 7 + id as u32);
            who.service = service.into();
            let mut session = Session::new(id, who, policy.clone(), 1);
            if id == 4 {
                session.inhibitor = Some(crate::sessions::inhibit::Inhibitor { since_usec: 1, until_usec: u64::MAX, why: "job".into() });
            }
            core.registry().insert(session);
            if tty {
                core.registry().adopt_tty(id, 34816 + id as u32);
            }
        }
        let (samples, _) = parse(&core.metrics_text());
        let sessions: Vec<(&str, &str)> =
            samples.iter().filter(|(k, _)| k.starts_with("vigil_sessions{")).map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            sessions,
            [
                ("vigil_sessions{service=\"a\\\"b\",tty=\"no\"}", "1"),
                ("vigil_sessions{service=\"cron\",tty=\"no\"}", "1"),
                ("vigil_sessions{service=\"sshd\",tty=\"no\"}", "1"),
                ("vigil_sessions{service=\"sshd\",tty=\"yes\"}", "2"),
            ]
        );
        assert_eq!(samples["vigil_inhibitors"], "1");
    }
}
