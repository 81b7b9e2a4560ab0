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
//! | `locks [LIMIT [AFTER]]` | `locks next=NAME|none NAME=lock|semaphore/N,waiters=N[,handoff][,HOLDER@TOKEN/AGE_MS]...`: a page of the names in use after AFTER (linearizable; LIMIT 1..=1000, default 100) |
//! | `members`      | `members NAME=voter|learner,live|silent,id=ID,addr=ADDR[,zone=ZONE] ...` (linearizable; ID in hex, as `status` prints the leader's) |
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
//! Operations (issue 12): `--metrics 127.0.0.1:9100` serves the metrics
//! catalog (`peerlock::metrics`) as Prometheus text on `GET /metrics`;
//! `--log json` writes one JSON object per event to stderr (`--log text`
//! by default), at the level `PEERLOCK_LOG` names (default `warn`). Every
//! flag can also be given as an environment variable, named in `--help`
//! (`PEERLOCK_LISTEN`, `PEERLOCK_PEERS`, ..).
//!
//! Certificates (issue 12): the node checks `--ca`, `--cert` and `--key`
//! every `--tls-poll-ms` (default 5000; 0: never) and, when they changed,
//! reloads them without a restart (`Node::reload_tls`), logging the result:
//! replace the files in place to rotate a certificate or roll a CA bundle.
//! Certificates expiring within `--cert-expiry-warning-days` (default 30)
//! are logged at `warn` and counted in the metrics.
//!
//! Membership flags (see the README's "Membership" section):
//! `--max-voters N` (the most members that vote: 1, 3, 5 or 7; default 5,
//! or 3 with fewer than 5 peers), `--dead-after-ms N` (a voter silent this long is replaced
//! by a learner; default 20 s or twice a longer TTL, never below the TTL),
//! `--stabilization-ms N` (how long a learner must have been live and
//! caught up before it is promoted; default 5 s). Either of the last two
//! given alone keeps the default of the other.

mod commands;
mod pem_watch;

/// The stdin commands, for `--help` (the module docs have the answers).
const COMMANDS: &str = "\
Commands on stdin, one per line (the answer is one line; errors are `error MESSAGE`):
  lock NAME [MS]         acquire (within MS ms), answers `granted NAME TOKEN`
  try NAME               `granted NAME TOKEN` or `busy NAME`
  unlock NAME            release, answers `released NAME`
  held NAME              whether this process's guard still holds
  holder NAME            the holder, its token and the waiters (linearizable)
  campaign NAME          lead the election NAME; `leading NAME`, `leader NAME`, `resign NAME`
  status                 role, term, leader id and name, applied index
  members                every member: voter or learner, live or silent, id, address, zone
  locks [LIMIT [AFTER]]  a page of the lock table (linearizable)
  quit                   graceful shutdown (SIGTERM does the same), answers `bye`";
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use peerlock::{MembershipConfig, Node, TlsConfig};

/// One peerlock peer, driven by a line protocol on stdin.
#[derive(Parser, Debug)]
#[command(version, args_override_self = true, after_help = COMMANDS)]
struct Args {
    /// This node's peerlock (UDP, QUIC) address.
    #[arg(long, env = "PEERLOCK_LISTEN")]
    listen: SocketAddr,
    /// Every founding peer's address, this node's included (found a cluster).
    #[arg(long, env = "PEERLOCK_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// Addresses of running members to join through (issue 9).
    #[arg(long, env = "PEERLOCK_SEEDS", value_delimiter = ',')]
    seeds: Vec<String>,
    /// With --seeds: form a cluster once N blank candidates see each other
    /// when none is running (1 alone: a one-node cluster).
    #[arg(long, env = "PEERLOCK_BOOTSTRAP_EXPECT")]
    bootstrap_expect: Option<usize>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "PEERLOCK_CA")]
    ca: PathBuf,
    /// This node's certificate (PEM).
    #[arg(long, env = "PEERLOCK_CERT")]
    cert: PathBuf,
    /// This node's private key (PEM).
    #[arg(long, env = "PEERLOCK_KEY")]
    key: PathBuf,
    /// Session TTL in milliseconds.
    #[arg(long, env = "PEERLOCK_TTL_MS", default_value_t = 10_000)]
    ttl_ms: u64,
    /// Lock delay in milliseconds after a holder's session expired.
    #[arg(long, env = "PEERLOCK_LOCK_DELAY_MS", default_value_t = 0)]
    lock_delay_ms: u64,
    /// Durable storage; without it the node keeps its log in memory.
    #[arg(long, env = "PEERLOCK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The most members that vote: 1, 3, 5 or 7 (default 5, or 3 with
    /// fewer than 5 peers); the others are learners.
    #[arg(long, env = "PEERLOCK_MAX_VOTERS")]
    max_voters: Option<usize>,
    /// A voter silent this long (ms) is replaced by a learner (default
    /// 20 s or twice a longer TTL).
    #[arg(long, env = "PEERLOCK_DEAD_AFTER_MS")]
    dead_after_ms: Option<u64>,
    /// How long (ms) a learner must be live and caught up before it is
    /// promoted (default 5 s).
    #[arg(long, env = "PEERLOCK_STABILIZATION_MS")]
    stabilization_ms: Option<u64>,
    /// This node's member name (default: the certificate's common name).
    #[arg(long, env = "PEERLOCK_NAME")]
    name: Option<String>,
    /// This node's failure zone, a hint for choosing voters.
    #[arg(long, env = "PEERLOCK_ZONE")]
    zone: Option<String>,
    /// false: a node the cluster removed exits with status 3 instead of
    /// joining again under a new id.
    #[arg(long, env = "PEERLOCK_REJOIN_WHEN_REMOVED", default_value_t = true, action = clap::ArgAction::Set)]
    rejoin_when_removed: bool,
    /// false: `quit` (and SIGTERM) stop this node without leaving the
    /// membership, for a node that comes back with its data directory
    /// (`NodeBuilder::leave_on_shutdown`).
    #[arg(long, env = "PEERLOCK_LEAVE_ON_SHUTDOWN", default_value_t = true, action = clap::ArgAction::Set)]
    leave_on_shutdown: bool,
    /// How often (ms) the CA, certificate and key files are checked for a
    /// change, which is reloaded without a restart (0: never).
    #[arg(long, env = "PEERLOCK_TLS_POLL_MS", default_value_t = 5_000)]
    tls_poll_ms: u64,
    /// Certificates expiring within this many days are logged and counted.
    #[arg(long, env = "PEERLOCK_CERT_EXPIRY_WARNING_DAYS", default_value_t = 30)]
    cert_expiry_warning_days: u64,
    /// Serve Prometheus text on http://ADDR/metrics.
    #[arg(long, env = "PEERLOCK_METRICS", value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// How events are written to stderr.
    #[arg(long, env = "PEERLOCK_LOG_FORMAT", value_enum, default_value_t)]
    log: telemetry::LogFormat,
}

