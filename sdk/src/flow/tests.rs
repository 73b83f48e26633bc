//! The decision, natively: no host, no state; positions are passed along by hand. The
//! nudges' timers and state go through [`Flows::handle_on`] with a host kept in memory.

use super::*;
use crate::{
    Command, CommandSource, EventKind, Interaction, Menu, Message, Platform, PluginError, Reaction,
    Timer, User,
};

const T0: u64 = 1_700_000_000_000;

fn event(kind: EventKind, at_ms: u64) -> Event {
    Event {
        id: "e".into(),
        platform: Platform::Whatsapp,
        guild_id: None,
        channel_id: "chat".into(),
        author: User {
            id: "ada".into(),
            name: "Ada".into(),
            is_bot: false,
            roles: Vec::new(),
            locale: None,
        },
        timestamp_ms: at_ms,
        received_ms: at_ms,
        guild_locale: None,
        kind,
    }
}

fn text(text: &str) -> EventKind {
    EventKind::Message(Message {
        id: "m".into(),
        text: text.into(),
        reply_to: None,
        mentions: Vec::new(),
        attachments: Vec::new(),
        location: None,
        contacts: Vec::new(),
    })
}

fn click(id: &str, values: &[&str]) -> EventKind {
    EventKind::Interaction(Interaction {
        custom_id: id.into(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
        message_id: None,
    })
}

fn command(name: &str) -> EventKind {
    EventKind::Command(Command {
        name: name.into(),
        args: Vec::new(),
        raw_args: String::new(),
        source: CommandSource::Prefix("!".into()),
        message_id: None,
    })
}

fn quantity(text: &str) -> Result<String, String> {
    match text.parse::<u32>() {
        Ok(n @ 1..=20) => Ok(n.to_string()),
        _ => Err("A number from 1 to 20, please.".into()),
    }
}

fn shop() -> Flows {
    Flows::new()
        .flow(
            Flow::new("main")
                .trigger(Trigger::keywords(["menu", "Hi"]))
                .trigger(Trigger::command("menu"))
                .trigger(Trigger::button("back"))
                .say("Welcome!")
                .ask(
                    "choice",
                    Ask::choice(
                        Outgoing::text("What would you like?")
                            .button("order", "Order")
                            .button("hours", "Opening hours"),
                    )
                    .invalid("Pick a button."),
                )
                .branch(|answers| Next::goto(&answers["choice"])),
        )
        .flow(
            Flow::new("order")
                .trigger(Trigger::keywords(["order"]))
                .trigger(Trigger::regex(r"(?i)^order\s+(?P<count>\w+)$"))
                .ask(
                    "count",
                    Ask::text("How many?")
                        .validate(quantity)
                        .give_up("Let's stop here."),
                )
                .ask(
                    "dish",
                    Ask::choice(
                        Outgoing::text("Which one?").menu(
                            Menu::new("dish", "Pizzas")
                                .option("margherita", "Margherita")
                                .option("diavola", "Diavola"),
                        ),
                    ),
                )
                .ask("name", Ask::text("Your name?"))
                .end_with(|a| {
                    Outgoing::text(format!(
                        "{} × {} for {}",
                        &a["count"], &a["dish"], &a["name"]
                    ))
                }),
        )
        .flow(Flow::new("hours").say("Open 11 to 23."))
        .idle_timeout(600, "Timed out.")
}

/// Feeds events one after the other, keeping the position as the state would.
struct Chat {
    flows: Flows,
    position: Option<Position>,
    now: u64,
}

impl Chat {
    fn new(flows: Flows) -> Self {
        Self {
            flows,
            position: None,
            now: T0,
        }
    }

    fn send(&mut self, kind: EventKind) -> Vec<String> {
        self.now += 1_000;
        let decision = self
            .flows
            .decide(self.position.take(), &event(kind, self.now))
            .unwrap();
        self.position = decision.position;
        decision.replies.into_iter().map(|o| o.text).collect()
    }

    fn say(&mut self, line: &str) -> Vec<String> {
        self.send(text(line))
    }

    fn waiting_for(&self) -> Option<&str> {
        self.position.as_ref().map(|p| p.ask.as_str())
    }
}

#[test]
fn a_keyword_starts_a_flow_whose_says_come_before_its_question() {
    let flows = shop();
    let decision = flows.decide(None, &event(text("  HI! "), T0)).unwrap();
    let texts: Vec<_> = decision.replies.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, ["Welcome!", "What would you like?"]);
    let buttons: Vec<_> = decision.replies[1].buttons.iter().map(|b| &b.id).collect();
    assert_eq!(buttons, ["order", "hours"]);
    let position = decision.position.unwrap();
    assert_eq!((position.flow.as_str(), position.step), ("main", 1));
    assert_eq!((position.ask.as_str(), position.attempts), ("choice", 0));
    assert_eq!(position.last_ms, T0);

    for unrelated in ["hello", "menu please", ""] {
        let decision = flows.decide(None, &event(text(unrelated), T0)).unwrap();
        assert_eq!(
            decision,
            Decision {
                replies: vec![],
                position: None,
                nudge: None,
            },
            "{unrelated:?}"
        );
    }
}

