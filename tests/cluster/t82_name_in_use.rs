//! Issue 9: a second process under a live member's name is refused at
//! once; the blank restart of a member that is gone is not.

use std::time::{Duration, Instant};

use peerlock::{Error, MemberRole};

use crate::common::{converge, in_memory_member, sockets, start_members, within, WAIT};

/// A second process started with the certificate of a live member
/// (node-1), given the other members as seeds, waited for its start-up
/// timeout (20 s here) and failed with an error that only guessed at the
/// cause (the peers kept talking to the live node-1, so the newcomer heard
/// nothing back). Now a peer connected to node-1 sees it still answer and
/// refuses the newcomer: the start fails within seconds with a
/// configuration error naming node-1, its address and what to do. node-1
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t82_issue_9_a_second_process_under_a_live_members_name_is_refused_at_once() {
    let (nodes, ca) = start_members("names", 3, None).await;
    let live = nodes[1].local_addr();
    let seeds = [nodes[0].local_addr(), nodes[2].local_addr()];
    let (socks, _) = sockets(1);
    let sock = socks.into_iter().next().unwrap();
    let t = Instant::now();
    let r = in_memory_member(&ca, "node-1", sock)
        .seeds(seeds)
        .start()
        .await;
    let took = t.elapsed();
    let msg = match r {
        Err(Error::Config(msg)) => msg,
        other => panic!("after {took:?}: {:?}", other.map(|n| n.status())),
    };
    assert!(
        took < Duration::from_secs(5),
        "refused after {took:?}: {msg}"
    );
    assert!(msg.contains("\"node-1\""), "{msg}");
    assert!(msg.contains(&live.to_string()), "{msg}");
    assert!(msg.contains("its own name"), "{msg}");
    // The live member keeps its place and serves.
    let g = within(nodes[1].lock("after")).await.unwrap();
    within(g.unlock()).await.unwrap();
    let m = converge(&nodes[0], 3, 0).await;
    let one = m.iter().find(|x| x.name.as_str() == "node-1").unwrap();
    assert_eq!(one.id, nodes[1].status().id, "{m:?}");
    assert_eq!(one.addr, live, "{m:?}");
}

/// The other side of the refusal: a member that crashed is not live, so
/// its blank restart under the same name, at once and at a new address
/// (a pod rescheduled), joins and supersedes it, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t82_issue_9_a_blank_restart_right_after_a_crash_still_joins() {
    let (mut nodes, ca) = start_members("names", 3, None).await;
    let seeds = [nodes[0].local_addr(), nodes[2].local_addr()];
    let old = nodes[1].status().id;
    peerlock::testing::crash(&nodes[1]).await;
    let (socks, _) = sockets(1);
    let sock = socks.into_iter().next().unwrap();
    let again = in_memory_member(&ca, "node-1", sock)
        .seeds(seeds)
        .startup_timeout(WAIT)
        .start()
        .await
        .expect("a blank restart of a crashed member joins");
    within(again.ready()).await.expect("ready");
    assert_ne!(again.status().id, old, "never the old id");
    nodes[1] = again;
    let m = converge(&nodes[0], 3, 0).await;
    assert!(
        m.iter()
            .any(|x| x.id == nodes[1].status().id && x.role == MemberRole::Voter),
        "{m:?}"
    );
}
