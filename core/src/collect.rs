//! Building a B-tree set by insertion, where `collect()` would do, and
//! sorting by a `u128` key, where `sort_by_key` would do.
//!
//! `FromIterator` for `BTreeSet` sorts its input and then bulk-builds the
//! tree, which compiles a stable sort and a bulk build for each element
//! type beside the `insert` every set already has: 5 to 13 KiB of every
//! application's binary per type (issue 12, item 9). The sets built here
//! hold members, tokens or addresses, tens to thousands of them, where
//! inserting one by one costs the same.
//!
//! Likewise `sort_by_key` compiles a stable sort for each item type and
//! key closure, 5 to 9 KiB each. [`sort_by_u128`] goes through
//! `sort_by_cached_key` (stable too) with a `u128` key: every caller
//! shares its one compiled sort of `(u128, usize)` pairs, and only the
//! short permutation step is compiled per item type. Keys here are node
//! ids, with at most one small number in front (a flag, a position).

use std::collections::BTreeSet;

/// The set of `items` (duplicates once), built by insertion.
pub fn btree_set<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    let mut set = BTreeSet::new();
    set.extend(items);
    set
}

/// Sorts `items` by `key`, keeping the order of equal items (see the
/// module docs for why not `sort_by_key`).
pub fn sort_by_u128<T>(items: &mut [T], key: impl FnMut(&T) -> u128) {
    items.sort_by_cached_key(key);
}

/// A node id, with `high` in front of it, as a [`sort_by_u128`] key.
pub fn id_key(high: u64, id: crate::types::NodeId) -> u128 {
    (u128::from(high) << 64) | u128::from(id.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    #[test]
    fn sorts_by_the_high_part_then_the_id_and_keeps_ties_in_order() {
        let mut v = vec![
            (1, NodeId(5), 'a'),
            (0, NodeId(9), 'b'),
            (1, NodeId(2), 'c'),
            (0, NodeId(9), 'd'),
            (0, NodeId(u64::MAX), 'e'),
        ];
        sort_by_u128(&mut v, |(h, id, _)| id_key(*h, *id));
        let order: String = v.iter().map(|t| t.2).collect();
        assert_eq!(order, "bdeca");
    }

    #[test]
    fn a_set_holds_each_item_once() {
        let s = btree_set([3, 1, 3, 2]);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
