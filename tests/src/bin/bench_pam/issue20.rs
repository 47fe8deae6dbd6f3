//! `bench_pam --account` (issue 20): what the account stage's lock check costs. Each
//! variant is a pam_host run of `pam_host --account` (one pam_start, then N calls of
//! pam_acct_mgmt on the one handle, each timed alone, then pam_end), so pam_start and
//! pam_end are outside the times:
//!
//! - `account required pam_permit.so` (the baseline),
//! - the same followed by `account [perm_denied=die default=ignore] pam_vigil.so ...`
//!   (the harness's arguments, `locks=` its vigild's lock directory) for an unlocked
//!   user with vigild up; the same with PAM_RUSER set to a second user, as su sets it
//!   (two NSS lookups and two failed opens instead of one each); the same with vigild
//!   stopped; and for a locked user (vigild up: the module tells the user, and calls
//!   vigild's RecordLoginRefused).
//!
//! pam_host runs as root, so the real uid (0) is never checked; the items are those
//! sshd sets (PAM_USER, PAM_TTY, PAM_RHOST). The variants run interleaved, in rounds
//! of alternating order; vigild is stopped before each "vigild down" run and started
//! again before the next run that needs it (at most once per round). Every call must return
//! what the variant expects (PAM_SUCCESS, or PAM_PERM_DENIED with the lock's message
//! for the locked user; no message for the others).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_e2e::bench::{SampledRun, run_sampled};
use vigil_e2e::interrupt::interrupted;
use vigil_e2e::process::describe_output;
use vigil_e2e::rc::{PAM_PERM_DENIED, PAM_SUCCESS};
use vigil_e2e::{BusPolicy, Harness, PamHostReport, PamStack, Stats, paths};

use crate::facts::Facts;
use crate::{Cli, RHOST, TTY, added, holder, signed, stats_json};

pub const BEGIN: &str = "<!-- bench_pam_account:begin -->";
pub const END: &str = "<!-- bench_pam_account:end -->";

/// Issue 20's target: what the check may add for an unlocked user, vigild up or down.
const TARGET_P50_US: i64 = 50;
/// What the module shows a locked user (`LockInfo::message`).
const LOCKED_TEXT: &str = "is locked by";
/// How long vigild may settle after a start before the next run.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Permit,
    Unlocked,
    UnlockedRuser,
    UnlockedDown,
    Locked,
}

impl Variant {
    /// The order of the odd rounds (even rounds run it backwards): vigild is stopped
    /// and started once per round.
    const ALL: [Variant; 5] = [Variant::Permit, Variant::Unlocked, Variant::UnlockedRuser, Variant::Locked, Variant::UnlockedDown];

    fn key(self) -> &'static str {
        match self {
            Variant::Permit => "permit",
            Variant::Unlocked => "unlocked",
            Variant::UnlockedRuser => "unlocked_ruser",
            Variant::UnlockedDown => "unlocked_vigild_down",
            Variant::Locked => "locked",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Permit => "(a) pam_permit alone",
            Variant::Unlocked => "(b) + pam_vigil, unlocked user, vigild up",
            Variant::UnlockedRuser => "(b') + pam_vigil, unlocked users, PAM_RUSER set (as su), vigild up",
            Variant::UnlockedDown => "(c) + pam_vigil, unlocked user, vigild down",
            Variant::Locked => "(d) + pam_vigil, locked user, vigild up",
        }
    }

    /// Whether vigild must run during the variant's runs (`None`: either).
    fn vigild_up(self) -> Option<bool> {
        match self {
            Variant::Permit => None,
            Variant::UnlockedDown => Some(false),
            _ => Some(true),
        }
    }

    fn expected_rc(self) -> i32 {
        if self == Variant::Locked { PAM_PERM_DENIED } else { PAM_SUCCESS }
    }

    /// Where the variant stands in the report: (a), (b), (b'), (c), (d).
    fn rank(self) -> u8 {
        match self {
            Variant::Permit => 0,
            Variant::Unlocked => 1,
            Variant::UnlockedRuser => 2,
            Variant::UnlockedDown => 3,
            Variant::Locked => 4,
        }
    }

    fn has_target(self) -> bool {
        matches!(self, Variant::Unlocked | Variant::UnlockedRuser | Variant::UnlockedDown)
    }
}

