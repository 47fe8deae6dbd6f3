//! A private rsyslogd: imuxsock on `<dir>/log.sock` (never /dev/log), authpriv to
//! `<dir>/auth.log` and everything to `<dir>/all.log`, both in the traditional format.
//! Stoppable and restartable (a test takes syslog away and brings it back).
//!
//! Optionally (`RsyslogOpts::severity_log`) authpriv also goes to `<dir>/severity.log`,
//! each line led by the priority as rsyslogd understood it (`warning <84> vigild[9]: ...`),
//! so a test sees the severity a record arrived with.
//!
//! Optionally with extra configuration lines (e.g. forwarding `authpriv.* @@127.0.0.1:PORT`)
//! and a TCP listener (imtcp on 127.0.0.1): a second instance in a subdirectory then
//! plays a central log host (`Harness::start_central_rsyslog`; over RELP,
//! `Harness::start_relp_center`). A central host can be killed as a crash ends it, and
//! started again on the same port and files.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::logs::read_log;
use crate::process::{Ledger, ManagedChild, describe_output, run_bounded};
use crate::wait::wait_for;

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TAG: &str = "vigil-e2e-probe";
/// `/proc/net/tcp` state of a listening socket.
const TCP_LISTEN: u8 = 10;

pub struct Rsyslog {
    dir: PathBuf,
    conf: PathBuf,
    pidfile: PathBuf,
    socket: PathBuf,
    auth_log: PathBuf,
    all_log: PathBuf,
    /// `<dir>/severity.log`, written when `RsyslogOpts::severity_log` is set.
    severity_log: Option<PathBuf>,
    ledger: Ledger,
    child: RefCell<Option<ManagedChild>>,
    probes: Cell<u32>,
    /// Lines appended to the configuration.
    extra_config: Vec<String>,
    /// imtcp on 127.0.0.1:PORT, when set.
    tcp_port: Option<u16>,
    /// A port the extra configuration listens on (imrelp).
    listen_port: Option<u16>,
}

/// What a test may add to an rsyslogd's configuration.
#[derive(Debug, Clone, Default)]
pub struct RsyslogOpts {
    /// Lines appended after the harness's own (e.g. `authpriv.* @@127.0.0.1:PORT`).
    pub extra_config: Vec<String>,
    /// Listen with imtcp on 127.0.0.1:PORT (ready once the port listens).
    pub tcp_port: Option<u16>,
    /// authpriv also to `<dir>/severity.log` with each record's severity and priority
    /// first ([`Rsyslog::severity_lines`]); auth.log and all.log keep their format.
    pub severity_log: bool,
    /// A port on 127.0.0.1 that `extra_config` listens on (an imrelp input): ready, as
    /// with `tcp_port`, once it listens.
    pub listen_port: Option<u16>,
}

/// One line of severity.log: the severity's name, the priority, and the message as
/// auth.log would show it after the host name (`vigild[9]: event=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityLine {
    pub severity: String,
    pub pri: u32,
    pub text: String,
}

impl Rsyslog {
    /// Writes the configuration (the harness's lines, then `opts`) and starts rsyslogd;
    /// returns once a probe line landed (and, with `opts.tcp_port`, the port listens).
    pub(crate) fn start_in_with(dir: &Path, ledger: &Ledger, opts: &RsyslogOpts) -> Rsyslog {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap_or_else(|e| panic!("mkdir {}: {e}", work.display()));
        let rsyslog = Rsyslog {
            dir: dir.to_path_buf(),
            conf: dir.join("rsyslog.conf"),
            pidfile: dir.join("rsyslogd.pid"),
            socket: dir.join("log.sock"),
            auth_log: dir.join("auth.log"),
            all_log: dir.join("all.log"),
            severity_log: opts.severity_log.then(|| dir.join("severity.log")),
            ledger: ledger.clone(),
            child: RefCell::new(None),
            probes: Cell::new(0),
            extra_config: opts.extra_config.clone(),
            tcp_port: opts.tcp_port,
            listen_port: opts.listen_port,
        };
        std::fs::write(&rsyslog.conf, rsyslog.config_text(&work)).unwrap_or_else(|e| panic!("write {}: {e}", rsyslog.conf.display()));
        rsyslog.start();
        rsyslog
    }

