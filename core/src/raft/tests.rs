//! Driver tests over the in-memory network: several nodes in one process,
//! real time with short TTLs, every wait bounded.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;

use super::{start, Member, StartParams};
use crate::client::NodeHandle;
use crate::config::NodeConfig;
use crate::error::Error;
use crate::sim::MemNet;
use crate::types::{NodeId, NodeName};

const WAIT: Duration = Duration::from_secs(10);

fn config() -> NodeConfig {
    NodeConfig {
        session_ttl: Duration::from_millis(900),
        tick: Duration::from_millis(10),
        ..NodeConfig::default()
    }
}

async fn cluster(n: usize) -> (MemNet, Vec<NodeId>, Vec<NodeHandle>) {
    let net = MemNet::new();
    let members: Vec<Member> = (0..n)
        .map(|i| {
            let name = format!("n{i}");
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
            config: config(),
            me: m.id,
            members: members.clone(),
            transport: transport as Arc<dyn crate::transport::Transport>,
            incoming,
            join_timeout: WAIT,
            on_stop: None,
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
    (net, members.iter().map(|m| m.id).collect(), nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_unlock_and_try_lock_across_nodes() {
    let (_net, _ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[1].lock("a")).await.unwrap().unwrap();
    assert!(g.is_held());
    assert!(timeout(WAIT, nodes[2].try_lock("a"))
        .await
        .unwrap()
        .unwrap()
        .is_none());
    let info = timeout(WAIT, nodes[0].holder("a"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.token, g.token());
    assert_eq!(info.holder.as_str(), "n1");
    let t1 = g.token();
    timeout(WAIT, g.unlock()).await.unwrap().unwrap();
    assert!(timeout(WAIT, nodes[0].holder("a"))
        .await
        .unwrap()
        .unwrap()
        .is_none());
    let g2 = timeout(WAIT, nodes[2].try_lock("a"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(g2.token() > t1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_is_granted_when_holder_drops_and_timeout_leaves_queue() {
    let (_net, _ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[0].lock("q")).await.unwrap().unwrap();
    let err = nodes[1]
        .lock_timeout("q", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout));
    let waiter = {
        let n = nodes[2].clone();
        tokio::spawn(async move { n.lock("q").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = g.token();
    drop(g);
    let g2 = timeout(WAIT, waiter).await.unwrap().unwrap().unwrap();
    assert!(g2.token() > t);
    let info = timeout(WAIT, nodes[1].holder("q"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.waiters, 0, "the timed-out waiter left the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_holder_session_expires_and_waiter_gets_the_lock() {
    let (net, ids, nodes) = cluster(3).await;
    // Hold on a follower, so the crash also exercises the leader's expiry.
    let leader = nodes[0].status().leader.unwrap();
    let holder_ix = ids.iter().position(|id| *id != leader).unwrap();
    let waiter_ix = (0..3).find(|i| *i != holder_ix).unwrap();
    let g = timeout(WAIT, nodes[holder_ix].lock("c"))
        .await
        .unwrap()
        .unwrap();
    let token = g.token();
    net.crash(ids[holder_ix]);
    let g2 = timeout(WAIT, nodes[waiter_ix].lock("c"))
        .await
        .unwrap()
        .unwrap();
    assert!(g2.token() > token);
    // The cut-off holder's own view turned false before the grant elsewhere.
    assert!(!g.is_held());
    nodes[holder_ix].kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_holder_sees_lost_within_ttl() {
    let (net, ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[2].lock("iso")).await.unwrap().unwrap();
    net.isolate(ids[2]);
    timeout(Duration::from_secs(3), g.lost())
        .await
        .expect("lost() within the TTL");
    assert!(!g.is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_locks_for_waiters() {
    let (_net, _ids, nodes) = cluster(3).await;
    let g = timeout(WAIT, nodes[0].lock("s")).await.unwrap().unwrap();
    let waiter = {
        let n = nodes[1].clone();
        tokio::spawn(async move { n.lock("s").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    timeout(WAIT, nodes[0].shutdown()).await.unwrap().unwrap();
    assert!(!g.is_held());
    let g2 = timeout(WAIT, waiter).await.unwrap().unwrap().unwrap();
    assert!(g2.token() > g.token());
    assert!(matches!(nodes[0].lock("s").await, Err(Error::Shutdown)));
}
