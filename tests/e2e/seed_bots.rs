//! The seed bots of WhatsApp end to end, through the fake Graph API and a fake
//! OpenAI-compatible endpoint: `assistant` (answers with the conversation's last messages,
//! tokens counted per thread, the per-user limit on AI calls, an endpoint that cannot be
//! reached; with `menu`, the Spanish words that open one of them) and `user-profile` (the
//! profile, activity written once for a burst, the thread's tokens, an outside change seen
//! only after `POST /update-user`).

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use wasmbot::{
    capabilities::{
        config_store::{Scope, ScopeKind},
        counters::CounterKey,
    },
    config::Config,
};
use wasmbot_tests::{
    discord_host::plugins,
    fake_openai::{Asked, FakeOpenAi},
    fake_whatsapp::{FakeGraph, messages_value, notification, text},
    section,
    whatsapp_host::{ADMIN_TOKEN, Host, whatsapp_config},
};

/// Seconds since the Unix epoch.
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A WhatsApp user writing to the bot through the fake.
struct User<'a> {
    fake: &'a FakeGraph,
    host: &'a Host,
    id: &'static str,
    name: &'static str,
}

impl User<'_> {
    /// The texts the bot sent this user so far ("typing..." marks are not texts).
    fn answers(&self) -> Vec<String> {
        self.fake
            .sent()
            .iter()
            .filter(|sent| sent.to() == self.id && !sent.text().is_empty())
            .map(|sent| sent.text().to_owned())
            .collect()
    }

    /// Sends `body`, stamped `at` (seconds since the epoch), without waiting for anything.
    async fn send_at(&self, at: u64, body: &str) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let wamid = format!("wamid.seed{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut message = text(self.id, &wamid, body);
        message["timestamp"] = at.to_string().into();
        let webhook = notification(vec![messages_value(self.id, self.name, vec![message])]);
        let status = self.fake.deliver(&self.host.url, &webhook).await;
        assert_eq!(status, 200, "the webhook took {body:?}");
    }

    /// Sends `body` stamped `at` and returns the bot's answer (waiting at most 20 s). A
    /// user's messages are processed in order, so the answer also means that everything
    /// sent before it was processed.
    async fn ask_at(&self, at: u64, body: &str) -> String {
        let before = self.answers().len();
        self.send_at(at, body).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(answer) = self.answers().get(before) {
                return answer.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no answer to {body:?} within 20 s; sent: {:?}",
                self.answers()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// [`User::ask_at`] now.
    async fn ask(&self, body: &str) -> String {
        self.ask_at(now_s(), body).await
    }
}

/// A request's messages as `(role, content)`.
fn messages(asked: &Asked) -> Vec<(String, String)> {
    asked.body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|message| {
            let field = |name: &str| message[name].as_str().unwrap_or_default().to_owned();
            (field("role"), field("content"))
        })
        .collect()
}

fn turn(role: &str, content: &str) -> (String, String) {
    (role.to_owned(), content.to_owned())
}

/// The assistant's grants and endpoint: `url`, reachable at `allow`, and `AI_RATE` when
/// given.
fn assistant(url: String, allow: String, rate: Option<&str>) -> impl FnOnce(&mut Config) {
    let mut env = BTreeMap::from([
        ("AI_URL".to_owned(), url),
        ("AI_KEY".to_owned(), "test-key".to_owned()),
    ]);
    if let Some(rate) = rate {
        env.insert("AI_RATE".to_owned(), rate.to_owned());
    }
    let grants = [
        "log",
        "state",
        "counters",
        "rate-limit",
        "messaging",
        "http",
    ];
    let policy = section(json!({
        "grants": grants,
        "http_allow": [allow],
        "env": env,
    }));
    move |config| {
        config.plugins.insert("assistant".into(), policy);
    }
}

