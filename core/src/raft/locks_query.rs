//! `locks()` and `holders()` answers, and the ages of grants (issue 12,
//! item 6).
//!
//! Both reads are ReadIndex reads (see `reads.rs`): once the round is
//! confirmed and applied here, the answer is read from this node's table.
//! `locks()` reads a range of the table's ordered map from the cursor, so
//! a page costs O(log n + page), not O(table).
//!
//! The replicated table holds no time (the state machine is pure, and
//! every node must apply the same bytes), so a grant's age is local: each
//! node notes, on its own clock, when it applied the entry that made a
//! grant ([`GrantAges`]). A grant's fencing token names that entry, so
//! the note is keyed by the holding session and the token. Notes are
//! dropped with their session and pruned against the session's grants
//! once they outnumber them twice over, so they stay within a constant
//! factor of the table's grants whatever the traffic.

use crate::collect::btree_set;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::reads::Purpose;
use super::Driver;
use crate::client::{HolderInfo, HoldersInfo, LockEntry, LocksPage};
use crate::error::Error;
use crate::machine::{Effect, LockTable, NameInfo, Outcome};
use crate::storage::LogStore;
use crate::types::{FencingToken, LockName, SessionId};

/// A `locks()` call's reply.
pub(crate) type LocksReply = oneshot::Sender<Result<LocksPage, Error>>;

/// When this node applied the entries that made the grants it knows of.
#[derive(Debug, Default)]
pub(crate) struct GrantAges {
    /// Entries up to this index were committed before this run began:
    /// applying them again at start-up says nothing of when they granted.
    replayed_upto: u64,
    by_session: BTreeMap<SessionId, BTreeMap<FencingToken, Instant>>,
}

/// Notes kept per session beyond twice its grants before a prune.
const SLACK: usize = 8;

impl GrantAges {
    /// Ages for a run whose log was committed up to `replayed_upto`.
    pub(crate) fn new(replayed_upto: u64) -> Self {
        Self {
            replayed_upto,
            by_session: BTreeMap::new(),
        }
    }

    /// Notes the grants that entry `index` made (its `Granted` replies)
    /// and forgets the sessions it ended. `table` is the table after the
    /// entry.
    pub(crate) fn note(&mut self, index: u64, effects: &[Effect], table: &LockTable, now: Instant) {
        if index <= self.replayed_upto {
            return;
        }
        for effect in effects {
            match effect {
                Effect::Reply {
                    session,
                    outcome: Outcome::Granted(token),
                    ..
                } => {
                    let notes = self.by_session.entry(*session).or_default();
                    notes.entry(*token).or_insert(now);
                    if notes.len() > 2 * table.grant_count(*session) + SLACK {
                        let held: BTreeSet<FencingToken> =
                            btree_set(table.locks_of(*session).into_iter().map(|(_, t)| t));
                        notes.retain(|t, _| held.contains(t));
                    }
                }
                Effect::SessionEnded { session, .. } => {
                    self.by_session.remove(session);
                }
                _ => {}
            }
        }
        // Sessions whose end this node never applied (a snapshot skipped
        // it): dropped once they outnumber the open ones twice over.
        if self.by_session.len() > 2 * table.session_count() + SLACK {
            self.by_session.retain(|s, _| table.session_exists(*s));
        }
    }

    /// How long `session`'s grant with `token` has been held, if known.
    fn age(&self, session: SessionId, token: FencingToken, now: Instant) -> Option<Duration> {
        let at = self.by_session.get(&session)?.get(&token)?;
        Some(now.saturating_duration_since(*at))
    }
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// A `locks()` call arrived: begin its read round, answered within one
    /// session TTL or with `NoQuorum` (the bound `holders()` has).
    pub(super) fn begin_locks(
        &mut self,
        after: Option<LockName>,
        limit: usize,
        reply: LocksReply,
        now: Instant,
    ) {
        let purpose = Purpose::Locks {
            after,
            limit,
            reply,
            deadline: now + self.cfg.session_ttl,
        };
        let ctx = self.reads.issue(purpose, now);
        self.raw.read_index(ctx);
    }

