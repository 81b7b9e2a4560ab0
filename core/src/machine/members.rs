//! The member table: who joined the cluster, under which Raft id, and where
//! to reach it. It lives in the replicated state beside the lock table and
//! travels in the same snapshot, so every node agrees on it byte for byte.
//!
//! Raft's `ConfState` stays the source of truth for who votes and who
//! learns; this table adds what Raft does not keep (names, addresses,
//! zones, who is leaving) and, above all, allocates the Raft ids.
//!
//! Rules, and where they come from:
//!
//! - **Ids are allocated by the log and never reused.** A `Join` entry
//!   takes `next_id` and bumps it; ids only go up, and an id that left the
//!   configuration is gone for good. A blank disk is a new member with a
//!   new id, so a lost data directory can never vote twice under an old id
//!   (etcd refuses a removed member id forever, "member has been
//!   permanently removed"; Akka's restarted system gets a new UID;
//!   openraft's FAQ `faq/06-operations/09-reuse-node-id.md` shows reusing
//!   an id splitting a cluster into two quorums, and suggests letting the
//!   log allocate ids).
//! - **A `Join` is idempotent on its token**, so a joiner that retries
//!   after a lost reply gets the id it was given the first time, never a
//!   second one.
//! - **Removed means `id < next_id` and no record.** Tombstones are
//!   implicit: a record is deleted exactly when it was in a configuration
//!   and is in none any more ([`MemberTable::apply_conf`], called after
//!   every applied conf change, in log order on every node). A member
//!   that joined but was not yet made a learner keeps its record, so it is
//!   not mistaken for a removed one while it waits for the leader to add
//!   it. So [`MemberTable::is_removed`] needs no `ConfState` argument.
//! - **Bounded:** at most [`MAX_MEMBERS`] records; names are 1 to
//!   [`MAX_MEMBER_NAME`] bytes and zones at most [`MAX_ZONE`] bytes, like
//!   every string the table keeps.
//!
//! Pure, like the lock machine: no clock, no IO, ordered collections.

use crate::collect::btree_set;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::command::Command;
use super::effect::Effect;
use crate::types::{NodeId, NodeName, MAX_LOCK_NAME};

/// The most members (records not removed) the table holds. A `Join` past
/// it is refused with [`JoinRefusal::Full`]. Every learner receives the
/// whole log, so the leader's fan-out grows with this count.
pub const MAX_MEMBERS: usize = 1_000;

/// The longest member name, in bytes (the same bound as a lock name).
pub const MAX_MEMBER_NAME: usize = MAX_LOCK_NAME;

/// The longest zone label, in bytes.
pub const MAX_ZONE: usize = 64;

/// What the table knows of one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Its Raft id, allocated by its `Join` (or by the founding set).
    pub id: NodeId,
    /// Its name: a label for humans and for the same-name rule, not an id.
    pub name: NodeName,
    /// Where to reach it (a hint; identity is proven by the connection).
    pub addr: SocketAddr,
    /// Its failure zone, if it named one.
    #[serde(deserialize_with = "crate::types::opt_string_as_read")]
    pub zone: Option<String>,
    /// Whether it keeps its Raft state on disk.
    pub durable: bool,
    /// Whether it asked to leave (graceful shutdown).
    pub leaving: bool,
    /// The log index of its `Join`; 0 for a member of the founding set.
    pub joined_at: u64,
    /// The token of its `Join` (0 for a founding member, which had none).
    pub join_token: u64,
    /// Whether an applied `ConfState` has named it (as voter or learner).
    pub added: bool,
}

/// Why a `Join` was refused. Decided in the log, so every node agrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinRefusal {
    /// The table already holds [`MAX_MEMBERS`] members.
    #[error("the cluster already has {limit} members")]
    Full {
        /// The limit.
        limit: usize,
    },
    /// The name is empty or longer than [`MAX_MEMBER_NAME`] bytes.
    #[error("a member name is 1 to {MAX_MEMBER_NAME} bytes")]
    InvalidName,
    /// The zone is longer than [`MAX_ZONE`] bytes.
    #[error("a zone is at most {MAX_ZONE} bytes")]
    InvalidZone,
    /// Every id has been allocated (`next_id` reached `u64::MAX`).
    #[error("no Raft ids are left to allocate")]
    IdsExhausted,
}

