//! Tests of resolution: built-in values, `[defaults]` and `[[policy]]` blocks, and which
//! block a session gets.

use std::time::Duration;

use super::{parse, session};
use crate::{Config, IdleAction, OnReauthFailures, ResolvedPolicy};

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// One policy named "hit" with `criteria`, setting idle_timeout to 1h.
fn policy_for(criteria: &str) -> Config {
    parse(&format!("[[policy]]\nname = \"hit\"\nmatch = {{ {criteria} }}\nidle_timeout = \"1h\"\n"))
}

fn hits(config: &Config, s: &super::Session) -> bool {
    config.resolve(&s.facts()).policy_name == "hit"
}

#[test]
fn builtin_values() {
    let p = Config::builtin().resolve(&session().facts());
    assert_eq!(
        p,
        ResolvedPolicy {
            policy_name: "defaults".into(),
            idle_timeout: Some(mins(15)),
            idle_warning: mins(1),
            idle_action: IdleAction::Terminate,
            output_is_activity: false,
            max_session_age: None,
            notty_idle_timeout: None,
            kill_grace: Duration::from_secs(5),
            reauth_window: Some(mins(5)),
            reauth_after_idle: Some(mins(2)),
            sensitive_services: ["sudo", "sudo-i", "su", "su-l", "polkit-1"].map(String::from).to_vec(),
            exempt: false,
            max_inhibit: Some(mins(240)),
            max_inhibit_total: Some(mins(480)),
            on_reauth_failures: OnReauthFailures::Off,
        }
    );
    assert_eq!(Config::builtin().policy_count(), 0);
}

#[test]
fn sensitive_services_are_names_or_globs() {
    let p = Config::builtin().resolve(&session().facts());
    assert!(p.is_sensitive("sudo") && p.is_sensitive("su") && !p.is_sensitive("sshd"));
    let config = parse("[defaults]\nsensitive_services = [\"sudo\", \"vigil-test-*\"]\n");
    let p = config.resolve(&session().facts());
    assert!(p.is_sensitive("vigil-test-sudo-3") && !p.is_sensitive("su"));
}

#[test]
fn empty_file_is_the_builtin_config() {
    let config = parse("");
    assert_eq!(config.policy_count(), 0);
    assert_eq!(config.resolve(&session().facts()), ResolvedPolicy::builtin());
}

#[test]
fn defaults_override_builtins_key_by_key() {
    let config = parse(
        "[defaults]\nidle_timeout = \"30m\"\nidle_action = \"none\"\noutput_is_activity = true\n\
         max_session_age = \"12h\"\nnotty_idle_timeout = \"2h\"\nkill_grace = \"10s\"\n\
         reauth_window = \"1m\"\nreauth_after_idle = \"30s\"\nexempt = true\n",
    );
    let p = config.resolve(&session().facts());
    assert_eq!(p.policy_name, "defaults");
    assert_eq!(p.idle_timeout, Some(mins(30)));
    assert_eq!(p.idle_warning, mins(1), "not set: built-in");
    assert_eq!(p.idle_action, IdleAction::None);
    assert!(p.output_is_activity);
    assert_eq!(p.max_session_age, Some(mins(720)));
    assert_eq!(p.notty_idle_timeout, Some(mins(120)));
    assert_eq!(p.kill_grace, Duration::from_secs(10));
    assert_eq!(p.reauth_window, Some(mins(1)));
    assert_eq!(p.reauth_after_idle, Some(Duration::from_secs(30)));
    assert!(p.exempt);
}

#[test]
fn max_inhibit_is_per_block_and_zero_forbids() {
    let config = parse(
        "[defaults]\nmax_inhibit = \"1h\"\n\n\
         [[policy]]\nname = \"interns\"\nmatch = { users = [\"bob\"] }\nmax_inhibit = \"0\"\n\n\
         [[policy]]\nname = \"dba\"\nmatch = { users = [\"carol\"] }\nmax_inhibit = \"8h\"\n",
    );
    assert_eq!(config.resolve(&session().facts()).max_inhibit, Some(mins(60)), "from [defaults]");
    assert_eq!(config.resolve(&session().user("bob").facts()).max_inhibit, None, "\"0\" forbids");
    assert_eq!(config.resolve(&session().user("carol").facts()).max_inhibit, Some(mins(480)));
    assert_eq!(Config::builtin().resolve(&session().facts()).max_inhibit, Some(mins(240)), "built-in 4h");
}

#[test]
fn on_reauth_failures_is_off_by_default_and_per_block() {
    let config = parse(
        "[defaults]\non_reauth_failures = \"end\"\n\n\
         [[policy]]\nname = \"ops\"\nmatch = { users = [\"bob\"] }\non_reauth_failures = \"off\"\n",
    );
    assert_eq!(config.resolve(&session().facts()).on_reauth_failures, OnReauthFailures::End, "from [defaults]");
    assert_eq!(config.resolve(&session().user("bob").facts()).on_reauth_failures, OnReauthFailures::Off);
    assert_eq!(Config::builtin().resolve(&session().facts()).on_reauth_failures, OnReauthFailures::Off, "built-in off");
    let lock = parse("[defaults]\non_reauth_failures = \"lock\"\n");
    assert_eq!(lock.resolve(&session().facts()).on_reauth_failures, OnReauthFailures::Lock);
}

