//! Installing packages into a running bot: every operation verifies before it records,
//! records before it serves, and tells the other hosts, which load the same bytes from the
//! database and verify them themselves.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{
    bindings::{self, types::Manifest},
    db::DbError,
    packages::{
        CommandSummary, FetchError, Index, IndexError, Package, PackageError, PackageManifest,
        PackageStore, PackagesConfig, Registries, SignatureError, VersionRecord, signing,
    },
    redis::Redis,
    runtime::{Asks, LoadError, Packaged, Plugin, Registry},
    task::Background,
};

/// The pub/sub channel on which a host says the install record changed.
const CHANNEL: &str = "wasmbot:packages";

/// What an install is asked to install.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Install {
    /// `NAME[@VERSION]` from an index, or `REGISTRY/REPO[:TAG|@DIGEST]`.
    pub source: String,
    /// Accept a package with no signature (recorded, and shown in `list`).
    pub allow_unsigned: bool,
    /// Approve what it asks for now (the operator has seen it).
    pub approve: bool,
}

/// Where a version stands after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// It serves.
    Active,
    /// It waits for the operator's approval; the previous version (if any) serves.
    Pending,
    /// It was already serving.
    Unchanged,
}

/// What an install, update, approval or rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The plugin.
    pub plugin: String,
    /// The version concerned.
    pub version: String,
    /// Its digest.
    pub digest: String,
    /// Where it stands.
    pub state: State,
    /// Everything it asks for.
    pub asks: Asks,
    /// What it asks for that the serving version was not granted.
    pub new_asks: Asks,
}

/// One line of `update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The plugin.
    pub plugin: String,
    /// What happened or would happen, in words.
    pub status: String,
    /// The version it applied or made pending, if any.
    pub outcome: Option<Outcome>,
}

/// One installed plugin, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The plugin.
    pub plugin: String,
    /// The serving version (none before a first approval).
    pub active: Option<VersionRecord>,
    /// The version waiting for approval.
    pub pending: Option<Pending>,
    /// Whether `update` leaves it.
    pub pinned: bool,
    /// Every version kept, the newest first.
    pub versions: Vec<String>,
}

/// A version waiting for the operator's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The version.
    pub version: VersionRecord,
    /// What it asks for beyond what the serving version was granted.
    pub new_asks: Asks,
}

/// Why an operation on a package was refused: one line naming the package and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{package}: {reason}")]
pub struct Refusal {
    /// The package (name, and version and digest when known).
    pub package: String,
    /// Why.
    pub reason: Reason,
}

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// No such plugin, version or index entry.
    #[error("not found: {0}")]
    NotFound(String),
    /// The operation does not apply in this state (nothing pending, nothing to roll back to).
    #[error("{0}")]
    Conflict(String),
    /// A plugin of that name (or one of its commands) is already served from elsewhere.
    #[error("{0}")]
    Clash(String),
    /// The registry could not be reached or served something wrong.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// An index could not be read or did not verify.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The package's bytes are not sound.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// Its signature is missing, bad or by a key not trusted for it.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Its contract version is not one this host runs.
    #[error("built against wasmbot:plugin@{0}, which this host does not run")]
    Contract(String),
    /// The component imports capabilities its manifest does not declare.
    #[error("the component imports {0} without declaring it in its manifest")]
    Undeclared(String),
    /// The package's manifest says something else than the component.
    #[error("its manifest layer does not match the component: {0}")]
    Mismatch(String),
    /// The component does not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The database failed.
    #[error("the install record: {0}")]
    Database(#[from] DbError),
}

/// A package verified and compiled, ready to serve.
struct Verified {
    plugin: Plugin,
    signer: String,
    asks: Asks,
}

/// Where a package came from.
struct Origin {
    /// An index's name, the reference as given, or `file`.
    source: String,
    /// `REGISTRY/REPO:TAG` to look for updates at; empty for a file.
    reference: String,
}

