//! `with_lock`: acquire, run the critical section raced against the loss of
//! the lease, and release whatever happens.

use std::time::Duration;

use super::guard::LockGuard;
use super::handle::NodeHandle;
use crate::error::Error;

impl NodeHandle {
    /// Runs `f` while holding `name`, then releases it.
    ///
    /// If the lease may be lost while `f` runs, `f`'s future is dropped and
    /// the call returns `Error::LockLost`. The fencing token
    /// (`guard.token()`) is still what protects the resource: a process can
    /// pause between any check and its write.
    pub async fn with_lock<T, F>(&self, name: &str, f: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        let guard = self.lock(name).await?;
        run_locked(guard, f).await
    }

    /// Like [`NodeHandle::with_lock`], but gives up acquiring after `timeout`
    /// with `Error::Timeout`. The timeout bounds only the wait for the lock.
    pub async fn with_lock_timeout<T, F>(
        &self,
        name: &str,
        timeout: Duration,
        f: F,
    ) -> Result<T, Error>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        let guard = self.lock_timeout(name, timeout).await?;
        run_locked(guard, f).await
    }
}

/// Runs `f` raced against the loss of the lease, then releases.
///
/// The closure's result counts only if the lease still held when it was
/// taken (issue 8, item 2): a closure can block its runtime (a CPU-bound or
/// blocking section) past the lease's end and still return, and then the
/// work may have overlapped another holder. A release that finds the grant
/// already gone (its session ended) is not success either.
async fn run_locked<T, F>(guard: LockGuard, f: F) -> Result<T, Error>
where
    F: AsyncFnOnce(&LockGuard) -> T,
{
    let out = {
        let work = f(&guard);
        tokio::select! {
            biased;
            _ = guard.lost() => None,
            // Judged at the instant the result is taken, on the node's clock.
            out = work => guard.is_held().then_some(out),
        }
    };
    let lost = Error::LockLost {
        name: guard.name().to_owned(),
        token: guard.token(),
    };
    let Some(out) = out else {
        drop(guard);
        return Err(lost);
    };
    match guard.release().await {
        Ok(true) => Ok(out),
        // The grant was already gone when the release was applied: its
        // session ended, so another node may have held the lock meanwhile.
        Ok(false) => Err(lost),
        Err(e) => {
            // The work finished under a valid lease (checked above) and the
            // release has not committed (no quorum, or the node stopped):
            // the lock is freed by the release, retried in the background,
            // or when the session ends.
            tracing::debug!(error = %e, "release after with_lock failed; the lock is freed when the session ends");
            Ok(out)
        }
    }
}
