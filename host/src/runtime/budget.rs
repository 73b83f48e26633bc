//! An event's time budgets: the CPU time of its guest code, counted at epoch ticks, and its
//! wall-clock deadline.
//!
//! The time an event spends suspended is not its CPU time: a host call awaiting the
//! database, or the guest waiting for a thread after it yielded at a tick. [`Budgeted`]
//! sees every suspension from outside the store, where it costs nothing while the call runs
//! without one. (wasmtime's call hook would see each host call too, but it runs on every
//! transition, each `cabi_realloc` that lowers a string of the event included: the largest
//! single cost of an event on a kept instance.)

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::time::Sleep;

/// Measures the CPU time of an event's guest code: at each epoch tick (the callback runs
/// only while guest code runs), the wall-clock time since the last one less the time the
/// call spent suspended since. At most one tick counts per callback, whatever the clock
/// says: time the guest did not run is never charged beyond it.
pub(crate) struct CpuClock {
    used: Duration,
    tick: Duration,
    pub(crate) budget: Duration,
    pub(crate) exceeded: bool,
    last_tick: Instant,
    /// Nanoseconds suspended since the last tick, added by [`Budgeted`].
    suspended: Arc<AtomicU64>,
}

impl CpuClock {
    pub(crate) fn new(budget: Duration, tick: Duration) -> Self {
        Self {
            used: Duration::ZERO,
            tick,
            budget,
            exceeded: false,
            last_tick: Instant::now(),
            suspended: Arc::default(),
        }
    }

    /// The whole budget again from `now`, for a kept instance's next event.
    pub(crate) fn restart(&mut self, budget: Duration, now: Instant) {
        self.used = Duration::ZERO;
        self.budget = budget;
        self.exceeded = false;
        self.last_tick = now;
        self.suspended.store(0, Ordering::Relaxed);
    }

    /// Adds the guest time since the last tick; false (and marked exceeded) once the
    /// budget is spent.
    pub(crate) fn tick(&mut self) -> bool {
        let now = Instant::now();
        let since = now.duration_since(self.last_tick);
        let suspended = Duration::from_nanos(self.suspended.swap(0, Ordering::Relaxed));
        self.used += since.saturating_sub(suspended).min(self.tick);
        self.last_tick = now;
        self.exceeded = self.used >= self.budget;
        !self.exceeded
    }

    /// Where a [`Budgeted`] call on this clock's instance adds its suspensions.
    pub(crate) fn suspensions(&self) -> Suspensions {
        Suspensions(Arc::clone(&self.suspended))
    }
}

/// The nanoseconds a call spent suspended, shared with its [`CpuClock`].
pub(crate) struct Suspensions(Arc<AtomicU64>);

/// The call passed its wall-clock deadline.
#[derive(Debug)]
pub(crate) struct PastDeadline;

/// A call that tells its [`CpuClock`] how long it was suspended and ends at its deadline.
/// The deadline's timer is set at the first suspension: a call that never suspends cannot
/// be cut short by one (the epoch ticks end a busy guest), and most events then need none.
pub(crate) struct Budgeted<'f, F> {
    call: Pin<&'f mut F>,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    suspensions: Suspensions,
    suspended_at: Option<Instant>,
}

impl<'f, F> Budgeted<'f, F> {
    /// `call`, cut short at `deadline`, its suspensions added to `suspensions`.
    pub(crate) fn new(call: Pin<&'f mut F>, deadline: Instant, suspensions: Suspensions) -> Self {
        Self {
            call,
            deadline,
            timer: None,
            suspensions,
            suspended_at: None,
        }
    }
}

impl<F: Future> Future for Budgeted<'_, F> {
    type Output = Result<F::Output, PastDeadline>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(at) = this.suspended_at.take() {
            let nanos = u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            this.suspensions.0.fetch_add(nanos, Ordering::Relaxed);
        }
        if let Poll::Ready(output) = this.call.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(PastDeadline));
        }
        this.suspended_at = Some(Instant::now());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that stays suspended for `for_` once, then is ready.
    async fn suspended(for_: Duration) {
        tokio::time::sleep(for_).await;
    }

    #[tokio::test]
    async fn cpu_time_is_guest_time_less_suspensions() {
        let mut clock = CpuClock::new(Duration::from_millis(10), Duration::from_millis(5));
        let deadline = Instant::now() + Duration::from_secs(60);
        let call = std::pin::pin!(suspended(Duration::from_millis(30)));
        let call = Budgeted::new(call, deadline, clock.suspensions());
        assert!(call.await.is_ok());
        assert!(clock.tick(), "30 ms suspended cost the guest nothing");
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.tick(), "a tick counts at most its own length");
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !clock.tick(),
            "two ticks of guest time spend a 10 ms budget"
        );
        assert!(clock.exceeded);
        clock.restart(Duration::from_millis(10), Instant::now());
        assert!(!clock.exceeded);
        assert!(clock.tick(), "a restarted clock has its whole budget");
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_cut_short() {
        let clock = CpuClock::new(Duration::from_secs(1), Duration::from_millis(5));
        let deadline = Instant::now() + Duration::from_millis(20);
        let call = std::pin::pin!(suspended(Duration::from_secs(600)));
        let call = Budgeted::new(call, deadline, clock.suspensions());
        assert!(call.await.is_err());
        let call = std::pin::pin!(async { 7 });
        let call = Budgeted::new(call, deadline, clock.suspensions());
        assert_eq!(
            call.await.ok(),
            Some(7),
            "a call that never suspends is never cut"
        );
    }
}
