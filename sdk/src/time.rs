//! Durations and times as users type and read them: `90s`, `10m`, `1h30m`; `in 1h 30m`;
//! `2026-12-03 09:40 UTC`.
//!
//! ```
//! use std::time::Duration;
//! use wasmbot_sdk::{prelude::*, time};
//!
//! struct Egg;
//!
//! impl Plugin for Egg {
//!     fn manifest() -> Manifest {
//!         Manifest::new("egg", "0.1.0").command(
//!             CommandSpec::new("boil", "How long, and when it is done")
//!                 .option(OptionSpec::new("for", "Like 7m or 6m30s", OptionKind::Text)),
//!         )
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let typed = event.command().and_then(|c| c.text("for")).unwrap_or_default();
//!         let boil = time::parse_duration(typed)?;
//!         let done = event.received_ms.saturating_add(boil.as_millis() as u64);
//!         Ok(vec![Action::reply(format!(
//!             "{} of boiling: done at {}.",
//!             time::format_duration(boil),
//!             time::format_utc(done),
//!         ))])
//!     }
//! }
//!
//! export_plugin!(Egg);
//! ```

use std::{fmt, time::Duration};

use crate::PluginError;

/// The units [`parse_duration`] takes, largest first, in seconds.
const UNITS: [(char, u64); 5] = [
    ('w', 7 * 24 * 3600),
    ('d', 24 * 3600),
    ('h', 3600),
    ('m', 60),
    ('s', 1),
];

/// Why a text is not a duration; its message is written for the user who typed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDuration(String);

impl fmt::Display for InvalidDuration {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for InvalidDuration {}

/// So `?` works in a handler: the user typed it, so the user is told.
impl From<InvalidDuration> for PluginError {
    fn from(error: InvalidDuration) -> Self {
        PluginError::InvalidInput(error.0)
    }
}

/// A duration as people type it: numbers each followed by a unit, `w`, `d`, `h`, `m` or
/// `s` (weeks to seconds, in any case), largest first, each unit once: `90s`, `10m`,
/// `2h`, `1d`, `1h30m`. Surrounding spaces are ignored; `0m` is zero, which the caller
/// may refuse.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let typed = text.trim();
    let invalid = |why: &str| {
        InvalidDuration(format!(
            "`{typed}` is not a duration: {why}. Write a number and a unit, like 90s, 10m, \
             2h, 1d or 1h30m."
        ))
    };
    if typed.is_empty() {
        return Err(InvalidDuration(
            "A duration is missing: write a number and a unit, like 90s, 10m, 2h, 1d or 1h30m."
                .to_owned(),
        ));
    }
    let mut seconds: u64 = 0;
    let mut number: Option<u64> = None;
    // Units must come largest first, each once: this is the index of the next allowed.
    let mut next_unit = 0;
    for character in typed.chars() {
        if let Some(digit) = character.to_digit(10) {
            let grown = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)))
                .ok_or_else(|| invalid("it is far too long"))?;
            number = Some(grown);
            continue;
        }
        let unit = character.to_ascii_lowercase();
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(&format!("`{character}` is not a unit")));
        };
        let Some(count) = number.take() else {
            return Err(invalid(&format!("`{character}` has no number before it")));
        };
        if index < next_unit {
            return Err(invalid(
                "the units go from the largest to the smallest, each once",
            ));
        }
        next_unit = index + 1;
        seconds = count
            .checked_mul(UNITS[index].1)
            .and_then(|part| seconds.checked_add(part))
            .ok_or_else(|| invalid("it is far too long"))?;
    }
    if number.is_some() {
        return Err(invalid("the last number has no unit"));
    }
    Ok(Duration::from_secs(seconds))
}

/// A duration as people read it, to the second: `1d 2h`, `1h 30m`, `45s`; under a second
/// reads `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut left = duration.as_secs();
    let mut parts = Vec::new();
    // Weeks are left out: "15d" reads better than "2w 1d".
    for (unit, seconds) in &UNITS[1..] {
        let count = left / seconds;
        left %= seconds;
        if count > 0 {
            parts.push(format!("{count}{unit}"));
        }
    }
    if parts.is_empty() {
        return "0s".to_owned();
    }
    parts.join(" ")
}

/// A time in milliseconds since the Unix epoch as a date and time in UTC, to the minute:
/// `2026-12-03 09:40 UTC`.
pub fn format_utc(ms: u64) -> String {
    let minutes = ms / 60_000;
    let (days, minute_of_day) = (minutes / (24 * 60), minutes % (24 * 60));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that a leap day ends its year.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Result<u64, String> {
        parse_duration(text)
            .map(|duration| duration.as_secs())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn durations_are_numbers_with_units_largest_first() {
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("1d"), Ok(86_400));
        assert_eq!(secs("1w"), Ok(604_800));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs(" 1D2H3M4S "), Ok(86_400 + 7200 + 180 + 4));
        assert_eq!(secs("0m"), Ok(0));
        assert_eq!(secs("007s"), Ok(7));
    }

    #[test]
    fn anything_else_says_what_is_wrong() {
        let cases = [
            ("", "missing"),
            ("   ", "missing"),
            ("10", "no unit"),
            ("1h30", "no unit"),
            ("m", "no number"),
            ("10x", "`x` is not a unit"),
            ("-5m", "`-` is not a unit"),
            ("1 h", "` ` is not a unit"),
            ("30m1h", "largest to the smallest"),
            ("1m1m", "largest to the smallest"),
            ("99999999999999999999s", "far too long"),
            ("999999999999999w", "far too long"),
            ("5 min", "` ` is not a unit"),
        ];
        for (typed, why) in cases {
            let error = secs(typed).expect_err(typed);
            assert!(error.contains(why), "{typed:?}: {error}");
        }
        let error = parse_duration("soon").expect_err("not a duration");
        assert_eq!(
            PluginError::from(error),
            PluginError::InvalidInput(
                "`soon` is not a duration: `s` has no number before it. Write a number and a \
                 unit, like 90s, 10m, 2h, 1d or 1h30m."
                    .to_owned()
            )
        );
    }

    #[test]
    fn durations_read_to_the_second() {
        let read = |secs: u64| format_duration(Duration::from_secs(secs));
        assert_eq!(read(0), "0s");
        assert_eq!(read(45), "45s");
        assert_eq!(read(90), "1m 30s");
        assert_eq!(read(5400), "1h 30m");
        assert_eq!(read(15 * 86_400 + 7200 + 1), "15d 2h 1s");
        assert_eq!(format_duration(Duration::from_millis(999)), "0s");
        for typed in ["1h 30m", "15d 2h 1s", "45s"] {
            let compact: String = typed.split(' ').collect();
            assert_eq!(read(secs(&compact).unwrap()), typed, "round trip");
        }
    }

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_700_000_000_000), "2023-11-14 22:13 UTC");
        // A leap day, and the minute before a new year.
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_798_761_599_999), "2026-12-31 23:59 UTC");
        assert_eq!(format_utc(4_102_444_800_000), "2100-01-01 00:00 UTC");
    }
}
