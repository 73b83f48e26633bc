//! Flows (`wasmbot_sdk::flow`) through the real host, with the `menu` plugin on the
//! console: triggers, buttons and lists, answers checked and asked again, given up,
//! cancelled, timed out, and a conversation that goes on after a restart and on another
//! host sharing the database.

use std::{path::Path, sync::Arc};

use wasmbot::config::Config;
use wasmbot_sdk::testing::{Action, Outgoing, TestHost, texts};
use wasmbot_tests::{config, plugin, postgres_url, unique};

/// One user in a chat of their own (positions are per chat and user; the Postgres is
/// shared by every test and run).
struct Chat {
    id: String,
}

impl Chat {
    fn new() -> Self {
        Self { id: unique("menu") }
    }

    /// Types `line`; the event's time is `at_ms` when given (the idle timeout reads the
    /// events' times, not the clock).
    async fn send_at(&self, host: &TestHost, line: &str, at_ms: Option<u64>) -> Vec<Action> {
        let Some(mut event) = wasmbot::platforms::console::event_for_line(host.dispatcher(), line)
        else {
            return Vec::new();
        };
        event.guild_id = Some(self.id.clone());
        event.channel_id = self.id.clone();
        if let Some(at_ms) = at_ms {
            event.timestamp_ms = at_ms;
        }
        host.event(event).await.1
    }

    async fn send(&self, host: &TestHost, line: &str) -> Vec<Action> {
        self.send_at(host, line, None).await
    }

    async fn say(&self, host: &TestHost, line: &str) -> Vec<String> {
        texts(&self.send(host, line).await)
    }

    async fn say_at(&self, host: &TestHost, line: &str, at_ms: u64) -> Vec<String> {
        texts(&self.send_at(host, line, Some(at_ms)).await)
    }
}

/// The one message among `actions`.
fn only_reply(actions: &[Action]) -> &Outgoing {
    match actions {
        [Action::Reply(message)] => message,
        _ => panic!("expected one reply, got {actions:?}"),
    }
}

/// A message's buttons as `(id, label)`; ids as the platform sees them (the host prefixes
/// the plugin's name).
fn buttons(message: &Outgoing) -> Vec<(&str, &str)> {
    message
        .buttons
        .iter()
        .map(|button| (button.id.as_str(), button.label.as_str()))
        .collect()
}

const WELCOME: &str = "Welcome to Wasm Pizza! What would you like?";
const HOW_MANY: &str = "How many pizzas would you like? (1-20)";
const NOT_A_NUMBER: &str = "Please answer with a number from 1 to 20.";
const WHICH: &str = "Which pizza?";
const WHO: &str = "What name should we put on the order?";
const HOURS: &str = "We are open every day from 11:00 to 23:00.";

async fn host() -> TestHost {
    TestHost::load(&[plugin("menu")]).await.unwrap()
}

