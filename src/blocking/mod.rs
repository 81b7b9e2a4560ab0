//! A blocking API for programs without an async runtime (issue 12, item 7),
//! in the shape of `reqwest::blocking`: the same [`NodeBuilder`], and a
//! [`Node`] whose calls block the calling thread until they are answered.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! # let addr = socket.local_addr()?;
//! # let ca = peerlock::certs::ClusterCa::generate("doc")?;
//! # let tls = ca.issue_node("node-a", &["127.0.0.1"])?;
//! // A one-node cluster for the example; a real one lists its peers.
//! let builder = peerlock::Node::builder()
//!     .socket(socket)
//!     .peers([addr])
//!     .tls(tls)
//!     .in_memory();
//! let node = peerlock::blocking::Node::start(builder)?;
//! node.ready()?;
//!
//! let guard = node.lock("orders/42")?;
//! println!("held with fencing token {}", guard.token());
//! drop(guard); // releases, in the background
//!
//! let token = node.with_lock("orders/42", |g| {
//!     // Hand g.token() to the resource with every write.
//!     g.token()
//! })?;
//! assert!(node.try_lock("orders/42")?.is_some());
//! # let _ = token;
//! node.shutdown()?;
//! # Ok(()) }
//! ```
//!
//! # The runtime
//!
//! [`Node::start`] builds a multi-thread Tokio runtime of its own, with two
//! worker threads (`peerlock-blocking`), and starts the async node on it.
//! The node's Raft task, its QUIC endpoint and its keepalives run on those
//! workers all the time, whatever the calling threads do: a lease must be
//! renewed while the program sits in a critical section, which a
//! current-thread runtime driven only by the calls would not do. Two
//! workers rather than one keep the keepalives going while the other
//! worker is busy with a large apply or snapshot. Each call runs its
//! future on the calling thread with `Runtime::block_on`, so any number of
//! threads may call one `Node` (it is `Clone + Send + Sync`).
//!
//! # Inside an async runtime
//!
//! Blocking a runtime's worker thread stalls every task on it (and Tokio
//! panics when `block_on` is called there; `reqwest::blocking` panics
//! too). Here nothing panics: [`Node::start`] and every blocking call
//! return `Error::InvalidRequest` when the calling thread belongs to a
//! Tokio runtime (`tokio::runtime::Handle::try_current()` succeeds: a
//! worker thread, or a `spawn_blocking` thread). Use [`crate::Node`]
//! there. Dropping a guard or the node is always safe, anywhere: a guard's
//! drop only sends its release to the node's task, and the node's last
//! drop shuts it down on a thread of its own when called inside a runtime.
//!
//! # Critical sections cannot be cancelled
//!
//! The async [`crate::Node::with_lock`] drops its closure's future when the
//! lease may be gone. A blocking closure cannot be stopped from outside: it
//! runs to its end even after the lease was lost and another node was
//! granted the lock. [`Node::with_lock`] then returns `Err(LockLost)` and
//! discards the closure's result, but whatever the closure wrote is
//! written. The defences are the guard's [`LockGuard::is_held`], checked
//! before each step, and above all the fencing token
//! ([`LockGuard::token`]), passed to the resource with every write so that
//! it refuses a stale holder's writes.

mod guard;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::client::{MemberInfo, NodeStatus};
use peerlock_core::{Error, LockInfo, LocksPage};

use crate::builder::NodeBuilder;

pub use guard::LockGuard;

/// The worker threads of a blocking node's runtime (see the module docs).
const WORKERS: usize = 2;

/// How long a blocking node's last drop waits for the runtime's tasks to
/// stop after the node's shutdown.
const RUNTIME_STOP: Duration = Duration::from_secs(1);

/// A peerlock node for blocking code, on a runtime of its own. `Clone +
/// Send + Sync`; clones share one node and one runtime.
///
/// Dropping the last clone (and the last guard) shuts the node down as
/// [`Node::shutdown`] does, then stops the runtime.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// What the clones of a blocking node and its guards share.
pub(crate) struct Inner {
    node: crate::Node,
    /// `Some` until the last drop takes it.
    runtime: Option<tokio::runtime::Runtime>,
    /// Set once `shutdown` ran: the last drop has nothing more to close.
    stopped: AtomicBool,
}

