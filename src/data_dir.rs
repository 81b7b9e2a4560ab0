//! What a data directory holds besides the Raft log, and why.
//!
//! - `identity`: the node name, the cluster (a fingerprint of the cluster
//!   CA) and this node's incarnation. A directory is only ever used by the
//!   node and the cluster that created it; the incarnation lets peers
//!   recognise this node after a restart with its state.
//! - `peers`: the incarnation each peer took part under. Kept on disk so
//!   that, even after this node restarts, a peer that comes back *without*
//!   its state (a new incarnation) is refused rather than allowed to vote
//!   twice under its old identity.
//! - `raft/`: the Raft log, hard state and snapshots (`DiskStore`).
//!
//! Small files are replaced atomically: written to a temporary file,
//! fsynced, renamed over the old one, and the directory fsynced.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use peerlock_core::raft::PeerMemory;
use peerlock_core::{Error, NodeId};

const IDENTITY: &str = "identity";
const PEERS: &str = "peers";
const FORMAT: &str = "peerlock-data-dir 1";

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

/// Writes `contents` to `dir/name` atomically and durably.
fn write_atomic(dir: &Path, name: &str, contents: &str) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(|e| io(&tmp, "cannot create", e))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| io(&tmp, "cannot write", e))?;
    f.sync_all().map_err(|e| io(&tmp, "cannot fsync", e))?;
    fs::rename(&tmp, &dst).map_err(|e| io(&dst, "cannot rename into", e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, "cannot fsync directory", e))
}

/// The identity recorded in a data directory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) node: String,
    pub(crate) cluster: u64,
    pub(crate) incarnation: u64,
}

impl Identity {
    fn render(&self) -> String {
        format!(
            "{FORMAT}\nnode {}\ncluster {:016x}\nincarnation {:016x}\n",
            self.node, self.cluster, self.incarnation
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != FORMAT {
            return None;
        }
        let mut field = |key: &str| -> Option<String> {
            let line = lines.next()?;
            line.strip_prefix(key)?.strip_prefix(' ').map(str::to_owned)
        };
        let node = field("node")?;
        let cluster = u64::from_str_radix(&field("cluster")?, 16).ok()?;
        let incarnation = u64::from_str_radix(&field("incarnation")?, 16).ok()?;
        Some(Self {
            node,
            cluster,
            incarnation,
        })
    }
}

/// Opens (or creates) a data directory for node `node` of cluster
/// `cluster`, returning its incarnation and the Raft log directory.
pub(crate) fn open(dir: &Path, node: &str, cluster: u64) -> Result<(Identity, PathBuf), Error> {
    fs::create_dir_all(dir).map_err(|e| io(dir, "cannot create data directory", e))?;
    let raft = dir.join("raft");
    let path = dir.join(IDENTITY);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = Identity::parse(&text).ok_or_else(|| {
                Error::Config(format!(
                    "{} is not a peerlock identity file; the data directory is damaged or not peerlock's",
                    path.display()
                ))
            })?;
            if id.node != node {
                return Err(Error::Config(format!(
                    "data directory {} belongs to node {:?}, but this node's certificate names it {:?}; give each node its own directory",
                    dir.display(),
                    id.node,
                    node
                )));
            }
            if id.cluster != cluster {
                return Err(Error::Config(format!(
                    "data directory {} belongs to another cluster (a different cluster CA); use an empty directory to join this one",
                    dir.display()
                )));
            }
            Ok((id, raft))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let has_log = fs::read_dir(&raft).is_ok_and(|mut d| d.next().is_some());
            if has_log {
                return Err(Error::Config(format!(
                    "{} holds a Raft log but no identity file; the data directory is damaged",
                    dir.display()
                )));
            }
            let id = Identity {
                node: node.to_owned(),
                cluster,
                incarnation: peerlock_core::raft::random_u64(),
            };
            write_atomic(dir, IDENTITY, &id.render())?;
            Ok((id, raft))
        }
        Err(e) => Err(io(&path, "cannot read", e)),
    }
}

/// Peers' incarnations, kept in `peers` in the data directory.
pub(crate) struct FilePeers {
    dir: PathBuf,
    known: HashMap<NodeId, u64>,
}

impl FilePeers {
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(PEERS);
        let mut known = HashMap::new();
        match fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.is_empty()) {
                    let parsed = line.split_once(' ').and_then(|(a, b)| {
                        Some((
                            u64::from_str_radix(a, 16).ok()?,
                            u64::from_str_radix(b, 16).ok()?,
                        ))
                    });
                    let (id, inc) = parsed.ok_or_else(|| {
                        Error::Config(format!("{} is damaged (line {line:?})", path.display()))
                    })?;
                    known.insert(NodeId(id), inc);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, "cannot read", e)),
        }
        Ok(Self {
            dir: dir.to_owned(),
            known,
        })
    }
}

impl PeerMemory for FilePeers {
    fn load(&self) -> HashMap<NodeId, u64> {
        self.known.clone()
    }

    fn remember(&mut self, peer: NodeId, incarnation: u64) -> Result<(), Error> {
        let mut next = self.known.clone();
        next.insert(peer, incarnation);
        let mut lines: Vec<String> = next
            .iter()
            .map(|(id, inc)| format!("{:016x} {inc:016x}", id.0))
            .collect();
        lines.sort();
        write_atomic(&self.dir, PEERS, &(lines.join("\n") + "\n"))?;
        self.known = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_checked_after() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = open(dir.path(), "node-a", 7).unwrap();
        let (again, _) = open(dir.path(), "node-a", 7).unwrap();
        assert_eq!(a, again, "same incarnation after a restart");
        assert!(
            matches!(open(dir.path(), "node-b", 7), Err(Error::Config(m)) if m.contains("belongs to node"))
        );
        assert!(
            matches!(open(dir.path(), "node-a", 8), Err(Error::Config(m)) if m.contains("another cluster"))
        );
        std::fs::write(dir.path().join(IDENTITY), "junk").unwrap();
        assert!(matches!(
            open(dir.path(), "node-a", 7),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn a_log_without_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raft")).unwrap();
        std::fs::write(dir.path().join("raft").join("0000.wal"), "x").unwrap();
        assert!(
            matches!(open(dir.path(), "n", 1), Err(Error::Config(m)) if m.contains("no identity"))
        );
    }

    #[test]
    fn peer_incarnations_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = FilePeers::open(dir.path()).unwrap();
        p.remember(NodeId(5), 42).unwrap();
        p.remember(NodeId(9), 7).unwrap();
        let p = FilePeers::open(dir.path()).unwrap();
        assert_eq!(p.load().get(&NodeId(5)), Some(&42));
        assert_eq!(p.load().len(), 2);
    }
}
