//! A policy's `match` criteria: what they accept in the file and how they match a
//! session.
//!
//! All criteria present must hold; within one list any entry may match; an absent
//! criterion matches anything.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use wildmatch::WildMatch;

use crate::values::deserialize_str_with;

/// What is known about a session when its policy is chosen.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    pub user: &'a str,
    /// Every group of the user (primary and supplementary), by name.
    pub groups: &'a [String],
    /// The PAM service (`sshd`, `login`, ...).
    pub service: &'a str,
    pub has_tty: bool,
    /// `PAM_RHOST`: an address or a host name; `None` (or empty) for a local login.
    pub rhost: Option<&'a str>,
}

/// The `match` table of a `[[policy]]` block, compiled.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Criteria {
    users: Option<NonEmpty<Glob>>,
    groups: Option<NonEmpty<Glob>>,
    services: Option<NonEmpty<Glob>>,
    tty: Option<bool>,
    rhosts: Option<NonEmpty<HostPattern>>,
}

impl Criteria {
    /// No criterion at all (`match = {}` or no `match`): the block matches every session.
    pub(crate) fn is_empty(&self) -> bool {
        let Self { users, groups, services, tty, rhosts } = self;
        users.is_none() && groups.is_none() && services.is_none() && tty.is_none() && rhosts.is_none()
    }

    pub(crate) fn matches(&self, session: &SessionFacts<'_>) -> bool {
        any_glob(&self.users, [session.user])
            && any_glob(&self.groups, session.groups.iter().map(String::as_str))
            && any_glob(&self.services, [session.service])
            && self.tty.is_none_or(|tty| tty == session.has_tty)
            && self
                .rhosts
                .as_ref()
                .is_none_or(|patterns| RemoteHost::parse(session.rhost).is_some_and(|host| patterns.0.iter().any(|p| p.matches(&host))))
    }
}

/// An absent list matches; a present one needs some name to match some glob.
fn any_glob<'n>(list: &Option<NonEmpty<Glob>>, names: impl IntoIterator<Item = &'n str>) -> bool {
    let Some(globs) = list else {
        return true;
    };
    names.into_iter().any(|name| globs.0.iter().any(|glob| glob.matches(name)))
}

/// A list that must have at least one entry: an empty list would match nothing,
/// which is never what the admin meant.
#[derive(Debug, Clone)]
struct NonEmpty<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(deserializer)?;
        if items.is_empty() {
            return Err(serde::de::Error::custom(
                "empty list matches no session; expected at least one entry \
                 (remove the key to match every session)",
            ));
        }
        Ok(Self(items))
    }
}

/// A shell-style glob (`*`, `?`) over a user, group or service name; case-sensitive.
#[derive(Debug, Clone)]
struct Glob(WildMatch);

impl Glob {
    fn matches(&self, name: &str) -> bool {
        self.0.matches(name)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_str_with(deserializer, "a string: a name or a glob", |text| {
            if text.is_empty() {
                return Err(r#"empty pattern: expected a name or a glob like "svc-*""#.to_owned());
            }
            Ok(Self(WildMatch::new(text)))
        })
    }
}

/// One `rhosts` entry.
#[derive(Debug, Clone)]
enum HostPattern {
    /// A CIDR block or a plain address (a /32 or /128 block).
    Net(IpNet),
    /// A host name glob, stored lowercase; matched against the lowercased remote host.
    Name(WildMatch),
}

const RHOST_EXAMPLES: &str =
    r#"expected a CIDR block like "10.0.0.0/8" or "2001:db8::/32", an IP address, or a host name glob like "*.example.com""#;

impl HostPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid rhost pattern {text:?}: {why}{RHOST_EXAMPLES}");
        if let Some((addr, prefix)) = text.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| invalid(&format!("{addr:?} is not an IP address; ")))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix =
                prefix.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| invalid(&format!("prefix length must be 0 to {max}; ")))?;
            let net = IpNet::new(addr, prefix).map_err(|_| invalid(""))?;
            return Ok(Self::Net(net.trunc()));
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(addr)));
        }
        let is_name_char = |c: char| c.is_ascii_alphanumeric() || "-._*?".contains(c);
        if text.is_empty() || !text.chars().all(is_name_char) {
            return Err(invalid(""));
        }
        Ok(Self::Name(WildMatch::new(&text.to_ascii_lowercase())))
    }

    fn matches(&self, host: &RemoteHost) -> bool {
        match self {
            Self::Net(net) => host.addr.is_some_and(|addr| net.contains(&addr)),
            Self::Name(glob) => glob.matches(&host.lowercase),
        }
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expecting = "a string: a CIDR block, an IP address or a host name glob";
        deserialize_str_with(deserializer, expecting, Self::parse)
    }
}

