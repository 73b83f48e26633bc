//! Packages in OCI registries: pushed and pulled with `oci-client`, every blob checked
//! against its digest here (a registry is not trusted to have done it).

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use anyhow::Context;
use oci_client::{
    Client, Reference,
    client::{ClientConfig, ClientProtocol},
    secrets::RegistryAuth,
};

use crate::packages::{MAX_BLOB_BYTES, OCI_MANIFEST, Package, PackageError};

/// How long a registry may take to answer one request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a package could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The reference does not parse.
    #[error("{0:?} is not an OCI reference (REGISTRY/REPOSITORY:TAG or @sha256:...)")]
    Reference(String),
    /// The registry could not be reached or refused.
    #[error("registry {registry}: {error}")]
    Registry {
        /// Its address.
        registry: String,
        /// What went wrong.
        error: String,
    },
    /// What it served is not a sound package.
    #[error(transparent)]
    Package(#[from] PackageError),
}

/// A client for the registries of one configuration.
pub struct Registries {
    client: Client,
}

impl Registries {
    /// A client speaking plain HTTP to the `insecure` registries (`host:port`), HTTPS to the
    /// rest.
    pub fn new(insecure: &[String]) -> Self {
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
            read_timeout: Some(TIMEOUT),
            connect_timeout: Some(Duration::from_secs(5)),
            ..ClientConfig::default()
        };
        Self {
            client: Client::new(config),
        }
    }

    /// Parses a reference; a bare `REGISTRY/REPO` means its `latest` tag.
    pub fn reference(text: &str) -> Result<Reference, FetchError> {
        Reference::from_str(text).map_err(|_| FetchError::Reference(text.to_owned()))
    }

    /// The digest `reference` points to now (a tag resolved, a digest as it is).
    pub async fn resolve(&self, reference: &Reference) -> Result<String, FetchError> {
        if let Some(digest) = reference.digest() {
            return Ok(digest.to_owned());
        }
        let (_, digest) = self
            .client
            .pull_manifest_raw(reference, &RegistryAuth::Anonymous, &[OCI_MANIFEST])
            .await
            .map_err(|e| registry_error(reference, e))?;
        Ok(digest)
    }

    /// Pulls the package `reference` names; with `pinned`, the manifest must have that digest.
    pub async fn pull(
        &self,
        reference: &Reference,
        pinned: Option<&str>,
    ) -> Result<Package, FetchError> {
        let reference = match pinned {
            Some(digest) => reference.clone_with_digest(digest.to_owned()),
            None => reference.clone(),
        };
        let (manifest_bytes, _) = self
            .client
            .pull_manifest_raw(&reference, &RegistryAuth::Anonymous, &[OCI_MANIFEST])
            .await
            .map_err(|e| registry_error(&reference, e))?;
        // The digest is computed from the bytes, never taken from the registry's header.
        let expected = pinned.map(str::to_owned);
        let manifest = crate::packages::ImageManifest::parse(&manifest_bytes)?;
        let mut blobs = BTreeMap::new();
        for descriptor in manifest.blobs() {
            if descriptor.size > MAX_BLOB_BYTES {
                return Err(PackageError::Malformed(format!(
                    "blob {} is {} bytes, over the 64 MiB a package may hold",
                    descriptor.digest, descriptor.size
                ))
                .into());
            }
            let mut bytes = Vec::with_capacity(descriptor.size as usize);
            self.client
                .pull_blob(&reference, descriptor.digest.as_str(), &mut bytes)
                .await
                .map_err(|e| registry_error(&reference, e))?;
            blobs.insert(descriptor.digest.clone(), bytes);
        }
        Ok(Package::from_parts(
            manifest_bytes,
            expected.as_deref(),
            blobs,
        )?)
    }

    /// Pushes `package` to `reference` (`REGISTRY/REPO[:TAG]`; with no tag, the package's
    /// version is its tag); the pushed manifest's digest.
    pub async fn push(&self, package: &Package, reference: &str) -> anyhow::Result<String> {
        let last = reference.rsplit('/').next().unwrap_or_default();
        let reference = match last.contains(':') || last.contains('@') {
            true => Self::reference(reference)?,
            false => Self::reference(&format!("{reference}:{}", package.plugin().version))?,
        };
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        for (descriptor, bytes) in package.blobs() {
            self.client
                .push_blob(&reference, bytes, &descriptor.digest)
                .await
                .with_context(|| format!("pushing blob {} to {reference}", descriptor.digest))?;
        }
        let content_type = http::HeaderValue::from_static(OCI_MANIFEST);
        self.client
            .push_manifest_raw(&reference, package.manifest_bytes().to_vec(), content_type)
            .await
            .with_context(|| format!("pushing the manifest to {reference}"))?;
        Ok(package.digest().to_owned())
    }
}

fn registry_error(
    reference: &Reference,
    error: oci_client::errors::OciDistributionError,
) -> FetchError {
    // reqwest's own words ("error sending request") hide the cause: the whole chain.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    FetchError::Registry {
        registry: reference.registry().to_owned(),
        error: text,
    }
}
