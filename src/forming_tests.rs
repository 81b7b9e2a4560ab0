//! Forming through seeds whose DNS names resolve to more pods later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peerlock_core::transport::Incoming;
use peerlock_transport::QuicTransport;
use tokio::sync::mpsc;

use super::{form, Formed};
use crate::resolve::Reresolve;

fn transport(
    ca: &peerlock_transport::ClusterCa,
    name: &str,
) -> (Arc<QuicTransport>, mpsc::Receiver<Incoming>) {
    let (tx, rx) = mpsc::channel(1024);
    let tls = ca.issue_node(name, &["127.0.0.1"]).expect("issue");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let t = QuicTransport::bind(addr, None, &tls, Vec::new(), tx).expect("bind");
    (t, rx)
}

/// Issue 9, design item 2: a Kubernetes headless service lists each pod
/// only once it has an address, so the first pod up resolves the seed
/// name to itself alone. Neither candidate here is given the other's
/// address at the start: `a` finds `b` only because its seed name,
/// resolved again while forming, now lists `b` too. Before, the seeds
/// were resolved once, and both gave up at the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_name_resolved_again_finds_a_pod_that_came_up_later() {
    let ca = peerlock_transport::ClusterCa::generate("resolve").expect("ca");
    let (a, mut a_rx) = transport(&ca, "a");
    let (b, mut b_rx) = transport(&ca, "b");
    let (a_addr, b_addr) = (a.local_addr(), b.local_addr());
    let later: Reresolve = Arc::new(move || Box::pin(async move { vec![a_addr, b_addr] }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // `b` waits for the cluster `a` founds; founding needs `b`'s promise,
    // which is all this test asks.
    let b2 = Arc::clone(&b);
    let waiting = tokio::spawn(async move {
        let _ = form(&b2, &mut b_rx, &[b_addr], None, 2, b_addr, deadline, false).await;
    });
    let fa = form(
        &a,
        &mut a_rx,
        &[a_addr],
        Some(later),
        2,
        a_addr,
        deadline,
        false,
    )
    .await;
    waiting.abort();
    let fa = match fa {
        Ok(Formed::Found(_)) => "found".to_owned(),
        Ok(Formed::Join(_)) => "join".to_owned(),
        Ok(Formed::Quiet) => "quiet".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(
        fa, "found",
        "a founds with b's promise (the lowest name founds)"
    );
    a.close();
    b.close();
}
