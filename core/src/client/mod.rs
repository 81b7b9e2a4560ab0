//! The user-facing handle that talks to the driver through its inbox.

pub mod claims;
pub mod grant;
pub mod guard;
pub mod guards;
pub mod handle;
pub mod leadership;
pub mod locks;
mod observe;
mod primitives;
pub mod status;
mod task_holds;
mod with_lock;

pub use claims::{HolderInfo, HoldersInfo};
pub use grant::Grant;
pub use guard::LockGuard;
pub use guards::{MultiGuard, Permit, ReadGuard, WriteGuard};
pub use handle::NodeHandle;
pub use leadership::{LeaderInfo, Leadership};
pub use locks::{LockEntry, LocksPage, MAX_LOCKS_PAGE};
pub use status::{MemberInfo, MemberRole, MemberStatus, NodeStatus, Role};
