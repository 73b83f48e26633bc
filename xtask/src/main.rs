//! `cargo xtask run [ARGS]`: builds the first-party plugins for `wasm32-wasip2` (adding the
//! target when missing), puts them in `target/plugins`, and starts the bot on them with the
//! repository's `wasmbot.toml`; `ARGS` go to `wasmbot`.
//! `cargo xtask plugins`: only builds them.
//! `cargo xtask wit-freeze [PATH]`: releases the contract in `wit/` (or the WIT package at
//! `PATH`): writes its signature to `wit/released/<version>.sig`, unless it breaks a released
//! version of its series or that version was released with another signature.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use wasmbot_sdk::build::PluginBuild;

mod signature;

use signature::Signature;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => build_plugins().and_then(|dir| run(&dir, &args[1..])),
        Some("plugins") => build_plugins().map(|dir| println!("plugins in {}", dir.display())),
        Some("wit-freeze") => freeze(args.get(1).map(PathBuf::from)),
        _ => Err(
            "usage: cargo xtask run [wasmbot args...] | cargo xtask plugins \
             | cargo xtask wit-freeze [PATH]"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// Builds every crate in `plugins/` and copies the results into `target/plugins`.
fn build_plugins() -> Result<PathBuf, String> {
    let root = root();
    let mut packages: Vec<String> = fs::read_dir(root.join("plugins"))
        .map_err(|e| format!("reading plugins/: {e}"))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    packages.sort();
    let build = packages
        .iter()
        .fold(PluginBuild::new(&root).profile("plugin"), |b, p| {
            b.package(p)
        });
    eprintln!("xtask: building plugins {}", packages.join(", "));
    let built = build.run().map_err(|e| e.to_string())?;

    let out = root.join("target").join("plugins");
    fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    for (package, wasm) in packages.iter().zip(built) {
        // Copy then rename, so a running bot's hot reload never reads half a file.
        let to = out.join(format!("{package}.wasm"));
        let partial = out.join(format!("{package}.wasm.partial"));
        fs::copy(&wasm, &partial)
            .and_then(|_| fs::rename(&partial, &to))
            .map_err(|e| format!("installing {}: {e}", to.display()))?;
    }
    Ok(out)
}

/// `--config wasmbot.toml` (the repository's), unless the arguments name a configuration.
fn default_config(args: &[String]) -> Vec<String> {
    let named = args.iter().any(|arg| arg.starts_with("--config"));
    match named || env::var_os("WASMBOT_CONFIG").is_some() {
        true => Vec::new(),
        false => vec!["--config".to_owned(), "wasmbot.toml".to_owned()],
    }
}

fn run(plugins: &Path, args: &[String]) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "run",
            "--quiet",
            "--package",
            "wasmbot-host",
            "--bin",
            "wasmbot",
            "--",
        ])
        .arg("--plugins-dir")
        .arg(plugins)
        .args(default_config(args))
        .args(args)
        .status()
        .map_err(|e| format!("starting cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("wasmbot exited with {status}"))
    }
}

/// Writes the signature of the WIT package at `path` (default `wit/`) to
/// `wit/released/<version>.sig`, after checking it against every released version.
fn freeze(path: Option<PathBuf>) -> Result<(), String> {
    let root = root();
    let path = path.unwrap_or_else(|| root.join("wit"));
    let signature = Signature::of_wit(&path)?;
    let released_dir = root.join("wit").join("released");
    let out = released_dir.join(format!("{}.sig", signature.version));
    let text = signature.render();
    // The same checks as host/tests/contract.rs, so a release that the test would reject is
    // never written in the first place.
    for released in released_signatures(&released_dir)? {
        if released.version == signature.version && released != signature {
            return Err(format!(
                "{} was released with another signature: a released version never changes, \
                 bump the package version in {}",
                released.version,
                path.display()
            ));
        }
        if !signature.is_series_of(&released) {
            continue;
        }
        let problems = signature.breaks(&released);
        if !problems.is_empty() {
            return Err(format!(
                "{}@{} breaks released {}:\n  {}",
                signature.package,
                signature.version,
                released.version,
                problems.join("\n  ")
            ));
        }
    }
    fs::create_dir_all(&released_dir)
        .map_err(|e| format!("creating {}: {e}", released_dir.display()))?;
    fs::write(&out, text).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!(
        "{}@{} frozen in {}",
        signature.package,
        signature.version,
        out.display()
    );
    Ok(())
}

/// Every `.sig` in `dir`; none when it does not exist yet.
fn released_signatures(dir: &Path) -> Result<Vec<Signature>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut signatures = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "sig") {
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            signatures
                .push(Signature::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
    }
    Ok(signatures)
}