pub struct Run {
    round: u32,
    samples: Vec<u64>,
}

pub struct VariantResult {
    variant: Variant,
    runs: Vec<Run>,
}

impl VariantResult {
    fn pooled(&self) -> Stats {
        let all: Vec<u64> = self.runs.iter().flat_map(|r| r.samples.iter().copied()).collect();
        Stats::from_samples(&all)
    }

    /// The median of each run's first call (the first pam_acct_mgmt in a process).
    fn first_call_median(&self) -> u64 {
        let firsts: Vec<u64> = self.runs.iter().filter_map(|r| r.samples.first().copied()).collect();
        Stats::from_samples(&firsts).p50
    }
}

pub struct Account {
    variants: Vec<VariantResult>,
    /// The `account` lines of the two services, harness paths shortened.
    permit_lines: Vec<String>,
    vigil_lines: Vec<String>,
    /// How long each start of vigild took (until it answered), s.
    starts: Vec<f64>,
    passwd_lines: usize,
    bus: bool,
}

fn account_lines(stack: &PamStack, dir: &str, root: &str) -> Vec<String> {
    stack.render().lines().filter(|l| l.starts_with("account")).map(|l| l.replace(dir, "$DIR").replace(root, ".")).collect()
}

/// Starts or stops vigild as `variant` needs it; a start is followed by [`SETTLE`].
fn set_vigild(h: &Harness, variant: Variant, starts: &mut Vec<f64>) {
    let Some(up) = variant.vigild_up() else { return };
    let running = h.vigild().is_running();
    if up && !running {
        let t0 = Instant::now();
        h.vigild().start();
        starts.push(t0.elapsed().as_secs_f64());
        std::thread::sleep(SETTLE);
    } else if !up && running {
        h.vigild().stop();
        assert!(!h.vigild().is_running(), "vigild still runs after stop");
    }
}

/// Runs the account benchmark inside one harness; `None` when interrupted.
pub fn bench(cli: &Cli) -> Option<Account> {
    eprintln!("bench_pam --account: starting rsyslogd{} and vigild", if cli.no_bus { "" } else { ", dbus-daemon" });
    let mut h = Harness::with_syslog();
    let user = h.create_user("bench");
    let other = h.create_user("other");
    let locked = h.create_user("locked");
    if !cli.no_bus {
        h.start_bus(BusPolicy::Packaging);
    }
    let mut opts = holder::vigild_opts(&user.name);
    if cli.no_bus {
        opts = opts.no_bus();
    }
    h.start_vigild(opts);
    let out = h.vigild().vigilctl(&["lock", "--user", &locked.name, "--why", "bench_pam --account"]);
    assert!(out.status.success(), "vigilctl lock: {}", describe_output(&out));
    let lock_file = h.lock_dir().join(locked.uid.to_string());
    assert!(lock_file.is_file(), "no lock file at {}", lock_file.display());
    for u in [&user, &other] {
        assert!(!h.lock_dir().join(u.uid.to_string()).exists(), "{} has a lock file", u.name);
    }

    let dir = h.dir().display().to_string();
    let root = paths::workspace_root().display().to_string();
    let permit = PamStack::permit_only();
    let vigil = PamStack::permit_auth_account()
        .account("[perm_denied=die default=ignore]", &paths::pam_module().display().to_string(), &h.vigil_args().to_args())
        .session("required", "pam_permit.so", &[]);
    let permit_service = h.install_pam_service("acct-permit", &permit);
    let vigil_service = h.install_pam_service("acct-vigil", &vigil);

    let run = |variant: Variant, cycles: u32, round: u32, starts: &mut Vec<f64>| -> Option<Run> {
        if interrupted() {
            return None;
        }
        set_vigild(&h, variant, starts);
        let (service, name) = match variant {
            Variant::Permit => (&permit_service, &user.name),
            Variant::Locked => (&vigil_service, &locked.name),
            _ => (&vigil_service, &user.name),
        };
        let mut cmd = h.pam_host(service, name).tty(TTY).rhost(RHOST).cycles(cycles).account();
        if variant == Variant::UnlockedRuser {
            cmd = cmd.ruser(&other.name);
        }
        let samples_path = h.path(&format!("acct-samples-{}-{round}.txt", variant.key()));
        let SampledRun { out, report, samples } = run_sampled(&cmd, &samples_path, variant.label());
        if interrupted() {
            return None;
        }
        check(variant, cycles, &report, &out);
        Some(Run { round, samples })
    };

    let mut starts = Vec::new();
    if cli.warmup > 0 {
        eprintln!("bench_pam --account: warm-up, {} calls per variant", cli.warmup);
        for variant in Variant::ALL {
            run(variant, cli.warmup, 0, &mut starts)?;
        }
    }
    let mut variants: Vec<VariantResult> = Variant::ALL.iter().map(|&variant| VariantResult { variant, runs: Vec::new() }).collect();
    for round in 1..=cli.rounds {
        let (n, order) = vigil_e2e::bench::round_plan(cli.cycles, cli.rounds, round, variants.len());
        for i in order {
            let r = run(variants[i].variant, n, round, &mut starts)?;
            let s = Stats::from_samples(&r.samples);
            eprintln!(
                "bench_pam --account: round {round}/{}: {:<70} {n} calls  p50 {} µs  p99 {} µs  max {} µs",
                cli.rounds,
                variants[i].variant.label(),
                s.p50,
                s.p99,
                s.max
            );
            variants[i].runs.push(r);
        }
    }
    variants.sort_by_key(|v| v.variant.rank());
    let passwd_lines = std::fs::read_to_string("/etc/passwd").map_or(0, |t| t.lines().count());
    Some(Account {
        variants,
        permit_lines: account_lines(&permit, &dir, &root),
        vigil_lines: account_lines(&vigil, &dir, &root),
        starts,
        passwd_lines,
        bus: !cli.no_bus,
    })
}

