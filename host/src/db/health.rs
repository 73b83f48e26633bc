//! Whether the one pool reaches its database, as every call through it last found: the
//! webhook path consults it to refuse at once while the database is known to be down
//! rather than wait out the pool's timeouts, and an outage is logged once, when it starts
//! (with its class), and once when it ends, not per failed call.
//!
//! The state turns to down on a failure of an outage class (the connection lost, no
//! connection in time) and back to up on the next call that succeeds. While down, one task
//! probes the database with backoff, so an idle bot (or one whose only traffic is refused
//! webhooks) still notices the recovery; while up, nothing runs.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::AnyPool;

use super::ErrorClass;

/// The first probe's delay after an outage starts; doubled after each failed probe.
const PROBE_FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between probes.
const PROBE_MAX_DELAY: Duration = Duration::from_secs(5);
/// How long one probe may take: a database that answers slower than this is not back.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// The shared health of the pool: known down or not, and the failures of the current
/// outage.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    /// Whether a probe task runs (at most one).
    probing: AtomicBool,
    /// Calls that failed with an outage class, since the start.
    failures: AtomicU64,
    /// Outages that started, since the start.
    outages: AtomicU64,
    /// Outages that ended, since the start: a call that started before the last one ended
    /// and failed after it (its pool wait timing out) belongs to that outage, not a new one.
    recoveries: AtomicU64,
    /// When a call last failed with an outage class: connections older than that are
    /// suspect.
    last_failure: Mutex<Option<Instant>>,
}

impl Health {
    /// Whether the last call through the pool (or the last probe) failed with an outage
    /// class: callers that must answer fast give up at once.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Tries (a call's retries included) that failed because the database could not be
    /// reached, since the start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Outages that started (each logged once), since the start.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Whether a call failed with an outage class after `since`: a connection idle since
    /// then may have been cut.
    pub(crate) fn failed_after(&self, since: Instant) -> bool {
        let last = *self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        last.is_some_and(|failed| failed > since)
    }

    /// Where the database's health stands, to note a call's outcome with
    /// ([`Health::failed`]): take it before the call starts.
    pub fn epoch(&self) -> u64 {
        self.recoveries.load(Ordering::Acquire)
    }

    /// Notes the failure of a call that started at `epoch`: the first of an outage is
    /// logged, with its class, and starts the probe; the others are only counted, as is a
    /// failure of a call that started before the last recovery. A failure the server itself
    /// reported (a constraint, a bad query) shows it answers: an outage ends.
    pub(crate) fn failed(
        self: &Arc<Self>,
        epoch: u64,
        class: ErrorClass,
        error: &dyn std::fmt::Display,
        pool: &AnyPool,
    ) {
        if !class.is_outage() {
            // A constraint broken, a bad query, a lost race: the server answered.
            if class != ErrorClass::Fatal {
                self.succeeded();
            }
            return;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if epoch != self.epoch() {
            tracing::debug!("a database call made during the last outage failed: {error}");
            return;
        }
        if !self.down.swap(true, Ordering::Relaxed) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                category = "database.unavailable",
                class = class.name(),
                "database unreachable ({class}): {error}; until it recovers, webhooks are \
                 answered 503 at once and further failures are debug lines"
            );
            self.probe(pool);
        }
    }

    /// Notes a call that succeeded: an outage ends, logged once.
    pub(crate) fn succeeded(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            self.recoveries.fetch_add(1, Ordering::Release);
            tracing::info!(
                category = "database.unavailable",
                failures_since_start = self.failures(),
                "database recovered"
            );
        }
    }

    /// Starts the probe task unless one runs (or there is no runtime to run it on: the
    /// next call that succeeds then ends the outage).
    fn probe(self: &Arc<Self>, pool: &AnyPool) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        let (health, pool) = (Arc::clone(self), pool.clone());
        runtime.spawn(async move {
            let mut delay = PROBE_FIRST_DELAY;
            loop {
                tokio::time::sleep(delay).await;
                if pool.is_closed() {
                    health.probing.store(false, Ordering::Relaxed);
                    return;
                }
                if health.is_down() {
                    let select = sqlx::query("SELECT 1").execute(&pool);
                    match tokio::time::timeout(PROBE_DEADLINE, select).await {
                        Ok(Ok(_)) => health.succeeded(),
                        // Counted in the outage already logged: nothing more to say.
                        Ok(Err(error)) => {
                            tracing::debug!("database probe failed: {error}");
                            delay = (delay * 2).min(PROBE_MAX_DELAY);
                            continue;
                        }
                        Err(_) => {
                            tracing::debug!("database probe got no answer in {PROBE_DEADLINE:?}");
                            delay = (delay * 2).min(PROBE_MAX_DELAY);
                            continue;
                        }
                    }
                }
                health.probing.store(false, Ordering::Relaxed);
                // A new outage may have started between the recovery and the line above,
                // finding this task still running: it is then this task's to probe.
                if !health.is_down() || health.probing.swap(true, Ordering::Relaxed) {
                    return;
                }
                delay = PROBE_FIRST_DELAY;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, DatabaseConfig};

    /// A pool nothing connects to: the tests drive its health by hand.
    fn in_memory() -> Database {
        Database::connect(&DatabaseConfig {
            url: "sqlite::memory:".to_owned(),
            ..DatabaseConfig::default()
        })
        .unwrap()
    }

    /// The failure of a call made now.
    fn fail(db: &Database, class: ErrorClass) {
        db.health
            .failed(db.health.epoch(), class, &class, db.pool());
    }

    #[tokio::test]
    async fn an_outage_is_one_episode_however_many_calls_fail() {
        let db = in_memory();
        let health = &db.health;
        // No await in between: on this test's one thread, the probe cannot run yet.
        for _ in 0..5 {
            fail(&db, ErrorClass::ConnectionLost);
        }
        fail(&db, ErrorClass::PoolTimeout);
        assert!(health.is_down());
        assert_eq!((health.outages(), health.failures()), (1, 6));
        // The server answering, even with a refusal of the statement, ends it.
        fail(&db, ErrorClass::Constraint);
        assert!(!health.is_down());
        fail(&db, ErrorClass::ConnectionLost);
        fail(&db, ErrorClass::Fatal);
        assert!(health.is_down());
        health.succeeded();
        assert!(!health.is_down());
        assert_eq!((health.outages(), health.failures()), (2, 7));
    }

    #[tokio::test]
    async fn a_call_of_an_outage_past_failing_late_does_not_start_another() {
        let db = in_memory();
        let (health, pool) = (&db.health, db.pool());
        fail(&db, ErrorClass::ConnectionLost);
        // A call waiting for a connection since then; the database recovers meanwhile.
        let waiting = health.epoch();
        health.succeeded();
        health.failed(waiting, ErrorClass::PoolTimeout, &"no connection", pool);
        assert!(!health.is_down());
        assert_eq!((health.outages(), health.failures()), (1, 2));
        // A call made after the recovery starts a new outage.
        fail(&db, ErrorClass::PoolTimeout);
        assert!(health.is_down());
        assert_eq!(health.outages(), 2);
    }
}
