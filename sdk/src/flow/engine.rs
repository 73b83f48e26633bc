//! The decision: definitions, where the user was, what they sent and when → where they are
//! now and what to answer. Pure, so it is tested natively; the caller keeps the position.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    Flows,
    define::{Answers, Ask, AskKind, GIVE_UP, Match, Next, Step, Trigger, normalize},
};
use crate::{Event, EventKind, Outgoing, PluginError, Timer};

/// Steps one event may run: more means a goto loop that never waits for the user.
const MAX_STEPS: usize = 100;

/// How a nudge timer's payload starts: the plugin's other timers are not the flows'.
pub(super) const NUDGE: &str = "wasmbot-sdk/flow-nudge:";

/// Whether `timer` is one the flows set to nudge a user ([`Ask::nudge_after`]), rather than
/// one of the plugin's own.
pub fn is_nudge(timer: &Timer) -> bool {
    timer.payload.starts_with(NUDGE)
}

/// The payload of the timer that nudges the user at `position`: namespaced, and naming the
/// question for whoever reads the host's timers.
pub(super) fn nudge_payload(position: &Position) -> String {
    format!("{NUDGE}{}/{}", position.flow, position.ask)
}

/// Where a user is in a conversation: what is kept between their messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The flow they are in.
    pub flow: String,
    /// The index of the step waiting for their answer.
    pub step: usize,
    /// The name of that step's ask: a flow edited since the position was saved is found
    /// again by name, or started over when the ask is gone.
    pub ask: String,
    /// What they answered so far.
    pub answers: Answers,
    /// Wrong answers given to this ask.
    pub attempts: u32,
    /// When they were last heard from, in milliseconds since the Unix epoch (the event's
    /// time, so that hosts' clocks do not matter).
    pub last_ms: u64,
    /// The id of the timer set to nudge them about this question ([`Ask::nudge_after`]),
    /// until it fires: a timer of any other id is stale (set for an earlier question, or
    /// an earlier asking of this one) and says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge: Option<String>,
}

/// What an event did to a conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What to answer, in order.
    pub replies: Vec<Outgoing>,
    /// Where the user is now; `None` when they are in no flow.
    pub position: Option<Position>,
    /// After how long to nudge the user about the question `position` now waits on, when
    /// its ask says so ([`Ask::nudge_after`]) and it was just asked: [`Flows::handle`] sets
    /// the timer and keeps its id in [`Position::nudge`].
    pub nudge: Option<Duration>,
}

