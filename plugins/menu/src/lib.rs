//! A pizza shop's menu, written as flows (`wasmbot_sdk::flow`): "menu" or "menú" (or a
//! greeting, English or Spanish, where people talk to the bot alone) shows buttons; Order
//! asks how many (a number, asked again when it is not one, given up after three tries),
//! which pizza (a list on WhatsApp, a select menu on Discord), the name for the order and
//! a confirmation; Opening hours says them; Talk to a person hands over. "order 3" skips the first question. Where a user is
//! lives in the conversation state (capability `state`), so an order goes on after a
//! restart, or on another host.

use wasmbot_sdk::{
    Platform,
    flow::{Answers, Ask, Flow, Flows, Next, Trigger},
    prelude::*,
};

/// The pizzas: value, name, toppings.
const PIZZAS: [(&str, &str, &str); 4] = [
    ("margherita", "Margherita", "Tomato, mozzarella, basil"),
    ("marinara", "Marinara", "Tomato, garlic, oregano"),
    ("diavola", "Diavola", "Tomato, mozzarella, spicy salami"),
    ("funghi", "Funghi", "Tomato, mozzarella, mushrooms"),
];

/// An order left unanswered this long is closed.
const IDLE_S: u32 = 600;

/// What opens the menu everywhere: its name, with and without the Spanish accent.
const MENU: [&str; 2] = ["menu", "menú"];

/// Where the bot is talked to alone (WhatsApp, the console) a greeting opens the menu; in a
/// Discord channel it would answer everyone's "hi". Spanish too: the shops this demo
/// follows serve Spanish-speaking users, who write "hola" first.
const GREETINGS: [&str; 10] = [
    "hi",
    "hello",
    "start",
    "hola",
    "buenas",
    "buenos días",
    "buenos dias",
    "buenas tardes",
    "buenas noches",
    "empezar",
];

struct Shop;

impl Plugin for Shop {
    fn manifest() -> Manifest {
        Manifest::new("menu", env!("CARGO_PKG_VERSION"))
            .description("A pizza shop's menu: buttons, a list, and an order taken step by step")
            .command(CommandSpec::new("menu", "Show the menu"))
            .on(EventType::Message)
            .on(EventType::Interaction)
            .capability("state")
            .capability("log")
    }

    fn handle(event: Event) -> Handled {
        flows(event.platform).handle(&event)
    }
}

fn flows(platform: Platform) -> Flows {
    let mut words = MENU.to_vec();
    if platform != Platform::Discord {
        words.extend(GREETINGS);
    }
    Flows::new()
        .flow(
            Flow::new("main")
                .trigger(Trigger::keywords(words))
                .trigger(Trigger::command("menu"))
                .trigger(Trigger::button("menu"))
                .ask(
                    "choice",
                    Ask::choice(
                        Outgoing::text("Welcome to Wasm Pizza! What would you like?")
                            .button("order", "Order")
                            .button("hours", "Opening hours")
                            .button("person", "Talk to a person"),
                    )
                    .invalid("Please pick one of the buttons (or type 1, 2 or 3).")
                    .give_up("Say *menu* when you want to see the menu again."),
                )
                // The buttons' ids are the flows' names; each flow also answers its
                // button directly, so the buttons of an old menu message keep working.
                .branch(|answers| Next::goto(&answers["choice"])),
        )
        .flow(
            Flow::new("order")
                .trigger(Trigger::button("order"))
                .trigger(Trigger::regex(r"(?i)^order(?:\s+(?P<count>\d+))?$"))
                .ask(
                    "count",
                    Ask::text("How many pizzas would you like? (1-20)")
                        .validate(quantity)
                        .give_up("Sorry, I still did not get a number. Say *menu* to start again."),
                )
                .ask("pizza", Ask::choice(pizza_list()))
                .ask(
                    "name",
                    Ask::text("What name should we put on the order?").validate(name),
                )
                .ask(
                    "confirm",
                    Ask::choice_with(|answers| {
                        Outgoing::text(format!("{}. Shall I place the order?", summary(answers)))
                            .button("yes", "Yes, order")
                            .button("no", "No")
                    }),
                )
                .end_with(|answers| {
                    let text = match &answers["confirm"] {
                        "yes" => format!(
                            "Thank you, {}! {} will be ready in 20 minutes.",
                            &answers["name"],
                            order(answers)
                        ),
                        _ => "Okay, nothing ordered.".to_owned(),
                    };
                    Outgoing::text(text).button("menu", "Back to the menu")
                }),
        )
        .flow(
            Flow::new("hours")
                .trigger(Trigger::button("hours"))
                .trigger(Trigger::keywords(["hours", "opening hours"]))
                .say(
                    Outgoing::text("We are open every day from 11:00 to 23:00.")
                        .button("menu", "Back to the menu"),
                ),
        )
        .flow(
            Flow::new("person")
                .trigger(Trigger::button("person"))
                .run(|event, _| {
                    log::info(&format!("{} asks for a person", event.author.id));
                    Ok(vec![Outgoing::text(
                        "A person will answer you here shortly.",
                    )])
                }),
        )
        .idle_timeout(
            IDLE_S,
            "You were away for a while, so I closed that conversation. Say *menu* to start again.",
        )
        .cancel(
            ["cancel", "stop"],
            "Okay, cancelled. Say *menu* whenever you like.",
        )
}

/// The pizzas as a list (WhatsApp) or select menu (Discord).
fn pizza_list() -> Outgoing {
    let list = PIZZAS.iter().fold(
        Menu::new("pizza", "Pizzas"),
        |list, (value, label, toppings)| list.described(*value, *label, *toppings),
    );
    Outgoing::text("Which pizza?").menu(list)
}

fn quantity(text: &str) -> Result<String, String> {
    match text.parse::<u32>() {
        Ok(count @ 1..=20) => Ok(count.to_string()),
        _ => Err("Please answer with a number from 1 to 20.".to_owned()),
    }
}

fn name(text: &str) -> Result<String, String> {
    match text.chars().count() {
        1..=40 => Ok(text.to_owned()),
        _ => Err("A name of at most 40 characters, please.".to_owned()),
    }
}

/// "3 × Margherita".
fn order(answers: &Answers) -> String {
    let pizza = PIZZAS
        .iter()
        .find(|(value, ..)| *value == &answers["pizza"])
        .map_or(&answers["pizza"], |(_, label, _)| label);
    format!("{} × {pizza}", &answers["count"])
}

/// "3 × Margherita for Ada".
fn summary(answers: &Answers) -> String {
    format!("{} for {}", order(answers), &answers["name"])
}

export_plugin!(Shop);
