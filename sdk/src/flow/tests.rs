//! The decision, natively: no host, no state; positions are passed along by hand.

use super::*;
use crate::{
    Command, CommandSource, EventKind, Interaction, Menu, Message, Platform, PluginError, Reaction,
    User,
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
        },
        timestamp_ms: at_ms,
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
                position: None
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
}
