//! Coming from etcd, ZooKeeper/Curator or Redis/Redisson.
//!
//! What changes for everyone: there is no server to run. Each instance of
//! your application embeds a [`Node`](crate::Node); together they are the
//! lock service. A node opens one session for all its locks (no session
//! or lease object to manage), renews it in the background every TTL/4,
//! and every guard has a [fencing token](super::fencing). Locks are owned
//! by guards, not threads: they are not reentrant, and asking again for a
//! lock your task holds returns [`Error::AlreadyHeld`](crate::Error::AlreadyHeld)
//! at once. Waiters are always FIFO.
//!
//! In the tables, `node` is a [`Node`](crate::Node), `g` a guard.
//!
//! # etcd (`clientv3/concurrency`)
//!
//! | etcd | peerlock | notes |
//! |---|---|---|
//! | `clientv3.New(cfg)` | `Node::builder()...start().await?` | the node is a member, not a client |
//! | `concurrency.NewSession(cli, WithTTL(10))` | `.session_ttl(Duration::from_secs(10))` on the builder | one session per node, opened by `start`; [`Node::ready`](crate::Node::ready) waits for it |
//! | `session.Done()` | `g.lost().await` | per guard; completes before another node can be granted the lock |
//! | `NewMutex(s, "/locks/x").Lock(ctx)` | `node.lock("locks/x").await?` | |
//! | `m.TryLock(ctx)` | `node.try_lock("locks/x").await?` (an `Option`) | |
//! | `Lock(ctx)` with a deadline | `node.lock_timeout(name, d).await?` | `Err(Timeout)`; nothing stays queued |
//! | `m.Unlock(ctx)` | `g.unlock().await?` or `drop(g)` | |
//! | `m.Header().Revision`, the key's `CreateRevision` as a fence | `g.token()` | rises per name, across leader changes |
//! | `Txn().If(m.IsOwner())...` | fence at your resource with `g.token()` | etcd's `IsOwner` guards etcd's own keys only |
//! | `NewElection(s, "/elect/x").Campaign(ctx, val)` | `node.campaign("elect/x").await?` | or [`Node::run_as_leader`](crate::Node::run_as_leader) for a job |
//! | `e.Resign(ctx)` | `leadership.resign().await?` | |
//! | `e.Leader(ctx)` | `node.leader("elect/x").await?` | linearizable; the holder's node name, not a value |
//! | `e.Observe(ctx)` | `node.watch_leader("elect/x")` | a `Stream`, never back in log order |
//! | `e.Proclaim(ctx, val)` | none | peerlock stores no values: keep the leader's data in your store, fenced by its token |
//! | `recipe.NewRWMutex(...)` (experimental recipes) | `node.read_lock(name)` / `node.write_lock(name)` | FIFO, writers not starved |
//! | `Get(ctx, "/locks/x", WithPrefix())` to see owners | `node.holder(name)` / `node.holders(name)`, or `node.locks(after, limit)` for every name in use | linearizable; `locks` is paged in name order |
//! | `MemberList`, `Status` | `node.members()`, `node.status()` | |
//!
//! # ZooKeeper / Curator
//!
//! | Curator | peerlock | notes |
//! |---|---|---|
//! | `CuratorFrameworkFactory.newClient(..., sessionTimeoutMs, ...)` | `Node::builder().session_ttl(..)` | |
//! | `new InterProcessMutex(client, "/locks/x").acquire()` | `node.lock("locks/x").await?` | not reentrant (Curator counts per thread) |
//! | `acquire(2, SECONDS)` → `false` | `node.lock_timeout(name, Duration::from_secs(2)).await` → `Err(Timeout)` | `Duration::ZERO` is one attempt |
//! | `mutex.release()` | `g.unlock().await?` or `drop(g)` | |
//! | `InterProcessSemaphoreMutex` | `node.lock(name)` | |
//! | `new InterProcessSemaphoreV2(client, path, 8).acquire(n)` | `node.semaphore(name, 8).acquire(n).await?` | a [`Permit`](crate::Permit); FIFO, so a large request is not starved by small ones |
//! | `semaphore.returnLease(lease)` | `permit.release().await?` or `drop(permit)` | |
//! | `SharedCount` as a semaphore's size | none | the count is fixed while the name is in use; `WrongKind` for another |
//! | `new InterProcessReadWriteLock(client, path).readLock().acquire()` | `node.read_lock(name).await?` | |
//! | `.writeLock().acquire()` | `node.write_lock(name).await?` | no downgrade from write to read; the write token is above every earlier read's |
//! | `new InterProcessMultiLock(client, paths).acquire()` | `node.lock_all(names).await?` or `node.with_locks(names, ..)` | all names in one grant: no deadlock, never some held |
//! | `new LeaderLatch(client, path).start(); await()` | `node.campaign(name).await?` | |
//! | `latch.hasLeadership()` | `leadership.is_leader()` | |
//! | `latch.close()` | `leadership.resign().await?` | |
//! | `LeaderSelector` + `takeLeadership` | `node.run_as_leader(name, job)` | the job is dropped before the leadership is released |
//! | `ConnectionStateListener`: `SUSPENDED` / `LOST` | `g.lost().await`, `g.is_held()` | |
//! | the lock node's `czxid` as a fence | `g.token()` | |
//!
//! # Redis / Redisson
//!
//! | Redis / Redisson | peerlock | notes |
//! |---|---|---|
//! | `SET key id NX PX 30000` | `node.try_lock(name).await?` | no per-lock expiry: the session's TTL |
//! | compare-and-delete script | `g.unlock().await?` | a stale guard can never release a later holder's lock |
//! | `redisson.getLock("x").lock()` | `node.lock("x").await?` | |
//! | `lock.tryLock(wait, lease, unit)` | `node.lock_timeout("x", wait).await?` | no `lease`: the node renews while it runs (Redisson's watchdog, built in) |
//! | `lock.unlock()` | `g.unlock().await?` or `drop(g)` | |
//! | `lock.isLocked()` | `node.holder("x").await?.is_some()` | linearizable |
//! | `lock.isHeldByCurrentThread()` | `g.is_held()` | per guard |
//! | `lock.forceUnlock()` | none | stop the holder's node; its session expires after the TTL |
//! | `getFairLock("x")` | `node.lock("x")` | every peerlock lock is FIFO |
//! | `getFencedLock("x").lockAndGetToken()` | `node.lock("x").await?.token()` | every lock is fenced |
//! | `getSemaphore("s")`, `trySetPermits(8)`, `acquire()` | `node.semaphore("s", 8).acquire(1).await?` | permits of a crashed holder come back when its session expires |
//! | `getPermitExpirableSemaphore("s")` | `node.semaphore("s", n)` | permits expire with their node's session |
//! | `getReadWriteLock("x").readLock()` / `writeLock()` | `node.read_lock("x")` / `node.write_lock("x")` | |
//! | `new RedissonMultiLock(a, b).lock()` | `node.lock_all(["a", "b"]).await?` | atomic: one grant |
//! | `RedissonRedLock`, Redlock | any `node.lock(..)` | a Raft majority agrees on each grant; no independent masters to count |
//! | `getCountDownLatch`, `getBucket`, queues | none | peerlock is not a data store |
//!
//! # Example: a Curator-style leader latch
//!
//! ```rust
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), peerlock::Error> {
//! # let ca = peerlock::certs::ClusterCa::generate("docs")?;
//! # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! # let me = socket.local_addr()?;
//! # let node = peerlock::Node::builder().socket(socket).peers([me])
//! #     .tls(ca.issue_node("node-a", &[])?).in_memory().start().await?;
//! # node.ready().await?;
//! // LeaderLatch.start() + await()
//! let leadership = node.campaign("latch/reports").await?;
//! // hasLeadership()
//! assert!(leadership.is_leader());
//! // Who leads, from any node (the Participant list's leader)
//! let info = node.leader("latch/reports").await?.expect("someone leads");
//! assert_eq!(info.token, leadership.token());
//! // close()
//! leadership.resign().await?;
//! assert!(node.leader("latch/reports").await?.is_none());
//! # node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # What has no counterpart
//!
//! - **Data.** peerlock stores locks, not keys and values: no `Put`, no
//!   znodes, no buckets, no watches on data. Keep data in your database and
//!   fence its writes with the token.
//! - **Ephemeral nodes and sequential nodes** as building blocks: the
//!   primitives are built in (FIFO queues, fencing tokens, sessions).
//! - **A separate client**: a process that only takes locks still runs a
//!   node. Beyond `max_voters` (default 5) nodes are learners: they hold
//!   locks like any node but do not vote, and the leader promotes one only
//!   when a voter is missing.
