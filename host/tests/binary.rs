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

    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmbot"))
        .arg("--plugins-dir")
        .arg(plugins.path())
        .env("WASMBOT_RUNTIME__CACHE_DIR", "")
        .env("WASMBOT_RUNTIME__HOT_RELOAD", "false")
        .env(
            "WASMBOT_DATABASE__URL",
            format!("sqlite://{}/bot.db?mode=rwc", plugins.path().display()),
        )
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
