//! Which task holds which lock through this node, so that a task asking
//! again for a lock it holds gets `Error::AlreadyHeld` instead of waiting
//! behind itself for ever (issue 11, item 5).
//!
//! Why an error and not reentrancy: peerlock's locks are owned by guards,
//! not by threads (an async task moves between threads, and a guard moves
//! between tasks), so "the same owner asks again" has no safe meaning to
//! count on. Curator's and Redisson's reentrant locks count per thread;
//! here a nested section takes the guard, or its token, from its caller.
//!
//! It covers every kind of grant, keyed by name alone: a mutex, a
//! leadership, a read or write lock, permits of a semaphore, or one name of
//! a multi-lock. A waiting acquire of any primitive on a name the task
//! holds in any kind is refused, because with FIFO queues each of them can
//! wait behind itself, not only the exclusive ones: a recursive read lock
//! queues behind a writer that waits for the first read lock (Java's
//! `ReentrantReadWriteLock` documents the same deadlock for fair mode), a
//! second permit queues behind a large request at the head that waits for
//! the first permit, and a multi-lock waits for its own name. The `try_`
//! calls never wait, so they are not refused (they answer `None`).
//!
//! What counts as "the same task" is the Tokio task that acquired the
//! guard, while the guard lives (moved elsewhere or not). A future run by
//! `block_on` (`#[tokio::main]`'s body, a test's) is no task: it stays on
//! the thread that called `block_on`, so that thread stands for it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::thread::ThreadId;

/// Who asks: the Tokio task, or, for a future run by `block_on`, its thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Asker {
    Task(tokio::task::Id),
    Thread(ThreadId),
}

fn asker() -> Asker {
    match tokio::task::try_id() {
        Some(id) => Asker::Task(id),
        None => Asker::Thread(std::thread::current().id()),
    }
}

use super::guard::LeaseWatch;
use crate::error::Error;
use crate::types::LockName;

/// The holds of one node's guards, by lock name: which task acquired each,
/// and its lease watch, so that only a grant that still holds counts (a
/// guard whose lease is gone cannot make its task wait behind itself).
/// Keyed by name alone so that `check`, on every acquire, looks up without
/// building a key.
#[derive(Default)]
pub(crate) struct TaskHolds {
    held: Mutex<HashMap<LockName, Vec<(Asker, LeaseWatch)>>>,
}

/// One guard's hold, released when the guard is dropped.
pub(crate) struct TaskHold {
    holds: Arc<TaskHolds>,
    name: LockName,
    /// Tells this guard's entry from the others' (its own `gone` flag).
    gone: Arc<std::sync::atomic::AtomicBool>,
}

impl TaskHolds {
    /// `AlreadyHeld` when the calling task holds `name` through this node
    /// with a grant whose lease still holds.
    pub(crate) fn check(&self, name: &LockName) -> Result<(), Error> {
        let held = self.held.lock();
        let Some(holds) = held.get(name) else {
            return Ok(());
        };
        let me = asker();
        if holds.iter().any(|(a, w)| *a == me && w.holds_now()) {
            return Err(Error::AlreadyHeld {
                name: name.as_str().to_owned(),
            });
        }
        Ok(())
    }

    /// Records that the calling task now holds `name` with the grant that
    /// `watch` follows.
    pub(crate) fn hold(self: &Arc<Self>, name: &LockName, watch: &LeaseWatch) -> TaskHold {
        self.held
            .lock()
            .entry(name.clone())
            .or_default()
            .push((asker(), watch.clone()));
        TaskHold {
            holds: self.clone(),
            name: name.clone(),
            gone: watch.gone.clone(),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().len()
    }
}

impl Drop for TaskHold {
    fn drop(&mut self) {
        let mut held = self.holds.held.lock();
        if let Some(holds) = held.get_mut(&self.name) {
            holds.retain(|(_, w)| !Arc::ptr_eq(&w.gone, &self.gone));
            if holds.is_empty() {
                held.remove(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease valid for a minute, and its sender (drop it to end the lease).
    fn lease() -> (
        tokio::sync::watch::Sender<crate::client::guard::LeaseView>,
        LeaseWatch,
    ) {
        let clock = crate::clock::Clock::real();
        let (tx, rx) = tokio::sync::watch::channel(crate::client::guard::LeaseView {
            valid_until: Some(clock.now() + std::time::Duration::from_secs(60)),
            ended: false,
        });
        (tx, LeaseWatch::new(rx, clock))
    }

    #[tokio::test]
    async fn a_task_holding_a_name_is_refused_and_others_are_not() {
        let holds = Arc::new(TaskHolds::default());
        let x = LockName::new("x").unwrap();
        let (_tx, watch) = lease();
        let h = tokio::spawn({
            let holds = holds.clone();
            let x = x.clone();
            async move {
                let hold = holds.hold(&x, &watch);
                assert!(matches!(holds.check(&x), Err(Error::AlreadyHeld { .. })));
                assert!(holds.check(&LockName::new("y").unwrap()).is_ok());
                hold
            }
        });
        let hold = h.await.unwrap();
        // Another task may ask (it would wait for the holder, not itself).
        let other = tokio::spawn({
            let holds = holds.clone();
            let x = x.clone();
            async move { holds.check(&x).is_ok() }
        });
        assert!(other.await.unwrap());
        assert_eq!(holds.len(), 1);
        drop(hold);
        assert_eq!(holds.len(), 0, "the hold ends with the guard");
    }

    #[test]
    fn a_grant_whose_lease_ended_does_not_count() {
        let holds = Arc::new(TaskHolds::default());
        let x = LockName::new("x").unwrap();
        let (tx, watch) = lease();
        let _hold = holds.hold(&x, &watch);
        assert!(holds.check(&x).is_err());
        tx.send_modify(|v| v.ended = true);
        assert!(
            holds.check(&x).is_ok(),
            "a lost grant cannot deadlock its task"
        );
    }
}
