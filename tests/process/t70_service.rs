//! `examples/service` as three processes over one database (issue 12,
//! item 4): concurrent deposits to all three, the holder of an account's
//! lock SIGSTOPped past its TTL inside its critical section (the
//! `?hold_ms=` test hook) and resumed, another SIGKILLed, and then an
//! audit of the database: every acknowledged deposit applied exactly once,
//! balances equal to the deposits applied, tokens rising in the order the
//! writes were accepted, and the paused holder's late write refused by the
//! fence.
//!
//! SQLite (a file in a temporary directory) always; PostgreSQL when
//! `PEERLOCK_TEST_DATABASE_URL` (or `DATABASE_URL`) is a `postgres://` URL,
//! else that test prints `SKIPPED` with the reason. `.ci/run` starts a
//! throwaway PostgreSQL and sets the variable.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::process::{Child, Command};

use crate::procs::Spec;

const TTL: Duration = Duration::from_millis(1500);
const ACCOUNTS: usize = 4;
const WORKERS: usize = 6;
/// Acknowledged deposits sent again after the load, to check idempotency.
const REPLAYS: usize = 20;
/// Every HTTP request is bounded by this.
const REQUEST: Duration = Duration::from_secs(15);

/// One scenario at a time: the SQLite and PostgreSQL runs would otherwise
/// share the two cores (six nodes) and slow each other's failovers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_service_pause_and_kill_audit_sqlite() {
    let _one = SERIAL.lock().await;
    let spec = Spec::new(3, TTL, true);
    let file = spec.dir.path().join("service.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    scenario(&spec, &url, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_service_pause_and_kill_audit_postgres() {
    let url = ["PEERLOCK_TEST_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
    let Some(url) = url else {
        println!(
            "SKIPPED: t70 on PostgreSQL (neither PEERLOCK_TEST_DATABASE_URL nor DATABASE_URL \
             is a postgres:// URL; .ci/run starts one)"
        );
        return;
    };
    let _one = SERIAL.lock().await;
    let spec = Spec::new(3, TTL, true);
    scenario(&spec, &url, "postgres").await;
}

/// The built `examples/service` binary, built once per run (the same
/// nested build as `examples/node`'s, without the variables cargo set for
/// this test, so it does not recompile ring's build script).
fn service_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    crate::procs::example_bin("service", &BUILT)
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port on 127.0.0.1")
        .port()
}

struct Svc {
    child: Child,
    base: String,
}

impl Svc {
    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }
}

fn spawn(spec: &Spec, i: usize, url: &str) -> Svc {
    let d = spec.dir.path();
    let peers = (0..3).map(|j| spec.addr(j)).collect::<Vec<_>>().join(",");
    let http = format!("127.0.0.1:{}", free_tcp_port());
    let child = Command::new(service_bin())
        .args([
            "--http",
            &http,
            "--listen",
            &spec.addr(i),
            "--peers",
            &peers,
        ])
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .arg("--cert")
        .arg(d.join(format!("proc-{i}.pem")))
        .arg("--key")
        .arg(d.join(format!("proc-{i}.key")))
        .arg("--data-dir")
        .arg(spec.data_dir(i))
        .args(["--ttl-ms", &TTL.as_millis().to_string()])
        .args(["--database", url, "--test-hooks", "--lock-wait-ms", "10000"])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn examples/service");
    Svc {
        child,
        base: format!("http://{http}"),
    }
}

/// Waits (bounded) until `GET /healthz` answers 200.
async fn healthy(http: &reqwest::Client, svc: &Svc) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = http.get(format!("{}/healthz", svc.base)).send().await;
        if matches!(&r, Ok(r) if r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{} never healthy", svc.base);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> (u16, Value) {
    match http.post(format!("{base}{path}")).json(&body).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}

/// One deposit the test sent, under one idempotency key.
struct Sent {
    key: String,
    account: String,
    amount: i64,
    acked: bool,
    refused: bool,
}

#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    duplicates: AtomicUsize,
    conflicts: AtomicUsize,
}

/// Which services the workers send to, and how many requests each has in
/// flight (so the one about to be paused can be drained first).
struct Targets {
    live: Mutex<Vec<usize>>,
    inflight: [AtomicUsize; 3],
}

