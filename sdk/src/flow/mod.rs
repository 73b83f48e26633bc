//! Conversations written as flows, in the style of WhatsApp bot frameworks: a trigger
//! (keywords, a regex, a command, a button) starts a flow; its steps say things, ask
//! questions and wait for the answer (typed and validated, or picked from buttons or a
//! list, asked again when wrong, given up after a few tries), branch on the answers, go to
//! other flows, run the plugin's own code, and end.
//!
//! ```
//! use wasmbot_sdk::flow::{Ask, Flow, Flows, Next, Trigger};
//! use wasmbot_sdk::prelude::*;
//!
//! fn flows() -> Flows {
//!     Flows::new()
//!         .flow(
//!             Flow::new("main")
//!                 .trigger(Trigger::keywords(["menu", "hi"]))
//!                 .ask(
//!                     "choice",
//!                     Ask::choice(
//!                         Outgoing::text("What would you like?")
//!                             .button("order", "Order")
//!                             .button("hours", "Opening hours"),
//!                     )
//!                     .invalid("Please pick one of the buttons."),
//!                 )
//!                 // The button ids are the flows' names.
//!                 .branch(|answers| Next::goto(&answers["choice"])),
//!         )
//!         .flow(
//!             Flow::new("order")
//!                 // "order 3" answers the first question at once.
//!                 .trigger(Trigger::regex(r"(?i)^order\s+(?P<count>\d+)$"))
//!                 .ask(
//!                     "count",
//!                     Ask::text("How many pizzas? (1-20)")
//!                         .validate(|text| match text.parse::<u32>() {
//!                             Ok(n @ 1..=20) => Ok(n.to_string()),
//!                             _ => Err("A number from 1 to 20, please.".into()),
//!                         })
//!                         .give_up("Let's leave it there; say *menu* to start again."),
//!                 )
//!                 .end_with(|answers| {
//!                     Outgoing::text(format!("Ordered {} pizzas.", &answers["count"]))
//!                 }),
//!         )
//!         .flow(Flow::new("hours").say("Open every day, 11:00 to 23:00."))
//!         .idle_timeout(600, "You were away for a while; say *menu* to start again.")
//! }
//!
//! struct Pizza;
//!
//! impl Plugin for Pizza {
//!     fn manifest() -> Manifest {
//!         Manifest::new("pizza", "0.1.0")
//!             .on(EventType::Message)
//!             .on(EventType::Interaction)
//!             .capability("state")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         flows().handle(&event)
//!     }
//! }
//!
//! export_plugin!(Pizza);
//! ```
//!
//! The flows are built again on every event (a plugin runs on a fresh instance each time,
//! and building them is cheap); what is kept between a user's messages is only their
//! [`Position`]: the flow, the step waiting for an answer, the answers so far. It lives in
//! the conversation's state (capability `state`), so a conversation survives a restart of
//! the host and can go on on another host sharing its database. The flows own that state:
//! a plugin using them keeps no other conversation state of its own.
//!
//! Inside a flow, a user's messages answer its current question; only the cancel words
//! ([`Flows::cancel`]) get them out. A command or a click that answers nothing there may
//! start another flow. After [`Flows::idle_timeout`] without a word, the next message is
//! told so and then taken as if no flow were going on.
//!
//! A question can nudge a user who goes quiet ([`Ask::nudge_after`]): the flows set a
//! timer (capability `schedule`) when they ask it, and when the timer fires they send the
//! nudge only if the user is still on that question. Such a plugin asks for `schedule`
//! beside `state` and hands its timer events to [`Flows::handle`] too:
//!
//! ```
//! use std::time::Duration;
//! use wasmbot_sdk::flow::{Ask, Flow, Flows, Trigger};
//! use wasmbot_sdk::prelude::*;
//!
//! fn flows() -> Flows {
//!     Flows::new().flow(
//!         Flow::new("feedback")
//!             .trigger(Trigger::command("feedback"))
//!             .ask(
//!                 "score",
//!                 Ask::text("From 1 to 5, how did we do?").nudge_after(
//!                     Duration::from_secs(600),
//!                     "Still there? Just a number from 1 to 5.",
//!                 ),
//!             )
//!             .end_with(|answers| Outgoing::text(format!("Thanks, {}!", &answers["score"]))),
//!     )
//! }
//!
//! struct Feedback;
//!
//! impl Plugin for Feedback {
//!     fn manifest() -> Manifest {
//!         Manifest::new("feedback", "0.1.0")
//!             .command(CommandSpec::new("feedback", "Tell us how we did"))
//!             .on(EventType::Message)
//!             .capability("state")
//!             .capability("schedule")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         // The plugin's own timers, if it had any, would be told apart by `flow::is_nudge`.
//!         flows().handle(&event)
//!     }
//! }
//!
//! export_plugin!(Feedback);
//! ```

