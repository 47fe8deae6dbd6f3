//! The unit tests' stand-ins for libpam and the host log: one of each for the session
//! and the re-auth tests.

use std::cell::RefCell;
use std::collections::HashMap;

use vigil_protocol::audit::Record;

use crate::host_log::HostLog;
use crate::pam_io::{Item, Mark, PamIo};

/// A PAM handle: items by name (`user`, `service`, `tty`, `rhost`, `ruser`), and what
/// the module stored in it.
#[derive(Default)]
pub struct FakePam {
    pub items: HashMap<&'static str, Vec<u8>>,
    /// `NAME=value`, in the order the module set them.
    pub env: Vec<String>,
    pub id: Option<u64>,
    pub marks: Vec<Mark>,
    /// What the module showed the user.
    pub told: Vec<String>,
}

impl FakePam {
    /// A handle with these items.
    pub fn with(items: &[(&'static str, &[u8])]) -> Self {
        Self { items: items.iter().map(|&(k, v)| (k, v.to_vec())).collect(), ..Self::default() }
    }
}

impl PamIo for FakePam {
    fn item(&self, item: Item) -> Option<Vec<u8>> {
        let key = match item {
            Item::User => "user",
            Item::Service => "service",
            Item::Tty => "tty",
            Item::RHost => "rhost",
            Item::RUser => "ruser",
        };
        self.items.get(key).cloned()
    }
    fn put_env(&mut self, name: &str, value: &str) -> bool {
        self.env.push(format!("{name}={value}"));
        true
    }
    fn store_session_id(&mut self, id: u64) -> bool {
        self.id = Some(id);
        true
    }
    fn session_id(&self) -> Option<u64> {
        self.id
    }
    fn set_mark(&mut self, mark: Mark) -> bool {
        self.marks.push(mark);
        true
    }
    fn has_mark(&self, mark: Mark) -> bool {
        self.marks.contains(&mark)
    }
    fn tell(&mut self, text: &str) {
        self.told.push(text.to_string());
    }
    /// The item `authtok`, as PAM_AUTHTOK.
    fn password_typed(&self) -> bool {
        self.items.get("authtok").is_some_and(|token| !token.is_empty())
    }
}

/// The host log: each record as its key=value line.
#[derive(Default)]
pub struct FakeLog(pub RefCell<Vec<String>>);

impl HostLog for FakeLog {
    fn record(&self, record: &Record) {
        self.0.borrow_mut().push(record.to_kv_line());
    }
    fn debug(&self, _: &str) {}
}
