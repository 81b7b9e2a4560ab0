//! `ClusterCa`'s certificates expire (issue 12, item 5): a node
//! certificate issued to end inside the warning window raises
//! `peerlock_tls_certs_expiring` and a `warn` line as the node starts; a
//! default one (a year) does not, and `peerlock_tls_cert_expiry_seconds`
//! reads about a year. Under a thread-local `metrics-util` debugging
//! recorder and a thread-local `tracing` subscriber on a current-thread
//! runtime, so no other test sees them.

use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use peerlock::certs::ClusterCa;
use peerlock::TlsConfig;

use crate::common::{gauges, sockets, with_recorder, within, LogBuf, WAIT};

const DAY: Duration = Duration::from_secs(86_400);

/// Starts a one-node in-memory cluster with `tls`, takes a lock, shuts
/// down; returns the gauges and the `warn` lines seen meanwhile.
fn one_node(tls: TlsConfig) -> (std::collections::BTreeMap<String, f64>, String) {
    let rec = DebuggingRecorder::new();
    let buf = LogBuf::default();
    let subscriber = buf.subscriber(tracing::Level::WARN);
    let got = tracing::subscriber::with_default(subscriber, || {
        with_recorder(&rec, || async {
            let (mut socks, addrs) = sockets(1);
            let node = within(
                peerlock::Node::builder()
                    .socket(socks.pop().unwrap())
                    .peers(addrs)
                    .tls(tls)
                    .in_memory()
                    .session_ttl(Duration::from_millis(1500))
                    .raft_tick(Duration::from_millis(20))
                    .startup_timeout(WAIT)
                    .start(),
            )
            .await
            .unwrap();
            let got = gauges(&rec);
            within(node.lock("t126"))
                .await
                .unwrap()
                .unlock()
                .await
                .unwrap();
            within(node.shutdown()).await.unwrap();
            got
        })
    });
    let logs = buf.text();
    (got, logs)
}

#[test]
fn t126a_a_certificate_inside_the_warning_window_is_counted_and_logged_at_start() {
    let ca = ClusterCa::generate("t126").unwrap();

    let soon = ca.clone().with_node_validity(10 * DAY);
    let (g, logs) = one_node(soon.issue_node("node-0", &[]).unwrap());
    assert_eq!(g.get("peerlock_tls_certs_expiring"), Some(&1.0), "{g:?}");
    let left = g["peerlock_tls_cert_expiry_seconds"];
    assert!((9.9 * 86_400.0..=10.0 * 86_400.0).contains(&left), "{left}");
    assert!(
        logs.contains("a TLS certificate expires soon") && logs.contains("node-0"),
        "no warning at start:\n{logs}"
    );

    // The default, a year: nothing to warn about, and the gauge says so.
    let (g, logs) = one_node(ca.issue_node("node-0", &[]).unwrap());
    assert_eq!(g.get("peerlock_tls_certs_expiring"), Some(&0.0), "{g:?}");
    let left = g["peerlock_tls_cert_expiry_seconds"];
    assert!(
        (364.0 * 86_400.0..=365.0 * 86_400.0).contains(&left),
        "{left}"
    );
    assert!(!logs.contains("expires soon"), "{logs}");
}
