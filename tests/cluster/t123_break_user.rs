//! Issue 12's new surface tried as a new user would (helper "break"):
//! `peerlock::blocking` from plain threads and from inside a runtime,
//! `node.locks()` paging while names come and go, and whole-cluster
//! shutdown. TLS reloads are in `t123_break_tls`, the gauges in
//! `t123_break_metrics`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock::blocking;
use peerlock::certs::ClusterCa;
use peerlock::{Error, MAX_LOCKS_PAGE};

use crate::common::{sockets, within, Cluster, WAIT};
use crate::t122_blocking::start_blocking;

/// Three blocking nodes from plain threads: contention with a counter
/// that only mutual exclusion keeps right, `with_lock` returning a value,
/// `lock_timeout` expiring, a guard dropped on another thread, shutdown,
/// and calls after shutdown answering rather than hanging.
#[test]
fn t123a_blocking_three_nodes_as_a_user() {
    let nodes = start_blocking(3);
    let shared = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|n| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut tokens = Vec::new();
                for _ in 0..5 {
                    let t = n
                        .with_lock_timeout("b/counter", WAIT, |g| {
                            // Read-modify-write with a pause: lost updates
                            // if two sections overlap.
                            let v = shared.load(Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(5));
                            shared.store(v + 1, Ordering::SeqCst);
                            g.token()
                        })
                        .expect("with_lock");
                    tokens.push(t);
                }
                tokens
            })
        })
        .collect();
    let mut all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(shared.load(Ordering::SeqCst), 15, "no lost update");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 15, "every grant has its own token");

    // lock_timeout expires while another node holds the name.
    let g = nodes[0].lock("b/held").unwrap();
    let t0 = Instant::now();
    let err = nodes[1]
        .lock_timeout("b/held", Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // The same thread asking again is refused at once (it would wait
    // behind itself); another thread of the same node just waits.
    let again = nodes[0].lock("b/held");
    assert!(matches!(again, Err(Error::AlreadyHeld { .. })), "{again:?}");
    let n0 = nodes[0].clone();
    let other = std::thread::spawn(move || {
        n0.lock_timeout("b/held", Duration::from_millis(200))
            .map(drop)
    })
    .join()
    .unwrap();
    assert!(matches!(other, Err(Error::Timeout)), "{other:?}");

    // A guard moved to and dropped on another thread releases.
    std::thread::spawn(move || drop(g)).join().unwrap();
    let g2 = nodes[2].lock_timeout("b/held", WAIT).expect("released");
    g2.unlock().unwrap();

    // Shutdown, then calls answer with an error at once.
    let shut: Vec<_> = nodes
        .iter()
        .map(|n| {
            let t0 = Instant::now();
            (n.shutdown(), t0.elapsed())
        })
        .collect();
    // The last node of a cluster shut down in turn cannot close its
    // session (see t123h); the others can.
    assert!(
        shut[..2].iter().all(|(r, _)| r.is_ok())
            && matches!(shut[2].0, Ok(()) | Err(Error::NoQuorum)),
        "shutting the cluster down one node after the other: {shut:?}"
    );
    let t0 = Instant::now();
    let after = nodes[0].lock_timeout("b/late", Duration::from_secs(5));
    assert!(
        matches!(after, Err(Error::Shutdown)),
        "lock after shutdown: {after:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// A blocking node started outside a runtime, used inside one: every call
/// is a clear `InvalidRequest`, starting one is refused the same way, and
/// dropping the node and a guard inside the runtime neither panics nor
/// hangs.
#[tokio::test(flavor = "current_thread")]
async fn t123b_blocking_inside_a_runtime_is_a_clear_error() {
    let (node, guard) = std::thread::spawn(|| {
        let mut nodes = start_blocking(1);
        let node = nodes.remove(0);
        let guard = node.lock("b/outside").unwrap();
        (node, guard)
    })
    .join()
    .unwrap();
    for r in [
        node.lock("b/x").map(drop),
        node.try_lock("b/x").map(drop),
        node.ready(),
        node.holder("b/x").map(drop),
        node.locks(None, 10).map(drop),
        node.with_lock("b/x", |_| ()),
    ] {
        assert!(matches!(r, Err(Error::InvalidRequest { .. })), "{r:?}");
    }
    let (socks, addrs) = sockets(1);
    let ca = ClusterCa::generate("t").unwrap();
    let b = peerlock::Node::builder()
        .socket(socks.into_iter().next().unwrap())
        .peers(addrs)
        .tls(ca.issue_node("n", &["127.0.0.1"]).unwrap())
        .in_memory();
    let err = blocking::Node::start(b).unwrap_err();
    assert!(err.to_string().contains("async"), "{err}");
    // On a spawn_blocking thread too.
    let n2 = node.clone();
    let r = tokio::task::spawn_blocking(move || n2.try_lock("b/y").map(drop))
        .await
        .unwrap();
    assert!(matches!(r, Err(Error::InvalidRequest { .. })), "{r:?}");
    let t0 = Instant::now();
    drop(guard);
    drop(node);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

/// `locks()` pages with limit 1 and 2 on a follower and the leader while
/// other names come and go: no name twice, every name held throughout
/// seen; limits 0 and 1001 refused, 1 and 1000 served; semaphore and
/// read-write rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t123c_locks_pages_while_names_churn() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let mut kept = Vec::new();
    for i in 0..7 {
        kept.push(
            within(c.nodes[i % 3].lock(&format!("m/{i:02}")))
                .await
                .unwrap(),
        );
    }
    let sem = c.nodes[0].semaphore("s/pool", 3);
    let p = within(sem.acquire(2)).await.unwrap();
    let r1 = within(c.nodes[1].read_lock("m/rw")).await.unwrap();
    let r2 = within(c.nodes[2].read_lock("m/rw")).await.unwrap();

    let churn_node = c.nodes[2].clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let churn = tokio::spawn(async move {
        let mut i = 0u32;
        while !stop2.load(Ordering::SeqCst) {
            // Names between and around the kept ones.
            let name = format!("m/{:02}x{}", i % 9, i % 3);
            if let Ok(Some(g)) = churn_node.try_lock(&name).await {
                tokio::time::sleep(Duration::from_millis(3)).await;
                let _ = g.unlock().await;
            }
            i += 1;
        }
    });
    for who in [follower, leader] {
        for limit in [1, 2] {
            let mut after: Option<String> = None;
            let mut seen = Vec::new();
            for _ in 0..1000 {
                let page = within(c.nodes[who].locks(after.as_deref(), limit))
                    .await
                    .unwrap();
                assert!(page.locks.len() <= limit);
                for row in &page.locks {
                    seen.push(row.name.as_str().to_owned());
                }
                match page.next {
                    Some(n) => after = Some(n.as_str().to_owned()),
                    None => break,
                }
            }
            let set: BTreeSet<_> = seen.iter().cloned().collect();
            assert_eq!(set.len(), seen.len(), "a name twice: {seen:?}");
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(sorted, seen, "pages in name order");
            for i in 0..7 {
                assert!(set.contains(&format!("m/{i:02}")), "m/{i:02}: {seen:?}");
            }
            assert!(set.contains("s/pool") && set.contains("m/rw"), "{seen:?}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    within(churn).await.unwrap();

    for bad in [0, MAX_LOCKS_PAGE + 1] {
        let r = c.nodes[follower].locks(None, bad).await;
        assert!(matches!(r, Err(Error::InvalidRequest { .. })), "{r:?}");
    }
    let all = within(c.nodes[follower].locks(None, MAX_LOCKS_PAGE))
        .await
        .unwrap();
    assert!(all.next.is_none(), "one page holds all: {:?}", all.next);
    let names: Vec<_> = all.locks.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    // A page exactly as long as the table has no next page.
    let exact = within(c.nodes[leader].locks(None, 9)).await.unwrap();
    assert_eq!(exact.locks.len(), 9);
    assert!(exact.next.is_none(), "{:?}", exact.next);
    let rw = all
        .locks
        .iter()
        .find(|r| r.name.as_str() == "m/rw")
        .unwrap();
    assert_eq!(rw.info.holders.len(), 2, "{rw:?}");
    let pool = all
        .locks
        .iter()
        .find(|r| r.name.as_str() == "s/pool")
        .unwrap();
    assert_eq!(pool.info.permits_used, 2, "{pool:?}");
    assert_eq!(pool.info.holders.len(), 1, "{pool:?}");
    drop((p, r1, r2, kept));
}

/// A user stopping a whole three-node deployment, one instance after the
/// other (a rolling stop, `systemctl stop` on each). Found by the
/// user-style test of issue 12: the last answers `Err(NoQuorum)` after
/// about 3 s, which the docs did not say. It is what `shutdown()` now
/// documents: the first ones leave, and the last may find no quorum left
/// to close its session with (nobody is left to want its locks). Every
/// call ends within its bound and says which case it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t123h_stopping_a_whole_cluster_in_turn_ends_within_the_bound() {
    let c = Cluster::start(3).await;
    let mut shut = Vec::new();
    for n in &c.nodes {
        let t0 = Instant::now();
        shut.push((within(n.shutdown()).await, t0.elapsed()));
    }
    assert!(shut[0].0.is_ok(), "{shut:?}");
    assert!(
        shut.iter().all(
            |(r, t)| matches!(r, Ok(()) | Err(Error::NoQuorum)) && *t < Duration::from_secs(12)
        ),
        "{shut:?}"
    );
}

/// Blocking edge cases: a panicking critical section releases and the
/// panic reaches the caller; `lock_timeout(ZERO)` on a held name answers
/// at once; a builder without TLS is a typed error, not a panic.
#[test]
fn t123j_blocking_edges() {
    let nodes = start_blocking(1);
    let n = &nodes[0];
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        n.with_lock("b/panics", |_g| -> u32 { panic!("in the section") })
    }));
    assert!(caught.is_err(), "the panic reaches the caller");
    let g = n
        .lock_timeout("b/panics", Duration::from_secs(5))
        .expect("released by the unwinding guard");
    let n2 = n.clone();
    let t0 = Instant::now();
    let zero = std::thread::spawn(move || n2.lock_timeout("b/panics", Duration::ZERO).map(drop))
        .join()
        .unwrap();
    assert!(matches!(zero, Err(Error::Timeout)), "{zero:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(g);
    let (socks, addrs) = sockets(1);
    let no_tls = peerlock::Node::builder()
        .socket(socks.into_iter().next().unwrap())
        .peers(addrs)
        .in_memory();
    let err = blocking::Node::start(no_tls).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    n.shutdown().unwrap();
}

/// After `shutdown()`: `locks()` and `reload_tls` answer `Shutdown`; a
/// cursor that is not a lock name is `InvalidName`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t123k_locks_and_reload_after_shutdown() {
    let c = Cluster::start(1).await;
    let n = &c.nodes[0];
    let bad = n.locks(Some(""), 10).await;
    assert!(matches!(bad, Err(Error::InvalidName { .. })), "{bad:?}");
    let past = "z".repeat(256);
    let empty = within(n.locks(Some(&past), 10)).await.unwrap();
    assert!(empty.locks.is_empty() && empty.next.is_none());
    within(n.shutdown()).await.unwrap();
    let r = within(n.locks(None, 10)).await;
    assert!(matches!(r, Err(Error::Shutdown)), "{r:?}");
    let tls = c.ca.issue_node("node-0", &["127.0.0.1"]).unwrap();
    let r = n.reload_tls(tls);
    assert!(matches!(r, Err(Error::Shutdown)), "{r:?}");
}
