//! Module arguments from the `/etc/pam.d` line.

use std::path::PathBuf;
use std::time::Duration;

pub use vigil_protocol::Target;

/// What a failed registration does to the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Let the login proceed (the default: a daemon outage must not lock admins out).
    Open,
    /// Refuse the session.
    Closed,
}

impl FailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    pub target: Target,
    /// Deadline for the whole exchange with vigild (connect, authenticate, call).
    pub timeout: Duration,
    pub fail: FailMode,
    /// Socket of the syslog daemon for the module's own records.
    pub syslog_socket: PathBuf,
    pub debug: bool,
    /// auth: answer re-authentication for a sensitive service (`reauth`).
    pub reauth: bool,
    /// auth: the line the stack reaches only after a failed password (`authfail`).
    pub authfail: bool,
    /// Where vigild keeps user locks (`locks=DIR`), read in the account stage.
    pub locks: PathBuf,
    /// PAM services whose sessions are not login sessions (`ignore_services=a,b`, added
    /// to `systemd-user`): their hooks return before any daemon call.
    pub ignore_services: Vec<String>,
    /// Arguments that were not understood; reported once per call, never fatal
    /// (a typo must not lock anyone out).
    pub unknown: Vec<String>,
    /// Arguments understood but not used as written, with what is used instead (a
    /// timeout over the maximum, a `fail=` contradicted on the same line); reported
    /// like the unknown ones.
    pub overridden: Vec<(String, String)>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// A deadline above this is refused: a login must never wait longer on vigild.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// Every user's `systemd --user` manager opens a PAM session (service `systemd-user`,
/// through common-session-noninteractive): it is no login, as pam_systemd knows.
pub const ALWAYS_IGNORED: &str = "systemd-user";
/// More names than this in `ignore_services` are reported and dropped: the list is
/// scanned on every session hook.
pub const MAX_IGNORED: usize = 32;

impl Default for ModuleArgs {
    fn default() -> Self {
        Self {
            target: Target::default(),
            timeout: DEFAULT_TIMEOUT,
            fail: FailMode::Open,
            syslog_socket: PathBuf::from("/dev/log"),
            debug: false,
            reauth: false,
            authfail: false,
            locks: PathBuf::from(vigil_protocol::lock::DEFAULT_LOCK_DIR),
            ignore_services: vec![ALWAYS_IGNORED.to_string()],
            unknown: Vec::new(),
            overridden: Vec::new(),
        }
    }
}

