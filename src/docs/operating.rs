//! Operating: metrics, alerts, logs, and what to do about each error.
//!
//! # Metrics
//!
//! peerlock counts through the [`metrics`](https://docs.rs/metrics)
//! facade and installs no exporter: install the one your service uses
//! (`metrics-exporter-prometheus`, for instance) before starting the node,
//! and call [`crate::metrics::describe`] once for the help texts. Every
//! name is a constant in [`crate::metrics`], documented with its type and
//! labels; no label carries a lock name, so the number of series does not
//! grow with your locks.
//!
//! ```rust
//! // Any recorder works; this one keeps the text a Prometheus scrape gets.
//! let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
//! let scrape = recorder.handle();
//! metrics::set_global_recorder(recorder).expect("the first recorder in this process");
//! peerlock::metrics::describe();
//! // ... start the node, take locks ...
//! // Serve `scrape.render()` on GET /metrics (the `service` example does).
//! let _text: String = scrape.render();
//! ```
//!
//! # Alerts
//!
//! Each alert below names the metric constant it reads. The membership
//! gauges are set by the node that leads Raft (a former leader keeps
//! exporting its last value), so the expressions take `max` across
//! instances.
//!
//! | alert | expression (Prometheus) | metric | what it means |
//! |---|---|---|---|
//! | quorum at risk | `max(peerlock_voters_live) < floor(max(peerlock_members{role="voter"}) / 2) + 1` | [`VOTERS_LIVE`], [`MEMBERS`] | fewer than a majority of voters answer the leader: locks stop being granted. Page. |
//! | no leader | from the health endpoint: [`Node::status`](crate::Node::status)`.leader` is `None` (or [`Node::ready`](crate::Node::ready) fails) on most instances for 30 s | (none yet) | no instance leads: no quorum, or every instance is down. Page. |
//! | no spare voter | `max(peerlock_members{role="voter"}) < max(peerlock_voters_target)` for 10 min | [`MEMBERS`], [`VOTERS_TARGET`] | a voter is gone and no learner could replace it: one more failure may cost the quorum. Ticket. |
//! | membership stuck | `increase(peerlock_membership_skips_total[15m]) > 0` by `reason` | [`MEMBERSHIP_SKIPS`] | the leader wants a change and waits (no caught-up learner, a change in flight). Ticket if it lasts. |
//! | sessions expiring | `increase(peerlock_sessions_expired_total[10m]) > 0` | [`SESSIONS_EXPIRED`] | an instance crashed, paused or was cut off for longer than its TTL: its locks moved, and its holders got `LockLost`. Look for restarts, long GC pauses, a blocked runtime. |
//! | a node falls behind | `max(peerlock_applied_index) - peerlock_applied_index > 10000` for 5 min | [`APPLIED_INDEX`] | one instance applies far behind the others (overloaded, or a slow disk). |
//! | catching up by snapshot | `increase(peerlock_snapshots_installed_total[1h]) > 2` | [`SNAPSHOTS_INSTALLED`] | an instance keeps falling behind the log's compaction. |
//! | lock throughput | `rate(peerlock_locks_granted_total[1m])` (dashboard) | [`LOCKS_GRANTED`] | grants to this instance's callers; a drop to zero under load is a symptom of the alerts above. |
//!
//! The applied index moves only when something commits (a lock call, a
//! session opening or expiring, a membership change); an idle cluster
//! keeps it still, so alert on the distance between instances, not on
//! movement.
//!
//! Besides metrics, a health endpoint should answer from
//! [`Node::ready`](crate::Node::ready) (a leader is known and this node's
//! session is open) and [`Node::status`](crate::Node::status) (role, term,
//! leader's name, commit and applied index, members as this node last
//! applied them): both are cheap. [`Node::members`](crate::Node::members),
//! [`Node::holder`](crate::Node::holder),
//! [`Node::holders`](crate::Node::holders) and
//! [`Node::locks`](crate::Node::locks) (every name in use, paged) answer
//! linearizably (a quorum round each) for tools and debugging.
//!
//! # Logs
//!
//! peerlock logs through `tracing` under targets starting with `peerlock`
//! (raft-rs's own messages under `peerlock::raft`). WARN and ERROR are worth reading: a start
//! that waits for its peers says so every 10 s, a refused peer says why
//! (an unknown CA, a name in use), a data directory that cannot be used
//! says which file and what to do. INFO records a node becoming
//! leader, membership changes, sessions expired for silence, shutdown
//! steps. In your own program, a `tracing-subscriber` filter of
//! `warn,peerlock=info` (with `EnvFilter`, usually from `RUST_LOG`) is a
//! good default; `examples/node` reads its filter from `PEERLOCK_LOG`
//! (default `warn`: set `PEERLOCK_LOG=info` to see the INFO lines above,
//! with `--log json` for one JSON object per event).
//!
//! # Errors, and what to do
//!
//! [`Error::is_retryable`](crate::Error::is_retryable) tells the two kinds
//! apart: the same call may succeed later (retry with a pause and a
//! bound), or the call or the node is wrong (retrying changes nothing).
//!
//! | error | retry | what happened | what to do |
//! |---|---|---|---|
//! | [`Timeout`](crate::Error::Timeout) | yes | a `_timeout` call's deadline passed first; nothing is held | wait longer, or do without the lock this time |
//! | [`NoQuorum`](crate::Error::NoQuorum) | yes | this node cannot reach a majority of voters (about one TTL without an answer) | retry with a pause; if it lasts, check that a majority of instances run and that UDP between them is open (the "quorum at risk" alert) |
//! | [`LockLost`](crate::Error::LockLost) | yes | the lease may have ended while the critical section ran; another node may hold the lock now | run the whole section again (a new grant, a new token); the resource's fence refuses the old token's writes (see [`fencing`](super::fencing)) |
//! | [`TableFull`](crate::Error::TableFull) | yes | the cluster holds its maximum of 1 000 000 held locks plus waiters | release locks or stop waiting on some; look for a leak of guards |
//! | [`Shutdown`](crate::Error::Shutdown) | no | this `Node` was shut down, or stopped after a fatal error (a failing disk) | start a new `Node`; read the ERROR log line for the cause |
//! | [`Removed`](crate::Error::Removed) | no | the cluster removed this node (replaced while it was away, or it left) | nothing, by default: it rejoins by itself under a new id (`MembershipConfig::rejoin_when_removed`); otherwise start it again |
//! | [`InvalidName`](crate::Error::InvalidName) | no | a lock name that is not 1 to 256 bytes of UTF-8 | fix the name (hash long keys) |
//! | [`InvalidRequest`](crate::Error::InvalidRequest) | no | no names, a name twice, over 64 names, a permit count out of range | fix the call |
//! | [`WrongKind`](crate::Error::WrongKind) | no | the name is in use as another primitive, or a semaphore with another count | use one kind and one count per name everywhere |
//! | [`AlreadyHeld`](crate::Error::AlreadyHeld) | no | this task already holds the name through this node; waiting would wait for ever | pass the guard, or its token, to the nested code |
//! | [`Config`](crate::Error::Config) | no | a builder option is wrong or missing; the message names it (and the minimum TTL for a tick, the differing peer lists of two founders, ...) | fix the option and start again |
//! | [`Tls`](crate::Error::Tls) | no | a certificate or key does not load or fit (wrong CA, missing usage, no common name) | the message names the file; see [`certificates`](super::certificates) |
//! | [`TlsIdentityChanged`](crate::Error::TlsIdentityChanged) | no | [`Node::reload_tls`](crate::Node::reload_tls) was given a certificate for another member name than this node's; nothing changed | issue the node a certificate for its own name (a rotation cannot rename a member) |
//! | [`Io`](crate::Error::Io) | no | the OS refused something: the port is taken, a file cannot be read, the data directory cannot be written | the message names what; fix and start again |
//!
//! A retry loop for the retryable ones:
//!
//! ```rust
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), peerlock::Error> {
//! use std::time::Duration;
//! # let ca = peerlock::certs::ClusterCa::generate("docs")?;
//! # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! # let me = socket.local_addr()?;
//! # let node = peerlock::Node::builder().socket(socket).peers([me])
//! #     .tls(ca.issue_node("node-a", &[])?).in_memory().start().await?;
//! # node.ready().await?;
//!
//! let mut pause = Duration::from_millis(100);
//! let out = loop {
//!     match node.with_lock("report", async |g| g.token()).await {
//!         Err(e) if e.is_retryable() && pause < Duration::from_secs(5) => {
//!             tokio::time::sleep(pause).await;
//!             pause *= 2; // a NoQuorum lasts as long as the majority is missing
//!         }
//!         other => break other,
//!     }
//! };
//! println!("ran with token {}", out?);
//! # node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Routine work
//!
//! - **Upgrades**: one instance at a time, waiting for it to be ready
//!   (and, on Kubernetes, `minReadySeconds`) before the next. Releases say
//!   when every node of a cluster must be upgraded together.
//! - **Backups**: do not restore a node's data directory from a backup;
//!   the others refuse an older copy of a member they know. A node whose
//!   directory is lost is emptied and joins as a new member.
//! - **Replacing a machine**: start the new instance (it joins through its
//!   seeds or peers) and stop the old one with `shutdown()`; a voter that
//!   vanishes is replaced after `MembershipConfig::dead_after` (20 s).
//!
//! [`VOTERS_LIVE`]: crate::metrics::VOTERS_LIVE
//! [`MEMBERS`]: crate::metrics::MEMBERS
//! [`VOTERS_TARGET`]: crate::metrics::VOTERS_TARGET
//! [`MEMBERSHIP_SKIPS`]: crate::metrics::MEMBERSHIP_SKIPS
//! [`SESSIONS_EXPIRED`]: crate::metrics::SESSIONS_EXPIRED
//! [`APPLIED_INDEX`]: crate::metrics::APPLIED_INDEX
//! [`SNAPSHOTS_INSTALLED`]: crate::metrics::SNAPSHOTS_INSTALLED
//! [`LOCKS_GRANTED`]: crate::metrics::LOCKS_GRANTED
