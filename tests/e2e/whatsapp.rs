//! WhatsApp end to end through the fake Graph API: webhook verification and signatures,
//! delivery to plugins and their answers sent, redeliveries processed once, batches, the
//! API failing (retries, the breaker, the outbox), a host killed with work acknowledged,
//! the 24-hour window, media downloads and status updates.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use wasmbot::{
    bindings::types::{Outgoing, Template},
    platforms::whatsapp::{graph::GraphError, outlet::SendError},
};
use wasmbot_tests::{
    discord_host::plugins,
    fake_whatsapp::{
        APP_SECRET, Failure, FakeGraph, PHONE_ID, button_reply, list_reply, messages_value,
        notification, signature, text, text_webhook,
    },
    section,
    whatsapp_host::Host,
};

/// Waits until `check` holds (at most 20 s).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn meta_verifies_the_webhook_with_the_verify_token() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&[]);
    let host = Host::serve(&fake, folder.path(), |_| {}).await;
    let client = reqwest::Client::new();
    let get = |query: &'static str| {
        let client = client.clone();
        let url = format!("{}/whatsapp/webhook?{query}", host.url);
        async move { client.get(url).send().await.unwrap() }
    };
    let answer =
        get("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "1158201444");
    let wrong = get("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1").await;
    assert_eq!(wrong.status(), 403);
    let mode = get("hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1").await;
    assert_eq!(mode.status(), 403);
    host.stop().await;
}

#[tokio::test]
async fn a_signed_message_reaches_the_plugin_and_its_answer_is_sent() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["ping", "listener"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let status = fake
        .deliver(&host.url, &text_webhook("4915550001", "wamid.A1", "!ping"))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The command goes to `ping`; the listener hears every message, commands included.
    let sent = fake.wait_sent(2).await;
    let pong = sent
        .iter()
        .find(|s| s.text().starts_with("pong"))
        .unwrap_or_else(|| panic!("no pong: {sent:?}"));
    // WhatsApp stamps messages in whole seconds: no figure that could be off by one.
    assert_eq!(pong.text(), "pong");
    assert_eq!(pong.phone_id, PHONE_ID);
    assert_eq!(pong.to(), "4915550001");
    assert_eq!(pong.body["context"]["message_id"], "wamid.A1");
    assert!(sent.iter().any(|s| s.text() == "heard: !ping"));
    fake.deliver(&host.url, &text_webhook("4915550001", "wamid.A2", "hello"))
        .await;
    let sent = fake.wait_sent(3).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[2].text(), "heard: hello");
    host.stop().await;
}

#[tokio::test]
async fn bad_webhooks_get_clear_statuses_and_lose_nothing() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |config| {
        config.whatsapp.max_body_bytes = 16 * 1024;
    })
    .await;
    let body = text_webhook("4915550002", "wamid.B1", "first").to_string();
    let unsigned = fake.deliver_raw(&host.url, body.as_bytes(), None).await;
    assert_eq!(unsigned, StatusCode::UNAUTHORIZED);
    let forged = signature("not-the-secret", body.as_bytes());
    let wrong = fake
        .deliver_raw(&host.url, body.as_bytes(), Some(&forged))
        .await;
    assert_eq!(wrong, StatusCode::UNAUTHORIZED);
    let garbage = b"{not json";
    let malformed = fake
        .deliver_raw(&host.url, garbage, Some(&signature(APP_SECRET, garbage)))
        .await;
    assert_eq!(malformed, StatusCode::BAD_REQUEST);
    let huge = vec![b' '; 32 * 1024];
    let oversized = fake
        .deliver_raw(&host.url, &huge, Some(&signature(APP_SECRET, &huge)))
        .await;
    assert_eq!(oversized, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(fake.sent().is_empty(), "nothing refused was processed");

    // An unknown message type is skipped alone; another number's change is skipped; the
    // rest of the delivery is processed.
    let mut other_number = messages_value(
        "4915550002",
        "Ana",
        vec![text("4915550002", "wamid.B9", "elsewhere")],
    );
    other_number["metadata"]["phone_number_id"] = "999".into();
    let mixed = notification(vec![
        messages_value(
            "4915550002",
            "Ana",
            vec![
                json!({ "from": "4915550002", "id": "wamid.B2", "type": "order", "order": {} }),
                text("4915550002", "wamid.B3", "kept"),
            ],
        ),
        other_number,
    ]);
    assert_eq!(fake.deliver(&host.url, &mixed).await, StatusCode::OK);
    fake.wait_sent(1).await;
    // Time for anything skipped to have been answered, had it not been.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent: Vec<_> = fake.sent().iter().map(|s| s.text().to_owned()).collect();
    assert_eq!(sent, ["heard: kept"]);
    host.stop().await;
}

