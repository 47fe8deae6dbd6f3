//! Unit tests of `tty_input.rs`: its bookkeeping, and reads told from other accesses on real ptys.

use super::*;

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

fn reader(pid: u32, read_calls: u64) -> Reader {
    Reader { pid, start_time: 100 + u64::from(pid), read_calls, comm: format!("p{pid}") }
}

fn fg(readers: Vec<Reader>) -> Foreground {
    Foreground { on_tty: readers.clone(), readers, ..Foreground::default() }
}

#[test]
fn an_access_is_a_read_only_when_a_known_foreground_process_read() {
    let shell = reader(10, 500);
    // The shell read a key.
    assert_eq!(judge(&fg(vec![shell.clone()]), &fg(vec![reader(10, 501)])), Verdict::Read(reader(10, 501)));
    // `touch -a` from a background job: the foreground did not read.
    assert_eq!(judge(&fg(vec![shell.clone()]), &fg(vec![shell.clone()])), Verdict::NotARead);
    // A new foreground job (or a reused pid): nothing to compare with.
    assert_eq!(judge(&fg(vec![shell.clone()]), &fg(vec![reader(11, 40)])), Verdict::Unknown);
    let reused = Reader { start_time: 999, ..reader(10, 900) };
    assert_eq!(judge(&fg(vec![shell.clone()]), &fg(vec![reused])), Verdict::Unknown);
    // A pipeline: one member known and reading is enough.
    assert_eq!(judge(&fg(vec![shell.clone()]), &fg(vec![reader(11, 3), reader(10, 502)])), Verdict::Read(reader(10, 502)));
    // No foreground found: nothing concluded.
    assert_eq!(judge(&fg(vec![shell]), &fg(vec![])), Verdict::Unknown);
}

#[test]
fn a_shell_that_read_and_then_handed_the_terminal_to_its_command_read_the_input() {
    // The keys of `vigilctl inhibit …⏎`: bash read them, then vigilctl became the
    // foreground before the look.
    let before = fg(vec![reader(10, 50)]);
    let now = Foreground { readers: vec![reader(11, 3)], former: vec![reader(10, 62)], ..Foreground::default() };
    assert_eq!(judge(&before, &now), Verdict::Read(reader(10, 62)));
    // A former foreground that did not read proves nothing; the new one is unknown.
    let idle = Foreground { readers: vec![reader(11, 3)], former: vec![reader(10, 50)], ..Foreground::default() };
    assert_eq!(judge(&before, &idle), Verdict::Unknown);
}

#[test]
fn the_shell_that_started_the_command_in_front_read_the_line_between_two_looks() {
    // Both looks found a command of the shell's in front (the previous round's and
    // this one's); the shell, waiting behind, read the new command line in between.
    let before = Foreground { readers: vec![reader(20, 5)], on_tty: vec![reader(10, 50), reader(20, 5)], ..Foreground::default() };
    let now = Foreground { readers: vec![reader(30, 2)], launchers: vec![reader(10, 61)], ..Foreground::default() };
    assert_eq!(judge(&before, &now), Verdict::Read(reader(10, 61)));
    let still = Foreground { readers: vec![reader(30, 2)], launchers: vec![reader(10, 50)], ..Foreground::default() };
    assert_eq!(judge(&before, &still), Verdict::Unknown);
}

#[test]
fn accesses_share_a_look_a_little_after_the_first() {
    let mut checks = InputChecks::default();
    let tty = 34816;
    assert!(checks.wants_first_look(tty));
    checks.first_look(tty, fg(vec![reader(10, 500)]), 10 * S);
    assert!(!checks.wants_first_look(tty));
    assert_eq!(checks.access(tty, 20 * S), Some(20 * S + LOOK_DELAY_USEC));
    assert_eq!(checks.access(tty, 20 * S + 5 * MS), None, "one look for both");
    let read = checks.judge(tty, Ok(fg(vec![reader(10, 502)])), 20 * S + 20 * MS);
    assert_eq!(read, Some(Outcome::Read { at: 20 * S + 5 * MS, reader: "p10[10]".into(), periodic: None }));
    assert_eq!(checks.judge(tty, Ok(fg(vec![reader(10, 502)])), 20 * S + 30 * MS), None, "nothing pending");
    // The next look keeps its distance from the last one.
    assert_eq!(checks.access(tty, 20 * S + 40 * MS), Some(20 * S + 120 * MS));
    // Found nothing new so soon after a look: a read already counted, not reported.
    let soon = checks.judge(tty, Ok(fg(vec![reader(10, 502)])), 20 * S + 120 * MS);
    assert_eq!(soon, Some(Outcome::Ignored { at: 20 * S + 40 * MS, events: 1, foreground: "p10".into(), report: false }));
    // Three seconds later, two accesses and still no read: `not_a_read`.
    checks.access(tty, 23 * S);
    checks.access(tty, 23 * S + MS);
    let touched = checks.judge(tty, Ok(fg(vec![reader(10, 502)])), 23 * S + 20 * MS);
    assert_eq!(touched, Some(Outcome::Ignored { at: 23 * S + MS, events: 2, foreground: "p10".into(), report: true }));
    // /proc unreadable: nothing concluded, the access counts as it always did; the
    // next look compares with the last one read.
    checks.access(tty, 26 * S);
    let failed = checks.judge(tty, Err(std::io::Error::from_raw_os_error(libc::EMFILE)), 26 * S + 20 * MS);
    assert_eq!(failed, Some(Outcome::Unverified { at: 26 * S }));
    checks.access(tty, 29 * S);
    assert!(matches!(checks.judge(tty, Ok(fg(vec![reader(10, 503)])), 29 * S + 20 * MS), Some(Outcome::Read { .. })));
}

