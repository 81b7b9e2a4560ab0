//! Issue 12: a first start whose peers are not up said nothing until its
//! start-up deadline (60 s by default), so an operator could not tell a
//! slow start from a wrong address. Within seconds the node now names the
//! peer it waits for, at WARN (the level `examples/node` logs by default).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::procs::Spec;

/// From spawning a node whose peers are down to its note on stderr.
const NOTE_BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t56_issue_12_a_start_whose_peers_are_down_says_what_it_waits_for() {
    let spec = Spec::new(3, Duration::from_millis(1500), false);
    let mut child = spec
        .command(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let peer = spec.addr(1);
    let found = tokio::time::timeout(NOTE_BOUND, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("WARN")
                && line.contains("first start: waiting for every peer")
                && line.contains(&peer)
            {
                return Some(line);
            }
        }
        None
    })
    .await;
    let _ = child.kill().await;
    match found {
        Ok(Some(line)) => println!("t56: {line}"),
        Ok(None) => panic!("the node ended without saying what it waits for"),
        Err(_) => panic!("no note naming peer {peer} within {NOTE_BOUND:?}"),
    }
}