#[tokio::test]
async fn a_webhook_delivered_five_times_is_processed_once() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let body = text_webhook("4915550003", "wamid.C1", "once");
    let deliveries = (0..5).map(|_| fake.deliver(&host.url, &body));
    let statuses = futures::future::join_all(deliveries).await;
    assert!(
        statuses.iter().all(|status| *status == StatusCode::OK),
        "{statuses:?}"
    );
    // A later message is answered after the first: when it is, the duplicates had their
    // chance.
    fake.deliver(&host.url, &text_webhook("4915550003", "wamid.C2", "then"))
        .await;
    let texts = |sent: Vec<wasmbot_tests::fake_whatsapp::Sent>| {
        sent.iter().map(|s| s.text().to_owned()).collect::<Vec<_>>()
    };
    eventually("the second answer", async || {
        texts(fake.sent()).contains(&"heard: then".to_owned())
    })
    .await;
    assert_eq!(texts(fake.sent()), ["heard: once", "heard: then"]);
    let inbox = &host.whatsapp.inbox;
    eventually("an empty inbox", async || {
        inbox.pending().await.unwrap() == 0
    })
    .await;
    // An item counts as processed once its done mark's statement returned, which may be
    // just after the inbox shows it done.
    let processed = &inbox.traffic().processed;
    eventually("both counted processed", async || {
        processed.load(std::sync::atomic::Ordering::Relaxed) == 2
    })
    .await;
    // The metrics count what happened.
    let report = wasmbot::http::report::Report::gather(&host.dispatcher).await;
    let counts = &report.platform_counts["whatsapp"];
    assert_eq!(
        (
            counts["received"],
            counts["duplicates"],
            counts["processed"],
            counts["sent"]
        ),
        (2, 4, 2, 2),
        "{counts:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_batch_of_three_entries_is_three_events() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let users = ["4915550011", "4915550012", "4915550013"];
    let batch = notification(
        users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                messages_value(
                    user,
                    "Ana",
                    vec![text(user, &format!("wamid.D{i}"), &format!("m{i}"))],
                )
            })
            .collect(),
    );
    assert_eq!(fake.deliver(&host.url, &batch).await, StatusCode::OK);
    let sent = fake.wait_sent(3).await;
    let mut got: Vec<_> = sent
        .iter()
        .map(|s| (s.to().to_owned(), s.text().to_owned()))
        .collect();
    got.sort();
    let expected: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| (user.to_string(), format!("heard: m{i}")))
        .collect();
    assert_eq!(got, expected);
    host.stop().await;
}

#[tokio::test]
async fn a_failing_api_is_retried_then_the_breaker_opens_and_nothing_is_lost() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |config| {
        config.whatsapp.send_attempts = 3;
        config.whatsapp.breaker_failures = 3;
        config.whatsapp.breaker_open_ms = 300;
    })
    .await;
    let outlet = &host.whatsapp.outlet;

    // Two transient failures (a 500, a 429 asking for a pause): the third call goes.
    fake.fail_next([Failure::Status(500), Failure::TooMany(0)]);
    fake.deliver(
        &host.url,
        &text_webhook("4915550021", "wamid.E1", "retried"),
    )
    .await;
    let sent = fake.wait_sent(1).await;
    assert_eq!(sent[0].text(), "heard: retried");
    assert_eq!(fake.calls(), 3);
    assert!(!outlet.graph().breaker().is_open());

    // Down: messages of distinct users fail, each however many times it is tried; once
    // three have failed the breaker opens, and they wait in the outbox.
    fake.go_down(503);
    let breaker = outlet.graph().breaker();
    let first = ["4915550022", "4915550023", "4915550024"];
    for (i, user) in first.iter().enumerate() {
        let body = text_webhook(user, &format!("wamid.E{}", i + 2), &format!("late {i}"));
        assert_eq!(fake.deliver(&host.url, &body).await, StatusCode::OK);
    }
    eventually("three messages in the outbox", async || {
        outlet.outbox().waiting().await.unwrap() == 3
    })
    .await;
    assert!(breaker.openings() >= 1, "three failed messages open it");
    assert!(first.iter().all(|user| fake.calls_to(user) >= 1));

    // While it is open, further messages make no call (but a probe, once the open period
    // is over): they go straight to the outbox.
    let then = ["4915550025", "4915550026", "4915550027"];
    for (i, user) in then.iter().enumerate() {
        let body = text_webhook(
            user,
            &format!("wamid.E{}", i + 5),
            &format!("late {}", i + 3),
        );
        assert_eq!(fake.deliver(&host.url, &body).await, StatusCode::OK);
    }
    eventually("six messages in the outbox", async || {
        outlet.outbox().waiting().await.unwrap() == 6
    })
    .await;
    // Read before the probes: a probe is counted before its call is made.
    let their_calls: usize = then.iter().map(|user| fake.calls_to(user)).sum();
    let probes = breaker.probes() as usize;
    assert!(
        their_calls <= probes,
        "the open breaker stopped the calls: {their_calls} calls, {probes} probes"
    );

    // Recovered: everything waiting goes out, once.
    fake.recover();
    let sent = fake.wait_sent(7).await;
    let mut late: Vec<_> = sent[1..].iter().map(|s| s.text().to_owned()).collect();
    late.sort();
    let expected: Vec<_> = (0..6).map(|i| format!("heard: late {i}")).collect();
    assert_eq!(late, expected);
    eventually("an empty outbox", async || {
        outlet.outbox().waiting().await.unwrap() == 0
    })
    .await;
    assert!(!breaker.is_open());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.sent().len(), 7, "nothing sent twice");
    host.stop().await;
}