impl Targets {
    fn pick(&self, n: usize) -> Option<usize> {
        let live = self.live.lock();
        let t = *live.get(n % live.len().max(1))?;
        self.inflight[t].fetch_add(1, Ordering::SeqCst);
        Some(t)
    }
    fn remove(&self, t: usize) {
        self.live.lock().retain(|&x| x != t);
    }
    async fn drain(&self, t: usize) {
        self.remove(t);
        let deadline = Instant::now() + REQUEST + Duration::from_secs(5);
        while self.inflight[t].load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "requests to {t} never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    w: usize,
    prefix: String,
    bases: Arc<Vec<String>>,
    http: reqwest::Client,
    targets: Arc<Targets>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 0..5_000usize {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let account = format!("{prefix}-acct-{}", (w + n) % ACCOUNTS);
        let key = format!("{prefix}-w{w}-{n}");
        let amount = 1 + ((w * 7 + n * 13) % 100) as i64;
        let mut s = Sent {
            key,
            account,
            amount,
            acked: false,
            refused: false,
        };
        // The same key up to three times, on other services after a
        // failure: a retry must never apply twice.
        for attempt in 0..3 {
            let Some(t) = targets.pick(w + n + attempt) else {
                break;
            };
            tally.requests.fetch_add(1, Ordering::SeqCst);
            let path = format!("/accounts/{}/deposit", s.account);
            let body = json!({"amount": s.amount, "key": s.key});
            let (code, v) = post(&http, &bases[t], &path, body).await;
            targets.inflight[t].fetch_sub(1, Ordering::SeqCst);
            match code {
                200 => {
                    s.acked = true;
                    if v["outcome"] == "duplicate" {
                        tally.duplicates.fetch_add(1, Ordering::SeqCst);
                    }
                    break;
                }
                409 => {
                    tally.conflicts.fetch_add(1, Ordering::SeqCst);
                    // A first attempt refused was not applied; a retry's
                    // refusal says nothing of the attempts before it.
                    s.refused = attempt == 0;
                    break;
                }
                400 | 404 | 422 => panic!("deposit {} refused as invalid: {code} {v}", s.key),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        sent.push(s);
    }
    sent
}

async fn scenario(spec: &Spec, url: &str, db: &str) {
    let started = Instant::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // A prefix of its own: a PostgreSQL database may hold earlier runs.
    let prefix = format!("t70-{nanos}");
    let http = reqwest::Client::builder()
        .timeout(REQUEST)
        .no_proxy()
        .build()
        .expect("HTTP client");
    let mut svcs: Vec<Svc> = (0..3).map(|i| spawn(spec, i, url)).collect();
    for s in &svcs {
        healthy(&http, s).await;
    }
    let ready_after = started.elapsed();
    let bases: Arc<Vec<String>> = Arc::new(svcs.iter().map(|s| s.base.clone()).collect());
    let targets = Arc::new(Targets {
        live: Mutex::new(vec![0, 1, 2]),
        inflight: Default::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(worker(
                w,
                prefix.clone(),
                bases.clone(),
                http.clone(),
                targets.clone(),
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    let load_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The pause: service 0 takes the lock of an account of its own and
    // sleeps inside its critical section (the test hook); it is stopped
    // there past its TTL, service 1 takes the lock and writes, and service
    // 0, resumed, writes with its old token: the fence must refuse it.
    targets.drain(0).await;
    let stale_acct = format!("{prefix}-stale");
    let path = format!("/accounts/{stale_acct}/deposit");
    let hold = TTL * 4;
    let late = {
        let (http, base) = (http.clone(), bases[0].clone());
        let path = format!("{path}?hold_ms={}", hold.as_millis());
        let key = format!("{prefix}-stale-late");
        tokio::spawn(async move {
            let body = json!({"amount": 1000, "key": key});
            post(&http, &base, &path, body).await
        })
    };
    let lock_url = format!("{}/accounts/{stale_acct}/lock", bases[1]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let first_token = loop {
        let v: Value = match http.get(&lock_url).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if v["holder"] == "proc-0" {
            break v["token"].as_u64().expect("token");
        }
        assert!(Instant::now() < deadline, "service 0 never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    svcs[0].signal("STOP");
    let stopped_at = Instant::now();
    let key = format!("{prefix}-stale-next");
    let (code, next) = post(&http, &bases[1], &path, json!({"amount": 7, "key": key})).await;
    assert_eq!(code, 200, "the next holder's deposit: {next}");
    let next_token = next["token"].as_u64().expect("token");
    assert!(next_token > first_token, "{first_token} -> {next_token}");
    tokio::time::sleep((TTL * 2).saturating_sub(stopped_at.elapsed())).await;
    let paused_for = stopped_at.elapsed();
    svcs[0].signal("CONT");
    let (code, refused) = tokio::time::timeout(REQUEST + hold, late)
        .await
        .expect("the paused holder answered")
        .expect("task");
    assert_eq!(code, 409, "the paused holder's late write: {refused}");
    assert_eq!(refused["token"].as_u64(), Some(first_token));
    healthy(&http, &svcs[0]).await;
    let acct: Value = http
        .get(format!("{}/accounts/{stale_acct}", bases[0]))
        .send()
        .await
        .expect("GET account")
        .json()
        .await
        .expect("account JSON");
    assert_eq!(acct["balance"], 7, "{acct}");
    assert_eq!(acct["fence"].as_u64(), Some(next_token), "{acct}");
    // The refusal shows in the paused service's metrics, beside peerlock's.
    let scrape = http
        .get(format!("{}/metrics", bases[0]))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    for want in [
        "service_deposits_total{outcome=\"stale\"} 1",
        "peerlock_locks_granted_total",
        "peerlock_applied_index",
    ] {
        assert!(scrape.contains(want), "/metrics lacks {want}:\n{scrape}");
    }
    targets.live.lock().push(0);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The kill: service 2 dies with requests in flight; they are retried
    // (same key) on the others, and the load goes on for a while.
    svcs[2].signal("KILL");
    targets.remove(2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for w in workers {
        sent.extend(
            tokio::time::timeout(REQUEST * 4, w)
                .await
                .expect("worker ends")
                .expect("worker"),
        );
    }
    let load_secs = load_from.elapsed().as_secs_f64();
    // Retries of acknowledged deposits (an answer lost on the way, a
    // client that gave up): each must be answered "duplicate" and change
    // nothing, whichever instance gets it.
    let mut replayed = 0;
    for (i, s) in sent.iter().filter(|s| s.acked).take(REPLAYS).enumerate() {
        let path = format!("/accounts/{}/deposit", s.account);
        let body = json!({"amount": s.amount, "key": s.key});
        let (code, v) = post(&http, &bases[i % 2], &path, body).await;
        assert_eq!(
            (code, &v["outcome"]),
            (200, &json!("duplicate")),
            "{}: {v}",
            s.key
        );
        replayed += 1;
    }
    for s in &mut svcs {
        let _ = s.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.child.wait()).await;
    }
    let audit = audit(url, &prefix, &sent, first_token).await;
    let acked = sent.iter().filter(|s| s.acked).count();
    println!(
        "t70 [{db}]: ready after {:.1} s; {:.1} s of load on 3 then 2 services: {} deposits \
         sent in {} requests, {acked} acknowledged ({} answered as duplicates of a retried key), {} not \
         acknowledged of which {} applied, {} refused with 409 under load, {replayed} \
         acknowledged ones sent again and answered duplicate; the paused holder stopped {:.1} s (TTL {} ms), its late write refused; {} refused stale writes in the \
         database; audit clean; {:.1} s in all",
        ready_after.as_secs_f64(),
        load_secs,
        sent.len(),
        tally.requests.load(Ordering::SeqCst),
        tally.duplicates.load(Ordering::SeqCst),
        sent.len() - acked,
        audit.applied_unacked,
        tally.conflicts.load(Ordering::SeqCst),
        paused_for.as_secs_f64(),
        TTL.as_millis(),
        audit.refused_rows,
        started.elapsed().as_secs_f64(),
    );
    assert!(acked > 20, "too little got through: {acked}");
    assert!(started.elapsed() < Duration::from_secs(55), "took too long");
}

struct Audit {
    applied_unacked: usize,
    refused_rows: usize,
}

/// Reads the database back and checks every promise.
async fn audit(url: &str, prefix: &str, sent: &[Sent], stale_token: u64) -> Audit {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("audit connects");
    let like = format!("{prefix}-%");
    let rows = sqlx::query(
        "SELECT idem_key, account, amount, token, seq FROM deposits WHERE account LIKE $1",
    )
    .bind(&like)
    .fetch_all(&pool)
    .await
    .expect("read deposits");
    // key -> (account, amount, token, seq); the key is the primary key, so
    // a deposit is recorded (and applied) at most once.
    let mut applied: HashMap<String, (String, i64, i64, i64)> = HashMap::new();
    for r in rows {
        let key: String = r.get(0);
        let v = (r.get(1), r.get(2), r.get(3), r.get(4));
        assert!(applied.insert(key.clone(), v).is_none(), "{key} twice");
    }
    let by_key: HashMap<&str, &Sent> = sent.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut applied_unacked = 0;
    for s in sent {
        let row = applied.get(&s.key);
        if s.acked {
            let row = row.unwrap_or_else(|| panic!("acknowledged {} not applied", s.key));
            assert_eq!((&row.0, row.1), (&s.account, s.amount), "{}", s.key);
        } else if row.is_some() {
            applied_unacked += 1;
        }
        if s.refused {
            assert!(row.is_none(), "{} answered 409 but applied", s.key);
        }
    }
    let stale_late = format!("{prefix}-stale-late");
    let stale_next = format!("{prefix}-stale-next");
    for (key, (_, amount, _, _)) in &applied {
        if *key == stale_next {
            assert_eq!(*amount, 7);
            continue;
        }
        let s = by_key
            .get(key.as_str())
            .unwrap_or_else(|| panic!("{key} applied but never sent"));
        assert_eq!(s.amount, *amount, "{key}");
    }
    assert!(
        !applied.contains_key(&stale_late),
        "the stale write applied"
    );
    assert!(applied.contains_key(&stale_next), "the next holder's write");

    let accounts = sqlx::query("SELECT id, balance, fence, writes FROM accounts WHERE id LIKE $1")
        .bind(&like)
        .fetch_all(&pool)
        .await
        .expect("read accounts");
    let mut fences: HashMap<String, i64> = HashMap::new();
    for a in accounts {
        let (id, balance, fence, writes): (String, i64, i64, i64) =
            (a.get(0), a.get(1), a.get(2), a.get(3));
        let mut mine: Vec<&(String, i64, i64, i64)> =
            applied.values().filter(|d| d.0 == id).collect();
        let sum: i64 = mine.iter().map(|d| d.1).sum();
        assert_eq!(balance, sum, "{id}: the balance is the deposits applied");
        let acked: i64 = sent
            .iter()
            .filter(|s| s.acked && s.account == id)
            .map(|s| s.amount)
            .sum();
        assert!(balance >= acked, "{id}: {balance} < acknowledged {acked}");
        assert_eq!(writes as usize, mine.len(), "{id}: one write per deposit");
        // In the order the database accepted them, the tokens rise: no
        // write with a token below an accepted one got in.
        mine.sort_by_key(|d| d.3);
        let seqs: Vec<i64> = mine.iter().map(|d| d.3).collect();
        assert_eq!(seqs, (1..=mine.len() as i64).collect::<Vec<_>>(), "{id}");
        for pair in mine.windows(2) {
            assert!(pair[0].2 < pair[1].2, "{id}: token fell {pair:?}");
        }
        assert!(
            mine.iter().all(|d| d.2 <= fence),
            "{id}: fence below a token"
        );
        fences.insert(id, fence);
    }
    for s in sent.iter().filter(|s| s.acked) {
        assert!(fences.contains_key(&s.account), "{} has no account", s.key);
    }

    let refused = sqlx::query(
        "SELECT idem_key, account, token, fence FROM refused_writes WHERE account LIKE $1",
    )
    .bind(&like)
    .fetch_all(&pool)
    .await
    .expect("read refused writes");
    let mut refused_keys = HashSet::new();
    for r in &refused {
        let (key, account, token, fence): (String, String, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert!(token < fence, "{key}: refused {token} but fence {fence}");
        assert!(token < fences[&account], "{key}: refused yet not stale");
        refused_keys.insert(key);
    }
    assert!(
        refused_keys.contains(&stale_late),
        "the paused holder's write is recorded as refused"
    );
    let stale_row = refused
        .iter()
        .find(|r| r.get::<String, _>(0) == stale_late)
        .expect("row");
    assert_eq!(stale_row.get::<i64, _>(2) as u64, stale_token);
    pool.close().await;
    Audit {
        applied_unacked,
        refused_rows: refused.len(),
    }
}
