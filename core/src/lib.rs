//! peerlock-core: everything in peerlock but the network.
//!
//! ```text
//!  NodeHandle ──inbox──▶ Driver (one task) ──owns──▶ RawNode<NodeStore>
//!      ▲                   │  ▲                           │ Ready
//!      │ replies, guards   │  │ Incoming (authenticated)  ▼
//!      └───────────────────┘  └── Transport ◀── messages ─ send
//!                          │
//!                          └─ committed entries ─▶ LockTable::apply (pure)
//! ```
//!
//! - [`machine`]: the lock state machine, pure and deterministic.
//! - [`membership`]: the reconciler's pure planner (who votes, who leaves).
//! - [`lease`]: the holder's and the leader's time judgements, pure in `now`.
//! - [`raft`]: the driver around raft-rs's `RawNode`.
//! - [`storage`]: raft log stores.
//! - [`client`]: `NodeHandle` and `LockGuard`.
//! - [`transport`]: the seam the QUIC transport implements.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod client;
pub mod clock;
pub mod collect;
pub mod config;
pub mod error;
pub mod lease;
pub mod machine;
pub mod membership;
pub mod metrics;
pub mod raft;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod storage;
pub mod task;
pub mod teeth;
pub mod transport;
pub mod types;

pub use client::{
    Grant, HolderInfo, HoldersInfo, LeaderInfo, Leadership, LockEntry, LockGuard, LocksPage,
    MemberInfo, MemberRole, MemberStatus, MultiGuard, NodeHandle, NodeStatus, Permit, ReadGuard,
    Role, WriteGuard,
};
pub use config::{MembershipConfig, NodeConfig};
pub use error::Error;
pub use types::{FencingToken, LockInfo, LockName, NodeId, NodeName, RequestId, SessionId};
