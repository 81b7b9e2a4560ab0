//! Issue 11, item 1: the leader of an election is cut off from the others
//! (nftables in its network namespace, see `t40_netns`). The majority's
//! next candidate leads with a higher token, and by the time it does, the
//! cut-off leader already reports that it no longer leads: the loss was
//! known on its side before the cluster granted the election again.
//! After the heal it stays deposed and its old token is refused.
//!
//! Needs root, `ip netns` and `nft`; without them it prints `SKIPPED`.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::Fenced;
use crate::procs::{leading_token, Spec};
use crate::t40_netns::{ip_of, missing_capability, remove_stale, start_in, Netns};

const TTL: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t42_issue_11_a_cut_off_leader_knows_it_lost_before_a_successor_leads() {
    let prefix = format!("plk{}e", std::process::id());
    if let Some(reason) = missing_capability(&prefix) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: t42_issue_11_a_cut_off_leader_knows_it_lost_before_a_successor_leads: {reason}"
        );
        return;
    }
    remove_stale();
    let net = Netns::create(&prefix, 3).expect("namespaces");
    let mut spec = Spec::with_hosts((0..3).map(ip_of).collect(), vec![7300; 3], TTL, true);
    let mut procs = start_in(&net, &mut spec).await;
    let t0 = leading_token(&procs[0].ask("campaign sched").await);
    let mut resource = Fenced::default();
    assert!(resource.write(peerlock::FencingToken(t0), 1));
    let mut p1 = procs.remove(1);
    let next = tokio::spawn(async move {
        let line = p1.ask("campaign sched").await;
        (p1, line)
    });
    // Wait until the second candidate is queued.
    let start = Instant::now();
    loop {
        let line = procs[0].ask("leader sched").await;
        if line.split_whitespace().nth(4) == Some("1") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{line}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cut = Instant::now();
    net.isolate(0);
    let (mut p1, line) = tokio::time::timeout(Duration::from_secs(30), next)
        .await
        .expect("a successor within 30 s")
        .unwrap();
    let took = cut.elapsed();
    let t1 = leading_token(&line);
    assert!(t1 > t0, "token rose: {t0} -> {t1}");
    assert!(took < TTL * 6, "a successor after {took:?}");
    // Asked right after the successor leads: the cut-off leader already
    // knows it lost (its lease ran out on its own clock first).
    assert_eq!(procs[0].ask("leading sched").await, "leading sched false");
    assert!(resource.write(peerlock::FencingToken(t1), 2));

    net.heal();
    tokio::time::sleep(TTL).await;
    assert_eq!(procs[0].ask("leading sched").await, "leading sched false");
    assert!(
        !resource.write(peerlock::FencingToken(t0), 3),
        "the old leader is fenced"
    );
    assert_eq!(p1.ask("leading sched").await, "leading sched true");
    let leader = procs[0].ask("leader sched").await;
    assert!(leader.starts_with("leader sched proc-1 "), "{leader}");
}
