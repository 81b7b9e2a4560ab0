//! The floor the goals of issue 10 are measured against, taken in the same
//! run as the workloads: the loopback QUIC round trip through two peerlock
//! transports (same TLS setup and frame codec as the nodes) and the disk's
//! 4 KiB write + fdatasync latency.
//!
//! One durable replicated commit needs at least one round trip to a
//! follower and one fsync there (the leader's own runs in parallel), so a U
//! pair (two commits) cannot beat 2 x (RTT + fsync), and a C hand-off (one
//! commit) cannot beat RTT + fsync.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use peerlock::certs::ClusterCa;
use peerlock_core::transport::{Incoming, PeerMessage, Transport};
use peerlock_core::types::{NodeId, SessionId};
use peerlock_transport::QuicTransport;
use tokio::sync::mpsc;

/// Round trip of a small request/answer between two peerlock transports on
/// 127.0.0.1: p50 and p99 in ms, over `samples` sequential exchanges.
pub async fn quic_rtt(samples: usize) -> Option<(f64, f64)> {
    let ca = ClusterCa::generate("rtt").ok()?;
    let names = ["rtt-a", "rtt-b"];
    let socks: Vec<UdpSocket> = (0..2)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .ok()?;
    let addrs: Vec<_> = socks.iter().filter_map(|s| s.local_addr().ok()).collect();
    let mut ends = Vec::new();
    for (sock, name) in socks.into_iter().zip(names) {
        let tls = ca.issue_node(name, &["127.0.0.1"]).ok()?;
        let (tx, rx) = mpsc::channel::<Incoming>(64);
        let t = QuicTransport::bind_socket(sock, None, &tls, addrs.clone(), tx).ok()?;
        ends.push((t, rx));
    }
    let (b, mut rx_b) = ends.pop()?;
    let (a, mut rx_a) = ends.pop()?;
    let (ka, kb) = (NodeId::from_name(names[0]), NodeId::from_name(names[1]));
    a.learn_peer(kb, names[1], addrs[1]);
    b.learn_peer(ka, names[0], addrs[0]);
    // B answers every keepalive: the smallest request/answer on the wire.
    let echo = {
        let b = b.clone();
        tokio::spawn(async move {
            while let Some(inc) = rx_b.recv().await {
                for m in inc.msgs {
                    if let PeerMessage::KeepAlive { session, seq } = m {
                        let ack = PeerMessage::KeepAliveAck {
                            session,
                            seq,
                            alive: true,
                        };
                        b.send(inc.from, vec![ack]);
                    }
                }
            }
        })
    };
    let mut seq = 0u64;
    // Connect (dial, handshake, preambles), then warm up.
    let mut connected = false;
    for _ in 0..100 {
        if ask(&a, kb, &mut rx_a, &mut seq, Duration::from_millis(200))
            .await
            .is_some()
        {
            connected = true;
            break;
        }
    }
    let mut lat = Vec::new();
    if connected {
        for _ in 0..50 {
            ask(&a, kb, &mut rx_a, &mut seq, Duration::from_secs(1)).await;
        }
        for _ in 0..samples {
            if let Some(ms) = ask(&a, kb, &mut rx_a, &mut seq, Duration::from_secs(1)).await {
                lat.push(ms);
            }
        }
    }
    echo.abort();
    a.close();
    b.close();
    (!lat.is_empty()).then(|| (pct(&mut lat, 0.5), pct(&mut lat, 0.99)))
}

/// One keepalive to `to` and its answer: the round trip in ms, if answered
/// within `timeout`.
async fn ask(
    a: &QuicTransport,
    to: NodeId,
    rx: &mut mpsc::Receiver<Incoming>,
    seq: &mut u64,
    timeout: Duration,
) -> Option<f64> {
    *seq += 1;
    let want = *seq;
    let t = Instant::now();
    a.send(
        to,
        vec![PeerMessage::KeepAlive {
            session: SessionId(1),
            seq: want,
        }],
    );
    let got = tokio::time::timeout(timeout, async {
        while let Some(inc) = rx.recv().await {
            if inc
                .msgs
                .iter()
                .any(|m| matches!(m, PeerMessage::KeepAliveAck { seq, .. } if *seq == want))
            {
                return true;
            }
        }
        false
    })
    .await;
    matches!(got, Ok(true)).then(|| t.elapsed().as_secs_f64() * 1e3)
}

/// 4 KiB write + fdatasync latency on the disk under `dir` (p50, p99 in ms).
/// With `pace`, each write waits that long after the last fsync: this
/// disk (ext4 on a shared virtual disk) often answers back-to-back fsyncs
/// in 4 ms steps while spaced ones, like the nodes' own, take 0.1-0.3 ms.
pub fn fsync_latency(dir: &std::path::Path, pace: Option<Duration>) -> (f64, f64) {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return (0.0, 0.0);
    };
    let block = [0u8; 4096];
    let mut lat = Vec::new();
    for _ in 0..200 {
        if let Some(p) = pace {
            std::thread::sleep(p);
        }
        let t = Instant::now();
        if f.write_all(&block).and_then(|()| f.sync_data()).is_err() {
            break;
        }
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_file(&path);
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// The floor of one run, and the goals of issue 10 derived from it.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    pub rtt_ms: f64,
    pub fsync_ms: f64,
}

impl Floor {
    /// One durable commit: round trip + fsync (ms).
    pub fn commit_ms(&self) -> f64 {
        self.rtt_ms + self.fsync_ms
    }
    /// A U pair: two commits in series (ms).
    pub fn pair_ms(&self) -> f64 {
        2.0 * self.commit_ms()
    }
    /// C's goal: 0.8 hand-offs per commit time (per second).
    pub fn c_goal(&self) -> f64 {
        0.8 * 1e3 / self.commit_ms()
    }
    /// In-memory: the same round trips, no fsync.
    pub fn mem_pair_ms(&self) -> f64 {
        2.0 * self.rtt_ms
    }
}

/// Measures and prints the floor (fsync under `dir`, QUIC round trip).
pub async fn measure(dir: &std::path::Path) -> Floor {
    let (b50, b99) = fsync_latency(dir, None);
    let (f50, f99) = fsync_latency(dir, Some(Duration::from_millis(1)));
    let (r50, r99) = quic_rtt(300).await.unwrap_or((0.0, 0.0));
    // The faster of the two: a floor that is never above what the disk did.
    let fsync_ms = f50.min(b50);
    let fl = Floor {
        rtt_ms: r50,
        fsync_ms,
    };
    println!(
        "floor: 4 KiB write+fdatasync p50 back-to-back {b50:.3} ms (p99 {b99:.3}), paced 1 ms {f50:.3} ms (p99 {f99:.3}); loopback QUIC round trip (two peerlock transports, mutual TLS) p50 {r50:.3} ms (p99 {r99:.3}); U pair 2 x (RTT + fsync) = {:.3} ms; C 0.8 / (RTT + fsync) = {:.0} /s",
        fl.pair_ms(),
        fl.c_goal()
    );
    fl
}

/// The median of each part over several measures.
pub fn median(floors: &[Floor]) -> Floor {
    let mut r: Vec<f64> = floors.iter().map(|f| f.rtt_ms).collect();
    let mut f: Vec<f64> = floors.iter().map(|f| f.fsync_ms).collect();
    Floor {
        rtt_ms: pct(&mut r, 0.5),
        fsync_ms: pct(&mut f, 0.5),
    }
}

/// This process's CPU time (user + system), from /proc (Linux only).
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in clock ticks of 1/100 s on every common configuration.
    Some(Duration::from_millis(ticks * 10))
}
