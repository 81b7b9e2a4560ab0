//! Contention from every node on one name, through a fenced counter.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::common::{within, Cluster, Fenced};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_contention_from_all_nodes_loses_no_update() {
    let c = Cluster::start(3).await;
    let counter = Arc::new(Mutex::new(Fenced::default()));
    let inside = Arc::new(Mutex::new(0u32));
    let mut tasks = Vec::new();
    const PER_TASK: u64 = 15;
    for t in 0..6 {
        let node = c.nodes[t % 3].clone();
        let counter = counter.clone();
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_TASK {
                node.with_lock("counter", async |g| {
                    {
                        let mut n = inside.lock();
                        *n += 1;
                        assert_eq!(*n, 1, "two holders inside the critical section");
                    }
                    // Read, yield (so overlaps would show), then write.
                    let seen = counter.lock().value;
                    tokio::task::yield_now().await;
                    let ok = counter.lock().write(g.token(), seen + 1);
                    *inside.lock() -= 1;
                    assert!(ok, "a current holder's write was refused as stale");
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    let f = counter.lock();
    assert_eq!(f.value, 6 * PER_TASK, "no lost update");
    assert_eq!(f.accepted, 6 * PER_TASK);
    assert_eq!(f.stale_rejected, 0);
}

/// Issue 9, item 10: every disk is lost and the cluster is founded again.
/// A fenced resource that saw the old cluster's tokens must accept the new
/// one's: the founder's `Found` entry sets a token base from its wall
/// clock, and no session opens before it. On the old code the new
/// cluster's first token is a small log index, below the old ones, and the
/// resource refuses every write for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t31_issue_9_a_cluster_founded_again_hands_out_higher_tokens() {
    let mut resource = Fenced::default();
    let old = Cluster::start(3).await;
    for i in 0..30u64 {
        let g = within(old.nodes[i as usize % 3].lock("ledger"))
            .await
            .unwrap();
        assert!(resource.write(g.token(), i), "the old cluster's own order");
        within(g.unlock()).await.unwrap();
    }
    let last = resource.highest;
    for n in &old.nodes {
        let _ = within(n.shutdown()).await;
    }
    drop(old);

    let new = Cluster::start(3).await;
    let g = within(new.nodes[1].lock("ledger")).await.unwrap();
    assert!(
        resource.write(g.token(), 99),
        "the new cluster's token {} is below the lost cluster's {last}",
        g.token().get()
    );
}
