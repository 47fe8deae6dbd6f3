//! Transport: how a call reaches vigild (the system bus, the private socket and its
//! quick path), who is calling, and which peers are refused or throttled before the
//! manager sees a call.

pub mod bus_shares;
pub mod bus_socket;
pub mod caller;
pub mod guarded_socket;
pub mod manager_iface;
pub mod polkit;
pub mod private_socket;
pub mod session_iface;
pub mod session_objects;
pub mod single_call;
pub mod throttle;
