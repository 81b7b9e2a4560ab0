//! The simulated network: every message goes through one place that can
//! drop it (cut links, one-way links, random loss), delay it (which also
//! reorders), or deliver it twice, all drawn from the run's seed and timed
//! on the runtime's simulated clock.
//!
//! A node that crashes loses what was in flight to it: each delivery
//! carries the receiver's incarnation, and a restarted node has a new one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::rng::Rng;
use crate::transport::{Incoming, PeerMessage, Transport};
use crate::types::NodeId;

/// How one directed link misbehaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkFaults {
    /// Drops this many messages in a thousand.
    pub loss_permille: u64,
    /// Delivers this many in a thousand twice.
    pub dup_permille: u64,
    /// The shortest delivery delay.
    pub delay_min: Duration,
    /// The longest (a spread between the two reorders messages).
    pub delay_max: Duration,
}

struct Inbox {
    tx: mpsc::Sender<Incoming>,
    incarnation: u64,
}

struct State {
    rng: Rng,
    inboxes: BTreeMap<NodeId, Inbox>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Faults applying to every link without a specific entry.
    weather: LinkFaults,
    links: BTreeMap<(NodeId, NodeId), LinkFaults>,
    delivered: u64,
    dropped: u64,
    /// Batches carrying a Raft snapshot still to be dropped.
    drop_snapshots: u64,
}

/// The shared simulated network.
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<State>>,
}

impl SimNet {
    /// An empty network drawing its randomness from `rng`.
    pub fn new(rng: Rng) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                rng,
                inboxes: BTreeMap::new(),
                cut: BTreeSet::new(),
                weather: LinkFaults::default(),
                links: BTreeMap::new(),
                delivered: 0,
                dropped: 0,
                drop_snapshots: 0,
            })),
        }
    }

    /// (Re)connects `id` as incarnation `incarnation`: what was in flight to
    /// an earlier incarnation is lost.
    pub fn join(
        &self,
        id: NodeId,
        incarnation: u64,
    ) -> (Arc<SimTransport>, mpsc::Receiver<Incoming>) {
        let (tx, rx) = mpsc::channel(4096);
        self.state
            .lock()
            .inboxes
            .insert(id, Inbox { tx, incarnation });
        (
            Arc::new(SimTransport {
                me: id,
                net: self.clone(),
            }),
            rx,
        )
    }

    /// Takes `id` off the network (its process died).
    pub fn leave(&self, id: NodeId) {
        self.state.lock().inboxes.remove(&id);
    }

    /// Drops everything from `from` to `to` (one way).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.state.lock().cut.insert((from, to));
    }

    /// Restores every link and clears per-link faults (weather stays).
    pub fn heal(&self) {
        let mut st = self.state.lock();
        st.cut.clear();
        st.links.clear();
    }

    /// Sets the faults of every link without its own.
    pub fn set_weather(&self, faults: LinkFaults) {
        self.state.lock().weather = faults;
    }

    /// Sets the faults of one directed link.
    pub fn set_link(&self, from: NodeId, to: NodeId, faults: LinkFaults) {
        self.state.lock().links.insert((from, to), faults);
    }

    /// Drops the next `n` batches that carry a Raft snapshot.
    pub fn drop_snapshots(&self, n: u64) {
        self.state.lock().drop_snapshots = n;
    }

    /// How many of the snapshots asked for are still to be dropped.
    pub fn snapshots_to_drop(&self) -> u64 {
        self.state.lock().drop_snapshots
    }

    /// Messages delivered and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.delivered, st.dropped)
    }

    fn send(&self, from: NodeId, to: NodeId, msgs: Vec<PeerMessage>) {
        let mut st = self.state.lock();
        if st.cut.contains(&(from, to)) {
            st.dropped += 1;
            return;
        }
        let Some(inbox) = st.inboxes.get(&to) else {
            st.dropped += 1;
            return;
        };
        let (tx, incarnation) = (inbox.tx.clone(), inbox.incarnation);
        if st.drop_snapshots > 0 && msgs.iter().any(is_snapshot) {
            st.drop_snapshots -= 1;
            st.dropped += 1;
            return;
        }
        let faults = st.links.get(&(from, to)).copied().unwrap_or(st.weather);
        if st.rng.chance(faults.loss_permille) {
            st.dropped += 1;
            return;
        }
        let copies = if st.rng.chance(faults.dup_permille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let spread = faults.delay_max.saturating_sub(faults.delay_min);
            let delay = faults.delay_min
                + Duration::from_micros(st.rng.below(spread.as_micros() as u64 + 1));
            st.delivered += 1;
            let batch = Incoming {
                from,
                msgs: msgs.clone(),
            };
            let (tx, net) = (tx.clone(), self.state.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                // Delivered only to the incarnation it was sent to.
                let alive = net
                    .lock()
                    .inboxes
                    .get(&to)
                    .is_some_and(|i| i.incarnation == incarnation);
                if alive {
                    // A full inbox drops, as a full socket buffer would.
                    let _ = tx.try_send(batch);
                }
            });
        }
    }
}

/// Whether `m` is a Raft message carrying a snapshot.
fn is_snapshot(m: &PeerMessage) -> bool {
    use protobuf::Message as _;
    match m {
        PeerMessage::Raft(bytes) => raft::eraftpb::Message::parse_from_bytes(bytes)
            .is_ok_and(|m| m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot),
        _ => false,
    }
}

/// One node's end of the [`SimNet`].
pub struct SimTransport {
    me: NodeId,
    net: SimNet,
}

impl Transport for SimTransport {
    fn send(&self, to: NodeId, msgs: Vec<PeerMessage>) {
        self.net.send(self.me, to, msgs);
    }
}
