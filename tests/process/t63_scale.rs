//! Issue 9, P2: scale 3 → 9 → 3 across real processes. Three in-memory
//! `examples/node` processes found a cluster with `--seeds` (the three
//! addresses) and `--bootstrap-expect 3`, nothing else; six more join
//! through one seed address; the leader grows the voters 3 → 5 within
//! `stabilization` + 2 s of the last one being ready. Then the six get
//! SIGTERM at once (a scale-in): the cluster must end with 3 live voters
//! and a leader, and keep granting locks.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::procs::{node_bin, Gone, Proc, Spec};

const TTL: Duration = Duration::from_millis(1500);
const STABILIZATION: Duration = Duration::from_secs(2);
const DEAD_AFTER: Duration = Duration::from_secs(3);

/// Spawns node `i` of `spec` with `args` instead of `--peers`.
fn spawn(spec: &Spec, i: usize, args: &[String]) -> Proc {
    let d = spec.dir.path();
    let name = format!("proc-{i}");
    let child = Command::new(node_bin())
        .args(["--listen", &format!("127.0.0.1:{}", spec.ports[i])])
        .args(args)
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .arg("--cert")
        .arg(d.join(format!("{name}.pem")))
        .arg("--key")
        .arg(d.join(format!("{name}.key")))
        .args(["--ttl-ms", &TTL.as_millis().to_string()])
        .args([
            "--stabilization-ms",
            &STABILIZATION.as_millis().to_string(),
            "--dead-after-ms",
            &DEAD_AFTER.as_millis().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    Proc::adopt(child)
}

/// `members NAME=voter|learner,live|silent[,..] ...` → name → (voter, live).
fn parse_members(line: &str) -> Option<BTreeMap<String, (bool, bool)>> {
    let rest = line.strip_prefix("members ")?;
    let mut out = BTreeMap::new();
    for m in rest.split_whitespace() {
        let (name, state) = m.split_once('=')?;
        let mut parts = state.split(',');
        let voter = parts.next()? == "voter";
        let live = parts.next()? == "live";
        out.insert(name.to_owned(), (voter, live));
    }
    Some(out)
}

/// Asks `p` for the members until `ok` holds or `bound` passes; returns
/// the members and when `ok` first held.
async fn wait_members(
    p: &mut Proc,
    bound: Duration,
    ok: impl Fn(&BTreeMap<String, (bool, bool)>) -> bool,
) -> (BTreeMap<String, (bool, bool)>, Instant) {
    let until = Instant::now() + bound;
    let mut last = String::new();
    while Instant::now() < until {
        if let Ok(line) = p.try_ask("members", Duration::from_secs(3)).await {
            if let Some(m) = parse_members(&line) {
                if ok(&m) {
                    return (m, Instant::now());
                }
            }
            last = line;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("members did not get there within {bound:?}; last answer {last:?}");
}

fn live_voters(m: &BTreeMap<String, (bool, bool)>) -> usize {
    m.values().filter(|(v, l)| *v && *l).count()
}

fn voters(m: &BTreeMap<String, (bool, bool)>) -> usize {
    m.values().filter(|(v, _)| *v).count()
}

/// Founds 3 with `--bootstrap-expect 3` and scales out to 9 through one
/// seed address (checking the timings); the nine processes.
async fn scale_out(spec: &Spec) -> Vec<Proc> {
    let addr = |i: usize| format!("127.0.0.1:{}", spec.ports[i]);
    let founders_seeds = (0..3).map(addr).collect::<Vec<_>>().join(",");

    // Found: seeds and the expected count only.
    let t0 = Instant::now();
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| {
            spawn(
                spec,
                i,
                &[
                    "--seeds".into(),
                    founders_seeds.clone(),
                    "--bootstrap-expect".into(),
                    "3".into(),
                ],
            )
        })
        .collect();
    for p in &mut procs {
        let line = p.next_line().await;
        assert!(line.starts_with("ready "), "unexpected first line {line:?}");
    }
    let formed = t0.elapsed();
    let (m, at) = wait_members(&mut procs[0], Duration::from_secs(20), |m| {
        m.len() == 3 && live_voters(m) == 3 && voters(m) == 3
    })
    .await;
    eprintln!(
        "P2: 3 founders ready after {formed:?}, 3 live voters after {:?}: {m:?}",
        at - t0
    );

    // Scale out through one seed address.
    let seed = addr(1);
    let t1 = Instant::now();
    for i in 3..9 {
        procs.push(spawn(spec, i, &["--seeds".into(), seed.clone()]));
    }
    for p in &mut procs[3..] {
        let line = p.next_line().await;
        assert!(line.starts_with("ready "), "unexpected first line {line:?}");
    }
    let all_ready = Instant::now();
    let (m, at) = wait_members(&mut procs[0], Duration::from_secs(20), |m| {
        m.len() == 9 && live_voters(m) == 5 && voters(m) == 5 && m.values().all(|(_, l)| *l)
    })
    .await;
    let to_five = at.saturating_duration_since(all_ready);
    eprintln!(
        "P2: 6 joiners ready after {:?}; 5 live voters of 9 members {to_five:?} after the last was ready: {m:?}",
        all_ready - t1
    );
    assert!(
        to_five <= STABILIZATION + Duration::from_secs(2),
        "voters 3 → 5 took {to_five:?}, more than stabilization + 2 s"
    );
    let g = procs[7].ask("lock scaled").await;
    assert!(g.starts_with("granted scaled "), "{g}");
    let r = procs[7].ask("unlock scaled").await;
    assert!(r.starts_with("released"), "{r}");
    procs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t63_issue_9_scale_3_to_9_to_3_founded_with_bootstrap_expect() {
    let spec = Spec::new(9, TTL, false);
    let mut procs = scale_out(&spec).await;

    // Scale in: SIGTERM the six at once.
    let t2 = Instant::now();
    for p in &procs[3..] {
        p.signal("TERM");
    }
    for (i, p) in procs.iter_mut().enumerate().skip(3) {
        // A graceful stop says `bye`; either way its output closes.
        loop {
            match p.try_next_line(Duration::from_secs(30)).await {
                Ok(_) => continue,
                Err(Gone::Closed) => break,
                Err(Gone::Silent) => panic!("proc-{i} did not stop within 30 s of SIGTERM"),
            }
        }
    }
    let stopped = t2.elapsed();
    procs.truncate(3);
    let (m, at) = wait_members(&mut procs[0], Duration::from_secs(30), |m| {
        voters(m) == 3 && live_voters(m) == 3
    })
    .await;
    eprintln!(
        "P2: the six stopped {stopped:?} after SIGTERM; 3 live voters {:?} after it: {m:?}",
        at - t2
    );
    for name in m.iter().filter(|(_, (v, _))| *v).map(|(n, _)| n) {
        let i: usize = name
            .strip_prefix("proc-")
            .and_then(|s| s.parse().ok())
            .expect("a founder's name");
        assert!(i < 3, "a stopped node is still a voter: {m:?}");
    }
    // A leader, and locks still granted.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = procs[1].ask("status").await;
        if !s.contains("leader=none") {
            break;
        }
        assert!(Instant::now() < until, "no leader: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let g = procs[2].ask("lock after").await;
    assert!(g.starts_with("granted after "), "{g}");
    for p in &mut procs {
        let _ = p.try_ask("quit", Duration::from_secs(10)).await;
    }
}

/// P2's crash variant: the six newest are killed with SIGKILL at once
/// (two of the five voters among them, none told to leave). Three of five
/// voters live are a majority of both the old and the new voter set, so
/// after `dead_after` the voters shrink to the three founders, and the six
/// dead learners are removed (issue 9: 3 voters within `dead_after` + 2 s
/// of the kill; the removals follow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t64_issue_9_scale_in_by_crash_of_the_six_newest_leaves_three_voters() {
    let spec = Spec::new(9, TTL, false);
    let mut procs = scale_out(&spec).await;
    let (m, _) = wait_members(&mut procs[0], Duration::from_secs(10), |m| {
        m.len() == 9 && voters(m) == 5
    })
    .await;
    let newest_voters = m
        .iter()
        .filter(|(n, (v, _))| *v && !["proc-0", "proc-1", "proc-2"].contains(&n.as_str()))
        .count();
    let t2 = Instant::now();
    for p in &mut procs[3..] {
        p.kill9().await;
    }
    procs.truncate(3);
    let (m, at) = wait_members(&mut procs[0], DEAD_AFTER + Duration::from_secs(10), |m| {
        voters(m) == 3 && live_voters(m) == 3
    })
    .await;
    let took = at - t2;
    eprintln!("P2 crash: killed the six newest ({newest_voters} of them voters); 3 live voters {took:?} later: {m:?}");
    assert!(
        took <= DEAD_AFTER + Duration::from_secs(2),
        "3 voters only {took:?} after the kill (bound: dead_after + 2 s)"
    );
    let (m, gone) = wait_members(&mut procs[0], Duration::from_secs(10), |m| m.len() == 3).await;
    eprintln!(
        "P2 crash: the six removed {:?} after the kill: {m:?}",
        gone - t2
    );
    let g = procs[1].ask("lock after-crash").await;
    assert!(g.starts_with("granted after-crash "), "{g}");
    for p in &mut procs {
        let _ = p.try_ask("quit", Duration::from_secs(10)).await;
    }
}

/// The user trial of issue 9: `examples/node` watched SIGTERM only while
/// it read its input, so a `lock` waiting for its turn held a graceful stop
/// up (an orchestrator would kill the process before it left). SIGTERM
/// now ends the wait: the node shuts down and says `bye` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t66_issue_9_sigterm_stops_a_node_whose_lock_is_waiting() {
    let spec = Spec::new(2, TTL, false);
    let first = format!("127.0.0.1:{}", spec.ports[0]);
    let mut a = spawn(
        &spec,
        0,
        &[
            "--seeds".into(),
            first.clone(),
            "--bootstrap-expect".into(),
            "1".into(),
        ],
    );
    assert!(a.next_line().await.starts_with("ready "));
    let mut b = spawn(&spec, 1, &["--seeds".into(), first]);
    assert!(b.next_line().await.starts_with("ready "));
    let g = a.ask("lock held").await;
    assert!(g.starts_with("granted held "), "{g}");
    // b's lock waits behind a's (no answer expected yet).
    b.try_ask("lock held", Duration::from_millis(500))
        .await
        .expect_err("b's lock waits behind a's");
    let at = Instant::now();
    b.signal("TERM");
    let end = b.try_next_line(Duration::from_secs(15)).await;
    assert!(
        matches!(end, Err(Gone::Closed)),
        "b did not stop on SIGTERM while its lock waited: {end:?}"
    );
    let took = at.elapsed();
    eprintln!("t66: stopped {took:?} after SIGTERM with its lock waiting");
    assert!(took < Duration::from_secs(12), "took {took:?}");
    let _ = a.try_ask("quit", Duration::from_secs(10)).await;
}
