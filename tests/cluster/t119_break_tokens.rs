//! Fencing tokens of shared grants (helper `break`, issue 11). The crate
//! docs promise tokens "strictly increasing per lock and unique across
//! locks"; Redisson's `RPermitExpirableSemaphore` hands out a unique id
//! per permit, and a user porting from it keys permits by token.

use crate::common::{wait_until_async, within, Cluster};

/// Two permit requests (and two readers) waiting behind one holder are
/// granted when it lets go; each grant should have its own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t119_break_fails_two_grants_let_in_by_one_release_share_a_token() {
    let c = Cluster::start(3).await;
    let all = within(c.nodes[0].semaphore("tok", 3).acquire(3))
        .await
        .unwrap();
    let w = within(c.nodes[0].write_lock("tokr")).await.unwrap();
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
    assert_ne!(a.0, b.0, "two permit grants with one token");
    assert_ne!(a.1, b.1, "two read grants with one token");
}
