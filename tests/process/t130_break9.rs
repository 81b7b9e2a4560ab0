//! Issue 9 tried as a newcomer would, with `examples/node` processes
//! (helper break9, session 19): only the README, the crate docs and
//! `--help` were read. The first test pins what works; each finding
//! became a test that failed on the code it was found in (the fixed ones
//! are regression tests now; one still `#[ignore = "finding N: .."]`
//! fails today, see `tests/cluster/t130_break9_findings.rs`).

use std::time::{Duration, Instant};

use crate::members::{members_until, membership_args, wait_ready, Loaded, Members};
use crate::procs::{Gone, Proc, Spec};
use crate::workload::Shared;

const TTL: Duration = Duration::from_millis(1500);

/// `n` in-memory slots; slot `i` seeds only the next slot's address (a
/// ring: one seed each, as a newcomer writes them), with
/// `--bootstrap-expect 3` for every instance, founders and joiners alike
/// (a Kubernetes Deployment starts every pod the same way).
fn ring_spec(n: usize) -> Spec {
    let mut spec = Spec::new(n, TTL, false);
    for i in 0..n {
        spec.seeds[i] = Some(spec.addr((i + 1) % 3));
    }
    spec.extra_args = membership_args(Duration::from_secs(3), Duration::from_secs(1), None);
    spec.extra_args
        .extend(["--bootstrap-expect".to_owned(), "3".to_owned()]);
    spec
}

/// Starts slots 2, 1, 0 (in that order, `delay` apart) and waits for each
/// to print `ready`.
async fn start_ring(spec: &Spec, delay: Duration) -> Vec<(usize, Proc)> {
    let mut procs = Vec::new();
    for (k, i) in [2, 1, 0].into_iter().enumerate() {
        if k > 0 {
            tokio::time::sleep(delay).await;
        }
        procs.push((i, spec.spawn(i)));
    }
    for (i, p) in &mut procs {
        wait_ready(p, *i, Duration::from_secs(30)).await;
    }
    procs
}

/// What works (a, b, d, e, f) as processes: three instances with one seed
/// each, started in reverse order a second apart, found one cluster and
/// reach three live voters while a client on each contends for one lock;
/// a fourth started the same way (one seed, `--bootstrap-expect 3`) joins;
/// the leader, killed with SIGKILL a few seconds later, comes back blank
/// under a new id, and `members` converges to three live voters and four
/// members. The checker (fencing tokens rise, never two holders) is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_ring_seeds_join_and_blank_leader_restart_under_load() {
    let spec = ring_spec(4);
    let procs = start_ring(&spec, Duration::from_secs(1)).await;
    let shared = Shared::new(4, TTL);
    let mut c = Loaded {
        spec,
        shared,
        tasks: (0..4).map(|_| None).collect(),
        histories: Vec::new(),
        lock: "x".to_owned(),
    };
    for (i, p) in procs {
        c.adopt(i, p);
    }
    let bound = Duration::from_secs(15);
    members_until(&c.shared, &[0, 1, 2], bound, "three voters", |m| {
        m.live_voters_are(3)
    })
    .await;
    c.start_node(3, Duration::from_secs(20)).await;
    let (m, _) = members_until(&c.shared, &[3], bound, "the fourth joined", |m| {
        m.0.len() == 4 && m.live_voters_are(3) && m.0.iter().all(|x| x.live)
    })
    .await;
    // Finding 6: give the first promotion time to leave its joint change.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = crate::members::leader_now(&c.shared, bound).await;
    let old = m.of(leader).map(|x| x.id);
    c.kill(leader).await;
    let t0 = Instant::now();
    c.start_node(leader, Duration::from_secs(20)).await;
    let ask: Vec<usize> = (0..4).filter(|&i| i != leader).collect();
    let (m, took) = members_until(
        &c.shared,
        &ask,
        bound,
        "blank leader back",
        |m: &Members| {
            m.0.len() == 4 && m.live_voters_are(3) && m.0.iter().all(|x| Some(x.id) != old)
        },
    )
    .await;
    println!(
        "blank leader restart: {m} after {:?} ({took:?} polling)",
        t0.elapsed()
    );
    let report = c.finish("t130 ring seeds, join, blank leader", 30).await;
    assert!(report.violations.is_empty(), "{report}");
}

