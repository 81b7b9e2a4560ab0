//! Logs (`--log text|json`, filtered by `PEERLOCK_LOG`) and the Prometheus
//! endpoint (`--metrics ADDR`, issue 12, item 3).
//!
//! The endpoint is served by the `axum` already used by `examples/service`
//! and rendered by `metrics-exporter-prometheus`'s
//! [`PrometheusHandle::render`]: the exporter's own listener would bring a
//! second HTTP server stack (`hyper-util`'s auto server) for one route.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How `--log` writes events to stderr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for a log shipper.
    Json,
}

/// Logs to stderr at the level `PEERLOCK_LOG` names (default `warn`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEERLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: a file or a log shipper gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Latency buckets in seconds (0.5 ms .. 10 s): fsync, commit, round
/// trips, lock waits and holds all fall in this range, and buckets (not
/// the exporter's default summaries) let Prometheus aggregate across nodes
/// with `histogram_quantile`.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the Prometheus recorder (before the node starts, so every
/// metric lands in it), registers the catalog's help texts and serves
/// `GET /metrics` on `addr`. The listener is bound here, so a taken port
/// is an error at start, not a silent endpoint.
pub async fn serve_metrics(addr: SocketAddr) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .install_recorder()?;
    peerlock::metrics::describe();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        // Histograms drain on render; upkeep bounds them between scrapes.
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new().route("/metrics", get(move || render(handle.clone())));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}

async fn render(handle: PrometheusHandle) -> String {
    handle.render()
}
