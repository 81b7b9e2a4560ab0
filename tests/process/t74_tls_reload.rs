//! Issue 12, item 5: `examples/node` watches its PEM files and reloads
//! them without a restart. Three processes roll their CA through the three
//! steps by rewriting the files in place (one `ca.pem` for all, each
//! node's certificate and key); each node must log every reload. Then the
//! leader is killed: the two survivors' pair, idle (closed) since before
//! the last step, must make a new connection with the reloaded files
//! (the new CA alone) to elect a leader and grant a lock. A node that
//! did not reload would present the old CA's certificate and be refused.
//! Last, the killed node starts again on its data directory with the
//! files of step 3: the survivors must accept its new process, which they
//! can only with the reloaded bundle (had all three kept the files they
//! started with, they would still agree with each other, but refuse it).

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerlock::certs::ClusterCa;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::WAIT;
use crate::procs::{granted_token, Proc, Spec};

/// Polls of the files this often.
const POLL_MS: &str = "200";

/// Waits until every counter is at least `n`.
async fn reloads(counts: &[Arc<AtomicUsize>], n: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        if now.iter().all(|&k| k >= n) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: reloads per node {now:?}, want {n} each"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t74_issue_12_the_node_reloads_its_pem_files_and_rolls_its_ca() {
    let mut spec = Spec::new(3, Duration::from_millis(1500), true);
    spec.extra_args = vec!["--tls-poll-ms".into(), POLL_MS.into()];
    let d = spec.dir.path().to_owned();
    let old_ca = std::fs::read_to_string(d.join("ca.pem")).unwrap();
    let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
    let spawn = |i: usize, count: Arc<AtomicUsize>| {
        let mut child = spec
            .command(i)
            .env("PEERLOCK_LOG", "warn,node::pem_watch=info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let stderr = child.stderr.take().expect("stderr");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("TLS files changed: reloaded") {
                    count.fetch_add(1, Ordering::SeqCst);
                } else if line.contains("WARN") {
                    eprintln!("node {i}: {line}");
                }
            }
        });
        Proc::adopt(child)
    };
    let mut procs: Vec<Proc> = (0..3).map(|i| spawn(i, Arc::clone(&counts[i]))).collect();
    for p in &mut procs {
        let line = p.next_line().await;
        assert!(line.starts_with("ready "), "unexpected first line {line:?}");
    }
    let first = granted_token(&procs[0].ask("lock rolled").await);
    assert_eq!(procs[0].ask("unlock rolled").await, "released rolled");

    // 1. Trust both CAs (the new one first).
    let new = ClusterCa::generate("proc-2").unwrap();
    std::fs::write(d.join("ca.pem"), format!("{}{old_ca}", new.ca_pem())).unwrap();
    reloads(&counts, 1, "1: trust both CAs").await;
    // 2. Every node's certificate and key from the new CA.
    for i in 0..3 {
        let (cert, key) = new
            .issue_node_pem(&format!("proc-{i}"), &["127.0.0.1"])
            .unwrap();
        std::fs::write(d.join(format!("proc-{i}.pem")), cert).unwrap();
        std::fs::write(d.join(format!("proc-{i}.key")), key).unwrap();
    }
    reloads(&counts, 2, "2: certificates of the new CA").await;
    // 3. The new CA alone.
    std::fs::write(d.join("ca.pem"), new.ca_pem()).unwrap();
    reloads(&counts, 3, "3: the old CA dropped").await;

    // The followers' pair closes once idle (IDLE_CLOSE, 5 s): its next
    // connection is made with the files of step 3.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = procs[0].ask("status").await;
    let leader: usize = status
        .split_whitespace()
        .find_map(|w| w.strip_prefix("leader_name=proc-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no leader in {status:?}"));
    procs[leader].kill9().await;
    let survivor = (leader + 1) % 3;
    let line = procs[survivor].ask("lock rolled 15000").await;
    assert!(
        granted_token(&line) > first,
        "tokens rise across the rotation: {line}"
    );
    assert_eq!(
        procs[survivor].ask("unlock rolled").await,
        "released rolled"
    );
    // The killed node comes back with the new files; only the reloaded
    // survivors can let it in.
    let mut back = spawn(leader, Arc::clone(&counts[leader]));
    let line = back.next_line().await;
    assert!(line.starts_with("ready "), "unexpected first line {line:?}");
    let line = back.ask("lock rolled 15000").await;
    granted_token(&line);
    assert_eq!(back.ask("unlock rolled").await, "released rolled");
}
