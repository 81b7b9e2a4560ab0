//! A TLS reload moves the data directory to the new CA bundle (issue 12,
//! item 5): without it a node rotated without a restart was refused at
//! its next start once the old CA had left the bundle.

use std::path::Path;

use peerlock_core::storage::fs::RealFs;
use peerlock_core::Error;

use super::{read_text, write_atomic, Identity, IDENTITY};

/// Records `dir`'s identity under the first CA of `clusters`, a TLS
/// reload's new bundle (issue 12), as a start with that bundle would, so
/// that the node still starts on its directory once the CA it was made
/// under has left the bundle. The running node proved the directory is
/// this cluster's: it was accepted at start under `running` (the bundle
/// of the start or of the last reload), and the node has been a member
/// since. Nothing else changes (the boot count is a start's). A directory
/// without an identity has nothing to record.
///
/// # Errors
///
/// [`Error::Config`] when the directory's identity is damaged or names a
/// CA of neither bundle (it was replaced under the running node).
pub(crate) fn recluster(dir: &Path, running: &[u64], clusters: &[u64]) -> Result<(), Error> {
    let fs = RealFs;
    let Some(&cluster) = clusters.first() else {
        return Err(Error::Config("the TLS configuration holds no CA".into()));
    };
    let path = dir.join(IDENTITY);
    let Some(text) = read_text(&fs, &path)? else {
        return Ok(());
    };
    let Some(id) = Identity::parse(&text) else {
        return Err(Error::Config(format!(
            "{} is not a peerlock identity file; the data directory is damaged or not peerlock's",
            path.display()
        )));
    };
    if !id.belongs_to(clusters) && !id.belongs_to(running) {
        return Err(Error::Config(format!(
            "data directory {} was made for another cluster (a CA in neither the running nor the new bundle): it was replaced under the running node; nothing was reloaded",
            dir.display()
        )));
    }
    if id.cluster == cluster {
        return Ok(());
    }
    write_atomic(&fs, dir, IDENTITY, &id.moved_to(cluster).render())
}
