//! Events in flight, so a shutdown can stop taking new ones and wait for the rest.

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use tokio::sync::Notify;

#[derive(Default)]
pub(super) struct Flight {
    count: AtomicUsize,
    closed: AtomicBool,
    idle: Notify,
}

impl Flight {
    /// Counts an event in, unless the gate is closed. Counted first, checked second: a
    /// close in between sees the count and waits for it.
    pub(super) fn enter(&self) -> Option<Guard<'_>> {
        self.count.fetch_add(1, Ordering::SeqCst);
        let guard = Guard(self);
        (!self.closed.load(Ordering::SeqCst)).then_some(guard)
    }

    pub(super) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Closes the gate and waits, at most `grace`, for the count to reach zero; returns
    /// what is still in flight.
    pub(super) async fn close(&self, grace: Duration) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.idle.notified();
            let count = self.count();
            if count == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.count();
            }
        }
    }
}

/// One event in flight.
pub(super) struct Guard<'a>(&'a Flight);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_refuses_new_events_and_waits_for_the_rest() {
        let flight = Flight::default();
        let guard = flight.enter().unwrap();
        let close = flight.close(Duration::from_secs(5));
        let release = async {
            tokio::task::yield_now().await;
            assert!(flight.enter().is_none());
            drop(guard);
        };
        let (left, ()) = tokio::join!(close, release);
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn closing_gives_up_after_the_grace() {
        let flight = Flight::default();
        let _stuck = flight.enter().unwrap();
        assert_eq!(flight.close(Duration::from_millis(20)).await, 1);
    }
}
