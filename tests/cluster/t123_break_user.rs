//! Issue 12's new surface tried as a new user would (helper "break"):
//! `peerlock::blocking` from plain threads and from inside a runtime,
//! `node.locks()` paging while names come and go, `reload_tls` with good
//! and bad material, and the locks-held / waiters gauges returning to 0.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use peerlock::blocking;
use peerlock::certs::ClusterCa;
use peerlock::{Error, MAX_LOCKS_PAGE};

use crate::common::{init_tracing, sockets, within, Cluster, Opts, WAIT};

/// `n` blocking nodes of one cluster, each started on a thread of its own.
fn start_blocking(n: usize) -> Vec<blocking::Node> {
    init_tracing();
    let ca = ClusterCa::generate("test").unwrap();
    let (socks, addrs) = sockets(n);
    let starts: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let builder = peerlock::Node::builder()
                .socket(sock)
                .peers(addrs.clone())
                .tls(ca.issue_node(&format!("node-{i}"), &["127.0.0.1"]).unwrap())
                .in_memory()
                .session_ttl(Duration::from_millis(1500))
                .raft_tick(Duration::from_millis(20))
                .startup_timeout(WAIT);
            std::thread::spawn(move || blocking::Node::start(builder))
        })
        .collect();
    let nodes: Vec<blocking::Node> = starts
        .into_iter()
        .map(|s| s.join().unwrap().expect("node starts"))
        .collect();
    for n in &nodes {
        n.ready().expect("node ready");
    }
    nodes
}

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

/// `reload_tls`: the same configuration is fine; a certificate for
/// another name is a typed error and the node keeps working; a bundle
/// that trusts none of the peers' CA is accepted (it is the node's own
/// certificate that is checked) and, once connections are re-made, the
/// node is cut off: the user sees what then?
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t123d_reload_tls_same_other_name_foreign_bundle() {
    let c = Cluster::start(3).await;
    let same = c.ca.issue_node("node-0", &["127.0.0.1"]).unwrap();
    c.nodes[0].reload_tls(same).expect("same name, same CA");
    within(c.nodes[0].lock("t/after-same"))
        .await
        .unwrap()
        .unlock()
        .await
        .unwrap();

    let other = c.ca.issue_node("node-9", &["127.0.0.1"]).unwrap();
    let err = c.nodes[0].reload_tls(other).unwrap_err();
    assert!(matches!(err, Error::TlsIdentityChanged { .. }), "{err}");
    within(c.nodes[0].lock("t/after-other"))
        .await
        .unwrap()
        .unlock()
        .await
        .unwrap();

    // A new CA alone: node-0 no longer trusts its peers' CA.
    let foreign = ClusterCa::generate("test").unwrap();
    let lone = foreign.issue_node("node-0", &["127.0.0.1"]).unwrap();
    let r = c.nodes[0].reload_tls(lone);
    // Existing connections stay up: the node still works.
    within(c.nodes[0].lock("t/after-foreign"))
        .await
        .unwrap()
        .unlock()
        .await
        .unwrap();
    r.expect("accepted, as documented: only the node's own chain is checked");
    // Once connections are re-made, node-0 and its peers refuse each other.
    let closed = peerlock::testing::close_connections(&c.nodes[0]);
    let t0 = Instant::now();
    let cut = c.nodes[0]
        .lock_timeout("t/after-cut", Duration::from_secs(3))
        .await;
    eprintln!(
        "closed {closed}; after the cut: {:?} in {:?}; status {:?}",
        cut.as_ref().map(|_| ()),
        t0.elapsed(),
        c.nodes[0].status()
    );
    // The two others still form a quorum.
    within(c.nodes[1].lock("t/others"))
        .await
        .unwrap()
        .unlock()
        .await
        .unwrap();
}

/// The gauges of one snapshot by name: a gauge's change since the last
/// snapshot (a `DebuggingRecorder` snapshot swaps every value to 0), or
/// its last `set` value.
fn gauges(recorder: &DebuggingRecorder) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        if let DebugValue::Gauge(g) = value {
            out.insert(key.key().name().to_owned(), g.into_inner());
        }
    }
    out
}

/// Runs `f` on a current-thread runtime with a recorder for this thread.
fn with_recorder<F: std::future::Future<Output = ()>>(
    recorder: &DebuggingRecorder,
    f: impl FnOnce() -> F,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || rt.block_on(f()));
}

