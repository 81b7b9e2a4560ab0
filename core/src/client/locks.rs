//! `locks()`: every name in use, paged, read linearizably (issue 12,
//! item 6: the operator's view etcd lacks).
//!
//! One row per name, with its kind, its grants, its waiters: a name is
//! what an operator asks about ("who holds `orders/42`, since when, and
//! who waits"), and a row per name keeps the cursor a plain name, so a
//! page never splits the readers of one name across two pages.
//!
//! The read is the one `holders()` makes: a ReadIndex round confirms the
//! table is current, then the driver reads a range of its ordered map from
//! the cursor, so a page costs O(log n + page) on the driver whatever the
//! table's size. Pages are not a snapshot of one instant: each page is
//! linearizable on its own, and a name granted or freed between two pages
//! shows up (or not) as of the later page.

use tokio::sync::oneshot;

use super::claims::HoldersInfo;
use super::handle::NodeHandle;
use crate::error::Error;
use crate::raft::Input;
use crate::types::LockName;

/// The most rows one [`NodeHandle::locks`] call returns. A page is built
/// on the driver's task, between Raft rounds: the bound keeps that pause
/// short (well under a millisecond for a thousand names).
pub const MAX_LOCKS_PAGE: usize = 1_000;

/// One name in use, in a [`LocksPage`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockEntry {
    /// The name.
    pub name: LockName,
    /// Its kind, grants (holder name, token, age), permits in use,
    /// waiters and pending handoff, as [`NodeHandle::holders`] reads them.
    pub info: HoldersInfo,
}

/// One page of [`NodeHandle::locks`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocksPage {
    /// Names in use, in name (byte) order.
    pub locks: Vec<LockEntry>,
    /// Where the next page starts: pass it as `after`. `None` when this
    /// page reached the last name.
    pub next: Option<LockName>,
}

/// Checks a page request: the cursor is a lock name, the limit 1 to
/// [`MAX_LOCKS_PAGE`].
pub(crate) fn page_request(
    after: Option<&str>,
    limit: usize,
) -> Result<(Option<LockName>, usize), Error> {
    if limit == 0 || limit > MAX_LOCKS_PAGE {
        return Err(Error::InvalidRequest {
            reason: format!(
                "a page of locks holds 1 to {MAX_LOCKS_PAGE} names, not {limit}: \
                 ask for fewer and follow `next`"
            ),
        });
    }
    let after = after.map(LockName::new).transpose()?;
    Ok((after, limit))
}

impl NodeHandle {
    /// The names in use after `after` (from the first when `None`), at
    /// most `limit` of them, in name order, read linearizably (a quorum
    /// round). A name is in use while it is held, waited on, or awaits its
    /// handoff after a holder's session ended. Follow
    /// [`LocksPage::next`] for the rest.
    ///
    /// # Errors
    ///
    /// `InvalidRequest` when `limit` is 0 or above [`MAX_LOCKS_PAGE`];
    /// `InvalidName` when `after` is not a lock name; `NoQuorum` when no
    /// quorum answered within one session TTL (as `holders()`);
    /// `Shutdown`.
    #[tracing::instrument(level = "debug", skip_all, fields(after = after.unwrap_or(""), limit = limit))]
    pub async fn locks(&self, after: Option<&str>, limit: usize) -> Result<LocksPage, Error> {
        let (after, limit) = page_request(after, limit)?;
        let place = self.place().await?;
        let (tx, rx) = oneshot::channel();
        self.send_input(Input::Locks {
            after,
            limit,
            reply: tx,
            place,
        })?;
        rx.await.map_err(|_| self.gone())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_one_to_the_maximum() {
        assert!(matches!(
            page_request(None, 0),
            Err(Error::InvalidRequest { .. })
        ));
        assert!(matches!(
            page_request(None, MAX_LOCKS_PAGE + 1),
            Err(Error::InvalidRequest { .. })
        ));
        assert!(page_request(None, MAX_LOCKS_PAGE).is_ok());
        assert!(matches!(
            page_request(Some(""), 10),
            Err(Error::InvalidName { .. })
        ));
        let (after, _) = page_request(Some("a/1"), 1).unwrap();
        assert_eq!(after.as_ref().map(LockName::as_str), Some("a/1"));
    }
}
