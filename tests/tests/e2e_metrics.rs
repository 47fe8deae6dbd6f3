//! End-to-end tests of vigild's metrics (docs/metrics.md): `vigilctl metrics` and the
//! `[metrics] textfile` for node_exporter's textfile collector. Real parts only: a real
//! sshd whose session stack ends with `pam_vigil.so` (a login holding a pty), the real
//! `sudo` through the re-authentication stack (a wrong password, a right one, one
//! trusted), pam_host sessions ended by the module, by idleness, by max_session_age, by
//! `vigilctl terminate` and by `vigilctl lock`, an ordinary user refused, a real rsyslogd
//! whose auth.log is the trail the figures are checked against, and the real
//! `prometheus-node-exporter` (Debian's package; its own process on 127.0.0.1, killed by
//! pid) scraped over HTTP.
//!
//! Timing: waits are generous upper bounds; every loop is bounded in count and time.
//! Needs root and the release build of the workspace: see tests/README.md.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_e2e::login::{Login, login_with};
use vigil_e2e::rc::PAM_SUCCESS;
use vigil_e2e::sshd::{free_port, unix_stack};
use vigil_e2e::sudo::{self, reauth_stack};
use vigil_e2e::{Answer, Harness, LogLine, SshOpts, SshdOpts, VigildOpts, paths, require_root, wait_for};

const STEP: Duration = Duration::from_secs(15);
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// The policy: sudo services sensitive; pam_host services whose sessions end by
/// idleness (no tty: notty_idle_timeout) or by max_session_age within seconds; the
/// textfile rewritten every second.
fn config(textfile: &Path) -> String {
    format!(
        "[defaults]\n\
         idle_timeout = \"10m\"\n\
         kill_grace = \"1s\"\n\
         sensitive_services = [\"vigil-test-sudo-*\"]\n\
         \n\
         [[policy]]\n\
         name = \"short-idle\"\n\
         match = {{ services = [\"vigil-test-metidle-*\"] }}\n\
         notty_idle_timeout = \"2s\"\n\
         idle_warning = \"1s\"\n\
         \n\
         [[policy]]\n\
         name = \"short-age\"\n\
         match = {{ services = [\"vigil-test-metage-*\"] }}\n\
         max_session_age = \"3s\"\n\
         idle_warning = \"1s\"\n\
         \n\
         [metrics]\n\
         textfile = \"{}\"\n\
         interval = \"1s\"\n",
        textfile.display()
    )
}

fn stdout(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", vigil_e2e::process::describe_output(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The samples of a Prometheus text: series (name with its labels, as written) → value.
/// Checks the shape on the way: HELP then TYPE once per family, each sample in its
/// family, one sample per series.
#[track_caller]
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut families: BTreeMap<String, usize> = BTreeMap::new();
    let mut family = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            family = rest.split(' ').next().unwrap_or_default().to_string();
            *families.entry(family.clone()).or_default() += 1;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            assert!(rest.starts_with(&format!("{family} ")), "TYPE after its family's HELP: {line}");
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line:?}"));
            assert!(out.insert(series.to_string(), value).is_none(), "one sample per series: {line}");
        }
    }
    let repeated: Vec<_> = families.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "HELP once per family: {repeated:?}");
    out
}

/// `vigilctl metrics` as root, parsed.
#[track_caller]
fn metrics(h: &Harness) -> (String, BTreeMap<String, f64>) {
    let text = stdout(&h.vigild().vigilctl(&["metrics"]), "vigilctl metrics");
    let parsed = samples(&text);
    (text, parsed)
}

fn records(h: &Harness) -> Vec<LogLine> {
    h.auth_log().into_iter().filter(|l| l.tag == "vigild" && l.event().is_some()).collect()
}

fn count(records: &[LogLine], event: &str, fields: &[(&str, &str)]) -> f64 {
    records.iter().filter(|l| l.has("event", event) && fields.iter().all(|(k, v)| l.has(k, v))).count() as f64
}

