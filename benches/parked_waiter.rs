//! Long run of issue 8, item 4: does one parked waiter make memory and the
//! data directories grow with the number of operations? Three durable
//! nodes in this process; B holds `leader`, A waits for it (the standby
//! pattern), and 8 tasks on A loop `try_lock` + `unlock` on their own
//! names. Every report interval it prints the pairs done, this process's
//! RSS, and the size of each data directory (log segments plus snapshot).
//!
//! ```text
//! cargo bench --bench parked_waiter                      # 5 minutes, a line per minute
//! PEERLOCK_BENCH_QUICK=1 cargo bench --bench parked_waiter  # 12 s, a line every 3 s
//! ```
//! Before the fix RSS went 15 -> 84 MiB and the directories to 7 MiB in
//! 40 s; bounded bookkeeping keeps both flat after warm-up.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::Node;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::var_os("PEERLOCK_BENCH_QUICK").is_some();
    let (total, every) = if quick {
        (Duration::from_secs(12), Duration::from_secs(3))
    } else {
        (Duration::from_secs(300), Duration::from_secs(60))
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let ca = ClusterCa::generate("parked").expect("CA");
    let socks: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs: Vec<_> = socks
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let mut starts = Vec::new();
    for (i, s) in socks.into_iter().enumerate() {
        let b = Node::builder()
            .socket(s)
            .peers(addrs.clone())
            .tls(
                ca.issue_node(&format!("p-{i}"), &["127.0.0.1"])
                    .expect("cert"),
            )
            .data_dir(tmp.path().join(format!("node-{i}")));
        starts.push(tokio::spawn(b.start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.expect("join").expect("start"));
    }
    for n in &nodes {
        n.ready().await.expect("ready");
    }
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let held = b.lock("leader").await.expect("B holds leader");
    let standby = {
        let a = a.clone();
        tokio::spawn(async move { a.lock("leader").await })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (a, stop, pairs) = (a.clone(), stop.clone(), pairs.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                if let Ok(Some(g)) = a.try_lock(&format!("own/{t}/{}", i % 64)).await {
                    let _ = g.unlock().await;
                    pairs.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    println!("elapsed_s pairs rss_mib data_dir_kib(node-0 node-1 node-2)");
    let t0 = Instant::now();
    while t0.elapsed() < total {
        tokio::time::sleep(every).await;
        let dirs: Vec<String> = (0..3)
            .map(|i| (dir_bytes(&tmp.path().join(format!("node-{i}"))) / 1024).to_string())
            .collect();
        println!(
            "{:>9.0} {:>6} {:>7.1} {}",
            t0.elapsed().as_secs_f64(),
            pairs.load(Ordering::Relaxed),
            rss_mib(),
            dirs.join(" ")
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    drop(held);
    let _ = tokio::time::timeout(Duration::from_secs(10), standby).await;
    for n in &nodes {
        let _ = n.shutdown().await;
    }
}
