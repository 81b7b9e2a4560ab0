//! The seam between the Raft driver and the network.
//!
//! The driver sends [`PeerMessage`]s with [`Transport::send`] and receives
//! [`Incoming`] batches on a channel it handed to the transport when it was
//! built. The QUIC transport (crate `peerlock-transport`) implements this
//! trait for real networks; tests can implement it in memory.
//!
//! The sender of an [`Incoming`] batch is the identity the transport
//! established for the connection (for QUIC: the node name in the peer's
//! certificate; with a certificate shared by every node, the member name
//! the peer claimed when it connected, which proves nothing more than
//! holding that certificate), never something a frame says, and the driver
//! checks that every Raft message inside names that same sender.
//!
//! A message that several places send alike is built by one constructor
//! on [`PeerMessage`] here (the join's "which cluster are you in?",
//! [`PeerMessage::joining`]), next to the variant it fills, so the core and
//! the facade cannot drift apart on what it says.

use serde::{Deserialize, Serialize};

use crate::types::{NodeId, SessionId};

/// One message between peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// A raft-rs `eraftpb::Message`, protobuf-encoded. Serialized as one
    /// byte string (see [`raft_bytes`]): the same bytes on the wire as a
    /// sequence of `u8`, written and read in one copy.
    Raft(#[serde(with = "raft_bytes")] Vec<u8>),
    /// A session keepalive, sent to the leader every `ttl / 4`. `seq` lets
    /// the sender find the local send time it stamped on it.
    KeepAlive {
        /// The session kept alive.
        session: SessionId,
        /// The sender's sequence number for this keepalive.
        seq: u64,
    },
    /// The leader's answer to a keepalive, sent only after a quorum round
    /// begun after the keepalive arrived confirmed it is still the leader.
    KeepAliveAck {
        /// The session.
        session: SessionId,
        /// The keepalive's sequence number.
        seq: u64,
        /// False when the session no longer exists (it expired).
        alive: bool,
    },
    /// Sent by a starting node to every peer before it takes part in Raft:
    /// which start of which data directory it is (see
    /// [`PeerRun`](crate::raft::PeerRun)).
    Hello {
        /// The data directory's random incarnation number (an in-memory
        /// node draws one at each start).
        incarnation: u64,
        /// The directory's boot count, bumped at each start.
        boot: u64,
        /// Random, drawn at each start.
        run: u64,
        /// The Raft id the sender starts under: the leader judges
        /// `last_index` against what that id acknowledged (a name may have
        /// had another id since, under which a blank start rejoined).
        id: u64,
        /// The index of the last entry in the sender's log (0: empty). The
        /// leader refuses a start whose log ends below what the node
        /// acknowledged to it: an older copy of a running node's directory.
        last_index: u64,
        /// The term in the sender's stored hard state: a leader in an
        /// earlier term does not judge `last_index` (a newer leader may have
        /// truncated what it matched).
        term: u64,
    },
    /// The answer to a [`PeerMessage::Hello`]: `accepted` is false when the
    /// peer remembers a different incarnation under the same identity (the
    /// sender restarted without its state), or a later start of the same
    /// directory (the sender started from an older copy of it).
    HelloAck {
        /// Whether the sender may take part under its identity.
        accepted: bool,
        /// On a refusal for an older copy: the later boot the peer saw;
        /// otherwise 0.
        seen_boot: u64,
        /// The `run` of the hello answered: an answer meant for an earlier
        /// start of the same node (still in flight when it stopped) is
        /// ignored by the next one.
        run: u64,
        /// The initial cluster the answering node was started with, one
        /// `"name (voter)"` or `"name (learner)"` per member, sorted. A
        /// starting node whose own list differs stops with an error naming
        /// both (issue 9: nodes given different lists could disagree on the
        /// voters, which makes two leaders in one term possible).
        founding: Vec<String>,
        /// On a refusal by the leader because the sender's log ends below
        /// what it acknowledged: that index (the sender started from an
        /// older copy of a running node's directory); otherwise 0.
        acknowledged: u64,
    },
    /// Asks the leader which members it judges live (for `members()` on a
    /// follower; issue 9). Answered by [`PeerMessage::LiveTell`].
    LiveAsk {
        /// Matches the answer to the question.
        seq: u64,
    },
    /// The leader's answer to [`PeerMessage::LiveAsk`]: the Raft ids of the
    /// members that answered it within two election timeouts.
    LiveTell {
        /// The question's `seq`.
        seq: u64,
        /// The live members' ids.
        live: Vec<u64>,
    },
    /// A node asks a member to join the cluster (issue 9). `name` must be
    /// the name its connection proved.
    JoinAsk {
        /// Drawn at random once per start: a retry gets the same id.
        token: u64,
        /// The joiner's name.
        name: String,
        /// Where the joiner listens.
        addr: std::net::SocketAddr,
        /// Whether it keeps its Raft state on disk.
        durable: bool,
        /// Its failure zone, if it has one (at most 64 bytes).
        #[serde(deserialize_with = "crate::types::opt_string_as_read")]
        zone: Option<String>,
    },
    /// The answer to [`PeerMessage::JoinAsk`] once the `Join` applied.
    Joined {
        /// The ask's token.
        token: u64,
        /// The Raft id the cluster allocated.
        id: u64,
        /// The members, the joiner included.
        members: Vec<JoinedMember>,
    },
    /// The cluster refused a [`PeerMessage::JoinAsk`].
    JoinRefused {
        /// The ask's token.
        token: u64,
        /// Why.
        reason: String,
    },
    /// Sent to a node that says hello but is not a member of this running
    /// cluster: it must join (issue 9).
    JoinInstead {
        /// The sender's cluster id (0: not chosen yet, or not recorded). A
        /// node whose directory records another id ignores it: a member of
        /// another cluster at an address this node recorded (reused by a
        /// new pod, both clusters' certificates from one CA) must not make
        /// it give up its id and mark its directory left.
        cluster_id: u128,
    },
    /// Sent to a node whose Raft id the cluster removed (issue 9): it must
    /// stop taking part under that id.
    Removed {
        /// The sender's cluster id (a frame for another cluster is ignored).
        cluster_id: u128,
        /// The removed id.
        id: NodeId,
    },
    /// A starting node that found no cluster yet tells every peer it knows
    /// what it is, every 500 ms (issue 9, `bootstrap_expect`; see
    /// [`crate::membership::formation`]). A member of a running cluster
    /// answers with [`PeerMessage::InCluster`]; another forming node
    /// counts it. `name` must be the name its connection proved.
    Forming {
        /// The sender's name.
        name: String,
        /// Random, drawn once per process.
        run: u64,
        /// Its `bootstrap_expect`, or 0 when it only joins (seeds alone).
        expect: u64,
        /// The candidate (name, run) it promised to let found the cluster.
        promised: Option<(String, u64)>,
        /// The peers the sender knows, by name and address, at most
        /// [`FORMING_PEERS_MAX`]: a candidate that hears of one it does not
        /// know dials it, so candidates whose seeds show each a part of the
        /// deployment (each given one seed, in a ring) come to see the same
        /// set and promise to the same founder. Empty from a node that
        /// only joins.
        peers: Vec<(String, std::net::SocketAddr)>,
    },
    /// A member's answer to [`PeerMessage::Forming`]: it belongs to a
    /// running cluster, with this id (0: founded, its id not chosen yet).
    InCluster {
        /// The cluster's id.
        cluster_id: u128,
    },
}

