//! Plugin packages end to end, against a real OCI registry (Debian's `docker-registry`) on
//! loopback: publish → index → install into a running host → answers; updates while events
//! flow; consent to new powers; pin, rollback, remove; two hosts on one Postgres and Redis;
//! and every kind of bad package refused with one line, the running version untouched.

use std::{path::Path, sync::Arc, time::Duration};

use wasmbot::{
    config::Config,
    http::report::Report,
    packages::{
        self, Index, IndexSource, Install, Package, PackageManifest, Packages, Reason, Registries,
        State, TrustedKey,
    },
};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{Logs, oci_registry::OciRegistry, plugin};

/// A publisher: a key pair, and the packages it built and pushed.
struct Publisher {
    public: String,
    secret: String,
}

impl Publisher {
    fn new() -> Self {
        let (public, secret) = packages::generate(None).unwrap();
        Self { public, secret }
    }

    fn trusted(&self, plugins: &[&str]) -> TrustedKey {
        TrustedKey {
            key: self.public.clone(),
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn sign(&self, package: &Package) -> Package {
        let signature = packages::sign_statement(&self.secret, None, &package.statement()).unwrap();
        package.signed(signature).unwrap()
    }
}

/// Packages a built test plugin (described by `host`'s runtime), signed by `publisher`.
async fn package(
    host: &TestHost,
    crate_name: &str,
    hosts: &[&str],
    publisher: &Publisher,
) -> Package {
    let wasm = std::fs::read(plugin(crate_name)).unwrap();
    let hosts = hosts.iter().map(|h| h.to_string()).collect();
    let registry = host.dispatcher().registry();
    let unsigned = packages::package(registry, wasm, hosts).await.unwrap();
    publisher.sign(&unsigned)
}

/// Writes a signed index of `references` to `dir/index.json`.
async fn write_index(
    dir: &Path,
    registries: &Registries,
    references: &[String],
    publisher: &Publisher,
) {
    let (index, signature) = packages::build_index(
        registries,
        Index::default(),
        references,
        &publisher.secret,
        None,
    )
    .await
    .unwrap();
    std::fs::write(dir.join("index.json"), index.to_bytes()).unwrap();
    std::fs::write(dir.join("index.json.minisig"), signature).unwrap();
}

fn config(
    registry: &OciRegistry,
    keys: Vec<TrustedKey>,
    index: Option<(&Path, &Publisher)>,
) -> Config {
    let mut config = Config::default();
    config.runtime.cache_dir = Default::default();
    config.packages.keys = keys;
    config.packages.insecure_registries = vec![registry.address()];
    if let Some((dir, publisher)) = index {
        config.packages.indexes = vec![IndexSource {
            name: "community".into(),
            url: dir.join("index.json").display().to_string(),
            key: publisher.public.clone(),
        }];
    }
    config
}

async fn host_with_packages(
    config: Config,
    files: &[std::path::PathBuf],
) -> (TestHost, Arc<Packages>) {
    let host = TestHost::with_config(config.clone(), files).await.unwrap();
    let packages = config
        .packages(Arc::clone(host.dispatcher().registry()))
        .expect("the test host has a config store");
    (host, packages)
}

async fn greet(host: &TestHost) -> Vec<String> {
    host.say("!greet").await
}

fn install(source: &str, approve: bool) -> Install {
    Install {
        source: source.to_owned(),
        allow_unsigned: false,
        approve,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_indexed_installed_updated_with_consent_pinned_rolled_back_and_removed() {
    let registry = OciRegistry::start().await;
    let publisher = Publisher::new();
    let work = tempfile::tempdir().unwrap();
    let config = config(
        &registry,
        vec![publisher.trusted(&["greeter"])],
        Some((work.path(), &publisher)),
    );
    let (host, packages) = host_with_packages(config, &[]).await;
    let registries = Registries::new(&[registry.address()]);
    let repo = format!("{}/plugins/greeter", registry.address());
    let mut published = Vec::new();
    for (crate_name, hosts) in [
        ("greeter", &[][..]),
        ("greeter-1-1", &[]),
        ("greeter-2", &["api.example.com"]),
    ] {
        let package = package(&host, crate_name, hosts, &publisher).await;
        registries.push(&package, &repo).await.unwrap();
        published.push(format!("{repo}:{}", package.plugin().version));
    }
    write_index(work.path(), &registries, &published[..1], &publisher).await;

    // A first install shows what it asks for and waits for the operator.
    let outcome = packages.install(&install("greeter", false)).await.unwrap();
    assert_eq!(
        (outcome.state, outcome.version.as_str()),
        (State::Pending, "1.0.0")
    );
    assert_eq!(outcome.asks.capabilities, ["log"]);
    assert!(
        greet(&host).await.is_empty(),
        "nothing serves before approval"
    );
    let listed = packages.list().await.unwrap();
    assert!(
        listed[0].active.is_none() && listed[0].pending.is_some(),
        "{listed:?}"
    );
    packages.approve("greeter").await.unwrap();
    assert_eq!(greet(&host).await, ["hello from greeter 1.0.0"]);

    // 1.1.0 asks for nothing new: `update` applies it while events flow, none dropped.
    write_index(work.path(), &registries, &published[..2], &publisher).await;
    let check = packages.update(None, true).await.unwrap();
    assert!(check[0].status.contains("is newer than 1.0.0"), "{check:?}");
    assert_eq!(
        greet(&host).await,
        ["hello from greeter 1.0.0"],
        "--check changes nothing"
    );
    let flowing = async {
        let mut answers = Vec::new();
        for _ in 0..200 {
            answers.extend(greet(&host).await);
        }
        answers
    };
    let (answers, update) = tokio::join!(flowing, packages.update(None, false));
    let update = update.unwrap();
    assert_eq!(update[0].status, "updated to 1.1.0", "{update:?}");
    assert_eq!(answers.len(), 200, "every event answered across the update");
    assert!(
        answers
            .iter()
            .all(|a| a.starts_with("hello from greeter 1.")),
        "{answers:?}"
    );
    assert_eq!(greet(&host).await, ["hello from greeter 1.1.0"]);

    // 2.0.0 asks for `http` and a host: it waits, the old version serving, until approved.
    write_index(work.path(), &registries, &published, &publisher).await;
    let update = packages.update(Some("greeter"), false).await.unwrap();
    let outcome = update[0].outcome.clone().unwrap();
    assert_eq!(outcome.state, State::Pending, "{update:?}");
    assert_eq!(outcome.new_asks.capabilities, ["http"]);
    assert_eq!(outcome.new_asks.http_hosts, ["api.example.com"]);
    assert_eq!(greet(&host).await, ["hello from greeter 1.1.0"]);
    let listed = packages.list().await.unwrap();
    let pending = listed[0].pending.clone().unwrap();
    assert_eq!(pending.version.version, "2.0.0");
    assert_eq!(pending.new_asks.capabilities, ["http"]);
    let approved = packages.approve("greeter").await.unwrap();
    assert_eq!(approved.version, "2.0.0");
    assert_eq!(greet(&host).await, ["hello from greeter 2.0.0"]);
    let granted = host.dispatcher().registry().snapshot();
    let policy = granted.plugin("greeter").unwrap().policy().clone();
    assert!(
        policy
            .capabilities
            .http
            .http_allow
            .contains(&"api.example.com".to_owned())
    );

    // Rollback, one command; a pin holds against the newer version; remove.
    packages.rollback("greeter").await.unwrap();
    assert_eq!(greet(&host).await, ["hello from greeter 1.1.0"]);
    packages.pin("greeter", true).await.unwrap();
    let update = packages.update(None, false).await.unwrap();
    assert!(
        update[0].status.starts_with("pinned at 1.1.0"),
        "{update:?}"
    );
    assert_eq!(greet(&host).await, ["hello from greeter 1.1.0"]);

    // The operator's view: what serves, with its digest and source.
    let text = Report::gather(host.dispatcher())
        .await
        .prometheus(host.dispatcher())
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("wasmbot_plugin_info{") && l.contains("plugin=\"greeter\""))
        .unwrap_or_else(|| panic!("no wasmbot_plugin_info for greeter:\n{text}"));
    let active = packages.list().await.unwrap()[0].active.clone().unwrap();
    assert!(line.contains("version=\"1.1.0\""), "{line}");
    assert!(
        line.contains(&format!("digest=\"{}\"", active.digest)),
        "{line}"
    );
    assert!(line.contains("source=\"community\""), "{line}");

    // Unpinned, `update` goes back to 2.0.0: approved before, it asks nothing anew.
    packages.pin("greeter", false).await.unwrap();
    let update = packages.update(None, false).await.unwrap();
    assert_eq!(update[0].status, "updated to 2.0.0", "{update:?}");
    assert_eq!(greet(&host).await, ["hello from greeter 2.0.0"]);

    packages.remove("greeter").await.unwrap();
    assert!(greet(&host).await.is_empty());
    assert!(packages.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packages_are_refused_with_one_line_and_the_running_version_is_untouched() {
    let (logs, _guard) = Logs::capture();
    let mut registry = OciRegistry::start().await;
    let publisher = Publisher::new();
    let limited = Publisher::new();
    let stranger = Publisher::new();
    let work = tempfile::tempdir().unwrap();
    let config = config(
        &registry,
        vec![
            publisher.trusted(&["greeter", "ping", "echo"]),
            limited.trusted(&["other-*"]),
        ],
        Some((work.path(), &publisher)),
    );
    let (host, packages) = host_with_packages(config, &[plugin("echo")]).await;
    let good = package(&host, "greeter", &[], &publisher).await;
    let outcome = packages
        .install_archive(&good.to_archive(), false, true)
        .await
        .unwrap();
    assert_eq!(outcome.state, State::Active);

    let refused = |result: Result<packages::Outcome, packages::Refusal>| match result {
        Ok(outcome) => panic!("installed: {outcome:?}"),
        Err(refusal) => refusal,
    };
    // An archive installed signed-only and approved: refused, or the test fails.
    let refuse_archive = |packages: &Arc<Packages>, archive: &[u8]| {
        let (packages, archive) = (Arc::clone(packages), archive.to_vec());
        async move { refused(packages.install_archive(&archive, false, true).await) }
    };
    let newer = package(&host, "greeter-1-1", &[], &publisher).await;

    // Unsigned, without the flag.
    let unsigned = packages::package(
        host.dispatcher().registry(),
        std::fs::read(plugin("greeter-1-1")).unwrap(),
        vec![],
    )
    .await
    .unwrap();
    let r = refuse_archive(&packages, &unsigned.to_archive()).await;
    assert!(
        matches!(
            r.reason,
            Reason::Signature(packages::SignatureError::Missing)
        ),
        "{r}"
    );
    // A blob whose bytes do not match its digest.
    let mut archive = newer.to_archive();
    let wasm = newer.wasm();
    let at = archive.windows(wasm.len()).position(|w| w == wasm).unwrap();
    archive[at + wasm.len() / 2] ^= 0xff;
    let r = refuse_archive(&packages, &archive).await;
    assert!(
        r.to_string()
            .contains("digest mismatch for the application/wasm blob"),
        "{r}"
    );
    // Signed by a key nobody trusts; by a key trusted for other names; a signature of
    // another package.
    let r = refuse_archive(&packages, &stranger.sign(&unsigned).to_archive()).await;
    assert!(r.to_string().contains("which is not a trusted key"), "{r}");
    let r = refuse_archive(&packages, &limited.sign(&unsigned).to_archive()).await;
    assert!(
        r.to_string()
            .contains("is trusted, but not to sign \"greeter\""),
        "{r}"
    );
    let other_signature = good.signature().unwrap().to_owned();
    let r = refuse_archive(
        &packages,
        &unsigned.signed(other_signature).unwrap().to_archive(),
    )
    .await;
    assert!(r.to_string().contains("does not match the package"), "{r}");
    // A component importing a capability its manifest does not declare (ping v2 calls
    // `log` without asking for it).
    let sneaky = PackageManifest {
        name: "ping".into(),
        version: "2.0.0".into(),
        description: String::new(),
        commands: vec![],
        events: vec![],
        capabilities: vec![],
        http_hosts: vec![],
        contract: "0.1.4".into(),
    };
    let sneaky =
        publisher.sign(&Package::build(std::fs::read(plugin("ping-v2")).unwrap(), sneaky).unwrap());
    let r = refuse_archive(&packages, &sneaky.to_archive()).await;
    assert!(
        r.to_string().contains("imports log without declaring it"),
        "{r}"
    );
    // Another contract version.
    let mut future = newer.plugin().clone();
    future.contract = "0.9.0".into();
    let future = publisher.sign(&Package::build(newer.wasm().to_vec(), future).unwrap());
    let r = refuse_archive(&packages, &future.to_archive()).await;
    assert!(
        r.to_string().contains("built against wasmbot:plugin@0.9.0"),
        "{r}"
    );
    // A name a plugin loaded from the folder has.
    let echo = package(&host, "echo", &[], &publisher).await;
    let r = refuse_archive(&packages, &echo.to_archive()).await;
    assert!(matches!(r.reason, Reason::Clash(_)), "{r}");
    // An index whose signature does not match it.
    let registries = Registries::new(&[registry.address()]);
    let repo = format!("{}/plugins/greeter", registry.address());
    registries.push(&newer, &repo).await.unwrap();
    write_index(
        work.path(),
        &registries,
        &[format!("{repo}:1.1.0")],
        &publisher,
    )
    .await;
    let index = work.path().join("index.json");
    let tampered = std::fs::read_to_string(&index)
        .unwrap()
        .replace("1.1.0", "1.1.1");
    std::fs::write(&index, tampered).unwrap();
    let r = refused(packages.install(&install("greeter", true)).await);
    assert!(
        r.to_string().contains("index community: bad signature"),
        "{r}"
    );
    // An unreachable registry.
    registry.stop();
    let r = refused(
        packages
            .install(&install(&format!("{repo}:1.1.0"), true))
            .await,
    );
    assert!(
        matches!(
            r.reason,
            Reason::Fetch(packages::FetchError::Registry { .. })
        ),
        "{r}"
    );

    // Nothing of them was kept; the running version serves on.
    assert_eq!(greet(&host).await, ["hello from greeter 1.0.0"]);
    let listed = packages.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].versions, ["1.0.0"]);
    let refusals = logs.lines_with(&["package refused:"]);
    assert_eq!(
        refusals.len(),
        10,
        "one line per refused package:\n{}",
        refusals.join("\n")
    );

    // Unsigned is accepted with the explicit flag, and said so.
    let outcome = packages
        .install_archive(&unsigned.to_archive(), true, false)
        .await
        .unwrap();
    assert_eq!(
        outcome.state,
        State::Active,
        "asks for nothing new: applies"
    );
    let listed = packages.list().await.unwrap();
    assert_eq!(
        listed[0].active.as_ref().unwrap().signer,
        "",
        "recorded as unsigned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_after_pinning_does_not_move_the_plugin() {
    let registry = OciRegistry::start().await;
    let publisher = Publisher::new();
    let config = config(&registry, vec![publisher.trusted(&["greeter"])], None);
    let (host, packages) = host_with_packages(config, &[]).await;
    let registries = Registries::new(&[registry.address()]);
    let stable = format!("{}/plugins/greeter:stable", registry.address());
    let first = package(&host, "greeter", &[], &publisher).await;
    registries.push(&first, &stable).await.unwrap();
    let outcome = packages.install(&install(&stable, true)).await.unwrap();
    assert_eq!(
        outcome.digest,
        first.digest(),
        "the tag resolved and pinned to a digest"
    );
    packages.pin("greeter", true).await.unwrap();

    let moved = package(&host, "greeter-1-1", &[], &publisher).await;
    registries.push(&moved, &stable).await.unwrap();
    let report = packages.update(None, false).await.unwrap();
    assert!(report[0].status.contains("now points to"), "{report:?}");
    assert!(report[0].status.contains(moved.digest()), "{report:?}");
    assert_eq!(greet(&host).await, ["hello from greeter 1.0.0"]);

    packages.pin("greeter", false).await.unwrap();
    let report = packages.update(None, false).await.unwrap();
    assert_eq!(report[0].status, "updated to 1.1.0");
    assert_eq!(greet(&host).await, ["hello from greeter 1.1.0"]);
}

/// Two hosts on one fresh Postgres database, with `redis` (pub/sub) or without (each reads
/// the record every second), each with its packages service started.
async fn two_hosts(
    registry: &OciRegistry,
    publisher: &Publisher,
    redis: Option<String>,
) -> Vec<(TestHost, Arc<Packages>)> {
    let mut config = config(registry, vec![publisher.trusted(&["greeter"])], None);
    config.database.url = wasmbot_tests::fresh_postgres("packages").await;
    config.redis.url = redis.unwrap_or_default();
    config.packages.poll_secs = 1;
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let store = Arc::new(config.open_store().await.unwrap());
        let host = TestHost::with_store(config.clone(), store, &[])
            .await
            .unwrap();
        let packages = config
            .packages(Arc::clone(host.dispatcher().registry()))
            .unwrap();
        packages.start().await;
        hosts.push((host, packages));
    }
    hosts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_database_and_redis_serve_one_install() {
    let registry = OciRegistry::start().await;
    let publisher = Publisher::new();
    let hosts = two_hosts(&registry, &publisher, Some(wasmbot_tests::redis_url())).await;
    let (a, b) = (&hosts[0], &hosts[1]);
    let archive = package(&a.0, "greeter", &[], &publisher).await.to_archive();
    a.1.install_archive(&archive, false, true).await.unwrap();
    assert_eq!(greet(&a.0).await, ["hello from greeter 1.0.0"]);
    until(|| serving(&b.0).is_some()).await;
    assert_eq!(
        greet(&b.0).await,
        ["hello from greeter 1.0.0"],
        "the other host serves it"
    );

    let newer = package(&a.0, "greeter-1-1", &[], &publisher)
        .await
        .to_archive();
    a.1.install_archive(&newer, false, false).await.unwrap();
    until(|| serving(&b.0).as_deref() == Some("1.1.0")).await;
    b.1.rollback("greeter").await.unwrap();
    until(|| serving(&a.0).as_deref() == Some("1.0.0")).await;
    a.1.remove("greeter").await.unwrap();
    until(|| serving(&b.0).is_none()).await;
    for (_, packages) in &hosts {
        packages.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_host_follows_the_install_record_by_polling() {
    let registry = OciRegistry::start().await;
    let publisher = Publisher::new();
    let hosts = two_hosts(&registry, &publisher, None).await;
    let (a, b) = (&hosts[0], &hosts[1]);
    let archive = package(&a.0, "greeter", &[], &publisher).await.to_archive();
    a.1.install_archive(&archive, false, true).await.unwrap();
    until(|| serving(&b.0).as_deref() == Some("1.0.0")).await;
    assert_eq!(greet(&b.0).await, ["hello from greeter 1.0.0"]);
    a.1.remove("greeter").await.unwrap();
    until(|| serving(&b.0).is_none()).await;
    for (_, packages) in &hosts {
        packages.stop();
    }
}

/// The version of greeter `host` serves.
fn serving(host: &TestHost) -> Option<String> {
    let snapshot = host.dispatcher().registry().snapshot();
    Some(snapshot.plugin("greeter")?.manifest().version.clone())
}

/// Waits (up to 20 s) until `done` holds.
async fn until(done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 20 s");
}
