//! Semaphores, read-write locks and multi-locks on a `NodeHandle` (issue
//! 11, items 2 to 4): each builds its claims, checks them (a bad request is
//! a typed error that names the rule, and spends no log entry), and
//! acquires them with [`NodeHandle::acquire_claims`].
//!
//! - A semaphore's count is fixed by first use while the name is in use
//!   (Curator's `InterProcessSemaphoreV2` and Redisson's
//!   `RPermitExpirableSemaphore` keep the count beside the name too); a use
//!   with another count is `Error::WrongKind`, never a silent resize.
//! - Read-write locks are FIFO with no writer starvation: a reader behind
//!   a queued writer waits (Curator's `InterProcessReadWriteLock` is fair
//!   in the same way).
//! - `lock_all` takes its names in one log entry or not at all, unlike
//!   Curator's `InterProcessMultiLock` and Redisson's `RedissonMultiLock`,
//!   which take them one by one.

use std::time::Duration;

use super::guards::{MultiGuard, Permit, ReadGuard, WriteGuard};
use super::handle::NodeHandle;
use crate::error::Error;
use crate::machine::{Claim, MAX_CLAIMS, MAX_PERMITS};
use crate::types::LockName;

fn invalid(reason: String) -> Error {
    Error::InvalidRequest { reason }
}

/// The claims of `n` permits of the semaphore `name` of `count`.
pub(crate) fn permit_claims(name: &str, n: u32, count: u32) -> Result<Vec<Claim>, Error> {
    let lock = LockName::new(name)?;
    if count == 0 || count > MAX_PERMITS {
        return Err(invalid(format!(
            "semaphore {name:?}: a count of {count} permits; a semaphore has 1 to {MAX_PERMITS}"
        )));
    }
    if n == 0 {
        return Err(invalid(format!(
            "semaphore {name:?}: acquire at least one permit, not 0"
        )));
    }
    if n > count {
        return Err(invalid(format!(
            "semaphore {name:?}: {n} permits asked of a semaphore of {count}; it could never be granted"
        )));
    }
    Ok(vec![Claim::permits(lock, n, count)])
}

/// The exclusive claims of `lock_all(names)`.
pub(crate) fn all_claims<I, N>(names: I) -> Result<Vec<Claim>, Error>
where
    I: IntoIterator<Item = N>,
    N: AsRef<str>,
{
    let mut claims: Vec<Claim> = Vec::new();
    for name in names {
        let lock = LockName::new(name.as_ref())?;
        if claims.iter().any(|c| c.lock == lock) {
            return Err(invalid(format!(
                "lock_all names {:?} twice; name each lock once",
                lock.as_str()
            )));
        }
        claims.push(Claim::exclusive(lock));
        if claims.len() > MAX_CLAIMS {
            return Err(invalid(format!(
                "lock_all takes at most {MAX_CLAIMS} names; take fewer at once"
            )));
        }
    }
    if claims.is_empty() {
        return Err(invalid("lock_all needs at least one name".to_owned()));
    }
    Ok(claims)
}

fn one(name: &str, claim: fn(LockName) -> Claim) -> Result<Vec<Claim>, Error> {
    Ok(vec![claim(LockName::new(name)?)])
}

impl NodeHandle {
    /// Acquires `n` of the `count` permits of the semaphore `name`, waiting
    /// FIFO: a request at the head is never overtaken by smaller ones.
    ///
    /// # Errors
    ///
    /// `InvalidRequest` for `count` outside 1..=1 000 000, `n` of 0 or
    /// above `count`; `InvalidName`; `WrongKind` when `name` is in use as a
    /// lock or with another count; `AlreadyHeld` when this task holds
    /// permits of it through this node already; as [`NodeHandle::lock`].
    pub async fn acquire_permits(&self, name: &str, n: u32, count: u32) -> Result<Permit, Error> {
        let claims = permit_claims(name, n, count)?;
        let grant = self.acquire_claims(claims).await?;
        Ok(Permit { grant })
    }

    /// [`NodeHandle::acquire_permits`] only if granted right now.
    pub async fn try_acquire_permits(
        &self,
        name: &str,
        n: u32,
        count: u32,
    ) -> Result<Option<Permit>, Error> {
        let claims = permit_claims(name, n, count)?;
        let grant = self.try_acquire_claims(claims).await?;
        Ok(grant.map(|grant| Permit { grant }))
    }

    /// [`NodeHandle::acquire_permits`] that gives up after `timeout`.
    pub async fn acquire_permits_timeout(
        &self,
        name: &str,
        n: u32,
        count: u32,
        timeout: Duration,
    ) -> Result<Permit, Error> {
        let claims = permit_claims(name, n, count)?;
        let grant = self.acquire_claims_timeout(claims, timeout).await?;
        Ok(Permit { grant })
    }

