//! One peerlock peer per process, driven by a small line protocol on stdin.
//!
//! ```text
//! cargo run --example certs -- ./certs node-a node-b node-c
//! cargo run --example node -- --listen 127.0.0.1:7100 \
//!     --peers 127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102 \
//!     --ca ./certs/ca.pem --cert ./certs/node-a.pem --key ./certs/node-a.key
//! ```
//!
//! Commands (one per line) and answers:
//!
//! | command        | answer                                              |
//! |----------------|-----------------------------------------------------|
//! | `lock NAME`    | `granted NAME TOKEN`                                |
//! | `lock NAME MS` | the same, or `error ..` if not granted within MS ms (`lock_timeout`) |
//! | `try NAME`     | `granted NAME TOKEN` or `busy NAME`                 |
//! | `unlock NAME`  | `released NAME`                                     |
//! | `held NAME`    | `held NAME true|false` (the guard's `is_held()`)    |
//! | `holder NAME`  | `holder NAME NODE TOKEN WAITERS` or `holder NAME none` |
//! | `campaign NAME` | `leading NAME TOKEN` once this process leads the election NAME |
//! | `leading NAME` | `leading NAME true|false` (the term's `is_leader()`) |
//! | `leader NAME`  | `leader NAME NODE TOKEN CANDIDATES` or `leader NAME none` (linearizable) |
//! | `resign NAME`  | `resigned NAME`                                     |
//! | `status`       | `status ROLE term=.. leader=ID leader_name=NAME applied=..` |
//! | `members`      | `members NAME=voter|learner,live|silent,id=ID,addr=ADDR[,zone=ZONE] ...` (linearizable) |
//! | `quit`         | graceful shutdown, then `bye` (SIGTERM does the same) |
//!
//! `--seeds ADDR,..` instead of `--peers` joins a running cluster through
//! any of those addresses (issue 9). With `--bootstrap-expect N` too, a
//! blank node that finds no cluster forms one once N blank candidates see
//! each other (`--bootstrap-expect 1` alone: a one-node cluster).
//!
//! `--rejoin-when-removed false`: a node the cluster removed exits with
//! status 3 instead of joining again under a new id by itself.
//!
//! `--name NAME`: this node's member name when every node is given the same
//! certificate (default: the certificate's common name); `--zone ZONE`: its
//! failure zone, a hint for choosing voters.
//!
//! Errors are answered `error MESSAGE`. On start it prints `ready NAME`.
//! Flags: `--ttl-ms N` (session TTL), `--lock-delay-ms N`, `--data-dir DIR`
//! (durable storage; without it the node keeps its log in memory).
//!
//! Membership flags (see the README's "Membership" section):
//! `--max-voters N` (how many members vote; default 5, or 3 with fewer
//! than 5 peers), `--dead-after-ms N` (a voter silent this long is replaced
//! by a learner; default 20 s or twice a longer TTL, never below the TTL),
//! `--stabilization-ms N` (how long a learner must have been live and
//! caught up before it is promoted; default 5 s). Either of the last two
//! given alone keeps the default of the other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use peerlock::{LockGuard, MemberRole, MembershipConfig, Node, TlsConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Args {
    listen: SocketAddr,
    peers: Vec<String>,
    seeds: Vec<String>,
    ca: String,
    cert: String,
    key: String,
    ttl: Duration,
    lock_delay: Duration,
    data_dir: Option<String>,
    max_voters: Option<usize>,
    dead_after: Option<Duration>,
    stabilization: Option<Duration>,
    name: Option<String>,
    zone: Option<String>,
    bootstrap_expect: Option<usize>,
    rejoin: bool,
}

const USAGE: &str = "usage: node --listen ADDR (--peers ADDR,ADDR,.. | --seeds ADDR,.. [--bootstrap-expect N] | --bootstrap-expect 1) --ca ca.pem --cert node.pem --key node.key [--ttl-ms N] [--lock-delay-ms N] [--data-dir DIR] [--max-voters N] [--dead-after-ms N] [--stabilization-ms N] [--name NAME] [--zone ZONE] [--rejoin-when-removed true|false]";

