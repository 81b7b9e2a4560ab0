//! Spawning and talking to `examples/node` processes.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use peerlock::certs::ClusterCa;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::common::WAIT;

/// The built `examples/node` binary (cargo test builds examples next to
/// the test binaries); built on demand if missing.
pub fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("examples").join("node");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", "node"])
            .status()
            .expect("run cargo build --example node");
        assert!(status.success(), "building examples/node failed");
    }
    bin
}

pub struct Proc {
    pub child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends one command line and returns the answer line.
    pub async fn ask(&mut self, cmd: &str) -> String {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .expect("write to node");
        self.stdin.flush().await.expect("flush");
        self.next_line().await
    }

    pub async fn next_line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("node answered in time")
            .expect("read from node")
            .expect("node closed its output")
    }

    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }
}

/// Starts `n` node processes with session TTL `ttl`, waits for each to print `ready`.
pub async fn start(n: usize, ttl: Duration) -> (tempfile::TempDir, Vec<Proc>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = ClusterCa::generate("proc").expect("CA");
    std::fs::write(dir.path().join("ca.pem"), ca.ca_pem()).expect("write ca");
    // Probe free ports: bind port 0 and release it.
    let ports: Vec<u16> = (0..n)
        .map(|_| {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let peers = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let bin = node_bin();
    let mut procs = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let name = format!("proc-{i}");
        let (cert, key) = ca.issue_node_pem(&name, &["127.0.0.1"]).expect("issue");
        let cert_path = dir.path().join(format!("{name}.pem"));
        let key_path = dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert).expect("write cert");
        std::fs::write(&key_path, key).expect("write key");
        let mut child = Command::new(&bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--peers", &peers])
            .arg("--ca")
            .arg(dir.path().join("ca.pem"))
            .arg("--cert")
            .arg(&cert_path)
            .arg("--key")
            .arg(&key_path)
            .args(["--ttl-ms", &ttl.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        procs.push(Proc {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        });
    }
    for p in &mut procs {
        let line = p.next_line().await;
        assert!(line.starts_with("ready "), "unexpected first line {line:?}");
    }
    (dir, procs)
}

/// Parses `granted NAME TOKEN`.
pub fn granted_token(line: &str) -> u64 {
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        parts.first(),
        Some(&"granted"),
        "expected a grant, got {line:?}"
    );
    parts[2].parse().expect("token")
}