#[test]
fn spanish_punctuation_and_capitals_do_not_hide_a_keyword() {
    let flows = Flows::new().flow(
        Flow::new("main")
            .trigger(Trigger::keywords(["hola", "menú"]))
            .say("¡Bienvenido!"),
    );
    for greeting in ["¡Hola!", "  HOLA ", "¿hola?", "Menú", "MENÚ."] {
        let decision = flows.decide(None, &event(text(greeting), T0)).unwrap();
        let texts: Vec<_> = decision.replies.iter().map(|o| o.text.as_str()).collect();
        assert_eq!(texts, ["¡Bienvenido!"], "{greeting:?}");
    }
    let decision = flows.decide(None, &event(text("menu"), T0)).unwrap();
    assert!(decision.replies.is_empty(), "an accent is a letter");
}

#[test]
fn a_click_answers_a_choice_and_a_branch_goes_to_its_flow() {
    let mut chat = Chat::new(shop());
    chat.say("menu");
    assert_eq!(chat.send(click("hours", &[])), ["Open 11 to 23."]);
    assert_eq!(chat.position, None, "the hours flow ended");

    chat.say("menu");
    assert_eq!(chat.send(click("order", &[])), ["How many?"]);
    assert_eq!(chat.waiting_for(), Some("count"));
    assert_eq!(chat.position.as_ref().unwrap().answers["choice"], *"order");
}

#[test]
fn choices_can_be_typed_by_id_label_or_number() {
    for typed in ["order", "ORDER", "Order.", "1"] {
        let mut chat = Chat::new(shop());
        chat.say("menu");
        assert_eq!(chat.say(typed), ["How many?"], "{typed:?}");
    }
    for typed in ["opening hours", "2"] {
        let mut chat = Chat::new(shop());
        chat.say("menu");
        assert_eq!(chat.say(typed), ["Open 11 to 23."], "{typed:?}");
    }
}

#[test]
fn a_wrong_choice_is_asked_again_with_its_buttons() {
    let flows = shop();
    let start = flows.decide(None, &event(text("menu"), T0)).unwrap();
    let again = flows
        .decide(start.position, &event(text("3"), T0 + 1))
        .unwrap();
    assert_eq!(again.replies.len(), 1);
    assert_eq!(again.replies[0].text, "Pick a button.");
    assert_eq!(again.replies[0].buttons.len(), 2, "the options come again");
    let position = again.position.unwrap();
    assert_eq!((position.attempts, position.last_ms), (1, T0 + 1));
}

#[test]
fn a_bad_answer_is_asked_again_until_the_attempts_run_out() {
    let mut chat = Chat::new(shop());
    chat.say("menu");
    chat.say("order");
    assert_eq!(chat.say("lots"), ["A number from 1 to 20, please."]);
    assert_eq!(chat.say("0"), ["A number from 1 to 20, please."]);
    assert_eq!(chat.position.as_ref().unwrap().attempts, 2);
    assert_eq!(chat.say("99"), ["Let's stop here."]);
    assert_eq!(chat.position, None);
    assert!(chat.say("3").is_empty(), "the flow is over");
}

