//! How many connections vigild's private socket takes at a time (enforced by vigild's
//! admission control; named by vigilctl when one refuses it).

/// Connection limits of the private socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one unprivileged uid may hold.
    pub per_uid: usize,
    /// Connections all unprivileged uids may hold together.
    pub unprivileged_total: usize,
    /// Connections root may hold (a pool apart from the users').
    pub root_total: usize,
}

impl ConnectionLimits {
    pub const DEFAULT: ConnectionLimits = ConnectionLimits { per_uid: 16, unprivileged_total: 256, root_total: 1024 };
}
