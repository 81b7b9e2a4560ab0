//! The user-facing handle that talks to the driver through its inbox.

pub mod guard;
pub mod handle;
pub mod leadership;
pub mod status;
mod task_holds;
mod with_lock;

pub use guard::LockGuard;
pub use handle::NodeHandle;
pub use leadership::{LeaderInfo, Leadership};
pub use status::{MemberInfo, MemberRole, MemberStatus, NodeStatus, Role};
