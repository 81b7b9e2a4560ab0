//! Read-write locks, atomic multi-locks and `holders` on a `Node` (issue
//! 11, items 3 and 4).
//!
//! - A read lock shares the name with other readers; a write lock (the
//!   same thing as a mutex: `lock(name)` excludes readers too) holds it
//!   alone. FIFO with no writer starvation: a reader that arrives behind a
//!   queued writer waits for it (Curator's `InterProcessReadWriteLock` and
//!   Redisson's fair locks order the same way). A write grant's token is
//!   above every read grant's before it, so a resource can fence writers
//!   against readers.
//! - `lock_all` takes every name in one log entry, or waits without holding
//!   any: two multi-locks can never deadlock, whatever their orders (unlike
//!   Curator's `InterProcessMultiLock` and Redisson's `RedissonMultiLock`,
//!   which lock one by one and can deadlock or leave some taken). Among
//!   waiters the earliest committed request whose names are all free goes
//!   first, and a later one never overtakes it on a shared name. One token
//!   for the grant, above each name's previous tokens.

use std::time::Duration;

use peerlock_core::{Error, HoldersInfo, MultiGuard, ReadGuard, WriteGuard};

use crate::node::Node;

impl Node {
    /// Acquires `name` shared (beside other readers), waiting FIFO.
    ///
    /// ```no_run
    /// # async fn demo(node: peerlock::Node) -> Result<(), peerlock::Error> {
    /// let r = node.read_lock("catalog").await?;
    /// println!("reading with token {}", r.token());
    /// r.unlock().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidName`; `WrongKind` when `name` is a semaphore;
    /// `AlreadyHeld` when this task holds `name` through this node in any
    /// kind (a second read lock would queue behind a waiting writer that
    /// waits for the first: issue 11, item 5); `NoQuorum` after about one
    /// session TTL without a quorum; `TableFull`, `Shutdown`, `Removed`.
    pub async fn read_lock(&self, name: &str) -> Result<ReadGuard, Error> {
        self.handle().read_lock(name).await
    }

    /// [`Node::read_lock`] only if granted right now (no writer holds or
    /// waits); `Ok(None)` otherwise. Never waits in the queue.
    ///
    /// # Errors
    ///
    /// As [`Node::read_lock`], but never `AlreadyHeld` (it never waits).
    pub async fn try_read_lock(&self, name: &str) -> Result<Option<ReadGuard>, Error> {
        self.handle().try_read_lock(name).await
    }

    /// [`Node::read_lock`] that gives up after `timeout` with
    /// `Error::Timeout` and leaves the queue.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Node::read_lock`].
    pub async fn read_lock_timeout(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ReadGuard, Error> {
        self.handle().read_lock_timeout(name, timeout).await
    }

    /// Acquires `name` alone (no reader, no writer, no `lock` holder),
    /// waiting FIFO. Its token is above every earlier read grant's.
    ///
    /// # Errors
    ///
    /// As [`Node::read_lock`].
    pub async fn write_lock(&self, name: &str) -> Result<WriteGuard, Error> {
        self.handle().write_lock(name).await
    }

    /// [`Node::write_lock`] only if granted right now; `Ok(None)` otherwise.
    ///
    /// # Errors
    ///
    /// As [`Node::write_lock`], but never `AlreadyHeld` (it never waits).
    pub async fn try_write_lock(&self, name: &str) -> Result<Option<WriteGuard>, Error> {
        self.handle().try_write_lock(name).await
    }

    /// [`Node::write_lock`] that gives up after `timeout` with
    /// `Error::Timeout` and leaves the queue.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Node::write_lock`].
    pub async fn write_lock_timeout(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<WriteGuard, Error> {
        self.handle().write_lock_timeout(name, timeout).await
    }

    /// Acquires every name at once: one log entry, all or nothing, one
    /// fencing token above each name's previous tokens. Waits FIFO on all
    /// of them without holding any, so it cannot deadlock with another
    /// `lock_all` in any order.
    ///
    /// ```no_run
    /// # async fn demo(node: peerlock::Node) -> Result<(), peerlock::Error> {
    /// let g = node.lock_all(["acct/1", "acct/2"]).await?;
    /// println!("moving money under token {}", g.token());
    /// g.unlock().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidRequest` for no name, a name twice, or more than 64 names;
    /// `InvalidName`; `WrongKind` when a name is a semaphore; `AlreadyHeld`
    /// when this task holds one of the names through this node; as
    /// [`Node::lock`] otherwise.
    pub async fn lock_all<I, N>(&self, names: I) -> Result<MultiGuard, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.handle().lock_all(names).await
    }

    /// [`Node::lock_all`] only if every name is granted right now;
    /// `Ok(None)` otherwise. Never waits in a queue.
    ///
    /// # Errors
    ///
    /// As [`Node::lock_all`], but never `AlreadyHeld` (it never waits).
    pub async fn try_lock_all<I, N>(&self, names: I) -> Result<Option<MultiGuard>, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.handle().try_lock_all(names).await
    }

    /// [`Node::lock_all`] that gives up after `timeout` with
    /// `Error::Timeout` and leaves every queue.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Node::lock_all`].
    pub async fn lock_all_timeout<I, N>(
        &self,
        names: I,
        timeout: Duration,
    ) -> Result<MultiGuard, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.handle().lock_all_timeout(names, timeout).await
    }

    /// Runs `f` holding every name (as [`Node::lock_all`]) and releases
    /// them afterwards, whatever happens.
    ///
    /// # Errors
    ///
    /// `LockLost` exactly as [`Node::with_lock`]: `f` is dropped when the
    /// lease may be gone while it runs, and a result taken after the lease
    /// ended (or whose release finds the grant gone) is discarded. Acquire
    /// errors as for [`Node::lock_all`].
    pub async fn with_locks<I, N, T, F>(&self, names: I, f: F) -> Result<T, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
        F: AsyncFnOnce(&MultiGuard) -> T,
    {
        self.handle().with_locks(names, f).await
    }

    /// [`Node::with_locks`] with a bound on the wait for the locks
    /// (`Error::Timeout`); the closure itself is not timed.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Node::with_locks`].
    /// The closure itself is not timed.
    pub async fn with_locks_timeout<I, N, T, F>(
        &self,
        names: I,
        timeout: Duration,
        f: F,
    ) -> Result<T, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
        F: AsyncFnOnce(&MultiGuard) -> T,
    {
        self.handle().with_locks_timeout(names, timeout, f).await
    }

    /// Who holds `name` and how: its kind (lock, or semaphore and count),
    /// every grant with its token and node, permits in use and waiters;
    /// read linearizably (a quorum round). `None` when the name is not in
    /// use.
    ///
    /// # Errors
    ///
    /// `NoQuorum` when no quorum answered within one session TTL;
    /// `InvalidName`; `Shutdown`.
    pub async fn holders(&self, name: &str) -> Result<Option<HoldersInfo>, Error> {
        self.handle().holders(name).await
    }
}
