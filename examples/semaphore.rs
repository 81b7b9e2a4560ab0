//! A semaphore limiting concurrent calls to a slow resource: three nodes
//! in one process (as three instances of a service would be), each with
//! four workers that call a "payment provider" taking 100 ms per call. The
//! provider allows at most 3 calls at once across the whole service, so
//! every call takes a permit of the semaphore "payments" (3 permits) first
//! and hands the permit's fencing token along.
//!
//! The provider counts the calls in flight itself and prints the most it
//! saw at once; the example checks that it never exceeded the permits and
//! exits non-zero otherwise. It finishes in a few seconds.
//!
//! ```text
//! cargo run --release --example semaphore
//! ```

use std::net::UdpSocket;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::{FencingToken, Node};

const PERMITS: u32 = 3;
const WORKERS_PER_NODE: usize = 4;
const CALLS_PER_WORKER: usize = 5;
const CALL_TIME: Duration = Duration::from_millis(100);

/// The slow resource: counts the calls in flight, as a provider's rate
/// limiter would.
#[derive(Default)]
struct Provider {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

impl Provider {
    async fn call(&self, _token: FencingToken) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(CALL_TIME).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

async fn start_cluster() -> Result<Vec<Node>, peerlock::Error> {
    let ca = ClusterCa::generate("semaphore")?;
    let sockets: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<_> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let mut starts = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let builder = Node::builder()
            .socket(socket)
            .peers(addrs.clone())
            .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"])?)
            .in_memory();
        starts.push(tokio::spawn(builder.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        let node = s
            .await
            .map_err(|e| peerlock::Error::Config(e.to_string()))??;
        nodes.push(node);
    }
    for n in &nodes {
        n.ready().await?;
    }
    Ok(nodes)
}

async fn run() -> Result<bool, peerlock::Error> {
    let nodes = start_cluster().await?;
    println!(
        "3 nodes ready; {} workers call a provider that allows {PERMITS} calls at once",
        3 * WORKERS_PER_NODE
    );
    let provider = Arc::new(Provider::default());
    let started = Instant::now();
    let mut workers = Vec::new();
    for node in &nodes {
        for _ in 0..WORKERS_PER_NODE {
            let sem = node.semaphore("payments", PERMITS);
            let provider = provider.clone();
            workers.push(tokio::spawn(async move {
                for _ in 0..CALLS_PER_WORKER {
                    let permit = sem.acquire(1).await?;
                    provider.call(permit.token()).await;
                    permit.release().await?;
                }
                Ok::<_, peerlock::Error>(())
            }));
        }
    }
    for w in workers {
        w.await
            .map_err(|e| peerlock::Error::Config(e.to_string()))??;
    }
    let most = provider.most.load(Ordering::SeqCst);
    let calls = provider.calls.load(Ordering::SeqCst);
    let took = started.elapsed();
    println!(
        "{calls} calls in {took:.1?}; at most {most} in flight at once (permits: {PERMITS}; \
         {:.1?} if they ran one at a time)",
        CALL_TIME * calls as u32
    );
    // The last node to stop has no quorum left to close its session with;
    // its session would simply expire. Nothing is held here, so ignore it.
    for n in &nodes {
        let _ = n.shutdown().await;
    }
    let ok = most as u32 <= PERMITS && calls == 3 * WORKERS_PER_NODE * CALLS_PER_WORKER;
    println!(
        "{}",
        if ok {
            "OK: the permits were never exceeded"
        } else {
            "FAILED: more calls in flight than permits"
        }
    );
    Ok(ok)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
