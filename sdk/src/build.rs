//! Builds plugin crates for `wasm32-wasip2`, from build tooling or from tests.
//!
//! ```no_run
//! use wasmbot_sdk::build::PluginBuild;
//!
//! let wasm = PluginBuild::new("path/to/workspace")
//!     .package("my-plugin")
//!     .run()
//!     .expect("plugin builds");
//! println!("built {}", wasm[0].display());
//! ```

use std::{
    env, fmt, io,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why a plugin build failed.
#[derive(Debug)]
pub enum BuildError {
    /// A tool (cargo, rustc, rustup) could not be started.
    Spawn(&'static str, io::Error),
    /// A tool ran and failed; the text says which and why.
    Failed(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Spawn(tool, error) => write!(f, "could not run {tool}: {error}"),
            BuildError::Failed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for BuildError {}

/// A `cargo build --target wasm32-wasip2` of some packages of a workspace.
#[derive(Debug, Clone)]
pub struct PluginBuild {
    workspace: PathBuf,
    packages: Vec<String>,
    profile: String,
}

impl PluginBuild {
    /// A build in the workspace (or package) whose `Cargo.toml` is in `workspace`.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        Self {
            workspace: workspace.into(),
            packages: Vec::new(),
            profile: "release".to_owned(),
        }
    }

    /// Adds a package to build (a crate with `crate-type = ["cdylib"]`).
    pub fn package(mut self, name: impl Into<String>) -> Self {
        self.packages.push(name.into());
        self
    }

    /// The cargo profile to build with; `release` by default.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = profile.into();
        self
    }

    /// Installs the target when missing, builds, and returns the `.wasm` of each package in
    /// the order they were added. Cargo's diagnostics go to this process's stderr.
    pub fn run(&self) -> Result<Vec<PathBuf>, BuildError> {
        ensure_target()?;
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = Command::new(cargo);
        command
            .current_dir(&self.workspace)
            .args([
                "build",
                "--quiet",
                "--message-format=json-render-diagnostics",
            ])
            .args(["--target", TARGET])
            .args(["--profile", &self.profile])
            .stderr(Stdio::inherit());
        for package in &self.packages {
            command.args(["--package", package]);
        }
        let output = command
            .output()
            .map_err(|error| BuildError::Spawn("cargo build", error))?;
        if !output.status.success() {
            return Err(BuildError::Failed(format!(
                "cargo build failed ({})",
                output.status
            )));
        }
        // Cargo says where each artifact landed: no guessing at target dirs or lib names.
        let built = wasm_artifacts(&String::from_utf8_lossy(&output.stdout));
        self.packages
            .iter()
            .map(|package| {
                let lib = package.replace('-', "_");
                built
                    .iter()
                    .find(|(target, _)| *target == lib || target == package)
                    .map(|(_, path)| path.clone())
                    .ok_or_else(|| {
                        BuildError::Failed(format!(
                            "cargo built no .wasm for {package}: is it a cdylib?"
                        ))
                    })
            })
            .collect()
    }
}

/// `(target name, .wasm path)` of each artifact in cargo's JSON messages.
fn wasm_artifacts(messages: &str) -> Vec<(String, PathBuf)> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| {
            let target = message["target"]["name"].as_str()?.to_owned();
            let wasm = message["filenames"]
                .as_array()?
                .iter()
                .filter_map(|file| file.as_str())
                .find(|file| file.ends_with(".wasm"))?;
            Some((target, PathBuf::from(wasm)))
        })
        .collect()
}

/// Adds the `wasm32-wasip2` target through rustup when the toolchain lacks it.
pub fn ensure_target() -> Result<(), BuildError> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|error| BuildError::Spawn("rustc", error))?;
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && has_std(Path::new(&libdir)) {
        return Ok(());
    }
    run_tool(
        Command::new("rustup").args(["target", "add", TARGET]),
        "rustup target add",
    )
}

fn has_std(libdir: &Path) -> bool {
    libdir
        .read_dir()
        .map(|mut entries| {
            entries.any(|entry| {
                entry.is_ok_and(|entry| entry.file_name().to_string_lossy().starts_with("libstd-"))
            })
        })
        .unwrap_or(false)
}

fn run_tool(command: &mut Command, what: &'static str) -> Result<(), BuildError> {
    let status = command
        .status()
        .map_err(|error| BuildError::Spawn(what, error))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(format!("{what} failed ({status})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_read_from_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"wit_bindgen"},"filenames":["/t/libwit_bindgen.rlib"]}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"ping_v2"},"filenames":["/t/ping_v2.wasm"]}"#,
            "\nnot json\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            wasm_artifacts(messages),
            vec![("ping_v2".to_owned(), PathBuf::from("/t/ping_v2.wasm"))]
        );
    }
}