/// What a user sent, as flows see it.
pub(super) enum Input<'e> {
    Text(&'e str),
    Command(&'e str),
    Click { id: &'e str, values: &'e [String] },
}

impl<'e> Input<'e> {
    /// `None` for events that are nobody's input (reactions, joins, deliveries).
    pub(super) fn of(event: &'e Event) -> Option<Self> {
        match &event.kind {
            EventKind::Message(message) => Some(Input::Text(message.text.trim())),
            EventKind::Command(command) => Some(Input::Command(&command.name)),
            EventKind::Interaction(interaction) => Some(Input::Click {
                id: &interaction.custom_id,
                values: &interaction.values,
            }),
            _ => None,
        }
    }
}

/// How an ask takes an input.
enum Answer {
    Accepted(String),
    Rejected(String),
    /// Not an answer at all (a command): the ask keeps waiting, nothing counted.
    Ignored,
}

impl Trigger {
    /// The answers the trigger captures when `input` sets it off.
    fn fires(&self, input: &Input) -> Result<Option<Answers>, PluginError> {
        let fired = match (&self.0, input) {
            (Match::Keywords(words), Input::Text(text)) => words.contains(&normalize(text)),
            (Match::Any, Input::Text(_)) => true,
            (Match::Command(name), Input::Command(command)) => name == command,
            (Match::Button(button), Input::Click { id, values }) => {
                button.as_str() == *id || values.contains(button)
            }
            (Match::Regex(regex), Input::Text(text)) => {
                let regex = regex
                    .as_ref()
                    .map_err(|e| PluginError::Internal(e.clone()))?;
                let Some(captures) = regex.captures(text) else {
                    return Ok(None);
                };
                let mut answers = Answers::default();
                for name in regex.capture_names().flatten() {
                    if let Some(value) = captures.name(name) {
                        answers.set(name, value.as_str());
                    }
                }
                return Ok(Some(answers));
            }
            _ => false,
        };
        Ok(fired.then(Answers::default))
    }
}

impl Ask {
    fn take(&self, input: &Input, answers: &Answers) -> Answer {
        match (&self.kind, input) {
            (_, Input::Command(_)) => Answer::Ignored,
            (AskKind::Text(validator), Input::Text(text)) => {
                let checked = match validator {
                    Some(check) => check(text),
                    None if text.is_empty() => Err(String::new()),
                    None => Ok((*text).to_owned()),
                };
                match checked {
                    Ok(value) => Answer::Accepted(value),
                    Err(reason) if reason.is_empty() => Answer::Rejected(self.invalid_text()),
                    Err(reason) => Answer::Rejected(reason),
                }
            }
            (AskKind::Text(_), Input::Click { .. }) => Answer::Rejected(self.invalid_text()),
            (AskKind::Choice, input) => match choose(&(self.prompt)(answers), input) {
                Some(value) => Answer::Accepted(value),
                None => Answer::Rejected(self.invalid_text()),
            },
        }
    }

    fn invalid_text(&self) -> String {
        self.invalid.clone().unwrap_or_else(|| match self.kind {
            AskKind::Text(_) => "Please answer with some text.".to_owned(),
            AskKind::Choice => "Please choose one of the options.".to_owned(),
        })
    }

    /// The message that asks again: a choice shows its options again with it.
    fn again(&self, reason: String, answers: &Answers) -> Outgoing {
        match self.kind {
            AskKind::Text(_) => Outgoing::text(reason),
            AskKind::Choice => Outgoing {
                text: reason,
                ..(self.prompt)(answers)
            },
        }
    }
}

/// The option of `prompt` that `input` picks: its buttons, then its menu's options.
fn choose(prompt: &Outgoing, input: &Input) -> Option<String> {
    let buttons = prompt
        .buttons
        .iter()
        .filter(|button| button.url.is_none())
        .map(|button| (&button.id, &button.label));
    let menu = prompt.menu.as_ref();
    let options = menu
        .into_iter()
        .flat_map(|menu| &menu.options)
        .map(|option| (&option.value, &option.label));
    let choices: Vec<(&String, &String)> = buttons.chain(options).collect();
    let found = match input {
        // A button answers with its id; a menu with its own id and the values; a list row
        // that came back with no menu id, with its value as the id.
        Input::Click { id, values } => std::iter::once(*id)
            .chain(values.iter().map(String::as_str))
            .find_map(|picked| choices.iter().find(|(value, _)| value.as_str() == picked)),
        Input::Text(text) => {
            let typed = normalize(text);
            let named = choices
                .iter()
                .find(|(value, label)| normalize(value) == typed || normalize(label) == typed);
            named.or_else(|| {
                let number = typed.parse::<usize>().ok()?;
                choices.get(number.checked_sub(1)?)
            })
        }
        Input::Command(_) => None,
    };
    found.map(|(value, _)| (*value).clone())
}

/// A run of steps in progress.
struct Run<'a> {
    flows: &'a Flows,
    event: &'a Event,
    replies: Vec<Outgoing>,
    nudge: Option<Duration>,
}