/// The packages of one host: operations, and keeping this host in step with the record.
pub struct Packages {
    config: PackagesConfig,
    registry: Arc<Registry>,
    store: PackageStore,
    registries: Registries,
    redis: Option<Arc<Redis>>,
    /// The digest each packaged plugin serves at on this host.
    loaded: Mutex<HashMap<String, String>>,
    /// The digest each plugin failed to load at here, so a poll does not log it again.
    failed: Mutex<HashMap<String, String>>,
    /// One operation at a time on this host.
    ops: tokio::sync::Mutex<()>,
    /// Without Redis: how often to read the record.
    poll: Option<Duration>,
    follower: Background,
}

impl Packages {
    /// The packages service of a host serving `registry`, recording in `store`; Redis, when
    /// configured, tells the other hosts of changes.
    pub fn new(
        config: PackagesConfig,
        registry: Arc<Registry>,
        store: PackageStore,
        redis: Option<Arc<Redis>>,
        poll: Option<Duration>,
    ) -> Arc<Self> {
        Arc::new(Self {
            registries: Registries::new(&config.insecure_registries),
            config,
            registry,
            store,
            redis,
            loaded: Mutex::default(),
            failed: Mutex::default(),
            ops: tokio::sync::Mutex::new(()),
            poll,
            follower: Background::default(),
        })
    }

    /// Installs from an index or a registry.
    pub async fn install(&self, request: &Install) -> Result<Outcome, Refusal> {
        let _op = self.ops.lock().await;
        let installed = match self.fetch(&request.source).await {
            Ok((package, origin)) => {
                self.offer(package, origin, request.allow_unsigned, request.approve)
                    .await
            }
            Err(reason) => Err(refusal(&request.source, reason)),
        };
        logged(installed)
    }

    /// Installs an image-layout archive (`wasmbot plugin install FILE`).
    pub async fn install_archive(
        &self,
        archive: &[u8],
        allow_unsigned: bool,
        approve: bool,
    ) -> Result<Outcome, Refusal> {
        let _op = self.ops.lock().await;
        let package = match Package::from_archive(archive) {
            Ok(package) => package,
            Err(error) => return logged(Err(refusal("the archive", error.into()))),
        };
        let origin = Origin {
            source: "file".into(),
            reference: String::new(),
        };
        logged(self.offer(package, origin, allow_unsigned, approve).await)
    }

