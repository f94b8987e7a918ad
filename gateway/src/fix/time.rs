//! UTCTimestamp (`YYYYMMDD-HH:MM:SS[.sss]`) to and from Unix nanoseconds.
//!
//! The civil-date arithmetic is written out here rather than taken from a date crate: it is a
//! few lines, it must not allocate or read the clock, and the codec needs only the proleptic
//! Gregorian calendar from 1970 on.

const NS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// Days in each month of a common year, January first.
const MONTH_DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Days before the first of each month in a common year.
const DAYS_BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// Whether `year` has a 29 February in the Gregorian calendar.
pub const fn is_leap_year(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days of `month` (1-12) in `year`; 0 for a month out of range.
pub const fn days_in_month(year: u32, month: u32) -> u32 {
    if month == 0 || month > 12 {
        return 0;
    }
    if month == 2 && is_leap_year(year) {
        29
    } else {
        MONTH_DAYS[(month - 1) as usize]
    }
}

/// Leap years in `1..year` (years before `year`, counted from 1 AD).
const fn leap_years_before(year: u32) -> u64 {
    let y = (year - 1) as u64;
    y / 4 - y / 100 + y / 400
}

/// Days from 1970-01-01 to `year`-`month`-`day`. The date must be valid and not before 1970
/// (`year >= 1970`, `month` 1-12, `day` within the month); callers validate first.
pub const fn days_from_civil(year: u32, month: u32, day: u32) -> u64 {
    let years = (year - 1970) as u64;
    // Whole years since 1970 are 365 days each plus one per leap year in between.
    let mut days = years * 365 + leap_years_before(year) - leap_years_before(1970);
    days += DAYS_BEFORE_MONTH[(month - 1) as usize] as u64;
    if month > 2 && is_leap_year(year) {
        days += 1;
    }
    days + (day - 1) as u64
}

/// The date (year, month 1-12, day 1-31) that is `days` days after 1970-01-01.
pub const fn civil_from_days(days: u64) -> (u32, u32, u32) {
    // Estimate the year from the mean Gregorian year (146097 days per 400 years); the estimate
    // is never more than one year off, so at most one correction step in each direction runs.
    let mut year = 1970 + (days * 400 / 146_097) as u32;
    while year > 1970 && days_from_civil(year, 1, 1) > days {
        year -= 1;
    }
    while days_from_civil(year + 1, 1, 1) <= days {
        year += 1;
    }
    let mut rest = (days - days_from_civil(year, 1, 1)) as u32;
    let mut month = 1;
    loop {
        let len = days_in_month(year, month);
        if rest < len || month == 12 {
            break;
        }
        rest -= len;
        month += 1;
    }
    (year, month, rest + 1)
}

/// Writes two decimal digits of `v` (0-99).
fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Formats `unix_ns` as a UTCTimestamp with milliseconds, `YYYYMMDD-HH:MM:SS.sss` (21 bytes),
/// truncating (not rounding) below the millisecond so that a timestamp never moves forward.
pub fn format_utc_timestamp_ms(unix_ns: u64, out: &mut [u8; 21]) {
    let (date, time) = out.split_at_mut(8);
    format_date(unix_ns / NS_PER_DAY, date);
    format_time_of_day_ms(unix_ns % NS_PER_DAY, time);
}

pub(crate) const NS_PER_DAY: u64 = NS_PER_SEC * SECS_PER_DAY;

/// Writes `YYYYMMDD` for the day `days` after 1970-01-01 into `out[..8]`. u64 nanoseconds end in
/// 2554, so the year always has four digits.
pub(crate) fn format_date(days: u64, out: &mut [u8]) {
    let (year, month, day) = civil_from_days(days);
    put2(&mut out[0..2], year / 100);
    put2(&mut out[2..4], year % 100);
    put2(&mut out[4..6], month);
    put2(&mut out[6..8], day);
}

/// Writes `-HH:MM:SS.sss` for `ns_of_day` (below one day) into `out[..13]`.
pub(crate) fn format_time_of_day_ms(ns_of_day: u64, out: &mut [u8]) {
    let sod = (ns_of_day / NS_PER_SEC) as u32;
    let millis = ((ns_of_day % NS_PER_SEC) / 1_000_000) as u32;
    out[0] = b'-';
    put2(&mut out[1..3], sod / 3600);
    out[3] = b':';
    put2(&mut out[4..6], sod / 60 % 60);
    out[6] = b':';
    put2(&mut out[7..9], sod % 60);
    out[9] = b'.';
    out[10] = b'0' + (millis / 100) as u8;
    put2(&mut out[11..13], millis % 100);
}

/// The value of the ASCII digits `v`, or `None` if any byte is not a digit.
fn digits(v: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    Some(n)
}

/// Parses a UTCTimestamp `YYYYMMDD-HH:MM:SS` with an optional fraction of exactly 3, 6 or 9
/// digits, and returns Unix nanoseconds.
///
/// Ranges are checked: year 1970-9999, month 1-12, day valid for the month (leap years
/// included), hour below 24, minute below 60, second at most 60. A leap second (60) counts as
/// the first second of the next minute, since Unix time has no leap seconds. Dates that do not
/// fit in u64 nanoseconds (after 2554-07-21) are rejected like any other invalid value.
pub fn parse_utc_timestamp(v: &[u8]) -> Option<u64> {
    let frac_digits = match v.len() {
        17 => 0,
        21 | 24 | 27 => v.len() - 18,
        _ => return None,
    };
    if v[8] != b'-' || v[11] != b':' || v[14] != b':' {
        return None;
    }
    let year = digits(&v[0..4])?;
    let month = digits(&v[4..6])?;
    let day = digits(&v[6..8])?;
    let hour = digits(&v[9..11])?;
    let minute = digits(&v[12..14])?;
    let second = digits(&v[15..17])?;
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut frac_ns = 0u64;
    if frac_digits > 0 {
        if v[17] != b'.' {
            return None;
        }
        frac_ns = u64::from(digits(&v[18..])?);
        // Scale milliseconds or microseconds up to nanoseconds.
        for _ in frac_digits..9 {
            frac_ns *= 10;
        }
    }
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY
        + u64::from(hour) * 3600
        + u64::from(minute) * 60
        + u64::from(second);
    secs.checked_mul(NS_PER_SEC)?.checked_add(frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every day from 1970 to the end of u64 nanoseconds converts to a date and back, and
    /// consecutive days are consecutive dates.
    #[test]
    fn civil_conversions_agree_over_every_day() {
        let last_day = u64::MAX / NS_PER_SEC / SECS_PER_DAY;
        let mut prev = (1969, 12, 31);
        for days in 0..=last_day {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            let (py, pm, pd) = prev;
            let next = if pd < days_in_month(py, pm) {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), next, "day {days}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn known_dates() {
        // Checked with `date -u -d @<secs>`.
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2000, 2, 29) * SECS_PER_DAY + 45_296,
            951_827_696
        );
        assert_eq!(days_from_civil(2024, 2, 29) * SECS_PER_DAY, 1_709_164_800);
        assert_eq!(
            days_from_civil(2026, 11, 22) * SECS_PER_DAY + 21 * 3600 + 59 * 60 + 26,
            1_795_384_766
        );
        assert_eq!(
            civil_from_days(1_795_384_766 / SECS_PER_DAY),
            (2026, 11, 22)
        );
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000) && is_leap_year(2024) && is_leap_year(2400));
        assert!(!is_leap_year(1900) && !is_leap_year(2100) && !is_leap_year(2023));
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2001, 13), 0);
    }
}
