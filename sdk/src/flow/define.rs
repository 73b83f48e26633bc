//! The pieces a conversation is written with: flows, their triggers and steps, and the
//! questions they ask.

use std::{collections::BTreeMap, ops::Index, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{Event, Outgoing, PluginError};

/// What the user answered so far in a conversation, by the name of the ask (or of the regex
/// trigger's named group) that captured it.
///
/// `answers["name"]` reads as `""` when there is no such answer, so a branch or a message
/// built from the answers cannot panic on a missing one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Answers(BTreeMap<String, String>);

impl Answers {
    /// The answer named `name`, when there is one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets an answer, e.g. from a [`Flow::run`] step.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// Forgets an answer, returning it.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Every answer, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

impl Index<&str> for Answers {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

/// Where a flow goes after a [`Flow::branch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// On to the flow's next step.
    Continue,
    /// To the first step of the flow with this name.
    Goto(String),
    /// The conversation is over.
    End,
}

impl Next {
    /// To the first step of the flow named `flow`.
    pub fn goto(flow: impl Into<String>) -> Self {
        Next::Goto(flow.into())
    }
}

/// What starts a flow when the user is in none (or sends a command or clicks a button that
/// answers nothing in the current one).
pub struct Trigger(pub(super) Match);

pub(super) enum Match {
    Keywords(Vec<String>),
    /// An invalid pattern is kept as its error, reported when the trigger is tried: the
    /// author sees it in the logs rather than a panic inside the plugin.
    Regex(Result<regex_lite::Regex, String>),
    Command(String),
    Button(String),
    Any,
}

impl Trigger {
    /// A message that is one of `words`, ignoring case, surrounding spaces, a trailing
    /// `!`, `.` or `?` and a leading `¡` or `¿` ("Hi!" matches "hi", "¡Hola!" "hola").
    /// Accents count: list "menú" and "menu" both to take either.
    pub fn keywords<W: Into<String>>(words: impl IntoIterator<Item = W>) -> Self {
        let words = words.into_iter().map(|w| normalize(&w.into())).collect();
        Trigger(Match::Keywords(words))
    }

    /// A message (trimmed) that `pattern` matches. Named groups (`(?P<count>\d+)`) become
    /// answers: an ask of that name whose validation accepts the captured text is skipped.
    /// Use `(?i)` to ignore case.
    pub fn regex(pattern: &str) -> Self {
        let compiled = regex_lite::Regex::new(pattern)
            .map_err(|error| format!("invalid trigger pattern {pattern:?}: {error}"));
        Trigger(Match::Regex(compiled))
    }

    /// The plugin's command `name` (declare it in the manifest).
    pub fn command(name: impl Into<String>) -> Self {
        Trigger(Match::Command(name.into()))
    }

    /// A click on a button, or a menu choice, with this id: e.g. a "Back to the menu" button
    /// on a flow's last message.
    pub fn button(id: impl Into<String>) -> Self {
        Trigger(Match::Button(id.into()))
    }

    /// Any text message: put the flow last, as the one for everything else.
    pub fn any() -> Self {
        Trigger(Match::Any)
    }
}

/// Lowercase, trimmed, without the punctuation people end a word with (or, in Spanish,
/// open it with).
pub(super) fn normalize(text: &str) -> String {
    text.trim()
        .trim_start_matches(['¡', '¿'])
        .trim_end_matches(['!', '.', '?'])
        .trim()
        .to_lowercase()
}

type Render = Box<dyn Fn(&Answers) -> Outgoing>;
type Validator = Box<dyn Fn(&str) -> Result<String, String>>;
type Brancher = Box<dyn Fn(&Answers) -> Next>;
type Runner = Box<dyn Fn(&Event, &mut Answers) -> Result<Vec<Outgoing>, PluginError>>;

/// A question whose answer the flow waits for, and what it accepts.
pub struct Ask {
    pub(super) prompt: Render,
    pub(super) kind: AskKind,
    pub(super) invalid: Option<String>,
    pub(super) attempts: u32,
    pub(super) give_up: Option<Outgoing>,
    pub(super) then: Option<String>,
    pub(super) nudge: Option<(Duration, Outgoing)>,
    pub(super) timers: Option<super::Timers>,
}

pub(super) enum AskKind {
    Text(Option<Validator>),
    Choice,
}

/// What a user is told when an ask runs out of attempts and [`Ask::give_up`] said nothing.
pub const GIVE_UP: &str = "Let's leave it there for now.";

impl Ask {
    /// A question answered by typing: any non-empty text, trimmed, unless
    /// [`Ask::validate`] says otherwise.
    pub fn text(prompt: impl Into<Outgoing>) -> Self {
        let prompt = prompt.into();
        Self::text_with(move |_| prompt.clone())
    }

    /// [`Ask::text`] with a prompt built from the answers so far.
    pub fn text_with(prompt: impl Fn(&Answers) -> Outgoing + 'static) -> Self {
        Self::new(Box::new(prompt), AskKind::Text(None))
    }

    /// A question answered by one of the prompt's buttons or menu options: a click or a
    /// menu choice, or, for platforms where people type (WhatsApp), the option's id or
    /// label in any case, or its number counting from 1. The answer is the button's id or
    /// the option's value.
    pub fn choice(prompt: impl Into<Outgoing>) -> Self {
        let prompt = prompt.into();
        Self::choice_with(move |_| prompt.clone())
    }

    /// [`Ask::choice`] with a prompt (and so its options) built from the answers so far.
    pub fn choice_with(prompt: impl Fn(&Answers) -> Outgoing + 'static) -> Self {
        Self::new(Box::new(prompt), AskKind::Choice)
    }

    fn new(prompt: Render, kind: AskKind) -> Self {
        Self {
            prompt,
            kind,
            invalid: None,
            attempts: 3,
            give_up: None,
            then: None,
            nudge: None,
            timers: None,
        }
    }

    /// Checks and normalizes a typed answer: `Ok` with the value to keep, or `Err` with what
    /// to tell the user before they try again.
    pub fn validate(mut self, check: impl Fn(&str) -> Result<String, String> + 'static) -> Self {
        if let AskKind::Text(validator) = &mut self.kind {
            *validator = Some(Box::new(check));
        }
        self
    }

    /// What to say when an answer is not accepted (a validator's own message wins). A
    /// choice repeats its buttons or menu with it.
    pub fn invalid(mut self, text: impl Into<String>) -> Self {
        self.invalid = Some(text.into());
        self
    }

    /// How many wrong answers the user may give; the last one gives up (3 by default, at
    /// least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// What to say when the attempts run out; the conversation then ends, unless
    /// [`Ask::give_up_to`] continues it. Default: [`GIVE_UP`], or nothing before a
    /// `give_up_to`.
    pub fn give_up(mut self, message: impl Into<Outgoing>) -> Self {
        self.give_up = Some(message.into());
        self
    }

    /// When the attempts run out, continue with the flow named `flow`, e.g. one handing the
    /// user over to a person.
    pub fn give_up_to(mut self, flow: impl Into<String>) -> Self {
        self.then = Some(flow.into());
        self
    }

    /// When the user has not answered `delay` after the question (or after it was asked
    /// again), sends `message` once, e.g. "Still there? Just type the number.". An answer,
    /// a cancel or the end of the flow before then sends nothing.
    ///
    /// [`Flows::handle`] sets a timer for it (capability `schedule`, which the manifest
    /// must ask for beside `state`); one that cannot be set (the capability withheld, which
    /// the host logs; the host's limits; an outage) leaves the question without its nudge.
    /// A nudge later than [`Flows::idle_timeout`] is never sent: the user is out of the
    /// flow by then.
    ///
    /// [`Flows::handle`]: super::Flows::handle
    /// [`Flows::idle_timeout`]: super::Flows::idle_timeout
    pub fn nudge_after(mut self, delay: Duration, message: impl Into<Outgoing>) -> Self {
        self.nudge = Some((delay, message.into()));
        self.timers = Some(super::Timers::HOST);
        self
    }
}

/// One conversation: what starts it and the steps it goes through, in order. It ends after
/// its last step.
pub struct Flow {
    pub(super) name: String,
    pub(super) triggers: Vec<Trigger>,
    pub(super) steps: Vec<Step>,
}

pub(super) enum Step {
    Say(Render),
    Ask(String, Box<Ask>),
    Goto(String),
    Branch(Brancher),
    Run(Runner),
    End,
}

impl Flow {
    /// A flow with a name, unique among the plugin's flows, that steps go to.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            triggers: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Starts the flow on `trigger`; a flow with none is only reached by a goto.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.triggers.push(trigger);
        self
    }

    /// Sends a message. Several in a row, before an ask, are several replies to one event.
    pub fn say(self, message: impl Into<Outgoing>) -> Self {
        let message = message.into();
        self.say_with(move |_| message.clone())
    }

    /// Sends a message built from the answers so far.
    pub fn say_with(mut self, message: impl Fn(&Answers) -> Outgoing + 'static) -> Self {
        self.steps.push(Step::Say(Box::new(message)));
        self
    }

    /// Sends the ask's prompt and waits for the user's answer, kept as `answers[name]`. An
    /// answer already there (from a regex trigger) that the ask accepts skips the question.
    pub fn ask(mut self, name: impl Into<String>, ask: Ask) -> Self {
        self.steps.push(Step::Ask(name.into(), Box::new(ask)));
        self
    }

    /// Continues with the flow named `flow`, from its first step, asking its questions
    /// afresh; the other answers are kept.
    pub fn goto(mut self, flow: impl Into<String>) -> Self {
        self.steps.push(Step::Goto(flow.into()));
        self
    }

    /// Decides from the answers where to go next.
    pub fn branch(mut self, next: impl Fn(&Answers) -> Next + 'static) -> Self {
        self.steps.push(Step::Branch(Box::new(next)));
        self
    }

    /// Runs the plugin's own code (an AI call, a database write...), which may read and
    /// write the answers, and sends the messages it returns. An error fails the event and
    /// leaves the user where they were, so they can try again.
    pub fn run(
        mut self,
        step: impl Fn(&Event, &mut Answers) -> Result<Vec<Outgoing>, PluginError> + 'static,
    ) -> Self {
        self.steps.push(Step::Run(Box::new(step)));
        self
    }

    /// Ends the conversation here.
    pub fn end(mut self) -> Self {
        self.steps.push(Step::End);
        self
    }

    /// Ends the conversation with a message built from the answers.
    pub fn end_with(self, message: impl Fn(&Answers) -> Outgoing + 'static) -> Self {
        self.say_with(message).end()
    }
}
