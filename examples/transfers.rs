//! Money moves between accounts under atomic multi-locks, and auditors
//! count it under a read-write lock: three nodes in one process, as three
//! instances of a service would be.
//!
//! - A transfer locks both accounts at once with `with_locks`: one log
//!   entry, both or neither, so transfers that name the same accounts in
//!   opposite orders never deadlock. The ledger refuses a write whose
//!   fencing token is below the highest it saw for an account.
//! - Every transfer also holds the read lock "books": transfers run side by
//!   side (readers share), and an audit takes the write lock "books", so it
//!   sees no transfer half done and the total is always the same.
//!
//! The example checks both (the total at every audit, no transfer in
//! flight during one) and that transfers overlapped, and exits non-zero
//! otherwise. It finishes in a few seconds.
//!
//! ```text
//! cargo run --release --example transfers
//! ```

use std::net::UdpSocket;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use peerlock::certs::ClusterCa;
use peerlock::{FencingToken, Node};

const ACCOUNTS: usize = 6;
const OPENING: i64 = 100;
const WORKERS_PER_NODE: usize = 3;
const TRANSFERS_PER_WORKER: usize = 12;
const AUDITS: usize = 6;
/// How long the ledger takes to apply a transfer (so that transfers overlap).
const WRITE_TIME: Duration = Duration::from_millis(20);

/// The fenced resource: balances, and per account the highest token that
/// wrote it.
struct Ledger {
    balances: Mutex<Vec<i64>>,
    fences: Mutex<Vec<u64>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    refused: AtomicUsize,
    done: AtomicUsize,
}

impl Ledger {
    fn new() -> Self {
        Self {
            balances: Mutex::new(vec![OPENING; ACCOUNTS]),
            fences: Mutex::new(vec![0; ACCOUNTS]),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }

    /// Moves `amount` from `from` to `to`, unless `token` is older than a
    /// token that already wrote either account.
    async fn transfer(&self, from: usize, to: usize, amount: i64, token: FencingToken) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(WRITE_TIME).await;
        {
            let mut fences = self.fences.lock();
            let t = token.get();
            if t < fences[from] || t < fences[to] {
                self.refused.fetch_add(1, Ordering::SeqCst);
            } else {
                fences[from] = t;
                fences[to] = t;
                let mut b = self.balances.lock();
                b[from] -= amount;
                b[to] += amount;
                self.done.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn total(&self) -> i64 {
        self.balances.lock().iter().sum()
    }
}

/// A small xorshift generator: the example needs no randomness crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn start_cluster() -> Result<Vec<Node>, peerlock::Error> {
    let ca = ClusterCa::generate("transfers")?;
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

/// One worker's transfers: each under the read lock "books" and both
/// accounts' locks, named in a random order.
async fn transfers(node: Node, ledger: Arc<Ledger>, seed: u64) -> Result<(), peerlock::Error> {
    let mut rng = Rng(seed);
    for _ in 0..TRANSFERS_PER_WORKER {
        let from = rng.below(ACCOUNTS);
        let to = (from + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
        let amount = 1 + rng.below(10) as i64;
        let names = [format!("acct/{from}"), format!("acct/{to}")];
        let names = if rng.below(2) == 0 {
            names
        } else {
            [names[1].clone(), names[0].clone()]
        };
        let books = node.read_lock("books").await?;
        let ledger = ledger.clone();
        node.with_locks(names, async move |g| {
            ledger.transfer(from, to, amount, g.token()).await
        })
        .await?;
        books.unlock().await?;
    }
    Ok(())
}

/// Audits under the write lock "books": no transfer can be half done.
/// Returns the audits whose total was wrong or that saw a transfer in
/// flight.
async fn audits(node: Node, ledger: Arc<Ledger>) -> Result<usize, peerlock::Error> {
    let mut bad = 0;
    for _ in 0..AUDITS {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let w = node.write_lock("books").await?;
        let total = ledger.total();
        let busy = ledger.in_flight.load(Ordering::SeqCst);
        if total != OPENING * ACCOUNTS as i64 || busy != 0 {
            println!(
                "audit under token {}: total {total}, {busy} transfers in flight",
                w.token()
            );
            bad += 1;
        }
        w.unlock().await?;
    }
    Ok(bad)
}

async fn run() -> Result<bool, peerlock::Error> {
    let nodes = start_cluster().await?;
    println!(
        "3 nodes ready; {} workers move money between {ACCOUNTS} accounts, one auditor counts it",
        3 * WORKERS_PER_NODE
    );
    let ledger = Arc::new(Ledger::new());
    let started = Instant::now();
    let mut workers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for w in 0..WORKERS_PER_NODE {
            let seed = 0x9E37_79B9_7F4A_7C15 ^ ((i * WORKERS_PER_NODE + w + 1) as u64);
            workers.push(tokio::spawn(transfers(node.clone(), ledger.clone(), seed)));
        }
    }
    let auditor = tokio::spawn(audits(nodes[0].clone(), ledger.clone()));
    for w in workers {
        w.await
            .map_err(|e| peerlock::Error::Config(e.to_string()))??;
    }
    let bad_audits = auditor
        .await
        .map_err(|e| peerlock::Error::Config(e.to_string()))??;
    let done = ledger.done.load(Ordering::SeqCst);
    let refused = ledger.refused.load(Ordering::SeqCst);
    let most = ledger.most_in_flight.load(Ordering::SeqCst);
    println!(
        "{done} transfers in {:.1?} ({refused} refused as stale); at most {most} at once; \
         {AUDITS} audits, {bad_audits} wrong; total {} (opening {})",
        started.elapsed(),
        ledger.total(),
        OPENING * ACCOUNTS as i64
    );
    // The last node to stop has no quorum left to close its session with;
    // nothing is held here, so its expiry does not matter.
    for n in &nodes {
        let _ = n.shutdown().await;
    }
    let ok = bad_audits == 0
        && refused == 0
        && done == 3 * WORKERS_PER_NODE * TRANSFERS_PER_WORKER
        && ledger.total() == OPENING * ACCOUNTS as i64
        && most > 1;
    println!(
        "{}",
        if ok {
            "OK: every audit balanced, transfers overlapped, none deadlocked"
        } else {
            "FAILED"
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