    fn config_text(&self, work: &Path) -> String {
        // Rate limiting off explicitly (whatever the default): a 1000-cycle test makes vigild
        // write 2000 lines at once.
        let mut text = format!(
            "# written by vigil-e2e\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{sock}\" CreatePath=\"on\" RateLimit.Interval=\"0\")\n\
             $WorkDirectory {work}\n\
             $FileCreateMode 0644\n\
             $RepeatedMsgReduction off\n\
             $ActionFileDefaultTemplate RSYSLOG_TraditionalFileFormat\n\
             authpriv.* {auth}\n\
             *.* {all}\n",
            sock = self.socket.display(),
            work = work.display(),
            auth = self.auth_log.display(),
            all = self.all_log.display(),
        );
        if let Some(severity_log) = &self.severity_log {
            text.push_str(&format!(
                "template(name=\"VigilE2eSeverity\" type=\"string\" string=\"%syslogseverity-text% <%pri%> %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n\")\n\
                 authpriv.* action(type=\"omfile\" file=\"{}\" template=\"VigilE2eSeverity\")\n",
                severity_log.display()
            ));
        }
        if let Some(port) = self.tcp_port {
            text.push_str(&format!("module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n"));
        }
        for line in &self.extra_config {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Starts rsyslogd (again); panics if it is running or does not become ready.
    pub fn start(&self) {
        assert!(!self.is_running(), "rsyslogd is already running");
        let mut cmd = Command::new("/usr/sbin/rsyslogd");
        cmd.arg("-n").arg("-f").arg(&self.conf).arg("-i").arg(&self.pidfile);
        let child = ManagedChild::spawn_logged("rsyslogd", &mut cmd, &self.dir, &self.ledger);
        *self.child.borrow_mut() = Some(child);
        wait_for(READY_TIMEOUT, "rsyslogd's socket", || {
            self.check_alive()?;
            if self.socket.exists() { Ok(()) } else { Err(format!("{} missing", self.socket.display())) }
        });
        self.probe(READY_TIMEOUT);
        if let Some(port) = self.port() {
            wait_for(READY_TIMEOUT, &format!("rsyslogd to listen on 127.0.0.1:{port}"), || {
                self.check_alive()?;
                if self.is_listening() { Ok(()) } else { Err(format!("rsyslogd stderr:\n{}", self.stderr_text())) }
            });
        }
    }

    /// The imtcp port, when this instance listens on one.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }

    /// The port this instance listens on: imtcp's, or the extra configuration's.
    pub fn port(&self) -> Option<u16> {
        self.tcp_port.or(self.listen_port)
    }

    /// True when a socket listens on 127.0.0.1:<port> (`/proc/net/tcp`).
    fn is_listening(&self) -> bool {
        let Some(port) = self.port() else { return false };
        let want = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
        crate::procfs::tcp_connections().iter().any(|c| c.state == TCP_LISTEN && c.local == want)
    }

    /// This instance's directory (its files: rsyslog.conf, auth.log, all.log, stderr).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops rsyslogd (SIGTERM, then SIGKILL after 3 s) and waits for it to end.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.borrow_mut().take() {
            child.terminate();
            // Once, when it has written everything: what the test's records carried.
            crate::conformance::records_seen(&self.all_log);
        }
    }

    /// SIGKILL by its pid, as a crash or the OOM killer ends it: nothing is flushed or
    /// saved, the pid file stays. [`Rsyslog::start`] brings it back on the same
    /// configuration, port and files.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.borrow_mut().take() {
            child.kill_now();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.borrow_mut().as_mut().is_some_and(|c| c.is_running())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.borrow().as_ref().map(|c| c.pid())
    }

    /// SIGHUP, as logrotate's postrotate sends it: rsyslogd closes its files and opens
    /// them again by name at its next write (a renamed auth.log is then left behind).
    pub fn reopen(&self) {
        let mut guard = self.child.borrow_mut();
        let child = guard.as_mut().expect("rsyslogd is not started");
        child.signal(nix::sys::signal::Signal::SIGHUP).unwrap_or_else(|e| panic!("{e}; rsyslogd stderr:\n{}", child.stderr_text()));
    }

    /// The syslog socket (give it to vigild and pam_vigil as their syslog socket).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn auth_log_path(&self) -> &Path {
        &self.auth_log
    }

    pub fn all_log_path(&self) -> &Path {
        &self.all_log
    }

    /// The lines of severity.log (empty without `RsyslogOpts::severity_log`).
    pub fn severity_lines(&self) -> Vec<SeverityLine> {
        let Some(path) = &self.severity_log else { return Vec::new() };
        let text = crate::process::read_lossy(path);
        text.lines()
            .filter_map(|line| {
                let (severity, rest) = line.split_once(' ')?;
                let (pri, text) = rest.strip_prefix('<')?.split_once("> ")?;
                Some(SeverityLine { severity: severity.to_string(), pri: pri.parse().ok()?, text: text.to_string() })
            })
            .collect()
    }

    /// What rsyslogd printed on stderr (all runs).
    pub fn stderr_text(&self) -> String {
        crate::process::read_lossy(&self.dir.join("rsyslogd.stderr"))
    }

    /// Sends a probe line with `logger` and waits until it appears in auth.log, resending
    /// every second (a datagram sent while rsyslogd starts up may be lost).
    pub fn probe(&self, timeout: Duration) {
        let n = self.probes.get() + 1;
        self.probes.set(n);
        let marker = format!("READY-{n}");
        let mut attempt = 0u32;
        let mut last_sent: Option<std::time::Instant> = None;
        wait_for(timeout, &format!("probe line {marker} in {}", self.auth_log.display()), || {
            self.check_alive()?;
            if read_log(&self.auth_log).iter().any(|l| l.tag == PROBE_TAG && l.message.starts_with(&marker)) {
                return Ok(());
            }
            if last_sent.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                attempt += 1;
                last_sent = Some(std::time::Instant::now());
                let out = run_bounded(
                    Command::new("logger")
                        .arg("-u")
                        .arg(&self.socket)
                        .args(["-p", "authpriv.info", "-t", PROBE_TAG])
                        .arg(format!("{marker} attempt={attempt}")),
                    Duration::from_secs(5),
                    "logger",
                );
                if !out.status.success() {
                    return Err(format!("logger failed: {}", describe_output(&out)));
                }
            }
            Err(format!("not in auth.log yet after {attempt} attempt(s)"))
        });
    }

    fn check_alive(&self) -> Result<(), String> {
        let mut guard = self.child.borrow_mut();
        let child = guard.as_mut().ok_or("rsyslogd is not started")?;
        match child.try_exited() {
            None => Ok(()),
            Some(status) => panic!(
                "rsyslogd exited ({status}); stderr:\n{}\nconfig {}:\n{}",
                child.stderr_text(),
                self.conf.display(),
                crate::process::read_lossy(&self.conf)
            ),
        }
    }
}