impl ModuleArgs {
    /// Parses the arguments PAM hands the module. Bad values are kept as `unknown`
    /// and the default stays in force. A timeout over [`MAX_TIMEOUT`] is capped to it.
    /// `fail=closed` anywhere on the line wins over `fail=open` (the rule the panic
    /// path, which cannot trust this parser, applies too: `lib.rs`).
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut parsed = Self::default();
        let mut fail_args: Vec<String> = Vec::new();
        for raw in args {
            let arg = String::from_utf8_lossy(raw);
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg.as_ref(), None),
            };
            let understood = match (key, value) {
                ("socket", Some(v)) if v.starts_with('/') => {
                    parsed.target = Target::Socket(PathBuf::from(v));
                    true
                }
                ("bus", Some(v)) if !v.is_empty() => {
                    parsed.target = Target::Bus(v.to_string());
                    true
                }
                ("timeout", Some(v)) => match humantime::parse_duration(v) {
                    Ok(d) if !d.is_zero() && d <= MAX_TIMEOUT => {
                        parsed.timeout = d;
                        true
                    }
                    Ok(d) if d > MAX_TIMEOUT => {
                        parsed.timeout = MAX_TIMEOUT;
                        parsed.overridden.push((arg.to_string(), format!("timeout={}", humantime::format_duration(MAX_TIMEOUT))));
                        true
                    }
                    _ => false,
                },
                ("fail", Some(mode @ ("open" | "closed"))) => {
                    if parsed.fail != FailMode::Closed {
                        parsed.fail = if mode == "closed" { FailMode::Closed } else { FailMode::Open };
                    }
                    fail_args.push(arg.to_string());
                    true
                }
                ("syslog", Some(v)) if v.starts_with('/') => {
                    parsed.syslog_socket = PathBuf::from(v);
                    true
                }
                ("locks", Some(v)) if v.starts_with('/') => {
                    parsed.locks = PathBuf::from(v);
                    true
                }
                ("debug", None) => {
                    parsed.debug = true;
                    true
                }
                ("reauth", None) => {
                    parsed.reauth = true;
                    true
                }
                ("authfail", None) => {
                    parsed.authfail = true;
                    true
                }
                ("ignore_services", Some(v)) => {
                    let names: Vec<&str> = v.split(',').filter(|n| !n.is_empty()).collect();
                    let fits = parsed.ignore_services.len() + names.len() <= MAX_IGNORED;
                    if fits {
                        parsed.ignore_services.extend(names.into_iter().map(str::to_string));
                    }
                    fits
                }
                _ => false,
            };
            if !understood {
                parsed.unknown.push(arg.into_owned());
            }
        }
        let used = format!("fail={}", parsed.fail.as_str());
        for arg in fail_args.into_iter().filter(|a| *a != used) {
            parsed.overridden.push((arg, used.clone()));
        }
        parsed
    }

    /// Whether the session hooks step aside for this PAM service: plain comparisons,
    /// made before anything else (no item but the service read, no daemon call).
    pub fn ignores(&self, service: &[u8]) -> bool {
        self.ignore_services.iter().any(|s| s.as_bytes() == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ModuleArgs {
        ModuleArgs::parse(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn defaults() {
        let a = parse(&[]);
        assert_eq!(a, ModuleArgs::default());
        assert_eq!(a.target, Target::Socket("/run/vigil/private".into()));
        assert_eq!(a.timeout, Duration::from_secs(2));
        assert_eq!(a.fail, FailMode::Open);
    }

    #[test]
    fn all_arguments() {
        let a = parse(&["socket=/tmp/x", "timeout=500ms", "fail=closed", "syslog=/tmp/log", "debug", "locks=/tmp/locks"]);
        assert_eq!(a.locks, PathBuf::from("/tmp/locks"));
        assert_eq!(a.target, Target::Socket("/tmp/x".into()));
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(a.fail, FailMode::Closed);
        assert_eq!(a.syslog_socket, PathBuf::from("/tmp/log"));
        assert!(a.debug && a.unknown.is_empty());
        let b = parse(&["bus=unix:path=/run/dbus/system_bus_socket"]);
        assert_eq!(b.target, Target::Bus("unix:path=/run/dbus/system_bus_socket".into()));
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let a = parse(&["timeout=forever", "timeout=0s", "fail=maybe", "socket=relative", "verbose", "locks=relative"]);
        assert_eq!(a.timeout, DEFAULT_TIMEOUT);
        assert_eq!(a.fail, FailMode::Open);
        assert_eq!(a.locks, PathBuf::from(vigil_protocol::lock::DEFAULT_LOCK_DIR));
        assert_eq!(a.unknown.len(), 6);
    }

    #[test]
    fn a_timeout_over_the_maximum_is_capped_and_reported() {
        let a = parse(&["timeout=60s"]);
        assert_eq!(a.timeout, MAX_TIMEOUT);
        assert!(a.unknown.is_empty());
        assert_eq!(a.overridden, vec![("timeout=60s".to_string(), "timeout=30s".to_string())]);
    }

    #[test]
    fn fail_closed_anywhere_wins_and_the_contradiction_is_reported() {
        for line in [&["fail=open", "fail=closed"][..], &["fail=closed", "fail=open"][..]] {
            let a = parse(line);
            assert_eq!(a.fail, FailMode::Closed, "{line:?}");
            assert_eq!(a.overridden, vec![("fail=open".to_string(), "fail=closed".to_string())], "{line:?}");
        }
        let a = parse(&["fail=open", "fail=open"]);
        assert_eq!(a.fail, FailMode::Open);
        assert!(a.overridden.is_empty());
    }

    #[test]
    fn ignore_services_add_to_systemd_user() {
        let a = parse(&[]);
        assert!(a.ignores(b"systemd-user"));
        assert!(!a.ignores(b"sshd") && !a.ignores(b"") && !a.ignores(b"systemd-user2"));
        let b = parse(&["ignore_services=cron,atd,", "ignore_services=sudo"]);
        assert!(b.unknown.is_empty());
        for service in ["systemd-user", "cron", "atd", "sudo"] {
            assert!(b.ignores(service.as_bytes()), "{service}");
        }
        assert!(!b.ignores(b"login") && !b.ignores(b"cron,atd"));
    }

    #[test]
    fn too_many_ignored_services_are_reported() {
        let many = (0..MAX_IGNORED).map(|i| format!("s{i}")).collect::<Vec<_>>().join(",");
        let a = parse(&[&format!("ignore_services={many}")]);
        assert_eq!(a.unknown.len(), 1);
        assert_eq!(a.ignore_services, vec![ALWAYS_IGNORED.to_string()]);
    }
}
