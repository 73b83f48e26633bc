//! Bounded work queues: per plugin and operation, at most `queue_concurrency` tickets are
//! held at once and at most `queue_length` callers wait; past that a caller is told "busy"
//! at once. Under memory pressure the host sheds: waiting callers and new ones are refused.

mod interface;

pub use interface::Context;
pub(crate) use interface::link;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::capabilities::{Build, Lifecycle, Sections, config_store::ConfigStore};
use crate::telemetry::memory::Relief;

/// A plugin's queue limits (keys of `[plugin_defaults]` and `[plugins.NAME]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Tickets of one work queue held at once.
    pub queue_concurrency: u32,
    /// Callers that may wait in one work queue; past it they hear "busy".
    pub queue_length: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            queue_concurrency: 3,
            queue_length: 10,
        }
    }
}

impl Policy {
    pub(crate) fn validate(&self, section: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.queue_concurrency >= 1,
            "{section}.queue_concurrency must be at least 1"
        );
        Ok(())
    }
}

/// Why no ticket was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue holds its maximum of waiting callers.
    #[error("the queue is full ({waiting} waiting); try again in about {retry_after:?}")]
    Busy {
        /// Callers waiting.
        waiting: usize,
        /// A hint: how long until a place is likely free.
        retry_after: Duration,
    },
    /// The host is short of memory and refuses heavy work.
    #[error("the host is short of memory and refuses heavy work for now")]
    Shedding,
    /// The plugin has its maximum of queues; a new operation name is refused.
    #[error("a plugin has at most {MAX_QUEUES} queues (operation names)")]
    TooManyQueues,
}

/// Queues (operation names) one plugin may have: each is its own concurrency, so names
/// must not be made up per call.
pub const MAX_QUEUES: usize = 16;

impl Relief for Queues {
    fn shed(&self, on: bool) {
        self.set_shedding(on);
    }
}

impl Build for Queues {
    fn build(_: &Arc<ConfigStore>, _: Sections<'_>) -> Arc<Self> {
        Arc::default()
    }
}

impl Lifecycle for Queues {
    fn forget(&self, plugin: &str) {
        Queues::forget(self, plugin);
    }
}

/// Every queue of the host.
#[derive(Default)]
pub struct Queues {
    queues: Mutex<HashMap<(String, String), Arc<Queue>>>,
    shedding: AtomicBool,
    shed: Arc<Notify>,
}

impl Queues {
    /// A place in `plugin`'s `operation` queue, made with these limits on first use.
    pub async fn enter(
        &self,
        plugin: &str,
        operation: &str,
        concurrency: usize,
        length: usize,
    ) -> Result<Ticket, QueueError> {
        if self.shedding() {
            return Err(QueueError::Shedding);
        }
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let key = (plugin.to_owned(), operation.to_owned());
            if !queues.contains_key(&key)
                && queues.keys().filter(|(owner, _)| owner == plugin).count() >= MAX_QUEUES
            {
                return Err(QueueError::TooManyQueues);
            }
            Arc::clone(
                queues
                    .entry(key)
                    .or_insert_with(|| Arc::new(Queue::new(concurrency, length))),
            )
        };
        queue.enter(&self.shed, &self.shedding).await
    }

    /// Drops an unloaded plugin's queues; tickets still held keep theirs until dropped.
    pub fn forget(&self, plugin: &str) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.retain(|(owner, _), _| owner != plugin);
    }

    /// Starts or stops shedding; starting refuses every waiting caller.
    pub fn set_shedding(&self, on: bool) {
        if self.shedding.swap(on, Ordering::SeqCst) != on && on {
            self.shed.notify_waiters();
        }
    }

    /// Whether heavy work is refused.
    pub fn shedding(&self) -> bool {
        self.shedding.load(Ordering::SeqCst)
    }

    /// Each queue's figures, by `plugin/operation`.
    pub fn stats(&self) -> BTreeMap<String, QueueStats> {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .iter()
            .map(|((plugin, operation), queue)| (format!("{plugin}/{operation}"), queue.stats()))
            .collect()
    }
}

/// One queue's figures.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    /// Tickets that may be held at once.
    pub concurrency: usize,
    /// Callers that may wait.
    pub length: usize,
    /// Tickets held now.
    pub running: usize,
    /// Callers waiting now.
    pub waiting: usize,
    /// The most tickets ever held at once.
    pub peak_running: usize,
    /// Tickets given back.
    pub completed: u64,
    /// Callers turned away (busy or shedding).
    pub rejected: u64,
}

struct Queue {
    permits: Arc<Semaphore>,
    concurrency: usize,
    length: usize,
    waiting: AtomicUsize,
    peak_running: AtomicUsize,
    completed: AtomicU64,
    rejected: AtomicU64,
    held_nanos: AtomicU64,
}