/// `peerlock_locks_held` is moved only by increments and decrements, so
/// its value is the sum of the snapshots' deltas; every snapshot goes
/// through [`Held::snap`] so that none is lost.
struct Held<'a> {
    rec: &'a DebuggingRecorder,
    sum: f64,
}

impl Held<'_> {
    /// One snapshot: adds the held delta, returns every gauge.
    fn snap(&mut self) -> std::collections::BTreeMap<String, f64> {
        let g = gauges(self.rec);
        self.sum += g.get("peerlock_locks_held").copied().unwrap_or(0.0);
        g
    }

    /// Waits until the held gauge reads `want` (bounded).
    async fn reaches(&mut self, want: f64, step: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.snap();
            if self.sum == want || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.sum, want, "peerlock_locks_held after {step}");
    }

    /// Waits until the `set` gauge `name` reads `want` (bounded).
    async fn set_gauge_reaches(&mut self, name: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut v;
        loop {
            v = self.snap().get(name).copied().unwrap_or(0.0);
            if v == want || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(v, want, "{name}");
    }
}

#[test]
fn t123e_locks_held_returns_to_zero_after_a_plain_guard_and_a_permit() {
    let rec = DebuggingRecorder::new();
    with_recorder(&rec, || async {
        let mut held = Held {
            rec: &rec,
            sum: 0.0,
        };
        let c = Cluster::start(3).await;
        let g = within(c.nodes[0].lock("h/a")).await.unwrap();
        held.reaches(1.0, "a lock").await;
        drop(g);
        held.reaches(0.0, "its drop").await;
        let p = within(c.nodes[1].semaphore("h/s", 2).acquire(1))
            .await
            .unwrap();
        held.reaches(1.0, "a permit").await;
        drop(p);
        held.reaches(0.0, "the permit's drop").await;
        let r = within(c.nodes[1].read_lock("h/rw")).await.unwrap();
        held.reaches(1.0, "a read lock").await;
        r.unlock().await.unwrap();
        held.reaches(0.0, "its unlock").await;
        let ok = within(c.nodes[2].with_lock("h/w", async |_g| 7)).await;
        assert_eq!(ok.unwrap(), 7);
        held.reaches(0.0, "with_lock").await;
    });
}

