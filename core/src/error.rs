//! The public error type. Every message says what went wrong and what to do.

use crate::types::FencingToken;

/// Everything a peerlock call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call's deadline passed first. Nothing is held on your behalf.
    #[error(
        "timed out before the lock was granted; nothing is held, retry or use a longer timeout"
    )]
    Timeout,
    /// The lease on a held lock may have run out while the critical section
    /// ran; another node may hold the lock now.
    #[error("lost the lease on lock {name:?} (token {token}): another node may hold it now; writes with this token must be refused by the resource")]
    LockLost {
        /// The lock's name.
        name: String,
        /// The token of the lost grant.
        token: FencingToken,
    },
    /// No leader could be reached: fewer than a majority of peers are up and
    /// connected to this node.
    #[error("no quorum: this node cannot reach a majority of its peers; check that they run and that the network between them is open")]
    NoQuorum,
    /// The cluster removed this node (it was replaced while it was
    /// partitioned or stopped, or it left): its id never takes part again
    /// (issue 9). Start the node again: a durable node starts blank and
    /// joins under a new id.
    #[error("this node was removed from the cluster; start it again and it joins as a new member")]
    Removed,
    /// The node was shut down (or stopped after a fatal error).
    #[error("the node is shut down; start a new one")]
    Shutdown,
    /// A lock name that is not UTF-8 of 1 to 256 bytes.
    #[error("invalid lock name: {reason}")]
    InvalidName {
        /// What is wrong with the name.
        reason: String,
    },
    /// The builder's options are wrong or incomplete.
    #[error("configuration error: {0}")]
    Config(String),
    /// Certificates or keys could not be loaded or do not fit together.
    #[error("TLS error: {0}")]
    Tls(String),
    /// A TLS reload (`Node::reload_tls` in the `peerlock` crate) was
    /// given a configuration that names another member than the
    /// running node's: a certificate rotation cannot rename a member (its
    /// name is its identity in the cluster, issue 12). Nothing was changed;
    /// issue the new certificate for the running node's name.
    #[error("the new TLS configuration names member {offered:?}, but this node runs as {running:?}: a certificate rotation cannot rename a member; issue the new certificate for {running:?} (nothing was changed)")]
    TlsIdentityChanged {
        /// The running node's name (and certificate common name).
        running: String,
        /// What the refused configuration names.
        offered: String,
    },
    /// An operating-system error (binding a socket, reading a file).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The calling task already holds `name` through this node, and asked
    /// for it again: waiting would wait behind itself for ever (issue 11,
    /// item 5). peerlock's locks are owned by guards, not by threads or
    /// tasks (an async task moves between threads), so a nested section
    /// takes the guard (or its token) from its caller instead of locking
    /// again. Nothing was queued.
    #[error("this task already holds lock {name:?} through this node; locking it again would wait for ever: pass the guard (or its token) down to the nested code instead")]
    AlreadyHeld {
        /// The lock's name.
        name: String,
    },
    /// The name is in use as another kind of primitive (a semaphore, or a
    /// lock while a semaphore was asked for) or with another permit count;
    /// nothing was queued (issue 11). A name's kind is fixed while anyone
    /// holds or waits on it.
    #[error("{name:?} is in use as {actual}; nothing was queued: use another name, or the same kind and count everywhere")]
    WrongKind {
        /// The name.
        name: String,
        /// What the name is in use as.
        actual: String,
    },
    /// The request broke a rule of its primitive (no name, too many names,
    /// a name twice, a permit count out of range); nothing was queued.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// Which rule.
        reason: String,
    },
    /// The lock table holds its maximum of locks and waiters
    /// ([`crate::machine::MAX_LOCK_ENTRIES`]); this acquire was refused and
    /// nothing is held or queued on your behalf.
    #[error("the lock table is full ({limit} locks held or waited for across the cluster): release locks or stop waiting on some before acquiring more")]
    TableFull {
        /// The limit: held locks plus queued waiters.
        limit: usize,
    },
}

impl Error {
    /// Whether the same call may succeed if made again later, unchanged
    /// (issue 12: which errors are worth retrying, as etcd's clients and
    /// openraft split API errors from fatal ones).
    ///
    /// | retry | errors | why |
    /// |---|---|---|
    /// | yes | `Timeout`, `NoQuorum` | the cluster was slow or lost its majority for a while; nothing is held for you |
    /// | yes | `LockLost` | run the whole critical section again: a new grant gets a new token |
    /// | yes | `TableFull` | once other holders release or stop waiting |
    /// | no | `Removed`, `Shutdown` | this `Node` is done: start a new one (a removed node rejoins as a new member) |
    /// | no | `InvalidName`, `InvalidRequest`, `WrongKind`, `AlreadyHeld` | the call itself is wrong: fix the name, the count, or pass the guard down |
    /// | no | `Config`, `Tls`, `Io` | the node's set-up: fix it and start again |
    /// | no | `TlsIdentityChanged` | a reload named another member: issue the certificate for this node's name |
    ///
    /// Retry with a pause (and a bound): a `NoQuorum` lasts as long as the
    /// majority is missing.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout | Error::NoQuorum | Error::LockLost { .. } | Error::TableFull { .. } => {
                true
            }
            Error::Removed
            | Error::Shutdown
            | Error::InvalidName { .. }
            | Error::Config(_)
            | Error::Tls(_)
            | Error::TlsIdentityChanged { .. }
            | Error::Io(_)
            | Error::AlreadyHeld { .. }
            | Error::WrongKind { .. }
            | Error::InvalidRequest { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn transient_errors_are_retryable_and_wrong_calls_are_not() {
        let token = crate::types::FencingToken(7);
        for e in [
            Error::Timeout,
            Error::NoQuorum,
            Error::LockLost {
                name: "a".into(),
                token,
            },
            Error::TableFull { limit: 1 },
        ] {
            assert!(e.is_retryable(), "{e}");
        }
        for e in [
            Error::Removed,
            Error::Shutdown,
            Error::InvalidName { reason: "x".into() },
            Error::Config("x".into()),
            Error::Tls("x".into()),
            Error::Io(std::io::Error::other("x")),
            Error::AlreadyHeld { name: "a".into() },
            Error::WrongKind {
                name: "a".into(),
                actual: "b".into(),
            },
            Error::InvalidRequest { reason: "x".into() },
            Error::TlsIdentityChanged {
                running: "a".into(),
                offered: "b".into(),
            },
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }
}