/// Input read at `times` (ms), each echoed or not, as looks see it.
fn rhythm_of(inputs: &[(u64, bool)]) -> Vec<Option<u64>> {
    let mut rhythm = Rhythm::default();
    inputs
        .iter()
        .map(|&(at, echoed)| {
            let found = rhythm.input(at * MS, at * MS + 5 * MS, false);
            if echoed {
                rhythm.output(at * MS + 10 * MS);
            }
            found
        })
        .collect()
}

#[test]
fn input_at_a_fixed_period_without_echo_is_periodic() {
    let every_3s: Vec<(u64, bool)> = (0..6).map(|i| (i * 3000 + (i % 2) * 40, false)).collect();
    let found = rhythm_of(&every_3s);
    assert_eq!(found[..4], [None, None, None, None], "five bursts are needed");
    assert!(found[4].is_some_and(|p| p.abs_diff(3 * S) < 100 * MS), "{found:?}");
    // Echoed (a shell showing what was typed), even at a fixed period: not noted.
    let echoed: Vec<(u64, bool)> = (0..6).map(|i| (i * 3000, true)).collect();
    assert!(rhythm_of(&echoed).iter().all(Option::is_none));
    // A person's keys, unechoed (C-@ in readline) but at uneven times: not noted.
    let uneven = [(0, false), (2100, false), (5900, false), (7300, false), (11000, false), (12500, false)];
    assert!(rhythm_of(&uneven).iter().all(Option::is_none));
    // Keys typed together are one burst.
    let typed: Vec<(u64, bool)> = (0..20).map(|i| (i * 150, false)).collect();
    assert!(rhythm_of(&typed).iter().all(Option::is_none));
}

#[test]
fn output_right_after_pending_input_is_its_echo() {
    let mut checks = InputChecks::default();
    let tty = 34816;
    let mut found = Vec::new();
    for i in 0..6u64 {
        let at = 100 * S + i * 2 * S;
        checks.first_look(tty, fg(vec![reader(10, i)]), at - S);
        checks.access(tty, at);
        checks.output(tty, at + 2 * MS);
        found.push(checks.judge(tty, Ok(fg(vec![reader(10, i + 1)])), at + 20 * MS));
    }
    assert!(found.iter().all(|o| matches!(o, Some(Outcome::Read { periodic: None, .. }))), "{found:?}");
}

/// A shell on a pty of this process's, reading lines from it as a person's shell does.
fn shell_on_pty(script: &str) -> (std::os::fd::OwnedFd, std::process::Child, TtyNr) {
    use crate::sessions::ownership::tests::{holder_of, open_pty};
    let (master, slave, tty) = open_pty();
    let shell = holder_of(&slave, &["sh", "-c", script], "sh");
    (master, shell, tty)
}

#[test]
fn a_foreground_read_moves_the_count_and_touch_a_does_not() {
    use std::io::Write;
    let (master, shell, tty) = shell_on_pty("while read line; do :; done");
    let roots = [shell.id()];
    let wait_still = || {
        // The shell is back in its read once its count stops moving.
        let mut last = look(&roots, tty, None).expect("/proc");
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let now = look(&roots, tty, Some(&last)).expect("/proc");
            if now == last {
                return now;
            }
            last = now;
        }
        last
    };
    let before = wait_still();
    assert_eq!(before.readers.iter().map(|r| r.pid).collect::<Vec<_>>(), vec![shell.id()], "{before:?}");

    // `touch -a` on the pty, as any background job of its user may.
    let path = crate::sys::ttys::device_path(tty).expect("a pts path");
    let touched = std::process::Command::new("touch").arg("-a").arg(&path).status().expect("touch");
    assert!(touched.success());
    assert_eq!(judge(&before, &wait_still()), Verdict::NotARead);

    // A line typed: the shell reads it.
    let mut typed = std::fs::File::from(master.try_clone().expect("dup"));
    typed.write_all(b"hello\n").expect("write to the master");
    let after = wait_still();
    assert!(matches!(judge(&before, &after), Verdict::Read(ref r) if r.pid == shell.id() && r.comm == "sh"), "{after:?}");
    crate::sessions::ownership::tests::end(shell);
}

/// The cost of one look (what each keystroke costs vigild, at most every 100 ms per
/// tty): `cargo test --release -p vigil-daemon --bin vigild look_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run by hand (BENCHMARKS.md)"]
fn look_cost() {
    // A shell with two jobs on the pty, as an ssh login with a job or two has.
    let (_master, shell, tty) = shell_on_pty("sleep 5 & sleep 5 & while read line; do :; done");
    let roots = [shell.id()];
    const LOOKS: u32 = 10_000;
    let mut checks = InputChecks::default();
    let started = std::time::Instant::now();
    for i in 0..LOOKS {
        let now = u64::from(i) * 200_000;
        checks.access(tty, now);
        std::hint::black_box(checks.judge(tty, look(&roots, tty, None), now + LOOK_DELAY_USEC));
    }
    let each = started.elapsed() / LOOKS;
    let baseline_started = std::time::Instant::now();
    for _ in 0..LOOKS {
        std::hint::black_box(procfs::stat(shell.id()));
    }
    let stat_each = baseline_started.elapsed() / LOOKS;
    println!("look_cost: {LOOKS} looks, {each:?} each; one /proc/PID/stat read: {stat_each:?}");
    crate::sessions::ownership::tests::end(shell);
}
