//! Process handles that cannot be fooled by pid reuse (pidfd_open(2), Linux ≥ 5.3).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

pub fn open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the kernel returns a new fd we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A copy, in vigild, of the process's file descriptor `target` (pidfd_getfd(2),
/// Linux ≥ 5.6; root only, as ptrace attach).
pub fn get_fd(pidfd: &OwnedFd, target: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the kernel returns a new fd we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `signal` to the process behind `fd`; false when it is already gone.
pub fn send_signal(fd: &OwnedFd, signal: libc::c_int) -> bool {
    // SAFETY: plain syscall on a descriptor we own.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0) };
    rc == 0
}

/// Resolves when the process behind `fd` has exited.
pub async fn exited(fd: OwnedFd) -> std::io::Result<()> {
    // SAFETY: the AsyncFd owns `fd` and is dropped (deregistered) before it closes.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)? };
    let _guard = fd.readable().await?;
    Ok(())
}

/// Whether the process behind `fd` has exited (without waiting).
pub fn has_exited(fd: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && (pfd.revents & libc::POLLIN) != 0
}
