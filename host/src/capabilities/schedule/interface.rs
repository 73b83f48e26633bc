//! The `schedule` interface: a plugin's timers, set in the conversation of the event it is
//! handling, checked against its grant and the operator's limits.

use wasmtime::component::{HasSelf, Linker};

use super::{Origin, Repeat, ScheduleError, Timer, Timers};
use crate::{
    bindings::{types::Event, wasmbot::plugin::schedule as wit},
    capabilities::{Backends, Grant, HasContexts, Instance, Policy, Reach},
    db::now_ms,
};

/// One instance's timers: its grant, the host's timers and the conversation of the event
/// it handles.
pub struct Context {
    timers: Reach<Timers>,
    origin: Option<Origin>,
}

impl Context {
    pub(crate) fn new(grant: Grant, _: &Instance, backends: &Backends, _: &Policy) -> Self {
        Self {
            timers: Reach::new(grant, backends.schedule.clone(), "a database for timers"),
            origin: None,
        }
    }

    /// Forgets the last event's place, for a kept instance's next event.
    pub(crate) fn next_event(&mut self) {
        self.origin = None;
    }

    /// Where the timers this instance sets answer: the event it handles.
    pub fn set_origin(&mut self, event: &Event) {
        self.origin = Some(Origin {
            platform: event.platform.name().to_owned(),
            guild: event.guild_id.clone(),
            channel: event.channel_id.clone(),
            user: event.author.id.clone(),
            user_name: event.author.name.clone(),
        });
    }

    /// The backend and the origin, or why the call cannot be made.
    fn reach(&mut self) -> Result<(&Timers, &Origin), wit::ScheduleError> {
        let timers = self
            .timers
            .get(wit::ScheduleError::Denied, wit::ScheduleError::Unavailable)?;
        let origin = self.origin.as_ref().ok_or_else(|| {
            wit::ScheduleError::Invalid("no event is being handled, so no conversation".into())
        })?;
        Ok((timers, origin))
    }

    async fn add(
        &mut self,
        due_ms: i64,
        payload: String,
        repeat: Option<Repeat>,
    ) -> Result<String, wit::ScheduleError> {
        let plugin = self.timers.plugin().clone();
        let (timers, origin) = self.reach()?;
        timers
            .add(&plugin, origin, &payload, due_ms, repeat.as_ref())
            .await
            .map_err(|error| match error {
                ScheduleError::TooMany(text) => wit::ScheduleError::TooMany(text),
                ScheduleError::NoId => {
                    wit::ScheduleError::Unavailable("no free timer id was found".into())
                }
                ScheduleError::Db(error) => wit::ScheduleError::Unavailable(error.to_string()),
            })
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().schedule)
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl wit::Host for Context {
    async fn after(
        &mut self,
        delay_ms: u64,
        payload: String,
    ) -> Result<String, wit::ScheduleError> {
        if delay_ms == 0 {
            return Err(wit::ScheduleError::Invalid(
                "the delay must be at least 1 ms".into(),
            ));
        }
        self.add(now_ms().saturating_add(ms(delay_ms)), payload, None)
            .await
    }

    async fn at(&mut self, time_ms: u64, payload: String) -> Result<String, wit::ScheduleError> {
        let now = now_ms();
        if ms(time_ms) <= now {
            return Err(wit::ScheduleError::Invalid(format!(
                "the time {time_ms} is in the past (now is {now})"
            )));
        }
        self.add(ms(time_ms), payload, None).await
    }

    async fn every(
        &mut self,
        repeat: wit::Repeat,
        payload: String,
    ) -> Result<String, wit::ScheduleError> {
        let repeat = match repeat {
            wit::Repeat::IntervalMs(every) => Repeat::Interval(ms(every)),
            wit::Repeat::Cron(expression) => Repeat::Cron(expression),
        };
        // Refused as the plugin may not, before the rule is judged.
        let (timers, _) = self.reach()?;
        let shortest = ms(timers.config().min_interval_s.saturating_mul(1000));
        let first = repeat
            .first(now_ms(), shortest)
            .map_err(wit::ScheduleError::Invalid)?;
        self.add(first, payload, Some(repeat)).await
    }

    async fn cancel(&mut self, id: String) -> Result<bool, wit::ScheduleError> {
        let plugin = self.timers.plugin().clone();
        let (timers, _) = self.reach()?;
        timers
            .cancel(&plugin, &id)
            .await
            .map_err(|error| wit::ScheduleError::Unavailable(error.to_string()))
    }

    async fn list(&mut self) -> Result<Vec<wit::TimerInfo>, wit::ScheduleError> {
        let plugin = self.timers.plugin().clone();
        let (timers, origin) = self.reach()?;
        let listed = timers
            .list(&plugin, origin)
            .await
            .map_err(|error| wit::ScheduleError::Unavailable(error.to_string()))?;
        Ok(listed.into_iter().map(info).collect())
    }
}

fn info(timer: Timer) -> wit::TimerInfo {
    wit::TimerInfo {
        id: timer.id,
        payload: timer.payload,
        next_ms: u64::try_from(timer.due_ms).unwrap_or_default(),
        repeat: timer.repeat.map(|repeat| match repeat {
            Repeat::Interval(every) => {
                wit::Repeat::IntervalMs(u64::try_from(every).unwrap_or_default())
            }
            Repeat::Cron(expression) => wit::Repeat::Cron(expression),
        }),
        guild_id: timer.origin.guild,
        channel_id: timer.origin.channel,
        user_id: timer.origin.user,
    }
}
