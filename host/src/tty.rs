//! Terminals as the kernel numbers them (`tty_nr`, field 7 of `/proc/PID/stat`) and
//! the device names they stand for.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A tty as the kernel numbers it in `/proc/PID/stat` (field `tty_nr`).
pub type TtyNr = u32;

/// Unix98 pty slaves: majors 136 to 143.
const PTS_MAJOR_FIRST: u32 = 136;
const PTS_MAJOR_LAST: u32 = 143;
/// Virtual consoles: major 4, minors 1 to 63.
const TTY_MAJOR: u32 = 4;

fn split(tty_nr: TtyNr) -> (u32, u32) {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    (major, minor)
}

pub fn tty_nr_of(major: u32, minor: u32) -> TtyNr {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// The device path of a tty: `/dev/pts/N` for ptys, `/dev/ttyN` for virtual consoles.
pub fn device_path(tty_nr: TtyNr) -> Option<PathBuf> {
    let (major, minor) = split(tty_nr);
    if (PTS_MAJOR_FIRST..=PTS_MAJOR_LAST).contains(&major) {
        Some(PathBuf::from(format!("/dev/pts/{}", (major - PTS_MAJOR_FIRST) * 256 + minor)))
    } else if major == TTY_MAJOR && (1..64).contains(&minor) {
        Some(PathBuf::from(format!("/dev/tty{minor}")))
    } else {
        None
    }
}

/// The tty_nr of `/dev/pts/N`.
pub fn pts_tty_nr(n: u32) -> TtyNr {
    tty_nr_of(PTS_MAJOR_FIRST + n / 256, n % 256)
}

/// The tty_nr of a device path PAM gave (`/dev/tty1`, `tty1`, `pts/3`), if it names a
/// tty this machine has.
pub fn tty_nr_of_name(name: &str) -> Option<TtyNr> {
    let path = if name.starts_with('/') { PathBuf::from(name) } else { PathBuf::from("/dev").join(name) };
    let rdev = std::fs::metadata(&path).ok()?.rdev();
    let nr = tty_nr_of(nix::sys::stat::major(rdev) as u32, nix::sys::stat::minor(rdev) as u32);
    device_path(nr).is_some().then_some(nr)
}

/// Short name for records and `vigilctl`: `pts/3`, `tty1`.
pub fn short_name(tty_nr: TtyNr) -> String {
    device_path(tty_nr).map(|p| p.to_string_lossy().trim_start_matches("/dev/").to_string()).unwrap_or_else(|| format!("tty_nr:{tty_nr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_numbers_round_trip() {
        for n in [0, 1, 9, 255, 256, 1000, 2047] {
            let nr = pts_tty_nr(n);
            assert_eq!(device_path(nr), Some(PathBuf::from(format!("/dev/pts/{n}"))), "pts {n}");
        }
        // What /proc shows for /dev/pts/1: major 136, minor 1.
        assert_eq!(pts_tty_nr(1), 34817);
        assert_eq!(device_path(tty_nr_of(4, 1)), Some(PathBuf::from("/dev/tty1")));
        assert_eq!(device_path(0), None);
        assert_eq!(short_name(pts_tty_nr(3)), "pts/3");
        assert_eq!(short_name(0), "tty_nr:0");
    }

    #[test]
    fn tty_nr_decodes() {
        assert_eq!(device_path(34818), Some(PathBuf::from("/dev/pts/2"))); // 136:2
        assert_eq!(device_path((136 << 8) | 0x10_0000 | 5), Some(PathBuf::from("/dev/pts/261"))); // minor 0x105
        assert_eq!(device_path((137 << 8) | 3), Some(PathBuf::from("/dev/pts/259")));
        assert_eq!(device_path((4 << 8) | 1), Some(PathBuf::from("/dev/tty1")));
    }

    #[test]
    fn names_pam_gives() {
        assert_eq!(tty_nr_of_name("ssh"), None);
        assert_eq!(tty_nr_of_name("/dev/null"), None, "not a tty");
    }
}