mod define;
mod engine;
#[cfg(test)]
mod tests;

pub use define::{Answers, Ask, Flow, GIVE_UP, Next, Trigger};
pub use engine::{Decision, Position, is_nudge};

use std::time::Duration;

use crate::{
    Action, Event, Handled, Outgoing, PluginError,
    schedule::{self, ScheduleError},
    state::{self, Conversation},
};

/// How long a position is kept after the idle timeout (or without one, after the user's
/// last word): the next message within it hears that the flow timed out; after it, the
/// flow is forgotten without a word.
const KEEP_S: u32 = 24 * 3600;

/// A plugin's flows and how they behave together.
pub struct Flows {
    flows: Vec<Flow>,
    idle: Option<(u32, Outgoing)>,
    cancel: Vec<String>,
    cancelled: Outgoing,
}

impl Default for Flows {
    fn default() -> Self {
        Self::new()
    }
}

impl Flows {
    /// No flows yet; no idle timeout (a position is kept a day); "cancel" and "stop" leave
    /// a flow, answered "Cancelled.".
    pub fn new() -> Self {
        Self {
            flows: Vec::new(),
            idle: None,
            cancel: vec!["cancel".to_owned(), "stop".to_owned()],
            cancelled: Outgoing::text("Cancelled."),
        }
    }

    /// Adds a flow. Triggers are tried in the order the flows were added.
    pub fn flow(mut self, flow: Flow) -> Self {
        self.flows.push(flow);
        self
    }

    /// A user silent for longer than `seconds` in a flow is out of it: their next message
    /// is answered `notice`, then taken as a fresh start.
    pub fn idle_timeout(mut self, seconds: u32, notice: impl Into<Outgoing>) -> Self {
        self.idle = Some((seconds, notice.into()));
        self
    }

    /// The words that leave a flow, whatever it is asking (matched as
    /// [`Trigger::keywords`] are), and the answer to them. No words: no way out but the
    /// flow's end or the timeout.
    pub fn cancel<W: Into<String>>(
        mut self,
        words: impl IntoIterator<Item = W>,
        answer: impl Into<Outgoing>,
    ) -> Self {
        self.cancel = words
            .into_iter()
            .map(|word| define::normalize(&word.into()))
            .collect();
        self.cancelled = answer.into();
        self
    }

    /// How long a position is kept in the state, in seconds.
    pub fn ttl_seconds(&self) -> u32 {
        self.idle
            .as_ref()
            .map_or(0, |(seconds, _)| *seconds)
            .saturating_add(KEEP_S)
    }

    /// Handles an event: reads the user's position from the conversation state, decides
    /// ([`Flows::decide`]), keeps the new position and returns the replies. No replies when
    /// the event is not for any flow, so the plugin can try something else: the plugin's
    /// own timers ([`is_nudge`] is false for them) are left alone without a state read.
    ///
    /// A question with [`Ask::nudge_after`] gets its timer here; the timer of a question no
    /// longer waiting is cancelled (were it left, it would fire and find nothing to say).
    pub fn handle(&self, event: &Event) -> Handled {
        let nudge = event.timer().is_some_and(is_nudge);
        if engine::Input::of(event).is_none() && !nudge {
            return Ok(Vec::new());
        }
        let mut host = Host {
            conversation: event.conversation(),
            timers: self.timers(),
        };
        self.handle_on(&mut host, event)
    }

