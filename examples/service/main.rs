//! A bank-account HTTP service run as several instances, each embedding a
//! peerlock node, writing to one shared database with fenced transactions
//! (issue 12, item 4). See `examples/service/README.md`.
//!
//! ```text
//! cargo run --example certs -- ./certs svc-a svc-b svc-c
//! cargo run --release --example service -- --http 127.0.0.1:8080 \
//!     --listen 127.0.0.1:7100 --peers 127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102 \
//!     --ca certs/ca.pem --cert certs/svc-a.pem --key certs/svc-a.key \
//!     --data-dir ./svc-a.data --database sqlite://service.db?mode=rwc
//! ```
//!
//! Every deposit runs under `node.with_lock("account/{id}")` and writes in
//! one transaction that refuses a stale fencing token (`db.rs`); the
//! routes are in `http.rs`.

mod db;
mod http;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use peerlock::{Node, TlsConfig};

/// A fenced bank-account service over peerlock and SQL.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// HTTP address to serve on.
    #[arg(long, env = "SERVICE_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// This node's peerlock (UDP, QUIC) address.
    #[arg(long, env = "PEERLOCK_LISTEN")]
    listen: SocketAddr,
    /// Every founding peer's address, this node's included.
    #[arg(long, env = "PEERLOCK_PEERS", value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "PEERLOCK_CA")]
    ca: PathBuf,
    /// This node's certificate (PEM); its common name is the node's name.
    #[arg(long, env = "PEERLOCK_CERT")]
    cert: PathBuf,
    /// This node's private key (PEM).
    #[arg(long, env = "PEERLOCK_KEY")]
    key: PathBuf,
    /// Durable peerlock storage for this instance (one directory each).
    #[arg(long, env = "PEERLOCK_DATA_DIR")]
    data_dir: PathBuf,
    /// Session TTL in milliseconds: how long a paused or crashed instance
    /// keeps its locks.
    #[arg(long, env = "PEERLOCK_TTL_MS", default_value_t = 10_000)]
    ttl_ms: u64,
    /// How long a deposit waits for its account's lock, in milliseconds.
    #[arg(long, env = "SERVICE_LOCK_WAIT_MS", default_value_t = 10_000)]
    lock_wait_ms: u64,
    /// The database: `sqlite://FILE?mode=rwc` (one file shared by every
    /// instance on the host) or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://peerlock-service.db?mode=rwc"
    )]
    database: String,
    /// Honour test hooks (`?hold_ms=N` on a deposit). Never in production.
    #[arg(long, env = "SERVICE_TEST_HOOKS")]
    test_hooks: bool,
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
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // Before the node starts, so its metrics land here too.
    // Latencies as histograms with buckets (not the exporter's default
    // summaries), so Prometheus can aggregate them across instances.
    const SECONDS: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .install_recorder()?;
    peerlock::metrics::describe();
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        // Histograms drain on render; upkeep bounds them between scrapes.
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    let tls = TlsConfig::from_pem_files(&args.ca, &args.cert, &args.key)?;
    let node = Node::builder()
        .listen(args.listen)
        .peers(args.peers)
        .tls(tls)
        .data_dir(&args.data_dir)
        .session_ttl(Duration::from_millis(args.ttl_ms))
        .start()
        .await?;
    node.ready().await?;

    let pool = db::connect(&args.database)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    // Every instance runs the schema; one at a time (PostgreSQL's catalog
    // refuses two concurrent CREATE TABLE IF NOT EXISTS of one table).
    node.with_lock("service/schema", async |_| db::create_schema(&pool).await)
        .await??;

    let app = Arc::new(http::App {
        node: node.clone(),
        pool,
        prometheus,
        test_hooks: args.test_hooks,
        lock_wait: Duration::from_millis(args.lock_wait_ms),
    });
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    let http = listener.local_addr()?;
    tracing::info!("serving http://{http}");
    println!("ready {} http://{http}", node.status().name);
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(stop_signal())
        .await?;
    // Releases this instance's locks at once instead of after a TTL.
    node.shutdown().await?;
    Ok(())
}

/// SIGTERM (what an orchestrator sends) or Ctrl-C.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
