//! A periodic job on exactly one instance: three nodes in one process (as
//! three instances of a service would be), each calling `run_as_leader`
//! for the election "scheduler". The leader runs the job every 200 ms,
//! writing each run to a job log that refuses stale fencing tokens. After
//! three seconds the leader's node crashes; another node's job takes over
//! once the crashed leader's session has expired. Then the new leader is
//! stopped gracefully, and the last node takes over at once.
//!
//! It prints who ran each tick and checks that no two jobs ever ran at
//! once and that every run was accepted; exits non-zero otherwise.
//!
//! ```text
//! cargo run --release --example scheduler
//! ```

use std::net::UdpSocket;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use peerlock::certs::ClusterCa;
use peerlock::{FencingToken, Leadership, Node};

const TTL: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(200);

/// The job's output: a log that accepts a run only with a token at least
/// as high as the highest it has seen (what a database row with a
/// `token` column and `WHERE token <= $new` would do).
#[derive(Default)]
struct JobLog {
    highest: u64,
    runs: Vec<(usize, u64)>,
    stale_rejected: u64,
}

impl JobLog {
    fn record(&mut self, node: usize, token: FencingToken) -> bool {
        if token.get() < self.highest {
            self.stale_rejected += 1;
            return false;
        }
        self.highest = token.get();
        self.runs.push((node, token.get()));
        true
    }
}

async fn start_cluster() -> Result<Vec<Node>, peerlock::Error> {
    let ca = ClusterCa::generate("scheduler")?;
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
            .in_memory()
            .session_ttl(TTL);
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

/// The periodic job: runs every `TICK` while this node leads. It is
/// dropped (mid-sleep or mid-write) as soon as the term may be over.
async fn job(node: usize, l: Leadership, log: Arc<Mutex<JobLog>>, running: Arc<AtomicUsize>) {
    struct Running(Arc<AtomicUsize>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    if running.fetch_add(1, Ordering::SeqCst) != 0 {
        println!("!! node-{node} started while another job ran");
    }
    let _running = Running(running);
    println!("node-{node} leads (token {})", l.token());
    loop {
        if !log.lock().record(node, l.token()) {
            println!("!! node-{node}'s run was refused: a newer leader exists");
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn run() -> Result<bool, peerlock::Error> {
    let nodes = start_cluster().await?;
    println!("3 nodes ready; each runs run_as_leader(\"scheduler\")");
    let log = Arc::new(Mutex::new(JobLog::default()));
    let running = Arc::new(AtomicUsize::new(0));
    let mut tasks: Vec<Option<peerlock::LeaderTask>> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (log, running) = (log.clone(), running.clone());
        tasks.push(Some(node.run_as_leader("scheduler", move |l| {
            job(i, l, log.clone(), running.clone())
        })));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let Some(first) = nodes[0].leader("scheduler").await? else {
        println!("nobody leads after 3 s");
        return Ok(false);
    };
    let crashed = nodes
        .iter()
        .position(|n| n.status().name == first.holder)
        .unwrap_or(0);
    println!("crashing node-{crashed}, the leader...");
    let crash = Instant::now();
    peerlock::testing::crash(&nodes[crashed]).await;
    let survivor = (crashed + 1) % 3;
    let second = loop {
        if let Ok(Some(l)) = nodes[survivor].leader("scheduler").await {
            if l.token > first.token {
                break l;
            }
        }
        if crash.elapsed() > TTL * 10 {
            println!("no new leader within {:?}", TTL * 10);
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "{} took over {:.1?} after the crash (the session TTL is {TTL:?})",
        second.holder,
        crash.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = nodes
        .iter()
        .position(|n| n.status().name == second.holder)
        .unwrap_or(survivor);
    println!("stopping node-{stopped}'s task gracefully...");
    let stop = Instant::now();
    if let Some(t) = tasks[stopped].take() {
        t.stop().await?;
    }
    loop {
        if let Ok(Some(l)) = nodes[survivor].leader("scheduler").await {
            if l.token > second.token {
                println!(
                    "{} took over {:.0?} after the stop",
                    l.holder,
                    stop.elapsed()
                );
                break;
            }
        }
        if stop.elapsed() > TTL * 5 {
            println!("no leader after the stop");
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for t in tasks.into_iter().flatten() {
        let _ = t.stop().await;
    }
    let log = log.lock();
    let mut by_node = [0usize; 3];
    for (n, _) in &log.runs {
        by_node[*n] += 1;
    }
    println!(
        "runs: node-0 {}, node-1 {}, node-2 {}; stale runs refused: {}",
        by_node[0], by_node[1], by_node[2], log.stale_rejected
    );
    let rising = log.runs.windows(2).all(|w| w[0].1 <= w[1].1);
    let ok = log.stale_rejected == 0 && rising && running.load(Ordering::SeqCst) == 0;
    println!(
        "{}",
        if ok {
            "OK: one job at a time, every run accepted"
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