/// Finding 6 as processes: the founder killed as soon as `members` first
/// shows three live voters leaves the two others `PreCandidate` at term 1
/// for ever. Default timings (stabilization 5 s); failed 3 runs of 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_finding6_founder_killed_when_three_voters_show() {
    let mut spec = ring_spec(3);
    // The default timings, as a newcomer runs it (stabilization 5 s).
    spec.extra_args = vec!["--bootstrap-expect".to_owned(), "3".to_owned()];
    let mut procs = start_ring(&spec, Duration::ZERO).await;
    let t0 = Instant::now();
    let mut last = String::new();
    let mut three = false;
    while t0.elapsed() < Duration::from_secs(15) && !three {
        last = procs[0].1.ask("members").await;
        three = Members::parse(&last).is_some_and(|m| m.live_voters_are(3));
        if !three {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(three, "no three voters: {last}");
    let mut leader = None;
    for (k, (_, p)) in procs.iter_mut().enumerate() {
        if p.ask("status").await.starts_with("status Leader") {
            leader = Some(k);
        }
    }
    let k = leader.expect("a leader");
    let dead = format!("leader_name=proc-{}", procs[k].0);
    procs[k].1.kill9().await;
    procs.remove(k);
    let until = Instant::now() + Duration::from_secs(15);
    let mut status = String::new();
    while Instant::now() < until {
        status = procs[0].1.ask("status").await;
        if !status.contains("leader=none") && !status.contains(&dead) {
            return; // a new leader
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("two of three voters live, no leader for 15 s: {status} ({last})");
}

/// Finding 1 as processes: `--data-dir` of a one-node cluster (formed
/// with `--seeds <itself> --bootstrap-expect 1`, stopped with `quit`)
/// started with `--seeds` naming a member of a running cluster prints
/// `ready` as the leader of its old cluster and never appears in the
/// running cluster's `members`. Fixed (helper foreign): the process exits
/// with "cluster id mismatch", naming both clusters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_finding1_foreign_data_dir_with_seeds_is_refused() {
    let mut spec = Spec::new(4, TTL, true);
    for i in 0..3 {
        spec.seeds[i] = Some(spec.addr((i + 1) % 3));
    }
    spec.seeds[3] = Some(spec.addr(3));
    spec.extra_args = vec!["--bootstrap-expect".to_owned(), "1".to_owned()];
    let mut other = spec.spawn(3);
    wait_ready(&mut other, 3, Duration::from_secs(20)).await;
    assert!(other.ask("lock shared").await.starts_with("granted"));
    assert_eq!(other.ask("quit").await, "bye");
    other.kill9().await;
    spec.extra_args = vec!["--bootstrap-expect".to_owned(), "3".to_owned()];
    let mut procs = start_ring(&spec, Duration::ZERO).await;
    // The old directory, pointed at the running cluster.
    spec.seeds[3] = Some(spec.addr(0));
    spec.extra_args.clear();
    let mut stray = spec.spawn(3);
    let first = stray.try_next_line(Duration::from_secs(15)).await;
    let first = match first {
        Err(Gone::Closed) => return, // refused (the process exited): expected
        Err(Gone::Silent) => panic!("neither refused nor started within 15 s"),
        Ok(line) => line,
    };
    let status = stray.ask("status").await;
    let members = procs[0].1.ask("members").await;
    stray.kill9().await;
    assert!(
        members.contains("proc-3="),
        "{first:?}, {status:?}: not a member of the seeds' cluster: {members}"
    );
}

/// Finding 7 (low): `status` prints the leader's id in hex
/// (`leader=9edf13e66a7c7615`) while `members` prints ids in decimal
/// (`id=11447887359614152956`): a user cannot find the leader in the
/// member list by its id (only by `leader_name`, which two incarnations
/// of one name share after a blank restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_finding7_status_leader_id_is_found_in_members() {
    let spec = ring_spec(3);
    let mut procs = start_ring(&spec, Duration::ZERO).await;
    let p = &mut procs[0].1;
    let status = p.ask("status").await;
    let members = p.ask("members").await;
    let leader = status
        .split_whitespace()
        .find_map(|f| f.strip_prefix("leader="))
        .expect("status names a leader")
        .to_owned();
    assert!(
        members.contains(&format!("id={leader},")),
        "leader={leader} is not an id in {members:?}"
    );
}

/// Finding 8 (low, docs): `examples/node --help` says the node is "driven
/// by a line protocol on stdin" but lists none of its commands (`lock`,
/// `members`, `status`, `quit`, ...); they are only in the example's
/// source. The brief's newcomer needs `members` (issue 9's API section
/// names it) and has to read `examples/node/main.rs` to find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_finding8_help_lists_the_stdin_commands() {
    let out = tokio::process::Command::new(crate::procs::node_bin())
        .arg("--help")
        .output()
        .await
        .expect("run node --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["quit", "lock NAME", "holder NAME"] {
        assert!(help.contains(cmd), "--help does not mention {cmd:?}");
    }
}

