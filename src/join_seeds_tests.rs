//! A join whose seeds resolve to new addresses while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::{PeerMessage, Transport};
use peerlock_transport::QuicTransport;
use tokio::sync::mpsc;

use crate::resolve::Reresolve;
use crate::Node;

/// Issue 9, design item 2 (a Kubernetes rollout): the seed name first
/// lists only `ghost`, a member of `member`'s cluster that answers the
/// start, then goes away before the join completes, as a pod being
/// replaced does; meanwhile the name lists the new pod, `member`, only.
/// The join asked only the members it found at its start, so it waited
/// for its start-up timeout (run with the seeds' re-resolution switched
/// off in `start_core`: "join failed: NoQuorum" after 12 s); now it keeps
/// resolving the seeds, finds `member` and joins through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_finds_members_its_seed_name_lists_after_the_ones_it_asked_went_away() {
    let ca = peerlock_transport::ClusterCa::generate("reseed").expect("ca");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let member_addr = sock.local_addr().expect("address");
    let member = Node::builder()
        .socket(sock)
        .peers([member_addr])
        .tls(ca.issue_node("member", &["127.0.0.1"]).expect("issue"))
        .in_memory()
        .raft_tick(Duration::from_millis(20))
        .start()
        .await
        .expect("a one-node cluster");
    tokio::time::timeout(Duration::from_secs(20), member.ready())
        .await
        .expect("in time")
        .expect("ready");

    // `ghost` says it is a member, and goes away once asked to let the
    // joiner in.
    let (tx, mut ghost_rx) = mpsc::channel(1024);
    let ghost_tls = ca.issue_node("ghost", &["127.0.0.1"]).expect("issue");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let ghost = QuicTransport::bind(any, None, &ghost_tls, vec![member_addr], tx).expect("bind");
    let ghost_addr = ghost.local_addr();
    // It is a member of `member`'s cluster: it answers with its id.
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    let found = ghost.discover_reachable(until).await.expect("ghost dials");
    let member_key = found
        .iter()
        .find(|p| p.addr == member_addr)
        .expect("member")
        .id;
    let ask = PeerMessage::joining("ghost", 1);
    Transport::send(&*ghost, member_key, vec![ask]);
    let cluster_id = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let batch = ghost_rx.recv().await.expect("ghost runs");
            for msg in batch.msgs {
                if let PeerMessage::InCluster { cluster_id } = msg {
                    return cluster_id;
                }
            }
        }
    })
    .await
    .expect("the member answers");
    let gone = Arc::new(AtomicBool::new(false));
    let gone_w = Arc::clone(&gone);
    let g = Arc::clone(&ghost);
    let ghost_task = tokio::spawn(async move {
        while let Some(batch) = ghost_rx.recv().await {
            for msg in batch.msgs {
                match msg {
                    PeerMessage::Forming { .. } => {
                        let answer = PeerMessage::InCluster { cluster_id };
                        Transport::send(&*g, batch.from, vec![answer]);
                    }
                    PeerMessage::JoinAsk { .. } => {
                        gone_w.store(true, Ordering::SeqCst);
                        g.close();
                        return;
                    }
                    _ => {}
                }
            }
        }
    });

    // The seed name: `ghost` until it went away, then `member` only.
    let later: Reresolve = Arc::new(move || {
        let gone = gone.load(Ordering::SeqCst);
        Box::pin(async move {
            if gone {
                vec![member_addr]
            } else {
                vec![ghost_addr]
            }
        })
    });
    let mut b = Node::builder()
        .listen(any)
        .seeds([ghost_addr])
        .tls(ca.issue_node("joiner", &["127.0.0.1"]).expect("issue"))
        .in_memory()
        .raft_tick(Duration::from_millis(20))
        .startup_timeout(Duration::from_secs(12));
    b.reresolve_for_tests = Some(later);
    let joined = b.start().await;
    ghost_task.abort();
    let joiner = joined.expect("joins through the member the seed name lists now");
    tokio::time::timeout(Duration::from_secs(20), joiner.ready())
        .await
        .expect("in time")
        .expect("ready");
    assert_ne!(joiner.status().id, member.status().id);
    let _ = joiner.shutdown().await;
    let _ = member.shutdown().await;
    ghost.close();
}