    async fn fetch(&self, source: &str) -> Result<(Package, Origin), Reason> {
        if source.contains('/') {
            let reference = Registries::reference(source)?;
            let digest = self.registries.resolve(&reference).await?;
            let package = self.registries.pull(&reference, Some(&digest)).await?;
            let tagged = match reference.digest() {
                Some(_) => String::new(),
                None => reference.whole(),
            };
            let origin = Origin {
                source: source.to_owned(),
                reference: tagged,
            };
            return Ok((package, origin));
        }
        let (name, version) = match source.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (source, None),
        };
        for index_source in &self.config.indexes {
            let index = Index::fetch(index_source).await?;
            let Some(plugin) = index.plugin(name) else {
                continue;
            };
            let indexed = plugin.version(version).ok_or_else(|| {
                Reason::NotFound(format!(
                    "index {} has no version {} of {name}",
                    index_source.name,
                    version.unwrap_or("?")
                ))
            })?;
            let reference = Registries::reference(&indexed.reference)?;
            let package = self
                .registries
                .pull(&reference, Some(&indexed.digest))
                .await?;
            let origin = Origin {
                source: index_source.name.clone(),
                reference: indexed.reference.clone(),
            };
            return Ok((package, origin));
        }
        Err(Reason::NotFound(format!(
            "no configured index lists {name} (indexes: {})",
            self.index_names()
        )))
    }

    fn index_names(&self) -> String {
        let names: Vec<&str> = self
            .config
            .indexes
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        match names.is_empty() {
            true => "none configured".into(),
            false => names.join(", "),
        }
    }

    /// Verifies `package` and records it: serving at once when it asks for nothing new (or
    /// `approve`), else pending.
    async fn offer(
        &self,
        package: Package,
        origin: Origin,
        allow_unsigned: bool,
        approve: bool,
    ) -> Result<Outcome, Refusal> {
        let meta = package.plugin().clone();
        let refuse = |reason: Reason| Refusal {
            package: describe(&meta.name, &meta.version, package.digest()),
            reason,
        };
        let row = self
            .store
            .install(&meta.name)
            .await
            .map_err(|e| refuse(e.into()))?;
        let active = match row.as_ref().filter(|row| !row.active.is_empty()) {
            Some(row) => self
                .store
                .version(&meta.name, &row.active)
                .await
                .map_err(|e| refuse(e.into()))?,
            None => None,
        };
        if active
            .as_ref()
            .is_some_and(|a| a.digest == package.digest())
        {
            return Ok(Outcome {
                plugin: meta.name.clone(),
                version: meta.version.clone(),
                digest: package.digest().to_owned(),
                state: State::Unchanged,
                asks: asks_of(&meta),
                new_asks: Asks::default(),
            });
        }
        let verified = self
            .verify(&package, allow_unsigned, &origin.source)
            .await
            .map_err(refuse)?;
        self.registry
            .conflicts(&verified.plugin)
            .map_err(|e| refuse(Reason::Clash(e.to_string())))?;
        let new_asks = match &active {
            Some(active) => verified.asks.beyond(&active.asks),
            None => verified.asks.clone(),
        };
        // A version the operator approved before (rolled back from, say) needs no new
        // approval: grants are recorded with the digest.
        let approved_before = self
            .store
            .version(&meta.name, package.digest())
            .await
            .map_err(|e| refuse(e.into()))?
            .is_some_and(|v| v.approved);
        let applies = approve || approved_before || (active.is_some() && new_asks.is_empty());
        let record = VersionRecord {
            name: meta.name.clone(),
            digest: package.digest().to_owned(),
            version: meta.version.clone(),
            source: origin.source,
            reference: origin.reference,
            signer: verified.signer.clone(),
            asks: verified.asks.clone(),
            approved: applies,
            installed_ms: crate::db::now_ms(),
        };
        self.store
            .put_version(&record, &package.to_archive())
            .await
            .map_err(|e| refuse(e.into()))?;
        let active_digest = active
            .as_ref()
            .map(|a| a.digest.clone())
            .unwrap_or_default();
        let state = if applies {
            self.store
                .approve(&record.name, &record.digest)
                .await
                .map_err(|e| refuse(e.into()))?;
            self.activate(&record, verified.plugin, &active_digest)
                .await
                .map_err(refuse)?;
            State::Active
        } else {
            self.store
                .set(&record.name, &active_digest, &record.digest)
                .await
                .map_err(|e| refuse(e.into()))?;
            tracing::info!(
                category = "packages.pending",
                plugin = %record.name,
                version = %record.version,
                digest = %record.digest,
                "package waits for approval: it asks for {new_asks}"
            );
            self.tell_others().await;
            State::Pending
        };
        Ok(Outcome {
            plugin: record.name,
            version: record.version,
            digest: record.digest,
            state,
            asks: record.asks,
            new_asks,
        })
    }

    /// Records `record` as serving and swaps it in here; on a failure here the record goes
    /// back to `previous`.
    async fn activate(
        &self,
        record: &VersionRecord,
        plugin: Plugin,
        previous: &str,
    ) -> Result<(), Reason> {
        self.store.set(&record.name, &record.digest, "").await?;
        if let Err(error) = self.registry.install_package(plugin).await {
            let _ = self.store.set(&record.name, previous, "").await;
            return Err(error.into());
        }
        self.loaded_now(&record.name, Some(&record.digest));
        tracing::info!(
            category = "packages.installed",
            plugin = %record.name,
            version = %record.version,
            digest = %record.digest,
            source = %record.source,
            signer = %signer_text(&record.signer),
            "package serving"
        );
        self.tell_others().await;
        Ok(())
    }

    /// Checks everything about a package before any of it runs, and compiles it.
    async fn verify(
        &self,
        package: &Package,
        allow_unsigned: bool,
        source: &str,
    ) -> Result<Verified, Reason> {
        let meta = package.plugin();
        let contract = semver::Version::parse(&meta.contract)
            .map_err(|_| Reason::Contract(meta.contract.clone()))?;
        if !bindings::accepts(&contract) {
            return Err(Reason::Contract(meta.contract.clone()));
        }
        let signer = match package.signature() {
            Some(signature) => signing::verify(
                &self.config.keys,
                &meta.name,
                &package.statement().to_bytes(),
                signature,
            )?,
            None if allow_unsigned => String::new(),
            None => return Err(SignatureError::Missing.into()),
        };
        let asks = asks_of(meta);
        let packaged = Packaged {
            asks: asks.clone(),
            digest: package.digest().to_owned(),
            source: source.to_owned(),
        };
        let plugin = self
            .registry
            .prepare_package(&meta.name, package.wasm().to_vec(), packaged)
            .await?;
        let described = manifest_of(plugin.manifest(), meta.http_hosts.clone(), &meta.contract);
        if described.name != meta.name || described.version != meta.version {
            return Err(Reason::Mismatch(format!(
                "the package says {} {}, the component {} {}",
                meta.name, meta.version, described.name, described.version
            )));
        }
        let mut declared = meta.capabilities.clone();
        let mut described_caps = described.capabilities.clone();
        declared.sort();
        described_caps.sort();
        if declared != described_caps {
            return Err(Reason::Mismatch(format!(
                "capabilities [{}] in the package, [{}] in the component's manifest",
                declared.join(", "),
                described_caps.join(", ")
            )));
        }
        super::publish::check_imports(&plugin, meta)?;
        Ok(Verified {
            plugin,
            signer,
            asks,
        })
    }

    /// Approves the version of `name` waiting for approval, which then serves.
    pub async fn approve(&self, name: &str) -> Result<Outcome, Refusal> {
        let _op = self.ops.lock().await;
        let row = self.row(name).await?;
        if row.pending.is_empty() {
            return Err(refusal(
                name,
                Reason::Conflict("nothing waits for approval".into()),
            ));
        }
        logged(self.switch_to(name, &row.pending, &row.active).await)
    }

    /// Serves the version installed before the serving one again.
    pub async fn rollback(&self, name: &str) -> Result<Outcome, Refusal> {
        let _op = self.ops.lock().await;
        let row = self.row(name).await?;
        let versions = self
            .store
            .versions(name)
            .await
            .map_err(|e| refusal(name, e.into()))?;
        let current = versions.iter().find(|v| v.digest == row.active);
        let target = versions
            .iter()
            .filter(|v| v.approved && v.digest != row.active)
            .find(|v| current.is_none_or(|c| v.installed_ms <= c.installed_ms))
            .ok_or_else(|| {
                refusal(
                    name,
                    Reason::Conflict("no earlier version to roll back to".into()),
                )
            })?;
        logged(self.switch_to(name, &target.digest, &row.active).await)
    }

    /// Makes the recorded version `digest` of `name` serve (approving it).
    async fn switch_to(
        &self,
        name: &str,
        digest: &str,
        previous: &str,
    ) -> Result<Outcome, Refusal> {
        let (record, verified) = self
            .reload(name, digest)
            .await
            .map_err(|reason| refusal(name, reason))?;
        self.store
            .approve(name, digest)
            .await
            .map_err(|e| refusal(name, e.into()))?;
        self.activate(&record, verified.plugin, previous)
            .await
            .map_err(|reason| refusal(&describe(name, &record.version, digest), reason))?;
        Ok(Outcome {
            plugin: record.name,
            version: record.version,
            digest: record.digest,
            state: State::Active,
            asks: record.asks,
            new_asks: Asks::default(),
        })
    }

    /// A recorded version, verified again from its archive.
    async fn reload(&self, name: &str, digest: &str) -> Result<(VersionRecord, Verified), Reason> {
        let record = self
            .store
            .version(name, digest)
            .await?
            .ok_or_else(|| Reason::NotFound(format!("version {digest} of {name}")))?;
        let archive = self
            .store
            .archive(name, digest)
            .await?
            .ok_or_else(|| Reason::NotFound(format!("the archive of {digest}")))?;
        let package = Package::from_archive(&archive)?;
        if package.digest() != digest {
            return Err(PackageError::Digest {
                what: "the recorded archive".into(),
                expected: digest.to_owned(),
                actual: package.digest().to_owned(),
            }
            .into());
        }
        let verified = self
            .verify(&package, record.signer.is_empty(), &record.source)
            .await?;
        Ok((record, verified))
    }

    /// Pins (`update` leaves it) or unpins `name`.
    pub async fn pin(&self, name: &str, pinned: bool) -> Result<(), Refusal> {
        let _op = self.ops.lock().await;
        match self.store.pin(name, pinned).await {
            Ok(true) => {
                tracing::info!(plugin = name, pinned, "package pin changed");
                Ok(())
            }
            Ok(false) => Err(refusal(name, Reason::NotFound("not installed".into()))),
            Err(e) => Err(refusal(name, e.into())),
        }
    }

    /// Uninstalls `name` on every host; its versions are forgotten.
    pub async fn remove(&self, name: &str) -> Result<(), Refusal> {
        let _op = self.ops.lock().await;
        match self.store.remove(name).await {
            Ok(true) => {}
            Ok(false) => return Err(refusal(name, Reason::NotFound("not installed".into()))),
            Err(e) => return Err(refusal(name, e.into())),
        }
        self.registry.remove_package(name).await;
        self.loaded_now(name, None);
        // A removed plugin's timers go with it (an unloaded one keeps them).
        let timers = &self.registry.runtime().backends().schedule;
        let dropped = match timers {
            Some(timers) => timers.drop_plugin(name).await.unwrap_or_else(|error| {
                tracing::warn!(plugin = name, "its timers stay: {error}");
                0
            }),
            None => 0,
        };
        tracing::info!(
            category = "packages.removed",
            plugin = name,
            timers_dropped = dropped,
            "package removed"
        );
        self.tell_others().await;
        Ok(())
    }

    /// Looks for newer versions of every installed plugin (or `only` one), and applies those
    /// that ask for nothing new unless `check`.
    pub async fn update(
        &self,
        only: Option<&str>,
        check: bool,
    ) -> Result<Vec<UpdateReport>, Refusal> {
        let rows = self
            .store
            .installs()
            .await
            .map_err(|e| refusal(only.unwrap_or("packages"), e.into()))?;
        if let Some(name) = only
            && !rows.iter().any(|r| r.name == name)
        {
            return Err(refusal(name, Reason::NotFound("not installed".into())));
        }
        let mut reports = Vec::new();
        for row in rows.iter().filter(|r| only.is_none_or(|n| n == r.name)) {
            let (status, outcome) = match logged(self.update_one(row, check).await) {
                Ok(done) => done,
                Err(refused) => (refused.to_string(), None),
            };
            reports.push(UpdateReport {
                plugin: row.name.clone(),
                status,
                outcome,
            });
        }
        Ok(reports)
    }

    async fn update_one(
        &self,
        row: &crate::packages::InstallRow,
        check: bool,
    ) -> Result<(String, Option<Outcome>), Refusal> {
        let name = row.name.as_str();
        let Some(active) = self
            .store
            .version(name, &row.active)
            .await
            .map_err(|e| refusal(name, e.into()))?
        else {
            return Ok(("waits for its first approval".into(), None));
        };
        let index = self.config.indexes.iter().find(|i| i.name == active.source);
        let (reference, digest) = if let Some(index) = index {
            let index = Index::fetch(index)
                .await
                .map_err(|e| refusal(name, e.into()))?;
            let Some(newest) = index.plugin(name).and_then(|p| p.version(None)) else {
                return Ok((format!("no longer listed by {}", active.source), None));
            };
            (newest.reference.clone(), newest.digest.clone())
        } else if !active.reference.is_empty() {
            let reference =
                Registries::reference(&active.reference).map_err(|e| refusal(name, e.into()))?;
            let digest = self
                .registries
                .resolve(&reference)
                .await
                .map_err(|e| refusal(name, e.into()))?;
            (active.reference.clone(), digest)
        } else {
            return Ok((
                "installed from a file or a digest: nothing to follow".into(),
                None,
            ));
        };
        if digest == active.digest {
            return Ok((format!("{} is the newest", active.version), None));
        }
        if digest == row.pending {
            return Ok(("the newest waits for approval".into(), None));
        }
        if row.pinned {
            return Ok((
                format!(
                    "pinned at {} ({}); {reference} now points to {digest}: not updated",
                    active.version, active.digest
                ),
                None,
            ));
        }
        if check {
            return Ok((
                format!("{reference} ({digest}) is newer than {}", active.version),
                None,
            ));
        }
        let _op = self.ops.lock().await;
        let parsed = Registries::reference(&reference).map_err(|e| refusal(name, e.into()))?;
        let package = self
            .registries
            .pull(&parsed, Some(&digest))
            .await
            .map_err(|e| refusal(name, e.into()))?;
        let origin = Origin {
            source: active.source.clone(),
            reference: active.reference.clone(),
        };
        let outcome = self
            .offer(package, origin, active.signer.is_empty(), false)
            .await?;
        let status = match outcome.state {
            State::Active => format!("updated to {}", outcome.version),
            State::Pending => format!(
                "{} waits for approval: it asks for {}",
                outcome.version, outcome.new_asks
            ),
            State::Unchanged => format!("{} is the newest", outcome.version),
        };
        Ok((status, Some(outcome)))
    }

    /// Every installed plugin, with pending approvals.
    pub async fn list(&self) -> Result<Vec<Listed>, Refusal> {
        let rows = self
            .store
            .installs()
            .await
            .map_err(|e| refusal("packages", e.into()))?;
        let mut listed = Vec::new();
        for row in rows {
            let versions = self
                .store
                .versions(&row.name)
                .await
                .map_err(|e| refusal(&row.name, e.into()))?;
            let find = |digest: &str| versions.iter().find(|v| v.digest == digest).cloned();
            let active = find(&row.active);
            let pending = find(&row.pending).map(|pending| {
                let approved = active.as_ref().map(|a| a.asks.clone()).unwrap_or_default();
                let new_asks = pending.asks.beyond(&approved);
                Pending {
                    version: pending,
                    new_asks,
                }
            });
            listed.push(Listed {
                plugin: row.name.clone(),
                active,
                pending,
                pinned: row.pinned,
                versions: versions.iter().map(|v| v.version.clone()).collect(),
            });
        }
        Ok(listed)
    }

    /// Plugins of the configured indexes whose name or description contains `query`.
    pub async fn search(
        &self,
        query: &str,
    ) -> Result<Vec<(String, crate::packages::IndexedPlugin)>, Refusal> {
        let query = query.to_lowercase();
        let mut found = Vec::new();
        for source in &self.config.indexes {
            let index = Index::fetch(source)
                .await
                .map_err(|e| refusal(&source.name, e.into()))?;
            for plugin in index.plugins {
                if plugin.name.contains(&query)
                    || plugin.description.to_lowercase().contains(&query)
                {
                    found.push((source.name.clone(), plugin));
                }
            }
        }
        Ok(found)
    }

    /// Brings this host in step with the install record: loads what it should serve and
    /// does not, unloads what it should not. Quiet when nothing changed.
    pub async fn sync(&self) -> Result<(), DbError> {
        let _op = self.ops.lock().await;
        let rows = self.store.installs().await?;
        let wanted: BTreeMap<String, String> = rows
            .into_iter()
            .filter(|r| !r.active.is_empty())
            .map(|r| (r.name, r.active))
            .collect();
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, digest) in &wanted {
            if loaded.get(name) == Some(digest) {
                continue;
            }
            let failed_before = {
                let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                failed.get(name) == Some(digest)
            };
            if failed_before {
                continue;
            }
            let result = match self.reload(name, digest).await {
                Ok((record, verified)) => {
                    match self.registry.install_package(verified.plugin).await {
                        Ok(_) => Ok(record),
                        Err(error) => Err(error.into()),
                    }
                }
                Err(reason) => Err(reason),
            };
            match result {
                Ok(record) => {
                    self.loaded_now(name, Some(digest));
                    tracing::info!(
                        category = "packages.installed",
                        plugin = %name,
                        version = %record.version,
                        digest = %digest,
                        "package serving (from the install record)"
                    );
                }
                Err(reason) => {
                    self.failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), digest.clone());
                    tracing::error!(
                        category = "packages.refused",
                        "package {name} ({digest}) not served on this host: {reason}"
                    );
                }
            }
        }
        for name in loaded.keys().filter(|name| !wanted.contains_key(*name)) {
            self.registry.remove_package(name).await;
            self.loaded_now(name, None);
        }
        Ok(())
    }

    fn loaded_now(&self, name: &str, digest: Option<&str>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        match digest {
            Some(digest) => loaded.insert(name.to_owned(), digest.to_owned()),
            None => loaded.remove(name),
        };
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Tells the other hosts the record changed (they read it themselves).
    async fn tell_others(&self) {
        let Some(redis) = &self.redis else {
            return;
        };
        let published = async {
            let mut connection = redis.try_connection().await.map_err(|e| e.to_string())?;
            redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg("changed")
                .query_async::<i64>(&mut connection)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(error) = published.await {
            tracing::warn!(
                category = "packages.propagation",
                "other hosts were not told of the package change ({error}); they follow it at their next start or resubscription"
            );
        }
    }

    /// Loads what the record says, then follows changes made on other hosts: through Redis
    /// pub/sub when configured, else by reading the record every `poll` (none: never).
    pub async fn start(self: &Arc<Self>) {
        if let Err(error) = self.sync().await {
            tracing::error!("installed packages not loaded: {error}");
        }
        let me = Arc::clone(self);
        let task = match (&self.redis, self.poll) {
            (Some(redis), _) => {
                let redis = Arc::clone(redis);
                tokio::spawn(async move { me.follow(redis).await })
            }
            (None, Some(every)) => tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    if let Err(error) = me.sync().await {
                        error.log_quietly_if_outage("installed packages not followed");
                    }
                }
            }),
            (None, None) => return,
        };
        self.follower.run(task);
    }

    async fn follow(self: Arc<Self>, redis: Arc<Redis>) {
        loop {
            redis.until_up().await;
            let subscribed = async {
                let mut pubsub = redis.client().get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let mut pubsub = match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(error)) => {
                    redis.lost(&format!("subscribing to package changes: {error}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(_) => {
                    redis.lost(&"subscribing to package changes timed out");
                    continue;
                }
            };
            // What changed while not subscribed.
            if let Err(error) = self.sync().await {
                error.log_quietly_if_outage("installed packages not followed");
            }
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                if let Err(error) = self.sync().await {
                    error.log_quietly_if_outage("installed packages not followed");
                }
            }
            drop(messages);
            redis.lost(&"the package subscription was closed");
        }
    }

    /// Stops following other hosts.
    pub fn stop(&self) {
        self.follower.stop();
    }

    async fn row(&self, name: &str) -> Result<crate::packages::InstallRow, Refusal> {
        self.store
            .install(name)
            .await
            .map_err(|e| refusal(name, e.into()))?
            .ok_or_else(|| refusal(name, Reason::NotFound("not installed".into())))
    }
}