impl Flows {
    /// Decides what `event` does to the conversation of a user who was at `saved`: the
    /// replies, and where they are now. Pure but for the plugin's own [`Flow::run`]
    /// steps; "now" is the event's time. [`Flows::handle`] is this plus the state and the
    /// nudge timers.
    ///
    /// [`Flow::run`]: super::Flow::run
    pub fn decide(&self, saved: Option<Position>, event: &Event) -> Result<Decision, PluginError> {
        if let Some(timer) = event.timer() {
            return Ok(self.nudged(saved, event, timer));
        }
        let Some(input) = Input::of(event) else {
            return Ok(Decision {
                replies: Vec::new(),
                position: saved,
                nudge: None,
            });
        };
        let mut run = Run {
            flows: self,
            event,
            replies: Vec::new(),
            nudge: None,
        };
        let now = event.timestamp_ms;
        let saved = match (saved, &self.idle) {
            (Some(position), Some((_, notice))) if self.idled(&position, now) => {
                run.replies.push(notice.clone());
                None
            }
            (saved, _) => saved,
        };
        let Some(position) = saved else {
            return run.start(&input);
        };
        if let Input::Text(text) = &input
            && self.cancel.contains(&normalize(text))
        {
            run.replies.push(self.cancelled.clone());
            return Ok(run.finish(None));
        }
        let Some((flow, step, ask)) = self.waiting(&position) else {
            return run.start(&input);
        };
        let mut answers = position.answers.clone();
        let reason = match ask.take(&input, &answers) {
            Answer::Accepted(value) => {
                answers.set(&position.ask, value);
                return run.steps(flow, step + 1, answers);
            }
            Answer::Rejected(reason) => Some(reason),
            Answer::Ignored => None,
        };
        // Commands and clicks that answer nothing here may start another flow.
        if !matches!(input, Input::Text(_)) && self.triggered(&input)?.is_some() {
            return run.start(&input);
        }
        let Some(reason) = reason else {
            return Ok(run.finish(Some(position)));
        };
        let attempts = position.attempts.saturating_add(1);
        if attempts < ask.attempts {
            run.replies.push(ask.again(reason, &answers));
            // Asked again: a nudge counts from now, on a new timer.
            run.nudge = ask.nudge.as_ref().map(|(delay, _)| *delay);
            return Ok(run.finish(Some(Position {
                step,
                attempts,
                last_ms: now,
                nudge: None,
                ..position
            })));
        }
        let said = ask.give_up.clone();
        match &ask.then {
            Some(next) => {
                run.replies.extend(said);
                let flow = self.enter(next, &mut answers)?;
                run.steps(flow, 0, answers)
            }
            None => {
                run.replies.push(said.unwrap_or_else(|| GIVE_UP.into()));
                Ok(run.finish(None))
            }
        }
    }

    /// What a nudge timer does: the ask's nudge, when the user still has not answered the
    /// question it was set for; nothing otherwise.
    fn nudged(&self, saved: Option<Position>, event: &Event, timer: &Timer) -> Decision {
        let mut decision = Decision {
            replies: Vec::new(),
            position: saved,
            nudge: None,
        };
        let Some(position) = decision.position.as_mut() else {
            return decision;
        };
        if !is_nudge(timer) || position.nudge.as_deref() != Some(timer.id.as_str()) {
            return decision;
        }
        position.nudge = None;
        // A timer's event is stamped with when it was due; it may come much later.
        let delivered = event.timestamp_ms.saturating_add(timer.late_ms);
        if self.idled(position, delivered) {
            return decision;
        }
        let nudge = self
            .waiting(position)
            .and_then(|(_, _, ask)| ask.nudge.as_ref());
        if let Some((_, message)) = nudge {
            decision.replies.push(message.clone());
        }
        decision
    }

    /// Whether the user at `position` has been silent past the idle timeout at `now`.
    fn idled(&self, position: &Position, now: u64) -> bool {
        self.idle.as_ref().is_some_and(|(seconds, _)| {
            now.saturating_sub(position.last_ms) > u64::from(*seconds) * 1000
        })
    }

    /// The flow, step and ask that `position` waits on: at its step, or, saved by another
    /// version of the flow, the same ask wherever it moved; `None` when the ask is gone.
    fn waiting(&self, position: &Position) -> Option<(usize, usize, &Ask)> {
        let index = self.flow_index(&position.flow)?;
        let steps = &self.flows[index].steps;
        let at = |step: usize| match steps.get(step) {
            Some(Step::Ask(name, ask)) if *name == position.ask => Some((step, &**ask)),
            _ => None,
        };
        let (step, ask) = at(position.step).or_else(|| (0..steps.len()).find_map(at))?;
        Some((index, step, ask))
    }

