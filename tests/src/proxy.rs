//! A TCP proxy between a host and a real server (Postgres, Redis) that a test cuts and
//! restores: outages injected in the test itself, never by stopping the machine's shared
//! services. Cut, it closes every connection it carries and closes new ones as soon as they
//! arrive, as a server that went away; restored, it forwards again.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

struct Shared {
    upstream: SocketAddr,
    up: AtomicBool,
    /// Bumped on every cut: the connections of an earlier generation close.
    generation: watch::Sender<u64>,
    accepted: AtomicU64,
}

/// The proxy, serving until dropped.
pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        // Connections still carried end with their generation.
        self.shared
            .generation
            .send_modify(|generation| *generation += 1);
    }
}

impl Proxy {
    /// A proxy on a loopback port to the server of `url` (`postgres://user@host:port/db`,
    /// `redis://host:port`).
    pub async fn to(url: &str) -> Self {
        let (start, end) = authority(url);
        let host_port = &url[start..end];
        let upstream = match tokio::net::lookup_host(host_port)
            .await
            .map(|mut a| a.next())
        {
            Ok(Some(address)) => address,
            other => panic!("{url}: no address for {host_port}: {other:?}"),
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let address = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            upstream,
            up: AtomicBool::new(true),
            generation: watch::channel(0).0,
            accepted: AtomicU64::new(0),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Self {
            address,
            shared,
            task,
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (start, end) = authority(url);
        format!("{}{}{}", &url[..start], self.address, &url[end..])
    }

    /// The server goes away: connections close, new ones are closed at once.
    pub fn cut(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        self.shared
            .generation
            .send_modify(|generation| *generation += 1);
    }

    /// The server is back.
    pub fn restore(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
    }

    /// Connections it accepted, those it closed while cut included: how often the host
    /// tried to reach the server.
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

/// Where the `host:port` of a URL starts and ends.
fn authority(url: &str) -> (usize, usize) {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let rest = &url[after_scheme..];
    let end = after_scheme + rest.find(['/', '?']).unwrap_or(rest.len());
    let start = url[after_scheme..end]
        .rfind('@')
        .map_or(after_scheme, |at| after_scheme + at + 1);
    (start, end)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if !shared.up.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        tokio::spawn(carry(inbound, Arc::clone(&shared)));
    }
}

/// Forwards one connection both ways until either side closes or the proxy is cut.
async fn carry(mut inbound: TcpStream, shared: Arc<Shared>) {
    let mut generation = shared.generation.subscribe();
    let Ok(mut outbound) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = generation.changed() => {}
    }
}
