//! Issue 8, item 5: a follower that missed a compaction catches up through
//! a snapshot of a large table, larger than the 64 MiB frame limit (which
//! used to drop it at framing, every second, forever). Long runs, ignored
//! in CI (the transport's tests t13 to t16 and the driver's compaction
//! tests cover the parts); run with
//! `cargo test --release --test cluster stress_issue_8 -- --ignored --nocapture`.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::{Error, LockGuard, Node};
use peerlock_core::machine::MAX_LOCK_ENTRIES;

use crate::common::{init_tracing, sockets};

/// Generous: these runs move hundreds of MiB.
const LONG: Duration = Duration::from_secs(300);

async fn start(
    ca: &ClusterCa,
    i: usize,
    sock: UdpSocket,
    peers: &[std::net::SocketAddr],
    dir: &std::path::Path,
) -> Node {
    Node::builder()
        .socket(sock)
        .peers(peers.to_vec())
        .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
        .data_dir(dir)
        .session_ttl(Duration::from_secs(10))
        .startup_timeout(LONG)
        .start()
        .await
        .expect("node starts")
}

/// Takes `names` on `node` with `tasks` concurrent callers; keeps the guards.
async fn take_all(node: &Arc<Node>, names: Vec<String>, tasks: usize) -> Vec<LockGuard> {
    let names = Arc::new(parking_lot::Mutex::new(names));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (node, names) = (Arc::clone(node), Arc::clone(&names));
        handles.push(tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Some(name) = names.lock().pop() else {
                    return held;
                };
                let g = tokio::time::timeout(LONG, node.try_lock(&name))
                    .await
                    .expect("try_lock in time")
                    .expect("try_lock")
                    .expect("a fresh name is free");
                held.push(g);
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

/// Churn: `pairs` try_lock + unlock on names of their own.
async fn churn(node: &Arc<Node>, pairs: usize, tasks: usize) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let node = Arc::clone(node);
        handles.push(tokio::spawn(async move {
            for p in 0..pairs / tasks {
                let name = format!("churn-{t}-{}", p % 16);
                let g = node.try_lock(&name).await.expect("churn").expect("free");
                g.unlock().await.expect("unlock");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

async fn follower_catches_up(count: usize, name_len: usize) {
    init_tracing();
    let ca = ClusterCa::generate("t95").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (socks, addrs) = sockets(3);
    let mut nodes = Vec::new();
    let mut starts = Vec::new();
    for (i, s) in socks.into_iter().enumerate() {
        let (ca, addrs, dir) = (ca.clone(), addrs.clone(), dirs[i].path().to_owned());
        starts.push(tokio::spawn(
            async move { start(&ca, i, s, &addrs, &dir).await },
        ));
    }
    for s in starts {
        nodes.push(Arc::new(s.await.unwrap()));
    }
    for n in &nodes {
        n.ready().await.unwrap();
    }
    let leader = loop {
        if let Some(i) = nodes.iter().position(|n| n.status().is_leader()) {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let follower = (leader + 1) % 3;
    let at = Instant::now();
    let names: Vec<String> = (0..count).map(|n| format!("{n:0>name_len$}")).collect();
    let probe = names[0].clone();
    let guards = take_all(&nodes[leader], names, 64).await;
    println!(
        "{count} locks of {name_len} bytes taken in {:?}",
        at.elapsed()
    );
    peerlock::testing::crash(&nodes[follower]).await;
    let at = Instant::now();
    churn(&nodes[leader], 25_000, 16).await;
    println!("25 000 churn pairs in {:?}", at.elapsed());
    let sock = loop {
        match UdpSocket::bind(addrs[follower]) {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    };
    let at = Instant::now();
    let f = start(&ca, follower, sock, &addrs, dirs[follower].path()).await;
    let info = tokio::time::timeout(LONG, async {
        loop {
            if let Ok(Ok(Some(info))) =
                tokio::time::timeout(Duration::from_secs(5), f.holder(&probe)).await
            {
                return info;
            }
        }
    })
    .await
    .expect("the follower caught up");
    println!(
        "{count} locks of {name_len} bytes: the restarted follower answered after {:?}",
        at.elapsed()
    );
    assert_eq!(info.holder.as_str(), format!("node-{leader}"));
    assert!(guards.iter().any(|g| g.token() == info.token));
    let mut guards = guards;
    if count + 1_000 > MAX_LOCK_ENTRIES {
        // Fill to the limit through the restarted follower: the next
        // acquire is refused with the typed error.
        let mut n = 0;
        let err = loop {
            match f.try_lock(&format!("fill-{n}")).await {
                Ok(Some(g)) => guards.push(g),
                Ok(None) => panic!("a fresh name was busy"),
                Err(e) => break e,
            }
            n += 1;
        };
        assert!(
            matches!(err, Error::TableFull { limit } if limit == MAX_LOCK_ENTRIES),
            "{err}"
        );
        assert_eq!(guards.len(), MAX_LOCK_ENTRIES, "refused only at the limit");
        println!("at the limit: {err}");
    }
    drop(guards);
    peerlock::testing::crash(&f).await;
    for n in &nodes {
        peerlock::testing::crash(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long run: a snapshot of ~75 MiB"]
async fn stress_issue_8_150k_long_names_follower_catches_up() {
    follower_catches_up(150_000, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long run"]
async fn stress_issue_8_40k_long_names_follower_catches_up() {
    follower_catches_up(40_000, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long run: a million locks"]
async fn stress_issue_8_1m_short_names_follower_catches_up() {
    // Just below the limit, so the churn (16 locks at a time) fits.
    follower_catches_up(MAX_LOCK_ENTRIES - 100, 8).await;
}
