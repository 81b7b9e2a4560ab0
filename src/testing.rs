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

/// Closes every connection `node` has with its peers now, as if the
/// network had dropped them: a pair in use is re-made at once, with a new
/// TLS handshake (after [`Node::reload_tls`], with the new configuration).
/// Returns how many were closed. For tests that must see a new handshake.
pub fn close_connections(node: &Node) -> usize {
    node.shared
        .tls
        .transport()
        .map_or(0, |t| t.close_connections())
}

/// The name and leaf certificate (DER) each peer connected to `node`
/// presented in its handshake, sorted by name, for tests that check which
/// certificate a connection was made with.
pub fn peer_certificates(node: &Node) -> Vec<(String, Vec<u8>)> {
    node.shared
        .tls
        .transport()
        .map_or_else(Vec::new, |t| t.peer_certificates())
}
