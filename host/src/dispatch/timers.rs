//! Firing timers: each host claims the due ones (no two hosts the same), hands each to its
//! plugin as a `timer` event in the conversation it was set in, then records it delivered.
//! The loop sleeps until the soonest timer, woken early by a timer this host sets and
//! looking again every `schedule.poll_s` for those other hosts set.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt, stream};

use crate::{
    bindings::types::{Event, EventKind, Platform, Timer as TimerEvent, User},
    capabilities::schedule::{Timer, Timers},
    db::now_ms,
    dispatch::Dispatcher,
};

/// Timers delivered at once by one host.
const CONCURRENCY: usize = 64;
/// How long a failing database is left alone before the next try.
const BACKOFF: Duration = Duration::from_secs(5);

/// The running loop of one host; stopping it frees the timers it holds for other hosts.
pub struct Firing {
    timers: Arc<Timers>,
    stop: tokio::sync::watch::Sender<bool>,
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
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let looping = Loop {
            dispatcher: Arc::clone(dispatcher),
            timers: Arc::clone(&timers),
            absent: Mutex::new(HashSet::new()),
        };
        let task = tokio::spawn(looping.run(stopping));
        Some(Self {
            timers,
            stop,
            task: Some(task),
        })
    }

    /// Stops firing once the timers being delivered are (waiting at most `grace`); what this
    /// host still holds is freed for the others.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
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
    /// Plugins whose timers came due while they were not loaded, said once each.
    absent: Mutex<HashSet<String>>,
}

impl Loop {
    async fn run(self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let poll = Duration::from_secs(self.timers.config().poll_s);
        let mut failing = false;
        while !*stopping.borrow() {
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
                _ = stopping.changed() => {}
            }
        }
    }

    /// Fires what is due; returns how long until the next timer.
    async fn round(&self) -> Result<Duration, crate::db::DbError> {
        loop {
            let now = now_ms();
            let due = self.timers.claim(now).await?;
            if due.is_empty() {
                break;
            }
            let delivered: Vec<Timer> = stream::iter(due)
                .map(|timer| self.fire(timer))
                .buffer_unordered(CONCURRENCY)
                .filter_map(|delivered| async move { delivered })
                .collect()
                .await;
            self.timers.delivered(&delivered, now_ms()).await?;
        }
        let next = self.timers.next_due().await?;
        Ok(next.map_or(Duration::MAX, |next| {
            Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0))
        }))
    }

    /// Hands one timer to its plugin; returns it once done with (delivered, or failed in
    /// the plugin: a failing plugin is not called again and again). A timer whose plugin
    /// is not loaded here is left for later.
    async fn fire(&self, timer: Timer) -> Option<Timer> {
        let snapshot = self.dispatcher.registry().snapshot();
        let Some(plugin) = snapshot.plugin(&timer.plugin).cloned() else {
            let later = now_ms() + 1000 * i64::try_from(self.timers.config().poll_s).unwrap_or(60);
            let first = (self.absent.lock().unwrap_or_else(|e| e.into_inner()))
                .insert(timer.plugin.clone());
            if first {
                tracing::info!(
                    plugin = %timer.plugin,
                    "a timer of a plugin that is not loaded waits for it"
                );
            }
            if let Err(error) = self.timers.postpone(&timer, later).await {
                tracing::warn!(timer = %timer.id, "timer not postponed: {error}");
            }
            return None;
        };
        self.absent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&timer.plugin);
        let event = self.event(&timer);
        self.dispatcher.dispatch_timer(plugin, event).await;
        Some(timer)
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