#[test]
fn a_good_answer_resets_the_attempts_and_a_flow_ends_with_its_answers() {
    let mut chat = Chat::new(shop());
    chat.say("menu");
    chat.say("order");
    chat.say("zero");
    assert_eq!(chat.say(" 3 "), ["Which one?"]);
    assert_eq!(chat.position.as_ref().unwrap().attempts, 0);
    assert_eq!(chat.send(click("dish", &["diavola"])), ["Your name?"]);
    assert_eq!(
        chat.say("  Ada Lovelace "),
        ["3 × diavola for Ada Lovelace"]
    );
    assert_eq!(chat.position, None);
}

#[test]
fn a_list_answers_by_its_id_and_value_or_by_the_value_alone() {
    for answer in [click("dish", &["margherita"]), click("margherita", &[])] {
        let mut chat = Chat::new(shop());
        chat.say("order 2");
        assert_eq!(chat.send(answer), ["Your name?"]);
        assert_eq!(
            chat.position.as_ref().unwrap().answers["dish"],
            *"margherita"
        );
    }
    let mut chat = Chat::new(shop());
    chat.say("order 2");
    assert_eq!(
        chat.send(click("dish", &["hawaii"])),
        ["Please choose one of the options."]
    );
}

#[test]
fn a_regex_trigger_fills_answers_the_asks_accept() {
    let mut chat = Chat::new(shop());
    assert_eq!(chat.say("Order 4"), ["Which one?"], "the count is skipped");
    assert_eq!(chat.position.as_ref().unwrap().answers["count"], *"4");

    let mut chat = Chat::new(shop());
    assert_eq!(chat.say("order many"), ["How many?"], "not accepted: asked");
    assert_eq!(chat.position.as_ref().unwrap().answers.get("count"), None);
}

#[test]
fn inside_a_flow_messages_are_answers_not_triggers() {
    let mut chat = Chat::new(shop());
    chat.say("order 2");
    chat.say("2");
    assert_eq!(chat.say("menu"), ["2 × diavola for menu"]);
}

#[test]
fn cancel_words_leave_a_flow_and_mean_nothing_outside_one() {
    let mut chat = Chat::new(shop());
    chat.say("order 2");
    assert_eq!(chat.say("Stop!"), ["Cancelled."]);
    assert_eq!(chat.position, None);
    assert!(chat.say("cancel").is_empty());

    let mut chat = Chat::new(shop().cancel(["quit"], "Bye."));
    chat.say("order 2");
    assert_eq!(chat.say("cancel"), ["Please choose one of the options."]);
    assert_eq!(chat.say("QUIT"), ["Bye."]);
}

#[test]
fn after_the_idle_timeout_the_user_is_told_and_starts_afresh() {
    let flows = shop();
    let start = flows.decide(None, &event(text("order"), T0)).unwrap();
    assert_eq!(start.position.as_ref().unwrap().ask, "count");

    let in_time = flows
        .decide(start.position.clone(), &event(text("3"), T0 + 600_000))
        .unwrap();
    assert_eq!(in_time.replies[0].text, "Which one?");

    let late = flows
        .decide(start.position.clone(), &event(text("3"), T0 + 600_001))
        .unwrap();
    let texts: Vec<_> = late.replies.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, ["Timed out."]);
    assert_eq!(late.position, None);

    let restarted = flows
        .decide(start.position, &event(text("menu"), T0 + 3_600_000))
        .unwrap();
    let texts: Vec<_> = restarted.replies.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, ["Timed out.", "Welcome!", "What would you like?"]);
    assert_eq!(restarted.position.unwrap().ask, "choice");
}

#[test]
fn a_waiting_question_outlives_the_idle_timeout_in_the_state() {
    assert_eq!(shop().ttl_seconds(), 600 + 24 * 3600);
    assert_eq!(Flows::new().ttl_seconds(), 24 * 3600);
}

#[test]
fn commands_restart_only_when_they_trigger_a_flow() {
    let mut chat = Chat::new(shop());
    chat.say("order 2");
    let before = chat.position.clone();
    assert!(chat.send(command("other")).is_empty());
    assert_eq!(
        chat.position, before,
        "an unrelated command changes nothing"
    );
    assert_eq!(
        chat.send(command("menu")),
        ["Welcome!", "What would you like?"]
    );
    assert_eq!(chat.waiting_for(), Some("choice"));
}