impl Inner {
    /// Runs `fut` to completion on the calling thread, on the node's
    /// runtime; refused inside an async runtime (see the module docs).
    pub(crate) fn block_on<F: std::future::Future>(&self, fut: F) -> Result<F::Output, Error> {
        refuse_inside_runtime("a peerlock::blocking call")?;
        match &self.runtime {
            Some(rt) => Ok(rt.block_on(fut)),
            None => Err(Error::Shutdown),
        }
    }
}

/// `InvalidRequest` when the calling thread belongs to a Tokio runtime.
fn refuse_inside_runtime(what: &str) -> Result<(), Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::InvalidRequest {
            reason: format!(
                "{what} blocks its thread and was made inside a Tokio runtime, \
                 where blocking stalls every task: use the async peerlock::Node there"
            ),
        });
    }
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(rt) = self.runtime.take() else {
            return;
        };
        let node = self.node.clone();
        let stopped = self.stopped.load(Ordering::SeqCst);
        let stop = move || {
            if !stopped {
                // Bounded, as `shutdown` documents; the error (a session
                // that could not be closed expires by itself) has no one
                // to go to.
                let _ = rt.block_on(node.shutdown());
            }
            drop(node);
            rt.shutdown_timeout(RUNTIME_STOP);
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking here would stall (or panic) the caller's runtime.
            let spawned = std::thread::Builder::new()
                .name("peerlock-blocking-stop".into())
                .spawn(stop);
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a thread to stop a blocking node; its session expires by itself");
            }
        } else {
            stop();
        }
    }
}

impl Node {
    /// Builds the node's runtime and starts `builder`'s node on it, as
    /// [`NodeBuilder::start`] does (it does not wait for a leader: see
    /// [`Node::ready`]).
    ///
    /// # Errors
    ///
    /// `InvalidRequest` when called inside a Tokio runtime; `Io` when the
    /// runtime cannot be built; otherwise [`NodeBuilder::start`]'s errors.
    pub fn start(builder: NodeBuilder) -> Result<Self, Error> {
        refuse_inside_runtime("peerlock::blocking::Node::start")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("peerlock-blocking")
            .enable_all()
            .build()
            .map_err(Error::Io)?;
        let node = runtime.block_on(builder.start())?;
        Ok(Self {
            inner: Arc::new(Inner {
                node,
                runtime: Some(runtime),
                stopped: AtomicBool::new(false),
            }),
        })
    }

    /// Waits until a leader is known and this node's session is open, as
    /// [`crate::Node::ready`].
    ///
    /// # Errors
    ///
    /// As [`crate::Node::ready`]; `InvalidRequest` inside a Tokio runtime.
    pub fn ready(&self) -> Result<(), Error> {
        self.inner.block_on(self.inner.node.ready())?
    }

    /// Acquires `name`, waiting in its FIFO queue, as
    /// [`crate::Node::lock`]. The wait has no bound but the quorum's
    /// (`NoQuorum` after about one TTL without one): use
    /// [`Node::lock_timeout`] to bound it.
    ///
    /// # Errors
    ///
    /// As [`crate::Node::lock`] (`AlreadyHeld` when this thread holds
    /// `name` through this node already); `InvalidRequest` inside a Tokio
    /// runtime.
    pub fn lock(&self, name: &str) -> Result<LockGuard, Error> {
        let g = self.inner.block_on(self.inner.node.lock(name))??;
        Ok(LockGuard::new(g, &self.inner))
    }

    /// Acquires `name` if it is free now; `Ok(None)` if it is held.
    ///
    /// # Errors
    ///
    /// As [`crate::Node::try_lock`]; `InvalidRequest` inside a Tokio
    /// runtime.
    pub fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, Error> {
        let g = self.inner.block_on(self.inner.node.try_lock(name))??;
        Ok(g.map(|g| LockGuard::new(g, &self.inner)))
    }

    /// Acquires `name`, or fails with `Error::Timeout` after `timeout`
    /// (`Duration::ZERO`: one attempt that never queues).
    ///
    /// # Errors
    ///
    /// `Timeout`, and as [`crate::Node::lock_timeout`]; `InvalidRequest`
    /// inside a Tokio runtime.
    pub fn lock_timeout(&self, name: &str, timeout: Duration) -> Result<LockGuard, Error> {
        let g = self
            .inner
            .block_on(self.inner.node.lock_timeout(name, timeout))??;
        Ok(LockGuard::new(g, &self.inner))
    }

