//! `Node::locks`: the names in use, paged, for operators (issue 12, item 6).
//! The read and its costs are described in `peerlock_core::client::locks`.

use peerlock_core::{Error, LocksPage};

use crate::Node;

impl Node {
    /// The names in use after `after` (from the first when `None`), at
    /// most `limit` of them (1 to [`crate::MAX_LOCKS_PAGE`]), in name
    /// order, read linearizably (a quorum round, as [`Node::holder`]).
    ///
    /// A name is in use while it is held, waited on, or awaits its handoff
    /// after a holder's session ended; each row has the name's kind
    /// (mutex, read-write lock or multi-lock name, or a semaphore and its
    /// count), every grant with its holder's member name, fencing token
    /// and age, the permits in use, and how many requests wait. Pass
    /// [`LocksPage::next`] as `after` for the next page; each page is
    /// linearizable on its own, not a snapshot of the whole table.
    ///
    /// The page is read from a range of the lock table's ordered map, so a
    /// call costs O(page) on the node's Raft task whatever the table's size.
    ///
    /// ```no_run
    /// # async fn demo(node: peerlock::Node) -> Result<(), peerlock::Error> {
    /// let mut after = None;
    /// loop {
    ///     let page = node.locks(after.as_deref(), 100).await?;
    ///     for row in &page.locks {
    ///         for g in &row.info.holders {
    ///             println!("{} held by {} (token {}) for {:?}, {} waiting",
    ///                 row.name, g.holder, g.token, g.age, row.info.waiters);
    ///         }
    ///     }
    ///     match page.next {
    ///         Some(name) => after = Some(name.as_str().to_owned()),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidRequest` when `limit` is 0 or above
    /// [`crate::MAX_LOCKS_PAGE`]; `InvalidName` when `after` is not a lock
    /// name; `NoQuorum` when no quorum answered within one session TTL;
    /// `Shutdown` once the node stopped.
    pub async fn locks(&self, after: Option<&str>, limit: usize) -> Result<LocksPage, Error> {
        self.handle().locks(after, limit).await
    }
}
