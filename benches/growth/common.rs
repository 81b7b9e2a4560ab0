//! What every curve of the growth benchmark shares: its settings from the
//! environment. Each curve builds its own runtimes and clusters, so one
//! curve's leftovers (allocator, threads) do not skew the next.

/// The benchmark's settings.
pub struct Cfg {
    /// `PEERLOCK_BENCH_QUICK=1`, or run without `--bench` (as `cargo test
    /// --benches` does): smallest sizes, shortest windows.
    pub quick: bool,
    /// Measured window per point, seconds (`PEERLOCK_BENCH_SECS`, default 5; 1 when quick).
    pub secs: u64,
    /// Runs per point (`PEERLOCK_BENCH_RUNS`, default 3; 1 when quick).
    pub runs: usize,
}

/// A `u64` from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Cfg {
    pub fn from_env() -> Cfg {
        let quick = std::env::var("PEERLOCK_BENCH_QUICK").is_ok_and(|v| v != "0")
            || !std::env::args().any(|a| a == "--bench");
        Cfg {
            quick,
            secs: if quick {
                1
            } else {
                env_u64("PEERLOCK_BENCH_SECS", 5)
            },
            runs: if quick {
                1
            } else {
                env_u64("PEERLOCK_BENCH_RUNS", 3) as usize
            },
        }
    }
}