    /// Runs `f` on this thread holding `name`, and releases it afterwards,
    /// whatever happens (a panic in `f` included: the guard's drop
    /// releases).
    ///
    /// `f` cannot be cancelled (see the module docs): when the lease may
    /// have ended before `f` returned, its result is discarded and the call
    /// returns `Err(LockLost)`, but what `f` did is done. Check
    /// `g.is_held()` between steps and pass `g.token()` to the resource.
    /// A fallible section returns its own `Result`, which arrives inside
    /// this one: `node.with_lock(name, |g| write(g.token()))??`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// # let addr = socket.local_addr()?;
    /// # let ca = peerlock::certs::ClusterCa::generate("doc")?;
    /// # let builder = peerlock::Node::builder().socket(socket).peers([addr])
    /// #     .tls(ca.issue_node("node-a", &["127.0.0.1"])?).in_memory();
    /// # let node = peerlock::blocking::Node::start(builder)?;
    /// # node.ready()?;
    /// // A resource that keeps the highest token it accepted.
    /// let mut fence = 0u64;
    /// let mut write = |token: peerlock::FencingToken| -> Result<(), String> {
    ///     if token.get() < fence {
    ///         return Err(format!("stale token {token}"));
    ///     }
    ///     fence = token.get();
    ///     Ok(())
    /// };
    /// node.with_lock("account/7", |g| write(g.token()))??;
    /// # node.shutdown()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `LockLost` as above; acquire errors as for [`Node::lock`].
    pub fn with_lock<T, F>(&self, name: &str, f: F) -> Result<T, Error>
    where
        F: FnOnce(&LockGuard) -> T,
    {
        let guard = self.lock(name)?;
        guard.run(f)
    }

    /// [`Node::with_lock`] with a bound on the wait for the lock.
    ///
    /// # Errors
    ///
    /// `Timeout` when the lock was not granted within `timeout`; otherwise
    /// as [`Node::with_lock`].
    pub fn with_lock_timeout<T, F>(&self, name: &str, timeout: Duration, f: F) -> Result<T, Error>
    where
        F: FnOnce(&LockGuard) -> T,
    {
        let guard = self.lock_timeout(name, timeout)?;
        guard.run(f)
    }

    /// The current holder of `name`, read linearizably, as
    /// [`crate::Node::holder`].
    ///
    /// # Errors
    ///
    /// As [`crate::Node::holder`]; `InvalidRequest` inside a Tokio runtime.
    pub fn holder(&self, name: &str) -> Result<Option<LockInfo>, Error> {
        self.inner.block_on(self.inner.node.holder(name))?
    }

    /// A page of the names in use, as [`crate::Node::locks`].
    ///
    /// # Errors
    ///
    /// As [`crate::Node::locks`]; `InvalidRequest` inside a Tokio runtime.
    pub fn locks(&self, after: Option<&str>, limit: usize) -> Result<LocksPage, Error> {
        self.inner.block_on(self.inner.node.locks(after, limit))?
    }

    /// The members, read linearizably, as [`crate::Node::members`].
    ///
    /// # Errors
    ///
    /// As [`crate::Node::members`]; `InvalidRequest` inside a Tokio runtime.
    pub fn members(&self) -> Result<Vec<MemberInfo>, Error> {
        self.inner.block_on(self.inner.node.members())?
    }

    /// This node's local view (never blocks): id, name, role, leader,
    /// term, indexes, members.
    pub fn status(&self) -> NodeStatus {
        self.inner.node.status()
    }

    /// The UDP address the node is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.node.local_addr()
    }

    /// The async node underneath, for code that runs on a runtime (its
    /// calls must be awaited; this node's runtime stays with this `Node`).
    pub fn as_async(&self) -> &crate::Node {
        &self.inner.node
    }

    /// Releases this node's locks, hands leadership over and stops, as
    /// [`crate::Node::shutdown`] (bounded: about 11 s at most). The
    /// runtime stops when the last clone and guard are dropped.
    ///
    /// # Errors
    ///
    /// As [`crate::Node::shutdown`] (`NoQuorum` when the session could not
    /// be closed); `InvalidRequest` inside a Tokio runtime.
    pub fn shutdown(&self) -> Result<(), Error> {
        let out = self.inner.block_on(self.inner.node.shutdown())?;
        self.inner.stopped.store(true, Ordering::SeqCst);
        out
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("blocking::Node")
            .field(&self.inner.node)
            .finish()
    }
}
