//! Issue 10, curve 5: above 100 members, `status().members` is rebuilt at
//! most once per 1 ms per member while membership changes come in bursts,
//! so a forming 1 000-node cluster does not spend its cores rebuilding it on
//! every node at every change; up to 100 it is rebuilt at every change, as
//! before (t64 reads `status()` right after `members()` showed a change).
//! Either way every node's status must match its applied members: this
//! checks it after the burst of a seven-node formation.

use std::time::Duration;

use peerlock::{MemberRole, Node, NodeId};

use crate::common::{start_members, within};

/// A tick, and room for a loaded machine.
const CATCH_UP: Duration = Duration::from_secs(3);

fn roles(list: impl Iterator<Item = (NodeId, MemberRole)>) -> Vec<(NodeId, MemberRole)> {
    let mut v: Vec<_> = list.collect();
    v.sort_by_key(|(id, _)| *id);
    v
}

/// Whether `node`'s status shows the members `members()` reads, within
/// [`CATCH_UP`] of that read.
async fn caught_up(node: &Node) -> bool {
    let applied = within(node.members()).await.expect("members()");
    let want = roles(applied.iter().map(|m| (m.id, m.role)));
    let until = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let shown = roles(node.status().members.iter().map(|m| (m.id, m.role)));
        if shown == want {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            eprintln!(
                "{}: status {shown:?}, members() {want:?}",
                node.status().name
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t133_issue_10_status_members_catch_up_after_a_burst_of_changes() {
    // Seven founders, five voters: the formation is a burst of changes
    // (learners added, promoted, joint configurations entered and left).
    let (nodes, _ca) = start_members("paced", 7, Some(5)).await;
    for node in &nodes {
        // A change may still be under way: members() read again, a few
        // times, but each read must be matched by the status in time.
        let mut ok = false;
        for _ in 0..3 {
            if caught_up(node).await {
                ok = true;
                break;
            }
        }
        assert!(
            ok,
            "{}: status().members never caught up",
            node.status().name
        );
    }
    for n in &nodes {
        peerlock::testing::crash(n).await;
    }
}