/// What the trail says each counter must be.
fn expected_from_trail(trail: &[LogLine]) -> BTreeMap<String, f64> {
    let mut want = BTreeMap::new();
    want.insert("vigil_logins_total".to_string(), count(trail, "session_open", &[]));
    want.insert("vigil_adopted_sessions_total".to_string(), count(trail, "session_adopted", &[]));
    for reason in ["closed", "leader_gone", "admin", "idle", "max_age", "reauth_failures", "lock"] {
        let event = if reason == "closed" { "session_close" } else { "session_end" };
        want.insert(format!("vigil_session_ends_total{{reason=\"{reason}\"}}"), count(trail, event, &[("reason", reason)]));
    }
    for (family, reason) in [("idle", "idle"), ("max_age", "max_age"), ("admin", "admin"), ("lock", "lock")] {
        want.insert(format!("vigil_{family}_ends_total"), count(trail, "session_end", &[("reason", reason)]));
    }
    want.insert("vigil_reauth_asked_total".to_string(), count(trail, "reauth_required", &[]));
    want.insert("vigil_reauth_granted_total".to_string(), count(trail, "reauth_granted", &[]));
    want.insert("vigil_reauth_recorded_total".to_string(), count(trail, "reauth_recorded", &[]));
    want.insert("vigil_reauth_failed_total".to_string(), count(trail, "reauth_failed", &[]));
    let suppressed: f64 =
        trail.iter().filter(|l| l.has("event", "call_refused")).filter_map(|l| l.field("suppressed")?.parse::<f64>().ok()).sum();
    want.insert("vigil_refused_calls_total".to_string(), count(trail, "call_refused", &[]) + suppressed);
    want.insert("vigil_records_written_total".to_string(), trail.len() as f64);
    want.insert("vigil_records_spooled_total".to_string(), 0.0);
    want.insert("vigil_records_dropped_total".to_string(), 0.0);
    want
}

/// The series of `want` whose value in `got` differs: (series, wanted, got).
fn differences(want: &BTreeMap<String, f64>, got: &BTreeMap<String, f64>) -> Vec<(String, f64, Option<f64>)> {
    want.iter().filter(|(k, v)| got.get(*k) != Some(v)).map(|(k, v)| (k.clone(), *v, got.get(k).copied())).collect()
}

