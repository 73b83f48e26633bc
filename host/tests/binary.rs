//! The `wasmbot` binary itself: the README's run path, end to end.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use wasmbot_sdk::build::PluginBuild;

#[test]
fn the_console_answers_ping_and_exits_on_quit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = PluginBuild::new(&root)
        .profile("plugin")
        .package("ping")
        .run()
        .unwrap();
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(&built[0], plugins.path().join("ping.wasm")).unwrap();

    let mut child = console_bot(plugins.path()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"!ping\n/quit\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("\nping> pong ("), "{stdout}\n{stderr}");
    assert!(stderr.contains("plugin ping 0.1.0 loaded"), "{stderr}");
}

/// The bot in console mode on the plugins of `folder`, SQLite beside them.
fn console_bot(folder: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmbot"));
    command
        .arg("--plugins-dir")
        .arg(folder)
        .env("WASMBOT_RUNTIME__CACHE_DIR", "")
        .env("WASMBOT_RUNTIME__HOT_RELOAD", "false")
        .env(
            "WASMBOT_DATABASE__URL",
            format!("sqlite://{}/bot.db?mode=rwc", folder.display()),
        )
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// SIGTERM stops a console bot that waits for its next line (a terminal nobody types in):
/// the read of its input does not hold the process.
#[test]
fn sigterm_stops_a_console_waiting_for_input() {
    use std::io::{BufRead, BufReader};

    let folder = tempfile::tempdir().unwrap();
    let mut child = console_bot(folder.path()).spawn().unwrap();
    // Held open and never written: the console's read waits.
    let input = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("wasmbot console:") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no console");
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // A bound on a hang, not a measure of speed: the stop itself takes milliseconds.
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited == 600 {
            let _ = child.kill();
            panic!("still running a minute after SIGTERM, its console waiting for input");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    };
    drop(input);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|line| line.ends_with(" stopped")),
        "{stderr}"
    );
}

#[test]
fn a_bad_configuration_is_a_clear_error_and_a_failing_exit() {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .env("WASMBOT_PLUGIN_DEFAULTS__CPU_MS", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("plugin_defaults.cpu_ms must be at least runtime.epoch_tick_ms"),
        "{stderr}"
    );
}

/// `wasmbot invalidate` against a running admin API: a change made behind the bot's back
/// shows once the command ran; a wrong token, a bad scope and no bot are clear failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_invalidates_through_the_admin_api() {
    use std::sync::Arc;

    use serde_json::{Value, json};
    use wasmbot::{
        capabilities::config_store::{ConfigStore, Document, Scope, ScopeKind, StoreConfig},
        db::{Database, DatabaseConfig},
        http::admin_router,
    };

    let folder = tempfile::tempdir().unwrap();
    let db = Database::connect(&DatabaseConfig {
        url: format!("sqlite://{}/bot.db?mode=rwc", folder.path().display()),
        ..DatabaseConfig::default()
    })
    .unwrap();
    db.migrate().await.unwrap();
    let store = Arc::new(ConfigStore::new(db.clone(), StoreConfig::default()));
    let mut defaults = Document::new();
    defaults.insert("prefix".into(), json!("!"));
    store.register_defaults("p", ScopeKind::Guild, defaults);
    let guild = Scope::Guild("g1".into());
    assert_eq!(store.get("p", &guild, "prefix").await.unwrap(), json!("!"));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = admin_router(Arc::clone(&store), "secret");
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Another tool edits the row; the bot still serves its cached copy.
    sqlx::query("UPDATE config_entries SET document = '{\"prefix\":\"?\"}' WHERE plugin = 'p'")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(store.get("p", &guild, "prefix").await.unwrap(), json!("!"));

    let cli = |args: &[&str], token: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
            .args(args)
            .env("WASMBOT_ADMIN__TOKEN", token)
            .env_remove("WASMBOT_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let run = |args: Vec<String>, token: &'static str| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&args, token)
        })
    };
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        args.extend(["--admin-url".to_owned(), url.clone()]);
        args
    };

    let (ok, text) = run(args(&["invalidate", "guild", "g1"]), "wrong")
        .await
        .unwrap();
    assert!(!ok && text.contains("401"), "{text}");
    let (ok, text) = run(args(&["invalidate", "planet", "x"]), "secret")
        .await
        .unwrap();
    assert!(!ok && text.contains("unknown scope"), "{text}");
    assert_eq!(store.get("p", &guild, "prefix").await.unwrap(), json!("!"));

    let (ok, text) = run(args(&["invalidate", "guild", "g1"]), "secret")
        .await
        .unwrap();
    assert!(ok, "{text}");
    assert!(
        text.contains("guild:g1: 1 cached document(s) dropped"),
        "{text}"
    );
    assert_eq!(
        store.get("p", &guild, "prefix").await.unwrap(),
        Value::from("?")
    );

    server.abort();
    let _ = server.await;
    let (ok, text) = run(args(&["invalidate", "user", "u1"]), "secret")
        .await
        .unwrap();
    assert!(!ok && text.contains("cannot reach the admin API"), "{text}");
}

