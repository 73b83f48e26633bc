//! Plugin packages: signed OCI artifacts a community publishes and an operator installs by
//! name into a running bot. A package is verified before anything of it runs (digests, the
//! publisher's signature by a key trusted for that name, its declared capabilities against
//! the component's real imports, its contract version), a new power asked for by an update
//! waits for the operator's approval, and the record of what is installed lives in the
//! database so that every host of the bot serves the same versions.
//!
//! - [`format`](Package): the OCI artifact and its image-layout archive;
//! - [`signing`](TrustedKey): minisign keys and signatures;
//! - [`oci`](Registries): pushing and pulling with `oci-client`;
//! - [`index`](Index): the signed index a community keeps, made by [`build_index`];
//! - [`package`]: a component into a package;
//! - [`store`](PackageStore): the install record;
//! - [`installer`](Packages): install, update, approve, pin, rollback, remove; every host in
//!   step;
//! - [`admin`]: the admin API's `/v1/plugins...` routes.

pub mod admin;
mod format;
mod index;
mod installer;
mod oci;
mod publish;
mod signing;
mod store;

use serde::{Deserialize, Serialize};

pub use format::{
    CommandSummary, Descriptor, ImageManifest, MANIFEST_LAYER, MAX_BLOB_BYTES, OCI_MANIFEST,
    Package, PackageError, PackageManifest, SIGNATURE_LAYER, Statement, WASM_CONFIG, WASM_LAYER,
    digest,
};
pub use index::{Index, IndexError, IndexSource, IndexedPlugin, IndexedVersion};
pub use installer::{
    Install, Listed, Outcome, Packages, Pending, Reason, Refusal, State, UpdateReport, manifest_of,
};
pub use oci::{FetchError, Registries};
pub use publish::{build_index, package};
pub use signing::{
    SignatureError, TrustedKey, generate, key_id, public_key, sign, sign_statement, verify,
};
pub use store::{InstallRow, PackageStore, VersionRecord};

/// The `[packages]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackagesConfig {
    /// Publisher keys the operator trusts (`[[packages.keys]]`), each with the plugin names
    /// it may sign.
    pub keys: Vec<TrustedKey>,
    /// Indexes `search`, `info` and `install NAME` read, in order (`[[packages.indexes]]`).
    pub indexes: Vec<IndexSource>,
    /// Registries (`host:port`) reached over plain HTTP instead of HTTPS: a registry on
    /// loopback, say.
    pub insecure_registries: Vec<String>,
    /// Without Redis, on a shared (Postgres) database: how often a host reads the install
    /// record to follow installs made on another host, in seconds; 0: never.
    pub poll_secs: u64,
}

impl Default for PackagesConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            indexes: Vec::new(),
            insecure_registries: Vec::new(),
            poll_secs: 30,
        }
    }
}

impl PackagesConfig {
    /// Refuses a key that does not parse or trusts no name, naming it.
    pub fn validate(&self) -> anyhow::Result<()> {
        signing::check_keys(&self.keys).map_err(anyhow::Error::msg)?;
        for (index, source) in self.indexes.iter().enumerate() {
            public_key(&source.key)
                .map_err(|e| anyhow::anyhow!("packages.indexes[{index}] ({}): {e}", source.name))?;
        }
        Ok(())
    }
}
