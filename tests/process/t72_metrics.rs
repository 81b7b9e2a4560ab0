//! Issue 12, item 3: `examples/node --metrics ADDR` serves the whole
//! metrics catalog as Prometheus text, and `--log json` writes JSON lines.
//!
//! Three durable node processes, each with its own metrics port on
//! 127.0.0.1; a lock, an unlock and a refused `try` through the line
//! protocol; then every node is scraped over HTTP and the union of what
//! they show must hold every name of `peerlock::metrics::ALL` (the
//! leader-only membership gauges appear on the leader alone), with help
//! texts, and the lock's counts must have moved on the node that took it.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::procs::{free_tcp_port, Proc, Spec};

/// From the lock to a scrape that shows every name.
const SCRAPE_BOUND: Duration = Duration::from_secs(20);

/// The metric names a Prometheus text shows samples of (`_bucket`,
/// `_sum` and `_count` folded into their histogram's name).
fn sampled(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .filter(|base| peerlock::metrics::ALL.contains(base))
                .unwrap_or(n)
                .to_owned()
        })
        .collect()
}

/// The value of the sample line `series` (name and labels as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(client: &reqwest::Client, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t72_issue_12_metrics_endpoint_shows_the_whole_catalog() {
    let spec = Spec::new(3, Duration::from_millis(3000), true);
    let ports: Vec<u16> = (0..3).map(|_| free_tcp_port()).collect();
    let mut procs = Vec::new();
    let mut json_lines = None;
    for (i, port) in ports.iter().enumerate() {
        let mut cmd = spec.command(i);
        cmd.args(["--metrics", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if i == 2 {
            // The last node logs JSON at INFO: its start-up says something.
            cmd.args(["--log", "json"])
                .env("PEERLOCK_LOG", "info")
                .stderr(Stdio::piped());
        } else {
            cmd.stderr(Stdio::inherit());
        }
        let mut child = cmd.spawn().expect("spawn node");
        if i == 2 {
            let stderr = child.stderr.take().expect("piped stderr");
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(line);
                }
            });
            json_lines = Some(rx);
        }
        procs.push(Proc::adopt(child));
    }
    for p in &mut procs {
        let line = p.next_line().await;
        assert!(line.starts_with("ready "), "unexpected first line {line:?}");
    }

    let granted = procs[0].ask("lock m").await;
    assert!(granted.starts_with("granted m "), "{granted}");
    assert_eq!(procs[1].ask("try m").await, "busy m");
    assert_eq!(procs[0].ask("unlock m").await, "released m");
    let again = procs[1].ask("lock m 5000").await;
    assert!(again.starts_with("granted m "), "{again}");
    assert_eq!(procs[1].ask("unlock m").await, "released m");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client");
    let deadline = tokio::time::Instant::now() + SCRAPE_BOUND;
    let (texts, missing) = loop {
        let mut texts = Vec::new();
        for port in &ports {
            texts.push(scrape(&client, *port).await);
        }
        let seen: BTreeSet<String> = texts.iter().flat_map(|t| sampled(t)).collect();
        let missing: Vec<&str> = peerlock::metrics::ALL
            .iter()
            .copied()
            .filter(|n| !seen.contains(*n))
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() >= deadline {
            break (texts, missing);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        missing.is_empty(),
        "not on any node's /metrics: {missing:?}\nnode 0 shows:\n{}",
        texts[0]
    );
    for name in peerlock::metrics::ALL {
        assert!(
            texts.iter().any(|t| t.contains(&format!("# HELP {name} "))),
            "no help text for {name}"
        );
    }
    // The counts moved, not only the names: node 0 granted, released and
    // answered a busy `try` on node 1.
    let n0 = &texts[0];
    assert!(value(n0, "peerlock_locks_granted_total").unwrap_or(0.0) >= 1.0);
    assert!(value(n0, "peerlock_locks_released_total").unwrap_or(0.0) >= 1.0);
    assert_eq!(value(n0, "peerlock_locks_held"), Some(0.0), "{n0}");
    let busy = r#"peerlock_acquires_total{kind="mutex",outcome="busy"}"#;
    assert_eq!(value(&texts[1], busy), Some(1.0), "{}", texts[1]);
    let leaders = texts
        .iter()
        .filter(|t| value(t, "peerlock_has_leader") == Some(1.0))
        .count();
    assert_eq!(leaders, 3, "every node knows a leader");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("peerlock_fsync_duration_seconds_bucket{le=")),
        "fsync latency as histogram buckets"
    );

    // `--log json`: every line node 2 wrote to stderr is a JSON object.
    let mut rx = json_lines.expect("node 2's stderr");
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("node 2 logged at INFO")
        .expect("a line");
    let parsed: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
    assert!(parsed.get("level").is_some(), "{first}");

    for p in &mut procs {
        p.kill9().await;
    }
}
