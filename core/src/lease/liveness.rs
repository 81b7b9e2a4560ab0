//! The leader's view of session liveness.
//!
//! The leader keeps, in memory only, when it last heard a keepalive for each
//! session. A session silent for longer than its TTL is due for an
//! `ExpireSession` proposal. A new leader starts every session's clock at its
//! own election, so a change of leader never shortens a lease. Once expiry
//! was proposed, the session is never acknowledged again by this leader.
//!
//! An expiry is proposed once per term. A proposal the leader's Raft
//! accepted is in the leader's own log and commits in this term unless the
//! term ends, and a new term starts a new `Liveness` (the leader's duties
//! are tied to their term): re-proposing it every second while in flight
//! only added entries (issue 8 item 10). A proposal Raft refused (a
//! leadership transfer in progress) is handed back with
//! [`Liveness::not_proposed`] and goes again next tick. [`Liveness::due`]
//! returns at most a budget of sessions per call, so thousands of sessions
//! falling silent together are proposed over several ticks.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::types::SessionId;

/// Where a session stands with this leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Heard from within its TTL (or not yet judged).
    Live,
    /// Judged silent; its expiry waits for a proposal (budget or refusal).
    Due,
    /// Its expiry was proposed in this term.
    Proposed,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    last_heard: Instant,
    ttl: Duration,
    expiry: Expiry,
}

/// Liveness of every open session, as this leader has seen it.
#[derive(Debug, Default)]
pub struct Liveness {
    sessions: BTreeMap<SessionId, Tracked>,
}

impl Liveness {
    /// Fresh tracking on becoming leader: every session gets a full TTL from `now`.
    pub fn new_term(
        now: Instant,
        sessions: impl IntoIterator<Item = (SessionId, Duration)>,
    ) -> Self {
        // Extended, not collected: see `crate::collect` (issue 12, item 9).
        let mut tracked = BTreeMap::new();
        tracked.extend(sessions.into_iter().map(|(s, ttl)| {
            (
                s,
                Tracked {
                    last_heard: now,
                    ttl,
                    expiry: Expiry::Live,
                },
            )
        }));
        Self { sessions: tracked }
    }

    /// A session was opened (applied) while this node leads.
    pub fn opened(&mut self, session: SessionId, ttl: Duration, now: Instant) {
        self.sessions.entry(session).or_insert(Tracked {
            last_heard: now,
            ttl,
            expiry: Expiry::Live,
        });
    }

    /// A session ended (applied).
    pub fn ended(&mut self, session: SessionId) {
        self.sessions.remove(&session);
    }

    /// A keepalive for `session` arrived at `now`. Returns false when the
    /// session must not be acknowledged: unknown here, or its expiry was
    /// already proposed.
    pub fn heard(&mut self, session: SessionId, now: Instant) -> bool {
        match self.sessions.get_mut(&session) {
            Some(t) if t.expiry == Expiry::Live => {
                t.last_heard = t.last_heard.max(now);
                true
            }
            _ => false,
        }
    }