#[test]
fn max_inhibit_total_is_per_block_and_zero_is_off() {
    let config = parse(
        "[defaults]\nmax_inhibit_total = \"2h\"\n\n\
         [[policy]]\nname = \"batch\"\nmatch = { users = [\"bob\"] }\nmax_inhibit_total = \"0\"\n",
    );
    assert_eq!(config.resolve(&session().facts()).max_inhibit_total, Some(mins(120)), "from [defaults]");
    assert_eq!(config.resolve(&session().user("bob").facts()).max_inhibit_total, None, "\"0\" is no bound");
    assert_eq!(Config::builtin().resolve(&session().facts()).max_inhibit_total, Some(mins(480)), "built-in 8h");
}

#[test]
fn policy_overrides_defaults_which_override_builtins() {
    let config = parse(
        "[defaults]\nidle_timeout = \"30m\"\nkill_grace = \"9s\"\n\n\
         [[policy]]\nname = \"ops\"\nidle_timeout = \"2h\"\n",
    );
    let p = config.resolve(&session().facts());
    assert_eq!(p.policy_name, "ops");
    assert_eq!(p.idle_timeout, Some(mins(120)), "from the policy");
    assert_eq!(p.kill_grace, Duration::from_secs(9), "from [defaults]");
    assert_eq!(p.reauth_window, Some(mins(5)), "built-in");
}

#[test]
fn zero_disables() {
    let config = parse("[defaults]\nidle_timeout = \"0\"\nreauth_window = \"0s\"\nreauth_after_idle = \"0\"\n");
    let p = config.resolve(&session().facts());
    assert_eq!(p.idle_timeout, None);
    assert_eq!(p.reauth_window, None, "always ask");
    assert_eq!(p.reauth_after_idle, None);

    // a policy can switch off what [defaults] switched on, and the reverse
    let config = parse(
        "[defaults]\nmax_session_age = \"8h\"\nidle_timeout = \"0\"\n\
         [[policy]]\nmatch = { users = [\"bob\"] }\nmax_session_age = \"0\"\nidle_timeout = \"5m\"\n",
    );
    let bob = config.resolve(&session().user("bob").facts());
    assert_eq!((bob.max_session_age, bob.idle_timeout), (None, Some(mins(5))));
    let alice = config.resolve(&session().facts());
    assert_eq!((alice.max_session_age, alice.idle_timeout), (Some(mins(480)), None));
}

#[test]
fn first_matching_policy_wins() {
    let config = parse(
        "[[policy]]\nname = \"first\"\nmatch = { users = [\"alice\"] }\nidle_timeout = \"1h\"\n\
         [[policy]]\nname = \"second\"\nmatch = { users = [\"a*\"] }\nidle_timeout = \"2h\"\n\
         [[policy]]\nname = \"catch-all\"\nidle_timeout = \"3h\"\n",
    );
    assert_eq!(config.policy_count(), 3);
    let name = |user: &str| config.resolve(&session().user(user).facts()).policy_name;
    assert_eq!(name("alice"), "first");
    assert_eq!(name("anna"), "second");
    assert_eq!(name("bob"), "catch-all");
    let anna = config.resolve(&session().user("anna").facts());
    assert_eq!(anna.idle_timeout, Some(mins(120)), "only the winner's settings apply");
}

#[test]
fn default_policy_names_count_from_one() {
    let config = parse("[[policy]]\nmatch = { users = [\"x\"] }\n[[policy]]\n");
    assert_eq!(config.resolve(&session().facts()).policy_name, "policy#2");
    assert_eq!(config.resolve(&session().user("x").facts()).policy_name, "policy#1");
}

#[test]
fn no_match_falls_back_to_defaults() {
    let config = policy_for("users = [\"nobody\"]");
    assert_eq!(config.resolve(&session().facts()).policy_name, "defaults");
    assert_eq!(config.resolve(&session().facts()).idle_timeout, Some(mins(15)));
}

#[test]
fn empty_match_matches_everything() {
    for block in
        ["[[policy]]\nname = \"hit\"\n", "[[policy]]\nname = \"hit\"\nmatch = {}\n", "[[policy]]\nname = \"hit\"\n[policy.match]\n"]
    {
        let config = parse(block);
        assert!(hits(&config, &session()), "{block}");
        assert!(hits(&config, &session().tty(false).rhost(None).groups(&[])));
    }
}

#[test]
fn user_globs() {
    let config = policy_for("users = [\"alice\", \"svc-*\", \"op?\"]");
    assert!(hits(&config, &session()));
    assert!(hits(&config, &session().user("svc-backup")));
    assert!(hits(&config, &session().user("op1")));
    assert!(!hits(&config, &session().user("op12")));
    assert!(!hits(&config, &session().user("Alice")), "user names are case-sensitive");
    assert!(!hits(&config, &session().user("svc")));
}

