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
/// the test binaries). `cargo test --test process` alone does not build
/// examples, so the first call of a run builds it (once; cargo's own
/// freshness check makes that quick when nothing changed, and a binary
/// left from before a change of `examples/node` is never used).
pub fn node_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    example_bin("node", &BUILT)
}

/// The built binary of `examples/<name>`, built once per run through
/// `built` (see [`node_bin`]).
pub fn example_bin(name: &str, built: &std::sync::Once) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("examples").join(name);
    built.call_once(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo.args(["build", "--example", name]);
        // Without the variables cargo set for this test binary: build
        // scripts (ring's) rerun when `CARGO_MANIFEST_DIR` or
        // `CARGO_PKG_NAME` differ, and the nested build would recompile
        // half the graph, then the next `cargo test` again.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_for_test = key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_CFG_")
                || key.starts_with("CARGO_BIN_")
                || key.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "OUT_DIR",
                ]
                .contains(&key.as_ref());
            if set_for_test {
                cargo.env_remove(key.as_ref());
            }
        }
        let status = cargo.status().expect("run cargo build --example");
        assert!(status.success(), "building examples/{name} failed");
    });
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

    /// Wraps a node process spawned elsewhere with piped stdin and stdout
    /// (tests that start nodes with other flags than [`Spec::spawn`]).
    pub fn adopt(mut child: Child) -> Self {
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        }
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

    /// Like [`Proc::ask`], but a node that died (its output closed) or did
    /// not answer within `timeout` is an `Err`, not a panic.
    pub async fn try_ask(&mut self, cmd: &str, timeout: Duration) -> Result<String, Gone> {
        let sent = async {
            self.stdin.write_all(format!("{cmd}\n").as_bytes()).await?;
            self.stdin.flush().await
        };
        if sent.await.is_err() {
            return Err(Gone::Closed);
        }
        self.try_next_line(timeout).await
    }

    /// The next line, or `Err` if the node died or stayed silent for
    /// `timeout`. `bye` (a graceful shutdown under way, after SIGTERM) is
    /// the end of the node's answers: `Closed`.
    pub async fn try_next_line(&mut self, timeout: Duration) -> Result<String, Gone> {
        match tokio::time::timeout(timeout, self.lines.next_line()).await {
            Err(_) => Err(Gone::Silent),
            Ok(Ok(Some(line))) if line == "bye" => Err(Gone::Closed),
            Ok(Ok(Some(line))) => Ok(line),
            Ok(_) => Err(Gone::Closed),
        }
    }

    /// SIGKILLs the process and reaps it (bounded).
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }
}

/// Why [`Proc::try_ask`] got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The process's output closed (it died or was killed).
    Closed,
    /// No answer within the timeout.
    Silent,
}

/// Certificates, ports and (optionally) data directories for `n` node
/// processes, so that each can be killed and started again as itself.
pub struct Spec {
    pub dir: tempfile::TempDir,
    pub ports: Vec<u16>,
    pub ttl: Duration,
    pub durable: bool,
    /// Each node's IP address (its certificate's SAN).
    pub hosts: Vec<String>,
    /// A command each node runs under (e.g. `ip netns exec NS`); empty: none.
    pub wrap: Vec<Vec<String>>,
    /// Extra flags every node gets (e.g. `--max-voters 3`).
    pub extra_args: Vec<String>,
    /// Per node: `Some(list)` starts it with `--seeds list` (it joins the
    /// running cluster); `None` with `--peers` naming every node whose
    /// entry is `None` (the founders).
    pub seeds: Vec<Option<String>>,
    /// Per node: `Some(name)` starts it with the certificate every node
    /// may share (`proc-shared`) and `--name name`; `None`: with its own
    /// certificate, named `proc-N`.
    pub shared_names: Vec<Option<String>>,
}

/// A UDP port free on 127.0.0.1 right now (bound and released).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP port free on 127.0.0.1 right now (bound and released).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port on 127.0.0.1")
        .port()
}

impl Spec {
    pub fn new(n: usize, ttl: Duration, durable: bool) -> Self {
        // Probe free ports: bind port 0 and release it.
        let ports = (0..n).map(|_| free_port()).collect();
        Self::with_hosts(vec!["127.0.0.1".to_owned(); n], ports, ttl, durable)
    }

