//! What a data directory holds besides the Raft log, and why.
//!
//! - `identity`: the node name, the cluster (a fingerprint of the cluster
//!   CA), this node's incarnation and its boot count. A directory is only
//!   ever used by the node and the cluster that created it; the incarnation
//!   lets peers recognise this node after a restart with its state, and the
//!   boot count, bumped and fsynced at every start before the node says
//!   hello, lets them refuse an older copy of the directory (restored from
//!   a backup or a disk image), whose log would roll back what the node
//!   acknowledged since (see `peerlock_core::raft::PeerRun`).
//! - `peers`: the last start of each peer that was accepted. Kept on disk
//!   so that, even after this node restarts, a peer that comes back
//!   *without* its state (a new incarnation) or from an older copy of it
//!   (a boot not above the one seen) is refused rather than allowed to vote
//!   twice or roll back under its old identity.
//! - `members`: the initial cluster as this node found it at its first
//!   start (id, address, name). A restart starts from it, so it needs only
//!   a majority of voters to answer, not every configured peer (issue 9).
//! - `raft/`: the Raft log, hard state and snapshots (`DiskStore`).
//!
//! # Order at first start
//!
//! Everything a file depends on is durable before it: the data directory
//! is created and its parent fsynced, then `raft/` is created and the data
//! directory fsynced, and only then is `identity` written. So a power cut
//! can never keep `identity` and lose `raft/` (a node would then start
//! blank under a trusted identity and could vote twice); `identity`
//! without `raft/` is refused as damage.
//!
//! Small files are replaced atomically: written to a temporary file,
//! fsynced, renamed over the old one, and the directory fsynced. Every
//! file operation goes through the storage's `Fs` seam, so tests can crash
//! and cut the power at each step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use peerlock_core::raft::{Member, PeerMemory, PeerRun};
use peerlock_core::storage::fs::{create_dir_durably, Fs, RealFs};
use peerlock_core::{Error, NodeId, NodeName};

const IDENTITY: &str = "identity";
const PEERS: &str = "peers";
const MEMBERS: &str = "members";
const MEMBERS_FORMAT: &str = "peerlock-members 1";
const RAFT: &str = "raft";
const FORMAT: &str = "peerlock-data-dir 1";

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

/// Writes `contents` to `dir/name` atomically and durably.
fn write_atomic(fs: &dyn Fs, dir: &Path, name: &str, contents: &str) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    match fs.remove(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(&tmp, "cannot remove", e))
        }
        _ => {}
    }
    let mut f = fs
        .open_append(&tmp)
        .map_err(|e| io(&tmp, "cannot create", e))?;
    fs.write(&mut f, contents.as_bytes())
        .map_err(|e| io(&tmp, "cannot write", e))?;
    fs.sync(&f).map_err(|e| io(&tmp, "cannot fsync", e))?;
    fs.rename(&tmp, &dst)
        .map_err(|e| io(&dst, "cannot rename into", e))?;
    fs.sync_dir(dir)
        .map_err(|e| io(dir, "cannot fsync directory", e))
}

/// Reads `path`; `None` if it does not exist.
fn read_text(fs: &dyn Fs, path: &Path) -> Result<Option<String>, Error> {
    match fs.read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            Error::Config(format!(
                "{} is not text; the data directory is damaged or not peerlock's",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, "cannot read", e)),
    }
}

/// The identity recorded in a data directory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) node: String,
    pub(crate) cluster: u64,
    pub(crate) incarnation: u64,
    /// How many times the directory was started, the current start
    /// included (0 in a directory written before boot counts).
    pub(crate) boot: u64,
}