/// The package manifest a plugin's own `describe` makes, with the HTTP hosts the publisher
/// asks for and the contract it was built against.
pub fn manifest_of(
    manifest: &Manifest,
    http_hosts: Vec<String>,
    contract: &str,
) -> PackageManifest {
    PackageManifest {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        description: manifest.description.clone(),
        commands: manifest
            .commands
            .iter()
            .map(|c| CommandSummary {
                name: c.name.clone(),
                description: c.description.clone(),
                aliases: c.aliases.clone(),
            })
            .collect(),
        events: manifest
            .events
            .iter()
            .map(|e| format!("{e:?}").to_lowercase())
            .collect(),
        capabilities: manifest.capabilities.clone(),
        http_hosts,
        contract: contract.to_owned(),
    }
}

fn asks_of(meta: &PackageManifest) -> Asks {
    Asks {
        capabilities: meta.capabilities.clone(),
        http_hosts: meta.http_hosts.clone(),
    }
}

/// A refusal is logged once, with the package and the reason, where the operation ends.
fn logged<T>(result: Result<T, Refusal>) -> Result<T, Refusal> {
    if let Err(refusal) = &result {
        tracing::warn!(category = "packages.refused", "package refused: {refusal}");
    }
    result
}

fn refusal(package: &str, reason: Reason) -> Refusal {
    Refusal {
        package: package.to_owned(),
        reason,
    }
}

fn describe(name: &str, version: &str, digest: &str) -> String {
    let short = digest.get(..19).unwrap_or(digest);
    format!("{name} {version} ({short}…)")
}

fn signer_text(signer: &str) -> &str {
    match signer {
        "" => "unsigned",
        key => key,
    }
}
