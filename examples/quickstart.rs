//! peerlock's main job: three nodes in one process on 127.0.0.1 over real
//! QUIC with a freshly generated cluster CA. Workers on every node move
//! money between accounts under `with_lock`, writing to a ledger that
//! refuses stale fencing tokens. After about ten seconds it prints critical
//! sections per second, acquire latency and an audit; then it crashes the
//! node holding a lock and measures how long a waiter elsewhere waits.
//!
//! Exits non-zero if any check fails.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use peerlock::certs::ClusterCa;
use peerlock::{FencingToken, Node};

const ACCOUNTS: usize = 4;
const WORKERS_PER_NODE: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(2);

/// One account in the in-process ledger: it accepts a write only with a
/// token at least as high as the highest it has seen.
#[derive(Default)]
struct Account {
    balance: i64,
    highest: u64,
    accepted_tokens: Vec<u64>,
    stale_rejected: u64,
}

#[derive(Default)]
struct Ledger {
    accounts: BTreeMap<usize, Account>,
}

impl Ledger {
    fn balance(&self, a: usize) -> i64 {
        self.accounts.get(&a).map_or(0, |x| x.balance)
    }

    /// A fenced write: refused if `token` is older than one already seen.
    fn write_fenced(&mut self, token: FencingToken, a: usize, balance: i64) -> bool {
        let acc = self.accounts.entry(a).or_default();
        if token.get() < acc.highest {
            acc.stale_rejected += 1;
            return false;
        }
        acc.highest = token.get();
        acc.balance = balance;
        acc.accepted_tokens.push(token.get());
        true
    }
}

/// An empty latency histogram in microseconds, 1 µs to 60 s at 3
/// significant digits (issue 12, item 9: figures from a kept histogram
/// crate, not a hand-written percentile).
fn latency_histogram() -> Histogram<u64> {
    // Cannot fail: the bounds are constant and valid (low >= 1,
    // high >= 2 * low, 3 significant figures <= 5).
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid bounds")
}

