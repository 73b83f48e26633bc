//! A plugin package: an OCI artifact in the CNCF wasm layout (config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer) with two layers of
//! wasmbot's: the plugin's manifest as JSON, and a minisign signature over a statement that
//! names the plugin, its version and the digests of those two layers. The same package is
//! one file as an OCI image-layout archive (a tar of `oci-layout`, `index.json` and
//! `blobs/sha256/`).

use std::{
    collections::BTreeMap,
    io::{Cursor, Read},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The OCI image manifest's media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The CNCF wasm artifact's config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The component's layer.
pub const WASM_LAYER: &str = "application/wasm";
/// The plugin's manifest (its `describe` result and the HTTP hosts it asks for).
pub const MANIFEST_LAYER: &str = "application/vnd.wasmbot.plugin.manifest.v1+json";
/// The publisher's minisign signature over the package's [`Statement`].
pub const SIGNATURE_LAYER: &str = "application/vnd.wasmbot.plugin.signature.v1+minisign";

/// Packages larger than this are refused before they are read whole.
pub const MAX_BLOB_BYTES: u64 = 64 << 20;

/// Why bytes are not a package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A blob's (or the manifest's) bytes do not hash to the digest that names them.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Digest {
        /// Which blob.
        what: String,
        /// The digest it is named by.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The bytes break the layout.
    #[error("not a wasmbot package: {0}")]
    Malformed(String),
}

/// A command as a package lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSummary {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Its other names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// What a package says of its plugin: what it answers and what it may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageManifest {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Its commands.
    #[serde(default)]
    pub commands: Vec<CommandSummary>,
    /// The events, other than commands, it receives.
    #[serde(default)]
    pub events: Vec<String>,
    /// The capabilities it asks for.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The hosts its `http` capability asks to reach.
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// The `wasmbot:plugin` contract version it was built against.
    pub contract: String,
}

/// What a publisher signs: the plugin, its version and the digests of its component and
/// manifest. Rendered the same way by every tool, so `minisign -Sm statement.json` signs the
/// same bytes `wasmbot plugin sign` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The plugin's name.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The digest of the `application/wasm` layer.
    pub wasm: String,
    /// The digest of the manifest layer.
    pub manifest: String,
}

impl Statement {
    /// The bytes signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Field order is the struct's; no whitespace: one rendering only.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// What the blob is.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `sha256:HEX` of its bytes.
    pub digest: String,
    /// Its length.
    pub size: u64,
    /// Annotations (the image layout's tag).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: digest(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// The OCI image manifest of a package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageManifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// [`OCI_MANIFEST`].
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// [`WASM_CONFIG`].
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
    /// The wasm config blob.
    pub config: Descriptor,
    /// The component, the manifest and, once signed, the signature.
    pub layers: Vec<Descriptor>,
    /// The plugin's name, version and description, for registry browsers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// Parses a manifest's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, PackageError> {
        let manifest: Self = serde_json::from_slice(bytes)
            .map_err(|e| PackageError::Malformed(format!("its OCI manifest: {e}")))?;
        if manifest.schema_version != 2 {
            return Err(PackageError::Malformed(format!(
                "OCI manifest schema {}",
                manifest.schema_version
            )));
        }
        if manifest.config.media_type != WASM_CONFIG {
            return Err(PackageError::Malformed(format!(
                "its config is {:?}, not a wasm artifact's ({WASM_CONFIG})",
                manifest.config.media_type
            )));
        }
        Ok(manifest)
    }

    /// Every blob it names: the config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    fn layer(&self, media_type: &str) -> Option<&Descriptor> {
        self.layers.iter().find(|l| l.media_type == media_type)
    }
}

/// A package whose every blob was checked against its digest.
#[derive(Debug, Clone)]
pub struct Package {
    manifest: ImageManifest,
    manifest_bytes: Vec<u8>,
    digest: String,
    blobs: BTreeMap<String, Vec<u8>>,
    plugin: PackageManifest,
}

impl Package {
    /// Packages a component with its manifest, unsigned.
    pub fn build(wasm: Vec<u8>, plugin: PackageManifest) -> Result<Self, PackageError> {
        let meta = serde_json::to_vec_pretty(&plugin)
            .map_err(|e| PackageError::Malformed(e.to_string()))?;
        Self::assemble(wasm, meta, None)
    }

    /// The same package with `signature` (a minisign signature of [`Package::statement`]).
    pub fn signed(&self, signature: String) -> Result<Self, PackageError> {
        Self::assemble(
            self.wasm().to_vec(),
            self.blob(MANIFEST_LAYER).to_vec(),
            Some(signature.into_bytes()),
        )
    }

