//! Fencing tokens of shared grants (issue 11). A token is the log index of
//! the entry that granted it (plus the cluster's base), so the grants one
//! entry lets in share it: readers or permit holders admitted by one
//! release, and every name of a multi-lock. A user-style test found the
//! crate docs promising a token unique per grant; the docs now say what
//! holds: a grant's token is above every token an earlier entry granted on
//! its names, and a token is never shared by grants of different entries.

use crate::common::{wait_until_async, within, Cluster};

/// Two permit requests (and two readers) waiting behind one holder are
/// granted by its release's entry: one token, above the holder's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_issue_11_grants_let_in_by_one_release_share_its_token() {
    let c = Cluster::start(3).await;
    let all = within(c.nodes[0].semaphore("tok", 3).acquire(3))
        .await
        .unwrap();
    let w = within(c.nodes[0].write_lock("tokr")).await.unwrap();
    let (before_p, before_r) = (all.token(), w.token());
    let mut waiting = Vec::new();
    for i in [1usize, 2] {
        let n = c.nodes[i].clone();
        waiting.push(tokio::spawn(async move {
            let p = n.semaphore("tok", 3).acquire(1).await.unwrap();
            let r = n.read_lock("tokr").await.unwrap();
            let t = (p.token(), r.token());
            drop((p, r));
            t
        }));
    }
    wait_until_async(|| async {
        let i = c.nodes[0].holders("tok").await.ok().flatten()?;
        (i.waiters == 2).then_some(())
    })
    .await;
    drop(all);
    wait_until_async(|| async {
        let i = c.nodes[0].holders("tokr").await.ok().flatten()?;
        (i.waiters == 2).then_some(())
    })
    .await;
    drop(w);
    let (a, b) = (
        within(waiting.remove(0)).await.unwrap(),
        within(waiting.remove(0)).await.unwrap(),
    );
    assert_eq!(
        a.0, b.0,
        "the permits one release let in: one entry, one token"
    );
    assert_eq!(
        a.1, b.1,
        "the readers one release let in: one entry, one token"
    );
    assert!(
        a.0 > before_p && a.1 > before_r,
        "above the earlier grant's token"
    );
}