/// A duration as whole microseconds, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn start_cluster() -> Result<Vec<Node>, peerlock::Error> {
    let ca = ClusterCa::generate("quickstart")?;
    let sockets: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<_> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let mut starts = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let tls = ca.issue_node(&format!("node-{i}"), &["127.0.0.1"])?;
        let builder = Node::builder()
            .socket(socket)
            .peers(addrs.clone())
            .tls(tls)
            .in_memory()
            .session_ttl(TTL)
            .startup_timeout(Duration::from_secs(20));
        starts.push(tokio::spawn(builder.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(
            s.await
                .map_err(|e| peerlock::Error::Config(e.to_string()))??,
        );
    }
    for n in &nodes {
        tokio::time::timeout(Duration::from_secs(20), n.ready())
            .await
            .map_err(|_| peerlock::Error::Timeout)??;
    }
    Ok(nodes)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERLOCK_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,peerlock::raft=error")
            }),
        )
        .init();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("\nFAILED: see the checks above");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, peerlock::Error> {
    println!("starting 3 peerlock nodes on 127.0.0.1 (QUIC, mutual TLS, fresh CA)...");
    let t0 = Instant::now();
    let nodes = start_cluster().await?;
    println!("cluster ready in {:.0?}", t0.elapsed());

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for a in 0..ACCOUNTS {
        ledger.lock().accounts.entry(a).or_default().balance = 1_000;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..WORKERS_PER_NODE {
            let node = node.clone();
            let ledger = ledger.clone();
            let stop = stop.clone();
            workers.push(tokio::spawn(async move {
                let mut latencies = latency_histogram();
                let mut sections = 0u64;
                let mut failures = 0u64;
                let mut seed = (n * 31 + w * 7 + 1) as u64;
                while !stop.load(Ordering::Relaxed) {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (seed >> 33) as usize % ACCOUNTS;
                    let to = (from + 1 + (seed >> 40) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                    let amount = ((seed >> 20) % 50) as i64 + 1;
                    // One lock per account, taken in a fixed order (no deadlock);
                    // each account is written with its own lock's token.
                    let (lo, hi) = (from.min(to), from.max(to));
                    let asked = Instant::now();
                    let result = node
                        .with_lock(&format!("account/{lo}"), async |g_lo| {
                            node.with_lock(&format!("account/{hi}"), async |g_hi| {
                                let waited = asked.elapsed();
                                let token =
                                    |a: usize| if a == lo { g_lo.token() } else { g_hi.token() };
                                let mut l = ledger.lock();
                                let (fb, tb) = (l.balance(from), l.balance(to));
                                let ok_from = l.write_fenced(token(from), from, fb - amount);
                                let ok_to = l.write_fenced(token(to), to, tb + amount);
                                (waited, ok_from && ok_to)
                            })
                            .await
                        })
                        .await
                        .and_then(|inner| inner);
                    match result {
                        Ok((waited, true)) => {
                            latencies.saturating_record(micros(waited));
                            sections += 1;
                        }
                        Ok((_, false)) | Err(_) => failures += 1,
                    }
                }
                (latencies, sections, failures)
            }));
        }
    }
    tokio::time::sleep(RUN_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = latency_histogram();
    let (mut sections, mut failures) = (0u64, 0u64);
    for w in workers {
        let (l, s, f) = w
            .await
            .map_err(|e| peerlock::Error::Config(e.to_string()))?;
        latencies
            .add(&l)
            .map_err(|e| peerlock::Error::Config(e.to_string()))?;
        sections += s;
        failures += f;
    }
    let secs = RUN_FOR.as_secs_f64();
    println!(
        "\n== {} workers on 3 nodes, {:.0} s ==",
        3 * WORKERS_PER_NODE,
        secs
    );
    println!(
        "critical sections:   {sections} ({:.0}/s)",
        sections as f64 / secs
    );
    println!(
        "acquire latency:     p50 {:.2} ms, p99 {:.2} ms",
        latencies.value_at_quantile(0.50) as f64 / 1e3,
        latencies.value_at_quantile(0.99) as f64 / 1e3
    );
    let mut ok = true;
    let (total, stale, rising) = {
        let l = ledger.lock();
        let total: i64 = l.accounts.values().map(|a| a.balance).sum();
        let stale: u64 = l.accounts.values().map(|a| a.stale_rejected).sum();
        let rising = l
            .accounts
            .values()
            .all(|a| a.accepted_tokens.windows(2).all(|w| w[0] < w[1]));
        (total, stale, rising)
    };
    let check = |name: &str, pass: bool, ok: &mut bool| {
        println!("audit: {name:<44} {}", if pass { "ok" } else { "FAILED" });
        *ok &= pass;
    };
    check(
        &format!("balances add up ({total} = {})", 1_000 * ACCOUNTS as i64),
        total == 1_000 * ACCOUNTS as i64,
        &mut ok,
    );
    check(
        &format!("no stale write accepted ({stale} refused)"),
        stale == 0,
        &mut ok,
    );
    check("tokens strictly increasing per account", rising, &mut ok);
    check(
        &format!("no failed critical section ({failures})"),
        failures == 0,
        &mut ok,
    );
    check("progress was made", sections > 0, &mut ok);

    // Crash the node holding a lock; a waiter on another node gets it once
    // the holder's session expires (TTL) on the surviving majority.
    println!("\n== failover: crash the holder (no shutdown), TTL {TTL:?} ==");
    let leader = nodes
        .iter()
        .position(|n| n.status().is_leader())
        .unwrap_or(0);
    let waiter_ix = (leader + 1) % 3;
    let held = nodes[leader].lock("failover-demo").await?;
    let old_token = held.token();
    let waiter = {
        let n = nodes[waiter_ix].clone();
        tokio::spawn(async move { n.lock("failover-demo").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let crashed_at = Instant::now();
    peerlock::testing::crash(&nodes[leader]).await;
    println!("crashed node-{leader} (it was also the Raft leader) holding token {old_token}");
    let granted = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .map_err(|_| peerlock::Error::Timeout)?
        .map_err(|e| peerlock::Error::Config(e.to_string()))??;
    let took = crashed_at.elapsed();
    println!(
        "node-{waiter_ix} was granted the lock {:.2} s after the crash, token {}",
        took.as_secs_f64(),
        granted.token()
    );
    check(
        "new token above the crashed holder's",
        granted.token() > old_token,
        &mut ok,
    );
    check(
        "the old guard knows it lost the lease",
        !held.is_held(),
        &mut ok,
    );
    check(
        "hand-over within TTL + 3 s",
        took <= TTL + Duration::from_secs(3),
        &mut ok,
    );
    drop(granted);
    // Shut the survivors down together, so each still has a quorum to
    // close its session with.
    let mut stops = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if i != leader {
            let n = n.clone();
            stops.push(tokio::spawn(async move { n.shutdown().await }));
        }
    }
    for s in stops {
        s.await
            .map_err(|e| peerlock::Error::Config(e.to_string()))??;
    }
    println!(
        "\n{}",
        if ok {
            "all checks passed"
        } else {
            "some checks FAILED"
        }
    );
    Ok(ok)
}
