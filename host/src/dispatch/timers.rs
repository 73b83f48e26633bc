//! Firing timers: each host claims the due timers it can deliver (of the plugins loaded on
//! it, on the platforms it is connected to; no two hosts the same), hands each to its
//! plugin as a `timer` event in the conversation it was set in, and records the batch
//! delivered. The loop sleeps until the soonest timer, woken early by a timer this host
//! sets or a plugin loaded, and looks again every `schedule.poll_s` for those other hosts
//! set.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, stream};
use tokio::sync::watch;

use crate::{
    bindings::types::{Event, EventKind, Platform, Timer as TimerEvent, User},
    capabilities::schedule::{Served, Timer, Timers},
    db::{DbError, now_ms},
    dispatch::Dispatcher,
};

/// How long a failing database is left alone before the next try.
const BACKOFF: Duration = Duration::from_secs(5);

/// The running loop of one host; stopping it frees the timers it holds for other hosts.
pub struct Firing {
    timers: Arc<Timers>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Firing {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Firing {
    /// Starts firing the timers of `dispatcher`'s plugins; none when the host keeps no
    /// timers (no database).
    pub fn start(dispatcher: &Arc<Dispatcher>) -> Option<Self> {
        let timers = dispatcher
            .registry()
            .runtime()
            .backends()
            .schedule
            .clone()?;
        let (stop, stopping) = watch::channel(false);
        let looping = Loop {
            dispatcher: Arc::clone(dispatcher),
            timers: Arc::clone(&timers),
            stopping,
        };
        let task = tokio::spawn(looping.run());
        Some(Self {
            timers,
            stop,
            task: Some(task),
        })
    }

    /// Stops firing once the batch being delivered is recorded (waiting at most `grace`);
    /// what this host still holds is freed for the others.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                // Handlers outlived the grace: their timers are freed below, and another
                // host delivers them again.
                abort.abort();
            }
        }
        if let Err(error) = self.timers.release().await {
            tracing::warn!("timers held by this host wait until their claims run out: {error}");
        }
    }
}

struct Loop {
    dispatcher: Arc<Dispatcher>,
    timers: Arc<Timers>,
    stopping: watch::Receiver<bool>,
}

impl Loop {
    async fn run(mut self) {
        let poll = Duration::from_secs(self.timers.config().poll_s);
        let mut loaded = self.dispatcher.registry().changes();
        let mut failing = false;
        while !self.stopped() {
            let wait = match self.round().await {
                Ok(wait) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("timers are firing again");
                    }
                    wait.min(poll)
                }
                Err(error) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(
                            "timers cannot fire: {error}; trying again every {BACKOFF:?}"
                        );
                    }
                    BACKOFF
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.timers.added() => {}
                // A plugin loaded may have timers waiting for it.
                _ = loaded.recv() => {}
                _ = self.stopping.changed() => {}
            }
        }
    }

    fn stopped(&self) -> bool {
        *self.stopping.borrow()
    }

    /// What this host can deliver now.
    fn served(&self) -> Served {
        let snapshot = self.dispatcher.registry().snapshot();
        Served {
            plugins: snapshot.plugins().map(|p| p.name().to_owned()).collect(),
            platforms: (self.dispatcher.platforms().into_iter())
                .map(|(name, _)| name.to_owned())
                .collect(),
        }
    }

    /// Fires what is due, a batch at a time; returns how long until the next timer. Nothing
    /// due costs one query (an idle bot's only work, once per `poll_s`).
    async fn round(&self) -> Result<Duration, DbError> {
        let served = self.served();
        while !self.stopped() {
            let now = now_ms();
            match self.timers.next_due(now, &served).await? {
                None => return Ok(Duration::MAX),
                Some(next) if next > now => {
                    return Ok(Duration::from_millis(
                        u64::try_from(next - now).unwrap_or(0),
                    ));
                }
                Some(_) => {}
            }
            let due = self.timers.claim(now, &served).await?;
            let fired: Vec<(Timer, bool)> = stream::iter(due)
                .map(|timer| async move {
                    let taken = self.fire(&timer).await;
                    (timer, taken)
                })
                .buffer_unordered(self.timers.config().batch as usize)
                .collect()
                .await;
            let (delivered, left): (Vec<_>, Vec<_>) =
                fired.into_iter().partition(|(_, taken)| *taken);
            let delivered: Vec<Timer> = delivered.into_iter().map(|(timer, _)| timer).collect();
            let left: Vec<Timer> = left.into_iter().map(|(timer, _)| timer).collect();
            self.timers.delivered(&delivered, now_ms()).await?;
            self.timers.unclaim(&left).await?;
        }
        Ok(Duration::ZERO)
    }

    /// Hands one timer to its plugin; false when this host could not take it (the plugin
    /// was unloaded meanwhile, or the host is shutting down), so it is left for later. A
    /// plugin that failed on it is done with it: it is not called again and again.
    async fn fire(&self, timer: &Timer) -> bool {
        let snapshot = self.dispatcher.registry().snapshot();
        let Some(plugin) = snapshot.plugin(&timer.plugin).cloned() else {
            return false;
        };
        let event = self.event(timer);
        self.dispatcher
            .dispatch_timer(plugin, event)
            .await
            .is_some()
    }

    fn event(&self, timer: &Timer) -> Event {
        let now = now_ms();
        let origin = &timer.origin;
        // Written by this host from a platform's own name.
        let platform = Platform::from_name(&origin.platform).unwrap_or(Platform::Console);
        let ms = |value: i64| u64::try_from(value).unwrap_or_default();
        Event {
            id: self.dispatcher.next_event_id(),
            platform,
            guild_id: origin.guild.clone(),
            channel_id: origin.channel.clone(),
            author: User {
                id: origin.user.clone(),
                name: origin.user_name.clone(),
                is_bot: false,
                roles: Vec::new(),
                locale: None,
            },
            timestamp_ms: ms(timer.due_ms),
            received_ms: ms(now),
            guild_locale: None,
            kind: EventKind::Timer(TimerEvent {
                id: timer.id.clone(),
                payload: timer.payload.clone(),
                due_ms: ms(timer.due_ms),
                late_ms: ms(now - timer.due_ms),
                repeats: timer.repeat.is_some(),
            }),
        }
    }
}
