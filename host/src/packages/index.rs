//! Indexes: static JSON documents a community keeps, listing its plugins' versions with
//! their references, digests and what they ask for, signed (minisign, detached, at
//! `URL.minisig`) so a mirror or a proxy cannot change what an operator installs.

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::packages::{Package, TrustedKey, signing};

/// An index an operator reads (`[[packages.indexes]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSource {
    /// What `source` says in `list`.
    pub name: String,
    /// `https://.../index.json`, or a file's path; its signature is at the same place with
    /// `.minisig` added.
    pub url: String,
    /// The minisign public key that signs it.
    pub key: String,
}

/// The index document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Its plugins, by name.
    pub plugins: Vec<IndexedPlugin>,
}

/// One plugin of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedPlugin {
    /// Its name.
    pub name: String,
    /// What it does (its newest version's words).
    #[serde(default)]
    pub description: String,
    /// Every published version.
    pub versions: Vec<IndexedVersion>,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedVersion {
    /// Its version.
    pub version: String,
    /// Where it is: `REGISTRY/REPO:TAG`.
    pub reference: String,
    /// Its OCI manifest's digest: what an install pins.
    pub digest: String,
    /// The capabilities it asks for.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The hosts it asks to reach.
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Its contract version.
    #[serde(default)]
    pub contract: String,
}

/// Why an index was not read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// It or its signature could not be fetched.
    #[error("index {index}: cannot fetch {what}: {error}")]
    Fetch {
        /// The index's name.
        index: String,
        /// The document or its signature.
        what: String,
        /// Why.
        error: String,
    },
    /// Its signature does not verify with the configured key.
    #[error("index {index}: bad signature ({error}); nothing of it is used")]
    Signature {
        /// The index's name.
        index: String,
        /// Why.
        error: String,
    },
    /// It is not an index.
    #[error("index {index}: not an index document: {error}")]
    Malformed {
        /// The index's name.
        index: String,
        /// Why.
        error: String,
    },
}

impl Index {
    /// Adds a published package (replacing the same version).
    pub fn add(&mut self, package: &Package, reference: &str) {
        let plugin = package.plugin();
        let version = IndexedVersion {
            version: plugin.version.clone(),
            reference: reference.to_owned(),
            digest: package.digest().to_owned(),
            capabilities: plugin.capabilities.clone(),
            http_hosts: plugin.http_hosts.clone(),
            contract: plugin.contract.clone(),
        };
        if !self.plugins.iter().any(|p| p.name == plugin.name) {
            self.plugins.push(IndexedPlugin {
                name: plugin.name.clone(),
                description: String::new(),
                versions: Vec::new(),
            });
        }
        for entry in self.plugins.iter_mut().filter(|p| p.name == plugin.name) {
            entry.versions.retain(|v| v.version != version.version);
            entry.versions.push(version.clone());
            entry.versions.sort_by_key(|v| semver_of(&v.version));
            if entry
                .versions
                .last()
                .is_some_and(|v| v.version == plugin.version)
            {
                entry.description = plugin.description.clone();
            }
        }
        self.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// The document's bytes, as signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Fetches `source` and its signature and verifies it.
    pub async fn fetch(source: &IndexSource) -> Result<Self, IndexError> {
        let fetch = |what: String| async move {
            read(&what).await.map_err(|error| IndexError::Fetch {
                index: source.name.clone(),
                what,
                error,
            })
        };
        let document = fetch(source.url.clone()).await?;
        let signature = fetch(format!("{}.minisig", source.url)).await?;
        Self::verified(source, &document, &String::from_utf8_lossy(&signature))
    }

    /// Parses `document` once `signature` verifies with the source's key.
    pub fn verified(
        source: &IndexSource,
        document: &[u8],
        signature: &str,
    ) -> Result<Self, IndexError> {
        let keys = [TrustedKey {
            key: source.key.clone(),
            plugins: vec!["*".into()],
        }];
        signing::verify(&keys, "", document, signature).map_err(|error| IndexError::Signature {
            index: source.name.clone(),
            error: error.to_string(),
        })?;
        serde_json::from_slice(document).map_err(|error| IndexError::Malformed {
            index: source.name.clone(),
            error: error.to_string(),
        })
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&IndexedPlugin> {
        self.plugins.iter().find(|p| p.name == name)
    }
}

impl IndexedPlugin {
    /// `version`, or the newest when none is asked for.
    pub fn version(&self, version: Option<&str>) -> Option<&IndexedVersion> {
        match version {
            Some(wanted) => self.versions.iter().find(|v| v.version == wanted),
            None => self.versions.iter().max_by_key(|v| semver_of(&v.version)),
        }
    }
}

/// Versions order by semver; one that is not semver sorts first.
fn semver_of(version: &str) -> Option<Version> {
    Version::parse(version).ok()
}

async fn read(location: &str) -> Result<Vec<u8>, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        let response = reqwest::get(location).await.map_err(|e| e.to_string())?;
        let response = response.error_for_status().map_err(|e| e.to_string())?;
        Ok(response.bytes().await.map_err(|e| e.to_string())?.to_vec())
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        tokio::fs::read(path).await.map_err(|e| e.to_string())
    }
}
