//! vigild's descriptor limit. Every peer of the private socket, every pidfd and every
//! inotify watch is a descriptor; systemd starts services with a soft RLIMIT_NOFILE of
//! 1,024 and a hard one far higher (the unit raises it with `LimitNOFILE=`). vigild uses
//! epoll only (tokio), never select(), so it takes the whole hard limit: running out is
//! what would make a login go unregistered, while the admission limits keep the count
//! far below it.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft RLIMIT_NOFILE to the hard limit. Returns (old soft, new soft); never
/// lowers it.
pub fn raise_nofile_soft_to_hard() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok((soft, hard))
}

/// The soft RLIMIT_NOFILE in force.
pub fn nofile_soft() -> Option<u64> {
    getrlimit(Resource::RLIMIT_NOFILE).ok().map(|(soft, _)| soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one_and_never_lowered() {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let (old, new) = raise_nofile_soft_to_hard().expect("raise");
        assert_eq!(old, soft);
        assert_eq!(new, hard.max(soft));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit"), (new, hard));
        // From one below the hard limit (the other tests of this process keep room).
        setrlimit(Resource::RLIMIT_NOFILE, hard - 1, hard).expect("lower by one");
        assert_eq!(raise_nofile_soft_to_hard().expect("raise"), (hard - 1, hard));
        // Already at the hard limit: nothing changes.
        assert_eq!(raise_nofile_soft_to_hard().expect("raise"), (hard, hard));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit"), (hard, hard));
    }
}
