//! What a request beyond the mutex asks for (issue 11): a set of claims on
//! names, granted all at once or not at all.
//!
//! A claim is `Exclusive` (a mutex, a write lock, each name of a
//! `lock_all`), `Shared` (a read lock) or `Permits { n, count }` (n permits
//! of a semaphore of `count`). A mutex and a write lock are the same thing,
//! so a read lock on `x` shares with other readers and excludes `lock("x")`.
//!
//! A name is either a lock (exclusive and shared claims) or a semaphore
//! with a count. Its kind is fixed by first use *while it is in use*: while
//! the name is in the table (held, waited on, or awaiting a handoff) a
//! request that disagrees is answered [`super::Outcome::WrongKind`] and
//! changes nothing; once nobody holds or waits for it, the name leaves the
//! table and its kind is forgotten, so a later first use fixes it anew.
//!
//! [`validate_claims`] is the check the table applies before anything
//! else (answered [`super::Outcome::Invalid`]); a client should run it
//! before proposing, so a bad request never costs a log entry.

use serde::{Deserialize, Serialize};

use crate::types::LockName;

/// The most claims one request may carry.
pub const MAX_CLAIMS: usize = 64;

/// The largest semaphore count (a sanity bound: counts are kept as `u32`).
pub const MAX_PERMITS: u32 = 1_000_000;

/// How one name is claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClaimKind {
    /// Alone: no other holder of any kind (mutex, write lock, multi-lock).
    Exclusive,
    /// Beside other shared holders, never beside an exclusive one (read lock).
    Shared,
    /// `n` of a semaphore's `count` permits.
    Permits {
        /// Permits asked for, 1 to `count`.
        n: u32,
        /// The semaphore's count, 1 to [`MAX_PERMITS`]; must equal the
        /// count the name has while in use.
        count: u32,
    },
}

impl ClaimKind {
    /// The kind of name this claim needs.
    pub fn name_kind(self) -> NameKind {
        match self {
            Self::Exclusive | Self::Shared => NameKind::Lock,
            Self::Permits { count, .. } => NameKind::Semaphore { count },
        }
    }

    /// The permits this claim takes (0 for a lock's claims).
    pub(crate) fn permits(self) -> u32 {
        match self {
            Self::Permits { n, .. } => n,
            _ => 0,
        }
    }
}

/// One name a request asks for, and how.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// The name.
    pub lock: LockName,
    /// How it is claimed.
    pub kind: ClaimKind,
}

impl Claim {
    /// An exclusive claim (a mutex or write lock on `lock`).
    pub fn exclusive(lock: LockName) -> Self {
        let kind = ClaimKind::Exclusive;
        Self { lock, kind }
    }

    /// A shared claim (a read lock on `lock`).
    pub fn shared(lock: LockName) -> Self {
        let kind = ClaimKind::Shared;
        Self { lock, kind }
    }

    /// `n` permits of the semaphore `lock` whose count is `count`.
    pub fn permits(lock: LockName, n: u32, count: u32) -> Self {
        let kind = ClaimKind::Permits { n, count };
        Self { lock, kind }
    }
}

/// What a name is while it is in the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameKind {
    /// A lock: exclusive and shared claims.
    #[default]
    Lock,
    /// A semaphore of `count` permits.
    Semaphore {
        /// Its permit count.
        count: u32,
    },
}

/// Why a request's claims are refused before anything is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClaimError {
    /// No claim at all.
    #[error("a request must claim at least one name")]
    Empty,
    /// More than [`MAX_CLAIMS`] claims.
    #[error("a request claims at most {MAX_CLAIMS} names")]
    TooMany,
    /// The claim at this position names a name an earlier claim names.
    #[error("claim {0} names a name twice")]
    Duplicate(u8),
    /// The claim at this position asks for no permit (`n` is 0).
    #[error("claim {0} asks for no permit")]
    NoPermits(u8),
    /// The claim at this position asks for more permits than its count.
    #[error("claim {0} asks for more permits than the semaphore has")]
    OverCount(u8),
    /// The claim at this position gives a count of 0 or above [`MAX_PERMITS`].
    #[error("claim {0} gives a semaphore count outside 1..={MAX_PERMITS}")]
    BadCount(u8),
}

/// Checks the limits of a request: 1 to [`MAX_CLAIMS`] claims on distinct
/// names, and for permits `1 <= n <= count <= MAX_PERMITS`.
pub fn validate_claims(claims: &[Claim]) -> Result<(), ClaimError> {
    if claims.is_empty() {
        return Err(ClaimError::Empty);
    }
    if claims.len() > MAX_CLAIMS {
        return Err(ClaimError::TooMany);
    }
    for (i, c) in claims.iter().enumerate() {
        // At most 64 claims: the position fits a u8, and the quadratic
        // duplicate check is at most 2 016 comparisons.
        let at = i as u8;
        if claims.iter().take(i).any(|p| p.lock == c.lock) {
            return Err(ClaimError::Duplicate(at));
        }
        if let ClaimKind::Permits { n, count } = c.kind {
            if count == 0 || count > MAX_PERMITS {
                return Err(ClaimError::BadCount(at));
            }
            if n == 0 {
                return Err(ClaimError::NoPermits(at));
            }
            if n > count {
                return Err(ClaimError::OverCount(at));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> LockName {
        LockName::new(s).unwrap()
    }

    #[test]
    fn limits_are_checked_in_order() {
        assert_eq!(validate_claims(&[]), Err(ClaimError::Empty));
        let many: Vec<Claim> = (0..=MAX_CLAIMS)
            .map(|i| Claim::exclusive(n(&format!("l{i}"))))
            .collect();
        assert_eq!(validate_claims(&many), Err(ClaimError::TooMany));
        assert_eq!(validate_claims(&many[..MAX_CLAIMS]), Ok(()));
        let dup = [Claim::shared(n("a")), Claim::exclusive(n("a"))];
        assert_eq!(validate_claims(&dup), Err(ClaimError::Duplicate(1)));
        let bad = |n_, count| validate_claims(&[Claim::permits(n("s"), n_, count)]);
        assert_eq!(bad(0, 3), Err(ClaimError::NoPermits(0)));
        assert_eq!(bad(4, 3), Err(ClaimError::OverCount(0)));
        assert_eq!(bad(0, 0), Err(ClaimError::BadCount(0)));
        assert_eq!(bad(1, MAX_PERMITS + 1), Err(ClaimError::BadCount(0)));
        assert_eq!(bad(MAX_PERMITS, MAX_PERMITS), Ok(()));
        assert_eq!(
            ClaimKind::Permits { n: 1, count: 3 }.name_kind(),
            NameKind::Semaphore { count: 3 }
        );
        assert_eq!(ClaimKind::Shared.name_kind(), NameKind::Lock);
    }
}
