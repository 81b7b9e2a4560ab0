//! What the `clients`, `nodes` and `sessions` curves read from the process
//! and the kernel (Linux only; every reader returns `None` elsewhere):
//! per-thread CPU in nanoseconds, the process's CPU and RSS, the load
//! average, and the loopback interface's packet and byte counters.
//!
//! CPU per node: as `benches/scale.rs` does, each node runs on a tokio
//! runtime of its own that records its threads' ids as they start; a
//! node's CPU is the sum over those threads of the first field of
//! `/proc/self/task/<tid>/schedstat` (time on a CPU, in ns), which is finer
//! than the 10 ms ticks of `stat` and so can see an idle node's fraction of
//! a percent within a few seconds.
//!
//! Traffic: the loopback counters of `/proc/self/net/dev` count every
//! datagram of this network namespace: run the benchmark in a namespace of
//! its own (as root: `unshare -n sh -c 'ip link set lo up && cargo bench
//! --bench growth'`) to have them count this process alone.
//! [`private_netns`] says whether that is so, and the tables say it beside
//! every traffic figure.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Runtime;

/// The calling thread's id, from the `/proc/thread-self` link.
fn this_tid() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// One thread's time on a CPU, in ns.
fn thread_nanos(tid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// This whole process's CPU (user + system), from `/proc/self/stat` ticks
/// of 1/100 s.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// This process's resident set size, in MiB.
pub fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `/proc/loadavg`'s first three fields, for the tables' headers.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Loopback packets and bytes sent so far in this network namespace.
#[derive(Clone, Copy, Debug, Default)]
pub struct Net {
    pub packets: u64,
    pub bytes: u64,
}

impl Net {
    pub fn read() -> Option<Net> {
        let dev = std::fs::read_to_string("/proc/self/net/dev").ok()?;
        let line = dev.lines().find(|l| l.trim_start().starts_with("lo:"))?;
        let f: Vec<u64> = line
            .split_once(':')?
            .1
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // Receive: bytes packets errs drop fifo frame compressed multicast;
        // then transmit: bytes packets ...
        Some(Net {
            bytes: *f.get(8)?,
            packets: *f.get(9)?,
        })
    }

    pub fn since(self, before: Net) -> Net {
        Net {
            packets: self.packets.saturating_sub(before.packets),
            bytes: self.bytes.saturating_sub(before.bytes),
        }
    }
}

/// Whether this process's network namespace has no interface but `lo`
/// (as under `unshare -n`), so the loopback counters count only this
/// process and its children.
pub fn private_netns() -> bool {
    let Ok(dev) = std::fs::read_to_string("/proc/self/net/dev") else {
        return false;
    };
    let ifaces: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim())
        .collect();
    ifaces == ["lo"]
}

/// A node's own runtime and the ids of the threads it started.
pub struct NodeRuntime {
    pub rt: Runtime,
    tids: Arc<Mutex<Vec<u32>>>,
}

impl NodeRuntime {
    /// A runtime of `threads` workers; threads live an hour once started,
    /// so none exits (with its CPU figure) inside a window.
    pub fn new(name: &str, threads: usize) -> Self {
        let tids = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&tids);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .on_thread_start(move || {
                if let Some(tid) = this_tid() {
                    record.lock().push(tid);
                }
            })
            .build()
            .expect("node runtime");
        Self { rt, tids }
    }

    /// CPU of every thread this runtime started.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(
            self.tids
                .lock()
                .iter()
                .filter_map(|&t| thread_nanos(t))
                .sum(),
        )
    }
}
