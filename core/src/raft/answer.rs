//! Answering an acquire's caller once its outcome is applied: a guard for
//! a grant (a `LockGuard` for a mutex acquire, a `Grant` for a claims
//! acquire, issue 11), `Busy`, a typed error (`TableFull`, `WrongKind`,
//! `Invalid`: issue 11), or "your session ended, ask again".

use super::proposals::{acquire_error, claims_error, AcquireReply, Ask};
use super::Driver;
use crate::client::grant::Grant;
use crate::client::guard::LockGuard;
use crate::machine::Outcome;
use crate::storage::LogStore;
use crate::types::{FencingToken, RequestId};

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Sends acquire `request`'s answer to its caller. If the caller is
    /// gone, the guard comes back with the failed send and its drop
    /// releases the grant.
    pub(super) fn answer_acquire(&self, request: RequestId, ask: Ask, outcome: Outcome) {
        match ask {
            Ask::Lock { lock, reply } => {
                if let Some(e) = acquire_error(outcome, &lock) {
                    let _ = reply.send(Err(e));
                    return;
                }
                let answer = match outcome {
                    Outcome::Granted(token) => AcquireReply::Granted(LockGuard {
                        name: lock,
                        token: self.granted_token(token),
                        session: self.own.id,
                        inbox: self.inbox_tx.clone(),
                        released: false,
                        task_hold: None,
                        watch: self.own.lease_watch(&self.clock),
                    }),
                    Outcome::Busy => AcquireReply::Busy,
                    _ => AcquireReply::SessionEnded,
                };
                let _ = reply.send(Ok(answer));
            }
            Ask::Claims { claims, reply } => {
                if let Some(e) = claims_error(outcome, &claims) {
                    let _ = reply.send(Err(e));
                    return;
                }
                let answer = match outcome {
                    Outcome::Granted(token) => AcquireReply::Granted(Grant {
                        claims,
                        token: self.granted_token(token),
                        session: self.own.id,
                        request,
                        inbox: self.inbox_tx.clone(),
                        released: false,
                        task_holds: Vec::new(),
                        watch: self.own.lease_watch(&self.clock),
                    }),
                    Outcome::Busy => AcquireReply::Busy,
                    _ => AcquireReply::SessionEnded,
                };
                let _ = reply.send(Ok(answer));
            }
        }
    }

    /// A grant's token as handed to its holder (and counted).
    fn granted_token(&self, token: FencingToken) -> FencingToken {
        crate::metrics::granted();
        if crate::teeth::planted(crate::teeth::Bug::TokenReuseAfterRestart) {
            FencingToken(token.0 - self.started_at.min(token.0 - 1))
        } else {
            token
        }
    }
}
