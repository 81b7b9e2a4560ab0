//! A paused holder process resumes knowing it lost the lock, and its write
//! with the old token is refused by the fenced resource.

use std::time::Duration;

use crate::common::Fenced;
use crate::procs::{granted_token, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_sigstopped_holder_resumes_with_is_held_false() {
    let ttl = Duration::from_millis(1500);
    let (_spec, mut procs) = start(3, ttl).await;
    let t0 = granted_token(&procs[0].ask("lock x").await);
    assert_eq!(procs[0].ask("held x").await, "held x true");
    let mut resource = Fenced::default();
    assert!(resource.write(peerlock::FencingToken(t0), 1));

    procs[0].signal("STOP");
    // Another process gets the lock once the paused holder's session expires.
    let t1 = granted_token(&procs[1].ask("lock x").await);
    assert!(t1 > t0, "token rose: {t0} -> {t1}");
    assert!(resource.write(peerlock::FencingToken(t1), 2));
    // Stay paused for at least twice the TTL in all.
    tokio::time::sleep(ttl).await;
    procs[0].signal("CONT");

    // Its first look after resuming: not held.
    assert_eq!(procs[0].ask("held x").await, "held x false");
    // Its write with the old token is refused by the resource.
    assert!(!resource.write(peerlock::FencingToken(t0), 3));
    assert_eq!(resource.value, 2);
    assert_eq!(resource.stale_rejected, 1);
    for p in &mut procs {
        let _ = p.child.start_kill();
    }
}
