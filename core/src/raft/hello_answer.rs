//! The running driver's side of a starting peer's hello (see
//! `bootstrap/hello.rs` for the rule): the boot count, and on the leader
//! what the peer acknowledged, which an older copy of a running node's
//! directory falls short of.
//!
//! # Which hellos are judged
//!
//! A founder says hello under the Raft id its name gives; a member that
//! joined through seeds restarts under the id the cluster allocated with
//! a committed `Join` (issue 9), which is never its name's key. [`route`]
//! decides from the member table alone:
//!
//! - A node that is not a member says hello under its name: it must join.
//!   So must a first start (boot 1: in memory, or a new directory) that
//!   this node cannot vouch for: only a founder remembers which founders
//!   took part (a founder that never finished its first start is unknown
//!   to it, and may still found); a node that joined remembers none, and a
//!   blank start it let in could vote again under an id that voted before.
//! - A joiner before its snapshot knows no member: it can neither vouch
//!   for a start nor tell it to join (telling a restarting member so made
//!   every founder of a cluster whose only running node was such a joiner
//!   give up its identity, and none could start again: the simulator's
//!   membership runs, seed 130 forced to a membership run).
//! - A restart under an allocated id is judged when the table holds that
//!   id under the connection's name. An id the table removed (below its
//!   `next_id`, with no record: ids are never reused) is answered
//!   `Removed`, as a Raft message from it would be (`removed.rs`): the
//!   start stops there instead of taking part to be told so. A table that
//!   does not know the id yet (it has not applied the `Join`: a lagging
//!   node) says nothing: it can neither vouch for the start nor tell it to
//!   join, and a wrong "join" would make a live member give up its id.

use super::{bootstrap, Driver};
use crate::machine::MemberTable;
use crate::storage::LogStore;
use crate::transport::PeerMessage;
use crate::types::NodeId;

/// What a running node does with a hello (see the module docs).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// Say nothing.
    Ignore,
    /// Tell it to join as a new member.
    JoinInstead,
    /// Judge the start (the boot rule, and the log rule on the leader).
    Judge,
    /// Tell it its id was removed.
    Removed,
}

