//! Calls for tests and demonstrations only: nothing a service needs (issue
//! 12: `Node::kill()` sat in the public API beside `shutdown()`, where it
//! looked like a way to stop).

use crate::Node;

/// Stops `node` at once, as a crash would: nothing is released, no peer is
/// told, its session is not closed. Its locks pass to others when its
/// session expires (one session TTL, plus the lock-delay), exactly as
/// after a `kill -9`. For failover tests and demonstrations; a service
/// stops with [`Node::shutdown`].
pub async fn crash(node: &Node) {
    node.crash().await
}