/// node_exporter with only its textfile collector, on 127.0.0.1 and a free port;
/// killed by pid when dropped.
struct NodeExporter {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl NodeExporter {
    fn start(textfile_dir: &Path, log: PathBuf) -> NodeExporter {
        assert!(
            Path::new(NODE_EXPORTER).exists(),
            "{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter (tests/run.sh does)"
        );
        let port = free_port();
        let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!("--collector.textfile.directory={}", textfile_dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {NODE_EXPORTER}: {e}"));
        let exporter = NodeExporter { child, port, log };
        wait_for(STEP, "node_exporter to answer on /metrics", || exporter.scrape());
        exporter
    }

    /// One GET of /metrics: the body.
    fn scrape(&self) -> Result<String, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
        let (head, body) = response.split_once("\r\n\r\n").ok_or("no end of headers")?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return Err(format!("{}; log: {}", head.lines().next().unwrap_or(""), vigil_e2e::process::read_lossy(&self.log)));
        }
        Ok(body.to_string())
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ssh login holding a pty, sudo with a wrong password, a right one and one trusted;
/// pam_host sessions closed by the module, ended by idleness, by max_session_age, by
/// `vigilctl terminate` and by a lock; `vigilctl metrics` refused to an ordinary user.
/// Then every counter of `vigilctl metrics` equals the count of its records in the trail,
/// the gauges what vigild holds (`vigilctl list`, the lock, vigild's /proc), and
/// node_exporter, reading vigild's textfile (0644, rewritten every second), serves the
/// same series with no scrape error.
#[test]
fn metrics_equal_the_trail_and_node_exporter_serves_them() {
    require_root!();
    let mut h = Harness::new();
    h.start_rsyslog();
    let textfile_dir = h.path("textfile");
    std::fs::create_dir_all(&textfile_dir).unwrap();
    let textfile = textfile_dir.join("vigil.prom");
    h.start_vigild(VigildOpts::default().no_bus().config(&config(&textfile)));
    let module = paths::pam_module();
    let stack = unix_stack().session("required", &module.display().to_string(), &h.vigil_args().to_args());
    h.start_sshd(SshdOpts::default().stack(stack));
    let user = h.create_user("metrics");
    let locked = h.create_user("metlock");
    let sudo_service = h.install_sudo(&user, &reauth_stack(&module, &h.vigil_args()));

    // The ssh login (a pty: tty="yes") and its sudo: asked and failed, asked and
    // recorded, then trusted.
    let login: Login = login_with(&h, &user, &SshOpts::default(), STEP);
    let wrong = sudo::sudo(&login.client, "m1", "true", &Answer::Password("not-the-password".into()), STEP);
    assert_eq!((wrong.prompts, wrong.rc), (1, 1), "a wrong password is refused: {wrong:?}");
    let right = sudo::sudo(&login.client, "m2", "true", &Answer::Password(user.password.clone()), STEP);
    assert_eq!((right.prompts, right.rc), (1, 0), "the right password: {right:?}");
    let trusted = sudo::sudo(&login.client, "m3", "true", &Answer::Password(user.password.clone()), STEP);
    assert_eq!((trusted.prompts, trusted.rc), (0, 0), "trusted within the window: {trusted:?}");
    h.wait_for_event(STEP, "vigild", "reauth_granted", &[("reauth_service", &sudo_service)]);

    // pam_host sessions, each ended its own way.
    let close_service = h.install_vigil_service("metclose", &h.vigil_args());
    let idle_service = h.install_vigil_service("metidle", &h.vigil_args());
    let age_service = h.install_vigil_service("metage", &h.vigil_args());
    let keep_service = h.install_vigil_service("metkeep", &h.vigil_args());
    let closed = h.open_pam_session(&h.pam_host(&close_service, &user.name));
    assert_eq!(closed.open_rc(), PAM_SUCCESS, "{}", closed.stderr_text());
    let (rc, _) = closed.close();
    assert_eq!(rc, Some(PAM_SUCCESS));
    let idle = h.open_pam_session(&h.pam_host(&idle_service, &user.name));
    let aged = h.open_pam_session(&h.pam_host(&age_service, &user.name));
    let admin = h.open_pam_session(&h.pam_host(&keep_service, &user.name));
    let of_locked = h.open_pam_session(&h.pam_host(&keep_service, &locked.name));
    let (idle_id, aged_id) = (idle.session_id_u64().to_string(), aged.session_id_u64().to_string());
    let admin_id = admin.session_id_u64().to_string();
    stdout(&h.vigild().vigilctl(&["terminate", &admin_id]), "vigilctl terminate");
    stdout(&h.vigild().vigilctl(&["lock", "--user", &locked.name, "--why", "metrics test"]), "vigilctl lock");
    h.wait_for_event(STEP, "vigild", "session_end", &[("session", &idle_id), ("reason", "idle")]);
    h.wait_for_event(STEP, "vigild", "session_end", &[("session", &aged_id), ("reason", "max_age")]);
    h.wait_for_event(STEP, "vigild", "session_end", &[("session", &admin_id), ("reason", "admin")]);
    h.wait_for_event(STEP, "vigild", "session_end", &[("reason", "lock"), ("user", &locked.name)]);

    // Root only: an ordinary user is refused, recorded and counted.
    let refused = h.vigild().vigilctl_as(&user.name, &["metrics"]);
    assert!(!refused.status.success(), "an ordinary user gets no metrics: {}", vigil_e2e::process::describe_output(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Metrics"), "{}", vigil_e2e::process::describe_output(&refused));
    h.wait_for_event(STEP, "vigild", "call_refused", &[("method", "Metrics"), ("uid", &user.uid.to_string())]);

    // Every counter is its records' count in the trail (records reach rsyslogd's file a
    // moment after they are counted: asked again until both agree).
    let (text, got) = wait_for(STEP, "vigilctl metrics to equal the trail", || {
        let (text, got) = metrics(&h);
        let want = expected_from_trail(&records(&h));
        let off = differences(&want, &got);
        if off.is_empty() { Ok((text, got)) } else { Err(format!("(series, trail, metrics): {off:?}")) }
    });
    for (series, least) in [
        ("vigil_logins_total", 6.0),
        ("vigil_idle_ends_total", 1.0),
        ("vigil_max_age_ends_total", 1.0),
        ("vigil_admin_ends_total", 1.0),
        ("vigil_lock_ends_total", 1.0),
        ("vigil_session_ends_total{reason=\"closed\"}", 1.0),
        ("vigil_reauth_asked_total", 2.0),
        ("vigil_reauth_granted_total", 1.0),
        ("vigil_reauth_failed_total", 1.0),
        ("vigil_refused_calls_total", 1.0),
        ("vigil_records_written_total", 15.0),
    ] {
        assert!(got[series] >= least, "{series} = {}, expected at least {least} (the test made them):\n{text}", got[series]);
    }

    // The gauges: what vigild holds now.
    let listed = h.vigild().list_sessions();
    let sessions: f64 = got.iter().filter(|(k, _)| k.starts_with("vigil_sessions{")).map(|(_, v)| v).sum();
    assert_eq!(sessions, listed.len() as f64, "vigil_sessions adds up to `vigilctl list`:\n{text}");
    let ssh_service = &login.tracked.service;
    assert_eq!(
        got.get(&format!("vigil_sessions{{service=\"{ssh_service}\",tty=\"yes\"}}")),
        Some(&1.0),
        "the ssh login holds a pty:\n{text}"
    );
    assert_eq!(got["vigil_locks"], 1.0, "{text}");
    assert_eq!(got["vigil_inhibitors"], 0.0, "{text}");
    let rss = h.vigild().rss_kib() as f64 * 1024.0;
    let rss_got = got["vigil_daemon_resident_memory_bytes"];
    assert!(rss_got > rss / 2.0 && rss_got < rss * 2.0, "vigild's RSS {rss_got} against /proc's {rss}");
    let fds = h.vigild().fd_count() as f64;
    let fds_got = got["vigil_daemon_open_fds"];
    assert!((fds_got - fds).abs() <= 8.0, "vigild's descriptors {fds_got} against /proc's {fds}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let started = got["vigil_daemon_start_time_seconds"];
    assert!(started <= now && started > now - 600.0, "start time {started} (now {now})");
    assert!(text.contains("# TYPE vigil_logins_total counter\n") && text.contains("# TYPE vigil_sessions gauge\n"), "{text}");

    // The textfile: 0644, the same figures (rewritten every second).
    let meta = std::fs::metadata(&textfile).unwrap_or_else(|e| panic!("{}: {e}", textfile.display()));
    assert_eq!(meta.mode() & 0o777, 0o644, "node_exporter's user reads it");
    // node_exporter's textfile collector serves vigild's series as vigilctl shows them.
    let exporter = NodeExporter::start(&textfile_dir, h.path("node_exporter.stderr"));
    let want = expected_from_trail(&records(&h));
    let scraped = wait_for(STEP, "node_exporter to serve vigild's series", || {
        let body = exporter.scrape()?;
        let served = samples(&body);
        let mut off = differences(&want, &served);
        for series in ["node_textfile_scrape_error", "vigil_locks"] {
            let wanted = if series == "vigil_locks" { 1.0 } else { 0.0 };
            if served.get(series) != Some(&wanted) {
                off.push((series.to_string(), wanted, served.get(series).copied()));
            }
        }
        if off.is_empty() { Ok(served) } else { Err(format!("(series, trail, scraped): {off:?}")) }
    });
    let vigil_series = scraped.keys().filter(|k| k.starts_with("vigil_")).count();
    assert!(vigil_series >= 25, "vigild's series through node_exporter: {vigil_series}");
    let mtime_series = format!("node_textfile_mtime_seconds{{file=\"{}\"}}", textfile.display());
    assert!(
        scraped.contains_key(&mtime_series),
        "node_exporter read {}: {:?}",
        textfile.display(),
        scraped.keys().filter(|k| k.starts_with("node_")).collect::<Vec<_>>()
    );
    drop(exporter);
    drop((idle, aged, admin, of_locked, login));
}

/// `[metrics]` follows a reload: a file appears when `textfile` is set, moves when it
/// changes (the old one removed), and goes when the table does; a bad value is refused
/// with its line and column, the running settings kept.
#[test]
fn a_reload_starts_moves_and_stops_the_textfile() {
    require_root!();
    let mut h = Harness::with_syslog();
    h.start_vigild(VigildOpts::default().no_bus());
    let dir = h.path("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second) = (dir.join("first.prom"), dir.join("second.prom"));
    let with = |path: &Path| format!("[defaults]\n\n[metrics]\ntextfile = \"{}\"\ninterval = \"1s\"\n", path.display());
    let exists = |path: &Path, wanted: bool| {
        wait_for(STEP, &format!("{} to {}", path.display(), if wanted { "appear" } else { "go" }), || {
            if path.exists() == wanted { Ok(()) } else { Err(format!("exists: {}", path.exists())) }
        })
    };
    assert!(!first.exists() && !second.exists());

    h.vigild().write_config(&with(&first));
    stdout(&h.vigild().vigilctl(&["reload"]), "vigilctl reload");
    exists(&first, true);
    let text = std::fs::read_to_string(&first).unwrap();
    assert!(samples(&text).contains_key("vigil_logins_total"), "{text}");
    // Rewritten every second.
    let written = std::fs::metadata(&first).unwrap().modified().unwrap();
    wait_for(STEP, "the textfile to be rewritten", || {
        let now = std::fs::metadata(&first).map_err(|e| e.to_string())?.modified().map_err(|e| e.to_string())?;
        if now > written { Ok(()) } else { Err("same mtime".into()) }
    });

    h.vigild().write_config(&with(&second));
    stdout(&h.vigild().vigilctl(&["reload"]), "vigilctl reload");
    exists(&second, true);
    exists(&first, false);

    h.vigild().write_config("[defaults]\n\n[metrics]\ninterval = \"10ms\"\n");
    let refused = h.vigild().vigilctl(&["reload"]);
    assert!(!refused.status.success(), "{}", vigil_e2e::process::describe_output(&refused));
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(said.contains(":4:12: metrics.interval:") && said.contains("shorter than a second"), "{said}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(second.exists(), "a refused file keeps the running textfile");

    h.vigild().write_config("[defaults]\n");
    stdout(&h.vigild().vigilctl(&["reload"]), "vigilctl reload");
    exists(&second, false);
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.is_empty(), "no file and no temporary left: {names:?}");
}