    /// The host's timers, when a question nudges.
    fn timers(&self) -> Option<Timers> {
        let steps = self.flows.iter().flat_map(|flow| &flow.steps);
        steps
            .filter_map(|step| match step {
                define::Step::Ask(_, ask) => ask.timers,
                _ => None,
            })
            .next()
    }

    /// [`Flows::handle`] against `host`: the conversation state and the timers.
    fn handle_on(&self, host: &mut impl Keeper, event: &Event) -> Handled {
        let saved = host.load()?;
        let Decision {
            replies,
            mut position,
            nudge,
        } = self.decide(saved.clone(), event)?;
        if let (Some(delay), Some(waiting)) = (nudge, position.as_mut()) {
            // Without its nudge the question still works: a timer that cannot be set (the
            // capability withheld, which the host logs; its limits; an outage) is left out.
            waiting.nudge = host.after(delay, &engine::nudge_payload(waiting)).ok();
        }
        match (&position, &saved) {
            (Some(now), before) if Some(now) != before.as_ref() => {
                host.save(now, self.ttl_seconds())?;
            }
            (None, Some(_)) => host.clear()?,
            _ => {}
        }
        let pending = saved.and_then(|before| before.nudge);
        let kept = position.and_then(|now| now.nudge);
        let fired = event.timer().map(|timer| &timer.id);
        if let Some(stale) = pending
            && Some(&stale) != kept.as_ref()
            && Some(&stale) != fired
        {
            // Should the cancel fail, the timer fires, finds another id in the position (or
            // none) and says nothing; cancelling keeps the plugin's timers, which the host
            // counts against its limits, few.
            let _ = host.cancel(&stale);
        }
        Ok(replies.into_iter().map(Action::Reply).collect())
    }
}

/// The host calls nudges make. Only [`Ask::nudge_after`] takes them, so a plugin whose
/// questions never nudge does not import `schedule`: a component importing a capability
/// its manifest does not ask for is refused as a package.
#[derive(Clone, Copy)]
pub(crate) struct Timers {
    after: fn(Duration, &str) -> Result<String, ScheduleError>,
    cancel: fn(&str) -> Result<bool, ScheduleError>,
}

impl Timers {
    const HOST: Timers = Timers {
        after: schedule::after,
        cancel: schedule::cancel,
    };
}

/// What [`Flows::handle`] needs of the host, for one conversation: its state and the
/// plugin's timers. The tests keep them in memory.
trait Keeper {
    fn load(&mut self) -> Result<Option<Position>, PluginError>;
    fn save(&mut self, position: &Position, ttl_seconds: u32) -> Result<(), PluginError>;
    fn clear(&mut self) -> Result<(), PluginError>;
    fn after(&mut self, delay: Duration, payload: &str) -> Result<String, ScheduleError>;
    fn cancel(&mut self, id: &str) -> Result<bool, ScheduleError>;
}

/// The host's capabilities, in one conversation.
struct Host {
    conversation: Conversation,
    /// None when no question nudges: then no timer is set, and there is none to cancel
    /// but one a version of the plugin that nudged left, which fires and says nothing.
    timers: Option<Timers>,
}

impl Keeper for Host {
    fn load(&mut self) -> Result<Option<Position>, PluginError> {
        Ok(state::get(&self.conversation)?)
    }

    fn save(&mut self, position: &Position, ttl_seconds: u32) -> Result<(), PluginError> {
        Ok(state::set(&self.conversation, position, ttl_seconds)?)
    }

    fn clear(&mut self) -> Result<(), PluginError> {
        Ok(state::clear(&self.conversation)?)
    }

    fn after(&mut self, delay: Duration, payload: &str) -> Result<String, ScheduleError> {
        match self.timers {
            Some(timers) => (timers.after)(delay, payload),
            None => Err(ScheduleError::Invalid("no question nudges".to_owned())),
        }
    }

    fn cancel(&mut self, id: &str) -> Result<bool, ScheduleError> {
        self.timers.map_or(Ok(false), |timers| (timers.cancel)(id))
    }
}