#[tokio::test]
async fn one_message_retried_through_an_outage_does_not_open_the_breaker() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let (attempts, threshold) = (3, 3);
    let host = Host::start(&fake, folder.path(), |config| {
        config.whatsapp.send_attempts = attempts;
        config.whatsapp.backoff_ms = 10;
        config.whatsapp.backoff_max_ms = 50;
        config.whatsapp.breaker_failures = threshold;
    })
    .await;
    let breaker = host.whatsapp.outlet.graph().breaker();
    let user = "4915550028";
    fake.go_down(503);
    fake.deliver(
        &host.url,
        &text_webhook(user, "wamid.E8", "through the outage"),
    )
    .await;
    // Its own attempts, then the outbox's: more failed calls than the breaker's threshold,
    // all of one message.
    let tried = 2 * attempts as usize;
    eventually("the outbox trying the message too", async || {
        fake.calls_to(user) >= tried || breaker.openings() > 0
    })
    .await;
    assert!(fake.calls_to(user) > threshold as usize);
    assert_eq!(breaker.openings(), 0, "one message's retries count once");

    fake.recover();
    let sent = fake.wait_sent(1).await;
    assert_eq!(sent[0].text(), "heard: through the outage");
    eventually("an empty outbox", async || {
        host.whatsapp.outlet.outbox().waiting().await.unwrap() == 0
    })
    .await;
    assert_eq!(breaker.openings(), 0, "never opened");
    assert_eq!(fake.sent().len(), 1, "sent once");
    host.stop().await;
}

#[tokio::test]
async fn an_oversized_webhook_is_refused_in_json_and_counted() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |config| {
        config.whatsapp.max_body_bytes = 16 * 1024;
    })
    .await;
    let refused = || async {
        let report = wasmbot::http::report::Report::gather(&host.dispatcher).await;
        report.platform_counts["whatsapp"]["refused"]
    };
    assert_eq!(refused().await, 0);
    let huge = vec![b' '; 32 * 1024];
    let answer = reqwest::Client::new()
        .post(format!("{}/whatsapp/webhook", host.url))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature(APP_SECRET, &huge))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = answer.json().await.expect("a JSON answer");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("16384-byte limit"), "{body}");
    assert_eq!(refused().await, 1);
    host.stop().await;
}

#[tokio::test]
async fn messages_acknowledged_by_a_killed_host_are_processed_after_restart() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener", "misbehave"]);
    let tweak = |config: &mut wasmbot::config::Config| {
        config.whatsapp.workers = 1;
        config.whatsapp.claim_s = 1;
        config
            .plugins
            .insert("misbehave".into(), section(json!({"wall_ms": 60_000})));
    };
    let first = Host::start(&fake, folder.path(), tweak).await;
    // The first item keeps the only worker busy (misbehave's nap in a host call; the
    // listener answers it at once); the next ones are acknowledged and wait behind it when
    // the host dies.
    let nap = text_webhook("4915550031", "wamid.F0", "!nap");
    assert_eq!(fake.deliver(&first.url, &nap).await, StatusCode::OK);
    for i in 1..=3 {
        let body = text_webhook("4915550031", &format!("wamid.F{i}"), &format!("after {i}"));
        assert_eq!(fake.deliver(&first.url, &body).await, StatusCode::OK);
    }
    assert_eq!(first.whatsapp.inbox.pending().await.unwrap(), 4);
    first.kill().await;
    let before: Vec<_> = fake.sent().iter().map(|s| s.text().to_owned()).collect();
    assert!(
        before.iter().all(|text| !text.contains("after")),
        "{before:?}"
    );

    // The restarted host runs without the napping plugin (the nap is taken up again too:
    // it never finished).
    let second = Host::start(&fake, folder.path(), |config| {
        tweak(config);
        config
            .plugins
            .insert("misbehave".into(), section(json!({"enabled": false})));
    })
    .await;
    let sent = fake.wait_sent(before.len() + 4).await;
    let texts: Vec<_> = sent.iter().map(|s| s.text().to_owned()).collect();
    assert!(
        texts.ends_with(&[
            "heard: after 1".to_owned(),
            "heard: after 2".to_owned(),
            "heard: after 3".to_owned()
        ]),
        "in order: {texts:?}"
    );
    eventually("an empty inbox", async || {
        second.whatsapp.inbox.pending().await.unwrap() == 0
    })
    .await;
    second.stop().await;
}

#[tokio::test]
async fn outside_the_window_only_templates_go() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let outlet = &host.whatsapp.outlet;
    let refused = outlet
        .send("4915550041", None, &Outgoing::text_only("hello?"))
        .await;
    assert!(
        matches!(refused, Err(SendError::OutsideWindow { .. })),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().to_string().contains("template"));
    let mut template = Outgoing::text_only("");
    template.template = Some(Template {
        name: "welcome_back".into(),
        language: "en_US".into(),
        parameters: vec!["Ana".into()],
    });
    outlet.send("4915550041", None, &template).await.unwrap();
    let sent = fake.wait_sent(1).await;
    assert_eq!(sent[0].body["template"]["name"], "welcome_back");

    // Once the user writes, free-form messages go; Meta's own refusal maps to the same
    // typed error.
    fake.deliver(&host.url, &text_webhook("4915550041", "wamid.G1", "hi"))
        .await;
    fake.wait_sent(2).await;
    outlet
        .send("4915550041", None, &Outgoing::text_only("welcome"))
        .await
        .unwrap();
    fake.fail_next([Failure::OutsideWindow]);
    let meta_says = outlet
        .send("4915550041", None, &Outgoing::text_only("again"))
        .await;
    assert!(
        matches!(meta_says, Err(SendError::OutsideWindow { .. })),
        "{meta_says:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn media_downloads_are_capped_and_type_checked() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&[]);
    let host = Host::serve(&fake, folder.path(), |config| {
        config.whatsapp.media_max_bytes = 1024;
    })
    .await;
    let outlet = &host.whatsapp.outlet;
    fake.add_media("m-ok", "image/jpeg", "image/jpeg", vec![7; 1000]);
    fake.add_media("m-big", "image/jpeg", "image/jpeg", vec![7; 4096]);
    fake.add_media("m-odd", "image/jpeg", "text/html", vec![7; 10]);
    let file = outlet.media("m-ok").await.unwrap();
    assert_eq!(file.mime_type, "image/jpeg");
    assert_eq!(file.bytes.len(), 1000);
    assert!(matches!(
        outlet.media("m-big").await,
        Err(GraphError::TooLarge { .. })
    ));
    assert!(matches!(
        outlet.media("m-odd").await,
        Err(GraphError::WrongType { .. })
    ));
    assert!(matches!(
        outlet.media("m-none").await,
        Err(GraphError::Rejected { status: 404, .. })
    ));
    host.stop().await;
}