/// SIGTERM (a service manager stopping the bot) under load is a clean stop that loses
/// nothing: the event in flight finishes, input not yet read is left, every event that
/// was answered has its counters written, the exit is a success.
#[test]
fn sigterm_under_load_loses_nothing() {
    use std::io::{BufRead, BufReader};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = PluginBuild::new(&root)
        .profile("plugin")
        .package("ping")
        .package("counter-probe")
        .run()
        .unwrap();
    let folder = tempfile::tempdir().unwrap();
    for (file, name) in built.iter().zip(["ping", "counter-probe"]) {
        std::fs::copy(file, folder.path().join(format!("{name}.wasm"))).unwrap();
    }
    let db = folder.path().join("bot.db");
    let mut child = console_bot(folder.path())
        .env("WASMBOT_ADMIN__LISTEN", "127.0.0.1:0")
        .env_remove("REDIS_URL")
        .spawn()
        .unwrap();
    // Far more input than it handles before the signal: it is still busy when it comes.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for _ in 0..20_000 {
            if stdin.write_all(b"!ping\n").is_err() {
                break;
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut pongs = 0;
    while pongs < 20 {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the bot stopped early"
        );
        pongs += usize::from(line.starts_with("ping> pong"));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for line in stdout.lines() {
        pongs += usize::from(line.unwrap().starts_with("ping> pong"));
    }
    let output = child.wait_with_output().unwrap();
    let _ = feeder.join();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("counters flushed"), "{stderr}");
    assert!(
        stderr.lines().any(|line| line.ends_with(" stopped")),
        "{stderr}"
    );
    assert!(
        pongs < 20_000,
        "the signal came after all the input was handled"
    );

    // counter-probe counted the 5 characters of every `!ping` that ping answered.
    let total = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let url = format!("sqlite://{}", db.display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let total: i64 = sqlx::query_scalar(
                "SELECT total FROM counters WHERE plugin = 'counter-probe' AND subject = 'you'",
            )
            .fetch_one(&mut connection)
            .await
            .unwrap();
            total
        });
    assert_eq!(total, 5 * pongs as i64, "{pongs} answered events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_discord_refuses_is_a_clear_error_and_a_failing_exit() {
    // Discord's answer to a bad token, from a stand-in of its REST API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let refuse = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "message": "401: Unauthorized", "code": 0 })),
        )
    });
    let server = tokio::spawn(async move { axum::serve(listener, refuse).await });
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().to_owned();
    let run = move || {
        Command::new(env!("CARGO_BIN_EXE_wasmbot"))
            .arg("--plugins-dir")
            .arg(&dir)
            .env("DISCORD_TOKEN", "not-a-token")
            .env("WASMBOT_DISCORD__API_URL", &api)
            .env("WASMBOT_ADMIN__LISTEN", "127.0.0.1:0")
            .env(
                "WASMBOT_DATABASE__URL",
                format!("sqlite://{}/bot.db?mode=rwc", dir.display()),
            )
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .output()
    };
    let output = tokio::task::spawn_blocking(run).await.unwrap().unwrap();
    server.abort();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Discord refused the bot token"), "{stderr}");
}

