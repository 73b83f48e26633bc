//! Every configuration key the host reads is in `docs/configuration.md`: the keys are taken
//! from the configuration itself (its defaults, serialized), so a key added to a section
//! without its line in the documentation fails here.

use serde_json::Value;
use wasmbot::config::Config;

/// `prefix.key` for every leaf of `value` (a table's keys are walked; a map whose keys the
/// operator chooses, such as `plugins`, has none by default and is documented by its shape).
fn keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(table) if !table.is_empty() => {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                keys(&path, value, out);
            }
        }
        _ if !prefix.is_empty() => out.push(prefix.to_owned()),
        _ => {}
    }
}

#[test]
fn every_configuration_key_is_documented() {
    let config = serde_json::to_value(Config::default()).unwrap();
    let mut all = Vec::new();
    keys("", &config, &mut all);
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    // A key is documented by its own row, or by its table's (`rate_limits.user` with its
    // inline `{ limit, window_secs }`); a map whose keys the operator chooses (empty by
    // default) by its shape, `plugins.NAME`.
    let documented = |key: &str| {
        let segments: Vec<&str> = key.split('.').collect();
        docs.contains(&format!("{key}.NAME"))
            || (2..=segments.len())
                .any(|n| docs.contains(&format!("`{}`", segments[..n].join("."))))
    };
    let missing: Vec<&String> = all.iter().filter(|key| !documented(key)).collect();
    assert!(all.len() > 50, "{all:?}");
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:#?}"
    );
}