/// Why a founding set was refused by [`MemberTable::founded`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FoundingError {
    /// More founding members than [`MAX_MEMBERS`].
    #[error("{count} founding members, at most {limit} allowed")]
    TooMany {
        /// How many were given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A founding member's name is invalid.
    #[error("founding member {name:?}: {reason}")]
    Invalid {
        /// The name.
        name: NodeName,
        /// What is wrong.
        reason: JoinRefusal,
    },
}

/// Checks a member's name and zone as `Join` and restore do.
pub fn validate_member(name: &NodeName, zone: Option<&str>) -> Result<(), JoinRefusal> {
    let len = name.as_str().len();
    if len == 0 || len > MAX_MEMBER_NAME {
        return Err(JoinRefusal::InvalidName);
    }
    validate_zone(zone)
}

/// Checks a zone label: at most [`MAX_ZONE`] bytes.
pub fn validate_zone(zone: Option<&str>) -> Result<(), JoinRefusal> {
    if zone.is_some_and(|z| z.len() > MAX_ZONE) {
        return Err(JoinRefusal::InvalidZone);
    }
    Ok(())
}

/// The replicated member table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberTable {
    /// The cluster's id, chosen at founding; 0 while there is none.
    pub(super) cluster_id: u128,
    /// Set with the cluster id at founding, kept for the driver.
    pub(super) token_base: u64,
    /// The next id a `Join` allocates: above every id ever allocated.
    pub(super) next_id: u64,
    /// The members not removed, by id.
    pub(super) members: BTreeMap<NodeId, MemberRecord>,
}

impl Default for MemberTable {
    /// No cluster yet, no members; the first id allocated is 1 (Raft
    /// reserves 0 for "no node").
    fn default() -> Self {
        Self {
            cluster_id: 0,
            token_base: 0,
            next_id: 1,
            members: BTreeMap::new(),
        }
    }
}

impl MemberTable {
    /// The table of a statically founded cluster: the founding members get
    /// ids 1..=n in the order given (the caller sorts them by name), all
    /// already in the configuration (`added`), and `next_id` is n + 1.
    pub fn founded(
        cluster_id: u128,
        token_base: u64,
        initial: Vec<(NodeName, SocketAddr, bool)>,
    ) -> Result<Self, FoundingError> {
        let numbered = initial
            .into_iter()
            .zip(1u64..)
            .map(|((name, addr, durable), id)| (NodeId(id), name, addr, durable))
            .collect();
        Self::founded_with_ids(cluster_id, token_base, numbered)
    }

    /// Like [`MemberTable::founded`] with the ids given (a cluster founded
    /// before ids were allocated, whose ids come from its certificate
    /// names); `next_id` is one above the highest.
    pub fn founded_with_ids(
        cluster_id: u128,
        token_base: u64,
        initial: Vec<(NodeId, NodeName, SocketAddr, bool)>,
    ) -> Result<Self, FoundingError> {
        if initial.len() > MAX_MEMBERS {
            return Err(FoundingError::TooMany {
                count: initial.len(),
                limit: MAX_MEMBERS,
            });
        }
        let mut t = Self {
            cluster_id,
            token_base,
            ..Self::default()
        };
        for (id, name, addr, durable) in initial {
            if let Err(reason) = validate_member(&name, None) {
                return Err(FoundingError::Invalid { name, reason });
            }
            if id.0 == 0 || t.members.contains_key(&id) {
                return Err(FoundingError::Invalid {
                    name,
                    reason: JoinRefusal::IdsExhausted,
                });
            }
            t.next_id = t.next_id.max(id.0.saturating_add(1));
            t.members.insert(
                id,
                MemberRecord {
                    id,
                    name,
                    addr,
                    zone: None,
                    durable,
                    leaving: false,
                    joined_at: 0,
                    join_token: 0,
                    added: true,
                },
            );
        }
        Ok(t)
    }