fn parse_args() -> Result<Args, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            return Err(format!("unexpected argument {flag:?}"));
        };
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        map.insert(name.to_owned(), value);
    }
    let mut take = |k: &str| map.remove(k).ok_or_else(|| format!("--{k} is required"));
    let listen = take("listen")?
        .parse()
        .map_err(|e| format!("--listen: {e}"))?;
    let (ca, cert, key) = (take("ca")?, take("cert")?, take("key")?);
    let list = |v: Option<String>| -> Vec<String> {
        v.map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    let peers = list(map.remove("peers"));
    let seeds = list(map.remove("seeds"));
    let bootstrap_expect = map
        .remove("bootstrap-expect")
        .map(|s| {
            s.parse::<usize>()
                .map_err(|e| format!("--bootstrap-expect: {e}"))
        })
        .transpose()?;
    // The library checks the combinations with bootstrap_expect itself.
    if bootstrap_expect.is_none() && peers.is_empty() == seeds.is_empty() {
        return Err("give --peers (found a cluster), --seeds (join a running one, or form one with --bootstrap-expect N)".into());
    }
    let ms = |v: Option<String>, default: u64| -> Result<Duration, String> {
        v.map_or(Ok(default), |s| {
            s.parse::<u64>().map_err(|e| format!("{e}"))
        })
        .map(Duration::from_millis)
    };
    let ttl = ms(map.remove("ttl-ms"), 10_000)?;
    let lock_delay = ms(map.remove("lock-delay-ms"), 0)?;
    let data_dir = map.remove("data-dir");
    let max_voters = map
        .remove("max-voters")
        .map(|s| s.parse::<usize>().map_err(|e| format!("--max-voters: {e}")))
        .transpose()?;
    let opt_ms = |v: Option<String>, flag: &str| -> Result<Option<Duration>, String> {
        v.map(|s| {
            s.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("--{flag}: {e}"))
        })
        .transpose()
    };
    let dead_after = opt_ms(map.remove("dead-after-ms"), "dead-after-ms")?;
    let stabilization = opt_ms(map.remove("stabilization-ms"), "stabilization-ms")?;
    let (name, zone) = (map.remove("name"), map.remove("zone"));
    let rejoin = map
        .remove("rejoin-when-removed")
        .map_or(Ok(true), |s| s.parse::<bool>())
        .map_err(|e| format!("--rejoin-when-removed: {e}"))?;
    if let Some(k) = map.keys().next() {
        return Err(format!("unknown flag --{k}"));
    }
    Ok(Args {
        listen,
        peers,
        seeds,
        ca,
        cert,
        key,
        ttl,
        lock_delay,
        data_dir,
        max_voters,
        dead_after,
        stabilization,
        name,
        zone,
        bootstrap_expect,
        rejoin,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let code = match run(args).await {
        Ok(()) => 0,
        // Removed before it was ready (an old disk of a removed member,
        // with --rejoin-when-removed false): etcd's removed member's status.
        Err(e @ peerlock::Error::Removed) => {
            eprintln!("error: {e}");
            3
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    // Exit here: after SIGTERM a blocking read of stdin may still be under
    // way, and dropping the runtime would wait for it (tokio's stdin).
    std::process::exit(code)
}

async fn say(out: &mut tokio::io::Stdout, line: String) {
    let _ = out.write_all(format!("{line}\n").as_bytes()).await;
    let _ = out.flush().await;
}

/// `lock NAME` waits as long as it takes; `lock NAME MS` at most MS ms.
async fn lock(node: &Node, name: &str, ms: Option<&str>) -> Result<LockGuard, String> {
    match ms {
        None => node.lock(name).await.map_err(|e| e.to_string()),
        Some(ms) => {
            let ms: u64 = ms.parse().map_err(|e| format!("bad timeout {ms:?}: {e}"))?;
            node.lock_timeout(name, Duration::from_millis(ms))
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn run(args: Args) -> Result<(), peerlock::Error> {
    let tls = TlsConfig::from_pem_files(&args.ca, &args.cert, &args.key)?;
    let builder = Node::builder()
        .listen(args.listen)
        .peers(args.peers)
        .seeds(args.seeds)
        .tls(tls);
    let builder = match &args.data_dir {
        Some(dir) => builder.data_dir(dir),
        None => builder.in_memory(),
    };
    let builder = match args.bootstrap_expect {
        Some(n) => builder.bootstrap_expect(n),
        None => builder,
    };
    let builder = match args.max_voters {
        Some(n) => builder.max_voters(n),
        None => builder,
    };
    let builder = match args.name {
        Some(name) => builder.name(name),
        None => builder,
    };
    let builder = match args.zone {
        Some(zone) => builder.zone(zone),
        None => builder,
    };
    let builder = if args.dead_after.is_some() || args.stabilization.is_some() || !args.rejoin {
        let defaults = MembershipConfig::default();
        builder.membership(MembershipConfig {
            // The builder's own default when only stabilization is given.
            dead_after: args
                .dead_after
                .unwrap_or_else(|| args.ttl.saturating_mul(2).max(defaults.dead_after)),
            stabilization: args.stabilization.unwrap_or(defaults.stabilization),
            rejoin_when_removed: args.rejoin,
            ..defaults
        })
    } else {
        builder
    };
    let node = builder
        .session_ttl(args.ttl)
        .lock_delay(args.lock_delay)
        .start()
        .await?;
    node.ready().await?;
    // A node the cluster removed (replaced while cut off, or an older copy
    // of its directory) starts again by itself under a new id; with
    // `--rejoin-when-removed false` it stops for good instead and, like
    // etcd's removed member, the process exits (status 3): its next start
    // joins as a new member.
    let mut status = node.watch_status();
    let rejoin = args.rejoin;
    tokio::spawn(async move {
        if rejoin {
            return;
        }
        if status
            .wait_for(|s| s.role == peerlock::Role::Removed)
            .await
            .is_ok()
        {
            eprintln!("error: {}", peerlock::Error::Removed);
            std::process::exit(3);
        }
    });
    let mut out = tokio::io::stdout();
    say(&mut out, format!("ready {}", node.status().name)).await;
    let mut guards: HashMap<String, LockGuard> = HashMap::new();
    let mut terms: HashMap<String, peerlock::Leadership> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // SIGTERM (what an orchestrator sends to stop an instance) shuts the
    // node down gracefully, as `quit` does.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(peerlock::Error::Io)?;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => line,
                _ => break,
            },
            _ = term.recv() => break,
        };
        let mut words = line.split_whitespace();
        let (cmd, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let arg = words.next();
        // A command runs while SIGTERM is watched too: a `lock` waiting
        // for its turn must not hold a graceful stop up (an orchestrator
        // would kill the process before it left).
        let work = async {
            let answer = match cmd {
                "lock" => match lock(&node, name, arg).await {
                    Ok(g) => {
                        let a = format!("granted {name} {}", g.token());
                        guards.insert(name.to_owned(), g);
                        a
                    }
                    Err(e) => format!("error {e}"),
                },
                "try" => match node.try_lock(name).await {
                    Ok(Some(g)) => {
                        let a = format!("granted {name} {}", g.token());
                        guards.insert(name.to_owned(), g);
                        a
                    }
                    Ok(None) => format!("busy {name}"),
                    Err(e) => format!("error {e}"),
                },
                "unlock" => match guards.remove(name) {
                    Some(g) => match g.unlock().await {
                        Ok(()) => format!("released {name}"),
                        Err(e) => format!("error {e}"),
                    },
                    None => format!("error this process holds no guard for {name:?}"),
                },
                "held" => format!(
                    "held {name} {}",
                    guards.get(name).is_some_and(|g| g.is_held())
                ),
                // Leader election (issue 11): `campaign` waits until this
                // process leads; `leading` is its local view; `leader` the
                // linearizable read; `resign` steps down.
                "campaign" => match node.campaign(name).await {
                    Ok(l) => {
                        let a = format!("leading {name} {}", l.token());
                        terms.insert(name.to_owned(), l);
                        a
                    }
                    Err(e) => format!("error {e}"),
                },
                "leading" => format!(
                    "leading {name} {}",
                    terms.get(name).is_some_and(|l| l.is_leader())
                ),
                "leader" => match node.leader(name).await {
                    Ok(Some(l)) => {
                        format!("leader {name} {} {} {}", l.holder, l.token, l.candidates)
                    }
                    Ok(None) => format!("leader {name} none"),
                    Err(e) => format!("error {e}"),
                },
                "resign" => match terms.remove(name) {
                    Some(l) => match l.resign().await {
                        Ok(()) => format!("resigned {name}"),
                        Err(e) => format!("error {e}"),
                    },
                    None => format!("error this process does not lead {name:?}"),
                },
                "holder" => match node.holder(name).await {
                    Ok(Some(i)) => format!("holder {name} {} {} {}", i.holder, i.token, i.waiters),
                    Ok(None) => format!("holder {name} none"),
                    Err(e) => format!("error {e}"),
                },
                "status" => {
                    let s = node.status();
                    format!(
                        "status {:?} term={} leader={} leader_name={} applied={}",
                        s.role,
                        s.term,
                        s.leader.map_or("none".to_owned(), |l| l.to_string()),
                        s.leader_name().map_or("none", |n| n.as_str()),
                        s.applied_index
                    )
                }
                "members" => match node.members().await {
                    Ok(members) => {
                        let list: Vec<String> = members
                            .iter()
                            .map(|m| {
                                let role = match m.role {
                                    MemberRole::Voter => "voter",
                                    _ => "learner",
                                };
                                let live = if m.live { "live" } else { "silent" };
                                let zone = m
                                    .zone
                                    .as_deref()
                                    .map(|z| format!(",zone={z}"))
                                    .unwrap_or_default();
                                format!(
                                    "{}={role},{live},id={},addr={}{zone}",
                                    m.name, m.id.0, m.addr
                                )
                            })
                            .collect();
                        format!("members {}", list.join(" "))
                    }
                    Err(e) => format!("error {e}"),
                },
                "quit" => return None,
                "" => return Some(None),
                other => format!("error unknown command {other:?}"),
            };
            Some(Some(answer))
        };
        let answer = tokio::select! {
            step = work => match step {
                None => break,
                Some(None) => continue,
                Some(Some(answer)) => answer,
            },
            _ = term.recv() => break,
        };
        say(&mut out, answer).await;
    }
    guards.clear();
    terms.clear();
    node.shutdown().await?;
    say(&mut out, "bye".to_owned()).await;
    Ok(())
}