    fn assemble(
        wasm: Vec<u8>,
        meta: Vec<u8>,
        signature: Option<Vec<u8>>,
    ) -> Result<Self, PackageError> {
        let plugin: PackageManifest = serde_json::from_slice(&meta)
            .map_err(|e| PackageError::Malformed(format!("its plugin manifest: {e}")))?;
        let wasm_layer = Descriptor::of(WASM_LAYER, &wasm);
        let config = serde_json::json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [wasm_layer.digest],
            "component": { "target": format!("wasmbot:plugin/plugin@{}", plugin.contract) },
        });
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let mut layers = vec![wasm_layer, Descriptor::of(MANIFEST_LAYER, &meta)];
        let mut blobs = BTreeMap::from([
            (digest(&config), config.clone()),
            (digest(&wasm), wasm),
            (digest(&meta), meta),
        ]);
        if let Some(signature) = signature {
            layers.push(Descriptor::of(SIGNATURE_LAYER, &signature));
            blobs.insert(digest(&signature), signature);
        }
        let annotations = BTreeMap::from([
            (
                "org.opencontainers.image.title".to_owned(),
                plugin.name.clone(),
            ),
            (
                "org.opencontainers.image.version".to_owned(),
                plugin.version.clone(),
            ),
            (
                "org.opencontainers.image.description".to_owned(),
                plugin.description.clone(),
            ),
        ]);
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: OCI_MANIFEST.to_owned(),
            artifact_type: WASM_CONFIG.to_owned(),
            config: Descriptor::of(WASM_CONFIG, &config),
            layers,
            annotations,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| PackageError::Malformed(e.to_string()))?;
        Ok(Self {
            digest: digest(&manifest_bytes),
            manifest,
            manifest_bytes,
            blobs,
            plugin,
        })
    }

    /// A package from its manifest's bytes and its blobs, each checked against its digest;
    /// `expected` is the manifest's digest when the caller pinned one.
    pub fn from_parts(
        manifest_bytes: Vec<u8>,
        expected: Option<&str>,
        mut blobs: BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, PackageError> {
        let digest = digest(&manifest_bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(PackageError::Digest {
                what: "the OCI manifest".into(),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let manifest = ImageManifest::parse(&manifest_bytes)?;
        let mut kept = BTreeMap::new();
        for descriptor in manifest.blobs() {
            let bytes = blobs.remove(&descriptor.digest).ok_or_else(|| {
                PackageError::Malformed(format!("blob {} is missing", descriptor.digest))
            })?;
            check_blob(descriptor, &bytes)?;
            kept.insert(descriptor.digest.clone(), bytes);
        }
        for required in [WASM_LAYER, MANIFEST_LAYER] {
            if manifest.layer(required).is_none() {
                return Err(PackageError::Malformed(format!("no {required} layer")));
            }
        }
        let meta = manifest
            .layer(MANIFEST_LAYER)
            .and_then(|d| kept.get(&d.digest))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let plugin = serde_json::from_slice(meta)
            .map_err(|e| PackageError::Malformed(format!("its plugin manifest: {e}")))?;
        Ok(Self {
            manifest,
            manifest_bytes,
            digest,
            blobs: kept,
            plugin,
        })
    }

    /// The OCI manifest's digest: the package's identity, what is pinned.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The OCI manifest.
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }

    /// The OCI manifest's bytes, as pushed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// What the package says of its plugin.
    pub fn plugin(&self) -> &PackageManifest {
        &self.plugin
    }

    /// The component.
    pub fn wasm(&self) -> &[u8] {
        self.blob(WASM_LAYER)
    }

    /// The publisher's signature, if signed.
    pub fn signature(&self) -> Option<&str> {
        self.manifest
            .layer(SIGNATURE_LAYER)
            .and_then(|d| self.blobs.get(&d.digest))
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }

    /// What the publisher signs.
    pub fn statement(&self) -> Statement {
        let digest_of = |media_type| {
            self.manifest
                .layer(media_type)
                .map(|d| d.digest.clone())
                .unwrap_or_default()
        };
        Statement {
            plugin: self.plugin.name.clone(),
            version: self.plugin.version.clone(),
            wasm: digest_of(WASM_LAYER),
            manifest: digest_of(MANIFEST_LAYER),
        }
    }

    /// Every blob with its descriptor, the config first.
    pub fn blobs(&self) -> impl Iterator<Item = (&Descriptor, &[u8])> {
        self.manifest
            .blobs()
            .filter_map(|d| Some((d, self.blobs.get(&d.digest)?.as_slice())))
    }

    fn blob(&self, media_type: &str) -> &[u8] {
        self.manifest
            .layer(media_type)
            .and_then(|d| self.blobs.get(&d.digest))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The package as one OCI image-layout archive (tar), tagged with its version.
    pub fn to_archive(&self) -> Vec<u8> {
        let mut tagged = Descriptor::of(OCI_MANIFEST, &self.manifest_bytes);
        tagged.annotations.insert(
            "org.opencontainers.image.ref.name".into(),
            self.plugin.version.clone(),
        );
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [tagged],
        });
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            (
                "index.json".into(),
                serde_json::to_vec(&index).unwrap_or_default(),
            ),
            (blob_path(&self.digest), self.manifest_bytes.clone()),
        ];
        for (descriptor, bytes) in self.blobs() {
            files.push((blob_path(&descriptor.digest), bytes.to_vec()));
        }
        let mut archive = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            // Writing to memory cannot fail.
            let _ = archive.append_data(&mut header, path, bytes.as_slice());
        }
        archive.into_inner().unwrap_or_default()
    }

    /// Reads an OCI image-layout archive holding one package.
    pub fn from_archive(bytes: &[u8]) -> Result<Self, PackageError> {
        let malformed =
            |e: std::io::Error| PackageError::Malformed(format!("not a tar archive: {e}"));
        let mut files = BTreeMap::new();
        let mut archive = tar::Archive::new(Cursor::new(bytes));
        for entry in archive.entries().map_err(malformed)? {
            let entry = entry.map_err(malformed)?;
            if entry.size() > MAX_BLOB_BYTES {
                return Err(PackageError::Malformed("a file over 64 MiB".into()));
            }
            let path = entry
                .path()
                .map_err(malformed)?
                .to_string_lossy()
                .into_owned();
            let mut content = Vec::new();
            entry
                .take(MAX_BLOB_BYTES)
                .read_to_end(&mut content)
                .map_err(malformed)?;
            files.insert(path.trim_start_matches("./").to_owned(), content);
        }
        let index: serde_json::Value = files
            .get("index.json")
            .and_then(|b| serde_json::from_slice(b).ok())
            .ok_or_else(|| PackageError::Malformed("no index.json".into()))?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        let [entry] = manifests.as_slice() else {
            return Err(PackageError::Malformed(format!(
                "{} manifests in index.json; a package has one",
                manifests.len()
            )));
        };
        let digest = entry["digest"].as_str().unwrap_or_default().to_owned();
        let manifest_bytes = files
            .remove(&blob_path(&digest))
            .ok_or_else(|| PackageError::Malformed(format!("manifest {digest} is missing")))?;
        let blobs = files
            .into_iter()
            .filter_map(|(path, bytes)| {
                let hex = path.strip_prefix("blobs/sha256/")?;
                Some((format!("sha256:{hex}"), bytes))
            })
            .collect();
        Self::from_parts(manifest_bytes, Some(&digest), blobs)
    }
}