    /// Whether an expiry was proposed for `session`.
    pub fn is_expiring(&self, session: SessionId) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|t| t.expiry != Expiry::Live)
    }

    /// Sessions whose expiry should be proposed now (silent for longer than
    /// their TTL, or due and not yet proposed), at most `budget` of them, in
    /// session order; marks them proposed.
    pub fn due(&mut self, now: Instant, budget: usize) -> Vec<SessionId> {
        let mut out = Vec::new();
        for (s, t) in &mut self.sessions {
            if out.len() >= budget {
                break;
            }
            if t.expiry == Expiry::Live && now.saturating_duration_since(t.last_heard) > t.ttl {
                t.expiry = Expiry::Due;
            }
            if t.expiry == Expiry::Due {
                t.expiry = Expiry::Proposed;
                out.push(*s);
            }
        }
        out
    }

    /// Raft refused the expiry proposal of `session`: propose it again at
    /// the next call of [`Liveness::due`]. The session stays unacknowledged.
    pub fn not_proposed(&mut self, session: SessionId) {
        if let Some(t) = self.sessions.get_mut(&session) {
            if t.expiry == Expiry::Proposed {
                t.expiry = Expiry::Due;
            }
        }
    }

    /// The earliest instant at which some session may become due (now, for
    /// one already due); `None` when nothing can become due in this term.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|t| match t.expiry {
                Expiry::Live => Some(t.last_heard + t.ttl),
                Expiry::Due => Some(t.last_heard),
                Expiry::Proposed => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(5);
    const ALL: usize = usize::MAX;

    /// DESIGN "Liveness is judged by the leader": silent for longer than the TTL -> expire.
    #[test]
    fn silent_session_is_due_after_its_ttl_and_never_acknowledged_again() {
        let t0 = Instant::now();
        let s = SessionId(1);
        let mut l = Liveness::new_term(t0, [(s, TTL)]);
        assert!(
            l.due(t0 + TTL, ALL).is_empty(),
            "exactly TTL is not yet silent for longer"
        );
        assert!(l.heard(s, t0 + Duration::from_secs(2)));
        assert!(l.due(t0 + TTL + Duration::from_millis(1), ALL).is_empty());
        let later = t0 + Duration::from_secs(2) + TTL + Duration::from_millis(1);
        assert_eq!(l.due(later, ALL), vec![s]);
        assert!(l.is_expiring(s));
        assert!(
            !l.heard(s, later),
            "no acknowledgement once expiry was proposed"
        );
        assert!(l.due(later, ALL).is_empty(), "not proposed twice at once");
        l.ended(s);
        assert!(l.due(later + TTL, ALL).is_empty());
    }

    /// DESIGN: a new leader gives every session a fresh full TTL from its own election.
    #[test]
    fn new_leader_gives_a_fresh_ttl() {
        let elected = Instant::now();
        let s = SessionId(7);
        let mut l = Liveness::new_term(elected, [(s, TTL)]);
        assert!(l.due(elected + TTL, ALL).is_empty());
        assert_eq!(l.next_deadline(), Some(elected + TTL));
        assert!(
            !l.heard(SessionId(8), elected),
            "unknown sessions are not acknowledged"
        );
    }

    /// Issue 8 item 10: an expiry Raft accepted is not proposed again
    /// while this term lasts (it was re-proposed every second while in
    /// flight), one Raft refused goes again at the next call, and a mass
    /// expiry is spread over calls by the budget, every session once.
    #[test]
    fn issue_8_expiry_is_proposed_once_per_term_and_spread_by_the_budget() {
        let t0 = Instant::now();
        let n = 1_000u64;
        let mut l = Liveness::new_term(t0, (1..=n).map(|s| (SessionId(s), TTL)));
        let silent = t0 + TTL + Duration::from_millis(1);
        let mut proposed = Vec::new();
        let mut calls = 0;
        loop {
            let batch = l.due(silent, 64);
            assert!(batch.len() <= 64, "{} proposals in one tick", batch.len());
            if batch.is_empty() {
                break;
            }
            calls += 1;
            proposed.extend(batch);
        }
        assert_eq!(proposed, (1..=n).map(SessionId).collect::<Vec<_>>());
        assert_eq!(calls, n.div_ceil(64));
        for later in [1, 2, 10, 60] {
            let at = silent + Duration::from_secs(later);
            assert!(l.due(at, ALL).is_empty(), "re-proposed after {later} s");
        }
        assert_eq!(l.next_deadline(), None);
        l.not_proposed(SessionId(7));
        assert!(l.is_expiring(SessionId(7)), "still not acknowledged");
        assert!(!l.heard(SessionId(7), silent));
        assert_eq!(l.due(silent, ALL), vec![SessionId(7)]);
    }
}