#[tokio::test]
async fn status_updates_are_recorded_and_never_go_back() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&[]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let status = |state: &str| json!({ "id": "wamid.out.77", "status": state, "recipient_id": "4915550051", "timestamp": "1700000000" });
    let value = |statuses: Vec<serde_json::Value>| json!({ "metadata": { "phone_number_id": PHONE_ID }, "statuses": statuses });
    fake.deliver(
        &host.url,
        &notification(vec![value(vec![status("sent"), status("read")])]),
    )
    .await;
    // "delivered" arrives after "read": the message stays read.
    fake.deliver(
        &host.url,
        &notification(vec![value(vec![status("delivered")])]),
    )
    .await;
    let inbox = &host.whatsapp.inbox;
    eventually("statuses processed", async || {
        inbox.pending().await.unwrap() == 0
    })
    .await;
    assert_eq!(
        inbox.status_of("wamid.out.77").await.unwrap().as_deref(),
        Some("read")
    );
    host.stop().await;
}

#[tokio::test]
async fn a_button_press_comes_back_to_the_plugin_that_sent_it() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["dice"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.deliver(
        &host.url,
        &text_webhook("4915550061", "wamid.H1", "!roll 1 6"),
    )
    .await;
    // A reaction to the command, then the answer with its button.
    let sent = fake.wait_sent(2).await;
    assert_eq!(sent[0].body["reaction"]["message_id"], "wamid.H1");
    let buttons = &sent[1].body["interactive"]["action"]["buttons"];
    let id = buttons[0]["reply"]["id"]
        .as_str()
        .expect("a reply button")
        .to_owned();
    assert!(id.starts_with("dice/"), "{id}");
    let press = notification(vec![messages_value(
        "4915550061",
        "Ana",
        vec![button_reply("4915550061", "wamid.H2", &id)],
    )]);
    fake.deliver(&host.url, &press).await;
    let sent = fake.wait_sent(3).await;
    assert_eq!(sent.len(), 3, "the press was answered: {sent:?}");
    assert_eq!(sent[2].to(), "4915550061");
    assert!(
        sent[2].text().starts_with("1d6: "),
        "rolled again: {sent:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_plugin_messaging_outside_the_window_hears_why_and_sends_a_template() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["notifier"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    // The operator writes; the user to notify never did.
    let command = text_webhook(
        "4915550071",
        "wamid.J1",
        "!notify 4915550079 Your table is ready",
    );
    fake.deliver(&host.url, &command).await;
    let sent = fake.wait_sent(2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].to(), "4915550079");
    assert_eq!(sent[0].body["template"]["name"], "reengage");
    assert_eq!(
        sent[0].body["template"]["components"][0]["parameters"][0]["text"],
        "Your table is ready"
    );
    assert_eq!(sent[1].to(), "4915550071");
    assert!(sent[1].text().starts_with("template sent ("), "{sent:?}");
    assert!(
        sent[1].text().contains("template"),
        "the error says why: {sent:?}"
    );

    // Within the window the message itself goes.
    fake.deliver(&host.url, &text_webhook("4915550079", "wamid.J2", "hi"))
        .await;
    let again = text_webhook("4915550071", "wamid.J3", "!notify 4915550079 Still there?");
    fake.deliver(&host.url, &again).await;
    let sent = fake.wait_sent(4).await;
    assert_eq!(sent[2].to(), "4915550079");
    assert_eq!(sent[2].text(), "Still there?");
    assert_eq!(sent[3].text(), "sent");

    // Mid-handler replies go before the handler's own.
    fake.deliver(
        &host.url,
        &text_webhook("4915550071", "wamid.J4", "!progress"),
    )
    .await;
    let sent = fake.wait_sent(6).await;
    assert_eq!([sent[4].text(), sent[5].text()], ["working...", "done"]);
    host.stop().await;
}