/// The session's remote host as PAM reports it (`PAM_RHOST`): an address or a name.
struct RemoteHost {
    lowercase: String,
    addr: Option<IpAddr>,
}

impl RemoteHost {
    /// `None` for a local session (no remote host, or an empty one).
    fn parse(rhost: Option<&str>) -> Option<Self> {
        let text = rhost?.trim();
        if text.is_empty() {
            return None;
        }
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        let bare = bare.split_once('%').map_or(bare, |(addr, _zone)| addr);
        let addr = bare.parse::<IpAddr>().ok().map(|addr| match addr {
            // sshd on a dual-stack socket may report IPv4 peers as ::ffff:a.b.c.d
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            IpAddr::V4(_) => addr,
        });
        Some(Self { lowercase: text.to_ascii_lowercase(), addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(pattern: &str, rhost: Option<&str>) -> bool {
        let pattern = HostPattern::parse(pattern).unwrap();
        RemoteHost::parse(rhost).is_some_and(|h| pattern.matches(&h))
    }

    #[test]
    fn cidr_v4_and_v6() {
        assert!(host("10.0.0.0/8", Some("10.1.2.3")));
        assert!(!host("10.0.0.0/8", Some("11.1.2.3")));
        assert!(host("10.1.2.3/8", Some("10.200.0.1")), "host bits are ignored");
        assert!(host("2001:db8::/32", Some("2001:db8:1::5")));
        assert!(host("2001:db8::/32", Some("[2001:db8::1]")));
        assert!(!host("2001:db8::/32", Some("2001:db9::1")));
        assert!(host("10.0.0.0/8", Some("::ffff:10.9.9.9")), "v4-mapped v6");
        assert!(host("fe80::/10", Some("fe80::1%eth0")), "zone id stripped");
        assert!(host("0.0.0.0/0", Some("192.0.2.1")));
    }

    #[test]
    fn plain_addresses() {
        assert!(host("192.0.2.7", Some("192.0.2.7")));
        assert!(!host("192.0.2.7", Some("192.0.2.8")));
        assert!(host("2001:db8::7", Some("2001:DB8::7")));
    }

    #[test]
    fn host_name_globs_ignore_case() {
        assert!(host("*.example.com", Some("Web1.EXAMPLE.com")));
        assert!(host("*.Example.COM", Some("web1.example.com")));
        assert!(!host("*.example.com", Some("example.org")));
        assert!(!host("*.example.com", Some("10.0.0.1")));
        assert!(host("*", Some("10.0.0.1")));
        assert!(host("10.0.0.*", Some("10.0.0.1")), "a glob also sees the text of an address");
    }

    #[test]
    fn local_sessions_never_match_rhosts() {
        assert!(!host("*", None));
        assert!(!host("*", Some("")));
        assert!(!host("0.0.0.0/0", None));
    }

    #[test]
    fn bad_patterns() {
        for bad in ["10.0.0.0/99", "10.0.0.0/", "10.0.0.300/8", "2001:db8::/129", "a b", "", "ex[am]ple", "::1/x", "host:22"] {
            let err = HostPattern::parse(bad).unwrap_err();
            assert!(err.starts_with(&format!("invalid rhost pattern {bad:?}: ")), "{err}");
            assert!(err.ends_with(RHOST_EXAMPLES), "{err}");
        }
        assert!(HostPattern::parse("10.0.0.0/99").unwrap_err().contains("prefix length must be 0 to 32"));
    }
}
