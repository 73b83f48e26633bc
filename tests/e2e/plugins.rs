//! The first-party plugins, through the SDK's test harness.

use wasmbot::bindings::types::{Action, Outgoing};
use wasmbot_sdk::testing::{TestHost, texts};
use wasmbot_tests::plugin;

async fn host() -> TestHost {
    TestHost::load(&[plugin("ping"), plugin("dice"), plugin("echo")])
        .await
        .unwrap()
}

#[tokio::test]
async fn ping_answers_pong_and_the_time_it_took() {
    let host = host().await;
    let answer = host.say("!ping").await;
    assert_eq!(answer.len(), 1);
    let millis = answer[0]
        .strip_prefix("pong (")
        .and_then(|rest| rest.strip_suffix(" ms)"))
        .unwrap_or_else(|| panic!("unexpected answer {:?}", answer[0]));
    assert!(millis.parse::<u64>().is_ok(), "{millis}");
}

/// `3d6: 4 + 1 + 6 = 11` → the rolls and the total.
fn rolls(text: &str, dice: usize, sides: i64) -> Vec<i64> {
    let (head, sum) = text.split_once(" = ").unwrap();
    let (kind, rolls) = head.split_once(": ").unwrap();
    assert_eq!(kind, format!("{dice}d{sides}"));
    let rolls: Vec<i64> = rolls.split(" + ").map(|r| r.parse().unwrap()).collect();
    assert_eq!(rolls.len(), dice);
    assert!(rolls.iter().all(|r| (1..=sides).contains(r)), "{rolls:?}");
    assert_eq!(rolls.iter().sum::<i64>(), sum.parse::<i64>().unwrap());
    rolls
}

#[tokio::test]
async fn dice_reacts_replies_and_offers_a_button_that_comes_back() {
    let host = host().await;
    let actions = host.send("!roll 3 6").await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(matches!(&actions[0], Action::React(react) if react.emoji == "🎲"));
    let Action::Reply(Outgoing { text, buttons, .. }) = &actions[1] else {
        panic!("expected a reply, got {:?}", actions[1]);
    };
    rolls(text, 3, 6);
    assert_eq!(buttons.len(), 1);
    assert_eq!(
        buttons[0].id, "dice/again:3:6",
        "ids carry the plugin's name"
    );

    let again = host.send(&format!("/press {}", buttons[0].id)).await;
    assert_eq!(
        again.len(),
        1,
        "a click gets a reply, no reaction: {again:?}"
    );
    rolls(&texts(&again)[0], 3, 6);
}

#[tokio::test]
async fn dice_defaults_and_alias() {
    let host = host().await;
    rolls(&host.say("!dice").await[0], 1, 6);
}

#[tokio::test]
async fn bad_arguments_get_usage_or_the_plugins_own_message() {
    let host = host().await;
    assert_eq!(
        host.say("!roll two").await,
        vec!["<dice> must be a whole number, not \"two\". Usage: !roll [dice] [sides]"]
    );
    assert_eq!(
        host.say("!roll 1 2 3").await,
        vec!["Too many arguments. Usage: !roll [dice] [sides]"]
    );
    assert_eq!(
        host.say("!roll 99").await,
        vec!["Roll 1 to 20 dice of 2 to 1000 sides."]
    );
}

#[tokio::test]
async fn unknown_commands_and_plain_messages_get_no_answer() {
    let host = host().await;
    assert!(host.send("!nosuchcommand").await.is_empty());
    assert!(host.send("hello there").await.is_empty());
    assert!(host.send("/press nobody/x").await.is_empty());
}

#[tokio::test]
async fn echo_repeats_the_rest_of_the_line() {
    let host = host().await;
    assert_eq!(
        host.say("!echo  hello   world ").await,
        vec!["hello   world"]
    );
}

#[tokio::test]
async fn message_subscribers_hear_other_plugins_commands_but_not_their_own() {
    let host = TestHost::load(&[plugin("dice"), plugin("listener")])
        .await
        .unwrap();
    let replies = host.say("!roll 1 6").await;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies.contains(&"heard: !roll 1 6".to_owned()),
        "{replies:?}"
    );
    assert_eq!(host.say("hello").await, vec!["heard: hello"]);
    assert_eq!(
        host.say("!secret").await,
        vec!["secret ok"],
        "its own command is a command"
    );
}

#[tokio::test]
async fn restricted_commands_run_only_where_the_user_can_be_checked() {
    let host = TestHost::load(&[plugin("listener")]).await.unwrap();
    assert_eq!(
        host.say("!secret").await,
        vec!["secret ok"],
        "the console user is the operator"
    );

    let mut event =
        wasmbot::platforms::console::event_for_line(host.dispatcher(), "!secret").unwrap();
    event.platform = wasmbot::bindings::types::Platform::Discord;
    let (outcomes, _) = host.event(event).await;
    assert!(
        outcomes.is_empty(),
        "a staff-only command is not run for an unchecked user"
    );
}

