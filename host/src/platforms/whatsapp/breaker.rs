//! A circuit breaker for the Graph API: after `failures` failed calls in a row it opens and
//! refuses calls for `open_for`, so a failing API is not hammered (nor the host's workers
//! tied up waiting on it); then one call probes, and its outcome closes or reopens it.
//!
//! Written here rather than taken from a crate: what counts as a failure is the caller's
//! (a 400 is the request's fault, not the API's), and the state is three fields.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// What the breaker says about a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Make it.
    Go,
    /// Do not: the API is failing; try again after this long.
    Refused(Duration),
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; the others are refused until it answers.
    Probing,
}

/// The breaker's state, shared by every sender of the host.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `threshold` failures in a row, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may be made now. Once the open period is over the first caller
    /// probes; a probe that never reports (its task was dropped) is given up after another
    /// open period.
    pub fn admit(&self) -> Admission {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Admission::Go,
            State::Open { until } if now >= until => {
                *state = State::Probing;
                tracing::info!("WhatsApp API breaker half-open: one call probes");
                Admission::Go
            }
            State::Open { until } => Admission::Refused(until - now),
            State::Probing => Admission::Refused(self.open_for),
        }
    }

    /// The call worked: the breaker closes.
    pub fn success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, State::Closed { .. }) {
            tracing::info!("WhatsApp API breaker closed: the API answers again");
        }
        *state = State::Closed { failures: 0 };
    }

    /// The API failed (5xx, 429, no answer): counts toward opening, and reopens after a
    /// failed probe.
    pub fn failure(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let failures = match *state {
            State::Closed { failures } => failures + 1,
            State::Open { .. } => return,
            State::Probing => self.threshold,
        };
        if failures >= self.threshold {
            tracing::warn!(
                failures,
                open_ms = self.open_for.as_millis() as u64,
                "WhatsApp API breaker open: calls stop, messages wait in the outbox"
            );
            *state = State::Open {
                until: Instant::now() + self.open_for,
            };
        } else {
            *state = State::Closed { failures };
        }
    }

    /// Whether it refuses calls now.
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !matches!(*state, State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_then_probes_once() {
        let breaker = Breaker::new(3, Duration::from_millis(20));
        breaker.failure();
        breaker.failure();
        breaker.success();
        breaker.failure();
        breaker.failure();
        assert_eq!(
            breaker.admit(),
            Admission::Go,
            "two in a row after a success"
        );
        breaker.failure();
        assert!(matches!(breaker.admit(), Admission::Refused(_)));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Go, "the probe");
        assert!(
            matches!(breaker.admit(), Admission::Refused(_)),
            "one probe at a time"
        );
        breaker.failure();
        assert!(matches!(breaker.admit(), Admission::Refused(_)), "reopened");
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Go);
        breaker.success();
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(), Admission::Go);
    }
}
