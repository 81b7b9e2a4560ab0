//! The public guards of issue 11's primitives: [`Permit`] (a semaphore's
//! permits), [`ReadGuard`] and [`WriteGuard`] (a read-write lock) and
//! [`MultiGuard`] (an atomic multi-lock). Each wraps one [`Grant`], so each
//! has the mutex guard's three promises: agreed through the Raft log, a
//! fencing token, and `is_held()`/`lost()` that turn before the cluster can
//! grant the name to anyone else (lease and lock-delay, as for the mutex).
//! Dropping any of them releases it in the background.

use std::fmt;

use super::grant::Grant;
use super::with_lock::Held;
use crate::error::Error;
use crate::types::FencingToken;

/// The members every guard of a grant shares.
macro_rules! grant_guard {
    ($t:ident, $release:ident, $what:literal) => {
        impl $t {
            #[doc = concat!("The fencing token of this ", $what, ". Pass it to the protected")]
            /// resource with every write; the resource must refuse tokens
            /// lower than the highest it has seen.
            pub fn token(&self) -> FencingToken {
                self.grant.token()
            }

            /// This node's conservative view: true while the session's lease
            /// certainly holds. Once false it never turns true again.
            pub fn is_held(&self) -> bool {
                self.grant.is_held()
            }

            /// Completes once the lease may be gone (the lease's end passed
            /// without a newer acknowledgement, the session ended, or the
            /// node stopped), before the cluster can grant it to anyone else.
            pub async fn lost(&self) {
                self.grant.lost().await;
            }

            #[doc = concat!("Releases this ", $what, " and waits until the release is committed.")]
            ///
            /// Bounded: `Ok` at once when this node has no valid lease (the
            /// grant ends with the session, or with the release, which the
            /// node keeps retrying), else `NoQuorum` if the release did not
            /// commit within one session TTL.
            ///
            /// # Errors
            ///
            /// `NoQuorum` as above; `Shutdown` when the node stopped.
            pub async fn $release(self) -> Result<(), Error> {
                self.grant.unlock().await
            }

            /// The underlying grant (its claims, token and lease).
            pub fn grant(&self) -> &Grant {
                &self.grant
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("claims", &self.grant.claims())
                    .field("token", &self.grant.token())
                    .finish()
            }
        }

        impl Held for $t {
            fn held(&self) -> bool {
                self.grant.is_held()
            }
            fn lost(&self) -> impl std::future::Future<Output = ()> + Send {
                self.grant.lost()
            }
            fn lost_error(&self) -> Error {
                Error::LockLost {
                    name: self.grant.names_joined(),
                    token: self.grant.token(),
                }
            }
            fn release(self) -> impl std::future::Future<Output = Result<bool, Error>> + Send {
                self.grant.release()
            }
        }
    };
}

/// Permits of a counting semaphore (issue 11, item 2), from
/// `Semaphore::acquire`. Dropping it gives them back.
#[must_use = "dropping the permit gives it back at once"]
pub struct Permit {
    pub(crate) grant: Grant,
}
grant_guard!(Permit, release, "grant of permits");

impl Permit {
    /// The semaphore's name.
    pub fn name(&self) -> &str {
        self.grant.claims().first().map_or("", |c| c.lock.as_str())
    }

    /// How many permits this grant holds.
    pub fn permits(&self) -> u32 {
        self.grant.claims().first().map_or(0, |c| c.kind.permits())
    }
}

/// A shared hold of a read-write lock (issue 11, item 3), from
/// `read_lock`. Readers share; a writer waits for them.
#[must_use = "dropping the guard releases the read lock at once"]
pub struct ReadGuard {
    pub(crate) grant: Grant,
}
grant_guard!(ReadGuard, unlock, "read grant");

/// The exclusive hold of a read-write lock (issue 11, item 3), from
/// `write_lock`. Its token is above every read grant before it.
#[must_use = "dropping the guard releases the write lock at once"]
pub struct WriteGuard {
    pub(crate) grant: Grant,
}
grant_guard!(WriteGuard, unlock, "write grant");

impl ReadGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        self.grant.claims().first().map_or("", |c| c.lock.as_str())
    }
}

impl WriteGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        self.grant.claims().first().map_or("", |c| c.lock.as_str())
    }
}

/// Several locks granted at once (issue 11, item 4), from `lock_all`: one
/// log entry, one token above each name's previous tokens.
#[must_use = "dropping the guard releases every lock at once"]
pub struct MultiGuard {
    pub(crate) grant: Grant,
}
grant_guard!(MultiGuard, unlock, "multi-lock grant");

impl MultiGuard {
    /// The names held, in the order asked.
    pub fn names(&self) -> Vec<&str> {
        self.grant
            .claims()
            .iter()
            .map(|c| c.lock.as_str())
            .collect()
    }
}