#[tokio::test]
async fn an_event_no_plugin_handles_leaves_a_debug_line_naming_it() {
    let (logs, _guard) = wasmbot_tests::Logs::capture();
    let host = TestHost::load(&[plugin("ping")]).await.unwrap();
    let unheard = || logs.lines_with(&["DEBUG", "event not handled", "no command matched"]);

    assert!(host.say("hello there").await.is_empty());
    assert!(host.say("!nosuch command").await.is_empty());
    let lines = unheard();
    assert_eq!(lines.len(), 2, "{}", logs.text());
    assert!(
        lines.iter().all(|line| line.contains("event=")),
        "{lines:?}"
    );

    assert_eq!(host.say("!ping").await.len(), 1);
    assert_eq!(unheard().len(), 2, "a handled command leaves no such line");
}

/// The id in `Reminder `ID`: ...`.
fn reminder_id(answer: &str) -> String {
    let after = answer.split("Reminder `").nth(1).unwrap_or_default();
    after.split('`').next().unwrap_or_default().to_owned()
}

/// A console line typed by `user`; the texts answered.
async fn say_as(host: &TestHost, user: &str, line: &str) -> Vec<String> {
    let mut event = wasmbot::platforms::console::event_for_line(host.dispatcher(), line)
        .unwrap_or_else(|| panic!("{line} makes no event"));
    event.author.id = user.to_owned();
    texts(&host.event(event).await.1)
}

#[tokio::test]
async fn remind_reminds_lists_and_cancels_only_its_owners_reminders() {
    let host = TestHost::load(&[plugin("remind")]).await.unwrap();
    let set = host.say("!remind 1s stretch").await;
    assert!(set[0].starts_with("⏰ In 1s ("), "{set:?}");
    let fired = host
        .timer_actions(1, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(texts(&[fired[0].1.clone()]), ["⏰ Reminder: stretch"]);

    let later = host.say("!remind 1h30m water the plants").await;
    let id = reminder_id(&later[0]);
    assert_eq!(id.len(), 8, "{later:?}");
    let listed = host.say("!reminders").await;
    assert!(listed[0].contains(&format!("`{id}`")), "{listed:?}");
    assert!(listed[0].contains("water the plants"), "{listed:?}");
    assert_eq!(
        say_as(&host, "someone-else", &format!("!remind cancel {id}")).await,
        [format!(
            "Reminder `{id}` is someone else's: only they can cancel it."
        )]
    );
    assert_eq!(
        say_as(&host, "someone-else", "!reminders").await,
        ["You have no reminders here; `!remind 10m stretch` sets one."]
    );
    assert_eq!(
        host.say(&format!("!remind cancel {id}")).await,
        [format!("Reminder `{id}` cancelled.")]
    );
    assert!(host.say("!reminders").await[0].starts_with("You have no reminders"));
    // Bad input is refused with the reason.
    assert!(host.say("!remind 0s now").await[0].contains("some time ahead"));
    let garbage = host.say("!remind soon tea").await;
    assert!(!garbage[0].starts_with('⏰'), "{garbage:?}");
}

#[tokio::test]
async fn a_poll_counts_one_vote_each_and_posts_the_tally_when_it_closes() {
    let host = TestHost::load(&[plugin("poll")]).await.unwrap();
    let opened = host.send("!poll 5s Lunch? | pizza | sushi").await;
    let Some(Action::Reply(ballot)) = opened.first() else {
        panic!("no ballot: {opened:?}");
    };
    assert!(ballot.text.contains("Lunch?"), "{}", ballot.text);
    let ids: Vec<String> = ballot.buttons.iter().map(|b| b.id.clone()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let press = |user: &'static str, id: String| {
        let host = &host;
        async move { say_as(host, user, &format!("/press {id}")).await }
    };
    assert_eq!(press("ana", ids[0].clone()).await, ["You voted for pizza."]);
    assert_eq!(
        press("ana", ids[1].clone()).await,
        ["You changed your vote from pizza to sushi."]
    );
    assert_eq!(press("bo", ids[1].clone()).await, ["You voted for sushi."]);
    assert_eq!(press("cy", ids[0].clone()).await, ["You voted for pizza."]);

    let closed = host
        .timer_actions(1, std::time::Duration::from_secs(30))
        .await;
    let tally = texts(&[closed[0].1.clone()]).join("");
    assert!(tally.starts_with("📊 Closed: *Lunch?*"), "{tally}");
    assert!(tally.contains("sushi: 2 votes (67%)"), "{tally}");
    assert!(tally.contains("pizza: 1 vote (33%)"), "{tally}");
    assert!(tally.contains("Winner: sushi"), "{tally}");
    assert_eq!(press("dee", ids[0].clone()).await, ["This poll is closed."]);
    // Bad input: a clear answer, no poll.
    assert!(!host.say("!poll 5s Only one? | yes").await[0].starts_with("📊"));
}