/// Drops blanks and spaces from a comma-separated list (`a, b,` is `a,b`).
fn tidy(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    args.peers = tidy(args.peers);
    args.seeds = tidy(args.seeds);
    // The library checks the combinations with bootstrap_expect itself.
    if args.bootstrap_expect.is_none() && args.peers.is_empty() == args.seeds.is_empty() {
        let e = "give --peers (found a cluster), --seeds (join a running one, or form one with --bootstrap-expect N)";
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    telemetry::init_logs(args.log);
    if let Some(addr) = args.metrics {
        if let Err(e) = telemetry::serve_metrics(addr).await {
            eprintln!("error: --metrics {addr}: {e}");
            return ExitCode::from(2);
        }
    }
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

async fn run(args: Args) -> Result<(), peerlock::Error> {
    let tls = TlsConfig::from_pem_files(&args.ca, &args.cert, &args.key)?;
    let ttl = Duration::from_millis(args.ttl_ms);
    let mut builder = Node::builder()
        .listen(args.listen)
        .peers(args.peers)
        .seeds(args.seeds)
        .tls(tls)
        .session_ttl(ttl)
        .lock_delay(Duration::from_millis(args.lock_delay_ms))
        .cert_expiry_warning(Duration::from_secs(
            args.cert_expiry_warning_days.saturating_mul(86_400),
        ));
    builder = match &args.data_dir {
        Some(dir) => builder.data_dir(dir),
        None => builder.in_memory(),
    };
    if let Some(n) = args.bootstrap_expect {
        builder = builder.bootstrap_expect(n);
    }
    if let Some(n) = args.max_voters {
        builder = builder.max_voters(n);
    }
    if let Some(name) = args.name {
        builder = builder.name(name);
    }
    if let Some(zone) = args.zone {
        builder = builder.zone(zone);
    }
    builder = builder.leave_on_shutdown(args.leave_on_shutdown);
    let rejoin = args.rejoin_when_removed;
    let (dead_after, stabilization) = (args.dead_after_ms, args.stabilization_ms);
    if dead_after.is_some() || stabilization.is_some() || !rejoin {
        let defaults = MembershipConfig::default();
        builder = builder.membership(MembershipConfig {
            // The builder's own default when only stabilization is given.
            dead_after: dead_after.map_or_else(
                || ttl.saturating_mul(2).max(defaults.dead_after),
                Duration::from_millis,
            ),
            stabilization: stabilization.map_or(defaults.stabilization, Duration::from_millis),
            rejoin_when_removed: rejoin,
            ..defaults
        });
    }
    let node = builder.start().await?;
    if args.tls_poll_ms > 0 {
        pem_watch::spawn(
            node.clone(),
            [args.ca, args.cert, args.key],
            Duration::from_millis(args.tls_poll_ms),
        );
    }
    node.ready().await?;
    // A node the cluster removed (replaced while cut off, or an older copy
    // of its directory) starts again by itself under a new id; with
    // `--rejoin-when-removed false` it stops for good instead and, like
    // etcd's removed member, the process exits (status 3): its next start
    // joins as a new member.
    let mut status = node.watch_status();
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
    commands::say(&mut out, format!("ready {}", node.status().name)).await;
    commands::serve(&node, &mut out).await?;
    node.shutdown().await?;
    commands::say(&mut out, "bye".to_owned()).await;
    Ok(())
}
