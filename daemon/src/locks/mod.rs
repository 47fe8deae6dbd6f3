//! User locks (`vigilctl lock`): the book of locks in force with their files, and the
//! task that ends each when its time runs out. The calls that take and lift them, and
//! end the user's sessions, are the manager's (`sessions/lock_calls.rs`); the module
//! reads the files itself (`pam_module/src/lock_check.rs`), without vigild.

pub mod book;
pub mod expiry;
