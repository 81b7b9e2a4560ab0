//! Issue 11, item 5: a task that holds `x` and calls `lock("x")` again on
//! the same node waited behind itself for ever. Now it gets
//! `Error::AlreadyHeld` at once (nothing queued), while another task's
//! call still waits its turn as before.

use std::time::Duration;

use peerlock::Error;

use crate::common::{within, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t105_issue_11_a_nested_acquire_by_the_holding_task_is_refused_not_hung() {
    let c = Cluster::start(3).await;
    let node = c.nodes[0].clone();
    let g = within(node.lock("x")).await.unwrap();
    let again = within(node.lock("x")).await.unwrap_err();
    assert!(
        matches!(again, Error::AlreadyHeld { ref name } if name == "x"),
        "{again}"
    );
    let timed = within(node.lock_timeout("x", Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert!(matches!(timed, Error::AlreadyHeld { .. }), "{timed}");
    // A nested with_lock on the same name inside the section.
    let nested = within(node.with_lock("y", async |_| node.with_lock("y", async |_| ()).await))
        .await
        .unwrap();
    assert!(
        matches!(nested, Err(Error::AlreadyHeld { .. })),
        "{nested:?}"
    );
    // Leading an election and campaigning again is the same mistake.
    let l = within(node.campaign("e")).await.unwrap();
    assert!(matches!(
        within(node.campaign("e")).await,
        Err(Error::AlreadyHeld { .. })
    ));
    within(l.resign()).await.unwrap();

    // Another task on the same node waits for the holder, as before.
    let n = node.clone();
    let other = tokio::spawn(async move { n.lock("x").await.map(|g| g.token()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!other.is_finished(), "another task waits its turn");
    let token = g.token();
    within(g.unlock()).await.unwrap();
    let next = within(other).await.unwrap().unwrap();
    assert!(next > token);
    // Once released, the task may lock the name again.
    let g = within(node.lock("x")).await.unwrap();
    within(g.unlock()).await.unwrap();
}