impl Queue {
    fn new(concurrency: usize, length: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            length,
            waiting: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            held_nanos: AtomicU64::new(0),
        }
    }

    async fn enter(
        self: &Arc<Self>,
        shed: &Notify,
        shedding: &AtomicBool,
    ) -> Result<Ticket, QueueError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(self.ticket(permit));
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiter = Waiter(&self.waiting);
        if waiting >= self.length {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(QueueError::Busy {
                waiting,
                retry_after: self.retry_hint(waiting),
            });
        }
        let shed = shed.notified();
        // Shedding may have started between the caller's check and `notified()`.
        if shedding.load(Ordering::SeqCst) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(QueueError::Shedding);
        }
        tokio::select! {
            permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                Ok(permit) => Ok(self.ticket(permit)),
                // The semaphore is never closed.
                Err(_) => Err(QueueError::Shedding),
            },
            () = shed => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(QueueError::Shedding)
            }
        }
    }

    fn ticket(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Ticket {
        let running = self.concurrency - self.permits.available_permits();
        self.peak_running.fetch_max(running, Ordering::Relaxed);
        Ticket {
            queue: Arc::clone(self),
            since: Instant::now(),
            _permit: permit,
        }
    }

    /// About how long until `waiting` callers ahead have had their turn: the average
    /// hold time for each round of `concurrency` tickets.
    fn retry_hint(&self, waiting: usize) -> Duration {
        let completed = self.completed.load(Ordering::Relaxed).max(1);
        let average = self.held_nanos.load(Ordering::Relaxed) / completed;
        let rounds = (waiting / self.concurrency.max(1) + 1) as u64;
        Duration::from_nanos(average.saturating_mul(rounds)).max(Duration::from_millis(100))
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            concurrency: self.concurrency,
            length: self.length,
            running: self.concurrency - self.permits.available_permits(),
            waiting: self.waiting.load(Ordering::SeqCst),
            peak_running: self.peak_running.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Counts a caller out of the waiting line however it leaves (served, refused, dropped).
struct Waiter<'a>(&'a AtomicUsize);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place among the running; dropping it lets the next caller in.
pub struct Ticket {
    queue: Arc<Queue>,
    since: Instant,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let held = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.queue.held_nanos.fetch_add(held, Ordering::Relaxed);
        self.queue.completed.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrency_is_never_exceeded_and_overflow_is_refused() {
        let queues = Arc::new(Queues::default());
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (queues, running, peak) = (queues.clone(), running.clone(), peak.clone());
                let mut released = released.clone();
                tokio::spawn(async move {
                    let ticket = queues.enter("p", "work", 3, 2).await?;
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = released.wait_for(|go| *go).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    drop(ticket);
                    Ok::<_, QueueError>(())
                })
            })
            .collect();
        // Three run, two wait, five are turned away at once.
        let settled = |stats: &QueueStats| stats.rejected == 5 && stats.waiting == 2;
        let wait = async {
            while !queues.stats().get("p/work").is_some_and(settled) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("three run, two wait, five are turned away");
        release.send_replace(true);
        let mut served = 0;
        let mut busy = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => served += 1,
                Err(QueueError::Busy { .. }) => busy += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!((served, busy), (5, 5));
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        let stats = queues.stats()["p/work"];
        assert_eq!(
            (stats.peak_running, stats.completed, stats.rejected),
            (3, 5, 5)
        );
        assert_eq!((stats.running, stats.waiting), (0, 0));
    }

    #[tokio::test]
    async fn shedding_refuses_the_waiting_and_the_new() {
        let queues = Arc::new(Queues::default());
        let held = queues.enter("p", "ai", 1, 5).await.unwrap();
        let waiting = {
            let queues = queues.clone();
            tokio::spawn(async move { queues.enter("p", "ai", 1, 5).await.map(drop) })
        };
        let wait = async {
            while queues.stats().get("p/ai").is_none_or(|s| s.waiting != 1) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("one waits");
        queues.set_shedding(true);
        assert_eq!(waiting.await.unwrap(), Err(QueueError::Shedding));
        assert_eq!(
            queues.enter("p", "ai", 1, 5).await.map(drop),
            Err(QueueError::Shedding)
        );
        drop(held);
        queues.set_shedding(false);
        assert!(queues.enter("p", "ai", 1, 5).await.is_ok());
    }

    #[tokio::test]
    async fn operation_names_are_bounded_per_plugin() {
        let queues = Queues::default();
        for n in 0..MAX_QUEUES {
            assert!(queues.enter("p", &format!("op{n}"), 1, 1).await.is_ok());
        }
        let more = queues.enter("p", "one-more", 1, 1).await.map(drop);
        assert_eq!(more, Err(QueueError::TooManyQueues));
        assert!(
            queues.enter("p", "op0", 1, 1).await.is_ok(),
            "known names still work"
        );
        assert!(
            queues.enter("q", "one-more", 1, 1).await.is_ok(),
            "other plugins too"
        );
        queues.forget("p");
        assert_eq!(queues.stats().len(), 1);
    }
}