#[tokio::test]
async fn a_plugin_downloads_the_media_a_user_sent() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["notifier"]);
    let host = Host::start(&fake, folder.path(), |config| {
        config.whatsapp.media_max_bytes = 2048;
    })
    .await;
    fake.add_media("photo-1", "image/jpeg", "image/jpeg", vec![1; 1500]);
    fake.add_media("photo-2", "image/jpeg", "image/jpeg", vec![1; 5000]);
    let image = |wamid: &str, id: &str| {
        // A text message of now, made an image.
        let mut message = text("4915550081", wamid, "");
        message["type"] = "image".into();
        message["image"] = json!({ "id": id, "mime_type": "image/jpeg" });
        notification(vec![messages_value("4915550081", "Ana", vec![message])])
    };
    fake.deliver(&host.url, &image("wamid.K1", "photo-1")).await;
    fake.deliver(&host.url, &image("wamid.K2", "photo-2")).await;
    let sent = fake.wait_sent(2).await;
    let texts: Vec<_> = sent.iter().map(|s| s.text()).collect();
    assert_eq!(texts, ["got image/jpeg (1500 bytes)", "too large"]);
    host.stop().await;
}

#[tokio::test]
async fn a_menu_flow_continues_across_a_restart() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["menu"]);
    let user = "4915550091";
    let say =
        |message: serde_json::Value| notification(vec![messages_value(user, "Ada", vec![message])]);
    let first = Host::start(&fake, folder.path(), |_| {}).await;
    fake.deliver(&first.url, &text_webhook(user, "wamid.L1", "menu"))
        .await;
    let sent = fake.wait_sent(1).await;
    let buttons = &sent[0].body["interactive"]["action"]["buttons"];
    assert_eq!(buttons[0]["reply"]["id"], "menu/order", "{sent:?}");
    fake.deliver(
        &first.url,
        &say(button_reply(user, "wamid.L2", "menu/order")),
    )
    .await;
    let sent = fake.wait_sent(2).await;
    assert!(sent[1].text().starts_with("How many pizzas"), "{sent:?}");
    fake.deliver(&first.url, &text_webhook(user, "wamid.L3", "2"))
        .await;
    let sent = fake.wait_sent(3).await;
    let rows = &sent[2].body["interactive"]["action"]["sections"][0]["rows"];
    let diavola = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["title"] == "Diavola"))
        .and_then(|row| row["id"].as_str())
        .unwrap_or_else(|| panic!("a list of pizzas: {sent:?}"))
        .to_owned();
    first.stop().await;

    // Another host (the same database) takes the order where it was.
    let second = Host::start(&fake, folder.path(), |_| {}).await;
    fake.deliver(&second.url, &say(list_reply(user, "wamid.L4", &diavola)))
        .await;
    let sent = fake.wait_sent(4).await;
    assert!(sent[3].text().contains("name"), "{sent:?}");
    fake.deliver(&second.url, &text_webhook(user, "wamid.L5", "Ada"))
        .await;
    let sent = fake.wait_sent(5).await;
    assert!(
        sent[4].text().starts_with("2 × Diavola for Ada"),
        "{sent:?}"
    );
    fake.deliver(
        &second.url,
        &say(button_reply(user, "wamid.L6", "menu/yes")),
    )
    .await;
    let sent = fake.wait_sent(6).await;
    assert!(
        sent[5].text().starts_with("Thank you, Ada! 2 × Diavola"),
        "{sent:?}"
    );
    second.stop().await;
}

#[tokio::test]
async fn a_graph_api_slower_than_the_timeout_is_retried() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |config| {
        config.whatsapp.request_timeout_ms = 300;
    })
    .await;
    fake.fail_next([Failure::Slow(Duration::from_secs(30))]);
    fake.deliver(&host.url, &text_webhook("4915550101", "wamid.M1", "slow"))
        .await;
    let sent = fake.wait_sent(1).await;
    assert_eq!(sent[0].text(), "heard: slow");
    // Two calls: the slow one was given up at the timeout and the retry answered (waiting
    // it out would have been one call, and 30 s).
    assert_eq!(fake.calls(), 2);
    host.stop().await;
}

#[tokio::test]
async fn on_postgres_redeliveries_batches_and_statuses_are_processed_once() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    let host = Host::start(&fake, folder.path(), |config| {
        config.database.url = wasmbot_tests::postgres_url();
    })
    .await;
    // The database is shared by every run: ids of this run's own.
    let run = wasmbot_tests::unique("pg");
    let (ana, bo) = (format!("{run}-ana"), format!("{run}-bo"));
    let wamid = |n: u32| format!("wamid.{run}.{n}");
    let first = text_webhook(&ana, &wamid(1), "one");
    let statuses = futures::future::join_all((0..5).map(|_| fake.deliver(&host.url, &first))).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    // A batch: the first message again, and two new ones in two entries.
    let batch = notification(vec![
        messages_value(
            &ana,
            "Ana",
            vec![text(&ana, &wamid(1), "one"), text(&ana, &wamid(2), "two")],
        ),
        messages_value(&bo, "Bo", vec![text(&bo, &wamid(3), "three")]),
    ]);
    assert_eq!(fake.deliver(&host.url, &batch).await, StatusCode::OK);
    // Only this run's users count: items an earlier run left in the shared database may be
    // answered too.
    let ours = || -> Vec<String> {
        let mut texts: Vec<_> = fake
            .sent()
            .iter()
            .filter(|s| s.to() == ana || s.to() == bo)
            .map(|s| s.text().to_owned())
            .collect();
        texts.sort();
        texts
    };
    eventually("three answers", async || ours().len() >= 3).await;
    let status = |state: &str| {
        json!({ "metadata": { "phone_number_id": PHONE_ID }, "statuses": [
            { "id": format!("{run}.out"), "status": state, "recipient_id": ana, "timestamp": "1" }
        ]})
    };
    let reports = notification(vec![status("read"), status("delivered")]);
    fake.deliver(&host.url, &reports).await;
    // Three messages and two statuses processed (in order: one user's items share a lane).
    let processed = || {
        let traffic = host.whatsapp.inbox.traffic();
        traffic.processed.load(std::sync::atomic::Ordering::Relaxed)
    };
    eventually("five items processed", async || processed() >= 5).await;
    let inbox = &host.whatsapp.inbox;
    let state = inbox.status_of(&format!("{run}.out")).await.unwrap();
    assert_eq!(state.as_deref(), Some("read"));
    // Time for a duplicate to have been answered, had it been processed again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ours(), ["heard: one", "heard: three", "heard: two"]);
    host.stop().await;
}