/// Every call returned what the variant expects; only the locked user was told anything.
fn check(variant: Variant, cycles: u32, r: &PamHostReport, out: &std::process::Output) {
    let ok = r.start_rc == PAM_SUCCESS
        && r.acct_rc.all(variant.expected_rc())
        && r.acct_rc.total() == cycles
        && r.open_rc.total() == 0
        && r.end_rc == Some(PAM_SUCCESS);
    assert!(ok, "{}: not every call returned {}: {r:?}\n{}", variant.label(), variant.expected_rc(), describe_output(out));
    let told = r.messages.iter().any(|m| m.contains(LOCKED_TEXT));
    if variant == Variant::Locked {
        assert!(told, "{}: the locked user was not told: {:?}\n{}", variant.label(), r.messages, describe_output(out));
    } else {
        assert!(r.messages.is_empty(), "{}: the stack said something: {:?}", variant.label(), r.messages);
    }
}

fn verdict(v: i64) -> &'static str {
    if v <= TARGET_P50_US { "met" } else { "**missed**" }
}

pub fn markdown(cli: &Cli, f: &Facts, a: &Account) -> String {
    let base = a.variants[0].pooled();
    let mut md = format!("{BEGIN}\nCommand (as root, from the repository): `{}`\n\n", f.command);
    md.push_str(&format!(
        "- {} calls of pam_acct_mgmt per variant through real libpam (`pam_host --account`: pam_start, then the calls \
         on the one handle, each timed alone, then pam_end, both outside the times): {} rounds, one pam_host run per \
         variant and round, variant order alternating; {} warm-up calls per variant discarded\n",
        cli.cycles, cli.rounds, cli.warmup
    ));
    md.push_str(&format!(
        "- PAM_USER, PAM_TTY ({TTY}) and PAM_RHOST ({RHOST}) set as sshd sets them; pam_host runs as root, whose real \
         uid the check skips: an unlocked login costs one NSS lookup (answered from /etc/passwd, {} lines) and one \
         failed open of `<locks>/<uid>`; (b') sets PAM_RUSER to a second user, as su does: two of each\n",
        a.passwd_lines
    ));
    md.push_str(&format!(
        "- the lock directory is the harness vigild's (`--lock-dir`, under /tmp on disk, as /var/lib/vigil is); the \
         locked user's file written by `vigilctl lock`; vigild {}, adopting only the benchmark user's logins; \"vigild \
         down\": stopped (SIGTERM) before each (c) run and started again before the next run that needs it ({} \
         starts, each answering within {:.2} s, then {} s to settle)\n",
        if a.bus { "on its private socket and the harness's bus" } else { "on its private socket only (`--no-bus`)" },
        a.starts.len(),
        a.starts.iter().copied().fold(0.0, f64::max),
        SETTLE.as_secs()
    ));
    md.push_str(&f.markdown_lines());
    md.push_str(
        "\n| variant | calls | p50 µs | p99 µs | max µs | p50 added over pam_permit | p99 added over pam_permit | first call \
         of a run, median µs |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for v in &a.variants {
        let s = v.pooled();
        let (a50, a99) = if v.variant == Variant::Permit {
            ("—".to_string(), "—".to_string())
        } else {
            (signed(added(s.p50, base.p50)), signed(added(s.p99, base.p99)))
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {a50} | {a99} | {} |\n",
            v.variant.label(),
            s.n,
            s.p50,
            s.p99,
            s.max,
            v.first_call_median()
        ));
    }
    md.push_str(&format!(
        "\nTarget (issue 20): the account stage for an unlocked user adds ≤ {TARGET_P50_US} µs p50 over pam_permit, \
         vigild up and down.\n"
    ));
    for v in a.variants.iter().filter(|v| v.variant.has_target()) {
        let a50 = added(v.pooled().p50, base.p50);
        md.push_str(&format!("- {}: p50 {} µs ({})\n", v.variant.label(), signed(a50), verdict(a50)));
    }
    if let Some(l) = a.variants.iter().find(|v| v.variant == Variant::Locked) {
        md.push_str(&format!(
            "- {}: p50 {} µs, no target (the lock file read and parsed, the message through the conversation, and \
             RecordLoginRefused over vigild's private socket; vigild records 20 refusals per user and minute and \
             counts the rest)\n",
            l.variant.label(),
            signed(added(l.pooled().p50, base.p50))
        ));
    }
    md.push_str("\nPer round, p50 / p99 µs (round order alternates):\n\n");
    md.push_str(&vigil_e2e::bench::rounds_table_head("variant", cli.rounds));
    for v in &a.variants {
        md.push_str(&format!("| {} |", v.variant.label()));
        for run in &v.runs {
            let s = Stats::from_samples(&run.samples);
            md.push_str(&format!(" {} / {} |", s.p50, s.p99));
        }
        md.push('\n');
    }
    md.push_str("\nAccount lines (`$DIR` is the harness's directory under /tmp; auth and session are pam_permit):\n\n```\n# (a)\n");
    for l in &a.permit_lines {
        md.push_str(l);
        md.push('\n');
    }
    md.push_str("# (b), (b'), (c), (d)\n");
    for l in &a.vigil_lines {
        md.push_str(l);
        md.push('\n');
    }
    md.push_str("```\n");
    md.push_str(END);
    md.push('\n');
    md
}

