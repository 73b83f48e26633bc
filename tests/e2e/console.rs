//! The console platform end to end: lines in, rendered bot lines out.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, BufReader};
use wasmbot::{
    config::Config,
    dispatch::Dispatcher,
    platforms::console::{self, ConsoleOutlet},
    runtime::{Registry, Runtime},
};
use wasmbot_tests::{config, install};

#[tokio::test]
async fn a_console_session_talks_to_the_plugins() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["ping", "dice"]);
    let config: Config = config(dir.path());
    let registry =
        Registry::new(Runtime::new(Arc::new(config.clone()), Default::default()).unwrap());
    registry.load_dir(dir.path()).await.unwrap();

    let (writer, mut reader) = tokio::io::duplex(64 * 1024);
    let dispatcher = Dispatcher::new(registry, config.bot).with_outlet(ConsoleOutlet::new(writer));
    let input = "!ping\n\n!roll 2 6\n/press dice/again:1:4\n/quit\n!ping\n";
    console::run(&dispatcher, BufReader::new(input.as_bytes()))
        .await
        .unwrap();
    drop(dispatcher);

    let mut output = String::new();
    reader.read_to_string(&mut output).await.unwrap();
    let lines: Vec<&str> = output.lines().collect();
    assert!(lines[0].starts_with("ping> pong ("), "{output}");
    assert_eq!(lines[1], "dice reacted 🎲");
    assert!(lines[2].starts_with("dice> 2d6: "), "{output}");
    assert_eq!(lines[3], "  [Roll again] /press dice/again:2:6");
    assert!(lines[4].starts_with("dice> 1d4: "), "{output}");
    assert_eq!(lines.len(), 6, "nothing after /quit:\n{output}");
}
