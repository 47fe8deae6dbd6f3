//! The system: what vigild reads from the kernel and the host (/proc, pidfds, ttys, the clocks,
//! the descriptor limit, NSS accounts, its directories) and what it asks of logind.

pub mod clock;
pub mod dirs;
pub mod logind;
pub mod pidfd;
pub mod procfs;
pub mod rlimit;
pub mod ttys;
pub mod users;
