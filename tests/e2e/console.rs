//! The console platform end to end: lines in, rendered bot lines out.

use tokio::io::{AsyncReadExt, BufReader};
use wasmbot::{
    capabilities::Backends,
    config::Config,
    platforms::console::{self, ConsoleOutlet},
    runtime::Registry,
};
use wasmbot_tests::{config, install};

/// What the console shows for `input` typed to a host of `packages`.
async fn session(packages: &[&str], input: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), packages);
    let config: Config = config(dir.path());
    let registry = Registry::new(config.build_runtime(Backends::default()).unwrap());
    registry.load_dir(dir.path()).await.unwrap();

    let (writer, mut reader) = tokio::io::duplex(64 * 1024);
    let dispatcher = config
        .dispatcher(registry)
        .with_outlet(ConsoleOutlet::new(writer));
    console::run(&dispatcher, BufReader::new(input))
        .await
        .unwrap();
    drop(dispatcher);

    let mut output = String::new();
    reader.read_to_string(&mut output).await.unwrap();
    output
}

#[tokio::test]
async fn a_console_session_talks_to_the_plugins() {
    let input = "!ping\n\n!roll 2 6\n/press dice/again:1:4\n/quit\n!ping\n";
    let output = session(&["ping", "dice"], input.as_bytes()).await;
    let lines: Vec<&str> = output.lines().collect();
    assert!(lines[0].starts_with("ping> pong ("), "{output}");
    assert_eq!(lines[1], "dice reacted 🎲");
    assert!(lines[2].starts_with("dice> 2d6: "), "{output}");
    assert_eq!(lines[3], "  [Roll again] /press dice/again:2:6");
    assert!(lines[4].starts_with("dice> 1d4: "), "{output}");
    assert_eq!(lines.len(), 6, "nothing after /quit:\n{output}");
}

#[tokio::test]
async fn a_line_that_is_not_utf8_does_not_end_the_session() {
    let output = session(&["ping"], b"\x00\xff garbage\n!ping\r\n").await;
    assert!(output.contains("ping> pong ("), "{output}");
}