#[test]
fn a_click_on_an_old_button_is_a_wrong_answer_unless_it_triggers_a_flow() {
    let mut chat = Chat::new(shop());
    chat.say("order");
    assert_eq!(
        chat.send(click("hours", &[])),
        ["Please answer with some text."]
    );
    assert_eq!(chat.position.as_ref().unwrap().attempts, 1);
    assert_eq!(
        chat.send(click("back", &[])),
        ["Welcome!", "What would you like?"]
    );
}

#[test]
fn giving_up_can_go_to_another_flow() {
    let flows = Flows::new()
        .flow(
            Flow::new("main").trigger(Trigger::any()).ask(
                "yes",
                Ask::choice(Outgoing::text("Sure?").button("yes", "Yes"))
                    .attempts(1)
                    .give_up_to("human"),
            ),
        )
        .flow(Flow::new("human").say("A person will answer."));
    let mut chat = Chat::new(flows);
    assert_eq!(chat.say("anything"), ["Sure?"]);
    assert_eq!(chat.say("no"), ["A person will answer."]);
    assert_eq!(chat.position, None);
}

#[test]
fn run_steps_read_and_write_answers_and_their_errors_keep_the_position() {
    let flows = Flows::new().flow(
        Flow::new("main")
            .trigger(Trigger::keywords(["go"]))
            .ask("word", Ask::text("A word?"))
            .run(|event, answers| {
                if answers["word"] == *"fail" {
                    return Err(PluginError::Unavailable("the model is down".into()));
                }
                let shout = answers["word"].to_uppercase();
                answers.set("shout", shout);
                Ok(vec![Outgoing::text(format!("{} said", event.author.name))])
            })
            .end_with(|answers| Outgoing::text(answers["shout"].to_owned())),
    );
    let mut chat = Chat::new(flows);
    chat.say("go");
    assert_eq!(chat.say("hey"), ["Ada said", "HEY"]);

    let start = chat.flows.decide(None, &event(text("go"), T0)).unwrap();
    let failed = chat
        .flows
        .decide(start.position, &event(text("fail"), T0 + 1));
    assert_eq!(
        failed,
        Err(PluginError::Unavailable("the model is down".into()))
    );
}

#[test]
fn going_back_to_a_flow_asks_its_questions_again() {
    let flows = Flows::new().flow(
        Flow::new("loop")
            .trigger(Trigger::keywords(["go"]))
            .ask("n", Ask::text("A number?"))
            .ask(
                "more",
                Ask::choice(
                    Outgoing::text("Again?")
                        .button("y", "Yes")
                        .button("n", "No"),
                ),
            )
            .branch(|answers| match &answers["more"] {
                "y" => Next::goto("loop"),
                _ => Next::Continue,
            })
            .end_with(|answers| Outgoing::text(format!("last: {}", &answers["n"]))),
    );
    let mut chat = Chat::new(flows);
    chat.say("go");
    chat.say("1");
    assert_eq!(chat.say("yes"), ["A number?"]);
    chat.say("2");
    assert_eq!(chat.say("no"), ["last: 2"]);
}

#[test]
fn definition_mistakes_are_internal_errors_not_panics() {
    let endless = Flows::new().flow(Flow::new("a").trigger(Trigger::any()).goto("a"));
    let looped = endless.decide(None, &event(text("x"), T0));
    assert!(matches!(looped, Err(PluginError::Internal(e)) if e.contains("goto loop")));

    let nowhere = Flows::new().flow(Flow::new("a").trigger(Trigger::any()).goto("b"));
    let missing = nowhere.decide(None, &event(text("x"), T0));
    assert!(matches!(missing, Err(PluginError::Internal(e)) if e.contains("`b`")));

    let broken = Flows::new().flow(Flow::new("a").trigger(Trigger::regex("(")));
    let invalid = broken.decide(None, &event(text("x"), T0));
    assert!(matches!(invalid, Err(PluginError::Internal(e)) if e.contains("pattern")));
}

