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

async fn run_locked<T, F>(guard: LockGuard, f: F) -> Result<T, Error>
where
    F: AsyncFnOnce(&LockGuard) -> T,
{
    let out = {
        let work = f(&guard);
        tokio::select! {
            biased;
            _ = guard.lost() => None,
            out = work => Some(out),
        }
    };
    match out {
        Some(out) => {
            if let Err(e) = guard.unlock().await {
                tracing::debug!(error = %e, "release after with_lock failed; the lock is freed when the session ends");
            }
            Ok(out)
        }
        None => {
            let err = Error::LockLost {
                name: guard.name().to_owned(),
                token: guard.token(),
            };
            drop(guard);
            Err(err)
        }
    }
}
