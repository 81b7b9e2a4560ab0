//! Fencing: how the resource refuses a holder that lost its lock.
//!
//! # Why a lock is not enough
//!
//! A process can stop between any check and its write: a garbage
//! collection, swapping, a `SIGSTOP`, a VM migration, a slow disk. Its
//! lease runs out meanwhile, the cluster grants the lock to another node,
//! and then the first process wakes and writes as if it still held the
//! lock. No check inside the holder ([`LockGuard::is_held`]) can prevent
//! this, because the pause can fall right after the check (Kleppmann, "How
//! to do distributed locking", 2016; Chubby, OSDI 2006 §2.4).
//!
//! So every grant carries a [`FencingToken`]: a number above every token
//! granted before it on that name (tokens rise across the whole cluster,
//! also after a leader change or a re-founding after total loss). Send it
//! with every write, and have **the resource** refuse a write whose token
//! is below the highest it has accepted. A paused holder's late write then
//! fails however long it slept. `tests/process/t10_sigstop.rs` and the
//! `service` example's test pause a real holder past its TTL and watch its
//! write refused.
//!
//! Tokens are `u64` values around 1.8 × 10^15 (the founder's wall clock in
//! microseconds plus a log index): they fit a SQL `BIGINT` and a JSON
//! number exactly.
//!
//! # A SQL database
//!
//! Keep the highest token accepted in the row (or in a row per lock
//! name), and move it forward in the same transaction as the write:
//!
//! ```sql
//! UPDATE accounts SET fence = $token WHERE id = $id AND fence < $token
//! ```
//!
//! No row changed means a later holder already wrote: roll back. `<`
//! suits one write per grant; a holder that writes several times under one
//! guard uses `<=`. The `service` example (`examples/service/db.rs`) does
//! this over SQLite and PostgreSQL with `sqlx`; here the same rule on an
//! in-memory SQLite database and a one-node cluster:
//!
//! ```rust
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::sqlite::SqlitePoolOptions;
//!
//! /// Adds `amount` to the account if `token` is the newest it has seen.
//! async fn deposit(db: &sqlx::SqlitePool, id: &str, amount: i64, token: peerlock::FencingToken)
//!     -> Result<bool, sqlx::Error>
//! {
//!     let token = i64::try_from(token.get()).expect("tokens fit an i64 for 290 000 years");
//!     let mut tx = db.begin().await?;
//!     let fenced = sqlx::query("UPDATE accounts SET fence = $1 WHERE id = $2 AND fence < $1")
//!         .bind(token).bind(id).execute(&mut *tx).await?.rows_affected();
//!     if fenced == 0 {
//!         tx.rollback().await?; // a later holder wrote first
//!         return Ok(false);
//!     }
//!     sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
//!         .bind(amount).bind(id).execute(&mut *tx).await?;
//!     tx.commit().await?;
//!     Ok(true)
//! }
//!
//! let db = SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
//! sqlx::query("CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT, fence BIGINT)")
//!     .execute(&db).await?;
//! sqlx::query("INSERT INTO accounts VALUES ('42', 0, 0)").execute(&db).await?;
//! # let ca = peerlock::certs::ClusterCa::generate("docs")?;
//! # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! # let me = socket.local_addr()?;
//! # let node = peerlock::Node::builder().socket(socket).peers([me])
//! #     .tls(ca.issue_node("node-a", &[])?).in_memory().start().await?;
//! # node.ready().await?;
//!
//! // A holder that will pause: it takes the lock, and writes only later.
//! let old = node.lock("account/42").await?;
//! let old_token = old.token();
//! drop(old); // stands for "its lease ran out while it was paused"
//!
//! // The next holder writes.
//! let ok = node
//!     .with_lock("account/42", async |g| deposit(&db, "42", 100, g.token()).await)
//!     .await??;
//! assert!(ok);
//! // The paused holder wakes and writes with its old token: refused.
//! assert!(!deposit(&db, "42", 100, old_token).await?);
//! # node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # An object store with conditional writes
//!
//! Object stores compare on their own version of an object, not on your
//! token, so fence in two steps: keep the highest token in the object's
//! metadata (or in a small control object beside it), read it with the
//! object's version, and write only if the version is unchanged.
//!
//! 1. `GET` (or `HEAD`) the object: its version (S3 `ETag`, GCS
//!    `generation`, Azure `ETag`) and the token stored in its metadata
//!    (`x-amz-meta-fence`, `x-goog-meta-fence`).
//! 2. Stored token above yours: stop, a later holder wrote.
//! 3. `PUT` with your token in the metadata and a precondition on the
//!    version read in step 1: S3 `If-Match: "<etag>"` (or `If-None-Match:
//!    *` to create), GCS `x-goog-if-generation-match: <generation>`
//!    (`ifGenerationMatch`; `0` to create), Azure `If-Match`.
//! 4. `412 Precondition Failed` means someone wrote between your read and
//!    your write: go back to step 1. A stale holder then finds the higher
//!    token and stops.
//!
//! The precondition makes steps 1 to 3 one compare-and-swap on the store's
//! side, so a holder paused between its read and its write is refused by
//! the version, and one paused before its read by the token. An
//! unconditional `PUT` (no `If-Match`) is not fenced, whatever you check
//! before it.
//!
//! # An HTTP API you own
//!
//! Have the service keep the highest token per resource and refuse lower
//! ones, with the token in a request header, the same way a version header
//! (`If-Match`) guards optimistic updates. The rule, on the service's side:
//!
//! ```rust
//! use std::collections::HashMap;
//!
//! /// The service's side: `PUT /jobs/{id}` with `Fencing-Token: <u64>`.
//! #[derive(Default)]
//! struct Jobs {
//!     /// Per job: the highest token accepted and the value it wrote.
//!     rows: HashMap<String, (u64, String)>,
//! }
//!
//! impl Jobs {
//!     /// 200 when accepted, 409 when a later holder wrote first.
//!     fn put(&mut self, id: &str, token: u64, body: &str) -> u16 {
//!         let row = self.rows.entry(id.to_owned()).or_insert((0, String::new()));
//!         if token < row.0 {
//!             return 409; // answer with the newer token, so callers can log it
//!         }
//!         *row = (token, body.to_owned());
//!         200
//!     }
//! }
//!
//! let mut jobs = Jobs::default();
//! assert_eq!(jobs.put("7", 1_000_005, "done by a"), 200);
//! assert_eq!(jobs.put("7", 1_000_009, "done by b"), 200); // the next holder
//! assert_eq!(jobs.put("7", 1_000_005, "late a"), 409); // a's late write
//! ```
//!
//! The service must check and store the token atomically with the write
//! (one lock or transaction on its side). A client sends the header with
//! each call (`reqwest`: `.header("Fencing-Token", g.token().to_string())`).
//! A service you do not own that offers only a version header can be used
//! as the object store above: read the version and your stored token, then
//! write with `If-Match`.
//!
//! # A fallible critical section
//!
//! [`Node::with_lock`] returns the closure's value wrapped in its own
//! `Result`. When the closure itself can fail, give it an explicit return
//! type (`async |g| -> Result<_, _> { .. }`), use `?` inside, and `??`
//! outside: the first `?` takes peerlock's error, the second the
//! closure's. Without the annotation, `?` inside the closure leaves its
//! error type unknown and the compiler asks for one.
//!
//! ```rust
//! #[derive(Debug)]
//! enum AppError {
//!     Lock(peerlock::Error),
//!     Store(String),
//! }
//! impl From<peerlock::Error> for AppError {
//!     fn from(e: peerlock::Error) -> Self { AppError::Lock(e) }
//! }
//! impl From<std::io::Error> for AppError {
//!     fn from(e: std::io::Error) -> Self { AppError::Lock(e.into()) }
//! }
//!
//! async fn write(token: peerlock::FencingToken, amount: i64) -> Result<i64, AppError> {
//!     if amount < 0 { Err(AppError::Store(format!("refused at token {token}"))) } else { Ok(amount) }
//! }
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), AppError> {
//! # let ca = peerlock::certs::ClusterCa::generate("docs")?;
//! # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! # let me = socket.local_addr()?;
//! # let node = peerlock::Node::builder().socket(socket).peers([me])
//! #     .tls(ca.issue_node("node-a", &[])?).in_memory().start().await?;
//! # node.ready().await?;
//!
//! let total = node
//!     .with_lock("ledger", async |g| -> Result<i64, AppError> {
//!         let a = write(g.token(), 10).await?;
//!         let b = write(g.token(), 20).await?;
//!         Ok(a + b)
//!     })
//!     .await??;
//! assert_eq!(total, 30);
//!
//! // The closure's own error comes out of the second `?`, and the lock
//! // was released all the same.
//! let failed = node
//!     .with_lock("ledger", async |g| -> Result<i64, AppError> { write(g.token(), -1).await })
//!     .await?;
//! assert!(matches!(failed, Err(AppError::Store(_))));
//! # node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Retrying: [`Error::is_retryable`](crate::Error::is_retryable) says
//! which of peerlock's errors may succeed if the call is made again
//! ([`Error::LockLost`](crate::Error::LockLost) means: run the whole
//! section again, under a new token).
//!
//! # Work that outlives its lock
//!
//! When the lease may be lost while the closure runs, `with_lock` **drops
//! the closure's future** and returns `Err(LockLost)`. Dropping a future
//! stops only what that future owns. Anything the closure started
//! elsewhere keeps running with the old token: a task it spawned
//! (`tokio::spawn`), a thread, a request already sent to a database or a
//! queue. Likewise, a guard you hold yourself does not stop your code when
//! [`LockGuard::lost`] completes; it only tells you.
//!
//! Keep such work safe in this order of strength:
//!
//! 1. **Fence it.** Pass the token to everything that writes, spawned or
//!    not. This is the only defence that holds across a pause, because the
//!    paused code cannot run any check of its own. The `service` example
//!    runs its database write in a spawned task on purpose and lets the
//!    fence decide.
//! 2. **Keep the work inside the closure's future** (await it rather than
//!    spawn it), so dropping the future stops it at its next `.await`. A
//!    database transaction dropped before its commit rolls back.
//! 3. **Stop what you spawned.** Keep the task's handle and abort it when
//!    the lock is lost, or race the work against `lost()`:
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
//! # async fn long_job(_token: peerlock::FencingToken) -> u32 { 7 }
//! let guard = node.lock("reindex").await?;
//! let job = tokio::spawn(long_job(guard.token())); // fenced by the token as well
//! let aborter = job.abort_handle();
//! let outcome = tokio::select! {
//!     done = job => done.ok(),
//!     _ = guard.lost() => {
//!         aborter.abort(); // stops it at its next .await; what it sent is sent
//!         None
//!     }
//! };
//! guard.unlock().await?;
//! assert_eq!(outcome, Some(7));
//! # node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Aborting is best effort: a write already on the wire lands, and a
//! blocking call in `spawn_blocking` cannot be aborted at all. Only the
//! fence turns those late writes away.
//!
//! [`LockGuard::is_held`]: crate::LockGuard::is_held
//! [`LockGuard::lost`]: crate::LockGuard::lost
//! [`FencingToken`]: crate::FencingToken
//! [`Node::with_lock`]: crate::Node::with_lock