/// A host with the menu plugin on the given database (so another host can share it).
async fn host_on(url: &str) -> TestHost {
    let mut config: Config = config(Path::new(""));
    config.database.url = url.to_owned();
    let store = Arc::new(config.open_store().await.unwrap());
    TestHost::with_store(config, store, &[plugin("menu")])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_keyword_shows_buttons_and_clicks_and_typed_choices_go_on() {
    let host = host().await;
    let chat = Chat::new();
    assert!(
        chat.say(&host, "hello there").await.is_empty(),
        "not a keyword"
    );

    let menu = chat.send(&host, "Hi!").await;
    let menu = only_reply(&menu);
    assert_eq!(menu.text, WELCOME);
    assert_eq!(
        buttons(menu),
        [
            ("menu/order", "Order"),
            ("menu/hours", "Opening hours"),
            ("menu/person", "Talk to a person"),
        ]
    );

    let hours = chat.send(&host, "/press menu/hours").await;
    let hours = only_reply(&hours);
    assert_eq!(hours.text, HOURS);
    assert_eq!(buttons(hours), [("menu/menu", "Back to the menu")]);
    assert!(chat.say(&host, "2").await.is_empty(), "the flow ended");
    assert_eq!(
        chat.say(&host, "/press menu/order").await,
        [HOW_MANY],
        "an old menu's buttons still work"
    );
    assert_eq!(
        chat.say(&host, "/press menu/hours").await,
        [HOURS],
        "a click that answers nothing starts its flow"
    );

    assert_eq!(chat.say(&host, "/press menu/menu").await, [WELCOME]);
    assert_eq!(
        chat.say(&host, "/press menu/person").await,
        ["A person will answer you here shortly."]
    );

    // The command starts it too; on WhatsApp people type the option's label or number.
    assert_eq!(chat.say(&host, "!menu").await, [WELCOME]);
    assert_eq!(chat.say(&host, "opening hours").await, [HOURS]);
    assert_eq!(chat.say(&host, "menu").await, [WELCOME]);
    assert_eq!(chat.say(&host, "1").await, [HOW_MANY]);
}

#[tokio::test]
async fn a_bad_answer_is_asked_again_then_given_up() {
    let host = host().await;
    let chat = Chat::new();
    chat.say(&host, "menu").await;
    assert_eq!(chat.say(&host, "/press menu/order").await, [HOW_MANY]);
    assert_eq!(chat.say(&host, "lots").await, [NOT_A_NUMBER]);
    assert_eq!(chat.say(&host, "0").await, [NOT_A_NUMBER]);
    assert_eq!(
        chat.say(&host, "21").await,
        ["Sorry, I still did not get a number. Say *menu* to start again."]
    );
    assert!(chat.say(&host, "3").await.is_empty(), "given up: no flow");

    // A wrong choice shows the buttons again.
    chat.say(&host, "menu").await;
    let again = chat.send(&host, "pizza please").await;
    let again = only_reply(&again);
    assert_eq!(
        again.text,
        "Please pick one of the buttons (or type 1, 2 or 3)."
    );
    assert_eq!(buttons(again).len(), 3);
}

#[tokio::test]
async fn an_order_captures_its_answers_and_ends_with_them() {
    let host = host().await;
    let chat = Chat::new();
    chat.say(&host, "menu").await;
    chat.say(&host, "/press menu/order").await;
    let list = chat.send(&host, "3").await;
    let list = only_reply(&list);
    assert_eq!(list.text, WHICH);
    let menu = list.menu.as_ref().unwrap();
    assert_eq!(menu.id, "menu/pizza");
    let values: Vec<_> = menu.options.iter().map(|o| o.value.as_str()).collect();
    assert_eq!(values, ["margherita", "marinara", "diavola", "funghi"]);

    assert_eq!(chat.say(&host, "/press menu/pizza diavola").await, [WHO]);
    let confirm = chat.send(&host, "Ada").await;
    let confirm = only_reply(&confirm);
    assert_eq!(
        confirm.text,
        "3 × Diavola for Ada. Shall I place the order?"
    );
    assert_eq!(
        buttons(confirm),
        [("menu/yes", "Yes, order"), ("menu/no", "No")]
    );
    let done = chat.send(&host, "/press menu/yes").await;
    let done = only_reply(&done);
    assert_eq!(
        done.text,
        "Thank you, Ada! 3 × Diavola will be ready in 20 minutes."
    );
    assert_eq!(buttons(done), [("menu/menu", "Back to the menu")]);
    assert!(chat.say(&host, "Ada").await.is_empty(), "the order is over");

    // "order 2" answers the first question; the rest can be typed.
    assert_eq!(chat.say(&host, "order 2").await, [WHICH]);
    assert_eq!(chat.say(&host, "Funghi").await, [WHO]);
    assert_eq!(
        chat.say(&host, "Bob").await,
        ["2 × Funghi for Bob. Shall I place the order?"]
    );
    assert_eq!(chat.say(&host, "no").await, ["Okay, nothing ordered."]);
}

#[tokio::test]
async fn an_idle_order_times_out_and_the_next_message_starts_afresh() {
    let host = host().await;
    let chat = Chat::new();
    let t0 = 1_700_000_000_000;
    let idle_ms = 600_000;
    let notice =
        "You were away for a while, so I closed that conversation. Say *menu* to start again.";

    assert_eq!(chat.say_at(&host, "order", t0).await, [HOW_MANY]);
    assert_eq!(
        chat.say_at(&host, "4", t0 + idle_ms).await,
        [WHICH],
        "just in time"
    );
    let late = t0 + 2 * idle_ms + 1;
    assert_eq!(chat.say_at(&host, "margherita", late).await, [notice]);
    assert!(
        chat.say_at(&host, "margherita", late + 1).await.is_empty(),
        "out of the flow"
    );

    chat.say_at(&host, "order", late + 2).await;
    assert_eq!(
        chat.say_at(&host, "menu", late + 2 + idle_ms + 1).await,
        [notice, WELCOME],
        "told, then the message is taken afresh"
    );
}

#[tokio::test]
async fn cancel_leaves_a_flow_whatever_it_asks() {
    let host = host().await;
    let chat = Chat::new();
    chat.say(&host, "order").await;
    assert_eq!(
        chat.say(&host, "Cancel").await,
        ["Okay, cancelled. Say *menu* whenever you like."]
    );
    assert!(chat.say(&host, "3").await.is_empty(), "out of the flow");
    assert!(
        chat.say(&host, "stop").await.is_empty(),
        "nothing to cancel: no answer"
    );
}

#[tokio::test]
async fn an_order_continues_after_a_restart_and_on_a_second_host() {
    let folder = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/flows.db?mode=rwc", folder.path().display());
    for url in [sqlite, postgres_url()] {
        let chat = Chat::new();
        let first = host_on(&url).await;
        assert_eq!(chat.say(&first, "menu").await, [WELCOME], "{url}");
        assert_eq!(chat.say(&first, "/press menu/order").await, [HOW_MANY]);
        drop(first);

        // Restarted, and a second host on the same database: the user goes back and forth.
        let second = host_on(&url).await;
        let third = host_on(&url).await;
        assert_eq!(chat.say(&second, "5").await, [WHICH], "{url}");
        assert_eq!(
            chat.say(&third, "/press menu/pizza margherita").await,
            [WHO]
        );
        assert_eq!(
            chat.say(&second, "Ada").await,
            ["5 × Margherita for Ada. Shall I place the order?"]
        );
        assert_eq!(
            chat.say(&third, "/press menu/yes").await,
            ["Thank you, Ada! 5 × Margherita will be ready in 20 minutes."]
        );
        assert!(chat.say(&second, "5").await.is_empty(), "over on both");
        assert!(chat.say(&third, "5").await.is_empty(), "over on both");
    }
}