pub fn to_json(cli: &Cli, f: &Facts, a: &Account) -> Value {
    let base = a.variants[0].pooled();
    let mut out = crate::issue2::facts_json(f);
    out["benchmark"] = json!("pam_acct_mgmt_lock_check");
    out["calls"] = json!(cli.cycles);
    out["rounds"] = json!(cli.rounds);
    out["warmup"] = json!(cli.warmup);
    out["bus"] = json!(a.bus);
    out["passwd_lines"] = json!(a.passwd_lines);
    out["vigild_starts_s"] = json!(a.starts);
    out["target_added_p50_us"] = json!(TARGET_P50_US);
    out["account_lines"] = json!({"permit": a.permit_lines, "vigil": a.vigil_lines});
    out["variants"] = a
        .variants
        .iter()
        .map(|v| {
            let s = v.pooled();
            json!({
                "variant": v.variant.key(),
                "label": v.variant.label(),
                "vigild_up": v.variant.vigild_up(),
                "expected_rc": v.variant.expected_rc(),
                "pooled": stats_json(&s),
                "added_p50": added(s.p50, base.p50),
                "added_p99": added(s.p99, base.p99),
                "target_met": v.variant.has_target().then(|| added(s.p50, base.p50) <= TARGET_P50_US),
                "first_call_median_us": v.first_call_median(),
                "rounds": v.runs.iter().map(|r| json!({"round": r.round, "stats": stats_json(&Stats::from_samples(&r.samples))})).collect::<Vec<_>>(),
            })
        })
        .collect();
    out
}
