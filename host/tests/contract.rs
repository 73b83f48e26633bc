//! The contract in `wit/` against the versions released before it (`wit/released/*.sig`): a
//! plugin built against any of them must still link, so whatever they had must still be
//! here, unchanged. docs/contract.md has the rule and how a version is released.

// The renderer `cargo xtask wit-freeze` writes the released signatures with: one copy, so the
// test reads them exactly as they were written.
#[path = "../../xtask/src/signature.rs"]
mod signature;

use std::{
    fs,
    path::{Path, PathBuf},
};

use signature::Signature;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn current() -> Signature {
    Signature::of_wit(&root().join("wit")).unwrap()
}

/// Every released signature, oldest first; each file is named after its version.
fn released() -> Vec<Signature> {
    let dir = root().join("wit/released");
    let mut all: Vec<Signature> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sig"))
        .map(|path| {
            let signature = Signature::parse(&fs::read_to_string(&path).unwrap()).unwrap();
            let named = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(named, signature.version.to_string(), "{}", path.display());
            signature
        })
        .collect();
    all.sort_by(|a, b| a.version.cmp(&b.version));
    all
}

#[test]
fn every_released_version_of_the_series_still_links() {
    let current = current();
    let series: Vec<Signature> = released()
        .into_iter()
        .filter(|released| current.is_series_of(released))
        .collect();
    // Every version broken, not just the oldest: which ones says when the change came in.
    let broken: Vec<String> = series
        .iter()
        .filter_map(|released| {
            let problems = current.breaks(released);
            (!problems.is_empty()).then(|| {
                format!(
                    "{}@{}:\n  {}",
                    released.package,
                    released.version,
                    problems.join("\n  ")
                )
            })
        })
        .collect();
    assert!(
        broken.is_empty(),
        "wit/ breaks released versions (such a change needs a new major version, \
         docs/contract.md):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_newest_release_is_wit_unless_its_version_was_bumped() {
    let current = current();
    let newest = released().pop().unwrap();
    assert!(
        newest.version <= current.version,
        "wit/ is {}, older than the released {}",
        current.version,
        newest.version
    );
    if newest.version == current.version {
        let only_released: Vec<&String> = newest.items.difference(&current.items).collect();
        let only_wit: Vec<&String> = current.items.difference(&newest.items).collect();
        assert!(
            newest == current,
            "wit/ changed since {} was released: bump the package version in wit/world.wit\n\
             released only: {only_released:#?}\nwit/ only: {only_wit:#?}",
            current.version
        );
    }
}

/// The legacy test plugin is built against contract 0.1.0 (its own copy, so the end-to-end
/// test proves a 0.1.0 plugin loads); that copy is the one whose signature was released. The
/// same check proves the renderer still writes the format the released files are in.
#[test]
fn the_legacy_plugin_is_built_against_the_released_0_1_0() {
    let released = fs::read_to_string(root().join("wit/released/0.1.0.sig")).unwrap();
    assert_eq!(
        Signature::of_wit(&legacy_fixture()).unwrap().render(),
        released
    );
}

/// The host's 0.1 bindings (and the `legacy-0-1-4` test plugin) are generated from the copy of
/// 0.1.4 in `wit/released/0.1/`: it must be exactly what was released as 0.1.4.
#[test]
fn the_copy_of_0_1_the_host_adapts_is_the_released_0_1_4() {
    let released = fs::read_to_string(root().join("wit/released/0.1.4.sig")).unwrap();
    assert_eq!(
        Signature::of_wit(&root().join("wit/released/0.1"))
            .unwrap()
            .render(),
        released
    );
}

// The checker's own tests edit the legacy plugin's copy of 0.1.0 and check it against the
// released 0.1.0: both are frozen, so these tests never trip over the contract's own growth.

fn legacy_fixture() -> PathBuf {
    root().join("tests/plugins/legacy/wit/plugin.wit")
}

fn released_0_1_0() -> Signature {
    Signature::parse(&fs::read_to_string(root().join("wit/released/0.1.0.sig")).unwrap()).unwrap()
}

/// The signature of 0.1.0 with each `(from, to)` edit made to its text.
fn edited(edits: &[(&str, &str)]) -> Signature {
    let copy = tempfile::tempdir().unwrap();
    let mut text = fs::read_to_string(legacy_fixture()).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} is not in the 0.1.0 fixture");
        text = text.replacen(from, to, 1);
    }
    let path = copy.path().join("plugin.wit");
    fs::write(&path, text).unwrap();
    Signature::of_wit(&path).unwrap()
}

/// What the edited 0.1.0 breaks of the released 0.1.0.
fn breaks(edits: &[(&str, &str)]) -> Vec<String> {
    edited(edits).breaks(&released_0_1_0())
}

#[test]
fn a_changed_function_is_caught() {
    let problems = breaks(&[(
        "write: func(level: level, message: string, fields: list<tuple<string, string>>);",
        "write: func(level: level, message: string);",
    )]);
    assert_eq!(
        problems,
        [
            "lost or changed: interface log: func write(level: level, message: string, \
             fields: list<tuple<string, string>>)"
        ]
    );
}

#[test]
fn a_changed_type_outside_types_is_caught() {
    let problems = breaks(&[("        warn,\n", "")]);
    assert_eq!(
        problems,
        ["lost or changed: interface log: enum level { trace, debug, info, warn, error }"]
    );
}

#[test]
fn a_removed_interface_is_caught() {
    let fixture = fs::read_to_string(legacy_fixture()).unwrap();
    let start = fixture.find("/// Structured log lines").unwrap();
    let end = fixture.find("/// A wasmbot plugin").unwrap();
    let problems = breaks(&[(&fixture[start..end], ""), ("    import log;\n", "")]);
    assert_eq!(
        problems,
        [
            "lost or changed: interface log",
            "lost or changed: interface log: enum level { trace, debug, info, warn, error }",
            "lost or changed: interface log: func write(level: level, message: string, \
             fields: list<tuple<string, string>>)",
            "lost or changed: world plugin: import interface log",
        ]
    );
}

#[test]
fn a_case_added_to_types_is_caught() {
    let problems = breaks(&[("        console,\n", "        console,\n        slack,\n")]);
    assert_eq!(
        problems,
        [
            "lost or changed: interface types: enum platform { discord, whatsapp, console }",
            "added where nothing may be: interface types: enum platform { discord, whatsapp, \
             console, slack }",
        ]
    );
}

#[test]
fn an_added_export_is_caught() {
    let problems = breaks(&[(
        "    export describe: func() -> manifest;",
        "    export describe: func() -> manifest;\n    export stop: func();",
    )]);
    assert_eq!(
        problems,
        ["added where nothing may be: world plugin: export func stop()"]
    );
}

#[test]
fn added_functions_and_interfaces_break_nothing() {
    let added = edited(&[
        ("interface log {", "interface log {\n    flush: func();\n"),
        (
            "/// A wasmbot plugin",
            "interface audit {\n    note: func(text: string);\n}\n\n/// A wasmbot plugin",
        ),
        ("    import log;", "    import log;\n    import audit;"),
    ]);
    for item in [
        "interface log: func flush()",
        "interface audit: func note(text: string)",
        "world plugin: import interface audit",
    ] {
        assert!(added.items.contains(item), "{item}");
    }
    assert_eq!(added.breaks(&released_0_1_0()), Vec::<String>::new());
}
