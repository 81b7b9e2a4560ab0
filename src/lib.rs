//! # peerlock: distributed locks with no lock server
//!
//! Every instance of your application links peerlock and is told its peers'
//! addresses. The instances form their own Raft group over QUIC with mutual
//! TLS, and agree among themselves on locks, leases and fencing tokens. No
//! etcd, ZooKeeper or Redis to run.
//!
//! ```no_run
//! # async fn demo() -> Result<(), peerlock::Error> {
//! let ca = peerlock::certs::ClusterCa::generate("demo")?;
//! let node = peerlock::Node::builder()
//!     .listen("127.0.0.1:7100".parse().unwrap())
//!     .peers(["127.0.0.1:7100", "127.0.0.1:7101", "127.0.0.1:7102"])
//!     .tls(ca.issue_node("node-a", &["127.0.0.1"])?)
//!     .in_memory()
//!     .start()
//!     .await?;
//! node.ready().await?;
//! let token = node
//!     .with_lock("account/42", async |guard| {
//!         // Hand guard.token() to the resource with every write.
//!         guard.token()
//!     })
//!     .await?;
//! println!("held with fencing token {token}");
//! # Ok(()) }
//! ```
//!
//! ## What it guarantees, and what it rests on
//!
//! - **Mutual exclusion of grants.** A lock is granted by a committed Raft
//!   log entry; at most one session holds it at any index of the log.
//! - **Fencing tokens.** A grant's token is the Raft index of the entry that
//!   granted it plus the cluster's token base (its founder's wall clock in
//!   microseconds, fixed once, so a cluster founded again after total loss
//!   still hands out higher tokens): strictly increasing per mutex and
//!   unique across mutexes. The grants one entry makes share its token
//!   (readers or permit holders let in together, every name of a
//!   multi-lock), so a token never falls per name and an exclusive grant's
//!   token is above every earlier grant's on its names. A
//!   resource that refuses writes with a token lower than the highest it
//!   has seen can never be written by a holder that lost its lock. **This is
//!   the real protection**: a process can pause between any check and its
//!   write.
//! - **Leases judged conservatively by the holder.** `guard.is_held()` turns
//!   false (and `guard.lost()` completes) before the majority can expire the
//!   session, as long as clock *rates* differ by less than the lease margin
//!   (a tenth of the TTL). No wall clock or clock synchronisation is used.
//!
//! ## Leader election
//!
//! A campaign is an acquire of the election's name, and the leader holds
//! it: one leader at a time, a fencing token per term of office, and the
//! leader learns of its loss before another candidate can be granted the
//! election. [`Node::run_as_leader`] keeps a job running on exactly one
//! node, dropping it before the leadership is released
//! (`cargo run --example scheduler` runs one through a crash).
//!
//! ```no_run
//! # async fn demo(node: peerlock::Node) -> Result<(), peerlock::Error> {
//! let task = node.run_as_leader("scheduler", |l: peerlock::Leadership| async move {
//!     loop {
//!         println!("running the job with token {}", l.token());
//!         tokio::time::sleep(std::time::Duration::from_secs(60)).await;
//!     }
//! });
//! println!("leader now: {:?}", node.leader("scheduler").await?);
//! task.stop().await?; // drops the job, then resigns
//! # Ok(()) }
//! ```
//!
//! ## Semaphores, read-write locks, multi-locks
//!
//! One mechanism under all three (issue 11): a request carries claims on
//! names and is granted in one Raft log entry, on every name at once, with
//! one fencing token, or waits FIFO on all of them without holding any.
//! Each guard has `token()`, `is_held()`, `lost()` and releases on drop,
//! with the mutex's lease and lock-delay rules.
//!
//! ```no_run
//! # async fn demo(node: peerlock::Node) -> Result<(), peerlock::Error> {
//! // At most 8 calls to the payment provider at once, across the cluster.
//! let permit = node.semaphore("payments", 8).acquire(1).await?;
//! drop(permit);
//! // Readers share; a writer waits for them, and its token is above theirs.
//! let r = node.read_lock("catalog").await?;
//! r.unlock().await?;
//! let w = node.write_lock("catalog").await?;
//! w.unlock().await?;
//! // Both accounts or neither, in one entry: no deadlock in any order.
//! node.with_locks(["acct/1", "acct/2"], async |g| {
//!     println!("transfer under token {}", g.token());
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! `cargo run --example semaphore` limits calls to a slow resource across
//! three nodes; `cargo run --example transfers` moves money between
//! accounts with `with_locks` under a read lock that an auditor's write
//! lock excludes.
//!
//! A task that holds a lock and asks the same node for it again gets
//! [`Error::AlreadyHeld`] rather than waiting behind itself: locks are
//! owned by guards, not threads (issue 11, item 5).
//!
//! ## Guides
//!
//! The [`docs`] module teaches: [getting started](docs::getting_started),
//! [fencing a resource](docs::fencing), [choosing a TTL](docs::choosing_ttl),
//! [certificates](docs::certificates), [deploying](docs::deploying),
//! [operating](docs::operating), [failure modes](docs::failure_modes) and
//! [coming from etcd, ZooKeeper or Redis](docs::coming_from).
//!
//! ## What peerlock is not
//!
//! Not a key-value store and not a queue. With `.data_dir(path)` the lock
//! table survives a restart of every node; with `.in_memory()` it survives
//! the loss of any minority of nodes but not a restart of all of them.
//!
//! ## Cargo features
//!
//! - `disk` (on by default): durable storage, `NodeBuilder::data_dir`. An
//!   application whose nodes all run `.in_memory()` can turn it off
//!   (`peerlock = { version = "0.6", default-features = false }`): the
//!   log files, their recovery and the fsync thread are then not linked,
//!   about 0.26 MiB less in its binary (issue 12, item 9), and
//!   `data_dir` does not exist.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod blocking;
mod builder;
#[cfg(feature = "disk")]
mod data_dir;
pub mod docs;
mod durable;
mod election;
#[cfg(feature = "disk")]
mod foreign;
mod forming;
mod join_seeds;
mod locks;
mod members;
mod node;
mod rejoin;
mod resolve;
mod rwlock;
mod semaphore;
mod startup_note;
pub mod testing;
mod tls_reload;