#[test]
fn a_position_from_another_version_is_found_by_its_ask_or_dropped() {
    let flows = shop();
    let moved = Position {
        flow: "order".into(),
        step: 7,
        ask: "name".into(),
        answers: Answers::default(),
        attempts: 0,
        last_ms: T0,
        nudge: None,
    };
    let decision = flows
        .decide(Some(moved.clone()), &event(text("Ada"), T0 + 1))
        .unwrap();
    assert_eq!(decision.replies[0].text, " ×  for Ada");

    let gone = Position {
        ask: "colour".into(),
        ..moved
    };
    let decision = flows
        .decide(Some(gone), &event(text("menu"), T0 + 1))
        .unwrap();
    assert_eq!(decision.replies[0].text, "Welcome!", "started afresh");
}

#[test]
fn events_that_are_no_input_change_nothing() {
    let flows = shop();
    let start = flows.decide(None, &event(text("order"), T0)).unwrap();
    let reaction = EventKind::Reaction(Reaction {
        message_id: "m".into(),
        emoji: "👍".into(),
        added: true,
    });
    let decision = flows
        .decide(start.position.clone(), &event(reaction, T0 + 1))
        .unwrap();
    assert_eq!(decision.replies, vec![]);
    assert_eq!(decision.position, start.position);
}

#[test]
fn a_position_is_kept_as_plain_json() {
    let mut answers = Answers::default();
    answers.set("count", "3");
    let position = Position {
        flow: "order".into(),
        step: 1,
        ask: "dish".into(),
        answers,
        attempts: 2,
        last_ms: T0,
        nudge: None,
    };
    let json = serde_json::to_value(&position).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "flow": "order", "step": 1, "ask": "dish", "answers": {"count": "3"},
            "attempts": 2, "last_ms": T0,
        })
    );
    let back: Position = serde_json::from_value(json).unwrap();
    assert_eq!(back, position);

    let nudged = Position {
        nudge: Some("t1".into()),
        ..position
    };
    let json = serde_json::to_value(&nudged).unwrap();
    assert_eq!(json["nudge"], "t1");
    let back: Position = serde_json::from_value(json).unwrap();
    assert_eq!(back, nudged);
}

// Nudges.

const NUDGE_S: u64 = 300;

fn nudging() -> Flows {
    Flows::new()
        .flow(
            Flow::new("order")
                .trigger(Trigger::keywords(["order"]))
                .ask(
                    "count",
                    Ask::text("How many?")
                        .validate(quantity)
                        .nudge_after(Duration::from_secs(NUDGE_S), "Still there? How many?"),
                )
                .ask("name", Ask::text("Your name?"))
                .end_with(|a| Outgoing::text(format!("{} for {}", &a["count"], &a["name"]))),
        )
        .idle_timeout(600, "Timed out.")
}

fn timer(id: &str, payload: &str, due_ms: u64, late_ms: u64) -> EventKind {
    EventKind::Timer(Timer {
        id: id.into(),
        payload: payload.into(),
        due_ms,
        late_ms,
        repeats: false,
    })
}

/// The host as [`Flows::handle`] sees it, in memory: one conversation's state, the timers
/// set and cancelled.
#[derive(Default)]
struct Fake {
    state: Option<Position>,
    saves: usize,
    /// Every timer set: its id, delay and payload.
    set: Vec<(String, Duration, String)>,
    cancelled: Vec<String>,
    refuse: Option<ScheduleError>,
}

impl Keeper for Fake {
    fn load(&mut self) -> Result<Option<Position>, PluginError> {
        Ok(self.state.clone())
    }

    fn save(&mut self, position: &Position, ttl_seconds: u32) -> Result<(), PluginError> {
        assert_eq!(ttl_seconds, 600 + 24 * 3600);
        self.saves += 1;
        self.state = Some(position.clone());
        Ok(())
    }

    fn clear(&mut self) -> Result<(), PluginError> {
        self.state = None;
        Ok(())
    }

    fn after(&mut self, delay: Duration, payload: &str) -> Result<String, ScheduleError> {
        if let Some(refusal) = self.refuse.clone() {
            return Err(refusal);
        }
        let id = format!("t{}", self.set.len() + 1);
        self.set.push((id.clone(), delay, payload.to_owned()));
        Ok(id)
    }

    fn cancel(&mut self, id: &str) -> Result<bool, ScheduleError> {
        self.cancelled.push(id.to_owned());
        Ok(true)
    }
}

/// A conversation through `handle_on`, a second between the user's messages.
struct Bot {
    flows: Flows,
    host: Fake,
    now: u64,
    /// When each timer the host set is due, in the order they were set.
    due: Vec<u64>,
}