impl Identity {
    fn render(&self) -> String {
        format!(
            "{FORMAT}\nnode {}\ncluster {:016x}\nincarnation {:016x}\nboot {:016x}\n",
            self.node, self.cluster, self.incarnation, self.boot
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
        // Absent in directories written before boot counts: boot 0.
        let boot = match field("boot") {
            Some(b) => u64::from_str_radix(&b, 16).ok()?,
            None => 0,
        };
        Some(Self {
            node,
            cluster,
            incarnation,
            boot,
        })
    }

    /// What this start says in its hello: the incarnation, this boot, and a
    /// random run number.
    pub(crate) fn this_run(&self) -> PeerRun {
        PeerRun {
            incarnation: self.incarnation,
            boot: self.boot,
            run: peerlock_core::raft::random_u64(),
        }
    }
}

/// Opens (or creates) a data directory for node `node` of cluster
/// `cluster`: checks it, bumps its boot count (durably, before the node
/// says hello to anyone), and returns the identity and the Raft log
/// directory.
#[cfg(test)]
pub(crate) fn open(dir: &Path, node: &str, cluster: u64) -> Result<(Identity, PathBuf), Error> {
    open_with(&RealFs, dir, node, &[cluster])
}

/// Like [`open`] for a node that trusts a CA bundle: `clusters` holds the
/// fingerprint of each CA, in bundle order. A directory made under any of
/// them is accepted (the cluster is rotating its CA) and is recorded under
/// the first from then on, so the old CA can later leave the bundle.
pub(crate) fn open_bundle(
    dir: &Path,
    node: &str,
    clusters: &[u64],
) -> Result<(Identity, PathBuf), Error> {
    open_with(&RealFs, dir, node, clusters)
}

/// Like [`open_bundle`], through `fs`.
pub(crate) fn open_with(
    fs: &dyn Fs,
    dir: &Path,
    node: &str,
    clusters: &[u64],
) -> Result<(Identity, PathBuf), Error> {
    let Some(&cluster) = clusters.first() else {
        return Err(Error::Config("the TLS configuration holds no CA".into()));
    };
    create_dir_durably(fs, dir).map_err(|e| io(dir, "cannot create data directory", e))?;
    let raft = dir.join(RAFT);
    let path = dir.join(IDENTITY);
    let mut id = match read_text(fs, &path)? {
        Some(text) => {
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
            if !clusters.contains(&id.cluster) {
                return Err(Error::Config(format!(
                    "data directory {} was made for another cluster (a different cluster CA): start this node on the data directory it has in this cluster. An empty directory works only for a node that never ran in this cluster; one that did is refused by its peers without its own directory",
                    dir.display()
                )));
            }
            if !raft.is_dir() {
                return Err(Error::Config(format!(
                    "{} holds an identity but no {RAFT}/ log: the log was lost and the node must not take part under this identity (it could vote twice). Leave this node out (the cluster goes on while a majority of voters is up); a node that lost its state cannot rejoin until membership changes are available (README, Known limits)",
                    dir.display()
                )));
            }
            Identity { cluster, ..id }
        }
        None => {
            let has_log = fs.list(&raft).is_ok_and(|d| !d.is_empty());
            if has_log {
                return Err(Error::Config(format!(
                    "{} holds a Raft log but no identity file; the data directory is damaged. Leave this node out (the cluster goes on while a majority of voters is up); a node that lost its state cannot rejoin until membership changes are available (README, Known limits)",
                    dir.display()
                )));
            }
            // `raft/` first, durably: `identity` must never exist without it.
            create_dir_durably(fs, &raft).map_err(|e| io(&raft, "cannot create", e))?;
            Identity {
                node: node.to_owned(),
                cluster,
                incarnation: peerlock_core::raft::random_u64(),
                boot: 0,
            }
        }
    };
    id.boot = id
        .boot
        .checked_add(1)
        .ok_or_else(|| Error::Config(format!("{}: the boot count is exhausted", path.display())))?;
    write_atomic(fs, dir, IDENTITY, &id.render())?;
    Ok((id, raft))
}

/// The last accepted start of each peer, kept in `peers` in the data
/// directory: one line per peer, `id incarnation boot run` in hex (lines
/// written before boot counts have the first two only: boot and run 0).
pub(crate) struct FilePeers {
    dir: PathBuf,
    known: HashMap<NodeId, PeerRun>,
}

fn parse_peer(line: &str) -> Option<(NodeId, PeerRun)> {
    let mut words = line.split(' ').map(|w| u64::from_str_radix(w, 16).ok());
    let id = words.next()??;
    let incarnation = words.next()??;
    let boot = words.next().unwrap_or(Some(0))?;
    let run = words.next().unwrap_or(Some(0))?;
    if words.next().is_some() {
        return None;
    }
    Some((
        NodeId(id),
        PeerRun {
            incarnation,
            boot,
            run,
        },
    ))
}

impl FilePeers {
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(PEERS);
        let mut known = HashMap::new();
        if let Some(text) = read_text(&RealFs, &path)? {
            for line in text.lines().filter(|l| !l.is_empty()) {
                let (id, run) = parse_peer(line).ok_or_else(|| {
                    Error::Config(format!("{} is damaged (line {line:?})", path.display()))
                })?;
                known.insert(id, run);
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            known,
        })
    }
}

