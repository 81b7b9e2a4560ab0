//! Shared setup of the membership process tests (issue 9): the node's
//! `members` answer parsed, bounded waits on it, and a cluster whose every
//! node runs a contending client (killed, restarted and judged as a whole).
//!
//! `members` answers come through each node's client between operations
//! (see [`Shared::members`]): a node's stdin serves one command at a time.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerlock_core::sim::check::Report;
use peerlock_core::sim::history::History;
use tokio::task::JoinHandle;

use crate::procs::{Gone, Proc, Spec};
use crate::workload::{contend, judge, Client, Shared};

/// One member as `members` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The process slot (`proc-N`); several members may share one: a blank
    /// restart joins under a new id with the same name.
    pub node: usize,
    pub id: u64,
    pub voter: bool,
    pub live: bool,
    pub addr: String,
}

/// A parsed `members proc-0=voter,live,id=0000000000000001,addr=127.0.0.1:7100 ...` line
/// (ids in hex, as `status` and the logs print them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members(pub Vec<Member>);

impl Members {
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("members ")?;
        let mut out = Vec::new();
        for m in rest.split_whitespace() {
            let (name, state) = m.split_once('=')?;
            let node: usize = name.strip_prefix("proc-")?.parse().ok()?;
            let mut fields = state.split(',');
            let voter = fields.next()? == "voter";
            let live = fields.next()? == "live";
            let (mut id, mut addr) = (None, None);
            for f in fields {
                match f.split_once('=') {
                    Some(("id", v)) => id = u64::from_str_radix(v, 16).ok(),
                    Some(("addr", v)) => addr = Some(v.to_owned()),
                    _ => {}
                }
            }
            out.push(Member {
                node,
                id: id?,
                voter,
                live,
                addr: addr?,
            });
        }
        out.sort_by_key(|m| (m.node, m.id));
        Some(Self(out))
    }

    /// The process slots of the voters, sorted (a slot twice if two of its
    /// incarnations vote, as in a joint configuration).
    pub fn voters(&self) -> Vec<usize> {
        self.0.iter().filter(|m| m.voter).map(|m| m.node).collect()
    }

    pub fn voter_ids(&self) -> BTreeSet<u64> {
        self.0.iter().filter(|m| m.voter).map(|m| m.id).collect()
    }

    /// The newest member (highest id) of process slot `node`.
    pub fn of(&self, node: usize) -> Option<&Member> {
        self.0
            .iter()
            .filter(|m| m.node == node)
            .max_by_key(|m| m.id)
    }

    pub fn by_id(&self, id: u64) -> Option<&Member> {
        self.0.iter().find(|m| m.id == id)
    }

    pub fn all_voters_live(&self) -> bool {
        self.0.iter().filter(|m| m.voter).all(|m| m.live)
    }

    /// Exactly `n` voters, all live.
    pub fn live_voters_are(&self, n: usize) -> bool {
        self.voter_ids().len() == n && self.all_voters_live()
    }
}

impl fmt::Display for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, m) in self.0.iter().enumerate() {
            let sep = if k == 0 { "" } else { " " };
            let role = if m.voter { "V" } else { "L" };
            let live = if m.live { "" } else { "(dead)" };
            write!(f, "{sep}{}#{}{role}{live}", m.node, m.id)?;
        }
        Ok(())
    }
}

/// The flags that make membership fast enough for a test: `dead_after`,
/// `stabilization`, and optionally `max_voters`.
pub fn membership_args(
    dead_after: Duration,
    stabilization: Duration,
    max_voters: Option<usize>,
) -> Vec<String> {
    let mut args = vec![
        "--dead-after-ms".to_owned(),
        dead_after.as_millis().to_string(),
        "--stabilization-ms".to_owned(),
        stabilization.as_millis().to_string(),
    ];
    if let Some(n) = max_voters {
        args.extend(["--max-voters".to_owned(), n.to_string()]);
    }
    args
}

/// Polls `members` on `ask` (nodes whose clients run) until `ok` holds;
/// the members then and how long it took, or a panic naming the last
/// answer after `bound`. Every answer is passed to `seen` first.
pub async fn members_until(
    shared: &Shared,
    ask: &[usize],
    bound: Duration,
    what: &str,
    ok: impl Fn(&Members) -> bool,
) -> (Members, Duration) {
    members_watch(shared, ask, bound, what, |_| {}, ok).await
}

