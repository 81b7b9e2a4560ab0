//! Building a B-tree set by insertion, where `collect()` would do.
//!
//! `FromIterator` for `BTreeSet` sorts its input and then bulk-builds the
//! tree, which compiles a stable sort and a bulk build for each element
//! type beside the `insert` every set already has: 5 to 13 KiB of every
//! application's binary per type (issue 12, item 9). The sets built here
//! hold members, tokens or addresses, tens to thousands of them, where
//! inserting one by one costs the same.

use std::collections::BTreeSet;

/// The set of `items` (duplicates once), built by insertion.
pub fn btree_set<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    let mut set = BTreeSet::new();
    set.extend(items);
    set
}
