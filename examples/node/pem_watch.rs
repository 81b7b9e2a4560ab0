//! Certificate rotation without a restart (issue 12, item 5): the node
//! watches its three PEM files and reloads them (`Node::reload_tls`) when
//! they change, logging the result.
//!
//! Polling the files' modification time and size every few seconds
//! (`--tls-poll-ms`, default 5 s) is plain, portable, and bounded: one
//! `stat` per file per poll, and a reload only after a change. Tools replace
//! the files one at a time (cert-manager writes a Secret's keys together,
//! but a volume may show them a moment apart), so a change is loaded once
//! it has stood still for one poll, and a set that does not load (a new
//! certificate beside the old key) is logged once and tried again at the
//! next change, keeping the running configuration meanwhile.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use peerlock::{Node, TlsConfig};

/// What one file looked like at a poll: modification time and length;
/// `None` when it could not be read.
type Stamp = Option<(SystemTime, u64)>;

/// The three files' stamps.
type Stamps = [Stamp; 3];

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// What to do after a poll (a pure rule, tested below).
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing changed since the last load or attempt.
    Wait,
    /// A change that has not stood still for a poll yet.
    Settle,
    /// Load and reload now.
    Load,
}

/// The watcher's memory: the stamps of the last load (or failed attempt),
/// and of the previous poll.
#[derive(Debug)]
struct Watch {
    tried: Stamps,
    previous: Stamps,
}

impl Watch {
    fn new(now: Stamps) -> Self {
        Self {
            tried: now,
            previous: now,
        }
    }

    /// The rule: load a set of files that differs from the last one tried
    /// and has not changed since the previous poll.
    fn poll(&mut self, now: Stamps) -> Step {
        let step = if now == self.tried {
            Step::Wait
        } else if now != self.previous {
            Step::Settle
        } else {
            self.tried = now;
            Step::Load
        };
        self.previous = now;
        step
    }
}

/// Watches `ca`, `cert` and `key` every `every` while the process runs,
/// reloading `node`'s TLS configuration on a change.
pub fn spawn(node: Node, [ca, cert, key]: [PathBuf; 3], every: Duration) {
    let files = [ca, cert, key];
    let read = move |files: &[PathBuf; 3]| -> Stamps {
        [stamp(&files[0]), stamp(&files[1]), stamp(&files[2])]
    };
    let mut watch = Watch::new(read(&files));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if watch.poll(read(&files)) != Step::Load {
                continue;
            }
            let [ca, cert, key] = &files;
            let result = TlsConfig::from_pem_files(ca, cert, key).and_then(|tls| {
                let days_left = tls
                    .not_after()
                    .and_then(|t| t.duration_since(SystemTime::now()).ok())
                    .map(|d| d.as_secs() / 86_400);
                node.reload_tls(tls).map(|()| days_left)
            });
            match result {
                Ok(days_left) => tracing::info!(
                    cert = %cert.display(),
                    ?days_left,
                    "TLS files changed: reloaded; new connections use them"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "TLS files changed but were not reloaded; the running configuration stays (tried again at the next change)"
                ),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Stamp {
        Some((SystemTime::UNIX_EPOCH + Duration::from_secs(secs), 10))
    }

    #[test]
    fn a_change_is_loaded_once_it_stood_still_and_only_once() {
        let start = [at(1), at(1), at(1)];
        let mut w = Watch::new(start);
        assert_eq!(w.poll(start), Step::Wait);
        // The certificate first, the key a poll later.
        let cert = [at(1), at(2), at(1)];
        assert_eq!(w.poll(cert), Step::Settle);
        let both = [at(1), at(2), at(3)];
        assert_eq!(w.poll(both), Step::Settle);
        assert_eq!(w.poll(both), Step::Load);
        assert_eq!(w.poll(both), Step::Wait);
        // A file gone for a moment, then back as it was: no reload.
        let gone = [at(1), None, at(3)];
        assert_eq!(w.poll(gone), Step::Settle);
        assert_eq!(w.poll(both), Step::Wait);
    }
}
