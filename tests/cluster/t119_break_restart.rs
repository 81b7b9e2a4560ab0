//! Breaking the primitives through a full durable restart and a paused
//! holder (helper `break`, issue 11).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock::{Error, Node};

use crate::common::{init_tracing, rebind, sockets, wait_until_async, within, WAIT};

fn durable(
    ca: &ClusterCa,
    addrs: &[SocketAddr],
    i: usize,
    sock: UdpSocket,
    dir: &Path,
) -> peerlock::NodeBuilder {
    Node::builder()
        .socket(sock)
        .peers(addrs.to_vec())
        .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
        .data_dir(dir)
        .session_ttl(Duration::from_millis(1500))
        .raft_tick(Duration::from_millis(20))
        .startup_timeout(WAIT)
}

async fn start_all(
    ca: &ClusterCa,
    addrs: &[SocketAddr],
    socks: Vec<UdpSocket>,
    dirs: &[std::path::PathBuf],
) -> Vec<Node> {
    let mut starts = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        starts.push(tokio::spawn(durable(ca, addrs, i, sock, &dirs[i]).start()));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().expect("node starts"));
    }
    for n in &nodes {
        within(n.ready()).await.expect("ready");
    }
    nodes
}

/// Permits, a read lock and a multi-lock are held (and a permit request
/// waits) when every node of a durable cluster is killed; all restart from
/// their directories. The old grants come back from the log, are freed
/// when their sessions expire, and new grants of every kind are given with
/// tokens above the old ones; the semaphore's count is still enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_restart_every_node_restarts_with_grants_held() {
    init_tracing();
    let ca = ClusterCa::generate("restart").unwrap();
    let (socks, addrs) = sockets(3);
    let base = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3).map(|i| base.path().join(format!("n{i}"))).collect();
    let nodes = start_all(&ca, &addrs, socks, &dirs).await;
    let p = within(nodes[0].semaphore("rs", 3).acquire(2))
        .await
        .unwrap();
    let r = within(nodes[1].read_lock("rr")).await.unwrap();
    let m = within(nodes[2].lock_all(["ra", "rb"])).await.unwrap();
    let waiting = {
        let n = nodes[1].clone();
        tokio::spawn(async move { n.semaphore("rs", 3).acquire(3).await.map(|_| ()) })
    };
    wait_until_async(|| async {
        let i = nodes[2].holders("rs").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    let top = p.token().max(r.token()).max(m.token());
    for n in &nodes {
        peerlock::testing::crash(n).await;
    }
    let _ = within(waiting).await.unwrap();
    drop((p, r, m));
    let mut socks = Vec::new();
    for a in &addrs {
        socks.push(rebind(*a).await);
    }
    let nodes = start_all(&ca, &addrs, socks, &dirs).await;
    // The old grants are still there right after the restart or already
    // expired; either way, they are gone within a few TTLs.
    for name in ["rs", "rr", "ra", "rb"] {
        wait_until_async(|| async { nodes[0].holders(name).await.ok()?.is_none().then_some(()) })
            .await;
    }
    let a = within(nodes[0].semaphore("rs", 3).acquire(2))
        .await
        .unwrap();
    let b = within(nodes[1].semaphore("rs", 3).try_acquire(2))
        .await
        .unwrap();
    assert!(b.is_none(), "4 permits of 3 after the restart");
    let w = within(nodes[1].write_lock("rr")).await.unwrap();
    let mm = within(nodes[2].lock_all(["rb", "ra"])).await.unwrap();
    for t in [a.token(), w.token(), mm.token()] {
        assert!(
            t > top,
            "a token after the restart is not above the old ones"
        );
    }
    drop((a, w, mm));
    for n in &nodes {
        peerlock::testing::crash(n).await;
    }
}

/// A permit holder's runtime is blocked past its TTL (a paused process);
/// another node is granted the permits meanwhile. When the holder runs
/// again its permit says `is_held() == false` at once, `lost()` completes,
/// its `release()` is `Ok`, and the same task may acquire again (a lost
/// grant does not make it `AlreadyHeld`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_restart_a_paused_permit_holder_sees_its_loss() {
    init_tracing();
    let ttl = Duration::from_secs(1);
    let ca = ClusterCa::generate("paused").unwrap();
    let (mut socks, addrs) = sockets(3);
    let builder = |i: usize, sock| {
        Node::builder()
            .socket(sock)
            .peers(addrs.clone())
            .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
            .in_memory()
            .session_ttl(ttl)
            .startup_timeout(WAIT)
    };
    let a_builder = builder(0, socks.remove(0));
    let (holds_tx, holds_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let a = a_builder.start().await.unwrap();
            tokio::time::timeout(WAIT, a.ready())
                .await
                .unwrap()
                .unwrap();
            let sem = a.semaphore("paused", 2);
            let p = sem.acquire(2).await.unwrap();
            let _ = holds_tx.send(());
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_secs(3)); // paused
            let held = p.is_held();
            let lost_at_once = tokio::time::timeout(Duration::from_millis(100), p.lost())
                .await
                .is_ok();
            let released = p.release().await;
            let again = sem.acquire_timeout(1, Duration::from_secs(10)).await;
            let _ = done_tx.send((held, lost_at_once, released, again.map(|p| p.token())));
            peerlock::testing::crash(&a).await;
        });
    });
    let mut others = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        others.push(tokio::spawn(builder(i + 1, sock).start()));
    }
    let mut nodes = Vec::new();
    for o in others {
        nodes.push(o.await.unwrap().unwrap());
    }
    within(holds_rx).await.unwrap();
    let started = Instant::now();
    let b = within(nodes[0].semaphore("paused", 2).acquire(2))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not granted while paused"
    );
    let bt = b.token();
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(started.elapsed())).await;
    drop(b);
    let (held, lost_at_once, released, again) = within(done_rx).await.unwrap();
    assert!(!held, "is_held() true after the permits went elsewhere");
    assert!(lost_at_once, "lost() did not complete");
    assert!(released.is_ok(), "release of a lost permit: {released:?}");
    let again = again.unwrap_or_else(|e: Error| panic!("the same task acquiring again: {e}"));
    assert!(again > bt);
    thread.join().unwrap();
}
