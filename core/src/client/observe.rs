//! Spans and metrics of the public acquire calls (issue 12, items 1 and
//! 2): one `debug` span per call with the lock's name, and the token, the
//! wait and the outcome recorded on it once known; one count by `kind` and
//! `outcome` and, when granted, one wait sample.
//!
//! Cheap when nobody listens: a disabled span is one callsite check and
//! its fields are never evaluated; nothing is formatted here.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::field::Empty;
use tracing::Instrument;

use super::grant::Grant;
use super::guard::LockGuard;
use crate::error::Error;
use crate::machine::{Claim, ClaimKind};
use crate::metrics::Kind;
use crate::types::FencingToken;

/// What an acquire call answers: a grant's token, or `None` when busy.
pub(crate) trait Answer {
    fn granted(&self) -> Option<FencingToken>;
}

impl Answer for LockGuard {
    fn granted(&self) -> Option<FencingToken> {
        Some(self.token)
    }
}

impl Answer for Grant {
    fn granted(&self) -> Option<FencingToken> {
        Some(self.token)
    }
}

impl<T: Answer> Answer for Option<T> {
    fn granted(&self) -> Option<FencingToken> {
        self.as_ref().and_then(Answer::granted)
    }
}

/// The label of a claims acquire: a semaphore, a read or write lock, or
/// several names at once.
pub(crate) fn kind_of(claims: &[Claim]) -> Kind {
    match claims {
        [one] => match one.kind {
            ClaimKind::Exclusive => Kind::Write,
            ClaimKind::Shared => Kind::Read,
            ClaimKind::Permits { .. } => Kind::Semaphore,
        },
        _ => Kind::Multi,
    }
}

/// Runs acquire `call` of `kind` on `name` inside its span, then counts
/// and records how it ended.
pub(crate) async fn acquire<T, F>(kind: Kind, name: &str, call: F) -> Result<T, Error>
where
    T: Answer,
    F: Future<Output = Result<T, Error>>,
{
    let span = tracing::debug_span!(
        "acquire",
        kind = kind.as_str(),
        lock = name,
        token = Empty,
        waited_ms = Empty,
        outcome = Empty
    );
    let started = Instant::now();
    let result = call.instrument(span.clone()).await;
    let waited = started.elapsed();
    let answer = result.as_ref().map(Answer::granted);
    let outcome =
        crate::metrics::acquire_ended(kind, waited, &answer, |e| matches!(e, Error::Timeout));
    if !span.is_disabled() {
        if let Ok(Some(token)) = answer {
            span.record("token", token.0);
        }
        span.record("waited_ms", waited.as_millis() as u64);
        span.record("outcome", outcome);
    }
    result
}

/// Runs a waiting acquire under `timeout`: `Error::Timeout` (counted, and
/// recorded on the span) when it ran out. The inner call's own span
/// names the lock and records a grant or an error.
pub(crate) async fn with_timeout<T, F>(kind: Kind, timeout: Duration, call: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let span = tracing::debug_span!(
        "acquire_timeout",
        kind = kind.as_str(),
        timeout_ms = timeout.as_millis() as u64,
        outcome = Empty
    );
    match tokio::time::timeout(timeout, call)
        .instrument(span.clone())
        .await
    {
        Ok(result) => result,
        Err(_) => {
            let none: Result<Option<()>, Error> = Err(Error::Timeout);
            crate::metrics::acquire_ended(kind, timeout, &none, |_| true);
            span.record("outcome", "timeout");
            Err(Error::Timeout)
        }
    }
}