impl Bot {
    fn new() -> Self {
        Self {
            flows: nudging(),
            host: Fake::default(),
            now: T0,
            due: Vec::new(),
        }
    }

    /// Handles an event stamped `at_ms`, as the host would.
    fn handle(&mut self, kind: EventKind, at_ms: u64) -> Vec<String> {
        let mut event = event(kind, at_ms);
        event.id = format!("e{at_ms}");
        let actions = self.flows.handle_on(&mut self.host, &event).unwrap();
        for (_, delay, _) in &self.host.set[self.due.len()..] {
            self.due.push(at_ms + delay.as_millis() as u64);
        }
        actions
            .into_iter()
            .map(|action| match action {
                Action::Reply(message) => message.text,
                other => panic!("only replies are expected, not {other:?}"),
            })
            .collect()
    }

    fn send(&mut self, kind: EventKind) -> Vec<String> {
        self.now += 1_000;
        self.handle(kind, self.now)
    }

    fn say(&mut self, line: &str) -> Vec<String> {
        self.send(text(line))
    }

    /// Delivers timer `id` as the host would, `late_ms` after it was due (the clock moves
    /// on to then, unless it is past it already).
    fn fire(&mut self, id: &str, late_ms: u64) -> Vec<String> {
        let index = self.host.set.iter().position(|(set, _, _)| set == id);
        let index = index.unwrap_or_else(|| panic!("timer {id} was never set"));
        let (payload, due) = (self.host.set[index].2.clone(), self.due[index]);
        self.now = self.now.max(due + late_ms);
        // The host stamps a timer's event with its due time.
        self.handle(timer(id, &payload, due, late_ms), due)
    }

    fn pending(&self) -> Option<&str> {
        self.host.state.as_ref()?.nudge.as_deref()
    }
}

#[test]
fn asking_a_question_with_a_nudge_asks_for_its_timer() {
    let flows = nudging();
    let decision = flows.decide(None, &event(text("order"), T0)).unwrap();
    assert_eq!(decision.nudge, Some(Duration::from_secs(NUDGE_S)));
    let position = decision.position.unwrap();
    assert_eq!(position.nudge, None, "no timer id until the host sets one");

    let answered = flows
        .decide(Some(position), &event(text("3"), T0 + 1))
        .unwrap();
    assert_eq!(answered.replies[0].text, "Your name?");
    assert_eq!(answered.nudge, None, "the next question has no nudge");
}

#[test]
fn a_quiet_user_is_nudged_once_and_can_still_answer() {
    let mut bot = Bot::new();
    assert_eq!(bot.say("order"), ["How many?"]);
    assert_eq!(bot.host.set.len(), 1);
    let (id, delay, payload) = bot.host.set[0].clone();
    assert_eq!(delay, Duration::from_secs(NUDGE_S));
    assert_eq!(payload, "wasmbot-sdk/flow-nudge:order/count");
    assert_eq!(
        bot.pending(),
        Some(id.as_str()),
        "its id is kept with the question"
    );

    assert_eq!(bot.fire(&id, 0), ["Still there? How many?"]);
    assert_eq!(bot.pending(), None);
    assert_eq!(
        bot.host.state.as_ref().unwrap().ask,
        "count",
        "still waiting"
    );
    assert!(
        bot.host.cancelled.is_empty(),
        "a timer that fired is not cancelled"
    );
    assert!(bot.fire(&id, 0).is_empty(), "delivered twice: nudged once");

    assert_eq!(bot.say("2"), ["Your name?"]);
    assert_eq!(bot.say("Ada"), ["2 for Ada"]);
    assert_eq!(bot.host.state, None);
    assert!(bot.host.cancelled.is_empty());
}

#[test]
fn an_answered_question_cancels_its_nudge_and_a_late_firing_says_nothing() {
    let mut bot = Bot::new();
    bot.say("order");
    assert_eq!(bot.say("4"), ["Your name?"]);
    assert_eq!(bot.host.cancelled, ["t1"]);
    assert_eq!(bot.pending(), None);
    // The cancel may lose a race with the firing.
    assert!(bot.fire("t1", 0).is_empty());
    assert_eq!(bot.host.state.as_ref().unwrap().ask, "name");
}

