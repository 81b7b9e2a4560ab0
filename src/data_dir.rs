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
//! - `member`: for a node that joined a running cluster, the Raft id the
//!   cluster allocated it, written (fsynced) before its first Raft message,
//!   so that a restart comes back as the same member (issue 9).
//! - `raft/`: the Raft log, hard state and snapshots (`DiskStore`).
//! - `left`: written (fsynced) when a graceful shutdown left the
//!   membership (issue 9, item 7). The cluster removes the old id, so the
//!   state under it is worth nothing; the next start wipes the directory
//!   (every file above, then `left` last, so a crash midway wipes again)
//!   and starts blank, joining under a new id.
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

mod recluster;
pub(crate) use recluster::recluster;

const IDENTITY: &str = "identity";
const PEERS: &str = "peers";
const MEMBERS: &str = "members";
const MEMBERS_FORMAT: &str = "peerlock-members 1";
const MEMBER: &str = "member";
const MEMBER_FORMAT: &str = "peerlock-member 1";
const RAFT: &str = "raft";
const FORMAT: &str = "peerlock-data-dir 1";
const LEFT: &str = "left";
const LEFT_FORMAT: &str = "peerlock-left 1";

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
    /// The CA the directory was recorded under before `cluster`, if it
    /// changed: a start or reload under a wrong CA (by mistake) must not
    /// lock the directory out of its own cluster's CA (issue 12).
    pub(crate) previous: Option<u64>,
}

impl Identity {
    fn render(&self) -> String {
        let mut text = format!(
            "{FORMAT}\nnode {}\ncluster {:016x}\nincarnation {:016x}\nboot {:016x}\n",
            self.node, self.cluster, self.incarnation, self.boot
        );
        if let Some(p) = self.previous {
            text.push_str(&format!("previous {p:016x}\n"));
        }
        text
    }

    /// Whether a node trusting `clusters` may use this directory: it was
    /// recorded under one of them, now or before its last CA change.
    fn belongs_to(&self, clusters: &[u64]) -> bool {
        clusters.contains(&self.cluster) || self.previous.is_some_and(|p| clusters.contains(&p))
    }

    /// This identity recorded under `cluster`, keeping the CA it had.
    fn moved_to(self, cluster: u64) -> Self {
        if self.cluster == cluster {
            return self;
        }
        Self {
            previous: Some(self.cluster),
            cluster,
            ..self
        }
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
        // Absent unless the directory's CA changed (issue 12).
        let previous = match field("previous") {
            Some(p) => Some(u64::from_str_radix(&p, 16).ok()?),
            None => None,
        };
        Some(Self {
            node,
            cluster,
            incarnation,
            boot,
            previous,
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
    if read_text(fs, &dir.join(LEFT))?.is_some() {
        wipe_left(fs, dir, &raft)?;
    }
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
            if !id.belongs_to(clusters) {
                return Err(Error::Config(format!(
                    "data directory {} was made under a cluster CA that this node's CA bundle does not hold: if the cluster is rotating its CA, keep the old CA in the bundle until every member has started (or reloaded its TLS) once with the new one; if this node's certificate comes from a CA created by mistake (say, each instance made its own), issue it from the cluster's CA instead, since peers refuse a certificate from a CA they do not trust whatever the directory holds; if this is another cluster's directory, start the node on its own",
                    dir.display()
                )));
            }
            if !raft.is_dir() {
                return Err(Error::Config(format!(
                    "{} holds an identity but no {RAFT}/ log: the log was lost and the node must not take part under this identity (it could vote twice). The cluster goes on without this node while a majority of voters is up; to bring this node back, empty its data directory: it then joins as a new member under a new id and never votes under the old one (README, Membership)",
                    dir.display()
                )));
            }
            id.moved_to(cluster)
        }
        None => {
            let has_log = fs.list(&raft).is_ok_and(|d| !d.is_empty());
            if has_log {
                return Err(Error::Config(format!(
                    "{} holds a Raft log but no identity file; the data directory is damaged. The cluster goes on without this node while a majority of voters is up; to bring this node back, empty its data directory: it then joins as a new member under a new id and never votes under the old one (README, Membership)",
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
                previous: None,
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

/// Marks `dir` as left (see the module docs): the next start wipes it.
pub(crate) fn mark_left(dir: &Path) -> Result<(), Error> {
    write_atomic(&RealFs, dir, LEFT, LEFT_FORMAT)
}

/// Finishes what a `left` mark asks: every file of the old membership
/// goes (`identity` first, so no crash leaves an identity without its
/// log), then the mark.
fn wipe_left(fs: &dyn Fs, dir: &Path, raft: &Path) -> Result<(), Error> {
    tracing::info!(dir = %dir.display(), "this node left its cluster, or the cluster removed it; starting blank to join under a new id");
    let remove = |path: &Path| match fs.remove(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path, "cannot remove", e)),
        _ => Ok(()),
    };
    for name in [IDENTITY, MEMBER, MEMBERS, PEERS] {
        remove(&dir.join(name))?;
    }
    fs.sync_dir(dir).map_err(|e| io(dir, "cannot sync", e))?;
    if let Ok(files) = fs.list(raft) {
        for f in files {
            remove(&f)?;
        }
        fs.sync_dir(raft).map_err(|e| io(raft, "cannot sync", e))?;
    }
    remove(&dir.join(LEFT))?;
    fs.sync_dir(dir).map_err(|e| io(dir, "cannot sync", e))
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

/// Records the Raft id the cluster allocated this node when it joined.
pub(crate) fn save_member_id(dir: &Path, id: NodeId) -> Result<(), Error> {
    write_atomic(
        &RealFs,
        dir,
        MEMBER,
        &format!("{MEMBER_FORMAT}\nid {:016x}\n", id.0),
    )
}

/// The Raft id recorded by [`save_member_id`]; `None` for a founder (or a
/// node that has not joined yet).
pub(crate) fn load_member_id(dir: &Path) -> Result<Option<NodeId>, Error> {
    let path = dir.join(MEMBER);
    let Some(text) = read_text(&RealFs, &path)? else {
        return Ok(None);
    };
    let mut lines = text.lines();
    let id = (lines.next() == Some(MEMBER_FORMAT))
        .then(|| lines.next())
        .flatten()
        .and_then(|l| l.strip_prefix("id "))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .filter(|id| *id != 0);
    match id {
        Some(id) => Ok(Some(NodeId(id))),
        None => Err(Error::Config(format!(
            "{} is damaged; the data directory is damaged or not peerlock's",
            path.display()
        ))),
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
#[path = "data_dir_tests.rs"]
mod tests;