/// [`members_until`], with every parsed answer shown to `seen` first.
pub async fn members_watch(
    shared: &Shared,
    ask: &[usize],
    bound: Duration,
    what: &str,
    mut seen: impl FnMut(&Members),
    ok: impl Fn(&Members) -> bool,
) -> (Members, Duration) {
    let start = Instant::now();
    let mut last = String::from("(no answer)");
    loop {
        if let Some((_, line)) = shared.members(ask, Duration::from_secs(3)).await {
            if let Some(m) = Members::parse(&line) {
                seen(&m);
                if ok(&m) {
                    return (m, start.elapsed());
                }
                last = m.to_string();
            } else {
                last = line;
            }
        }
        assert!(
            start.elapsed() < bound,
            "{what}: not within {bound:?}; last answer {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Samples the grant counter until `until`; the longest stretch without a
/// new grant, and how many were granted.
pub async fn watch_grants(shared: &Shared, until: Instant) -> (Duration, u64) {
    let first = shared.grants.load(Ordering::Relaxed);
    let (mut last, mut since, mut gap) = (first, Instant::now(), Duration::ZERO);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = shared.grants.load(Ordering::Relaxed);
        if now > last {
            (last, since) = (now, Instant::now());
        }
        gap = gap.max(since.elapsed());
    }
    (gap, last - first)
}

/// Waits until the clients granted `more` locks, bounded; how long it took.
pub async fn grants_after(shared: &Shared, more: u64, bound: Duration, what: &str) -> Duration {
    let from = shared.grants.load(Ordering::Relaxed);
    let start = Instant::now();
    while shared.grants.load(Ordering::Relaxed) < from + more {
        assert!(
            start.elapsed() < bound,
            "{what}: fewer than {more} grants within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// The node whose recent status says Leader in the highest term.
pub async fn leader_now(shared: &Shared, bound: Duration) -> usize {
    let start = Instant::now();
    loop {
        if let Some(l) = shared.leader(Duration::from_millis(1000)) {
            return l;
        }
        assert!(start.elapsed() < bound, "no leader known within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub type Task = JoinHandle<(Client, Option<Gone>)>;

/// Starts a client contending for `lock` on node `i` (hold up to 15 ms,
/// each acquire bounded by `ttl`).
pub fn spawn_client(shared: &Arc<Shared>, i: usize, p: Proc, lock: &str, ttl: Duration) -> Task {
    let c = Client::new(shared, i, p);
    tokio::spawn(contend(c, lock.to_owned(), ttl, Duration::from_millis(15)))
}

/// Waits (bounded) for a spawned node's `ready` line.
pub async fn wait_ready(p: &mut Proc, i: usize, bound: Duration) -> Duration {
    let start = Instant::now();
    let line = p
        .try_next_line(bound)
        .await
        .unwrap_or_else(|g| panic!("node {i} not ready within {bound:?}: {g:?}"));
    assert!(line.starts_with("ready "), "node {i}: {line:?}");
    start.elapsed()
}

/// A cluster of node processes, each with a client contending for one lock;
/// the histories of every client so far, for the checker.
pub struct Loaded {
    pub spec: Spec,
    pub shared: Arc<Shared>,
    pub tasks: Vec<Option<Task>>,
    pub histories: Vec<History>,
    pub lock: String,
}

impl Loaded {
    /// Starts `spec`'s nodes whose `seeds` is `None` (the founders), waits
    /// for each to be ready, and starts their clients. `slots` is how many
    /// nodes the test will ever run (joiners included).
    pub async fn start(spec: Spec, slots: usize) -> Self {
        let shared = Shared::new(slots, spec.ttl);
        let founders: Vec<usize> = (0..spec.ports.len())
            .filter(|&i| spec.seeds[i].is_none())
            .collect();
        let mut procs: Vec<(usize, Proc)> = founders.iter().map(|&i| (i, spec.spawn(i))).collect();
        for (i, p) in &mut procs {
            wait_ready(p, *i, Duration::from_secs(30)).await;
        }
        let mut tasks: Vec<Option<Task>> = (0..slots).map(|_| None).collect();
        for (i, p) in procs {
            tasks[i] = Some(spawn_client(&shared, i, p, "x", spec.ttl));
        }
        Self {
            spec,
            shared,
            tasks,
            histories: Vec::new(),
            lock: "x".to_owned(),
        }
    }

    /// The slots whose node runs.
    pub fn up(&self) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&i| self.tasks[i].is_some())
            .collect()
    }

    /// kill -9 of node `i`; its client's history is kept.
    pub async fn kill(&mut self, i: usize) {
        self.stop(i, "-KILL").await;
    }

    /// SIGTERM to node `i` (a graceful shutdown: its locks released, its
    /// membership left), and waits for it to exit; its client's history is
    /// kept.
    pub async fn terminate(&mut self, i: usize) {
        self.stop(i, "-TERM").await;
    }

    async fn stop(&mut self, i: usize, signal: &str) {
        let pid = {
            let mut views = self.shared.views.lock();
            views[i].up = false;
            views[i].holding = false;
            views[i].pid
        };
        let st = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {signal} {pid}");
        let task = self.tasks[i].take().expect("node runs");
        let (mut c, gone) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the killed node's client ends")
            .expect("client task");
        assert_eq!(gone, Some(Gone::Closed), "node {i} was killed");
        c.proc.kill9().await;
        self.histories.push(std::mem::take(&mut c.history));
    }

    /// Starts node `i` (from whatever its data directory holds), waits for
    /// `ready` within `bound`, starts its client; how long it took.
    pub async fn start_node(&mut self, i: usize, bound: Duration) -> Duration {
        let (p, took) = self.spawn_ready(i, bound).await;
        self.adopt(i, p);
        took
    }

    /// Starts node `i` with `extra` flags and waits (up to `bound`) for it
    /// to exit, without a client; its exit status (`None`: killed by a
    /// signal).
    pub async fn run_to_exit(&mut self, i: usize, extra: &[&str], bound: Duration) -> Option<i32> {
        let mut cmd = self.spec.command(i);
        cmd.args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn node");
        let status = tokio::time::timeout(bound, child.wait())
            .await
            .unwrap_or_else(|_| panic!("node {i} did not exit within {bound:?}"))
            .expect("wait for node");
        status.code()
    }

    /// Stops every client, kills every node, runs the checker over all the
    /// histories (at least `min_grants` grants).
    pub async fn finish(mut self, what: &str, min_grants: u64) -> Report {
        self.shared.stop.store(true, Ordering::Relaxed);
        for (i, t) in self.tasks.iter_mut().enumerate() {
            let Some(t) = t.take() else { continue };
            let (mut c, gone) = tokio::time::timeout(Duration::from_secs(40), t)
                .await
                .expect("clients stop")
                .expect("client task");
            assert_eq!(gone, None, "node {i}'s client failed: {gone:?}");
            self.histories.push(std::mem::take(&mut c.history));
            c.proc.kill9().await;
        }
        judge(
            what,
            std::mem::take(&mut self.histories),
            self.spec.ttl,
            min_grants,
        )
    }
}

/// When the clients' grant counter rose, sampled every 10 ms in the
/// background until the shared stop flag is set.
pub struct GrantLog {
    times: Arc<parking_lot::Mutex<Vec<Instant>>>,
}

impl GrantLog {
    pub fn start(shared: &Arc<Shared>) -> Self {
        let times = Arc::new(parking_lot::Mutex::new(vec![Instant::now()]));
        let (t, s) = (Arc::clone(&times), Arc::clone(shared));
        tokio::spawn(async move {
            let mut last = s.grants.load(Ordering::Relaxed);
            while !s.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let now = s.grants.load(Ordering::Relaxed);
                if now > last {
                    last = now;
                    t.lock().push(Instant::now());
                }
            }
        });
        Self { times }
    }

    /// The longest stretch without a grant between `from` and `to`.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let times = self.times.lock();
        let mut prev = from;
        let mut gap = Duration::ZERO;
        for &t in times.iter().filter(|t| **t > from && **t <= to) {
            gap = gap.max(t - prev);
            prev = t;
        }
        gap.max(to.saturating_duration_since(prev))
    }
}

/// The median of some durations.
pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

impl Loaded {
    /// Starts node `i` and waits for `ready`, without a client yet.
    pub async fn spawn_ready(&self, i: usize, bound: Duration) -> (Proc, Duration) {
        assert!(self.tasks[i].is_none(), "node {i} runs already");
        let mut p = self.spec.spawn(i);
        let took = wait_ready(&mut p, i, bound).await;
        (p, took)
    }

    /// Starts a client on node `i`'s process `p`.
    pub fn adopt(&mut self, i: usize, p: Proc) {
        self.tasks[i] = Some(spawn_client(&self.shared, i, p, &self.lock, self.spec.ttl));
    }
}

/// Starts node `i` with its output captured and waits (bounded) for it to
/// exit: a start that must be refused. Its exit status and stderr.
pub async fn refused_start(
    spec: &Spec,
    i: usize,
    bound: Duration,
) -> (std::process::ExitStatus, String) {
    let mut cmd = spec.command(i);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(bound, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("node {i}'s start was not refused within {bound:?}"))
        .expect("run node");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies directory `from` to `to` (files and subdirectories).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy file");
        }
    }
}
