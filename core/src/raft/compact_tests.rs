//! The log keeps a tail after compaction (issue 8, item 5): a follower
//! that lags by fewer entries than the tail is caught up with entries, and
//! is never sent a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::time::timeout;

use super::tests::WAIT;
use super::{start, Member, StartParams};
use crate::config::NodeConfig;
use crate::sim::MemNet;
use crate::transport::{PeerMessage, Transport};
use crate::types::{NodeId, NodeName};

/// Counts the snapshots a node sends, and passes everything on.
pub(super) struct Counting {
    pub(super) inner: Arc<dyn Transport>,
    pub(super) snapshots: Arc<AtomicU64>,
}

impl Transport for Counting {
    fn send(&self, to: NodeId, msgs: Vec<PeerMessage>) {
        for m in &msgs {
            if let PeerMessage::Raft(bytes) = m {
                let is_snapshot = Message::parse_from_bytes(bytes)
                    .is_ok_and(|m| m.get_msg_type() == MessageType::MsgSnapshot);
                if is_snapshot {
                    self.snapshots.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.inner.send(to, msgs);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_follower_briefly_behind_a_compaction_needs_no_snapshot() {
    // compact_after 20: a tail of 5 entries. Each round cuts a follower
    // off, commits one lock and unlock (2 entries) without it, waits for
    // the leader to compact if due, and heals. Every compaction happens
    // while the follower is 2 entries behind: without a tail each one
    // costs a snapshot; with it, none does.
    let cfg = NodeConfig {
        session_ttl: Duration::from_secs(5),
        tick: Duration::from_millis(10),
        compact_after: 20,
        ..NodeConfig::default()
    };
    assert!(super::tick::compact_tail(cfg.compact_after) > 2);
    let net = MemNet::new();
    let snapshots = Arc::new(AtomicU64::new(0));
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let name = format!("c{i}");
            let id = NodeId::from_name(&name);
            Member {
                id,
                name: NodeName(name),
                addr: MemNet::addr(id),
            }
        })
        .collect();
    let mut starts = Vec::new();
    for m in &members {
        let (transport, incoming) = net.join(m.id);
        let params = StartParams {
            config: cfg.clone(),
            me: m.id,
            members: members.clone(),
            transport: Arc::new(Counting {
                inner: transport,
                snapshots: Arc::clone(&snapshots),
            }),
            incoming,
            join_timeout: WAIT,
            on_stop: None,
            incarnation: None,
            peer_memory: Box::new(super::MemoryPeers::default()),
            hooks: super::Hooks::default(),
            joined: None,
            join_only: false,
            durable: false,
            on_joined: None,
            on_left: None,
        };
        starts.push(tokio::spawn(start(params)));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().unwrap());
    }
    for n in &nodes {
        timeout(WAIT, n.ready()).await.unwrap().unwrap();
    }
    let leader = nodes[0].status().leader.unwrap();
    let li = members.iter().position(|m| m.id == leader).unwrap();
    let lagging = (li + 1) % 3;
    for round in 0..40 {
        net.isolate(members[lagging].id);
        let g = timeout(WAIT, nodes[li].lock("k")).await.unwrap().unwrap();
        timeout(WAIT, g.unlock()).await.unwrap().unwrap();
        // A few ticks: a compaction that is due happens now.
        tokio::time::sleep(Duration::from_millis(40)).await;
        net.heal();
        // Caught up: a linearizable read on the lagging node answers.
        timeout(WAIT, nodes[lagging].holder("k"))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the follower did not catch up"))
            .unwrap();
    }
    assert_eq!(
        snapshots.load(Ordering::Relaxed),
        0,
        "a follower 2 entries behind was sent a snapshot"
    );
}