    /// A `locks()` read was confirmed and applied here: read the page.
    pub(super) fn answer_locks(&self, after: Option<LockName>, limit: usize, reply: LocksReply) {
        let now = self.clock.now();
        // One more than asked, to know whether a next page exists.
        let mut rows = self
            .table
            .names_after(after.as_ref(), limit.saturating_add(1));
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|(n, _)| n.clone())
        } else {
            None
        };
        let locks = rows
            .into_iter()
            .map(|(name, info)| LockEntry {
                name,
                info: self.with_ages(info, now),
            })
            .collect();
        let _ = reply.send(Ok(LocksPage { locks, next }));
    }

    /// A name's holders as the client reports them, with their ages.
    pub(super) fn with_ages(&self, info: NameInfo, now: Instant) -> HoldersInfo {
        let ages = &self.reads.ages;
        let aged = |g: crate::machine::GrantInfo| {
            let age = ages.age(g.session, g.token, now);
            HolderInfo {
                age,
                ..HolderInfo::from(g)
            }
        };
        let holders = info.holders.iter().cloned().map(aged).collect();
        HoldersInfo {
            holders,
            ..HoldersInfo::from(info)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Command, RequestKey};
    use crate::types::{NodeId, NodeName, RequestId};

    fn open(t: &mut LockTable, index: u64, s: u64) {
        t.apply(
            index,
            &Command::OpenSession {
                session: SessionId(s),
                node: NodeId(1),
                name: NodeName("n1".into()),
                ttl_ms: 10_000,
            },
        );
    }

    fn lock(t: &mut LockTable, index: u64, s: u64, r: u64, name: &str) -> Vec<Effect> {
        t.apply(
            index,
            &Command::Acquire {
                key: RequestKey {
                    session: SessionId(s),
                    request: RequestId(r),
                    floor: RequestId(r),
                },
                lock: LockName::new(name).unwrap(),
                wait: false,
            },
        )
    }

    fn release(t: &mut LockTable, index: u64, s: u64, r: u64, name: &str) -> Vec<Effect> {
        let token = t.holder(&LockName::new(name).unwrap()).unwrap().token;
        t.apply(
            index,
            &Command::Release {
                key: RequestKey {
                    session: SessionId(s),
                    request: RequestId(r),
                    floor: RequestId(r),
                },
                lock: LockName::new(name).unwrap(),
                token,
            },
        )
    }

    /// A session that locks and unlocks forever keeps a bounded number of
    /// notes; the grant it still holds keeps its first note.
    #[test]
    fn notes_stay_bounded_by_the_grants() {
        let mut t = LockTable::new();
        let mut ages = GrantAges::new(0);
        let t0 = Instant::now();
        open(&mut t, 1, 7);
        let fx = lock(&mut t, 2, 7, 1, "kept");
        ages.note(2, &fx, &t, t0);
        let kept = t.holder(&LockName::new("kept").unwrap()).unwrap().token;
        let mut index = 3;
        for r in 0..1_000u64 {
            let fx = lock(&mut t, index, 7, 2 + 2 * r, "churn");
            ages.note(index, &fx, &t, t0 + Duration::from_millis(r));
            let fx = release(&mut t, index + 1, 7, 3 + 2 * r, "churn");
            ages.note(index + 1, &fx, &t, t0 + Duration::from_millis(r));
            index += 2;
        }
        let notes = ages.by_session.get(&SessionId(7)).map_or(0, BTreeMap::len);
        assert!(notes <= 2 + SLACK + 1, "{notes} notes for 1 grant");
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            ages.age(SessionId(7), kept, later),
            Some(Duration::from_secs(5))
        );
    }

    /// Entries replayed at start-up were granted before this run: no age.
    #[test]
    fn replayed_entries_have_no_age() {
        let mut t = LockTable::new();
        let mut ages = GrantAges::new(2);
        open(&mut t, 1, 7);
        let fx = lock(&mut t, 2, 7, 1, "a");
        ages.note(2, &fx, &t, Instant::now());
        let token = t.holder(&LockName::new("a").unwrap()).unwrap().token;
        assert_eq!(ages.age(SessionId(7), token, Instant::now()), None);
    }
}
