//! `wasmbot plugin ...`, `wasmbot key ...`, `wasmbot index ...`: the publisher's commands
//! work on files and registries; the operator's ask the running bot's admin API.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};
use wasmbot::{
    capabilities::Backends,
    config::Config,
    http::client::Admin,
    packages::{self, Index, Package, Registries},
    runtime::{Asks, Registry},
};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Package a component: PATH.wasm → NAME-VERSION.tar (an OCI image-layout archive) and
    /// NAME-VERSION.statement.json (what a signature covers).
    Package {
        /// The component.
        wasm: PathBuf,
        /// A host its `http` capability asks to reach (repeat for several).
        #[arg(long = "http-host")]
        http_hosts: Vec<String>,
        /// The archive to write [default: NAME-VERSION.tar here].
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Sign a package archive in place, with a key of `wasmbot key generate`, or attach a
    /// signature made by `minisign -Sm NAME-VERSION.statement.json`.
    Sign {
        /// The archive.
        package: PathBuf,
        /// The secret key file.
        #[arg(long, conflicts_with = "signature")]
        key: Option<PathBuf>,
        /// An environment variable holding the key's password, if it has one.
        #[arg(long)]
        password_env: Option<String>,
        /// A minisign signature of the package's statement.
        #[arg(long)]
        signature: Option<PathBuf>,
    },
    /// Push a package archive to a registry: REGISTRY/REPO[:TAG] (the tag defaults to the
    /// plugin's version).
    Publish {
        /// The archive.
        package: PathBuf,
        /// Where to.
        reference: String,
        /// Speak plain HTTP to that registry (a registry on loopback).
        #[arg(long)]
        insecure: bool,
    },
    /// Search the configured indexes.
    Search {
        /// Words of a name or a description.
        #[arg(default_value = "")]
        query: String,
    },
    /// What an index says of a plugin, and what is installed of it.
    Info {
        /// The plugin.
        name: String,
    },
    /// Install NAME[@VERSION] from an index, REGISTRY/REPO[:TAG], or an archive file, into
    /// the running bot.
    Install {
        /// What to install.
        source: String,
        /// Accept a package with no signature.
        #[arg(long)]
        allow_unsigned: bool,
        /// Approve what it asks for without asking.
        #[arg(long, short)]
        yes: bool,
    },
    /// The installed plugins, with versions waiting for approval.
    List,
    /// Apply newer versions that ask for nothing new; `--check` only tells.
    Update {
        /// Only this plugin.
        name: Option<String>,
        /// Tell, change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Keep a plugin at its version: `update` leaves it.
    Pin {
        /// The plugin.
        name: String,
    },
    /// Let `update` move a plugin again.
    Unpin {
        /// The plugin.
        name: String,
    },
    /// Serve the version installed before the serving one.
    Rollback {
        /// The plugin.
        name: String,
    },
    /// Uninstall a plugin from every host.
    Remove {
        /// The plugin.
        name: String,
    },
    /// Approve what a pending version asks for; it serves then.
    Approve {
        /// The plugin.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// A new publisher key pair: NAME.key (secret) and NAME.pub (what operators trust).
    Generate {
        /// The files' name.
        #[arg(default_value = "wasmbot")]
        name: PathBuf,
        /// An environment variable holding a password to encrypt the secret key with.
        #[arg(long)]
        password_env: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Build a signed index of published packages: OUT and OUT.minisig.
    Build {
        /// The packages' references (REGISTRY/REPO:TAG).
        references: Vec<String>,
        /// The secret key that signs the index.
        #[arg(long)]
        key: PathBuf,
        /// An environment variable holding the key's password, if it has one.
        #[arg(long)]
        password_env: Option<String>,
        /// The index to write (and to add to, when it exists).
        #[arg(long, short, default_value = "index.json")]
        out: PathBuf,
        /// Speak plain HTTP to these references' registries.
        #[arg(long)]
        insecure: bool,
    },
}

pub async fn plugin(
    config: &Config,
    command: PluginCommand,
    admin_url: String,
) -> anyhow::Result<()> {
    let admin = || Admin::new(&admin_url, &config.admin.token);
    match command {
        PluginCommand::Package {
            wasm,
            http_hosts,
            out,
        } => {
            let bytes = read(&wasm)?;
            let registry = Registry::new(config.build_runtime(Backends::default())?);
            let package = packages::package(&registry, bytes, http_hosts)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", wasm.display()))?;
            let meta = package.plugin();
            let out = out.unwrap_or_else(|| format!("{}-{}.tar", meta.name, meta.version).into());
            write(&out, &package.to_archive())?;
            let statement = out.with_extension("statement.json");
            write(&statement, &package.statement().to_bytes())?;
            println!("{} {} packaged: {}", meta.name, meta.version, out.display());
            println!("  digest {} (unsigned)", package.digest());
            let asks = Asks {
                capabilities: meta.capabilities.clone(),
                http_hosts: meta.http_hosts.clone(),
            };
            println!("  asks for: {asks}");
            println!(
                "  sign it: wasmbot plugin sign {} --key KEY (or minisign -Sm {})",
                out.display(),
                statement.display()
            );
            Ok(())
        }
        PluginCommand::Sign {
            package,
            key,
            password_env,
            signature,
        } => {
            let unsigned = Package::from_archive(&read(&package)?)?;
            let signature = match (key, signature) {
                (Some(key), _) => {
                    let secret = String::from_utf8(read(&key)?)?;
                    packages::sign_statement(
                        &secret,
                        password(&password_env)?,
                        &unsigned.statement(),
                    )?
                }
                (None, Some(file)) => String::from_utf8(read(&file)?)?,
                (None, None) => anyhow::bail!("give --key KEY or --signature FILE.minisig"),
            };
            let signed = unsigned.signed(signature)?;
            write(&package, &signed.to_archive())?;
            println!("{} signed: digest {}", package.display(), signed.digest());
            Ok(())
        }
        PluginCommand::Publish {
            package,
            reference,
            insecure,
        } => {
            let package = Package::from_archive(&read(&package)?)?;
            let registries = registries(config, insecure.then_some(reference.as_str()));
            let digest = registries.push(&package, &reference).await?;
            println!(
                "published {} {} to {reference}: {digest}",
                package.plugin().name,
                package.plugin().version
            );
            Ok(())
        }
        PluginCommand::Search { query } => {
            let answer = admin()?.get("/v1/plugins/search", &[("q", &query)]).await?;
            for found in array(&answer["plugins"]) {
                let plugin = &found["plugin"];
                let newest = array(&plugin["versions"])
                    .last()
                    .cloned()
                    .unwrap_or_default();
                println!(
                    "{} {} ({}): {}",
                    text(&plugin["name"]),
                    text(&newest["version"]),
                    text(&found["index"]),
                    text(&plugin["description"])
                );
            }
            Ok(())
        }
        PluginCommand::Info { name } => {
            let answer = admin()?.get(&format!("/v1/plugins/{name}"), &[]).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        PluginCommand::Install {
            source,
            allow_unsigned,
            yes,
        } => {
            let admin = admin()?;
            let file = Path::new(&source);
            let outcome = if file.is_file() {
                let query =
                    format!("/v1/plugins/archive?allow_unsigned={allow_unsigned}&approve={yes}");
                admin.upload(&query, read(file)?).await?
            } else {
                let body =
                    json!({ "source": source, "allow_unsigned": allow_unsigned, "approve": yes });
                admin.post("/v1/plugins", body).await?
            };
            print_outcome(&outcome);
            if text(&outcome["state"]) == "pending" {
                let name = text(&outcome["plugin"]).to_owned();
                if confirm(&format!("approve what {name} asks for?"))? {
                    print_outcome(
                        &admin
                            .post(&format!("/v1/plugins/{name}/approve"), json!({}))
                            .await?,
                    );
                } else {
                    println!("left pending: `wasmbot plugin approve {name}` when you agree");
                }
            }
            Ok(())
        }
        PluginCommand::List => {
            let answer = admin()?.get("/v1/plugins", &[]).await?;
            for listed in array(&answer["plugins"]) {
                let active = &listed["active"];
                let serving = match active.is_null() {
                    true => "(none serving)".to_owned(),
                    false => format!(
                        "{} {} from {}, {}",
                        text(&active["version"]),
                        short(text(&active["digest"])),
                        text(&active["source"]),
                        match text(&active["signer"]) {
                            "" => "UNSIGNED".to_owned(),
                            key => format!("signed by {key}"),
                        }
                    ),
                };
                let pinned = if listed["pinned"].as_bool() == Some(true) {
                    ", pinned"
                } else {
                    ""
                };
                println!("{}: {serving}{pinned}", text(&listed["plugin"]));
                let pending = &listed["pending"];
                if !pending.is_null() {
                    println!(
                        "  pending approval: {} asks for {}",
                        text(&pending["version"]["version"]),
                        asks_value(&pending["new_asks"])
                    );
                }
            }
            Ok(())
        }
        PluginCommand::Update { name, check } => {
            let body = json!({ "plugin": name, "check": check });
            let answer = admin()?.post("/v1/plugins/update", body).await?;
            for report in array(&answer["plugins"]) {
                println!("{}: {}", text(&report["plugin"]), text(&report["status"]));
            }
            Ok(())
        }
        PluginCommand::Pin { name } => action(admin()?, &name, "pin").await,
        PluginCommand::Unpin { name } => action(admin()?, &name, "unpin").await,
        PluginCommand::Rollback { name } => action(admin()?, &name, "rollback").await,
        PluginCommand::Approve { name } => action(admin()?, &name, "approve").await,
        PluginCommand::Remove { name } => {
            admin()?.delete(&format!("/v1/plugins/{name}")).await?;
            println!("{name} removed from every host");
            Ok(())
        }
    }
}

pub fn key(command: KeyCommand) -> anyhow::Result<()> {
    let KeyCommand::Generate { name, password_env } = command;
    let (public, secret) = packages::generate(password(&password_env)?)?;
    let secret_file = name.with_extension("key");
    let public_file = name.with_extension("pub");
    anyhow::ensure!(
        !secret_file.exists(),
        "{} exists: not overwritten",
        secret_file.display()
    );
    write(&secret_file, secret.as_bytes())?;
    write(&public_file, public.as_bytes())?;
    println!("secret key: {} (keep it secret)", secret_file.display());
    println!(
        "public key: {} (operators add it to [[packages.keys]])",
        public_file.display()
    );
    Ok(())
}

pub async fn index(config: &Config, command: IndexCommand) -> anyhow::Result<()> {
    let IndexCommand::Build {
        references,
        key,
        password_env,
        out,
        insecure,
    } = command;
    let existing = match out.is_file() {
        true => {
            serde_json::from_slice(&read(&out)?).with_context(|| format!("{}", out.display()))?
        }
        false => Index::default(),
    };
    let insecure: Vec<&str> = match insecure {
        true => references.iter().map(String::as_str).collect(),
        false => Vec::new(),
    };
    let registries = registries_for(config, &insecure);
    let secret = String::from_utf8(read(&key)?)?;
    let (index, signature) = packages::build_index(
        &registries,
        existing,
        &references,
        &secret,
        password(&password_env)?,
    )
    .await?;
    write(&out, &index.to_bytes())?;
    let signature_file = PathBuf::from(format!("{}.minisig", out.display()));
    write(&signature_file, signature.as_bytes())?;
    println!(
        "{}: {} plugin(s), signed ({})",
        out.display(),
        index.plugins.len(),
        signature_file.display()
    );
    Ok(())
}

async fn action(admin: Admin, name: &str, verb: &str) -> anyhow::Result<()> {
    let answer = admin
        .post(&format!("/v1/plugins/{name}/{verb}"), json!({}))
        .await?;
    if answer.get("state").is_some() {
        print_outcome(&answer);
    } else {
        println!("{name}: {verb} done");
    }
    Ok(())
}

fn print_outcome(outcome: &Value) {
    let state = match text(&outcome["state"]) {
        "active" => "serving",
        "pending" => "waiting for approval",
        _ => "already serving",
    };
    println!(
        "{} {} ({}): {state}",
        text(&outcome["plugin"]),
        text(&outcome["version"]),
        short(text(&outcome["digest"]))
    );
    println!("  asks for: {}", asks_value(&outcome["asks"]));
    if text(&outcome["state"]) == "pending" {
        println!("  new: {}", asks_value(&outcome["new_asks"]));
    }
}

fn asks_value(value: &Value) -> String {
    serde_json::from_value::<Asks>(value.clone())
        .unwrap_or_default()
        .to_string()
}

/// Asks on the terminal; no terminal (a script) is a no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn registries(config: &Config, insecure: Option<&str>) -> Registries {
    registries_for(config, insecure.as_slice())
}

fn registries_for(config: &Config, insecure: &[&str]) -> Registries {
    let mut list = config.packages.insecure_registries.clone();
    for reference in insecure {
        if let Some(registry) = reference.split('/').next() {
            list.push(registry.to_owned());
        }
    }
    Registries::new(&list)
}

fn password(variable: &Option<String>) -> anyhow::Result<Option<String>> {
    variable
        .as_ref()
        .map(|name| std::env::var(name).with_context(|| format!("${name} is not set")))
        .transpose()
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
