//! Lock-delay on shared names (helper `break`, issue 11): a dead holder's
//! permits (or read lock) are kept from others for the lock-delay; the
//! rest of the semaphore, or other readers, need not wait. The first test
//! failed before the fix (a name awaiting its handoff refused every grant).

use std::time::{Duration, Instant};

use crate::common::{wait_until_async, within, Cluster, Opts};

/// A semaphore of 10: the victim node holds 1 permit and is killed, with a
/// 4 s lock-delay. Once its session expired, 9 permits are free whatever
/// the victim still does, so `try_acquire(1)` on a survivor should succeed
/// during the lock-delay (the dead permit stays counted), as should a read
/// lock beside a dead reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_issue_11_a_dead_permit_holder_blocks_only_its_own_permits_during_lock_delay() {
    let c = Cluster::start_with(
        3,
        Opts {
            ttl: Duration::from_millis(1500),
            lock_delay: Duration::from_secs(4),
        },
    )
    .await;
    let leader = c.leader().await;
    let victim = (leader + 1) % 3;
    let p = within(c.nodes[victim].semaphore("wide", 10).acquire(1))
        .await
        .unwrap();
    let r = within(c.nodes[victim].read_lock("shared")).await.unwrap();
    let dead_token = p.token();
    peerlock::testing::crash(&c.nodes[victim]).await;
    drop((p, r));
    // Wait for the session's expiry: the victim's grant leaves `holders`.
    let expired = wait_until_async(|| async {
        let i = c.nodes[leader].holders("wide").await.ok()??;
        i.holders.is_empty().then(Instant::now)
    })
    .await;
    // `holders` says why the 10th permit waits: the dead grant is kept.
    let info = within(c.nodes[leader].holders("wide"))
        .await
        .unwrap()
        .unwrap();
    assert!(info.awaiting_handoff, "{info:?}");
    assert_eq!(info.expired.len(), 1, "{info:?}");
    assert_eq!(info.expired[0].token, dead_token, "{info:?}");
    let sem = c.nodes[leader].semaphore("wide", 10);
    let got = within(sem.try_acquire(1)).await.unwrap();
    let reader = within(c.nodes[leader].try_read_lock("shared"))
        .await
        .unwrap();
    let in_delay = expired.elapsed() < Duration::from_secs(3);
    assert!(
        in_delay,
        "the test was too slow to look inside the lock-delay"
    );
    assert!(
        got.is_some() && reader.is_some(),
        "during the lock-delay: try_acquire(1) of 9 free permits = {:?}, try_read_lock beside a dead reader = {:?}",
        got.map(|p| p.token()),
        reader.map(|r| r.token())
    );
}

/// The Raft leader's node holds all permits and a read lock, with a 1 s
/// lock-delay, and is killed: the new leader expires its session and,
/// after the delay, hands the names on: the waiters are granted (not
/// before the delay, within a bound), with tokens above the dead grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_delay_a_dead_leaders_permits_come_back_after_the_delay() {
    let delay = Duration::from_secs(1);
    let c = Cluster::start_with(
        3,
        Opts {
            ttl: Duration::from_millis(1500),
            lock_delay: delay,
        },
    )
    .await;
    let leader = c.leader().await;
    let other = (leader + 1) % 3;
    let p = within(c.nodes[leader].semaphore("dl", 2).acquire(2))
        .await
        .unwrap();
    let r = within(c.nodes[leader].read_lock("dlr")).await.unwrap();
    let waiter = {
        let n = c.nodes[other].clone();
        tokio::spawn(async move {
            let q = n.semaphore("dl", 2).acquire(1).await?;
            let w = n.write_lock("dlr").await?;
            Ok::<_, peerlock::Error>((q.token(), w.token()))
        })
    };
    wait_until_async(|| async {
        let i = c.nodes[other].holders("dl").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    let killed = Instant::now();
    peerlock::testing::crash(&c.nodes[leader]).await;
    let (qt, wt) = within(waiter).await.unwrap().unwrap();
    let took = killed.elapsed();
    assert!(took >= delay, "granted {took:?} after the kill");
    assert!(
        took < Duration::from_secs(10),
        "granted only {took:?} after the kill"
    );
    assert!(qt > p.token() && wt > r.token());
}

/// Five nodes, 3 s lock-delay: a follower holding all permits is killed;
/// after its session expired (handoff pending) the Raft leader is killed
/// too, inside the delay. The new leader still hands the permits on, not
/// sooner than the delay after the expiry, and within a bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_delay_the_handoff_survives_a_leader_change_inside_the_delay() {
    let delay = Duration::from_secs(3);
    let c = Cluster::start_with(
        5,
        Opts {
            ttl: Duration::from_millis(1500),
            lock_delay: delay,
        },
    )
    .await;
    let leader = c.leader().await;
    let victim = (leader + 1) % 5;
    let other = (leader + 2) % 5;
    let watcher = (leader + 3) % 5;
    let p = within(c.nodes[victim].semaphore("hl", 2).acquire(2))
        .await
        .unwrap();
    let waiter = {
        let n = c.nodes[other].clone();
        tokio::spawn(async move {
            let q = n.semaphore("hl", 2).acquire(2).await?;
            Ok::<_, peerlock::Error>((Instant::now(), q.token()))
        })
    };
    wait_until_async(|| async {
        let i = c.nodes[watcher].holders("hl").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    peerlock::testing::crash(&c.nodes[victim]).await;
    let expired = wait_until_async(|| async {
        let i = c.nodes[watcher].holders("hl").await.ok()??;
        i.holders.is_empty().then(Instant::now)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    peerlock::testing::crash(&c.nodes[leader]).await;
    let (at, token) = within(waiter).await.unwrap().unwrap();
    let after = at.duration_since(expired);
    assert!(
        after + Duration::from_millis(300) >= delay,
        "granted {after:?} after the expiry, inside the lock-delay"
    );
    assert!(
        after < Duration::from_secs(12),
        "granted only {after:?} after the expiry"
    );
    assert!(token > p.token());
}