    /// The cluster's id; 0 while none was founded.
    pub fn cluster_id(&self) -> u128 {
        self.cluster_id
    }

    /// The token base set at founding (0 while none).
    pub fn token_base(&self) -> u64 {
        self.token_base
    }

    /// The id the next `Join` gets: above every id ever allocated.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The record of member `id`, if it is a member (not removed).
    pub fn get(&self, id: NodeId) -> Option<&MemberRecord> {
        self.members.get(&id)
    }

    /// Every member, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &MemberRecord> {
        self.members.values()
    }

    /// The members named `name`, in id order (several after a blank-disk
    /// restart: the old incarnation until it is removed, and the new one).
    pub fn by_name<'a>(&'a self, name: &'a NodeName) -> impl Iterator<Item = &'a MemberRecord> {
        self.members.values().filter(move |r| &r.name == name)
    }

    /// The member whose `Join` carried `token`, if it is still a member
    /// (how a joiner whose reply was lost finds its id).
    pub fn by_token(&self, token: u64) -> Option<&MemberRecord> {
        self.members
            .values()
            .find(|r| r.joined_at != 0 && r.join_token == token)
    }

    /// How many members the table holds.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the table holds no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `id` was allocated and has since been removed from the
    /// configuration: such an id must be refused forever. The table's own
    /// records decide (see the module docs): a record is deleted exactly
    /// when an applied `ConfState` drops an id that one had named, so no
    /// `ConfState` is needed here, and a joiner not yet added is not
    /// "removed".
    pub fn is_removed(&self, id: NodeId) -> bool {
        id.0 != 0 && id.0 < self.next_id && !self.members.contains_key(&id)
    }

    /// Applies a membership command (other commands change nothing).
    pub(crate) fn apply(&mut self, index: u64, cmd: &Command, fx: &mut Vec<Effect>) {
        match cmd {
            Command::Join {
                token,
                name,
                addr,
                zone,
                durable,
            } => {
                let record = JoinRequest {
                    token: *token,
                    name,
                    addr: *addr,
                    zone: zone.as_deref(),
                    durable: *durable,
                };
                fx.push(match self.join(index, record) {
                    Ok(id) => Effect::MemberJoined { token: *token, id },
                    Err(reason) => Effect::MemberJoinRefused {
                        token: *token,
                        reason,
                    },
                });
            }
            Command::SetAddr { id, addr } => {
                if let Some(r) = self.members.get_mut(id) {
                    if r.addr != *addr {
                        r.addr = *addr;
                        fx.push(Effect::MemberAddrChanged {
                            id: *id,
                            addr: *addr,
                        });
                    }
                }
            }
            // The decoder refuses a zone too long; a command built in
            // memory with one changes nothing either.
            Command::SetZone { id, zone } if validate_zone(zone.as_deref()).is_ok() => {
                if let Some(r) = self.members.get_mut(id) {
                    r.zone.clone_from(zone);
                }
            }
            Command::Leave { id } => {
                if let Some(r) = self.members.get_mut(id) {
                    if !r.leaving {
                        r.leaving = true;
                        fx.push(Effect::MemberLeaving { id: *id });
                    }
                }
            }
            // First wins: a cluster is founded once (a later `Found`, or
            // one naming cluster 0, falls through to the no-op below).
            Command::Found {
                cluster_id,
                token_base,
            } if self.cluster_id == 0 && *cluster_id != 0 => {
                self.cluster_id = *cluster_id;
                self.token_base = *token_base;
            }
            _ => {}
        }
    }

    /// Allocates an id for a join, or returns the one its token already has.
    fn join(&mut self, index: u64, j: JoinRequest<'_>) -> Result<NodeId, JoinRefusal> {
        if let Some(r) = self.by_token(j.token) {
            return Ok(r.id);
        }
        validate_member(j.name, j.zone)?;
        if self.members.len() >= MAX_MEMBERS {
            return Err(JoinRefusal::Full { limit: MAX_MEMBERS });
        }
        let next = self
            .next_id
            .checked_add(1)
            .ok_or(JoinRefusal::IdsExhausted)?;
        let id = NodeId(self.next_id);
        self.next_id = next;
        self.members.insert(
            id,
            MemberRecord {
                id,
                name: j.name.clone(),
                addr: j.addr,
                zone: j.zone.map(str::to_owned),
                durable: j.durable,
                leaving: false,
                joined_at: index,
                join_token: j.token,
                added: false,
            },
        );
        Ok(id)
    }

    /// Follows an applied `ConfState`: `voters` and `learners` together
    /// hold every id in the configuration (incoming and outgoing voters,
    /// learners and learners_next; roles do not matter here). A record
    /// whose id appears is marked `added`; a record that was added and
    /// appears nowhere was removed, and is deleted (its id is then
    /// [`is_removed`](Self::is_removed) for good). Records never added
    /// (joined, not yet a learner) stay. Returns the removed ids, in order.
    ///
    /// Deterministic because every node applies conf changes in log order.
    pub fn apply_conf(&mut self, voters: &[u64], learners: &[u64]) -> Vec<NodeId> {
        let conf: BTreeSet<u64> = btree_set(voters.iter().chain(learners).copied());
        let mut removed = Vec::new();
        self.members.retain(|id, r| {
            if conf.contains(&id.0) {
                r.added = true;
                true
            } else if r.added {
                removed.push(*id);
                false
            } else {
                true
            }
        });
        removed
    }

    /// Checks what the table's code guarantees and serde cannot, for
    /// restore: keys match ids, ids in `1..next_id`, valid names and
    /// zones, joins not from the future, join tokens unique, the count
    /// within [`MAX_MEMBERS`].
    pub(crate) fn check(&self, applied_index: u64) -> Result<(), String> {
        if self.next_id == 0 {
            return Err("member table with next id 0".into());
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(format!("{} members", self.members.len()));
        }
        let mut tokens = BTreeSet::new();
        for (id, r) in &self.members {
            if *id != r.id || id.0 == 0 || id.0 >= self.next_id {
                return Err(format!("member {} has an impossible id", id.0));
            }
            validate_member(&r.name, r.zone.as_deref())
                .map_err(|e| format!("member {}: {e}", id.0))?;
            if r.joined_at > applied_index {
                return Err(format!("member {} joined in the future", id.0));
            }
            if r.joined_at != 0 && !tokens.insert(r.join_token) {
                return Err(format!("member {} repeats a join token", id.0));
            }
        }
        Ok(())
    }
}