/// The assistant's written token total of `user`, and its thread.
async fn written_tokens(host: &Host, user: &str) -> Option<(i64, String)> {
    let key = CounterKey {
        plugin: "assistant".to_owned(),
        counter: "tokens".to_owned(),
        subject: user.to_owned(),
    };
    host.counters()
        .stored(&key)
        .await
        .expect("reading a counter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_answers_with_the_last_five_messages_and_counts_tokens_per_thread() {
    let fake = FakeGraph::start().await;
    let ai = FakeOpenAi::start().await;
    let folder = plugins(&["assistant"]);
    let host = Host::start(
        &fake,
        folder.path(),
        assistant(ai.url(), ai.authority(), None),
    )
    .await;
    let ana = User {
        fake: &fake,
        host: &host,
        id: "4915550201",
        name: "Ana",
    };
    let greeting = ana.ask("assistant").await;
    assert!(greeting.contains("ask me anything"), "{greeting}");
    assert!(ai.asked().is_empty(), "opening asks no model");

    assert_eq!(ana.ask("What is wasm?").await, "echo: What is wasm?");
    assert_eq!(ana.ask("And WASI?").await, "echo: And WASI?");
    let asked = ai.asked();
    assert_eq!(asked[0].authorization, "Bearer test-key");
    let first = messages(&asked[0]);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0].0, "system");
    assert_eq!(first[1], turn("user", "What is wasm?"));
    // The second question carries the first question and its answer.
    assert_eq!(
        messages(&asked[1])[1..],
        [
            turn("user", "What is wasm?"),
            turn("assistant", "echo: What is wasm?"),
            turn("user", "And WASI?"),
        ]
    );
    ana.ask("Is it fast?").await;
    ana.ask("Who uses it?").await;
    // Six messages were said before the fourth question: the last five go with it.
    let fourth = messages(&ai.asked()[3]);
    assert_eq!(fourth[0].0, "system");
    assert_eq!(
        fourth[1..],
        [
            turn("assistant", "echo: What is wasm?"),
            turn("user", "And WASI?"),
            turn("assistant", "echo: And WASI?"),
            turn("user", "Is it fast?"),
            turn("assistant", "echo: Is it fast?"),
            turn("user", "Who uses it?"),
        ]
    );

    // Tokens: the endpoint's figures, counted in memory until the host writes them.
    let first_thread: i64 = ai
        .asked()
        .iter()
        .map(|asked| asked.total_tokens as i64)
        .sum();
    assert!(first_thread > 0);
    let usage = ana.ask("usage").await;
    assert!(
        usage.contains(&format!(
            "used {first_thread} tokens; 0 of them are written"
        )),
        "{usage}"
    );
    assert_eq!(
        written_tokens(&host, ana.id).await,
        None,
        "nothing written yet"
    );
    host.counters().flush_all().await;
    let (total, thread) = written_tokens(&host, ana.id).await.expect("written");
    assert_eq!(total, first_thread, "one thread's calls add up");
    let usage = ana.ask("usage").await;
    assert!(
        usage.contains(&format!("used {first_thread} tokens, all written")),
        "{usage}"
    );

    // A new thread: no history, and its total starts again.
    let fresh = ana.ask("new").await;
    assert!(fresh.starts_with("New conversation"), "{fresh}");
    assert_eq!(ana.ask("Hello again").await, "echo: Hello again");
    let asked = ai.asked();
    let fifth = messages(&asked[4]);
    assert_eq!(
        fifth.len(),
        2,
        "the history went with the thread: {fifth:?}"
    );
    assert_eq!(fifth[1], turn("user", "Hello again"));
    host.counters().flush_all().await;
    let (total, new_thread) = written_tokens(&host, ana.id).await.expect("written");
    assert_ne!(new_thread, thread);
    assert_eq!(
        total, asked[4].total_tokens as i64,
        "the new thread restarted"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_ai_call_within_the_limit_is_refused_without_reaching_the_endpoint() {
    let fake = FakeGraph::start().await;
    let ai = FakeOpenAi::start().await;
    let folder = plugins(&["assistant"]);
    // 5 calls an hour rather than a minute: the sixth is over the limit however slowly the
    // machine answers the first five.
    let policy = assistant(ai.url(), ai.authority(), Some("5/3600"));
    let host = Host::start(&fake, folder.path(), policy).await;
    let ben = User {
        fake: &fake,
        host: &host,
        id: "4915550202",
        name: "Ben",
    };
    ben.ask("assistant").await;
    for question in 1..=5 {
        let answer = ben.ask(&format!("question {question}")).await;
        assert_eq!(answer, format!("echo: question {question}"));
    }
    let refused = ben.ask("question 6").await;
    assert!(
        refused.contains("5 questions in 3600 s") && refused.contains("Please wait"),
        "{refused}"
    );
    assert_eq!(ai.asked().len(), 5, "the sixth call never left the host");
    // Another user has a limit of their own.
    let cleo = User {
        fake: &fake,
        host: &host,
        id: "4915550203",
        name: "Cleo",
    };
    cleo.ask("ai").await;
    assert_eq!(cleo.ask("question 1").await, "echo: question 1");
    // Ben is still in the conversation.
    let usage = ben.ask("usage").await;
    assert!(usage.starts_with("This conversation used"), "{usage}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_answered_unavailable_and_the_conversation_goes_on() {
    let fake = FakeGraph::start().await;
    // A loopback port nothing listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port")
        .local_addr()
        .expect("its address");
    let folder = plugins(&["assistant"]);
    let policy = assistant(format!("http://{closed}/v1"), closed.to_string(), None);
    let host = Host::start(&fake, folder.path(), policy).await;
    let dan = User {
        fake: &fake,
        host: &host,
        id: "4915550204",
        name: "Dan",
    };
    dan.ask("assistant").await;
    let answer = dan.ask("Are you there?").await;
    assert!(answer.contains("unavailable"), "{answer}");
    let usage = dan.ask("usage").await;
    assert_eq!(
        usage, "This conversation used 0 tokens, all written to the usage totals.",
        "still in the conversation"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spanish_words_open_the_menu_or_the_assistant_and_other_words_get_nothing() {
    const WELCOME: &str = "Welcome to Wasm Pizza! What would you like?";
    const HOURS: &str = "We are open every day from 11:00 to 23:00.";
    let fake = FakeGraph::start().await;
    let ai = FakeOpenAi::start().await;
    // The demo's pair: a greeting must open one of them, not both.
    let folder = plugins(&["menu", "assistant"]);
    let policy = assistant(ai.url(), ai.authority(), None);
    let host = Host::start(&fake, folder.path(), policy).await;
    let user = |id: &'static str| User {
        fake: &fake,
        host: &host,
        id,
        name: "Lucía",
    };

    let lucia = user("4915550301");
    // Nothing answers this: the next answer is the menu's, the first she gets.
    lucia.send_at(now_s(), "qué tal").await;
    assert_eq!(lucia.ask("hola").await, WELCOME);
    assert_eq!(lucia.ask("2").await, HOURS, "the menu goes on");
    assert_eq!(lucia.answers(), [WELCOME, HOURS], "one answer each");

    for (id, word) in [
        ("4915550302", "¡Buenas!"),
        ("4915550303", "Menú"),
        ("4915550304", "MENU"),
        ("4915550305", "Hola"),
    ] {
        assert_eq!(user(id).ask(word).await, WELCOME, "{word:?}");
    }
    for (id, word) in [("4915550306", "asistente"), ("4915550307", "IA")] {
        let greeting = user(id).ask(word).await;
        assert!(greeting.contains("ask me anything"), "{word:?}: {greeting}");
    }
    assert!(ai.asked().is_empty(), "no word was a question to the model");
    host.stop().await;
}

/// The user's `user-profile` document as stored, and its version (one more per write).
async fn stored_profile(host: &Host, user: &str) -> (Value, i64) {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT document, version FROM config_entries \
         WHERE plugin = $1 AND scope = $2 AND scope_id = $3",
    )
    .bind("user-profile")
    .bind("user")
    .bind(user)
    .fetch_one(host.store().database().pool())
    .await
    .expect("the user's document");
    let document: String = row.get(0);
    let document = serde_json::from_str(&document).expect("a JSON document");
    (document, row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_is_written_once_per_burst_and_counts_the_threads_tokens() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["user-profile"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let ada = User {
        fake: &fake,
        host: &host,
        id: "4915550301",
        name: "Ada",
    };
    // An hour ago, so that minutes later is still the past.
    let start = now_s() - 3600;
    ada.send_at(start, "hello there").await;
    let profile = ada.ask_at(start + 10, "profile").await;
    assert!(profile.starts_with("Profile of Ada\n"), "{profile}");
    assert!(profile.contains("Chat: 4915550301 (whatsapp)"), "{profile}");
    assert!(profile.contains("Labels: none"), "{profile}");
    let (document, version) = stored_profile(&host, ada.id).await;
    assert_eq!(document["name"], "Ada");
    assert_eq!(document["chat_id"], "4915550301");
    assert_eq!(document["last_active_ms"], start * 1000);
    assert_eq!(document["thread"], (start * 1000).to_string());

    // A burst within five minutes: no write at all.
    for (after, body) in [
        (30, "how are you doing"),
        (60, "fine"),
        (240, "great news today"),
    ] {
        ada.send_at(start + after, body).await;
    }
    let profile = ada.ask_at(start + 250, "profile").await;
    assert_eq!(stored_profile(&host, ada.id).await, (document, version));
    // The messages' tokens wait in memory until the host writes them.
    assert!(profile.contains(": 0 tokens written so far"), "{profile}");
    host.counters().flush_all().await;
    // 11, 17, 4 and 16 characters: 3 + 5 + 1 + 4 tokens ("profile" is not counted).
    let profile = ada.ask_at(start + 260, "profile").await;
    assert!(profile.contains(": 13 tokens written so far"), "{profile}");

    // Six minutes after the last written activity: written once more.
    ada.send_at(start + 360, "still here").await;
    ada.ask_at(start + 370, "profile").await;
    let (document, later) = stored_profile(&host, ada.id).await;
    assert_eq!(later, version + 1, "one write: the activity");
    assert_eq!(document["last_active_ms"], (start + 360) * 1000);
    host.counters().flush_all().await;
    let profile = ada.ask_at(start + 380, "profile").await;
    assert!(profile.contains(": 16 tokens written so far"), "{profile}");

    // Over half an hour of silence: a new thread, whose total starts again.
    let back = start + 360 + 31 * 60;
    ada.send_at(back, "back again").await;
    ada.ask_at(back + 10, "profile").await;
    let (document, _) = stored_profile(&host, ada.id).await;
    assert_eq!(document["thread"], (back * 1000).to_string());
    host.counters().flush_all().await;
    let profile = ada.ask_at(back + 20, "profile").await;
    assert!(profile.contains(": 3 tokens written so far"), "{profile}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_change_to_a_profile_is_seen_after_update_user() {
    let fake = FakeGraph::start().await;
    let folder = plugins(&["user-profile"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    let eve = User {
        fake: &fake,
        host: &host,
        id: "4915550302",
        name: "Eve",
    };
    eve.send_at(now_s(), "hello").await;
    let profile = eve.ask("profile").await;
    assert!(profile.contains("Labels: none"), "{profile}");

    // A tool labels the user in the bot's database, from a process of its own: its own
    // config store on the same database, no Redis between them.
    let tool = whatsapp_config(&fake, folder.path())
        .open_store()
        .await
        .expect("the tool's store");
    let defaults = json!({ "labels": [] });
    let defaults = defaults.as_object().cloned().unwrap_or_default();
    tool.register_defaults("user-profile", ScopeKind::User, defaults);
    let scope = Scope::User(eve.id.to_owned());
    tool.set("user-profile", &scope, "labels", json!(["vip", "beta"]))
        .await
        .expect("the tool's write");
    tool.database().pool().close().await;

    // The bot reads the user's document from its cache (12 hours): not seen yet.
    let profile = eve.ask("profile").await;
    assert!(profile.contains("Labels: none"), "{profile}");

    let client = reqwest::Client::new();
    let hook = json!({ "userId": eve.id, "changes": [{ "labels": ["vip", "beta"] }] });
    let update = |token: &str| {
        client
            .post(format!("{}/update-user", host.url))
            .bearer_auth(token)
            .json(&hook)
            .send()
    };
    let refused = update("guess").await.expect("the admin API answers");
    assert_eq!(refused.status(), 401);
    let answer = update(ADMIN_TOKEN).await.expect("the admin API answers");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("a JSON answer");
    assert!(body["invalidated"].as_u64() >= Some(1), "{body}");

    let profile = eve.ask("profile").await;
    assert!(profile.contains("Labels: vip, beta"), "{profile}");
    assert!(profile.contains("Chat: 4915550302 (whatsapp)"), "{profile}");
    host.stop().await;
}
