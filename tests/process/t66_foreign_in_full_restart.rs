//! A data directory of another cluster among the nodes of a full restart
//! through seeds, as separate processes (issue 9; found by a newcomer's
//! trial). Node 2's directory is swapped for that of a one-node cluster it
//! once founded, and all three start again at once with `--seeds`. Each
//! node answers the others' "which cluster?" with its own directory's
//! cluster, so each hears a mismatch; the first to hear one stopped at
//! once, and the node it had heard could then hear nobody and restarted
//! its other cluster unopposed, granting the same lock names (4 tries in
//! 8). A node that heard a mismatch now goes on answering for a second
//! before it stops, so every one of them hears it and none starts.

use std::time::Duration;

use crate::members::wait_ready;
use crate::procs::{Gone, Spec};

const TTL: Duration = Duration::from_millis(1500);
const READY: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t66_issue_9_a_foreign_directory_in_a_full_restart_stops_every_node() {
    let mut spec = Spec::new(3, TTL, true);
    // Node 2 founds a cluster of its own, takes a lock, and is killed.
    spec.seeds[2] = Some(spec.addr(2));
    spec.extra_args = vec!["--bootstrap-expect".to_owned(), "1".to_owned()];
    let mut lone = spec.spawn(2);
    wait_ready(&mut lone, 2, READY).await;
    assert!(lone.ask("lock shared").await.starts_with("granted"));
    lone.kill9().await;
    let foreign = spec.dir.path().join("foreign.data");
    std::fs::rename(spec.data_dir(2), &foreign).unwrap();

    // The three-node cluster, founded through peers, then killed.
    spec.seeds[2] = None;
    spec.extra_args.clear();
    let mut procs = Vec::new();
    for i in 0..3 {
        procs.push(spec.spawn(i));
    }
    for (i, p) in procs.iter_mut().enumerate() {
        wait_ready(p, i, READY).await;
    }
    assert!(procs[0].ask("lock shared").await.starts_with("granted"));
    for p in &mut procs {
        p.kill9().await;
    }
    std::fs::remove_dir_all(spec.data_dir(2)).unwrap();
    std::fs::rename(&foreign, spec.data_dir(2)).unwrap();

    // All three again, through seeds: none may start.
    let seeds = (0..3).map(|i| spec.addr(i)).collect::<Vec<_>>().join(",");
    spec.seeds = vec![Some(seeds); 3];
    let mut procs: Vec<_> = (0..3).map(|i| spec.spawn(i)).collect();
    let mut started = Vec::new();
    for (i, p) in procs.iter_mut().enumerate() {
        match p.try_next_line(Duration::from_secs(15)).await {
            Err(Gone::Closed) => {} // refused: the process exited
            Err(Gone::Silent) => started.push(format!("node {i} neither refused nor started")),
            Ok(line) => started.push(format!("node {i}: {line}")),
        }
    }
    for p in &mut procs {
        p.kill9().await;
    }
    assert!(
        started.is_empty(),
        "expected every node refused: {started:?}"
    );
}
