//! Getting started: one node in a test, then three processes.
//!
//! # Add the crates
//!
//! ```toml
//! [dependencies]
//! peerlock = "0.6"
//! tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
//! ```
//!
//! peerlock runs on a Tokio runtime (1.88 or newer Rust). It installs no
//! logger and no metrics exporter: it logs through `tracing` and counts
//! through the `metrics` facade, so the application picks both (see
//! [`operating`](super::operating)).
//!
//! # One node, in memory
//!
//! A node needs three things: a UDP address, the addresses of the
//! cluster's first members (its *peers*), and a certificate signed by the
//! cluster's CA (peers talk QUIC with mutual TLS; see
//! [`certificates`](super::certificates)). A node whose only peer is its
//! own address is a one-node cluster: every call works as in a larger
//! one, which makes it the right tool for unit tests.
//!
//! ```rust
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), peerlock::Error> {
//! use std::time::Duration;
//!
//! // A throwaway CA and certificate; in production both come from files.
//! let ca = peerlock::certs::ClusterCa::generate("tests")?;
//! // Bind first (port 0: the OS picks one) to learn the address.
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let me = socket.local_addr()?;
//! let node = peerlock::Node::builder()
//!     .socket(socket)
//!     .peers([me]) // its own address only: a one-node cluster
//!     .tls(ca.issue_node("node-a", &[])?)
//!     .in_memory() // or .data_dir(path) to survive restarts
//!     .start()
//!     .await?;
//! node.ready().await?; // a leader is known and this node's session is open
//!
//! // The closure runs while the lock is held; the lock is released after.
//! let token = node
//!     .with_lock("orders/42", async |guard| {
//!         // Hand guard.token() to the resource with every write.
//!         guard.token()
//!     })
//!     .await?;
//!
//! // Or hold a guard yourself.
//! let guard = node.lock("orders/42").await?; // waits, FIFO
//! assert!(guard.token() > token); // every grant's token is higher
//! assert!(node.try_lock("orders/42").await?.is_none()); // held: never waits
//!
//! // Another task waits its turn, here for 50 ms at most.
//! let other = node.clone();
//! let waiter = tokio::spawn(async move {
//!     other.lock_timeout("orders/42", Duration::from_millis(50)).await.err()
//! });
//! assert!(matches!(waiter.await, Ok(Some(peerlock::Error::Timeout))));
//! // The task holding it would wait behind itself: refused at once.
//! let again = node.lock("orders/42").await;
//! assert!(matches!(again, Err(peerlock::Error::AlreadyHeld { .. })));
//! guard.unlock().await?; // or drop(guard): released in the background
//!
//! node.shutdown().await?; // releases this node's locks, then stops
//! # Ok(()) }
//! ```
//!
//! Names are UTF-8 strings of 1 to 256 bytes; `/` is only a convention.
//! [`Node`](crate::Node) is `Clone + Send + Sync`: clone it into every
//! task that needs locks, and call [`Node::shutdown`](crate::Node::shutdown)
//! once when the program ends.
//!
//! # Three processes
//!
//! A production cluster is three (or five) instances of your application,
//! each embedding a node; a majority must be up for locks to be granted.
//! Give each instance a certificate of its own, made once with the
//! repository's `certs` example (see [`certificates`](super::certificates)):
//!
//! ```text
//! cargo run --example certs -- ./certs node-a node-b node-c
//! # ./certs/ca.pem, ca.key (keep it off the nodes), node-a.pem, node-a.key, ...
//! ```
//!
//! Every instance gets the same peer list and its own certificate:
//!
//! ```rust,no_run
//! # async fn demo() -> Result<(), peerlock::Error> {
//! let me = std::env::var("NODE").unwrap_or_else(|_| "node-a".into());
//! let listen = std::env::var("LISTEN").unwrap_or_else(|_| "10.0.0.1:7100".into());
//! let tls = peerlock::TlsConfig::from_pem_files(
//!     "certs/ca.pem",
//!     format!("certs/{me}.pem"),
//!     format!("certs/{me}.key"),
//! )?;
//! let node = peerlock::Node::builder()
//!     .listen(listen.parse().map_err(|e| peerlock::Error::Config(format!("LISTEN: {e}")))?)
//!     .peers(["10.0.0.1:7100", "10.0.0.2:7100", "10.0.0.3:7100"])
//!     .tls(tls)
//!     .data_dir(format!("/var/lib/myapp/peerlock-{me}"))
//!     .start()
//!     .await?; // waits (up to 60 s) until the peers answer
//! node.ready().await?;
//! # Ok(()) }
//! ```
//!
//! `start()` returns once the cluster is formed; until the peers answer it
//! logs at WARN every 10 s what it waits for. Every listed peer must
//! answer once to found the cluster; later, instances restart and join
//! through whichever members answer. For instances whose addresses are
//! not known in advance (Kubernetes, autoscaling), use
//! [`NodeBuilder::seeds`](crate::NodeBuilder::seeds) and
//! [`NodeBuilder::bootstrap_expect`](crate::NodeBuilder::bootstrap_expect)
//! instead of `peers` (see [`deploying`](super::deploying)).
//!
//! Any node, leader or not, accepts every call; a follower forwards to the
//! leader. A call completes when the caller's own node has applied the
//! entry that answers it.
//!
//! # What else there is
//!
//! - Leader election: [`Node::run_as_leader`](crate::Node::run_as_leader)
//!   keeps a job running on exactly one node;
//!   [`Node::campaign`](crate::Node::campaign) for the parts.
//! - [`Node::semaphore`](crate::Node::semaphore),
//!   [`Node::read_lock`](crate::Node::read_lock) /
//!   [`Node::write_lock`](crate::Node::write_lock), and
//!   [`Node::lock_all`](crate::Node::lock_all) /
//!   [`Node::with_locks`](crate::Node::with_locks) for several names in
//!   one grant, with no deadlock in any order.
//! - [`Node::holder`](crate::Node::holder),
//!   [`Node::holders`](crate::Node::holders) and
//!   [`Node::members`](crate::Node::members) read the cluster
//!   linearizably; [`Node::status`](crate::Node::status) is this node's
//!   local view.
//! - [`Node::locks`](crate::Node::locks) lists every name in use (holder,
//!   token, age, waiters), a page at a time.
//! - [`blocking`](crate::blocking) for programs without an async runtime:
//!   the same calls, blocking the calling thread, on a runtime of the
//!   node's own.
//!
//! The repository's examples run each of these: `quickstart` (three nodes,
//! contended locks, a crash), `scheduler`, `semaphore`, `transfers`,
//! `service` (an HTTP service over a real database, as three processes)
//! and `node` (one peer per process, driven from the command line).
//!
//! Next: [`fencing`](super::fencing). A lock alone never protects a
//! resource; the token does.