pub use builder::NodeBuilder;
pub use election::LeaderTask;
pub use node::Node;
pub use peerlock_core::client::{
    LockEntry, LocksPage, MemberInfo, MemberRole, MemberStatus, NodeStatus, Role, MAX_LOCKS_PAGE,
};
pub use peerlock_core::machine::{ClaimKind, NameKind};
pub use peerlock_core::{
    Error, FencingToken, HolderInfo, HoldersInfo, LeaderInfo, Leadership, LockGuard, LockInfo,
    LockName, MembershipConfig, MultiGuard, NodeId, NodeName, Permit, ReadGuard, SessionId,
    WriteGuard,
};
pub use peerlock_transport::TlsConfig;
pub use semaphore::Semaphore;

/// Metric names (through the `metrics` facade; install any exporter).
pub use peerlock_core::metrics;

/// Certificate tooling: a cluster CA that issues node certificates, and
/// their default validity periods.
pub mod certs {
    pub use peerlock_transport::{ClusterCa, CA_CERT_VALIDITY, CERT_BACKDATE, NODE_CERT_VALIDITY};
}

/// STYLE practice 11: the public handles and futures are Send (+ Sync).
#[allow(dead_code)]
const _: fn(Node) = |node| {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: T) {}
    send_sync::<Node>();
    send_sync::<LockGuard>();
    send_sync::<Error>();
    send(node.lock("x"));
    send(node.try_lock("x"));
    send(node.lock_timeout("x", std::time::Duration::from_secs(1)));
    send(node.holder("x"));
    send(node.with_lock("x", async |g: &LockGuard| g.token()));
    send(node.with_lock_timeout(
        "x",
        std::time::Duration::from_secs(1),
        async |g: &LockGuard| g.token(),
    ));
    send_sync::<Permit>();
    send_sync::<ReadGuard>();
    send_sync::<WriteGuard>();
    send_sync::<MultiGuard>();
    send_sync::<Semaphore>();
    let sem = node.semaphore("s", 2);
    send(sem.acquire(1));
    send(sem.try_acquire(1));
    send(sem.acquire_timeout(1, std::time::Duration::from_secs(1)));
    send(node.read_lock("x"));
    send(node.write_lock("x"));
    send(node.lock_all(["x", "y"]));
    send(node.with_locks(["x", "y"], async |g: &MultiGuard| g.token()));
    send(node.holders("x"));
    send(node.locks(None, 10));
    send_sync::<blocking::Node>();
    send_sync::<blocking::LockGuard>();
    send(node.shutdown());
};