#[test]
fn t123f_locks_held_returns_to_zero_after_lease_loss_and_lock_lost() {
    let rec = DebuggingRecorder::new();
    with_recorder(&rec, || async {
        let mut held = Held {
            rec: &rec,
            sum: 0.0,
        };
        let c = Cluster::start_with(3, Opts::default()).await;
        let g = within(c.nodes[0].lock("h/lost")).await.unwrap();
        let others = [c.nodes[1].clone(), c.nodes[2].clone()];
        let r: Result<(), Error> = within(c.nodes[0].with_lock("h/wl", async |_g| {
            for n in &others {
                peerlock::testing::crash(n).await;
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }))
        .await;
        assert!(matches!(r, Err(Error::LockLost { .. })), "{r:?}");
        within(g.lost()).await;
        drop(g);
        held.reaches(0.0, "a lease lost and a with_lock cut by LockLost")
            .await;
    });
}

#[test]
fn t123g_waiters_return_to_zero_after_timed_out_waiters() {
    let rec = DebuggingRecorder::new();
    with_recorder(&rec, || async {
        let mut held = Held {
            rec: &rec,
            sum: 0.0,
        };
        let c = Cluster::start(3).await;
        let g = within(c.nodes[0].lock("w/a")).await.unwrap();
        let mut waits = Vec::new();
        for n in c.nodes.iter().skip(1) {
            let n = n.clone();
            waits.push(tokio::spawn(async move {
                n.lock_timeout("w/a", Duration::from_millis(400)).await
            }));
        }
        // Seen while they wait (the gauge is set once a tick).
        let w1 = c.nodes[1].clone();
        let long =
            tokio::spawn(async move { w1.lock_timeout("w/a", Duration::from_secs(1)).await });
        let deadline = Instant::now() + Duration::from_millis(800);
        let mut peak = 0.0f64;
        while Instant::now() < deadline {
            peak = peak.max(held.snap().get("peerlock_waiters").copied().unwrap_or(0.0));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for w in waits {
            let r = w.await.unwrap();
            assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        }
        assert!(matches!(long.await.unwrap(), Err(Error::Timeout)));
        assert!(peak >= 1.0, "waiters never seen: peak {peak}");
        held.set_gauge_reaches("peerlock_waiters", 0.0).await;
        drop(g);
        held.reaches(0.0, "timed-out waiters").await;
    });
}

/// A user stopping a whole three-node deployment, one instance after the
/// other (a rolling stop, `systemctl stop` on each): every `shutdown()`
/// ran as documented, yet the last answers `Err(NoQuorum)` after about
/// 3 s, and the docs do not say that the last instances of a cluster
/// cannot close their sessions.
#[ignore = "finding: the last node of a cluster stopped in turn returns Err(NoQuorum) from shutdown(); undocumented"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t123h_stopping_a_whole_cluster_in_turn_is_ok_on_every_node() {
    let c = Cluster::start(3).await;
    let mut shut = Vec::new();
    for n in &c.nodes {
        let t0 = Instant::now();
        shut.push((within(n.shutdown()).await, t0.elapsed()));
    }
    assert!(shut.iter().all(|(r, _)| r.is_ok()), "{shut:?}");
}

/// `reload_tls` with a bundle that trusts none of the CAs the current
/// peers' certificates chain to returns `Ok`: the node runs on its open
/// connections and is cut off when they are next re-made (an idle pair's
/// connection closes after a few seconds), with WARN lines on every
/// node, many a second. The transport knows the certificates its peers
/// presented (`peer_certificates`): a reload could refuse (or at least
/// warn about) a bundle that verifies none of them.
#[ignore = "finding: reload_tls accepts a CA bundle that trusts none of the connected peers"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t123i_reload_tls_refuses_a_bundle_that_trusts_no_peer() {
    let c = Cluster::start(3).await;
    let foreign = ClusterCa::generate("other").unwrap();
    let lone = foreign.issue_node("node-0", &["127.0.0.1"]).unwrap();
    let r = c.nodes[0].reload_tls(lone);
    assert!(
        matches!(r, Err(Error::Tls(_))),
        "a bundle trusting none of the peers' CAs: {r:?}"
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

/// The certificates `ClusterCa` issues (and so the `certs` example's)
/// are valid from 1975 to 4096, rcgen's defaults: the expiry gauge and
/// warning window of issue 12, item 5 never fire for them, and a stolen
/// node key (there is no revocation list) stays good for ever unless the
/// CA is rotated.
#[ignore = "finding: ClusterCa issues certificates valid until the year 4096"]
#[test]
fn t123l_issued_certificates_expire_in_years_not_millennia() {
    let ca = ClusterCa::generate("test").unwrap();
    let tls = ca.issue_node("node-0", &["127.0.0.1"]).unwrap();
    let left = tls
        .not_after()
        .expect("a validity end")
        .duration_since(std::time::SystemTime::now())
        .expect("not expired");
    let ten_years = Duration::from_secs(10 * 366 * 86_400);
    assert!(
        left < ten_years,
        "a node certificate valid for {} more days",
        left.as_secs() / 86_400
    );
}

/// An operator reloads a durable node with the wrong CA (finding of
/// t123i), sees it cut off, puts the right files back and restarts it:
/// the restart is refused, because the wrong reload re-recorded the data
/// directory under the wrong CA (`data_dir::recluster`), so the mistake
/// outlives the process: recovery needs the wrong CA's certificate in the
/// bundle for one start (right CA first), or an emptied directory.
#[ignore = "finding: a reload with a wrong CA is written into the data directory; restarting with the right files is refused"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t123m_a_wrong_reload_does_not_brand_the_data_directory() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (right, wrong) = (
        ClusterCa::generate("durable").unwrap(),
        ClusterCa::generate("durable").unwrap(),
    );
    let (mut socks, addrs) = sockets(1);
    let start = |sock, tls| {
        peerlock::Node::builder()
            .socket(sock)
            .peers(addrs.clone())
            .tls(tls)
            .data_dir(dir.path())
            .session_ttl(Duration::from_millis(1500))
            .raft_tick(Duration::from_millis(20))
            .startup_timeout(WAIT)
            .start()
    };
    let good = right.issue_node("solo", &[]).unwrap();
    let node = within(start(socks.pop().unwrap(), good.clone()))
        .await
        .unwrap();
    within(node.ready()).await.unwrap();
    node.reload_tls(wrong.issue_node("solo", &[]).unwrap())
        .expect("accepted (t123i)");
    peerlock::testing::crash(&node).await;
    drop(node);
    let sock = crate::common::rebind(addrs[0]).await;
    let again = within(start(sock, good)).await;
    assert!(
        again.is_ok(),
        "restart with the right files: {:?}",
        again.err()
    );
}
