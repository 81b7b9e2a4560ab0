//! CPU accounting for the scale benchmark: a runtime per node that records
//! its threads' ids, and their utime + stime from /proc (Linux only).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Runtime;

/// Linux reports thread CPU in clock ticks of 1/100 s on every common
/// configuration (`getconf CLK_TCK`).
pub const TICK: Duration = Duration::from_millis(10);

/// The calling thread's id, from the `/proc/thread-self` link
/// (`<pid>/task/<tid>`).
fn this_tid() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// One thread's CPU time (user + system), in ticks.
fn thread_ticks(tid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// This whole process's CPU time (every node and the clients), in ticks.
pub fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A node's own runtime and the ids of the threads it started.
pub struct NodeRuntime {
    pub rt: Runtime,
    tids: Arc<Mutex<Vec<u32>>>,
}

impl NodeRuntime {
    pub fn new(i: usize, threads: usize) -> Self {
        let tids = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&tids);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(format!("node-{i}"))
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

    /// CPU of every thread this runtime started, in ticks.
    pub fn ticks(&self) -> u64 {
        self.tids
            .lock()
            .iter()
            .filter_map(|&t| thread_ticks(t))
            .sum()
    }
}
