//! The leader's view of session liveness.
//!
//! The leader keeps, in memory only, when it last heard a keepalive for each
//! session. A session silent for longer than its TTL is due for an
//! `ExpireSession` proposal. A new leader starts every session's clock at its
//! own election, so a change of leader never shortens a lease. Once expiry
//! was proposed, the session is never acknowledged again by this leader.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::types::SessionId;

/// How long to wait before proposing the same expiry again.
const REPROPOSE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Tracked {
    last_heard: Instant,
    ttl: Duration,
    expiry_proposed: Option<Instant>,
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
        let sessions = sessions
            .into_iter()
            .map(|(s, ttl)| {
                (
                    s,
                    Tracked {
                        last_heard: now,
                        ttl,
                        expiry_proposed: None,
                    },
                )
            })
            .collect();
        Self { sessions }
    }

    /// A session was opened (applied) while this node leads.
    pub fn opened(&mut self, session: SessionId, ttl: Duration, now: Instant) {
        self.sessions.entry(session).or_insert(Tracked {
            last_heard: now,
            ttl,
            expiry_proposed: None,
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
            Some(t) if t.expiry_proposed.is_none() => {
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
            .is_some_and(|t| t.expiry_proposed.is_some())
    }

    /// Sessions whose expiry should be proposed now (silent for longer than
    /// their TTL, or proposed a while ago and still open); marks them.
    pub fn due(&mut self, now: Instant) -> Vec<SessionId> {
        let mut out = Vec::new();
        for (s, t) in &mut self.sessions {
            let due = match t.expiry_proposed {
                None => now.saturating_duration_since(t.last_heard) > t.ttl,
                Some(at) => now.saturating_duration_since(at) >= REPROPOSE_AFTER,
            };
            if due {
                t.expiry_proposed = Some(now);
                out.push(*s);
            }
        }
        out
    }

    /// The earliest instant at which some session may become due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .map(|t| match t.expiry_proposed {
                None => t.last_heard + t.ttl,
                Some(at) => at + REPROPOSE_AFTER,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(5);

    /// DESIGN "Liveness is judged by the leader": silent for longer than the TTL -> expire.
    #[test]
    fn silent_session_is_due_after_its_ttl_and_never_acknowledged_again() {
        let t0 = Instant::now();
        let s = SessionId(1);
        let mut l = Liveness::new_term(t0, [(s, TTL)]);
        assert!(
            l.due(t0 + TTL).is_empty(),
            "exactly TTL is not yet silent for longer"
        );
        assert!(l.heard(s, t0 + Duration::from_secs(2)));
        assert!(l.due(t0 + TTL + Duration::from_millis(1)).is_empty());
        let later = t0 + Duration::from_secs(2) + TTL + Duration::from_millis(1);
        assert_eq!(l.due(later), vec![s]);
        assert!(l.is_expiring(s));
        assert!(
            !l.heard(s, later),
            "no acknowledgement once expiry was proposed"
        );
        assert!(l.due(later).is_empty(), "not proposed twice at once");
        assert_eq!(
            l.due(later + REPROPOSE_AFTER),
            vec![s],
            "re-proposed if still open"
        );
        l.ended(s);
        assert!(l.due(later + REPROPOSE_AFTER * 2).is_empty());
    }

    /// DESIGN: a new leader gives every session a fresh full TTL from its own election.
    #[test]
    fn new_leader_gives_a_fresh_ttl() {
        let elected = Instant::now();
        let s = SessionId(7);
        let mut l = Liveness::new_term(elected, [(s, TTL)]);
        assert!(l.due(elected + TTL).is_empty());
        assert_eq!(l.next_deadline(), Some(elected + TTL));
        assert!(
            !l.heard(SessionId(8), elected),
            "unknown sessions are not acknowledged"
        );
    }
}
