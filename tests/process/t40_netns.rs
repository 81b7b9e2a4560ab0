//! Network faults between node processes: each of 3 nodes runs in its own
//! network namespace, joined by veth links to a bridge in a hub namespace
//! (nothing in the root namespace changes), on 10.77.0.0/16. nftables rules
//! inside the node namespaces cut links while a client on every node
//! contends for one lock: the leader isolated, a minority/majority split, a
//! one-way partition, random loss. After each heal the cluster must grant
//! again within a bound, and the merged history must pass the checker.
//!
//! Needs root, `ip netns` and `nft` (`.ci/netns-setup` installs nftables).
//! Without them the test prints `SKIPPED: <reason>` to the raw stderr (not
//! captured by the test harness) and returns.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::procs::{Gone, Proc, Spec};
use crate::workload::{contend, judge, Acquire, Client, Shared};

const TTL: Duration = Duration::from_millis(1500);
const NODES: usize = 3;
const PORT: u16 = 7100;
const LOCK: &str = "x";
/// How long a fault lasts: past the TTL twice, so sessions expire and a
/// new leader is elected on the majority side.
const FAULT: Duration = Duration::from_millis(4500);
/// After a heal, the survivors must grant again within this.
const HEAL_BOUND: Duration = Duration::from_secs(10);

pub fn ip_of(i: usize) -> String {
    format!("10.77.0.{}", i + 1)
}