    /// Nodes at the given addresses and ports (one each).
    pub fn with_hosts(hosts: Vec<String>, ports: Vec<u16>, ttl: Duration, durable: bool) -> Self {
        assert_eq!(hosts.len(), ports.len());
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = ClusterCa::generate("proc").expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.ca_pem()).expect("write ca");
        for (i, host) in hosts.iter().enumerate() {
            let name = format!("proc-{i}");
            let (cert, key) = ca.issue_node_pem(&name, &[host.as_str()]).expect("issue");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert).expect("write cert");
            std::fs::write(dir.path().join(format!("{name}.key")), key).expect("write key");
        }
        let mut sans: Vec<&str> = hosts.iter().map(String::as_str).collect();
        sans.sort_unstable();
        sans.dedup();
        let (cert, key) = ca.issue_node_pem("proc-shared", &sans).expect("issue");
        std::fs::write(dir.path().join("proc-shared.pem"), cert).expect("write cert");
        std::fs::write(dir.path().join("proc-shared.key"), key).expect("write key");
        let wrap = vec![Vec::new(); hosts.len()];
        let seeds = vec![None; hosts.len()];
        let shared_names = vec![None; hosts.len()];
        Self {
            dir,
            ports,
            ttl,
            durable,
            hosts,
            wrap,
            extra_args: Vec::new(),
            seeds,
            shared_names,
        }
    }

    /// Node `i`'s address as `host:port`.
    pub fn addr(&self, i: usize) -> String {
        format!("{}:{}", self.hosts[i], self.ports[i])
    }

    /// Node `i`'s data directory (used when `durable`).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("proc-{i}.data"))
    }

    /// The command that starts node `i`, its stdio not yet set.
    pub fn command(&self, i: usize) -> Command {
        let peers = (0..self.ports.len())
            .filter(|&j| self.seeds[j].is_none())
            .map(|j| self.addr(j))
            .collect::<Vec<_>>()
            .join(",");
        let d = self.dir.path();
        let name = match self.shared_names[i] {
            Some(_) => "proc-shared".to_owned(),
            None => format!("proc-{i}"),
        };
        let mut cmd = match self.wrap[i].split_first() {
            None => Command::new(node_bin()),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(node_bin());
                c
            }
        };
        let (flag, list) = match &self.seeds[i] {
            Some(seeds) => ("--seeds", seeds.as_str()),
            None => ("--peers", peers.as_str()),
        };
        cmd.args(["--listen", &self.addr(i), flag, list])
            .arg("--ca")
            .arg(d.join("ca.pem"))
            .arg("--cert")
            .arg(d.join(format!("{name}.pem")))
            .arg("--key")
            .arg(d.join(format!("{name}.key")))
            .args(["--ttl-ms", &self.ttl.as_millis().to_string()]);
        cmd.args(&self.extra_args);
        if let Some(name) = &self.shared_names[i] {
            cmd.args(["--name", name]);
        }
        if self.durable {
            cmd.arg("--data-dir").arg(self.data_dir(i));
        }
        cmd
    }

    /// Spawns node `i` (does not wait for it to be ready).
    pub fn spawn(&self, i: usize) -> Proc {
        let mut child = self
            .command(i)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        Proc {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Spawns every node and waits until each prints `ready`.
    pub async fn start_all(&self) -> Vec<Proc> {
        let mut procs: Vec<Proc> = (0..self.ports.len()).map(|i| self.spawn(i)).collect();
        for p in &mut procs {
            let line = p.next_line().await;
            assert!(line.starts_with("ready "), "unexpected first line {line:?}");
        }
        procs
    }
}

/// Starts `n` in-memory node processes with session TTL `ttl`.
pub async fn start(n: usize, ttl: Duration) -> (Spec, Vec<Proc>) {
    let spec = Spec::new(n, ttl, false);
    let procs = spec.start_all().await;
    (spec, procs)
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

/// Parses `leading NAME TOKEN` (the answer to `campaign NAME`).
pub fn leading_token(line: &str) -> u64 {
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        parts.first(),
        Some(&"leading"),
        "expected to lead: {line:?}"
    );
    parts[2].parse().expect("token")
}
