//! Sessions: the registry of login sessions and the manager's calls on it (a login's
//! open and close, re-authentication, idle inhibitors, the admin's calls), each kept on
//! disk, restored after a restart, and adopted when nobody registered them.

pub mod admin_calls;
pub mod adopt;
pub mod alerts;
pub mod bursts;
pub mod by;
pub mod ids;
pub mod inhibit;
pub mod inhibit_calls;
pub mod lateness;
pub mod lock_calls;
pub mod manager;
pub mod ownership;
pub mod policy_cache;
pub mod reauth;
pub mod reauth_calls;
pub mod registry;
pub mod restore;
pub mod session;
pub mod session_calls;
pub mod store;
pub mod tty_claims;
