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
    #[tracing::instrument(level = "debug", skip_all, fields(lock = name))]
    pub async fn with_lock<T, F>(&self, name: &str, f: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        let guard = self.lock(name).await?;
        run_locked(guard, f).await
    }

    /// Like [`NodeHandle::with_lock`], but gives up acquiring after `timeout`
    /// with `Error::Timeout`. The timeout bounds only the wait for the lock.
    #[tracing::instrument(level = "debug", skip_all, fields(lock = name))]
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

/// A grant that a closure can run under: the mutex's `LockGuard` and the
/// claims' guards (issue 11) share [`run_locked`], so a closure is
/// cancelled on the loss of the lease in exactly one way.
pub(crate) trait Held: Sized {
    /// True while the lease certainly holds (see `LockGuard::is_held`).
    fn held(&self) -> bool;
    /// Completes once the lease may be gone.
    fn lost(&self) -> impl std::future::Future<Output = ()> + Send;
    /// The `LockLost` error this grant's loss is reported as.
    fn lost_error(&self) -> Error;
    /// Releases, telling whether the grant was still there to release.
    fn release(self) -> impl std::future::Future<Output = Result<bool, Error>> + Send;
}

impl Held for LockGuard {
    fn held(&self) -> bool {
        self.is_held()
    }
    fn lost(&self) -> impl std::future::Future<Output = ()> + Send {
        LockGuard::lost(self)
    }
    fn lost_error(&self) -> Error {
        Error::LockLost {
            name: self.name().to_owned(),
            token: self.token(),
        }
    }
    fn release(self) -> impl std::future::Future<Output = Result<bool, Error>> + Send {
        LockGuard::release(self)
    }
}

/// Runs `f` raced against the loss of the lease, then releases.
///
/// The closure's result counts only if the lease still held when it was
/// taken (issue 8, item 2): a closure can block its runtime (a CPU-bound or
/// blocking section) past the lease's end and still return, and then the
/// work may have overlapped another holder. A release that finds the grant
/// already gone (its session ended) is not success either.
pub(crate) async fn run_locked<G: Held, T, F>(guard: G, f: F) -> Result<T, Error>
where
    F: AsyncFnOnce(&G) -> T,
{
    let out = {
        let work = f(&guard);
        tokio::select! {
            biased;
            _ = guard.lost() => None,
            // Judged at the instant the result is taken, on the node's clock.
            out = work => guard.held().then_some(out),
        }
    };
    let lost = guard.lost_error();
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