/// Runs a command; its stdout, or an error naming it with its stderr.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{}` could not run: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Namespaces and the processes in them; all removed on drop (also when the
/// test panics).
pub struct Netns {
    pub hub: String,
    pub nodes: Vec<String>,
    pub pids: Arc<Mutex<Vec<u32>>>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids.lock().drain(..) {
            let _ = run(&["kill", "-KILL", &pid.to_string()]);
        }
        for ns in self.nodes.iter().chain([&self.hub]) {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

impl Netns {
    fn exec(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", self.nodes[i].as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    fn nft(&self, i: usize, cmd: &str) {
        self.exec(i, &["nft", cmd]).unwrap();
    }

    /// Creates the hub with its bridge, and one namespace per node linked to it.
    pub fn create(prefix: &str, n: usize) -> Result<Self, String> {
        let net = Netns {
            hub: format!("{prefix}h"),
            nodes: (0..n).map(|i| format!("{prefix}n{i}")).collect(),
            pids: Arc::new(Mutex::new(Vec::new())),
        };
        let hub = net.hub.as_str();
        run(&["ip", "netns", "add", hub])?;
        run(&["ip", "-n", hub, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", hub, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", hub, "link", "set", "br0", "up"])?;
        for (i, ns) in net.nodes.iter().enumerate() {
            let (e, h) = (format!("e{i}"), format!("h{i}"));
            run(&["ip", "netns", "add", ns])?;
            run(&[
                "ip", "-n", hub, "link", "add", &e, "type", "veth", "peer", "name", &h,
            ])?;
            run(&["ip", "-n", hub, "link", "set", &e, "netns", ns])?;
            run(&["ip", "-n", hub, "link", "set", &h, "master", "br0"])?;
            run(&["ip", "-n", hub, "link", "set", &h, "up"])?;
            let addr = format!("{}/16", ip_of(i));
            run(&["ip", "-n", ns, "addr", "add", &addr, "dev", &e])?;
            run(&["ip", "-n", ns, "link", "set", &e, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            net.exec(i, &["nft", "add table inet plk"])?;
            net.exec(
                i,
                &[
                    "nft",
                    "add chain inet plk input { type filter hook input priority 0; policy accept; }",
                ],
            )?;
        }
        Ok(net)
    }

    /// Drops everything node `to` receives from node `from`.
    fn cut_oneway(&self, from: usize, to: usize) {
        self.nft(
            to,
            &format!("add rule inet plk input ip saddr {} drop", ip_of(from)),
        );
    }

    fn cut(&self, a: usize, b: usize) {
        self.cut_oneway(a, b);
        self.cut_oneway(b, a);
    }

    pub fn isolate(&self, i: usize) {
        for j in (0..self.nodes.len()).filter(|&j| j != i) {
            self.cut(i, j);
        }
    }

    /// Every node drops `pct` % of what it receives from the others.
    fn loss(&self, pct: u32) {
        for i in 0..self.nodes.len() {
            self.nft(
                i,
                &format!(
                    "add rule inet plk input ip saddr 10.77.0.0/16 numgen random mod 100 < {pct} drop"
                ),
            );
        }
    }

    pub fn heal(&self) {
        for i in 0..self.nodes.len() {
            self.nft(i, "flush chain inet plk input");
        }
    }
}

/// Runs every node of `spec` in its namespace of `net` (recorded for
/// cleanup) and waits until each is ready.
pub async fn start_in(net: &Netns, spec: &mut Spec) -> Vec<Proc> {
    for (i, ns) in net.nodes.iter().enumerate() {
        spec.wrap[i] = ["ip", "netns", "exec", ns.as_str()]
            .map(str::to_owned)
            .to_vec();
    }
    let mut procs = Vec::new();
    for i in 0..net.nodes.len() {
        let p = spec.spawn(i);
        net.pids.lock().push(p.pid());
        procs.push(p);
    }
    for (i, p) in procs.iter_mut().enumerate() {
        let line = p
            .try_next_line(Duration::from_secs(60))
            .await
            .unwrap_or_else(|g| panic!("node {i} in its namespace never got ready: {g:?}"));
        assert!(line.starts_with("ready "), "node {i}: {line:?}");
    }
    procs
}

/// Why this machine cannot run the test, if it cannot.
pub fn missing_capability(prefix: &str) -> Option<String> {
    match run(&["id", "-u"]) {
        Ok(uid) if uid.trim() == "0" => {}
        Ok(uid) => return Some(format!("not root (uid {})", uid.trim())),
        Err(e) => return Some(e),
    }
    if let Err(e) = run(&["ip", "-V"]) {
        return Some(format!("iproute2 `ip` is missing: {e}"));
    }
    if let Err(e) = run(&["nft", "--version"]) {
        return Some(format!("`nft` is missing (run .ci/netns-setup): {e}"));
    }
    let probe = format!("{prefix}probe");
    if let Err(e) = run(&["ip", "netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    let table = run(&["ip", "netns", "exec", &probe, "nft", "add table inet probe"]);
    let _ = run(&["ip", "netns", "del", &probe]);
    if let Err(e) = table {
        return Some(format!(
            "cannot create an nftables table in a namespace: {e}"
        ));
    }
    None
}

/// Removes namespaces left by earlier runs whose process is gone.
pub fn remove_stale() {
    let Ok(list) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("plk") else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

fn skip(reason: &str) {
    // The raw stderr: the harness captures print macros, not this.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: t40_netns_partitions_and_loss: {reason}"
    );
}

type Task = JoinHandle<(Client, Option<Gone>)>;

/// Waits until the clients granted `more` locks beyond `from`, bounded.
async fn grants_resume(shared: &Shared, from: u64, more: u64, what: &str) -> Duration {
    let start = Instant::now();
    while shared.grants.load(Ordering::Relaxed) < from + more {
        assert!(
            start.elapsed() < HEAL_BOUND,
            "no grants within {HEAL_BOUND:?} after {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_netns_partitions_and_loss() {
    let prefix = format!("plk{}", std::process::id());
    if let Some(reason) = missing_capability(&prefix) {
        skip(&reason);
        return;
    }
    remove_stale();
    let net = match Netns::create(&prefix, NODES) {
        Ok(n) => n,
        Err(e) => panic!("setting up namespaces failed: {e}"),
    };
    let started = Instant::now();

    let mut spec = Spec::with_hosts(
        (0..NODES).map(ip_of).collect(),
        vec![PORT; NODES],
        TTL,
        true,
    );
    let procs = start_in(&net, &mut spec).await;

    let shared = Shared::new(NODES, TTL);
    let tasks: Vec<Task> = procs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let c = Client::new(&shared, i, p);
            tokio::spawn(contend(c, LOCK.to_owned(), TTL, Duration::from_millis(15)))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fresh = Duration::from_millis(500);
    let leader_now = || async {
        let start = Instant::now();
        loop {
            if let Some(l) = shared.leader(fresh) {
                return l;
            }
            assert!(start.elapsed() < HEAL_BOUND, "no leader known");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    // The isolated node of the first two faults is made to hold the lock
    // and stall inside its critical section (a paused application) until
    // the other side granted it again; then it probes and writes with its
    // old token, which the resource must refuse.
    let faults = [
        "isolate the leader, stalled holding the lock",
        "split: a minority of one follower, stalled holding the lock",
        "one-way: the leader's packets to the others dropped",
        "25 % random loss on every link",
    ];
    for fault in faults {
        let leader = leader_now().await;
        let stalled = fault.contains("stalled");
        let victim = if fault.starts_with("split") {
            (leader + 1) % NODES
        } else {
            leader
        };
        if stalled {
            shared.views.lock()[victim].stall = true;
            let start = Instant::now();
            while !shared.views.lock()[victim].stalled {
                assert!(
                    start.elapsed() < HEAL_BOUND,
                    "node {victim} never got the lock"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let before = shared.grants.load(Ordering::Relaxed);
        match fault {
            f if f.starts_with("isolate") || f.starts_with("split") => net.isolate(victim),
            f if f.starts_with("one-way") => {
                for j in (0..NODES).filter(|&j| j != leader) {
                    net.cut_oneway(leader, j);
                }
            }
            _ => net.loss(25),
        }
        let fault_at = Instant::now();
        tokio::time::sleep(FAULT).await;
        if stalled {
            // The majority side must have granted the lock meanwhile.
            grants_resume(&shared, before, 1, fault).await;
            shared.views.lock()[victim].stall = false;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let during = shared.grants.load(Ordering::Relaxed) - before;
        let lasted = fault_at.elapsed();
        net.heal();
        let at_heal = shared.grants.load(Ordering::Relaxed);
        let resumed = grants_resume(&shared, at_heal, 3, fault).await;
        println!(
            "t40: {fault} (node {victim}; leader was {leader}) for {lasted:?}: {during} grants meanwhile; healed, 3 more grants within {resumed:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Final liveness: stop the load, then every node acquires the lock
    // within the bound.
    shared.stop.store(true, Ordering::Relaxed);
    let mut parts = Vec::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (mut c, gone) = tokio::time::timeout(Duration::from_secs(40), t)
            .await
            .expect("clients stop")
            .expect("client task");
        assert_eq!(gone, None, "node {}'s client failed: {gone:?}", c.node);
        parts.push(std::mem::take(&mut c.history));
        clients.push(c);
    }
    for c in &mut clients {
        let start = Instant::now();
        let out = c
            .critical_section(LOCK, Acquire::Lock(HEAL_BOUND), Duration::ZERO)
            .await
            .expect("node answers");
        assert!(
            matches!(out, peerlock_core::sim::history::Outcome::Granted { .. }),
            "node {} could not acquire after healing: {out:?}",
            c.node
        );
        println!(
            "t40: node {} acquired after healing in {:?}",
            c.node,
            start.elapsed()
        );
    }
    for mut c in clients {
        parts.push(std::mem::take(&mut c.history));
        c.proc.kill9().await;
    }
    let report = judge("t40 netns", parts, TTL, 50);
    println!("t40: done in {:?}", started.elapsed());
    assert!(
        report.stats.stale_writes_refused >= 2,
        "both stalled, isolated holders wrote with a stale token: {:?}",
        report.stats
    );
    drop(net);
}
