//! The host's modules import one way: from the contract and the shared services up to the
//! binary. A module that imports one above it would start a circle; this scan of the
//! source fails on the first such import, naming the file and the module it reached.

use std::{fs, path::Path};

/// The top-level modules, lowest first. Each may import only those before it.
const LAYERS: &[&str] = &[
    "api_error",
    "task",
    "permissions",
    "bindings",
    "telemetry",
    "redis",
    "db",
    "capabilities",
    "runtime",
    "packages",
    "dispatch",
    "platforms",
    "http",
    "config",
];

#[test]
fn no_module_imports_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs");
        // The crate root and the binary sit above every module.
        if first == "lib" || first == "main" {
            continue;
        }
        let Some(rank) = LAYERS.iter().position(|layer| *layer == first) else {
            panic!(
                "{first} (from {}) is not in LAYERS: place it",
                relative.display()
            );
        };
        let text = fs::read_to_string(file).unwrap_or_default();
        for used in crate_modules(&text) {
            seen += 1;
            match LAYERS.iter().position(|layer| *layer == used) {
                Some(used_rank) if used_rank > rank => wrong.push(format!(
                    "{} ({first}) imports {used}, a higher layer",
                    relative.display()
                )),
                Some(_) => {}
                None => wrong.push(format!(
                    "{} imports crate::{used}, which is not in LAYERS",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        seen > 100,
        "the scan found only {seen} imports: is it reading the source?"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_sees_grouped_and_nested_imports() {
    let text = "use crate::{\n    bindings::types::Event,\n    capabilities::{a, b},\n};\nlet x = crate::runtime::Runtime::new();";
    assert_eq!(crate_modules(text), ["bindings", "capabilities", "runtime"]);
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The top-level modules named after `crate::` in `text`, in a group `crate::{a::.., b}` too.
fn crate_modules(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        push_head(&group[start..i], &mut found);
                        start = i + 1;
                    }
                    _ => {}
                }
                if depth == 0 {
                    push_head(&group[start..i], &mut found);
                    break;
                }
            }
        } else {
            push_head(rest, &mut found);
        }
    }
    found
}

fn push_head(path: &str, found: &mut Vec<String>) {
    let head: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !head.is_empty() && head != "self" {
        found.push(head);
    }
}
