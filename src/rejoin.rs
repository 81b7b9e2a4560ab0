//! A removed node starts again by itself (issue 9, design item 1:
//! `rejoin_when_removed`, on by default).
//!
//! The cluster removes a member it gave up on: one silent past
//! `dead_after` (partitioned, or stopped and replaced), one that left, one
//! whose name a newer member took. When such a node is heard again, every
//! peer answers its old id with `Removed`, and the core node stops
//! (`Role::Removed`; a durable one marks its directory, so the next start
//! wipes it). Its old id must never count again, but the process is
//! healthy, so rather than leave an instance of the service without a lock
//! node until someone restarts it (etcd's removed member stops and waits
//! for an operator; openraft's node-lifecycle docs warn of removed nodes
//! that never learn it), this watch starts the node again with the same
//! options: blank, it joins through its peers or seeds under a new id, as
//! a learner, exactly like an instance that came back without its disk.
//!
//! The `Node` the application holds stays the same; its calls fail with
//! `Removed` while the new run starts, and then reach the new run. Guards
//! of the old run were lost when it stopped (their lease could not be
//! renewed once the node was cut off; `lost()` completed).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use peerlock_core::client::Role;
use peerlock_core::{Error, NodeHandle};

use crate::builder::NodeBuilder;
use crate::node::{Node, Shared, NO_MORE_RUNS};

/// The first wait between failed starts; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
/// The longest wait between failed starts.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Watches `node`'s runs, and starts it again from `recipe` whenever the
/// cluster removes it. Ends when the node is shut down, killed, stopped
/// for another reason, or dropped.
pub(crate) fn watch(node: &Node, recipe: NodeBuilder) {
    let shared = Arc::downgrade(&node.shared);
    peerlock_core::task::spawn(run(shared, recipe));
}

async fn run(shared: Weak<Shared>, recipe: NodeBuilder) {
    watch_runs(&shared, &recipe).await;
    // No run will follow: `ready` stops waiting for one.
    if let Some(s) = shared.upgrade() {
        s.runs.send_replace(NO_MORE_RUNS);
    }
}

async fn watch_runs(shared: &Weak<Shared>, recipe: &NodeBuilder) {
    loop {
        let Some(mut status) = shared.upgrade().map(|s| s.handle.read().watch_status()) else {
            return;
        };
        // The run ends with `Removed` or `Stopped`, and then its driver
        // drops the sender (an error here, with the last role kept).
        let ended = status
            .wait_for(|s| matches!(s.role, Role::Removed | Role::Stopped))
            .await
            .map(|s| s.role);
        let role = ended.unwrap_or_else(|_| status.borrow().role);
        if role != Role::Removed {
            return;
        }
        tracing::warn!(
            addr = %recipe_addr(recipe),
            "the cluster removed this node; starting it again, blank, to join under a new id"
        );
        let Some(handle) = start_again(shared, recipe).await else {
            return;
        };
        let Some(s) = shared.upgrade() else {
            // Every `Node` was dropped meanwhile: stop the new run too.
            let _ = handle.shutdown().await;
            return;
        };
        *s.handle.write() = handle.clone();
        // `shutdown()` sets the flag before it reads the handle, so either
        // it shuts this new run down, or this sees the flag.
        if s.stopping.load(Ordering::SeqCst) {
            drop(s);
            let _ = handle.shutdown().await;
            return;
        }
        tracing::info!(id = %handle.status().id, "rejoined the cluster under a new id");
        s.runs
            .send_modify(|r| *r = r.saturating_add(1).min(NO_MORE_RUNS - 1));
    }
}

/// Starts a new run, retrying what may pass (the old run still holds its
/// socket for a moment; no quorum; a seed not answering) with backoff.
/// `None`: the node was shut down or dropped meanwhile, or the options no
/// longer work (logged).
async fn start_again(shared: &Weak<Shared>, recipe: &NodeBuilder) -> Option<NodeHandle> {
    let mut wait = RETRY_MIN;
    loop {
        // Let the old run close its endpoint (it does right after it
        // publishes its last status).
        tokio::time::sleep(wait).await;
        match shared.upgrade() {
            Some(s) if !s.stopping.load(Ordering::SeqCst) => {}
            _ => return None,
        }
        match start_blank(recipe).await {
            Ok((handle, _)) => return Some(handle),
            Err(e @ (Error::Config(_) | Error::Tls(_) | Error::InvalidName { .. })) => {
                tracing::error!(error = %e, "the removed node cannot start again; restart the process");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "starting the removed node again failed; retrying");
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// How long a new run waits for the old one's socket to be released.
const REBIND_FOR: Duration = Duration::from_secs(5);

/// Starts `recipe` right after a run that ended at its start, once its
/// socket is free again (the endpoint closes in the background). It waits
/// for the address before starting: a start that fails to bind has
/// bumped the directory's boot count already, and a blank directory must
/// start with its first.
pub(crate) async fn start_blank(
    recipe: &NodeBuilder,
) -> Result<(NodeHandle, std::net::SocketAddr), Error> {
    if let Some(addr) = recipe.listen_addr() {
        let until = tokio::time::Instant::now() + REBIND_FOR;
        while std::net::UdpSocket::bind(addr).is_err() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    recipe.again().start_core().await
}

fn recipe_addr(recipe: &NodeBuilder) -> String {
    recipe
        .listen_addr()
        .map_or_else(|| "?".to_owned(), |a| a.to_string())
}