/// The most peers a [`PeerMessage::Forming`] lists; a receiver reads no
/// more than this many of them.
pub const FORMING_PEERS_MAX: usize = 64;

impl PeerMessage {
    /// The [`PeerMessage::Forming`] of a node that only joins (`expect` 0,
    /// no promise): "which cluster are you in?". Members answer it with
    /// [`PeerMessage::InCluster`]; a forming node hears that the sender
    /// only joins and is no candidate ([`crate::membership::formation`]).
    /// Built here, once, for every start that asks it (the core's join,
    /// and the facade's join that resolves its seeds again and restart
    /// that checks its seeds' cluster id), so they all send the same
    /// message. `run` is random, drawn once per start.
    pub fn joining(name: impl Into<String>, run: u64) -> Self {
        Self::Forming {
            name: name.into(),
            run,
            expect: 0,
            promised: None,
            peers: Vec::new(),
        }
    }
}

/// How [`PeerMessage::Raft`]'s bytes are (de)serialized: as a byte string
/// (`serialize_bytes` / `deserialize_byte_buf`) instead of serde's default
/// for `Vec<u8>`, a sequence of single `u8`s.
///
/// Why (issue 10): the default writes and reads a Raft message one byte at
/// a time through the serializer (with bincode, one `Vec` push per byte,
/// the frame buffer growing by doubling), 7 % of the process's CPU in the
/// cluster_load M workload. In bincode's standard configuration both forms
/// are the same bytes (a varint length, then the raw bytes: a `u8` is never
/// varint-encoded), so peers of either version read each other's frames
/// unchanged and the frame version stays 1; `peerlock-transport`'s codec
/// tests pin that equality. A self-describing format may hand the visitor
/// a sequence instead: it is accepted too.
pub mod raft_bytes {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    /// Writes the bytes as one byte string.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    /// Reads a byte string (or a sequence of `u8`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a protobuf-encoded raft message")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Not pre-sized from the hint: a hint is the peer's claim.
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// One member, as [`PeerMessage::Joined`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedMember {
    /// Its Raft id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
}

/// Messages that arrived from one authenticated peer.
#[derive(Debug)]
pub struct Incoming {
    /// The sender, as proven by its certificate.
    pub from: NodeId,
    /// The messages, in the order they were sent.
    pub msgs: Vec<PeerMessage>,
}

/// The network as the driver sees it.
pub trait Transport: Send + Sync + 'static {
    /// Queues `msgs` for `to` and returns at once. Delivery is best effort:
    /// if `to` is unreachable the messages are dropped (Raft retries).
    fn send(&self, to: NodeId, msgs: Vec<PeerMessage>);

    /// Tells the transport where the peer with key `key` (the key of
    /// `name`) is reached, when a member joins or moves (issue 9). A
    /// transport that routes by key alone ignores it.
    fn learn_peer(&self, key: NodeId, name: &str, addr: std::net::SocketAddr) {
        let _ = (key, name, addr);
    }
}
