//! A circuit breaker for the Graph API: once `failures` distinct requests have failed in a
//! row (no call succeeding in between) it opens and refuses calls for `open_for`, so an API
//! that is down for many messages is not hammered (nor the host's workers tied up waiting
//! on it); then one call probes, and its outcome closes or reopens it.
//!
//! What counts is a *request*, not a call: a message is one request however often it is
//! tried (its retries inside [`super::Graph::send`], its later attempts from the outbox), and
//! a media download is one request per link. One message retried through a short outage
//! therefore never opens the breaker by itself: its own retries are bounded by the backoff
//! and the outbox's pace, and it goes out as soon as the API answers, rather than
//! `open_for` later. Several messages failing, as when Meta is down under real traffic,
//! open it as before.
//!
//! Written here rather than taken from a crate: what counts as a failure is the caller's
//! (a 400 is the request's fault, not the API's), and so is what makes two calls the same
//! request.

use std::{
    collections::HashSet,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
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

/// Which request a call belongs to: calls with the same key are tries of one request and
/// count once toward opening the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey(u64);

impl RequestKey {
    /// The key of a request made of `parts` (a message: its sender's number and its body;
    /// a download: its link). Equal parts, equal keys, within this process.
    pub fn of(parts: impl Hash) -> Self {
        let mut hasher = DefaultHasher::new();
        parts.hash(&mut hasher);
        Self(hasher.finish())
    }
}

#[derive(Debug)]
enum State {
    Closed {
        /// The requests that failed since the last success; never more than the threshold,
        /// since reaching it opens the breaker and forgets them.
        failed: HashSet<RequestKey>,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; the others are refused until it answers, or until `until` (its
    /// task was dropped and it never will).
    Probing {
        until: Instant,
    },
}

/// The breaker's state, shared by every sender of the host.
#[derive(Debug)]
pub struct Breaker {
    threshold: usize,
    open_for: Duration,
    state: Mutex<State>,
    openings: AtomicU64,
    probes: AtomicU64,
}

impl Breaker {
    /// Opens once `threshold` distinct requests have failed in a row, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1) as usize,
            open_for,
            state: Mutex::new(State::Closed {
                failed: HashSet::new(),
            }),
            openings: AtomicU64::new(0),
            probes: AtomicU64::new(0),
        }
    }

    /// Whether a call may be made now. Once the open period is over the first caller
    /// probes; a probe that never reports (its task was dropped) is given up after another
    /// open period, and the next caller probes instead.
    pub fn admit(&self) -> Admission {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Admission::Go,
            State::Open { until } | State::Probing { until } if now >= until => {
                *state = State::Probing {
                    until: now + self.open_for,
                };
                self.probes.fetch_add(1, Ordering::Relaxed);
                tracing::info!("WhatsApp API breaker half-open: one call probes");
                Admission::Go
            }
            State::Open { until } | State::Probing { until } => Admission::Refused(until - now),
        }
    }

    /// The call worked: the breaker closes.
    pub fn success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, State::Closed { .. }) {
            tracing::info!("WhatsApp API breaker closed: the API answers again");
        }
        *state = State::Closed {
            failed: HashSet::new(),
        };
    }

    /// A call of `request` found the API failing (5xx, 429, no answer): the request counts
    /// toward opening unless it already failed since the last success; a failed probe
    /// reopens at once.
    pub fn failure(&self, request: RequestKey) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open_ms = self.open_for.as_millis() as u64;
        match &mut *state {
            State::Closed { failed } => {
                failed.insert(request);
                if failed.len() < self.threshold {
                    return;
                }
                tracing::warn!(
                    failed_requests = failed.len(),
                    open_ms,
                    "WhatsApp API breaker open: calls stop, messages wait in the outbox"
                );
            }
            // A call made before the breaker opened: it has already said what it had to.
            State::Open { .. } => return,
            State::Probing { .. } => {
                tracing::warn!(open_ms, "WhatsApp API breaker reopened: the probe failed");
            }
        }
        *state = State::Open {
            until: Instant::now() + self.open_for,
        };
        self.openings.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether it refuses calls now.
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !matches!(*state, State::Closed { .. })
    }

    /// How many times it opened (a failed probe reopening it included) since the host
    /// started.
    pub fn openings(&self) -> u64 {
        self.openings.load(Ordering::Relaxed)
    }

    /// How many probes it let through since the host started: the only calls made while
    /// it is not closed.
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_of_one_request_count_once() {
        let breaker = Breaker::new(3, Duration::from_secs(60));
        let message = RequestKey::of(("100200300", r#"{"to":"4915550001"}"#));
        for _ in 0..10 {
            breaker.failure(message);
        }
        assert_eq!(breaker.admit(), Admission::Go, "one request, however often");
        breaker.failure(RequestKey::of(("100200300", r#"{"to":"4915550002"}"#)));
        breaker.failure(message);
        assert_eq!(breaker.admit(), Admission::Go, "two requests");
        assert_eq!(breaker.openings(), 0);
    }

    #[test]
    fn opens_after_distinct_failures_in_a_row_then_probes_once() {
        let breaker = Breaker::new(3, Duration::from_millis(20));
        let request = |n: u32| RequestKey::of(("phone", n));
        breaker.failure(request(1));
        breaker.failure(request(2));
        breaker.success();
        breaker.failure(request(1));
        breaker.failure(request(2));
        assert_eq!(
            breaker.admit(),
            Admission::Go,
            "two in a row after a success"
        );
        breaker.failure(request(3));
        assert!(matches!(breaker.admit(), Admission::Refused(_)));
        assert_eq!(breaker.openings(), 1);
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Go, "the probe");
        assert!(
            matches!(breaker.admit(), Admission::Refused(_)),
            "one probe at a time"
        );
        breaker.failure(request(1));
        assert!(matches!(breaker.admit(), Admission::Refused(_)), "reopened");
        assert_eq!((breaker.openings(), breaker.probes()), (2, 1));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Go);
        breaker.success();
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(), Admission::Go);
        assert_eq!((breaker.openings(), breaker.probes()), (2, 2));
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        breaker.failure(RequestKey::of("link"));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Go, "a probe, then dropped");
        assert!(matches!(breaker.admit(), Admission::Refused(_)));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Go, "another probe");
        assert_eq!(breaker.probes(), 2);
    }
}
