//! `vigilctl list` as a table that reads at a glance: idle time against the limit (a
//! bar and a percentage), sessions that end soonest first, inhibitors marked. Colour
//! only on a terminal, and never with `NO_COLOR` (https://no-color.org).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use vigil_protocol::time::compact;
use vigil_protocol::{InhibitorInfo, SessionInfo};

use super::{age, deadline_column, now_usec, or_dash, printable, tty_column};

const BAR_WIDTH: u64 = 10;

/// Whether to colour: stdout is a terminal and `NO_COLOR` is unset or empty.
pub fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// How far the session is on its way to its end by the clock: the time since its last
/// activity over the time from that activity to its deadline (in per cent, at most
/// 100). `None` when no limit applies.
pub fn used_percent(s: &SessionInfo, now: u64) -> Option<u64> {
    if s.deadline_usec == 0 {
        return None;
    }
    let span = s.deadline_usec.saturating_sub(s.last_activity_usec).max(1);
    let idle = now.saturating_sub(s.last_activity_usec);
    Some((idle.saturating_mul(100) / span).min(100))
}

/// `[####......] 42%`, or `-` when no limit applies.
fn bar(percent: Option<u64>) -> String {
    match percent {
        None => "-".into(),
        Some(p) => {
            let filled = (p * BAR_WIDTH).div_ceil(100).min(BAR_WIDTH) as usize;
            format!("[{}{}] {p:>3}%", "#".repeat(filled), ".".repeat(BAR_WIDTH as usize - filled))
        }
    }
}

/// Ends soonest first; sessions without a deadline last, by id.
pub fn sort(sessions: &mut [SessionInfo]) {
    sessions.sort_by_key(|s| (s.deadline_usec == 0, s.deadline_usec, s.id));
}

fn paint(text: String, percent: Option<u64>, colour: bool) -> String {
    let code = match percent {
        Some(p) if p >= 90 => "31",
        Some(p) if p >= 75 => "33",
        _ => return text,
    };
    if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text }
}

/// The inhibitor column: time left and the reason (escaped).
fn inhibitor_column(i: Option<&InhibitorInfo>, now: u64) -> String {
    match i {
        None => String::new(),
        Some(i) => {
            let left = Duration::from_secs(i.until_usec.saturating_sub(now) / 1_000_000);
            format!("inhibited {} \"{}\"", compact(left), printable(&i.why))
        }
    }
}

pub fn print_table(mut sessions: Vec<SessionInfo>, inhibitors: &[InhibitorInfo], colour: bool) {
    sort(&mut sessions);
    let by_session: HashMap<u64, &InhibitorInfo> = inhibitors.iter().map(|i| (i.session, i)).collect();
    let now = now_usec();
    println!(
        "{:>6} {:<12} {:>6} {:<12} {:<8} {:<18} {:>7} {:>8} {:>8} {:<16} {:>8}  {:<10} INHIBITOR",
        "ID", "USER", "UID", "SERVICE", "TTY", "RHOST", "LEADER", "AGE", "IDLE", "TO LIMIT", "ENDS IN", "POLICY"
    );
    for s in &sessions {
        let percent = used_percent(s, now);
        let inhibitor = by_session.get(&s.id).copied();
        let line = format!(
            "{:>6} {:<12} {:>6} {:<12} {:<8} {:<18} {:>7} {:>8} {:>8} {:<16} {:>8}{} {:<10} {}",
            s.id,
            or_dash(&s.user),
            s.uid,
            or_dash(&s.service),
            tty_column(s),
            or_dash(&s.rhost),
            s.leader_pid,
            age(s.started_usec),
            age(s.last_activity_usec),
            bar(percent),
            deadline_column(s),
            if inhibitor.is_some() { " *" } else { "  " },
            printable(&s.policy),
            inhibitor_column(inhibitor, now),
        );
        println!("{}", paint(line.trim_end().to_owned(), percent, colour));
    }
    let inhibited = sessions.iter().filter(|s| by_session.contains_key(&s.id)).count();
    let note = if inhibited > 0 {
        format!(", {inhibited} inhibited (*: not ended for idleness before its inhibitor expires)")
    } else {
        String::new()
    };
    println!("{} session(s){note}", sessions.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u64, last: u64, deadline: u64) -> SessionInfo {
        SessionInfo {
            id,
            user: "alice".into(),
            uid: 1000,
            service: "sshd".into(),
            tty: "ssh".into(),
            rhost: String::new(),
            leader_pid: 1,
            audit_session_id: 1,
            started_usec: 0,
            last_activity_usec: last,
            policy: "defaults".into(),
            ttys: vec![],
            deadline_usec: deadline,
            parent: 0,
            activity_by: "start".into(),
            activity_tty: String::new(),
            activity_reader: String::new(),
            accesses_ignored: 0,
        }
    }

    #[test]
    fn idle_against_the_limit() {
        assert_eq!(used_percent(&session(1, 0, 100), 50), Some(50));
        assert_eq!(used_percent(&session(1, 0, 100), 500), Some(100));
        assert_eq!(used_percent(&session(1, 0, 0), 50), None);
        assert_eq!(bar(Some(42)), "[#####.....]  42%");
        assert_eq!(bar(Some(0)), "[..........]   0%");
        assert_eq!(bar(None), "-");
    }

    #[test]
    fn ends_soonest_first_and_unlimited_last() {
        let mut list = vec![session(1, 0, 0), session(2, 0, 300), session(3, 0, 100), session(4, 0, 0)];
        sort(&mut list);
        assert_eq!(list.iter().map(|s| s.id).collect::<Vec<_>>(), vec![3, 2, 1, 4]);
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(paint("x".into(), Some(95), false), "x");
        assert_eq!(paint("x".into(), Some(95), true), "\x1b[31mx\x1b[0m");
        assert_eq!(paint("x".into(), Some(10), true), "x");
    }
}
