//! Breaking semaphores as a user would (helper `break`, issue 11): churn
//! with every call and dropped futures, bad counts, the count limits, and
//! the name used as another kind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::{Error, NameKind};

use crate::common::{wait_until_async, within, Cluster};

/// A small xorshift generator: the tests need no `rand`.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const COUNT: u32 = 4;

/// Twelve tasks on three nodes take 1 to 4 of 4 permits for 3 s with
/// `acquire`, `try_acquire`, `acquire_timeout` and acquire futures dropped
/// at random moments. Permits in use (counted by the holders) never pass
/// the count, no call fails but by `Timeout`, and at the end the name is
/// free on every node: no ghost waiter, nothing held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_sem_churn_never_exceeds_the_count_and_leaves_no_ghosts() {
    let c = Cluster::start(3).await;
    let in_use = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let grants = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for t in 0..12u64 {
        let sem = c.nodes[(t % 3) as usize].semaphore("pool", COUNT);
        let (in_use, peak, grants) = (in_use.clone(), peak.clone(), grants.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t + 1) * 7919));
            while Instant::now() < stop_at {
                let n = 1 + r.below(u64::from(COUNT)) as u32;
                let got = match r.below(4) {
                    0 => Some(sem.acquire(n).await?),
                    1 => sem.try_acquire(n).await?,
                    2 => match sem
                        .acquire_timeout(n, Duration::from_millis(1 + r.below(200)))
                        .await
                    {
                        Ok(p) => Some(p),
                        Err(Error::Timeout) => None,
                        Err(e) => return Err(e),
                    },
                    _ => {
                        let d = Duration::from_millis(r.below(60));
                        match tokio::time::timeout(d, sem.acquire(n)).await {
                            Ok(p) => Some(p?),
                            Err(_) => None, // dropped mid-flight
                        }
                    }
                };
                let Some(p) = got else { continue };
                assert_eq!(p.permits(), n);
                grants.fetch_add(1, Ordering::SeqCst);
                let now = in_use.fetch_add(u64::from(n), Ordering::SeqCst) + u64::from(n);
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(r.below(15))).await;
                in_use.fetch_sub(u64::from(n), Ordering::SeqCst);
                if r.below(2) == 0 {
                    p.release().await?;
                } else {
                    drop(p);
                }
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        within(t).await.unwrap().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= u64::from(COUNT), "{peak} permits in use of {COUNT}");
    assert!(
        grants.load(Ordering::SeqCst) > 10,
        "hardly anything granted"
    );
    for n in &c.nodes {
        wait_until_async(|| async { n.holders("pool").await.ok()?.is_none().then_some(()) }).await;
    }
}

/// `acquire(0)`, a count of 0 or above 1 000 000, `n` above the count:
/// `InvalidRequest`, nothing sent. `n == count` takes them all; a count of
/// 1 000 000 works and is full after `acquire(1_000_000)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_sem_limits_zero_full_and_a_million() {
    let c = Cluster::start(3).await;
    let n0 = &c.nodes[0];
    for (n, count) in [(0, 3), (1, 0), (1, 1_000_001), (4, 3), (1, u32::MAX)] {
        let e = within(n0.semaphore("lim", count).acquire(n))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidRequest { .. }),
            "{n}/{count}: {e}"
        );
        let e = within(n0.semaphore("lim", count).try_acquire(n))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidRequest { .. }),
            "{n}/{count}: {e}"
        );
    }
    assert_eq!(within(n0.holders("lim")).await.unwrap(), None);
    let all = within(n0.semaphore("lim", 3).acquire(3)).await.unwrap();
    assert!(within(c.nodes[1].semaphore("lim", 3).try_acquire(1))
        .await
        .unwrap()
        .is_none());
    drop(all);
    let big = c.nodes[1].semaphore("big", 1_000_000);
    let p = within(big.acquire(1_000_000)).await.unwrap();
    assert_eq!(p.permits(), 1_000_000);
    let other = c.nodes[2].semaphore("big", 1_000_000);
    assert!(within(other.try_acquire(1)).await.unwrap().is_none());
    let info = within(c.nodes[2].holders("big")).await.unwrap().unwrap();
    assert_eq!(info.kind, NameKind::Semaphore { count: 1_000_000 });
    assert_eq!(info.permits_used, 1_000_000);
    drop(p);
    let a = within(other.acquire(999_999)).await.unwrap();
    let b = within(big.acquire(1)).await.unwrap();
    assert!(within(other.try_acquire(1)).await.unwrap().is_none());
    drop((a, b));
}

/// The name used as a lock, a read-write lock, a multi-lock name or an
/// election while it is a semaphore (and the reverse): `WrongKind`, at
/// once, nothing queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_sem_name_used_as_another_kind_is_wrong_kind() {
    let c = Cluster::start(3).await;
    let p = within(c.nodes[0].semaphore("s", 2).acquire(1))
        .await
        .unwrap();
    let n1 = &c.nodes[1];
    let wrong = |e: &Error| matches!(e, Error::WrongKind { .. });
    let e = within(n1.lock("s")).await.unwrap_err();
    assert!(wrong(&e), "lock: {e}");
    let e = within(n1.try_lock("s")).await.unwrap_err();
    assert!(wrong(&e), "try_lock: {e}");
    let e = within(n1.write_lock("s")).await.unwrap_err();
    assert!(wrong(&e), "write_lock: {e}");
    let e = within(n1.try_read_lock("s")).await.unwrap_err();
    assert!(wrong(&e), "try_read_lock: {e}");
    let e = within(n1.lock_all(["a", "s"])).await.unwrap_err();
    assert!(wrong(&e), "lock_all: {e}");
    let e = within(n1.campaign("s")).await.unwrap_err();
    assert!(wrong(&e), "campaign: {e}");
    let e = within(n1.semaphore("s", 3).try_acquire(1))
        .await
        .unwrap_err();
    assert!(wrong(&e), "another count: {e}");
    let info = within(n1.holders("s")).await.unwrap().unwrap();
    assert_eq!(info.waiters, 0, "a refused call queued");
    assert_eq!(within(n1.holders("a")).await.unwrap(), None);
    drop(p);
    // The reverse: a lock used as a semaphore.
    let g = within(c.nodes[0].lock("m")).await.unwrap();
    let e = within(n1.semaphore("m", 2).acquire(1)).await.unwrap_err();
    assert!(wrong(&e), "semaphore on a lock: {e}");
    let l = within(c.nodes[2].campaign("e")).await.unwrap();
    let e = within(n1.semaphore("e", 2).acquire(1)).await.unwrap_err();
    assert!(wrong(&e), "semaphore on an election: {e}");
    drop((g, l));
}