/// A bot with a Discord token runs no console: `/readyz` and `/metrics` report Discord only,
/// and, its gateway refusing every connection, not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_bot_reports_discord_alone_and_not_ready_while_its_gateway_refuses() {
    use serde_json::{Value, json};

    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port()
    };
    // Nothing listens there: the gateway refuses.
    let gateway = format!("ws://127.0.0.1:{}", free_port());
    // Discord's REST API as far as the start needs it: the token's user and the gateway.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let rest = axum::Router::new()
        .route(
            "/api/v10/users/@me",
            axum::routing::get(|| async {
                axum::Json(json!({
                    "id": "900000000000000001", "username": "bot", "discriminator": "0",
                    "global_name": null, "avatar": null, "bot": true,
                }))
            }),
        )
        .route(
            "/api/v10/gateway",
            axum::routing::get(move || {
                let url = gateway.clone();
                async move { axum::Json(json!({ "url": url })) }
            }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, rest).await });

    let folder = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .arg("--plugins-dir")
        .arg(folder.path())
        .env("DISCORD_TOKEN", "a-token")
        .env("WASMBOT_DISCORD__API_URL", &api)
        .env("WASMBOT_ADMIN__LISTEN", &admin)
        .env("WASMBOT_RUNTIME__HOT_RELOAD", "false")
        .env("WASMBOT_RUNTIME__CACHE_DIR", "")
        .env(
            "WASMBOT_DATABASE__URL",
            format!("sqlite://{}/bot.db?mode=rwc", folder.path().display()),
        )
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ready = loop {
        match client.get(format!("http://{admin}/readyz")).send().await {
            Ok(response) => break response,
            Err(error) => {
                assert!(std::time::Instant::now() < deadline, "no /readyz: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let status = ready.status().as_u16();
    let ready: Value = ready.json().await.unwrap();
    let metrics = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    server.abort();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(status, 503, "{ready}\n{stderr}");
    assert_eq!(ready["platforms"], json!({ "discord": false }), "{stderr}");
    let connected: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("wasmbot_platform_connected{"))
        .collect();
    assert_eq!(
        connected,
        vec![r#"wasmbot_platform_connected{platform="discord"} 0"#],
        "{metrics}"
    );
    assert!(output.status.success(), "{stderr}");
}

#[path = "../../tests/src/oci_registry.rs"]
mod oci_registry;

/// The publisher's and the operator's commands as they are typed: a key, a package, its
/// signature, a registry push, an index; then, against a running bot, search, install
/// (pending: no terminal to approve on), list, approve, and the plugin answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_is_published_and_installed_with_the_cli() {
    use std::io::Read;

    let registry = oci_registry::OciRegistry::start().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = PluginBuild::new(&root)
        .profile("plugin")
        .package("greeter")
        .run()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let admin = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let cli = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let output = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
                .args(&args)
                .env("WASMBOT_RUNTIME__CACHE_DIR", "")
                .env_remove("DATABASE_URL")
                .env_remove("REDIS_URL")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "wasmbot {args:?}: {text}");
            text
        })
    };
    let args = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let repo = format!("{}/plugins/greeter", registry.address());

    cli(args(&format!("key generate {}", path("alice"))))
        .await
        .unwrap();
    let wasm = built[0].display().to_string();
    let text = cli(args(&format!(
        "plugin package {wasm} -o {}",
        path("greeter.tar")
    )))
    .await
    .unwrap();
    assert!(text.contains("greeter 1.0.0 packaged"), "{text}");
    assert!(text.contains("capabilities: log"), "{text}");
    let sign = format!(
        "plugin sign {} --key {}",
        path("greeter.tar"),
        path("alice.key")
    );
    cli(args(&sign)).await.unwrap();
    let publish = format!("plugin publish {} {repo} --insecure", path("greeter.tar"));
    let text = cli(args(&publish)).await.unwrap();
    assert!(text.contains(&format!("to {repo}: sha256:")), "{text}");
    let index = format!(
        "index build {repo}:1.0.0 --key {} -o {} --insecure",
        path("alice.key"),
        path("index.json")
    );
    let text = cli(args(&index)).await.unwrap();
    assert!(text.contains("1 plugin(s), signed"), "{text}");

    let public = std::fs::read_to_string(path("alice.pub")).unwrap();
    let config = format!(
        "[admin]\nlisten = \"{admin}\"\ntoken = \"secret\"\n\
         [runtime]\ncache_dir = \"\"\nhot_reload = false\n\
         [database]\nurl = \"sqlite://{}?mode=rwc\"\n\
         [packages]\ninsecure_registries = [\"{}\"]\n\
         [[packages.keys]]\nkey = '''{public}'''\nplugins = [\"greeter\"]\n\
         [[packages.indexes]]\nname = \"community\"\nurl = \"{}\"\nkey = '''{public}'''\n",
        path("bot.db"),
        registry.address(),
        path("index.json"),
    );
    std::fs::write(path("wasmbot.toml"), config).unwrap();
    std::fs::create_dir(path("plugins")).unwrap();
    let mut bot = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .args([
            "--config",
            &path("wasmbot.toml"),
            "--plugins-dir",
            &path("plugins"),
        ])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let health = format!("http://{admin}/healthz");
    for _ in 0..200 {
        if reqwest::get(&health).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let operator = |line: &str| {
        let mut all = vec!["--config".to_owned(), path("wasmbot.toml")];
        all.extend(args(line));
        cli(all)
    };
    let text = operator("plugin search greet").await.unwrap();
    assert!(
        text.contains("greeter 1.0.0 (community): Says hello"),
        "{text}"
    );
    let text = operator("plugin install greeter").await.unwrap();
    assert!(text.contains("waiting for approval"), "{text}");
    assert!(text.contains("left pending"), "{text}");
    let text = operator("plugin list").await.unwrap();
    assert!(
        text.contains("pending approval: 1.0.0 asks for capabilities: log"),
        "{text}"
    );
    let text = operator("plugin approve greeter").await.unwrap();
    assert!(text.contains("greeter 1.0.0 (sha256:"), "{text}");
    let text = operator("plugin list").await.unwrap();
    assert!(text.contains("from community, signed by"), "{text}");

    bot.stdin
        .take()
        .unwrap()
        .write_all(b"!greet\n/quit\n")
        .unwrap();
    let status = bot.wait().unwrap();
    let mut stdout = String::new();
    bot.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    bot.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("hello from greeter 1.0.0"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("package serving"), "{stderr}");
}
