//! Issue 11, item 2: counting semaphores over QUIC with durable storage.
//! Never more permits in use than the count, across nodes; FIFO, so a large
//! request at the head is not starved by small ones; the count is fixed by
//! first use; permits come back when a holder's node dies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::{Error, NameKind};

use super::t11_support::Durable;
use crate::common::{wait_until_async, within};

/// Tasks on every node take 1 or 2 of 3 permits, hold them a moment and
/// give them back; the permits in use, counted by the holders themselves
/// (raised after the grant, lowered before the release), never pass 3,
/// and the count is reached (the semaphore does let several in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t110_issue_11_never_more_permits_than_the_count_across_nodes() {
    let c = Durable::default_start().await;
    let in_use = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..9u32 {
        let sem = c.nodes[t as usize % 3].semaphore("pool", 3);
        let (in_use, peak) = (in_use.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..4u32 {
                let n = 1 + (t + round) % 2;
                let p = sem.acquire(n).await?;
                assert_eq!(p.permits(), n);
                let now = in_use.fetch_add(u64::from(n), Ordering::SeqCst) + u64::from(n);
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(15)).await;
                in_use.fetch_sub(u64::from(n), Ordering::SeqCst);
                p.release().await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} permits in use of 3");
    assert!(peak >= 2, "the semaphore never let two in at once");
    assert_eq!(within(c.nodes[0].holders("pool")).await.unwrap(), None);
}

/// FIFO: with one permit of 4 taken, a request for all 4 waits at the
/// head; a request for 1 behind it is not let in although 3 are free
/// (that would starve the large one), and is granted after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t110_issue_11_a_large_request_at_the_head_is_not_starved() {
    let c = Durable::default_start().await;
    let small = within(c.nodes[0].semaphore("fifo", 4).acquire(1))
        .await
        .unwrap();
    let big = {
        let sem = c.nodes[1].semaphore("fifo", 4);
        tokio::spawn(async move { sem.acquire(4).await })
    };
    wait_until_async(|| async {
        let i = c.nodes[2].holders("fifo").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    let sem2 = c.nodes[2].semaphore("fifo", 4);
    assert!(
        within(sem2.try_acquire(1)).await.unwrap().is_none(),
        "a small request overtook the large one at the head"
    );
    let later = {
        let sem2 = sem2.clone();
        tokio::spawn(async move { sem2.acquire(1).await })
    };
    wait_until_async(|| async {
        let i = c.nodes[0].holders("fifo").await.ok().flatten()?;
        (i.waiters == 2).then_some(())
    })
    .await;
    let small_token = small.token();
    small.release().await.unwrap();
    let big = within(big).await.unwrap().unwrap();
    assert!(big.token() > small_token);
    let info = within(c.nodes[0].holders("fifo")).await.unwrap().unwrap();
    assert_eq!(info.kind, NameKind::Semaphore { count: 4 });
    assert_eq!((info.permits_used, info.waiters), (4, 1));
    assert!(!later.is_finished());
    drop(big);
    let later = within(later).await.unwrap().unwrap();
    assert_eq!(later.permits(), 1);
}

/// The count is fixed by first use: another count, or `lock()` on the
/// name, is `WrongKind` with a message that says what to do, and queues
/// nothing; once nobody uses the name its count is forgotten. Bad input is
/// `InvalidRequest` before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t110_issue_11_another_count_or_a_lock_on_a_semaphore_is_wrong_kind() {
    let c = Durable::default_start().await;
    let p = within(c.nodes[0].semaphore("pay", 8).acquire(2))
        .await
        .unwrap();
    let e = within(c.nodes[1].semaphore("pay", 4).acquire(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("a semaphore of 8 permits") && msg.contains("same kind and count"),
        "{msg}"
    );
    let e = within(c.nodes[2].lock("pay")).await.unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    let e = within(c.nodes[2].read_lock("pay")).await.unwrap_err();
    assert!(matches!(e, Error::WrongKind { .. }), "{e}");
    let info = within(c.nodes[2].holders("pay")).await.unwrap().unwrap();
    assert_eq!(info.waiters, 0, "a refused request queued");
    for (n, count) in [(0, 8), (9, 8), (1, 0)] {
        let e = within(c.nodes[1].semaphore("other", count).acquire(n))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidRequest { .. }),
            "{n}/{count}: {e}"
        );
    }
    p.release().await.unwrap();
    // Free again: a new first use may fix another count.
    let q = within(c.nodes[1].semaphore("pay", 4).acquire(4))
        .await
        .unwrap();
    assert_eq!(q.permits(), 4);
}

/// A holder's node dies: its permits come back once its session expired
/// (one TTL) and the lock-delay passed, and not before; the holder's
/// `lost()` completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t110_issue_11_permits_come_back_when_a_holders_node_dies() {
    let delay = Duration::from_millis(600);
    let c = Durable::start(Duration::from_millis(1500), delay).await;
    let victim = c.follower().await;
    let other = (victim + 1) % 3;
    let p = within(c.nodes[victim].semaphore("k", 2).acquire(2))
        .await
        .unwrap();
    let sem = c.nodes[other].semaphore("k", 2);
    let waiter = tokio::spawn(async move { sem.acquire(1).await });
    wait_until_async(|| async {
        let i = c.nodes[other].holders("k").await.ok().flatten()?;
        (i.waiters == 1).then_some(())
    })
    .await;
    let killed = Instant::now();
    peerlock::testing::crash(&c.nodes[victim]).await;
    within(p.lost()).await;
    assert!(!p.is_held());
    let q = within(waiter).await.unwrap().unwrap();
    let after = killed.elapsed();
    assert!(q.token() > p.token());
    assert!(
        after >= delay,
        "granted {after:?} after the kill, before the lock-delay"
    );
}