    /// Acquires `name` shared, beside other readers, waiting FIFO (behind a
    /// queued writer: no writer starvation).
    ///
    /// # Errors
    ///
    /// `InvalidName`; `WrongKind` when `name` is a semaphore;
    /// `AlreadyHeld` when this task holds `name` through this node in any
    /// kind; as [`NodeHandle::lock`].
    pub async fn read_lock(&self, name: &str) -> Result<ReadGuard, Error> {
        let grant = self.acquire_claims(one(name, Claim::shared)?).await?;
        Ok(ReadGuard { grant })
    }

    /// [`NodeHandle::read_lock`] only if granted right now.
    pub async fn try_read_lock(&self, name: &str) -> Result<Option<ReadGuard>, Error> {
        let grant = self.try_acquire_claims(one(name, Claim::shared)?).await?;
        Ok(grant.map(|grant| ReadGuard { grant }))
    }

    /// [`NodeHandle::read_lock`] that gives up after `timeout`.
    pub async fn read_lock_timeout(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ReadGuard, Error> {
        let claims = one(name, Claim::shared)?;
        let grant = self.acquire_claims_timeout(claims, timeout).await?;
        Ok(ReadGuard { grant })
    }

    /// Acquires `name` exclusively (no reader, no other writer), waiting
    /// FIFO. A write lock is a mutex: it excludes `lock(name)` too.
    ///
    /// # Errors
    ///
    /// As [`NodeHandle::read_lock`].
    pub async fn write_lock(&self, name: &str) -> Result<WriteGuard, Error> {
        let grant = self.acquire_claims(one(name, Claim::exclusive)?).await?;
        Ok(WriteGuard { grant })
    }

    /// [`NodeHandle::write_lock`] only if granted right now.
    pub async fn try_write_lock(&self, name: &str) -> Result<Option<WriteGuard>, Error> {
        let grant = self
            .try_acquire_claims(one(name, Claim::exclusive)?)
            .await?;
        Ok(grant.map(|grant| WriteGuard { grant }))
    }

    /// [`NodeHandle::write_lock`] that gives up after `timeout`.
    pub async fn write_lock_timeout(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<WriteGuard, Error> {
        let claims = one(name, Claim::exclusive)?;
        let grant = self.acquire_claims_timeout(claims, timeout).await?;
        Ok(WriteGuard { grant })
    }

    /// Acquires every name at once, in one log entry, waiting FIFO on all
    /// of them without holding any: it cannot deadlock with other
    /// multi-locks, whatever their order.
    ///
    /// # Errors
    ///
    /// `InvalidRequest` for no name, a name twice, or more than 64 names;
    /// `InvalidName`; `WrongKind` when a name is a semaphore;
    /// `AlreadyHeld` when this task holds one of them through this node;
    /// as [`NodeHandle::lock`].
    pub async fn lock_all<I, N>(&self, names: I) -> Result<MultiGuard, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let claims = all_claims(names)?;
        let grant = self.acquire_claims(claims).await?;
        Ok(MultiGuard { grant })
    }

    /// [`NodeHandle::lock_all`] only if granted right now.
    pub async fn try_lock_all<I, N>(&self, names: I) -> Result<Option<MultiGuard>, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let claims = all_claims(names)?;
        let grant = self.try_acquire_claims(claims).await?;
        Ok(grant.map(|grant| MultiGuard { grant }))
    }

    /// [`NodeHandle::lock_all`] that gives up after `timeout`.
    pub async fn lock_all_timeout<I, N>(
        &self,
        names: I,
        timeout: Duration,
    ) -> Result<MultiGuard, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let claims = all_claims(names)?;
        let grant = self.acquire_claims_timeout(claims, timeout).await?;
        Ok(MultiGuard { grant })
    }

    /// Runs `f` holding every name (as [`NodeHandle::lock_all`]), then
    /// releases them; `f` is cancelled, and the call returns `LockLost`,
    /// when the lease may be gone, exactly as [`NodeHandle::with_lock`].
    pub async fn with_locks<I, N, T, F>(&self, names: I, f: F) -> Result<T, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
        F: AsyncFnOnce(&MultiGuard) -> T,
    {
        let guard = self.lock_all(names).await?;
        super::with_lock::run_locked(guard, f).await
    }

    /// [`NodeHandle::with_locks`] that gives up acquiring after `timeout`
    /// with `Error::Timeout`. The timeout bounds only the wait for the locks.
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
        let guard = self.lock_all_timeout(names, timeout).await?;
        super::with_lock::run_locked(guard, f).await
    }
}
