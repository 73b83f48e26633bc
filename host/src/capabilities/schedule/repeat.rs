//! How a timer repeats: a fixed interval, or a cron expression (UTC) read by `croner`.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

/// A repeating timer's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// Every so many milliseconds.
    Interval(i64),
    /// A cron expression, as the plugin gave it.
    Cron(String),
}

impl Repeat {
    /// The rule in the `timers` row's columns (`every_ms`, `cron`).
    pub(super) fn from_columns(every_ms: i64, cron: String) -> Option<Self> {
        match (every_ms, cron.is_empty()) {
            (0, true) => None,
            (_, false) => Some(Repeat::Cron(cron)),
            (every, true) => Some(Repeat::Interval(every)),
        }
    }

    pub(super) fn to_columns(&self) -> (i64, String) {
        match self {
            Repeat::Interval(every) => (*every, String::new()),
            Repeat::Cron(expression) => (0, expression.clone()),
        }
    }

    /// Checks the rule against the shortest interval allowed; returns when it first fires
    /// after `now_ms`.
    pub fn first(&self, now_ms: i64, min_interval_ms: i64) -> Result<i64, String> {
        match self {
            Repeat::Interval(every) => {
                if *every < min_interval_ms {
                    return Err(format!(
                        "the interval is {every} ms; the shortest is {min_interval_ms} ms"
                    ));
                }
                Ok(now_ms.saturating_add(*every))
            }
            Repeat::Cron(expression) => {
                let cron = parse(expression)?;
                let first = after(&cron, now_ms)
                    .ok_or_else(|| format!("the cron expression {expression:?} never fires"))?;
                // Two firings in a row tell the interval (cron's gaps vary: the shortest
                // is between some pair, but any pair under the limit is enough to refuse).
                let mut previous = first;
                for _ in 0..8 {
                    let Some(next) = after(&cron, previous) else {
                        break;
                    };
                    if next - previous < min_interval_ms {
                        return Err(format!(
                            "the cron expression {expression:?} fires {} s apart; the shortest \
                             interval is {} s",
                            (next - previous) / 1000,
                            min_interval_ms / 1000
                        ));
                    }
                    previous = next;
                }
                Ok(first)
            }
        }
    }

    /// When it fires next after `now_ms`, having been due at `due_ms`; none when a cron
    /// expression has no time left. Firings missed meanwhile are skipped.
    pub(super) fn next_after(&self, due_ms: i64, now_ms: i64) -> Option<i64> {
        match self {
            Repeat::Interval(every) if *every > 0 => {
                let missed = (now_ms - due_ms).max(0) / every + 1;
                Some(due_ms.saturating_add(missed.saturating_mul(*every)))
            }
            Repeat::Interval(_) => None,
            Repeat::Cron(expression) => after(&parse(expression).ok()?, now_ms.max(due_ms)),
        }
    }
}

fn parse(expression: &str) -> Result<Cron, String> {
    Cron::from_str(expression)
        .map_err(|error| format!("the cron expression {expression:?} does not parse: {error}"))
}

/// The first time after `ms` the expression matches.
fn after(cron: &Cron, ms: i64) -> Option<i64> {
    let start: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
    let next = cron.find_next_occurrence(&start, false).ok()?;
    Some(next.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    // 2026-01-05 00:00:00 UTC, a Monday.
    const MONDAY: i64 = 1_767_571_200_000;

    #[test]
    fn intervals_below_the_shortest_are_refused() {
        assert_eq!(
            Repeat::Interval(MINUTE).first(1000, MINUTE),
            Ok(1000 + MINUTE)
        );
        assert!(Repeat::Interval(MINUTE - 1).first(0, MINUTE).is_err());
    }

    #[test]
    fn cron_expressions_parse_fire_in_utc_and_respect_the_shortest_interval() {
        let weekdays = Repeat::Cron("0 9 * * MON-FRI".into());
        assert_eq!(weekdays.first(MONDAY, MINUTE), Ok(MONDAY + 9 * 60 * MINUTE));
        let every_second = Repeat::Cron("* * * * * *".into());
        let error = every_second.first(MONDAY, MINUTE).unwrap_err();
        assert!(error.contains("1 s apart"), "{error}");
        let error = Repeat::Cron("61 * * *".into())
            .first(MONDAY, MINUTE)
            .unwrap_err();
        assert!(error.contains("does not parse"), "{error}");
    }

    #[test]
    fn missed_firings_are_skipped_not_made_up() {
        let hourly = Repeat::Interval(60 * MINUTE);
        // Due at 0, delivered 2.5 hours late: next at 3 h.
        assert_eq!(hourly.next_after(0, 150 * MINUTE), Some(180 * MINUTE));
        assert_eq!(hourly.next_after(0, 0), Some(60 * MINUTE));
        let daily = Repeat::Cron("0 9 * * *".into());
        let tuesday_noon = MONDAY + 36 * 60 * MINUTE;
        let wednesday_nine = MONDAY + (2 * 24 + 9) * 60 * MINUTE;
        assert_eq!(daily.next_after(MONDAY, tuesday_noon), Some(wednesday_nine));
    }

    #[test]
    fn columns_round_trip() {
        for repeat in [Repeat::Interval(MINUTE), Repeat::Cron("0 9 * * *".into())] {
            let (every, cron) = repeat.to_columns();
            assert_eq!(Repeat::from_columns(every, cron), Some(repeat));
        }
        assert_eq!(Repeat::from_columns(0, String::new()), None);
    }
}