/// A `Join`'s fields, borrowed from the command.
struct JoinRequest<'a> {
    token: u64,
    name: &'a NodeName,
    addr: SocketAddr,
    zone: Option<&'a str>,
    durable: bool,
}

impl super::LockTable {
    /// An empty lock table carrying `members` (a founded member table).
    pub fn with_members(members: MemberTable) -> Self {
        Self {
            members,
            ..Self::default()
        }
    }

    /// Takes `members` as the member table if this one records no cluster
    /// and no member: a table restored from a version 1 snapshot (written
    /// before member tables existed) adopts the founding members that every
    /// node of its cluster was started with. Returns whether it did.
    pub fn adopt_members(&mut self, members: MemberTable) -> bool {
        if self.members.cluster_id != 0 || !self.members.members.is_empty() {
            return false;
        }
        self.members = members;
        true
    }

    /// The member table.
    pub fn members(&self) -> &MemberTable {
        &self.members
    }

    /// Follows the `ConfState` that the conf-change entry at `index`
    /// produced (see [`MemberTable::apply_conf`]); returns the ids it
    /// removed. The entry counts as applied: an index at or below the
    /// applied index changes nothing (a replay), and `applied_index`
    /// moves to it, so two tables at the same applied index have followed
    /// the same configurations and hash alike.
    pub fn apply_conf(&mut self, index: u64, voters: &[u64], learners: &[u64]) -> Vec<NodeId> {
        if index <= self.applied_index {
            return Vec::new();
        }
        self.applied_index = index;
        self.members.apply_conf(voters, learners)
    }
}