/// The WARN and ERROR lines among `lines`.
fn loud(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| line.contains(" WARN ") || line.contains("ERROR "))
        .map(|line| (*line).to_owned())
        .collect()
}

/// How a test takes Postgres away.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outage {
    /// Connections close at once, as when the server stopped.
    Closed,
    /// Connections get no answer, as when the network drops packets: every call waits out
    /// a timeout.
    Silent,
}

#[tokio::test]
async fn while_postgres_is_down_webhooks_get_503_at_once_the_outage_is_logged_once_and_nothing_is_lost()
 {
    postgres_outage(Outage::Closed).await;
}

#[tokio::test]
async fn while_postgres_does_not_answer_webhooks_get_503_after_one_deadline_the_outage_is_logged_once_and_nothing_is_lost()
 {
    postgres_outage(Outage::Silent).await;
}

/// Webhooks while Postgres is away: every one is answered 503 (Meta delivers again), only
/// the first touches the pool, the outage is one warning with its class and one line when
/// it ends, and after the redeliveries every message is answered once.
async fn postgres_outage(outage: Outage) {
    // The host runs on this thread: its tasks log here.
    let (logs, _guard) = wasmbot_tests::Logs::capture();
    let url = wasmbot_tests::fresh_postgres("pgdown").await;
    let proxy = wasmbot_tests::proxy::Proxy::to(&url).await;
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener"]);
    // The pool's timeouts and retries, and the webhook's deadline, as shipped: the webhook
    // must not wait them out.
    let host = Host::start(&fake, folder.path(), |config| {
        config.database.url = proxy.url(&url);
    })
    .await;
    let user = "4915550200";
    let first = text_webhook(user, "wamid.P0", "before");
    assert_eq!(fake.deliver(&host.url, &first).await, StatusCode::OK);
    let inbox = &host.whatsapp.inbox;
    eventually("the first message processed and marked done", async || {
        fake.sent().len() == 1 && inbox.pending().await.unwrap() == 0
    })
    .await;
    let health = inbox.database().health();
    let unavailable = || {
        inbox
            .traffic()
            .unavailable
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!((health.outages(), unavailable()), (0, 0));
    let quiet = logs.text().lines().count();

    match outage {
        Outage::Closed => proxy.cut(),
        Outage::Silent => proxy.hang(),
    }
    const N: usize = 20;
    let webhooks: Vec<_> = (1..=N)
        .map(|n| text_webhook(user, &format!("wamid.P{n}"), &format!("m{n}")))
        .collect();
    // One after the other, then all at once; a hang guard only (before the fix the first
    // one alone waited three acquire timeouts and two backoffs: over a minute).
    let refused = tokio::time::timeout(Duration::from_secs(60), async {
        let mut statuses = Vec::new();
        for webhook in &webhooks {
            statuses.push(fake.deliver(&host.url, webhook).await);
        }
        let together = webhooks.iter().map(|w| fake.deliver(&host.url, w));
        statuses.extend(futures::future::join_all(together).await);
        statuses
    })
    .await
    .expect("webhooks hung while the database was down");
    assert_eq!(refused.len(), 2 * N);
    assert!(
        refused
            .iter()
            .all(|status| *status == StatusCode::SERVICE_UNAVAILABLE),
        "{refused:?}"
    );
    assert_eq!(unavailable(), 2 * N as u64);
    // The first webhook found the outage; the others were refused without a try (the
    // other failures counted are the host's background calls).
    let failures = health.failures();
    assert!(
        (1..N as u64).contains(&failures),
        "{failures} failed calls for {} webhooks",
        2 * N
    );
    assert!(health.is_down());
    // The orchestrator's probe is answered from the known outage, without a pool wait.
    let ready = reqwest::get(format!("{}/readyz", host.url)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert!(
        ready["database"].as_str().unwrap().contains("unreachable"),
        "{ready}"
    );
    assert_eq!(health.failures(), failures, "/readyz tried no call");
    proxy.restore();
    // Meta delivers again until it gets its 200.
    tokio::time::timeout(Duration::from_secs(60), async {
        for webhook in &webhooks {
            loop {
                match fake.deliver(&host.url, webhook).await {
                    StatusCode::OK => break,
                    StatusCode::SERVICE_UNAVAILABLE => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => panic!("redelivery answered {other}"),
                }
            }
        }
    })
    .await
    .expect("webhooks still refused after the database came back");
    // Every acknowledged message processed, once.
    eventually("every message processed", async || {
        fake.sent().len() == N + 1 && inbox.pending().await.unwrap() == 0
    })
    .await;
    let mut answered: Vec<String> = fake.sent().iter().map(|s| s.text().to_owned()).collect();
    answered.sort();
    let mut expected: Vec<String> = (1..=N).map(|n| format!("heard: m{n}")).collect();
    expected.push("heard: before".to_owned());
    expected.sort();
    assert_eq!(answered, expected);

    // One outage, one warning with its class, one line when it ended; nothing else loud
    // (no line per refused webhook, per retry, per slow acquire). sqlx may add one line
    // for a connection it found broken on release before the host knew of the outage.
    assert_eq!(health.outages(), 1);
    let text = logs.text();
    let episode: Vec<&str> = text.lines().skip(quiet).collect();
    let loud = loud(&episode);
    assert!((1..=2).contains(&loud.len()), "{loud:#?}");
    let ours: Vec<_> = loud
        .iter()
        .filter(|line| line.contains("wasmbot"))
        .collect();
    assert_eq!(ours.len(), 1, "{loud:#?}");
    assert!(
        ours[0].contains("database unreachable") && ours[0].contains("class=\"connection-lost\""),
        "{loud:#?}"
    );
    let recovered = episode
        .iter()
        .filter(|line| line.contains("database recovered"))
        .count();
    assert_eq!(recovered, 1, "{episode:#?}");
    host.stop().await;
}

/// Items a worker of the at-least-once tests may run ahead of their done marks.
const MARKS_AHEAD: usize = 3;

/// The at-least-once tests' hosts: one worker, [`MARKS_AHEAD`], their database at `url`;
/// with `nap`, misbehave's `!nap` holds the worker for 3 s (then fails), else misbehave is
/// off.
fn one_worker(url: String, nap: bool) -> impl FnOnce(&mut wasmbot::config::Config) {
    move |config| {
        config.database.url = url;
        config.database.retry.tries = 2;
        config.database.acquire_timeout_ms = 500;
        config.whatsapp.workers = 1;
        config.whatsapp.claim_s = 1;
        config.whatsapp.marks_ahead = MARKS_AHEAD;
        let misbehave = match nap {
            true => section(json!({"wall_ms": 3_000})),
            false => section(json!({"enabled": false})),
        };
        config.plugins.insert("misbehave".into(), misbehave);
    }
}

/// Delivers `!nap` then `after 1` to `after {count}` from `user`, and cuts the database
/// while they wait behind the nap: from then on no item can be marked done. Waits until
/// the worker is [`MARKS_AHEAD`] items ahead, then as long again for it to have gone on,
/// had it not waited for the marks; returns the listener's answers, in order.
async fn answered_while_marks_fail(
    fake: &FakeGraph,
    host: &Host,
    proxy: &wasmbot_tests::proxy::Proxy,
    user: &str,
    count: u32,
) -> Vec<String> {
    let nap = text_webhook(user, &format!("wamid.{user}.0"), "!nap");
    assert_eq!(fake.deliver(&host.url, &nap).await, StatusCode::OK);
    for i in 1..=count {
        let body = text_webhook(user, &format!("wamid.{user}.{i}"), &format!("after {i}"));
        assert_eq!(fake.deliver(&host.url, &body).await, StatusCode::OK);
    }
    proxy.cut();
    let marking = host.whatsapp.inbox.marking();
    let unmarked = || {
        marking
            .most_unmarked
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    eventually("the worker ahead of its marks", async || {
        unmarked() >= MARKS_AHEAD
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(unmarked(), MARKS_AHEAD, "items answered, not marked done");
    assert_eq!(
        marking
            .statements
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    heard(fake, user)
}

/// The listener's answers to `user`, in the order the fake received them.
fn heard(fake: &FakeGraph, user: &str) -> Vec<String> {
    fake.sent()
        .iter()
        .filter(|sent| sent.to() == user && sent.text().starts_with("heard: "))
        .map(|sent| sent.text().to_owned())
        .collect()
}

/// `heard: !nap`, then `heard: after 1` to `heard: after {count}`.
fn expected(count: u32) -> Vec<String> {
    std::iter::once("heard: !nap".to_owned())
        .chain((1..=count).map(|i| format!("heard: after {i}")))
        .collect()
}

/// At least once, bounded: a host killed while the database cannot take its done marks has
/// answered items it never marked done, and the next host answers them again. A worker
/// starts an item only while fewer than `marks_ahead` of its own wait for their mark, so
/// however long the database is away the crash repeats at most that many; nothing
/// acknowledged goes unanswered.
#[tokio::test]
async fn a_crash_answers_at_most_marks_ahead_items_per_worker_twice() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener", "misbehave"]);
    let postgres = wasmbot_tests::fresh_postgres("atleastonce").await;
    let proxy = wasmbot_tests::proxy::Proxy::to(&postgres).await;
    let first = Host::start(&fake, folder.path(), one_worker(proxy.url(&postgres), true)).await;
    let user = wasmbot_tests::unique("4915551");
    let before = answered_while_marks_fail(&fake, &first, &proxy, &user, 6).await;
    let expected = expected(6);
    assert_eq!(before, expected[..MARKS_AHEAD], "answered before the crash");
    first.kill().await;

    let second = Host::start(&fake, folder.path(), one_worker(postgres, false)).await;
    // One user's items are answered in order: the last one answered, all were.
    eventually("every item answered", async || {
        heard(&fake, &user).contains(&"heard: after 6".to_owned())
    })
    .await;
    // Time for a third answer to come, had an item been taken up again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let answers = heard(&fake, &user);
    let times = |text: &String| answers.iter().filter(|answer| *answer == text).count();
    let twice: Vec<&String> = expected.iter().filter(|text| times(text) > 1).collect();
    assert!(
        expected.iter().all(|text| (1..=2).contains(&times(text))),
        "{answers:?}"
    );
    // Exactly the items answered and not marked done: the bound, reached.
    assert_eq!(twice, expected[..MARKS_AHEAD].iter().collect::<Vec<_>>());
    second.stop().await;
}

/// While the database cannot take the done marks, the worker waits once `marks_ahead`
/// items are unmarked (said once in the log, not once per attempt); once it is back, the
/// marks waiting meanwhile go in one statement and the worker goes on: each item answered
/// once, none lost, fewer statements than items.
#[tokio::test]
async fn workers_wait_for_their_marks_through_an_outage_and_go_on_after_it() {
    let (logs, _guard) = wasmbot_tests::Logs::capture();
    let fake = FakeGraph::start().await;
    let folder = plugins(&["listener", "misbehave"]);
    let postgres = wasmbot_tests::fresh_postgres("atleastonce").await;
    let proxy = wasmbot_tests::proxy::Proxy::to(&postgres).await;
    let host = Host::start(&fake, folder.path(), |config| {
        one_worker(proxy.url(&postgres), true)(config);
        // No crash here: the items' claims outlive the outage, so nothing is taken up
        // again (a claim running out while its item waits would be, as after a crash).
        config.whatsapp.claim_s = 60;
    })
    .await;
    let user = wasmbot_tests::unique("4915552");
    let before = answered_while_marks_fail(&fake, &host, &proxy, &user, 6).await;
    let expected = expected(6);
    assert_eq!(
        before,
        expected[..MARKS_AHEAD],
        "answered during the outage"
    );
    // Another second of outage: the marker is still trying, and has said so once.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let waiting = ["whatsapp items processed but not marked done yet"];
    assert_eq!(logs.lines_with(&waiting).len(), 1, "{}", logs.text());
    proxy.restore();

    eventually("every item answered", async || {
        heard(&fake, &user).contains(&"heard: after 6".to_owned())
    })
    .await;
    let inbox = &host.whatsapp.inbox;
    eventually("every item marked done", async || {
        inbox.pending().await.is_ok_and(|pending| pending == 0)
    })
    .await;
    assert_eq!(
        heard(&fake, &user),
        expected,
        "each answered once, in order"
    );
    let marking = inbox.marking();
    // The nap's mark, tried through the outage, then the two answered behind it in one
    // statement: fewer statements than items, however the rest went.
    let statements = marking
        .statements
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        statements < expected.len() as u64,
        "{statements} statements"
    );
    assert_eq!(
        marking.unmarked.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        logs.lines_with(&["whatsapp items marked done"]).len(),
        1,
        "the end of the episode, said once"
    );
    host.stop().await;
}

#[tokio::test]
async fn help_answers_the_word_and_a_reminder_comes_back_in_the_chat() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["ping", "remind"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let user = "4915550009";
    fake.deliver(&host.url, &text_webhook(user, "wamid.H1", "Ayuda"))
        .await;
    let sent = fake.wait_sent(1).await;
    let help = sent[0].text();
    assert!(
        help.contains("`!ping`") && help.contains("`!remind"),
        "{help}"
    );
    // No guild on WhatsApp: nothing to switch.
    fake.deliver(
        &host.url,
        &text_webhook(user, "wamid.H2", "!plugin disable ping"),
    )
    .await;
    let sent = fake.wait_sent(2).await;
    assert!(
        sent[1].text().contains("switched per server"),
        "{}",
        sent[1].text()
    );

    fake.deliver(
        &host.url,
        &text_webhook(user, "wamid.H3", "!remind 1s drink water"),
    )
    .await;
    let sent = fake.wait_sent(3).await;
    let set = sent[2].text();
    assert!(
        set.starts_with("⏰ In 1s") && set.contains("I'll remind you: drink water"),
        "{set}"
    );
    let sent = fake.wait_sent(4).await;
    assert_eq!(sent[3].text(), "⏰ Reminder: drink water");
    assert_eq!(sent[3].to(), user);
    host.stop().await;
}

#[tokio::test]
async fn a_poll_of_four_answers_is_a_list_on_whatsapp_and_closes_with_its_tally() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["poll"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let user = "4915550010";
    let ask = "!poll 5s Where? | park | beach | museum | cafe";
    fake.deliver(&host.url, &text_webhook(user, "wamid.P1", ask))
        .await;
    let sent = fake.wait_sent(1).await;
    let interactive = &sent[0].body["interactive"];
    assert_eq!(interactive["type"], "list", "{:#?}", sent[0].body);
    let row = interactive["action"]["sections"][0]["rows"][2]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let vote = notification(vec![messages_value(
        user,
        "Ada",
        vec![list_reply(user, "wamid.P2", &row)],
    )]);
    fake.deliver(&host.url, &vote).await;
    let sent = fake.wait_sent(2).await;
    assert_eq!(sent[1].text(), "You voted for museum.");
    let sent = fake.wait_sent(3).await;
    let tally = sent[2].text();
    assert!(tally.contains("museum: 1 vote (100%)"), "{tally}");
    host.stop().await;
}
