//! Watches on who holds a name (issue 11: `watch_leader`), fed from the
//! applied lock table.
//!
//! Why from the applied table rather than by polling `holder`: a watcher
//! learns of every change as soon as this node applies it, at no cost per
//! watcher when nothing changes, and the values it sees follow this node's
//! apply order, which is log order: a watch can never show an older holder
//! after a newer one, across leader changes and partitions (a partitioned
//! node applies nothing, so its watch stands still rather than going back;
//! a node that catches up from a snapshot moves forward to it: etcd's
//! watches once went back in time when a member that had been cut off
//! restored the leader's snapshot, etcd-io/etcd#15271).
//! A value is as fresh as this node's applied log; `holder` and `leader`
//! are the linearizable reads.
//!
//! The cost when no one watches is one emptiness check per applied batch;
//! with watchers, one table lookup per watched name per batch, O(holders)
//! of that name (an election's name has one; a batch
//! coalesces its entries, so a watcher sees the latest holder, not every
//! one in between). Names nobody watches any more are dropped at the next
//! batch.

use std::collections::BTreeMap;

use tokio::sync::watch;

use crate::machine::LockTable;
use crate::types::{LockInfo, LockName};

/// What a watch of one name shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderView {
    /// The applied index at which this value was read: it never decreases
    /// for one node's watch, and is comparable across nodes of one cluster.
    pub index: u64,
    /// The holder then, if any.
    pub holder: Option<LockInfo>,
}

/// The watched names and their senders.
#[derive(Default)]
pub(crate) struct Watches {
    names: BTreeMap<LockName, watch::Sender<HolderView>>,
}

/// The name's exclusive holder: readers and permit holders hold a name
/// shared and lead nothing (a user-style test found the watch naming the
/// oldest reader, issue 11). O(holders) of the name.
fn view(table: &LockTable, name: &LockName) -> HolderView {
    let holder = table.holders(name).and_then(|info| {
        let waiters = info.waiters;
        info.holders
            .into_iter()
            .find(|g| g.kind == crate::machine::ClaimKind::Exclusive)
            .map(|g| LockInfo {
                token: g.token,
                holder: g.holder,
                holder_id: g.holder_id,
                session: g.session,
                waiters,
            })
    });
    HolderView {
        index: table.applied_index(),
        holder,
    }
}

/// The same grant: a change of the waiter count alone is not news.
fn same_grant(a: &Option<LockInfo>, b: &Option<LockInfo>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x.token == y.token && x.session == y.session,
        _ => false,
    }
}

impl Watches {
    /// A receiver for `name`, holding its current value.
    pub(crate) fn subscribe(
        &mut self,
        name: LockName,
        table: &LockTable,
    ) -> watch::Receiver<HolderView> {
        if let Some(tx) = self.names.get(&name) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(view(table, &name));
        self.names.insert(name, tx);
        rx
    }

    /// After an applied batch (or a snapshot restore): tells each watch
    /// whose holder changed, and forgets names nobody watches.
    pub(crate) fn refresh(&mut self, table: &LockTable) {
        if self.names.is_empty() {
            return;
        }
        self.names.retain(|_, tx| tx.receiver_count() > 0);
        for (name, tx) in &self.names {
            let now = view(table, name);
            tx.send_if_modified(|v| {
                if same_grant(&v.holder, &now.holder) {
                    false
                } else {
                    *v = now;
                    true
                }
            });
        }
    }

    /// How many names are watched (tests of what must stay bounded).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Command, RequestKey};
    use crate::types::{NodeId, NodeName, RequestId, SessionId};

    fn open(t: &mut LockTable, index: u64, s: u64) {
        t.apply(
            index,
            &Command::OpenSession {
                session: SessionId(s),
                node: NodeId(s),
                name: NodeName(format!("n{s}")),
                ttl_ms: 1000,
            },
        );
    }

    fn acquire(t: &mut LockTable, index: u64, s: u64, r: u64) {
        t.apply(
            index,
            &Command::Acquire {
                key: RequestKey {
                    session: SessionId(s),
                    request: RequestId(r),
                    floor: RequestId(0),
                },
                lock: LockName::new("leader").unwrap(),
                wait: true,
            },
        );
    }

    #[test]
    fn a_watch_sees_each_new_holder_in_log_order_and_not_waiter_counts() {
        let mut t = LockTable::new();
        let mut w = Watches::default();
        let name = LockName::new("leader").unwrap();
        let mut rx = w.subscribe(name.clone(), &t);
        assert_eq!(rx.borrow_and_update().holder, None);
        open(&mut t, 1, 1);
        open(&mut t, 2, 2);
        acquire(&mut t, 3, 1, 1);
        w.refresh(&t);
        assert!(rx.has_changed().unwrap());
        let first = rx.borrow_and_update().clone();
        assert_eq!(first.holder.as_ref().unwrap().session, SessionId(1));
        // A second candidate queues: the holder is the same, no news.
        acquire(&mut t, 4, 2, 1);
        w.refresh(&t);
        assert!(!rx.has_changed().unwrap());
        // The holder's session closes: the lock awaits its handoff (no holder).
        t.apply(
            5,
            &Command::CloseSession {
                session: SessionId(1),
            },
        );
        w.refresh(&t);
        let gap = rx.borrow_and_update().clone();
        assert_eq!(gap.holder, None);
        assert!(gap.index > first.index);
        t.apply(
            6,
            &Command::Handoff {
                lock: name,
                freed_at: 5,
            },
        );
        w.refresh(&t);
        let second = rx.borrow_and_update().clone();
        assert_eq!(second.holder.as_ref().unwrap().session, SessionId(2));
        assert!(second.holder.unwrap().token > first.holder.unwrap().token);
        assert!(second.index > gap.index);
    }

    #[test]
    fn names_nobody_watches_are_forgotten() {
        let t = LockTable::new();
        let mut w = Watches::default();
        let rx = w.subscribe(LockName::new("a").unwrap(), &t);
        let rx2 = w.subscribe(LockName::new("a").unwrap(), &t);
        assert_eq!(w.len(), 1);
        drop(rx);
        w.refresh(&t);
        assert_eq!(w.len(), 1, "one receiver is left");
        drop(rx2);
        w.refresh(&t);
        assert_eq!(w.len(), 0);
    }
}