/// Finding 2 as processes: a second process started with a live member's
/// certificate (`proc-1`) on another port and one seed. Expected: it
/// exits within 5 s, saying the name is in use, and the live `proc-1`
/// stays a voter under its id. Seen with default timings by hand: the
/// duplicate listed `learner,silent`, the live one logging "raft message
/// for another node; dropped" 10 times a second, and the duplicate exiting
/// after ~20 s with "no quorum ... check that they run and that the
/// network between them is open". With this test's short timings it exits
/// within 5 s, the live one kept, but with that same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t130_finding2_a_duplicate_name_process_is_refused_at_once() {
    let spec = ring_spec(3);
    let mut procs = start_ring(&spec, Duration::ZERO).await;
    let t0 = Instant::now();
    let mut before = None;
    while t0.elapsed() < Duration::from_secs(15) {
        let m = Members::parse(&procs[0].1.ask("members").await);
        if let Some(m) = m.filter(|m| m.live_voters_are(3)) {
            before = m.of(1).map(|x| x.id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live_id = before.expect("three voters");
    let port = crate::procs::free_port();
    let mut cmd = spec.command(1);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--seeds", &spec.addr(0)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn the duplicate");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut dup = Proc::adopt(child);
    let t0 = Instant::now();
    let mut first = dup.try_next_line(Duration::from_secs(5)).await;
    if let Ok(line) = &first {
        // It started: does it exit soon after?
        assert!(line.starts_with("ready"), "{line:?}");
        first = dup.try_next_line(Duration::from_secs(5)).await;
    }
    let exited_in = t0.elapsed();
    let members = procs[0].1.ask("members").await;
    dup.kill9().await;
    let mut err = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err),
    )
    .await;
    let error_line = err
        .lines()
        .rfind(|l| l.contains("error"))
        .unwrap_or_default();
    assert!(
        error_line.contains("proc-1"),
        "the duplicate's error does not name the name in use: {error_line:?}"
    );
    assert!(
        first.is_err()
            && exited_in < Duration::from_secs(5)
            && first != Err(crate::procs::Gone::Silent),
        "the duplicate did not exit within 5 s ({first:?} after {exited_in:?}); members: {members}"
    );
    assert!(
        Members::parse(&members).is_some_and(|m| m.by_id(live_id).is_some_and(|x| x.voter)),
        "the live proc-1 (id {live_id}) is no longer a voter: {members}"
    );
}
