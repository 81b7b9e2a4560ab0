//! Bridges raft-rs's `slog` output into `tracing`, so applications see one
//! log stream (target `peerlock::raft`).

use std::fmt::{self, Write as _};

use slog::{Drain, Level, OwnedKVList, Record, Serializer, KV};

/// The `tracing` target of the hot path's timeline events (trace level):
/// propose, send, receive, write, fsync, persisted, apply, answer. The
/// benchmark's `PEERLOCK_BENCH_ONLY=timeline` collects them to show where
/// one lock pair's time goes. A disabled trace event costs one cached
/// interest check, so the events stay in the production build.
pub const TIMELINE: &str = "peerlock::timeline";

/// A slog drain that re-emits every record as a tracing event.
pub(crate) struct TracingDrain;

struct KvToString(String);

impl Serializer for KvToString {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        // Nothing is formatted for a level nobody listens to: raft-rs logs
        // every membership change at info with the whole configuration, so
        // formatting it anyway cost O(members) on every node per change
        // (issue 10, curve 5).
        let enabled = match record.level() {
            Level::Critical | Level::Error => {
                tracing::enabled!(target: "peerlock::raft", tracing::Level::ERROR)
            }
            Level::Warning => tracing::enabled!(target: "peerlock::raft", tracing::Level::WARN),
            Level::Info => tracing::enabled!(target: "peerlock::raft", tracing::Level::INFO),
            Level::Debug => tracing::enabled!(target: "peerlock::raft", tracing::Level::DEBUG),
            Level::Trace => tracing::enabled!(target: "peerlock::raft", tracing::Level::TRACE),
        };
        if !enabled {
            return Ok(());
        }
        let mut kv = KvToString(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let msg = record.msg();
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "peerlock::raft", "{msg}{}", kv.0)
            }
            Level::Warning => tracing::warn!(target: "peerlock::raft", "{msg}{}", kv.0),
            Level::Info => tracing::info!(target: "peerlock::raft", "{msg}{}", kv.0),
            Level::Debug => tracing::debug!(target: "peerlock::raft", "{msg}{}", kv.0),
            Level::Trace => tracing::trace!(target: "peerlock::raft", "{msg}{}", kv.0),
        }
        Ok(())
    }
}

/// The logger handed to `RawNode`.
pub(crate) fn logger(node: &str) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("node" => node.to_owned()))
}
