//! Waiters are granted in the order their requests were committed.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::common::{within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_waiters_are_granted_in_fifo_order_across_nodes() {
    let c = Cluster::start(3).await;
    let holder = within(c.nodes[0].lock("fifo")).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6usize {
        let node = c.nodes[i % 3].clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let g = node.lock("fifo").await.unwrap();
            order.lock().push((i, g.token()));
            g.unlock().await.unwrap();
        }));
        // Wait until this waiter is queued before starting the next.
        let probe = c.nodes[0].clone();
        let want = i + 1;
        let mut seen = 0;
        for _ in 0..500 {
            seen = within(probe.holder("fifo")).await.unwrap().unwrap().waiters;
            if seen >= want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(seen, want, "waiter {i} queued");
    }
    drop(holder);
    for t in tasks {
        within(t).await.unwrap();
    }
    let order = order.lock().clone();
    let ids: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5], "granted in queue order");
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "tokens rise: {order:?}"
    );
}
