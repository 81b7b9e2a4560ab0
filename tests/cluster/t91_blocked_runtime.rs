//! Issue 8, item 2: `with_lock` must not report success for work done
//! after the lease ended. Node A runs on its own current-thread runtime;
//! inside `with_lock` it yields once and then blocks that runtime for 3 s
//! (a CPU-bound or blocking section) with a 1 s TTL, while a waiter on
//! another node is granted the lock. Before the fix the call returned
//! `Ok`; it must return `Err(LockLost)`.

use std::time::Duration;

use peerlock::certs::ClusterCa;
use peerlock::{Error, Node};

use crate::common::{init_tracing, sockets, wait_until, within, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t91_issue_8_work_after_the_lease_ended_is_lock_lost() {
    init_tracing();
    let ttl = Duration::from_secs(1);
    let ca = ClusterCa::generate("blocked").unwrap();
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
            let r = a
                .with_lock("blk", async |g| {
                    let _ = holds_tx.send(());
                    tokio::task::yield_now().await;
                    // Blocks the runtime: no keepalive, no lost() check.
                    std::thread::sleep(Duration::from_secs(3));
                    g.token()
                })
                .await;
            let _ = done_tx.send(r);
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
    let b = nodes[0].clone();
    let granted = within(b.lock("blk")).await.unwrap();
    let r = within(done_rx).await.unwrap();
    assert!(
        matches!(r, Err(Error::LockLost { .. })),
        "work done after the lease ended was reported {r:?} while token {} was granted elsewhere",
        granted.token()
    );
    thread.join().unwrap();
    wait_until(|| Some(())).await;
}
