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

mod define;
mod engine;
#[cfg(test)]
mod tests;

pub use define::{Answers, Ask, Flow, GIVE_UP, Next, Trigger};
pub use engine::{Decision, Position};

use crate::{Action, Event, Handled, Outgoing, state};

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
    /// the event is not for any flow, so the plugin can try something else.
    pub fn handle(&self, event: &Event) -> Handled {
        if engine::Input::of(event).is_none() {
            return Ok(Vec::new());
        }
        let conversation = event.conversation();
        let saved: Option<Position> = state::get(&conversation)?;
        let decision = self.decide(saved.clone(), event)?;
        match (&decision.position, &saved) {
            (Some(now), before) if Some(now) != before.as_ref() => {
                state::set(&conversation, now, self.ttl_seconds())?;
            }
            (None, Some(_)) => state::clear(&conversation)?,
            _ => {}
        }
        Ok(decision.replies.into_iter().map(Action::Reply).collect())
    }
}