#[test]
fn groups_any_of_the_users_groups() {
    let config = policy_for("groups = [\"ops\", \"adm*\"]");
    assert!(hits(&config, &session().groups(&["users", "ops"])));
    assert!(hits(&config, &session().groups(&["admins"])));
    assert!(!hits(&config, &session().groups(&["users"])));
    assert!(!hits(&config, &session().groups(&[])));
}

#[test]
fn services() {
    let config = policy_for("services = [\"sshd\"]");
    assert!(hits(&config, &session()));
    assert!(!hits(&config, &session().service("login")));
}

#[test]
fn tty_true_and_false() {
    let with = policy_for("tty = true");
    assert!(hits(&with, &session().tty(true)));
    assert!(!hits(&with, &session().tty(false)));
    let without = policy_for("tty = false");
    assert!(hits(&without, &session().tty(false)));
    assert!(!hits(&without, &session().tty(true)));
}

#[test]
fn rhost_cidr_v4_and_v6() {
    let config = policy_for("rhosts = [\"10.0.0.0/8\", \"2001:db8::/32\"]");
    assert!(hits(&config, &session().rhost(Some("10.20.30.40"))));
    assert!(hits(&config, &session().rhost(Some("2001:db8:ab::1"))));
    assert!(!hits(&config, &session().rhost(Some("192.168.1.1"))));
    assert!(!hits(&config, &session().rhost(Some("2001:db9::1"))));
}

#[test]
fn rhost_plain_ip() {
    let config = policy_for("rhosts = [\"192.0.2.10\", \"2001:db8::10\"]");
    assert!(hits(&config, &session().rhost(Some("192.0.2.10"))));
    assert!(hits(&config, &session().rhost(Some("2001:db8:0::10"))));
    assert!(!hits(&config, &session().rhost(Some("192.0.2.11"))));
}

#[test]
fn rhost_hostname_glob_is_case_insensitive() {
    let config = policy_for("rhosts = [\"*.Example.com\"]");
    assert!(hits(&config, &session().rhost(Some("bastion.example.COM"))));
    assert!(!hits(&config, &session().rhost(Some("example.com.evil.org"))));
    assert!(!hits(&config, &session().rhost(Some("10.0.0.1"))));
}

#[test]
fn local_session_never_matches_rhosts() {
    let config = policy_for("rhosts = [\"*\", \"0.0.0.0/0\", \"::/0\"]");
    assert!(hits(&config, &session()));
    assert!(!hits(&config, &session().rhost(None)));
    assert!(!hits(&config, &session().rhost(Some(""))));
}

#[test]
fn all_criteria_must_hold() {
    let config = policy_for("users = [\"alice\"], groups = [\"ops\"], services = [\"sshd\"], tty = true, rhosts = [\"10.0.0.0/8\"]");
    let base = || session().groups(&["ops"]).rhost(Some("10.1.1.1"));
    assert!(hits(&config, &base()));
    assert!(!hits(&config, &base().user("bob")));
    assert!(!hits(&config, &base().groups(&["users"])));
    assert!(!hits(&config, &base().service("su")));
    assert!(!hits(&config, &base().tty(false)));
    assert!(!hits(&config, &base().rhost(Some("192.0.2.1"))));
}

#[test]
fn match_as_sub_table() {
    let config = parse("[[policy]]\nname = \"hit\"\n\n[policy.match]\nusers = [\"alice\"]\ntty = true\n");
    assert!(hits(&config, &session()));
    assert!(!hits(&config, &session().tty(false)));
}

#[test]
fn resolution_is_pure() {
    let config = policy_for("users = [\"alice\"]");
    let s = session();
    assert_eq!(config.resolve(&s.facts()), config.resolve(&s.facts()));
}

#[test]
fn audit_settings_default_and_set() {
    assert_eq!(*Config::builtin().audit(), crate::AuditSettings::default());
    let config = parse("[audit]\nformat = \"json\"\nchain = false\nspool_max_bytes = 4096\n");
    assert_eq!(config.audit().format, crate::AuditFormat::Json);
    assert!(!config.audit().chain);
    assert_eq!(config.audit().spool_max_bytes, 4096);
}

#[test]
fn metrics_settings_default_and_set() {
    let builtin = Config::builtin();
    assert_eq!((builtin.metrics().textfile.as_deref(), builtin.metrics().interval), (None, std::time::Duration::from_secs(30)));
    let config = parse("[metrics]\ntextfile = \"/var/lib/prometheus/node-exporter/vigil.prom\"\ninterval = \"1m\"\n");
    assert_eq!(config.metrics().textfile.as_deref(), Some(std::path::Path::new("/var/lib/prometheus/node-exporter/vigil.prom")));
    assert_eq!(config.metrics().interval, std::time::Duration::from_secs(60));
    assert_eq!(parse("[metrics]\ntextfile = \"/run/vigil.prom\"\n").metrics().interval, std::time::Duration::from_secs(30));
}