    fn flow_index(&self, name: &str) -> Option<usize> {
        self.flows.iter().position(|flow| flow.name == name)
    }

    /// The first flow `input` triggers, with the answers its trigger captured.
    fn triggered(&self, input: &Input) -> Result<Option<(usize, Answers)>, PluginError> {
        for (index, flow) in self.flows.iter().enumerate() {
            for trigger in &flow.triggers {
                if let Some(answers) = trigger.fires(input)? {
                    return Ok(Some((index, answers)));
                }
            }
        }
        Ok(None)
    }

    /// The flow named `name`, its questions to be asked afresh (a flow gone back to, e.g.
    /// "order another", must not skip them).
    fn enter(&self, name: &str, answers: &mut Answers) -> Result<usize, PluginError> {
        let index = self.flow_index(name).ok_or_else(|| {
            PluginError::Internal(format!("a flow goes to `{name}`, which is not defined"))
        })?;
        for step in &self.flows[index].steps {
            if let Step::Ask(asked, _) = step {
                answers.remove(asked);
            }
        }
        Ok(index)
    }
}

impl Run<'_> {
    fn finish(self, position: Option<Position>) -> Decision {
        // A nudge only for a question still waiting.
        let nudge = self.nudge.filter(|_| position.is_some());
        Decision {
            replies: self.replies,
            position,
            nudge,
        }
    }

    /// A user in no flow: the first trigger `input` sets off starts its flow.
    fn start(self, input: &Input) -> Result<Decision, PluginError> {
        match self.flows.triggered(input)? {
            Some((flow, captured)) => self.steps(flow, 0, captured),
            None => Ok(self.finish(None)),
        }
    }

    /// Runs steps from `flow`'s `step` until one waits for the user or the conversation
    /// ends.
    fn steps(
        mut self,
        mut flow: usize,
        mut step: usize,
        mut answers: Answers,
    ) -> Result<Decision, PluginError> {
        let flows = self.flows;
        for _ in 0..MAX_STEPS {
            let Some(current) = flows.flows[flow].steps.get(step) else {
                return Ok(self.finish(None));
            };
            step += 1;
            match current {
                Step::Say(message) => self.replies.push(message(&answers)),
                Step::Ask(name, ask) => {
                    // Filled by the trigger: kept only if the ask would take it.
                    if let Some(given) = answers.remove(name)
                        && let Answer::Accepted(value) = ask.take(&Input::Text(&given), &answers)
                    {
                        answers.set(name, value);
                        continue;
                    }
                    self.replies.push((ask.prompt)(&answers));
                    self.nudge = ask.nudge.as_ref().map(|(delay, _)| *delay);
                    let waiting = Position {
                        flow: flows.flows[flow].name.clone(),
                        step: step - 1,
                        ask: name.clone(),
                        answers,
                        attempts: 0,
                        last_ms: self.event.timestamp_ms,
                        nudge: None,
                    };
                    return Ok(self.finish(Some(waiting)));
                }
                Step::Goto(next) => (flow, step) = (flows.enter(next, &mut answers)?, 0),
                Step::Branch(decide) => match decide(&answers) {
                    Next::Continue => {}
                    Next::Goto(next) => (flow, step) = (flows.enter(&next, &mut answers)?, 0),
                    Next::End => return Ok(self.finish(None)),
                },
                Step::Run(code) => {
                    let said = code(self.event, &mut answers)?;
                    self.replies.extend(said);
                }
                Step::End => return Ok(self.finish(None)),
            }
        }
        Err(PluginError::Internal(format!(
            "flow `{}` ran {MAX_STEPS} steps without waiting for the user: a goto loop?",
            flows.flows[flow].name
        )))
    }
}
