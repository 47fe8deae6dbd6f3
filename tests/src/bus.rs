//! A private dbus-daemon acting as the system bus, on `<dir>/bus.sock`.
//!
//! Its configuration mirrors the default policy of Debian's
//! `/usr/share/dbus-1/system.conf`, then either includes the repository's
//! `packaging/dbus/org.vigil1.conf` by absolute path (a drift in that file breaks the
//! tests) or, for [`BusPolicy::Permissive`], lets anyone call anything on `org.vigil1`
//! (to prove vigild's own checks without the bus policy's help).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::paths::bus_policy_file;
use crate::process::{Ledger, ManagedChild, describe_output, run_bounded};
use crate::wait::wait_for;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which rules govern calls to `org.vigil1` on the private bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusPolicy {
    /// The repository's `packaging/dbus/org.vigil1.conf`, included by path.
    Packaging,
    /// Root may own `org.vigil1`; anyone may send anything to it.
    Permissive,
}

pub struct Bus {
    policy: BusPolicy,
    conf: PathBuf,
    socket: PathBuf,
    address: String,
    child: RefCell<ManagedChild>,
}

impl Bus {
    pub(crate) fn start_in(dir: &Path, policy: BusPolicy, ledger: &Ledger) -> Bus {
        let conf = dir.join("bus.conf");
        let socket = dir.join("bus.sock");
        std::fs::write(&conf, config_text(&socket, policy)).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", conf.display())).args(["--nofork", "--nopidfile", "--print-address=1"]);
        let mut child = ManagedChild::spawn_logged("dbus-daemon", &mut cmd, dir, ledger);
        let address = wait_for(READY_TIMEOUT, "dbus-daemon to print its address", || {
            if let Some(status) = child.try_exited() {
                panic!(
                    "dbus-daemon exited ({status}); stderr:\n{}\nconfig {}:\n{}",
                    child.stderr_text(),
                    conf.display(),
                    crate::process::read_lossy(&conf)
                );
            }
            let out = child.stdout_text();
            match out.lines().next() {
                Some(line) if out.contains('\n') && socket.exists() => Ok(line.trim().to_string()),
                _ => Err(format!("stdout so far: {out:?}")),
            }
        });
        Bus { policy, conf, socket, address, child: RefCell::new(child) }
    }

    /// The address dbus-daemon printed (`unix:path=...,guid=...`).
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> &Path {
        &self.conf
    }

    pub fn policy(&self) -> BusPolicy {
        self.policy
    }

    pub fn pid(&self) -> u32 {
        self.child.borrow().pid()
    }

    pub fn stderr_text(&self) -> String {
        self.child.borrow().stderr_text()
    }

    /// Asks the bus (as root) whether `name` has an owner.
    pub fn name_has_owner(&self, name: &str) -> bool {
        name_has_owner(&self.address, name)
    }

    /// Stops dbus-daemon (it is also stopped when the harness is dropped).
    pub fn stop(&self) {
        self.child.borrow_mut().terminate();
    }
}

/// Asks the bus at `address` (as root) whether `name` has an owner; panics if the
/// question itself fails.
pub fn name_has_owner(address: &str, name: &str) -> bool {
    let out = run_bounded(
        Command::new("dbus-send")
            .arg(format!("--bus={address}"))
            .args(["--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"])
            .arg("org.freedesktop.DBus.NameHasOwner")
            .arg(format!("string:{name}")),
        Duration::from_secs(10),
        "dbus-send NameHasOwner",
    );
    assert!(out.status.success(), "NameHasOwner failed: {}", describe_output(&out));
    String::from_utf8_lossy(&out.stdout).contains("boolean true")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn config_text(socket: &Path, policy: BusPolicy) -> String {
    let vigil_rules = match policy {
        BusPolicy::Packaging => format!(
            "  <!-- the repository's policy, by path: a drift there must break the tests -->\n  <include>{}</include>\n",
            xml_escape(&bus_policy_file().display().to_string())
        ),
        BusPolicy::Permissive => "  <!-- permissive: vigild's own checks are all that stands -->\n\
             \x20 <policy user=\"root\">\n\
             \x20   <allow own=\"org.vigil1\"/>\n\
             \x20 </policy>\n\
             \x20 <policy context=\"default\">\n\
             \x20   <allow send_destination=\"org.vigil1\"/>\n\
             \x20 </policy>\n"
            .to_string(),
    };
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- written by vigil-e2e: a private system bus -->
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>

  <!-- the default policy of Debian's /usr/share/dbus-1/system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>

{vigil_rules}</busconfig>
"#,
        socket = xml_escape(&socket.display().to_string()),
    )
}
