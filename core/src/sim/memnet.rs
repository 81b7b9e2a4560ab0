//! An in-memory network for tests (feature `sim`): nodes in one process
//! exchange messages through channels, and links can be cut.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::transport::{Incoming, PeerMessage, Transport};
use crate::types::NodeId;

#[derive(Default)]
struct NetState {
    inboxes: HashMap<NodeId, mpsc::Sender<Incoming>>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    down: BTreeSet<NodeId>,
}

/// A shared in-memory network.
#[derive(Clone, Default)]
pub struct MemNet {
    state: Arc<Mutex<NetState>>,
}

impl MemNet {
    /// A new, empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `id` and returns its transport and its incoming channel.
    pub fn join(&self, id: NodeId) -> (Arc<MemTransport>, mpsc::Receiver<Incoming>) {
        let (tx, rx) = mpsc::channel(4096);
        let mut st = self.state.lock();
        st.inboxes.insert(id, tx);
        st.down.remove(&id);
        (
            Arc::new(MemTransport {
                me: id,
                net: self.clone(),
            }),
            rx,
        )
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition(&self, a: NodeId, b: NodeId) {
        let mut st = self.state.lock();
        st.cut.insert((a, b));
        st.cut.insert((b, a));
    }

    /// Cuts `n` off from everyone.
    pub fn isolate(&self, n: NodeId) {
        let ids: Vec<NodeId> = self.state.lock().inboxes.keys().copied().collect();
        for other in ids.into_iter().filter(|o| *o != n) {
            self.partition(n, other);
        }
    }

    /// Cuts the one direction `from` -> `to`.
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.state.lock().cut.insert((from, to));
    }

    /// Delivers `msgs` to `to` as if `from` had sent them (a test forging
    /// what an authenticated but misbehaving peer could send).
    pub fn inject(&self, from: NodeId, to: NodeId, msgs: Vec<PeerMessage>) {
        if let Some(tx) = self.state.lock().inboxes.get(&to) {
            let _ = tx.try_send(Incoming { from, msgs });
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.lock().cut.clear();
    }

    /// Takes `n` off the network (a crash).
    pub fn crash(&self, n: NodeId) {
        let mut st = self.state.lock();
        st.down.insert(n);
        st.inboxes.remove(&n);
    }

    /// A placeholder address for member lists.
    pub fn addr(id: NodeId) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], (id.0 % 50_000) as u16 + 1_000))
    }
}

/// One node's end of a [`MemNet`].
pub struct MemTransport {
    me: NodeId,
    net: MemNet,
}

impl Transport for MemTransport {
    fn send(&self, to: NodeId, msgs: Vec<PeerMessage>) {
        let st = self.net.state.lock();
        if st.down.contains(&self.me) || st.cut.contains(&(self.me, to)) {
            return;
        }
        if let Some(tx) = st.inboxes.get(&to) {
            let _ = tx.try_send(Incoming {
                from: self.me,
                msgs,
            });
        }
    }
}
