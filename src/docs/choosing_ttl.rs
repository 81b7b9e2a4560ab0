//! Choosing the session TTL and the lock-delay.
//!
//! # What the TTL decides
//!
//! Each node opens one session, and its locks live as long as the session.
//! The node renews the session every TTL/4; the leader expires a session
//! it has not heard from for one TTL, and only then grants its locks to
//! others. So the TTL is two things at once:
//!
//! - **how long a crashed or cut-off holder keeps its locks** before a
//!   waiter elsewhere gets them: about TTL + lock-delay after its last
//!   renewal;
//! - **how long a holder's lease must last across a leader change.** The
//!   holder trusts its lease until `sent + TTL - TTL/10` (the tenth is a
//!   margin for clocks that run at different rates), so when the leader
//!   dies it has at least `0.65 × TTL` left, and a new leader must be
//!   elected and serve the renewal within that.
//!
//! A graceful [`Node::shutdown`](crate::Node::shutdown) or a dropped guard
//! releases at once: the TTL only matters when a holder disappears.
//!
//! # The figures
//!
//! Measured on a loaded 2-core machine (the README's "Performance",
//! "Membership" and "Tested faults" sections have the details):
//!
//! | what | TTL | figure |
//! |---|---|---|
//! | a crashed holder's lock handed to a waiter on another node (the holder was also the Raft leader, so this includes an election) | 2 s | 2.2 to 2.6 s after the crash (`quickstart`) |
//! | the same, as the simulator's liveness check requires in every seed | any | between TTL + lock-delay and TTL + lock-delay + 1 s after the crash |
//! | a new Raft leader after the leader's crash, default timing | any | 523 ms median (12 trials) |
//! | a holder paused with `SIGSTOP` past its TTL: another node leads the election | 1.5 s | within 4 TTLs; the paused one's token is then refused |
//! | holders inside `with_lock` on a follower while the leader is killed, 20 times | 1 s (the minimum) | no lock lost (`t92`) |
//! | calls without a quorum fail with `NoQuorum` | any | after about one TTL (`ready()`: two) |
//!
//! # How to choose
//!
//! - **10 s (the default)** suits most services: a crashed instance's
//!   locks move within about 10 s, and a holder survives pauses and network
//!   blips of a few seconds.
//! - **2 to 5 s** where a crashed instance's work must move quickly (a
//!   scheduler, a leader whose absence stops a pipeline).
//! - **Longer** when holders pause for long: a holder whose process stops
//!   for more than about `0.65 × TTL` (garbage collection, swapping, a
//!   blocked runtime) may lose its lease. It learns so
//!   ([`LockGuard::is_held`](crate::LockGuard::is_held) turns false,
//!   [`LockGuard::lost`](crate::LockGuard::lost) completes, `with_lock`
//!   returns [`Error::LockLost`](crate::Error::LockLost)), and the fencing
//!   token stops its late writes, but its work is lost.
//! - **1 s is the minimum**, and any TTL from 1 s up keeps locks across a
//!   leader change when the Raft tick is left to peerlock: the tick is
//!   50 ms from a TTL of 4 s up and `TTL / 80` below (12 ms at 1 s). Short
//!   TTLs cost more traffic (renewals every TTL/4, heartbeats every two
//!   ticks), not safety.
//!
//! If you set the tick yourself with
//! [`NodeBuilder::raft_tick`](crate::NodeBuilder::raft_tick), a leader
//! change may take up to `3 × 10` ticks plus a renewal re-sent after 5
//! ticks, and `start()` refuses a TTL under `35 ticks × 20/13` (2.7 s at
//! 50 ms) with [`Error::Config`](crate::Error::Config) naming the minimum:
//!
//! ```rust
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), peerlock::Error> {
//! use std::time::Duration;
//!
//! let ca = peerlock::certs::ClusterCa::generate("docs")?;
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let me = socket.local_addr()?;
//! let refused = peerlock::Node::builder()
//!     .socket(socket)
//!     .peers([me])
//!     .tls(ca.issue_node("node-a", &[])?)
//!     .in_memory()
//!     .raft_tick(Duration::from_millis(50))
//!     .session_ttl(Duration::from_secs(2)) // a leader change may take longer
//!     .start()
//!     .await;
//! match refused {
//!     Err(peerlock::Error::Config(why)) => println!("{why}"), // names the minimum TTL
//!     other => panic!("expected a configuration error, got {:?}", other.map(|_| ())),
//! }
//! # Ok(()) }
//! ```
//!
//! # The lock-delay
//!
//! [`NodeBuilder::lock_delay`](crate::NodeBuilder::lock_delay) (default
//! zero) keeps a lock whose holder's session *expired* ungranted for that
//! long (Chubby's lock-delay, OSDI 2006 §2.4). A release, a dropped guard
//! or a shutdown is not delayed: only the case where the holder vanished,
//! and might still be running somewhere, writing.
//!
//! - Leave it at zero when the resource checks fencing tokens (see
//!   [`fencing`](super::fencing)): the token already turns late writes
//!   away, and a delay only slows the takeover.
//! - Set it when the resource cannot check a token (a third-party API, a
//!   file on a shared disk): choose about the longest a paused or cut-off
//!   holder could still have a write in flight after its lease ended, for
//!   instance a few request timeouts. It narrows the window; it does not
//!   close it as a fence does.
//!
//! During the delay only what the expired holder held is withheld:
//! a semaphore's other permits, and readers beside an expired reader, are
//! granted as usual, in FIFO order. The takeover after a crash becomes
//! TTL + lock-delay.
//!
//! ```rust
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), peerlock::Error> {
//! use std::time::Duration;
//!
//! # let ca = peerlock::certs::ClusterCa::generate("docs")?;
//! # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! # let me = socket.local_addr()?;
//! let node = peerlock::Node::builder()
//! #   .socket(socket).peers([me]).tls(ca.issue_node("node-a", &[])?).in_memory()
//!     .session_ttl(Duration::from_secs(3)) // a crashed holder's locks move after ~3 s
//!     .lock_delay(Duration::from_secs(2))  // ...plus 2 s, for a resource with no fence
//!     .start()
//!     .await?;
//! node.ready().await?;
//! # node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Related settings
//!
//! - `MembershipConfig::dead_after` (default 20 s, never below the TTL):
//!   how long a silent voter is waited for before a learner replaces it.
//!   It decides how quickly the cluster regains its full fault tolerance,
//!   not how quickly locks move.
//! - [`Node::lock_timeout`](crate::Node::lock_timeout) bounds one wait for
//!   a lock; it does not change how long a holder keeps it.
