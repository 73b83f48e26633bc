//! `cargo bench -p wasmbot-tests --bench packages`: plugin packages against a real OCI
//! registry on loopback (Debian's `docker-registry`).
//!
//! 1. Install → answering: from `install REF` (resolve the tag, pull, verify the signature,
//!    compile, record, swap in) to the plugin's first answer, with a cold compile cache (a
//!    new cache folder each round) and a warm one (the same component installed before),
//!    `ROUNDS` (5) each; beside it, the pull alone, so the registry's share shows.
//! 2. An update under load: `SENDERS` (8) tasks send `!greet` as fast as answers come while
//!    `update` swaps 1.0.0 for 1.1.0; every event sent must be answered (target: 0 dropped).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use wasmbot::{
    config::Config,
    packages::{self, Index, IndexSource, Install, Package, Packages, Registries, TrustedKey},
};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{oci_registry::OciRegistry, plugin};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

struct Bench {
    registry: OciRegistry,
    public: String,
    secret: String,
}

impl Bench {
    fn config(&self, cache: &std::path::Path, index: Option<&std::path::Path>) -> Config {
        let mut config = Config::default();
        config.runtime.cache_dir = cache.to_owned();
        config.packages.keys = vec![TrustedKey {
            key: self.public.clone(),
            plugins: vec!["greeter".into()],
        }];
        config.packages.insecure_registries = vec![self.registry.address()];
        if let Some(dir) = index {
            config.packages.indexes = vec![IndexSource {
                name: "bench".into(),
                url: dir.join("index.json").display().to_string(),
                key: self.public.clone(),
            }];
        }
        config
    }

    async fn host(&self, config: Config) -> (TestHost, Arc<Packages>) {
        let host = TestHost::with_config(config.clone(), &[])
            .await
            .expect("host");
        let packages = config
            .packages(Arc::clone(host.dispatcher().registry()))
            .expect("packages");
        (host, packages)
    }

    async fn publish(&self, host: &TestHost, crate_name: &str, reference: &str) -> Package {
        let wasm = std::fs::read(plugin(crate_name)).expect("built plugin");
        let unsigned = packages::package(host.dispatcher().registry(), wasm, vec![])
            .await
            .expect("package");
        let signature =
            packages::sign_statement(&self.secret, None, &unsigned.statement()).expect("sign");
        let package = unsigned.signed(signature).expect("signed");
        Registries::new(&[self.registry.address()])
            .push(&package, reference)
            .await
            .expect("push");
        package
    }
}

#[tokio::main]
async fn main() {
    let rounds = env_or("ROUNDS", 5) as usize;
    let (public, secret) = packages::generate(None).expect("key");
    let bench = Bench {
        registry: OciRegistry::start().await,
        public,
        secret,
    };
    let reference = format!("{}/bench/greeter:1.0.0", bench.registry.address());
    let scratch = tempfile::tempdir().expect("temp");
    let (publisher, _) = bench
        .host(bench.config(&scratch.path().join("p"), None))
        .await;
    bench.publish(&publisher, "greeter", &reference).await;

    let registries = Registries::new(&[bench.registry.address()]);
    let parsed = Registries::reference(&reference).expect("reference");
    let mut pulls = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        registries.pull(&parsed, None).await.expect("pull");
        pulls.push(started.elapsed());
    }

    let install = Install {
        source: reference.clone(),
        allow_unsigned: false,
        approve: true,
    };
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..rounds {
        let cache = scratch.path().join(format!("cache-{round}"));
        for (samples, label) in [(&mut cold, "cold"), (&mut warm, "warm")] {
            // The same cache folder: the second install finds the component compiled.
            let (host, packages) = bench.host(bench.config(&cache, None)).await;
            let started = Instant::now();
            packages.install(&install).await.expect("install");
            let answer = host.say("!greet").await;
            samples.push(started.elapsed());
            assert_eq!(answer, ["hello from greeter 1.0.0"], "{label}");
        }
    }
    println!(
        "install -> first answer, cold compile cache: median {:.1} ms ({rounds} rounds)",
        ms(median(cold))
    );
    println!(
        "install -> first answer, warm compile cache: median {:.1} ms",
        ms(median(warm))
    );
    println!(
        "of which the registry: pull (manifest + 3 blobs) median {:.1} ms",
        ms(median(pulls))
    );

    // An update under load.
    let index_dir = tempfile::tempdir().expect("temp");
    let newer = format!("{}/bench/greeter:1.1.0", bench.registry.address());
    let (host, packages) = bench
        .host(bench.config(&scratch.path().join("load"), Some(index_dir.path())))
        .await;
    bench.publish(&host, "greeter-1-1", &newer).await;
    let write_index = |references: Vec<String>| {
        let registries = Registries::new(&[bench.registry.address()]);
        let secret = bench.secret.clone();
        let dir = index_dir.path().to_owned();
        async move {
            let (index, signature) =
                packages::build_index(&registries, Index::default(), &references, &secret, None)
                    .await
                    .expect("index");
            std::fs::write(dir.join("index.json"), index.to_bytes()).expect("write");
            std::fs::write(dir.join("index.json.minisig"), signature).expect("write");
        }
    };
    write_index(vec![reference.clone()]).await;
    packages
        .install(&Install {
            source: "greeter".into(),
            allow_unsigned: false,
            approve: true,
        })
        .await
        .expect("install");
    write_index(vec![reference.clone(), newer.clone()]).await;
    let host = Arc::new(host);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, answered, new) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let senders: Vec<_> = (0..env_or("SENDERS", 8))
        .map(|_| {
            let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
            let (sent, answered, new) =
                (Arc::clone(&sent), Arc::clone(&answered), Arc::clone(&new));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    sent.fetch_add(1, Ordering::Relaxed);
                    let answers = host.say("!greet").await;
                    if let [answer] = answers.as_slice() {
                        answered.fetch_add(1, Ordering::Relaxed);
                        if answer.ends_with("1.1.0") {
                            new.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let report = packages.update(None, false).await.expect("update");
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        let _ = sender.await;
    }
    let (sent, answered, new) = (
        sent.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
        new.load(Ordering::Relaxed),
    );
    println!(
        "update under load: {} in {:.1} ms; {sent} events sent, {answered} answered ({new} by 1.1.0), {} dropped",
        report[0].status,
        ms(took),
        sent - answered
    );
}