impl PeerMemory for FilePeers {
    fn load(&self) -> HashMap<NodeId, PeerRun> {
        self.known.clone()
    }

    fn remember(&mut self, peer: NodeId, run: PeerRun) -> Result<(), Error> {
        let mut next = self.known.clone();
        next.insert(peer, run);
        let mut lines: Vec<String> = next
            .iter()
            .map(|(id, r)| {
                format!(
                    "{:016x} {:016x} {:016x} {:016x}",
                    id.0, r.incarnation, r.boot, r.run
                )
            })
            .collect();
        lines.sort();
        write_atomic(&RealFs, &self.dir, PEERS, &(lines.join("\n") + "\n"))?;
        self.known = next;
        Ok(())
    }
}

/// Records the initial cluster in `dir/members`, atomically and durably,
/// before Raft starts on it.
pub(crate) fn save_members(dir: &Path, members: &[Member]) -> Result<(), Error> {
    let mut text = format!("{MEMBERS_FORMAT}\n");
    for m in members {
        text.push_str(&format!("{:016x} {} {}\n", m.id.0, m.addr, m.name));
    }
    write_atomic(&RealFs, dir, MEMBERS, &text)
}

/// The initial cluster recorded by [`save_members`]; `None` in a directory
/// that has none (a first start, or one made before the file existed).
pub(crate) fn load_members(dir: &Path) -> Result<Option<Vec<Member>>, Error> {
    let path = dir.join(MEMBERS);
    let Some(text) = read_text(&RealFs, &path)? else {
        return Ok(None);
    };
    let damaged = |line: &str| {
        Error::Config(format!(
            "{} is damaged (line {line:?}); the data directory is damaged or not peerlock's",
            path.display()
        ))
    };
    let mut lines = text.lines();
    if lines.next() != Some(MEMBERS_FORMAT) {
        return Err(damaged(text.lines().next().unwrap_or("")));
    }
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let mut words = line.splitn(3, ' ');
        let id = words.next().and_then(|w| u64::from_str_radix(w, 16).ok());
        let addr = words.next().and_then(|w| w.parse().ok());
        let name = words.next().filter(|n| !n.is_empty());
        match (id, addr, name) {
            (Some(id), Some(addr), Some(name)) => out.push(Member {
                id: NodeId(id),
                name: NodeName(name.to_owned()),
                addr,
            }),
            _ => return Err(damaged(line)),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_checked_after() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = open(dir.path(), "node-a", 7).unwrap();
        let (again, _) = open(dir.path(), "node-a", 7).unwrap();
        assert_eq!(
            a.incarnation, again.incarnation,
            "same incarnation after a restart"
        );
        assert_eq!((a.boot, again.boot), (1, 2), "each start is the next boot");
        assert!(
            matches!(open(dir.path(), "node-b", 7), Err(Error::Config(m)) if m.contains("belongs to node"))
        );
        // Issue 8 item 9 (and 12): this advised "use an empty directory",
        // which peers refuse for a node that ran in the cluster before.
        assert!(
            matches!(open(dir.path(), "node-a", 8), Err(Error::Config(m)) if m.contains("another cluster") && !m.contains("use an empty directory") && m.contains("the data directory it has in this cluster"))
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
        let run = |incarnation, boot, run| PeerRun {
            incarnation,
            boot,
            run,
        };
        p.remember(NodeId(5), run(42, 3, 11)).unwrap();
        p.remember(NodeId(9), run(7, 1, 2)).unwrap();
        let p = FilePeers::open(dir.path()).unwrap();
        assert_eq!(p.load().get(&NodeId(5)), Some(&run(42, 3, 11)));
        assert_eq!(p.load().len(), 2);
        // A file written before boot counts still reads: boot and run 0.
        std::fs::write(
            dir.path().join(PEERS),
            "0000000000000005 000000000000002a\n",
        )
        .unwrap();
        let p = FilePeers::open(dir.path()).unwrap();
        assert_eq!(p.load().get(&NodeId(5)), Some(&run(42, 0, 0)));
    }

    /// Issue 8 item 9: at first start `raft/` was created (by the log
    /// store) after `identity` was written and the data directory last
    /// fsynced, so a power cut soon after could keep `identity` and lose
    /// `raft/`: the node then started blank under a trusted identity. Here
    /// the first start (data directory, then the log store) is crashed at
    /// every step and the power cut: `identity` never survives without
    /// `raft/`, and the directory always opens again.
    #[test]
    fn issue_8_a_power_cut_at_first_start_never_keeps_identity_without_raft() {
        use peerlock_core::storage::fs::FaultyFs;
        use peerlock_core::storage::DiskStore;
        use std::sync::Arc;

        let first_start = |fs: &Arc<FaultyFs>, dir: &Path| -> Result<(), String> {
            let (_, raft) =
                open_with(fs.as_ref(), dir, "node-a", &[7]).map_err(|e| e.to_string())?;
            DiskStore::open_with(&raft, fs.clone()).map_err(|e| e.to_string())?;
            Ok(())
        };
        let base = tempfile::tempdir().unwrap();
        let clean = Arc::new(FaultyFs::new());
        first_start(&clean, &base.path().join("clean")).unwrap();
        let steps = clean.steps();
        assert!(steps > 5, "{steps} steps");
        for k in 0..=steps {
            let dir = base.path().join(format!("crash-{k}"));
            let fs = Arc::new(FaultyFs::new());
            fs.crash_after(k);
            let done = first_start(&fs, &dir);
            fs.power_cut();
            assert_eq!(done.is_ok(), k == steps, "step {k}: {done:?}");
            if dir.join(IDENTITY).exists() {
                assert!(dir.join(RAFT).is_dir(), "step {k}: identity without raft/");
            }
            // The next start works: as itself, or as a new node.
            let again = Arc::new(FaultyFs::new());
            first_start(&again, &dir).unwrap_or_else(|e| panic!("step {k}: {e}"));
        }
    }

    /// Each start bumps the boot count durably before anything else
    /// happens, and a crash between starts never lowers it.
    #[test]
    fn issue_8_the_boot_count_rises_at_every_start_even_across_power_cuts() {
        use peerlock_core::storage::fs::FaultyFs;
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        for round in 0..5u64 {
            let fs = FaultyFs::new();
            let (id, _) = open_with(&fs, dir.path(), "n", &[1]).unwrap();
            assert!(id.boot > last, "round {round}");
            last = id.boot;
            fs.power_cut();
            let again = open(dir.path(), "n", 1).unwrap().0;
            assert!(again.boot > last, "round {round}: the bump was durable");
            last = again.boot;
        }
    }

    #[test]
    fn members_survive_a_reopen_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_members(dir.path()).unwrap(), None);
        let members = vec![
            Member {
                id: NodeId(7),
                name: NodeName("node with spaces".into()),
                addr: "127.0.0.1:7100".parse().unwrap(),
            },
            Member {
                id: NodeId(u64::MAX),
                name: NodeName("b".into()),
                addr: "[::1]:7101".parse().unwrap(),
            },
        ];
        save_members(dir.path(), &members).unwrap();
        assert_eq!(load_members(dir.path()).unwrap(), Some(members));
        std::fs::write(
            dir.path().join(MEMBERS),
            "peerlock-members 1\nzz 1.2.3.4:5 a\n",
        )
        .unwrap();
        assert!(matches!(load_members(dir.path()), Err(Error::Config(_))));
    }

    /// Issue 9: a CA bundle lets the cluster rotate its CA; a directory
    /// made under the old CA is accepted while both are trusted, and is
    /// recorded under the bundle's first from then on.
    #[test]
    fn a_directory_follows_its_cluster_through_a_ca_rotation() {
        let dir = tempfile::tempdir().unwrap();
        open_bundle(dir.path(), "n", &[7]).unwrap();
        let (id, _) = open_bundle(dir.path(), "n", &[9, 7]).unwrap();
        assert_eq!(id.cluster, 9);
        let (id, _) = open_bundle(dir.path(), "n", &[9]).unwrap();
        assert_eq!(id.cluster, 9);
        assert!(matches!(
            open_bundle(dir.path(), "n", &[7]),
            Err(Error::Config(_))
        ));
    }
}
