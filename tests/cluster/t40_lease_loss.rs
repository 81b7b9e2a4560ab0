//! A holder whose node loses its quorum sees `lost()` within the TTL.

use std::time::{Duration, Instant};

use peerlock::Error;

use crate::common::{within, Cluster, Opts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_holder_without_quorum_sees_lost_within_ttl() {
    let opts = Opts::default();
    let c = Cluster::start_with(3, opts).await;
    let g = within(c.nodes[0].lock("lease")).await.unwrap();
    assert!(g.is_held());
    // Take the quorum away: the two other nodes die.
    let t0 = Instant::now();
    peerlock::testing::crash(&c.nodes[1]).await;
    peerlock::testing::crash(&c.nodes[2]).await;
    within(g.lost()).await;
    let took = t0.elapsed();
    assert!(!g.is_held());
    assert!(
        took <= opts.ttl,
        "lost() after {took:?}, TTL is {:?}",
        opts.ttl
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t41_with_lock_returns_lock_lost_when_the_lease_goes() {
    let c = Cluster::start(3).await;
    let others = [c.nodes[1].clone(), c.nodes[2].clone()];
    let r: Result<(), Error> = within(c.nodes[0].with_lock("wl-lost", async |_g| {
        for n in &others {
            peerlock::testing::crash(n).await;
        }
        // A long critical section; it must be cut short.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }))
    .await;
    assert!(matches!(r, Err(Error::LockLost { .. })), "{r:?}");
}
