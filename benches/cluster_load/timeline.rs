//! Where the time of one durable U pair goes: the driver emits trace events
//! on the target `peerlock::timeline` (propose, send, recv, written, fsync
//! start/end, persisted, apply, answer); this collects them with their
//! time and thread while a few pairs run, and prints the pair of median
//! length as a timeline. Only `PEERLOCK_BENCH_ONLY=timeline` installs the
//! collector, so the other workloads run with the events disabled.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const TARGET: &str = "peerlock::timeline";

struct Rec {
    at: Instant,
    thread: String,
    text: String,
}

#[derive(Clone, Default)]
struct Collector {
    on: Arc<AtomicBool>,
    recs: Arc<Mutex<Vec<Rec>>>,
}

struct Fields(String, String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Collector {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !self.on.load(Ordering::Relaxed) || event.metadata().target() != TARGET {
            return;
        }
        let at = Instant::now();
        let mut f = Fields(String::new(), String::new());
        event.record(&mut f);
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        self.recs.lock().push(Rec {
            at,
            thread,
            text: format!("{:<12}{}", f.0, f.1),
        });
    }
}

/// Runs `pairs` durable U pairs on the leader with the collector on and
/// prints the timeline of the pair of median length.
pub async fn run(base: &std::path::Path, pairs: usize) {
    let collector = Collector::default();
    let filter =
        tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::TRACE);
    let sub = tracing_subscriber::registry().with(collector.clone().with_filter(filter));
    if tracing::subscriber::set_global_default(sub).is_err() {
        println!("timeline: a tracing subscriber is already installed");
        return;
    }
    let dir = base.join("timeline");
    let nodes = super::cluster(Some(dir.as_path())).await;
    let leader = nodes
        .iter()
        .position(|n| n.status().is_leader())
        .unwrap_or(0);
    let node = &nodes[leader];
    // Warm up, unrecorded.
    for _ in 0..200 {
        if let Ok(g) = node.lock("t").await {
            let _ = g.unlock().await;
        }
    }
    let mut spans = Vec::new();
    for _ in 0..pairs {
        collector.recs.lock().clear();
        collector.on.store(true, Ordering::Relaxed);
        tracing::trace!(target: TARGET, "pair start");
        let t0 = Instant::now();
        let Ok(g) = node.lock("t").await else {
            continue;
        };
        tracing::trace!(target: TARGET, "acquired");
        let _ = g.unlock().await;
        let took = t0.elapsed();
        tracing::trace!(target: TARGET, "released");
        // Let the followers' trailing events (their applies) land.
        tokio::time::sleep(Duration::from_millis(5)).await;
        collector.on.store(false, Ordering::Relaxed);
        let recs = std::mem::take(&mut *collector.recs.lock());
        spans.push((took, recs));
    }
    spans.sort_by_key(|(t, _)| *t);
    let Some((took, recs)) = spans.get(spans.len() / 2) else {
        return;
    };
    let lo = spans.first().map_or(0.0, |s| s.0.as_secs_f64() * 1e3);
    let hi = spans.last().map_or(0.0, |s| s.0.as_secs_f64() * 1e3);
    println!(
        "\ntimeline of the median durable U pair of {} ({:.3} ms; range {lo:.3}-{hi:.3} ms), client on node {leader}:",
        spans.len(),
        took.as_secs_f64() * 1e3
    );
    let start = recs.first().map(|r| r.at);
    let mut last = start;
    for r in recs {
        let (Some(s), Some(l)) = (start, last) else {
            break;
        };
        println!(
            "  {:>8.1} µs (+{:>6.1})  {:<26} {}",
            (r.at - s).as_secs_f64() * 1e6,
            (r.at - l).as_secs_f64() * 1e6,
            r.thread,
            r.text
        );
        last = Some(r.at);
    }
    for n in &nodes {
        let _ = n.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
