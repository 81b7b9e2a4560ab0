//! The running driver's side of a starting peer's hello (see
//! `bootstrap/hello.rs` for the rule): the boot count, and on the leader
//! what the peer acknowledged, which an older copy of a running node's
//! directory falls short of.

use super::{bootstrap, Driver};
use crate::storage::LogStore;
use crate::types::NodeId;

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Answers a starting peer's hello: refuse an identity that comes back
    /// with a different incarnation (it restarted without its state) or
    /// from an older copy of its directory (see `bootstrap::hello`).
    /// The leader also refuses one whose log ends below what it
    /// acknowledged (an older copy of a running node's directory).
    pub(super) fn on_hello(&mut self, hello: bootstrap::HelloFrom) {
        let recorded = self.recorded_log(hello.from, hello.id);
        let ack = bootstrap::answer_hello(
            self.peer_memory.as_mut(),
            &mut self.incarnations,
            hello,
            recorded,
            &self.founding,
        );
        if let Some(ack) = ack {
            self.transport.send(hello.from, vec![ack]);
        }
    }

    /// On the leader: what member `id` acknowledged to it (raft-rs's
    /// `matched`), and this term; `None` on a follower, or when `id` is no
    /// member whose name has transport key `key` (a removed id: a blank
    /// start of the same name may have rejoined under a new one).
    fn recorded_log(&self, key: NodeId, id: NodeId) -> Option<bootstrap::Recorded> {
        if !self.is_leader() || id == self.me {
            return None;
        }
        let m = self.table.members().get(id)?;
        if NodeId::from_name(m.name.as_str()) != key {
            return None;
        }
        let matched = self.raw.raft.prs().get(id.0)?.matched;
        Some(bootstrap::Recorded {
            term: self.raw.raft.term,
            matched,
        })
    }
}
