//! PAM service files for the tests: `/etc/pam.d/vigil-test-<name>-<n>-<pid>`, written
//! with `create_new` (never over an existing file) and removed on drop. The host's own
//! stacks (common-*, sshd, sudo) are never touched.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub const PAM_DIR: &str = "/etc/pam.d";
pub const SERVICE_PREFIX: &str = "vigil-test-";

/// What pam_vigil does when vigild cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    Open,
    Closed,
}

/// The arguments of `pam_vigil.so`. [`crate::Harness::vigil_args`] fills in the harness's
/// socket and syslog paths so that no test reaches `/run/vigil` or `/dev/log`.
#[derive(Debug, Clone, Default)]
pub struct VigilArgs {
    pub socket: Option<PathBuf>,
    pub bus: Option<String>,
    pub timeout: Option<String>,
    pub fail: Option<Fail>,
    pub syslog: Option<PathBuf>,
    /// `locks=DIR`: where the account hook looks for user locks.
    pub locks: Option<PathBuf>,
    pub debug: bool,
    /// Anything else, verbatim (e.g. `reauth`).
    pub extra: Vec<String>,
}

impl VigilArgs {
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    pub fn bus(mut self, address: &str) -> Self {
        self.bus = Some(address.to_string());
        self
    }

    pub fn timeout(mut self, duration: &str) -> Self {
        self.timeout = Some(duration.to_string());
        self
    }

    pub fn fail(mut self, fail: Fail) -> Self {
        self.fail = Some(fail);
        self
    }

    pub fn syslog(mut self, path: impl Into<PathBuf>) -> Self {
        self.syslog = Some(path.into());
        self
    }

    pub fn locks(mut self, dir: impl Into<PathBuf>) -> Self {
        self.locks = Some(dir.into());
        self
    }

    pub fn debug(mut self) -> Self {
        self.debug = true;
        self
    }

    pub fn extra(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_string());
        self
    }

    /// The words after the module path in a PAM line.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(s) = &self.socket {
            args.push(format!("socket={}", s.display()));
        }
        if let Some(b) = &self.bus {
            args.push(format!("bus={b}"));
        }
        if let Some(t) = &self.timeout {
            args.push(format!("timeout={t}"));
        }
        if let Some(f) = self.fail {
            args.push(match f {
                Fail::Open => "fail=open".to_string(),
                Fail::Closed => "fail=closed".to_string(),
            });
        }
        if let Some(s) = &self.syslog {
            args.push(format!("syslog={}", s.display()));
        }
        if let Some(dir) = &self.locks {
            args.push(format!("locks={}", dir.display()));
        }
        if self.debug {
            args.push("debug".to_string());
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// The lines of a PAM service file.
#[derive(Debug, Clone, Default)]
pub struct PamStack {
    lines: Vec<String>,
}

impl PamStack {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `kind control module args...`; panics on an argument with whitespace.
    pub fn line(mut self, kind: &str, control: &str, module: &str, args: &[String]) -> Self {
        let mut line = format!("{kind} {control} {module}");
        for arg in args {
            assert!(
                !arg.chars().any(char::is_whitespace) && !arg.is_empty(),
                "PAM argument {arg:?} would need [...] quoting; keep test paths free of spaces"
            );
            write!(line, " {arg}").unwrap();
        }
        self.lines.push(line);
        self
    }

    pub fn auth(self, control: &str, module: &str, args: &[String]) -> Self {
        self.line("auth", control, module, args)
    }

    pub fn account(self, control: &str, module: &str, args: &[String]) -> Self {
        self.line("account", control, module, args)
    }

    pub fn session(self, control: &str, module: &str, args: &[String]) -> Self {
        self.line("session", control, module, args)
    }

    pub fn password(self, control: &str, module: &str, args: &[String]) -> Self {
        self.line("password", control, module, args)
    }

    /// `auth` and `account` by pam_permit: every test stack starts from here.
    pub fn permit_auth_account() -> Self {
        Self::new().auth("required", "pam_permit.so", &[]).account("required", "pam_permit.so", &[])
    }

    /// pam_permit for everything (the benchmark's baseline).
    pub fn permit_only() -> Self {
        Self::permit_auth_account().session("required", "pam_permit.so", &[])
    }

    /// pam_exec running /bin/true as the session module (the benchmark's other baseline).
    pub fn exec_true() -> Self {
        Self::permit_auth_account().session("required", "pam_exec.so", &["/bin/true".to_string()])
    }

    /// pam_permit for auth and account, then `session required <module> ARGS`.
    pub fn vigil_session(module: &Path, args: &VigilArgs) -> Self {
        Self::permit_auth_account().session("required", &module.display().to_string(), &args.to_args())
    }

    pub fn render(&self) -> String {
        let mut text = String::from("# written by vigil-e2e; removed when the test ends\n");
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// An installed service file; removed on drop.
pub struct PamService {
    name: String,
    path: PathBuf,
}

impl PamService {
    /// Writes `/etc/pam.d/vigil-test-<name>-<n>-<pid>`; `name` is 1–16 of `[a-z0-9-]`.
    pub(crate) fn install(name: &str, n: u32, stack: &PamStack) -> PamService {
        assert!(
            (1..=16).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "PAM service short name {name:?}: use 1-16 of [a-z0-9-]"
        );
        let service = format!("{SERVICE_PREFIX}{name}-{n}-{}", std::process::id());
        let path = Path::new(PAM_DIR).join(&service);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot create {} (a stale file from an earlier run?): {e}", path.display()));
        crate::conformance::pam_file_written(&stack.render());
        file.write_all(stack.render().as_bytes()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        PamService { name: service, path }
    }

    /// The service name to give pam_start.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("vigil-e2e: cannot remove {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vigil_stack() {
        let args = VigilArgs::default().socket("/tmp/x/private").timeout("1s").fail(Fail::Closed).syslog("/tmp/x/log.sock");
        let text = PamStack::vigil_session(Path::new("/w/libpam_vigil.so"), &args).render();
        assert!(text.contains("auth required pam_permit.so\n"));
        assert!(text.contains("account required pam_permit.so\n"));
        assert!(text.contains("session required /w/libpam_vigil.so socket=/tmp/x/private timeout=1s fail=closed syslog=/tmp/x/log.sock\n"));
    }

    #[test]
    #[should_panic(expected = "quoting")]
    fn refuses_spaces() {
        PamStack::new().session("required", "pam_exec.so", &["a b".to_string()]);
    }
}