fn check_blob(descriptor: &Descriptor, bytes: &[u8]) -> Result<(), PackageError> {
    let actual = digest(bytes);
    if actual != descriptor.digest {
        return Err(PackageError::Digest {
            what: format!("the {} blob", descriptor.media_type),
            expected: descriptor.digest.clone(),
            actual,
        });
    }
    Ok(())
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// `sha256:HEX` of `bytes`: how OCI names content.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin() -> PackageManifest {
        PackageManifest {
            name: "echo".into(),
            version: "1.0.0".into(),
            description: "says it back".into(),
            commands: vec![],
            events: vec![],
            capabilities: vec!["log".into()],
            http_hosts: vec![],
            contract: "0.1.4".into(),
        }
    }

    #[test]
    fn an_archive_round_trips_with_its_digest() {
        let package = Package::build(b"\0asm component".to_vec(), plugin()).unwrap();
        let signed = package.signed("sig".into()).unwrap();
        assert_ne!(package.digest(), signed.digest());
        let back = Package::from_archive(&signed.to_archive()).unwrap();
        assert_eq!(back.digest(), signed.digest());
        assert_eq!(back.wasm(), b"\0asm component");
        assert_eq!(back.signature(), Some("sig"));
        assert_eq!(back.plugin(), &plugin());
        // Signing adds a layer; what is signed stays the same.
        assert_eq!(back.statement(), package.statement());
    }

    #[test]
    fn a_blob_that_does_not_match_its_digest_is_refused() {
        let package = Package::build(b"\0asm component".to_vec(), plugin()).unwrap();
        let mut blobs: BTreeMap<_, _> = package
            .blobs()
            .map(|(d, b)| (d.digest.clone(), b.to_vec()))
            .collect();
        let wasm = &package.manifest().layers[0].digest;
        blobs.insert(wasm.clone(), b"\0asm tampered".to_vec());
        let error = Package::from_parts(package.manifest_bytes().to_vec(), None, blobs)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("digest mismatch for the application/wasm blob"),
            "{error}"
        );
        let error = Package::from_parts(
            package.manifest_bytes().to_vec(),
            Some("sha256:00"),
            BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("the OCI manifest"), "{error}");
    }
}
