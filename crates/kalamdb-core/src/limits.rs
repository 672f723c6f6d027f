//! Bounds on every duration and count a user gives (SQL options, legacy records, the daemon's
//! configuration), and the one place time arithmetic on them is done.
//!
//! A value past its bound is refused when it is parsed, with the bound in the message. Time
//! arithmetic saturates, so even a stored value that predates these bounds can never move a
//! cutoff into the future: an enormous TTL evicts nothing, it never evicts everything.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use crate::{CoreError, Result};

/// A century: no retention, TTL or interval needs to be longer.
pub const MAX_SECONDS: u64 = 100 * 365 * 24 * 60 * 60 + 25 * 24 * 60 * 60;
/// [`MAX_SECONDS`] in hours.
pub const MAX_HOURS: u64 = MAX_SECONDS / 3600;
/// [`MAX_SECONDS`] in days.
pub const MAX_DAYS: u64 = MAX_SECONDS / 86_400;
/// The largest row count an option takes (`MAX_BUFFER`, `FLUSH_POLICY` rows): every count
/// must fit the `BIGINT` columns of `system.tables`.
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// Checks `value` (named `what` in the message) against `1..=max`, or `0..=max` when `zero`.
pub fn bounded(what: &str, value: u64, zero: bool, max: u64, unit: &str) -> Result<u64> {
    if value > max || (!zero && value == 0) {
        let low = if zero { 0 } else { 1 };
        return Err(CoreError::InvalidInput(format!(
            "{what} = {value} is out of range; use {low} to {max}{unit}"
        )));
    }
    Ok(value)
}

/// The one duration grammar (humantime's: `30m`, `12h`, `7d`, `2w`, `1h 30m`), for SQL
/// options and kalamctl's flags alike. `what` names the option in the error.
pub fn parse_duration(what: &str, text: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        CoreError::InvalidInput(format!(
            "{what} = '{text}' is not a duration ({e}); write it like '30m', '12h' or '7d'"
        ))
    })
}

/// Parses a whole number option and bounds it.
pub fn parse_bounded(what: &str, text: &str, zero: bool, max: u64, unit: &str) -> Result<u64> {
    let t = text.trim();
    let n: u64 = t.parse().map_err(|_| {
        let hint = if t.starts_with('-') {
            "must not be negative"
        } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            "is too large"
        } else {
            "must be a whole number"
        };
        let low = if zero { 0 } else { 1 };
        CoreError::InvalidInput(format!(
            "{what} = '{text}' {hint}; use {low} to {max}{unit}"
        ))
    })?;
    bounded(what, n, zero, max, unit)
}

/// Seconds as milliseconds, saturating at `i64::MAX`.
pub fn seconds_to_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Days as milliseconds, saturating at `i64::MAX`.
pub fn days_to_ms(days: u64) -> i64 {
    seconds_to_ms(days.saturating_mul(86_400))
}

/// `now` minus `age_ms`, saturating: the cutoff for "older than `age_ms`". Never later than
/// `now`, whatever the age.
pub fn cutoff(now_ms: i64, age_ms: i64) -> i64 {
    now_ms.saturating_sub(age_ms.max(0))
}

/// Whether at least `age_ms` passed between `since_ms` and `now_ms` (false if the clock went
/// back).
pub fn elapsed_at_least(now_ms: i64, since_ms: i64, age_ms: i64) -> bool {
    now_ms.checked_sub(since_ms).is_some_and(|d| d >= age_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cutoff_never_passes_now() {
        let now = 1_764_000_000_000;
        assert_eq!(
            cutoff(now, seconds_to_ms(u64::MAX)),
            now.saturating_sub(i64::MAX)
        );
        assert!(cutoff(now, seconds_to_ms(u64::MAX)) < 0);
        assert_eq!(cutoff(now, -5), now);
        assert_eq!(cutoff(i64::MIN, i64::MAX), i64::MIN);
        assert_eq!(cutoff(now, seconds_to_ms(60)), now - 60_000);
    }

    #[test]
    fn elapsed_is_false_when_the_clock_goes_back_or_the_age_is_huge() {
        assert!(elapsed_at_least(10_000, 0, 10_000));
        assert!(!elapsed_at_least(9_999, 0, 10_000));
        assert!(!elapsed_at_least(0, 10, 0));
        assert!(!elapsed_at_least(i64::MAX, i64::MIN, 0));
        assert!(!elapsed_at_least(1, 0, days_to_ms(u64::MAX)));
    }

    #[test]
    fn parse_bounded_names_the_reason() {
        let e = |t: &str| {
            parse_bounded("TTL_SECONDS", t, false, MAX_SECONDS, " seconds")
                .expect_err(t)
                .to_string()
        };
        assert!(e("-1").contains("must not be negative"), "{}", e("-1"));
        assert!(e("18446744073709551616").contains("too large"));
        assert!(e("abc").contains("whole number"));
        assert!(e("0").contains("out of range"));
        assert!(e(&(MAX_SECONDS + 1).to_string()).contains("out of range"));
        assert_eq!(
            parse_bounded("X", &MAX_SECONDS.to_string(), false, MAX_SECONDS, "").ok(),
            Some(MAX_SECONDS)
        );
    }
}
