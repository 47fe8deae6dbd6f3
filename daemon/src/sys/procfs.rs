//! What vigild reads from /proc about processes.

use std::fs;

// The /proc parsing the module and the test harness share lives in vigil-host; vigild's
// own readings (a session's TCP peer through pidfd) stay here.
pub use vigil_host::procfs::*;

/// The path of the process's executable (`/proc/PID/exe`), as the kernel names it:
/// `" (deleted)"` follows a file removed since it was run.
pub fn exe(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.to_string_lossy().into_owned())
}

/// vigild's own resident memory in bytes (`/proc/self/statm`: pages).
pub fn own_resident_bytes() -> Option<u64> {
    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten()?;
    Some(pages * u64::try_from(page).ok()?)
}

/// How many descriptors vigild holds: since Linux 6.2 the size `stat` gives
/// `/proc/self/fd` (one system call, however many there are: at 10,000 sessions vigild
/// holds thousands of pidfds); on an older kernel (size 0), the directory is listed.
pub fn own_open_fds() -> Option<u64> {
    let size = fs::metadata("/proc/self/fd").ok()?.len();
    if size > 0 {
        return Some(size);
    }
    // The listing's own descriptor is not one of vigild's.
    Some(fs::read_dir("/proc/self/fd").ok()?.count().saturating_sub(1) as u64)
}

/// The remote port of a TCP connection the process holds (sshd's session process holds
/// the client's connection). Each socket fd of the process is copied into vigild with
/// pidfd_getfd(2) and asked for its peer: a few system calls, where reading
/// /proc/net/tcp walks the kernel's whole connection table (milliseconds on a large
/// machine, at every login).
pub fn remote_port(pid: u32) -> Option<u16> {
    let pidfd = crate::sys::pidfd::open(pid).ok()?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    // Bounded: a session process has a handful of fds; stop after 256 sockets.
    fds.flatten()
        .filter(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:[")))
        .filter_map(|fd| fd.file_name().to_str()?.parse::<i32>().ok())
        .take(256)
        .find_map(|target| {
            let copy = crate::sys::pidfd::get_fd(&pidfd, target).ok()?;
            tcp_peer_port(&copy)
        })
}

/// The peer's port of a connected TCP socket (v4 or v6); `None` for anything else.
fn tcp_peer_port(socket: &std::os::fd::OwnedFd) -> Option<u16> {
    use nix::sys::socket::{SockaddrLike, SockaddrStorage, getpeername, getsockopt, sockopt};
    use std::os::fd::AsRawFd;
    if getsockopt(socket, sockopt::SockType).ok()? != nix::sys::socket::SockType::Stream {
        return None;
    }
    let peer: SockaddrStorage = getpeername(socket.as_raw_fd()).ok()?;
    match peer.family()? {
        nix::sys::socket::AddressFamily::Inet => peer.as_sockaddr_in().map(|a| a.port()),
        nix::sys::socket::AddressFamily::Inet6 => peer.as_sockaddr_in6().map(|a| a.port()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_port_of_a_tcp_connection_this_process_holds() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server_side, peer) = listener.accept().unwrap();
        // This process holds both ends; the first connected socket found answers with
        // one of the two ports.
        let port = remote_port(std::process::id()).expect("a TCP peer");
        assert!(port == peer.port() || port == listener.local_addr().unwrap().port(), "{port}");
        drop(client);
    }
}
