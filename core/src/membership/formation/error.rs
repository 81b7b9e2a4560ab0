//! Why a formation stops the start, in words a user can act on.

use std::fmt;

/// Why a formation stops the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormationError {
    /// Two seeds belong to two different clusters.
    TwoClusters {
        /// One member and its cluster id.
        a: (String, u128),
        /// A member of another cluster, and its id.
        b: (String, u128),
    },
    /// A candidate was given another `bootstrap_expect`.
    ExpectDiffers {
        /// The candidate.
        peer: String,
        /// Its count.
        theirs: u64,
        /// This node's.
        ours: u64,
    },
    /// The candidate this node promised to went away without founding.
    PromiseeGone {
        /// Its name.
        to: String,
        /// Why it counts as gone.
        how: String,
    },
    /// The deadline passed before a cluster formed or answered.
    Deadline {
        /// The `n` asked for (0: join only).
        expect: u64,
        /// The candidates seen at the end, this node included.
        seen: Vec<String>,
        /// Whom this node promised.
        promised: Option<String>,
        /// How many promised to this node (itself included).
        promises: usize,
    },
}

impl fmt::Display for FormationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TwoClusters { a, b } => write!(
                f,
                "the seeds belong to two different clusters: {} is in cluster {:032x} and {} in cluster {:032x}. Either the seed list mixes two deployments, or two clusters were formed from one deployment's seeds (a split brain, each granting locks of its own); joining either at random would hide it. Give this node the seeds of the one cluster it belongs to (and, if it was a split, stop one cluster)",
                a.0, a.1, b.0, b.1
            ),
            Self::ExpectDiffers { peer, theirs, ours } => write!(
                f,
                "this node was started with bootstrap_expect({ours}) but candidate {peer} with bootstrap_expect({theirs}): nodes that expect different counts could found two clusters. Give every node the same bootstrap_expect"
            ),
            Self::PromiseeGone { to, how } => write!(
                f,
                "this node promised to let candidate {to} found the cluster, but {to} {how} before founding it. A promise to a silent candidate is not moved (one that is only cut off could still found with it), so this start stops; start this node again: as a new process it is a new candidate, or joins the cluster if one formed meanwhile"
            ),
            Self::Deadline {
                expect: 0,
                seen: _,
                promised: _,
                promises: _,
            } => write!(
                f,
                "no member of a running cluster answered before the start-up deadline; check that the seeds run, that UDP is open between the nodes, that their certificates come from this cluster's CA, and that no running instance already uses this node's name (its certificate's, or name(..)); to found a new cluster, give bootstrap_expect(n)"
            ),
            Self::Deadline {
                expect,
                seen,
                promised,
                promises,
            } => {
                write!(
                    f,
                    "no cluster formed before the start-up deadline: bootstrap_expect({expect}) waits for {expect} blank candidates that see each other, but this node saw {} ([{}])",
                    seen.len(),
                    seen.join(", ")
                )?;
                match promised {
                    Some(to) => write!(
                        f,
                        " and promised to {to}, which gathered no {expect} promises ({promises} to this node)"
                    )?,
                    None => write!(f, " and promised to none")?,
                }
                write!(f, ". Check that every candidate runs with the same seeds, that the seeds include enough of them, that UDP is open between them, and that their certificates come from this cluster's CA")
            }
        }
    }
}
