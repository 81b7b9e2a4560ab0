//! try_lock / lock_timeout / holder / invalid names / drop releases.

use std::time::Duration;

use peerlock::Error;

use crate::common::{within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_lock_try_lock_holder_unlock() {
    let c = Cluster::start(3).await;
    let g = within(c.nodes[0].lock("orders/42")).await.unwrap();
    assert_eq!(g.name(), "orders/42");
    assert!(g.is_held());
    assert!(within(c.nodes[1].try_lock("orders/42"))
        .await
        .unwrap()
        .is_none());
    let info = within(c.nodes[2].holder("orders/42"))
        .await
        .unwrap()
        .expect("held");
    assert_eq!(info.token, g.token());
    assert_eq!(info.holder.as_str(), "node-0");
    let err = within(c.nodes[1].lock_timeout("orders/42", Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");
    let first = g.token();
    within(g.unlock()).await.unwrap();
    assert!(within(c.nodes[1].holder("orders/42"))
        .await
        .unwrap()
        .is_none());
    let g2 = within(c.nodes[1].try_lock("orders/42"))
        .await
        .unwrap()
        .expect("free now");
    assert!(
        g2.token() > first,
        "tokens rise: {} then {}",
        first,
        g2.token()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_invalid_names_are_refused() {
    let c = Cluster::start(1).await;
    let long = "x".repeat(257);
    for bad in ["", long.as_str()] {
        assert!(matches!(
            c.nodes[0].lock(bad).await,
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            c.nodes[0].try_lock(bad).await,
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            c.nodes[0].holder(bad).await,
            Err(Error::InvalidName { .. })
        ));
    }
    let ok = "y".repeat(256);
    assert!(within(c.nodes[0].try_lock(&ok)).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_dropping_a_guard_releases_it() {
    let c = Cluster::start(3).await;
    let g = within(c.nodes[1].lock("drop-me")).await.unwrap();
    drop(g);
    let g2 = within(c.nodes[2].lock("drop-me")).await.unwrap();
    assert!(g2.is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_a_timed_out_waiter_leaves_the_queue() {
    let c = Cluster::start(3).await;
    let g = within(c.nodes[0].lock("q")).await.unwrap();
    let err = c.nodes[1]
        .lock_timeout("q", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout));
    // The cancel commits shortly after; then nobody waits behind the holder.
    let node = c.nodes[2].clone();
    let mut waiters = usize::MAX;
    for _ in 0..100 {
        waiters = within(node.holder("q")).await.unwrap().unwrap().waiters;
        if waiters == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiters, 0);
    drop(g);
    // The lock is not secretly handed to the departed waiter.
    assert!(within(c.nodes[2].lock("q")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_with_lock_runs_and_releases() {
    let c = Cluster::start(3).await;
    let token = within(c.nodes[0].with_lock("wl", async |g| g.token()))
        .await
        .unwrap();
    assert!(token.get() > 0);
    assert!(
        within(c.nodes[1].holder("wl")).await.unwrap().is_none(),
        "released after the closure"
    );
    let r: Result<u32, Error> =
        within(c.nodes[1].with_lock_timeout("wl", Duration::from_secs(5), async |_g| 7)).await;
    assert_eq!(r.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_status_reports_the_cluster() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    for n in &c.nodes {
        let s = n.status();
        assert_eq!(s.members.len(), 3);
        assert!(s.members.iter().all(|m| m.voter));
        assert_eq!(s.leader, Some(c.nodes[leader].status().id));
        assert!(s.session.is_some());
    }
}
