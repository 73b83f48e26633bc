//! A real OCI registry for the package tests: Debian's `docker-registry` (the CNCF
//! distribution registry) serving plain HTTP on a loopback port, its storage in a temp
//! folder, for the test's lifetime. Tests push to and pull from what production talks to,
//! not a fake that agrees with the client by construction.

use std::{
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a registry has to answer `GET /v2/` after it starts (it takes about 0.1 s).
const READY_WITHIN: Duration = Duration::from_secs(20);
/// Tries of a fresh port when the registry loses the one it was given to another process
/// (the port is free when chosen, not reserved).
const PORT_TRIES: usize = 3;

/// A real OCI registry (Debian's `docker-registry`) on 127.0.0.1, for the test's lifetime.
pub struct OciRegistry {
    /// `None` once stopped.
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    // Dropped after the child is killed (fields drop after `Drop::drop`): the registry never
    // sees its storage vanish while it runs.
    _dir: tempfile::TempDir,
}

impl OciRegistry {
    /// Starts one on a free port with its storage in a temp folder; waits until `GET /v2/`
    /// answers 200 (up to ~20 s, polling every 50 ms; panics with the registry's stderr/log
    /// tail if it never does).
    pub async fn start() -> Self {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::try_start().await {
                Ok(registry) => return registry,
                Err(failure) if failure.port_lost && tries < PORT_TRIES => continue,
                Err(failure) => panic!("{}", failure.message),
            }
        }
    }

    /// `127.0.0.1:PORT`, the registry part of a reference.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the registry (SIGKILL + wait) — for "unreachable registry" tests; idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is as good as killed; the wait reaps it either way, so no
            // zombie outlives the test and the port is free once this returns.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn try_start() -> Result<Self, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("wasmbot-oci-registry-")
            .tempdir()
            .expect("a temp folder for the OCI registry");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(&config, config_yaml(&dir.path().join("data"), port))
            .unwrap_or_else(|error| panic!("writing {}: {error}", config.display()));
        let log = dir.path().join("registry.log");
        let stdout = File::create(&log)
            .unwrap_or_else(|error| panic!("creating {}: {error}", log.display()));
        let stderr = stdout
            .try_clone()
            .unwrap_or_else(|error| panic!("sharing {}: {error}", log.display()));
        let child = match Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
        {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                panic!(
                    "docker-registry is not installed: .ci/run installs it (apt-get install docker-registry)"
                )
            }
            Err(error) => panic!("starting docker-registry: {error}"),
        };
        // From here on a failure drops the registry, which kills the child.
        let mut registry = Self {
            child: Some(child),
            port,
            log,
            _dir: dir,
        };
        match registry.wait_ready().await {
            Ok(()) => Ok(registry),
            Err(why) => {
                registry.stop();
                let tail = registry.log_tail();
                Err(StartFailure {
                    port_lost: tail.contains("address already in use"),
                    message: format!(
                        "the OCI registry on {} {why}; its log ends:\n{tail}",
                        registry.address()
                    ),
                })
            }
        }
    }

    /// Polls `GET /v2/` until it answers 200, while the child runs: an exited child means
    /// whatever answers on the port is not this registry.
    async fn wait_ready(&mut self) -> Result<(), String> {
        // No proxy: a CI machine's HTTP_PROXY must not carry requests meant for loopback.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("an HTTP client for the registry's readiness probe");
        let url = format!("http://{}/v2/", self.address());
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        return Err(format!("exited ({status}) before it answered"));
                    }
                    Ok(None) => {}
                    Err(error) => return Err(format!("could not be watched: {error}")),
                }
            }
            let last = match client.get(&url).send().await {
                Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
                Ok(response) => format!("answered {}", response.status()),
                // The chain: reqwest's own message alone never says why (refused, reset).
                Err(error) => format!("failed: {:#}", anyhow::Error::new(error)),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "did not answer GET /v2/ with 200 within {READY_WITHIN:?} (the last try {last})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the registry's stdout and stderr.
    fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(40);
                lines[from..].join("\n")
            }
            Err(error) => format!("(unreadable: {error})"),
        }
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

struct StartFailure {
    /// Another process took the port between choosing it and the registry binding it.
    port_lost: bool,
    message: String,
}

/// A loopback port nothing listens on now: the kernel's pick for port 0, released at once.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port for the OCI registry")
}

/// The registry's configuration: quiet (errors only, no access log, which would write a
/// line per request), storage under `data`, deletes allowed (the registry answers DELETE
/// with 405 UNSUPPORTED otherwise), plain HTTP on loopback.
fn config_yaml(data: &Path, port: u16) -> String {
    // Quoted: a temp path is plain today, but YAML would read a `: ` or `#` in it.
    let data = format!("{:?}", data.display().to_string());
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n"
    )
}
