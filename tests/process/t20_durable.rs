//! Durable storage across kill -9: every node of a 3-node cluster is
//! killed mid-load and restarted from its data directory. Everything
//! acknowledged before the kill is in the recovered table, and new tokens
//! are higher than every token issued before.

use std::time::Duration;

use crate::procs::{granted_token, Proc, Spec};

fn holder_token(line: &str) -> Option<u64> {
    // `holder NAME NODE TOKEN WAITERS` or `holder NAME none`
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"holder"), "{line:?}");
    if parts.get(2) == Some(&"none") {
        return None;
    }
    parts.get(3).map(|t| t.parse().expect("token"))
}

async fn kill_all(procs: &mut [Proc]) {
    for p in procs.iter() {
        p.signal("KILL");
    }
    for p in procs.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_kill_every_node_and_restart_from_disk() {
    let spec = Spec::new(3, Duration::from_secs(3), true);
    let mut procs = spec.start_all().await;
    let mut max_token = 0;
    let mut released = Vec::new();
    // Load: grants and releases from every node, all acknowledged.
    for round in 0..10 {
        for (i, p) in procs.iter_mut().enumerate() {
            let name = format!("k{i}-{round}");
            let t = granted_token(&p.ask(&format!("lock {name}")).await);
            assert!(t > max_token);
            max_token = t;
            assert_eq!(
                p.ask(&format!("unlock {name}")).await,
                format!("released {name}")
            );
            released.push(name);
        }
    }
    // An acknowledged grant that is still held at the kill.
    let held = granted_token(&procs[0].ask("lock held").await);
    max_token = max_token.max(held);

    kill_all(&mut procs).await;
    let mut procs = spec.start_all().await;

    // The recovered table holds the grant acknowledged before the kill
    // (its session expires normally, a TTL after the new leader's election).
    let line = procs[1].ask("holder held").await;
    assert_eq!(holder_token(&line), Some(held), "{line}");
    for name in released.iter().step_by(7) {
        let line = procs[2].ask(&format!("holder {name}")).await;
        assert_eq!(
            holder_token(&line),
            None,
            "released before the kill: {line}"
        );
    }
    // New tokens are higher than every token issued before the kill.
    let fresh = granted_token(&procs[1].ask("lock fresh").await);
    assert!(fresh > max_token, "{fresh} > {max_token}");
    // The dead session's lock goes to a new holder once it expires.
    let after = granted_token(&procs[2].ask("lock held").await);
    assert!(after > fresh);
    for p in &mut procs {
        let _ = p.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t21_kill_one_node_under_load_and_restart_it() {
    let spec = Spec::new(3, Duration::from_secs(2), true);
    let mut procs = spec.start_all().await;
    let mut max_token = 0;
    for round in 0..5 {
        let t = granted_token(&procs[2].ask(&format!("lock r{round}")).await);
        max_token = max_token.max(t);
        procs[2].ask(&format!("unlock r{round}")).await;
    }
    procs[2].signal("KILL");
    let _ = tokio::time::timeout(Duration::from_secs(10), procs[2].child.wait()).await;
    // The other two keep serving while it is down.
    let t = granted_token(&procs[0].ask("lock while-down").await);
    assert!(t > max_token);
    max_token = t;
    // It comes back as itself (same incarnation) and takes part again.
    let mut back = spec.spawn(2);
    let line = back.next_line().await;
    assert!(line.starts_with("ready "), "{line}");
    let t = granted_token(&back.ask("lock after-restart").await);
    assert!(t > max_token);
    let line = back.ask("holder while-down").await;
    assert_eq!(holder_token(&line), Some(max_token), "{line}");
    let _ = back.child.start_kill();
    for p in &mut procs {
        let _ = p.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t22_issue_9_a_node_whose_data_directory_was_emptied_joins_as_a_new_member() {
    let spec = Spec::new(3, Duration::from_secs(2), true);
    let mut procs = spec.start_all().await;
    let before = granted_token(&procs[0].ask("lock before").await);
    procs[2].signal("KILL");
    let _ = tokio::time::timeout(Duration::from_secs(10), procs[2].child.wait()).await;
    // Lose node 2's state: it would come back with no memory of its votes,
    // so it must never vote under its old id. It joins as a new member.
    std::fs::remove_dir_all(spec.dir.path().join("proc-2.data")).expect("remove data dir");
    let mut blank = spec.spawn(2);
    let line = tokio::time::timeout(Duration::from_secs(30), blank.next_line())
        .await
        .expect("the blank node answers in time");
    assert!(line.starts_with("ready "), "unexpected first line {line:?}");
    // It serves, and its grants follow the lock granted before.
    let t = granted_token(&blank.ask("lock after").await);
    assert!(t > before);
    let members = blank.ask("members").await;
    assert!(members.starts_with("members "), "{members}");
    for p in procs.iter_mut().chain(std::iter::once(&mut blank)) {
        let _ = p.child.start_kill();
    }
}

/// `examples/node --leave-on-shutdown false` (a newcomer's trial: `quit`
/// on every node, one after another, left the membership each time, and
/// the next start of each was blank under a new id; the flag was
/// missing). A node stopped so keeps its directory and its id: its
/// directory is not marked left, and it restarts from it as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t23_a_node_stopped_without_leaving_restarts_as_itself() {
    let mut spec = Spec::new(3, Duration::from_millis(1500), true);
    spec.extra_args = vec!["--leave-on-shutdown".to_owned(), "false".to_owned()];
    let mut procs = spec.start_all().await;
    let before = procs[2].ask("status").await;
    assert_eq!(procs[2].ask("quit").await, "bye");
    let _ = tokio::time::timeout(Duration::from_secs(15), procs[2].child.wait()).await;
    assert!(
        !spec.data_dir(2).join("left").exists(),
        "the directory was marked left"
    );
    let mut again = spec.spawn(2);
    let line = again.next_line().await;
    assert!(line.starts_with("ready "), "{line:?}");
    assert!(again.ask("lock after").await.starts_with("granted"));
    println!("t23: before {before}; restarted: {line}");
    procs[2] = again;
    kill_all(&mut procs).await;
}