#[test]
fn an_ended_or_cancelled_flow_is_not_nudged() {
    let mut bot = Bot::new();
    bot.say("order");
    assert_eq!(bot.say("stop"), ["Cancelled."]);
    assert_eq!(bot.host.cancelled, ["t1"]);
    assert!(bot.fire("t1", 0).is_empty());
    assert_eq!(bot.host.state, None, "no position is made up");

    let mut bot = Bot::new();
    bot.say("order");
    for wrong in ["lots", "many"] {
        bot.say(wrong);
    }
    assert_eq!(bot.say("none"), [GIVE_UP]);
    assert_eq!(bot.host.state, None);
    assert!(bot.fire("t3", 0).is_empty());
}

#[test]
fn asking_again_counts_the_nudge_from_the_new_asking() {
    let mut bot = Bot::new();
    bot.say("order");
    assert_eq!(bot.say("lots"), ["A number from 1 to 20, please."]);
    assert_eq!(bot.host.set.len(), 2, "a new timer for the new asking");
    assert_eq!(bot.host.cancelled, ["t1"]);
    assert_eq!(bot.pending(), Some("t2"));
    assert!(
        bot.fire("t1", 0).is_empty(),
        "the first asking's timer is stale"
    );
    assert_eq!(bot.fire("t2", 0), ["Still there? How many?"]);
}

#[test]
fn a_nudge_that_comes_after_the_idle_timeout_says_nothing() {
    let mut bot = Bot::new();
    bot.say("order");
    let saves = bot.host.saves;
    // Due after five minutes, delivered six minutes later: the bot was down.
    assert!(bot.fire("t1", 360_000).is_empty());
    assert_eq!(bot.host.saves, saves + 1, "the fired timer is forgotten");
    assert_eq!(bot.pending(), None);
    assert_eq!(bot.say("3"), ["Timed out."]);
}

#[test]
fn a_question_whose_nudge_cannot_be_set_is_still_asked() {
    let mut bot = Bot::new();
    bot.host.refuse = Some(ScheduleError::Denied("not granted".into()));
    assert_eq!(bot.say("order"), ["How many?"]);
    assert_eq!(bot.host.state.as_ref().unwrap().ask, "count");
    assert_eq!(bot.pending(), None);

    bot.host.refuse = Some(ScheduleError::TooMany("100 timers here".into()));
    assert_eq!(bot.say("lots"), ["A number from 1 to 20, please."]);
    assert_eq!(bot.pending(), None);
    bot.host.refuse = None;
    assert_eq!(bot.say("many"), ["A number from 1 to 20, please."]);
    assert_eq!(bot.pending(), Some("t1"), "a later asking gets its nudge");
    assert_eq!(bot.say("3"), ["Your name?"]);
    assert_eq!(bot.host.cancelled, ["t1"]);
}

#[test]
fn other_timers_are_not_the_flows_business() {
    let mut bot = Bot::new();
    bot.say("order");
    let before = bot.host.state.clone();
    let own = timer("t1", "{\"remind\":\"tea\"}", T0, 0);
    assert!(
        bot.send(own.clone()).is_empty(),
        "the id matches, the payload is not a nudge"
    );
    assert_eq!(bot.host.state, before);

    // Nothing but the timer is looked at: no host call is made (natively, one would panic).
    assert_eq!(nudging().handle(&event(own, T0)), Ok(vec![]));
    assert!(!is_nudge(&Timer {
        id: "x".into(),
        payload: "flow-nudge".into(),
        due_ms: 0,
        late_ms: 0,
        repeats: false,
    }));
}

#[test]
fn a_nudge_for_a_question_no_longer_nudging_says_nothing() {
    let mut bot = Bot::new();
    bot.say("order");
    bot.flows = shop();
    let position = bot.host.state.clone().unwrap();
    assert!(
        bot.fire("t1", 0).is_empty(),
        "this version's `count` has no nudge"
    );
    assert_eq!(
        bot.host.state,
        Some(Position {
            nudge: None,
            ..position
        })
    );
}

#[test]
fn only_flows_whose_questions_nudge_reach_the_hosts_timers() {
    assert!(nudging().timers().is_some());
    assert!(
        shop().timers().is_none(),
        "so its plugin imports no `schedule`"
    );
}