/// Where a hello from connection `from`, naming Raft id `id` and boot
/// `boot`, goes; `founder`: this node founded the cluster.
pub(super) fn route(
    members: &MemberTable,
    founder: bool,
    from: NodeId,
    id: NodeId,
    boot: u64,
) -> Route {
    if members.is_empty() {
        return Route::Ignore;
    }
    if id != from {
        return match members.get(id) {
            Some(m) if NodeId::from_name(m.name.as_str()) == from => Route::Judge,
            // The id is another name's: not this connection's to claim.
            Some(_) => Route::Ignore,
            None if members.is_removed(id) => Route::Removed,
            None => Route::Ignore,
        };
    }
    let member = members
        .iter()
        .any(|m| NodeId::from_name(m.name.as_str()) == from);
    if !member || (!founder && boot <= 1) {
        Route::JoinInstead
    } else {
        Route::Judge
    }
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Answers a starting peer's hello: refuse an identity that comes back
    /// with a different incarnation (it restarted without its state) or
    /// from an older copy of its directory (see `bootstrap::hello`).
    /// The leader also refuses one whose log ends below what it
    /// acknowledged (an older copy of a running node's directory).
    pub(super) fn on_hello(&mut self, hello: bootstrap::HelloFrom) {
        let route = route(
            self.table.members(),
            !self.founding.is_empty(),
            hello.from,
            hello.id,
            hello.run.boot,
        );
        match route {
            Route::Ignore => {}
            Route::JoinInstead => {
                let cluster_id = self.table.members().cluster_id();
                self.transport
                    .send(hello.from, vec![PeerMessage::JoinInstead { cluster_id }]);
            }
            Route::Removed => {
                let cluster_id = self.table.members().cluster_id();
                tracing::info!(node = %self.name, peer = %hello.from, id = %hello.id, "a removed member restarts from its old directory; telling it");
                self.transport.send(
                    hello.from,
                    vec![PeerMessage::Removed {
                        cluster_id,
                        id: hello.id,
                    }],
                );
            }
            Route::Judge => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Command;
    use crate::types::NodeName;

    fn key(name: &str) -> NodeId {
        NodeId::from_name(name)
    }

    /// Founders `a`, `b`, `c` (ids = their names' keys), then `d` joined
    /// (id 1 above the highest), then `e` joined and was removed, then a
    /// blank start of `a` rejoined under a new id.
    fn table() -> (MemberTable, NodeId, NodeId, NodeId) {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], 1).into();
        let founders = ["a", "b", "c"]
            .iter()
            .map(|n| (key(n), NodeName((*n).into()), addr, true))
            .collect();
        let mut t = MemberTable::founded_with_ids(7, 0, founders).expect("valid founders");
        let mut fx = Vec::new();
        let mut join = |t: &mut MemberTable, index: u64, name: &str| {
            let cmd = Command::Join {
                token: index,
                name: NodeName(name.into()),
                addr,
                durable: true,
                zone: None,
            };
            t.apply(index, &cmd, &mut fx);
            t.iter()
                .find(|m| m.name.as_str() == name)
                .map(|m| m.id)
                .expect("joined")
        };
        let d = join(&mut t, 10, "d");
        let e = join(&mut t, 11, "e");
        let founders: Vec<u64> = ["a", "b", "c"].iter().map(|n| key(n).0).collect();
        let with = |more: &[NodeId]| -> Vec<u64> {
            founders
                .iter()
                .copied()
                .chain(more.iter().map(|m| m.0))
                .collect()
        };
        t.apply_conf(&founders, &with(&[d, e])[3..]);
        // `e` removed: its record goes.
        assert_eq!(t.apply_conf(&founders, &with(&[d])[3..]), vec![e]);
        let a2 = join(&mut t, 13, "a");
        (t, d, e, a2)
    }

    /// Issue 9: a member that joined restarts under its allocated id and is
    /// judged by it; a removed id is told so; a table that never saw the
    /// id says nothing (it cannot vouch, and "join" would make a live
    /// member give up its id).
    #[test]
    fn a_joined_members_restart_is_judged_by_its_id_and_a_removed_one_told() {
        let (t, d, e, a2) = table();
        assert_eq!(route(&t, true, key("d"), d, 2), Route::Judge);
        assert_eq!(route(&t, false, key("d"), d, 9), Route::Judge);
        // A rejoined name under its new id, though the name founded too.
        assert_eq!(route(&t, true, key("a"), a2, 2), Route::Judge);
        assert_eq!(route(&t, true, key("e"), e, 3), Route::Removed);
        let unknown = NodeId(t.next_id());
        assert_eq!(route(&t, true, key("f"), unknown, 2), Route::Ignore);
        assert_eq!(route(&t, true, key("d"), unknown, 2), Route::Ignore);
        // Another name's id.
        assert_eq!(route(&t, true, key("b"), d, 2), Route::Ignore);
        // A joiner before its snapshot knows nobody.
        let empty = MemberTable::default();
        assert_eq!(route(&empty, false, key("d"), d, 2), Route::Ignore);
    }

    /// Founders' hellos route as before the joined members' round.
    #[test]
    fn founders_hellos_route_as_before() {
        let (t, ..) = table();
        assert_eq!(route(&t, true, key("b"), key("b"), 3), Route::Judge);
        assert_eq!(route(&t, true, key("b"), key("b"), 1), Route::Judge);
        // A node that joined cannot vouch for a first start.
        assert_eq!(route(&t, false, key("b"), key("b"), 1), Route::JoinInstead);
        assert_eq!(route(&t, false, key("b"), key("b"), 2), Route::Judge);
        assert_eq!(route(&t, true, key("z"), key("z"), 2), Route::JoinInstead);
    }
}
