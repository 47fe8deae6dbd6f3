//! Times as vigil writes them: µs since the epoch on the wire, durations for people, RFC
//! 3339 in records, and the calendar arithmetic the audit readers need.
//!
//! One place for the daemon, `vigilctl` and the audit crate. Durations and RFC 3339 go
//! through `humantime`; it has no calendar arithmetic of its own to call (date ↔ day
//! number, needed to read a syslog timestamp at verify speed), so that is here, once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in µs since the epoch (what the wire structs carry); 0 before 1970.
pub fn now_usec() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// `1h 2m 3s`: a duration in a sentence (warnings, refusals, `vigilctl status`).
pub fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `1h2m3s`: a duration in a table column.
pub fn compact(d: Duration) -> String {
    human(d).replace(' ', "")
}

/// `0s`, `59s`, `2m13s`, `1h02m13s`, `3d04h05m`: a duration in a timeline, two digits
/// for each unit after the largest, so that a column of them lines up by unit.
pub fn padded(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours:02}h{minutes:02}m")
    } else if hours > 0 {
        format!("{hours}h{minutes:02}m{seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// `2026-11-26T04:14:10Z`: a time in µs since the epoch, UTC, whole seconds.
pub fn rfc3339_seconds(usec: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(usec)).to_string()
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`: eras of 400 years, years starting in March).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since 1970-01-01: the inverse of
/// [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28), 2, "2000 is a leap year");
        assert_eq!(days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28), 1, "1900 is not");
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn the_calendar_agrees_with_humantime() {
        // 2026-11-26T04:14:10Z
        let secs: u64 = 1_795_666_450;
        assert_eq!(rfc3339_seconds(secs * 1_000_000 + 999_999), "2026-11-26T04:14:10Z");
        assert_eq!(civil_from_days((secs / 86_400) as i64), (2026, 11, 26));
    }

    #[test]
    fn durations_for_people_and_tables() {
        let d = Duration::from_secs(3723);
        assert_eq!(human(d), "1h 2m 3s");
        assert_eq!(compact(d), "1h2m3s");
        assert_eq!(compact(Duration::ZERO), "0s");
        assert_eq!(padded(d), "1h02m03s");
        assert_eq!(padded(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5 * 60 + 6)), "3d04h05m");
        assert_eq!(padded(Duration::from_secs(133)), "2m13s");
        assert!(now_usec() > 1_700_000_000_000_000);
    }
}
