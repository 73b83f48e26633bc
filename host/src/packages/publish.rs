//! The publisher's side: a component into a package (its manifest from its own `describe`,
//! checked as an install will check it), and an index of published packages.

use crate::{
    capabilities::Capability,
    packages::{
        Index, Package, PackageManifest, Reason, Registries, installer::manifest_of, signing,
    },
    runtime::{Asks, Packaged, Plugin, Registry},
};

/// Packages the component `wasm`, whose plugin may reach `http_hosts`: compiled and
/// described on `registry`'s runtime, refused as an install would refuse it.
pub async fn package(
    registry: &Registry,
    wasm: Vec<u8>,
    http_hosts: Vec<String>,
) -> Result<Package, Reason> {
    // Granted everything while it describes itself: what it asks for is what is packaged.
    let everything = Asks {
        capabilities: Capability::ALL
            .iter()
            .map(|c| c.name().to_owned())
            .collect(),
        http_hosts: http_hosts.clone(),
    };
    let packaged = Packaged {
        asks: everything,
        digest: String::new(),
        source: "packaging".into(),
    };
    let plugin = registry
        .prepare_package("(packaging)", wasm.clone(), packaged)
        .await?;
    let manifest = manifest_of(plugin.manifest(), http_hosts, &plugin.contract());
    check_imports(&plugin, &manifest)?;
    if !manifest.http_hosts.is_empty() && !manifest.capabilities.iter().any(|c| c == "http") {
        return Err(Reason::Mismatch(
            "HTTP hosts are given, but its manifest does not ask for \"http\"".into(),
        ));
    }
    Ok(Package::build(wasm, manifest)?)
}

/// Refuses a component that imports a capability its manifest does not declare.
pub(super) fn check_imports(plugin: &Plugin, manifest: &PackageManifest) -> Result<(), Reason> {
    let undeclared: Vec<&str> = plugin
        .imports()
        .iter()
        .map(|c| c.name())
        .filter(|name| !manifest.capabilities.iter().any(|c| c == name))
        .collect();
    match undeclared.is_empty() {
        true => Ok(()),
        false => Err(Reason::Undeclared(undeclared.join(", "))),
    }
}

/// An index of the packages at `references` (added to `index`), pulled from their
/// registries and each checked to be signed; with its signature by `secret`.
pub async fn build_index(
    registries: &Registries,
    mut index: Index,
    references: &[String],
    secret: &str,
    password: Option<String>,
) -> anyhow::Result<(Index, String)> {
    for text in references {
        let reference = Registries::reference(text)?;
        let digest = registries.resolve(&reference).await?;
        let package = registries.pull(&reference, Some(&digest)).await?;
        anyhow::ensure!(
            package.signature().is_some(),
            "{text}: not signed; an index lists signed packages only (wasmbot plugin sign)"
        );
        index.add(&package, &reference.whole());
    }
    let signature = signing::sign(secret, password, &index.to_bytes(), "wasmbot plugin index")?;
    Ok((index, signature))
}
