//! What vigil reads about the machine it runs on, in one place for the PAM module, the
//! daemon and the test harness:
//!
//! - [`files`]: small files only root may have written (vigild's locks);
//! - [`procfs`]: processes as `/proc` shows them (stat, status, audit session, trees);
//! - [`tty`]: the kernel's `tty_nr` and the device names it stands for;
//! - [`users`]: accounts through NSS.
//!
//! Blocking, std-only helpers: no runtime, no thread, no descriptor kept between calls
//! (the module runs inside sshd and sudo).

pub mod files;
pub mod procfs;
pub mod tty;
pub mod users;
