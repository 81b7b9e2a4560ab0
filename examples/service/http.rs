//! The HTTP routes.
//!
//! | route | answer |
//! |---|---|
//! | `POST /accounts/{id}/deposit` `{"amount": N, "key": "K"}` | 200 `{"outcome": "applied" or "duplicate", "balance", "token"}`; 409 stale token; 422 bad request or key reused; 503 lock not had (retry) |
//! | `GET /accounts/{id}` | 200 `{"id", "balance", "fence", "writes"}`; 404 |
//! | `GET /accounts/{id}/lock` | 200 the lock's holder (linearizable) or `null` |
//! | `GET /healthz` | 200 ready (leader known, session open and leased, caught up); 503 otherwise |
//! | `GET /metrics` | Prometheus text: peerlock's catalog and `service_*` |
//!
//! Test hook: with `--test-hooks`, `?hold_ms=N` on a deposit sleeps N ms
//! after the lock was granted and before the database write, so a test
//! can pause the holder there (SIGSTOP) past its TTL; the gauge
//! `service_test_holds_sleeping` counts the deposits sleeping there, so
//! the test pauses only once the critical section has begun. Without the
//! flag the parameter is refused (400).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use peerlock::Node;
use serde::Deserialize;
use serde_json::json;
use sqlx::AnyPool;

use crate::db::{self, Deposit, Outcome};

/// How far the applied index may trail the commit index and still count
/// as caught up (entries in flight under load).
const CAUGHT_UP_SLACK: u64 = 64;

/// Test hook: deposits now inside their critical section and sleeping
/// `hold_ms` (a gauge in `/metrics`, only ever set with `--test-hooks`).
pub const HOLDS_GAUGE: &str = "service_test_holds_sleeping";

/// What every handler shares.
pub struct App {
    pub node: Node,
    pub pool: AnyPool,
    pub prometheus: PrometheusHandle,
    pub test_hooks: bool,
    /// How long a deposit waits for its account's lock.
    pub lock_wait: Duration,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/accounts/{id}/deposit", post(deposit))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/lock", get(lock_holder))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

#[derive(Deserialize)]
struct DepositBody {
    amount: i64,
    key: String,
}

#[derive(Deserialize)]
struct Hooks {
    hold_ms: Option<u64>,
}

fn answer(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

fn count(outcome: &'static str, started: Instant) {
    metrics::counter!("service_deposits_total", "outcome" => outcome).increment(1);
    metrics::histogram!("service_deposit_seconds").record(started.elapsed().as_secs_f64());
}

async fn deposit(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(hooks): Query<Hooks>,
    Json(body): Json<DepositBody>,
) -> Response {
    let started = Instant::now();
    if body.amount <= 0 || body.key.is_empty() {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "amount must be positive and key non-empty"}),
        );
    }
    let hold = match hooks.hold_ms {
        Some(_) if !app.test_hooks => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "hold_ms is a test hook: start with --test-hooks"}),
            )
        }
        Some(ms) => Duration::from_millis(ms.min(60_000)),
        None => Duration::ZERO,
    };
    // The write runs in a task of its own and reports through `done`: if
    // the lease is lost while it runs, `with_lock` drops its closure but
    // the write goes on with the old token (as any work the closure spawned
    // would), and the fence is what decides. The answer is the database's.
    let (done_tx, mut done) = tokio::sync::watch::channel(None::<(Outcome, u64)>);
    let node_name = app.node.status().name.to_string();
    let app2 = app.clone();
    let name = format!("account/{id}");
    let locked = app
        .node
        .with_lock_timeout(&name, app.lock_wait, async move |g| {
            let token = g.token().0;
            let mut seen = done_tx.subscribe();
            if !hold.is_zero() {
                // Raised inside the critical section, so a test knows the
                // holder got this far before it pauses the process: the
                // grant is visible on other nodes before this node's
                // closure runs, and a pause in that gap ends with
                // `LockLost` and no late write at all.
                metrics::gauge!(HOLDS_GAUGE).increment(1.0);
            }
            tokio::spawn(async move {
                if !hold.is_zero() {
                    tokio::time::sleep(hold).await;
                    metrics::gauge!(HOLDS_GAUGE).decrement(1.0);
                }
                let outcome = match i64::try_from(token) {
                    Ok(t) => {
                        let d = Deposit {
                            account: &id,
                            key: &body.key,
                            amount: body.amount,
                            token: t,
                            node: &node_name,
                        };
                        db::deposit(&app2.pool, &d).await
                    }
                    Err(_) => Outcome::Failed(format!("token {token} does not fit a BIGINT")),
                };
                let _ = done_tx.send(Some((outcome, token)));
            });
            // Hold the lock until the write has finished.
            let _ = seen.wait_for(Option::is_some).await;
        })
        .await;
    // The write's outcome, whatever `with_lock` said; none if the closure
    // never ran (the lock was not had) — bounded by the busy timeout.
    let wait = tokio::time::timeout(Duration::from_secs(30), done.wait_for(Option::is_some));
    let outcome = match wait.await {
        Ok(Ok(v)) => v.clone(),
        _ => None,
    };
    match (outcome, locked) {
        (Some((Outcome::Applied { balance }, token)), _) => {
            count("applied", started);
            answer(
                StatusCode::OK,
                json!({"outcome": "applied", "balance": balance, "token": token}),
            )
        }
        (Some((Outcome::Duplicate { balance }, token)), _) => {
            count("duplicate", started);
            answer(
                StatusCode::OK,
                json!({"outcome": "duplicate", "balance": balance, "token": token}),
            )
        }
        (Some((Outcome::KeyReused, _)), _) => {
            count("key_reused", started);
            answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "this key was used for another deposit"}),
            )
        }
        (Some((Outcome::Stale { fence }, token)), _) => {
            count("stale", started);
            answer(
                StatusCode::CONFLICT,
                json!({"error": "stale fencing token: a later lock holder wrote first; nothing changed",
                       "token": token, "fence": fence}),
            )
        }
        (Some((Outcome::Failed(e), _)), _) => {
            count("db_error", started);
            tracing::warn!("deposit to {name} failed: {e}");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": format!("database: {e}"), "retryable": true}),
            )
        }
        (None, Err(e)) => {
            count("lock_error", started);
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": e.to_string(), "retryable": e.is_retryable()}),
            )
        }
        (None, Ok(())) => {
            count("lock_error", started);
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the write did not report", "retryable": true}),
            )
        }
    }
}

async fn account(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match db::account(&app.pool, &id).await {
        Ok(Some(a)) => answer(StatusCode::OK, json!(a)),
        Ok(None) => answer(StatusCode::NOT_FOUND, json!({"error": "no such account"})),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!("database: {e}")}),
        ),
    }
}

async fn lock_holder(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.node.holder(&format!("account/{id}")).await {
        Ok(Some(h)) => answer(
            StatusCode::OK,
            json!({"holder": h.holder.to_string(), "token": h.token.0, "waiters": h.waiters}),
        ),
        Ok(None) => answer(StatusCode::OK, json!(null)),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": e.to_string()}),
        ),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let s = app.node.status();
    let caught_up = s.applied_index + CAUGHT_UP_SLACK >= s.commit_index;
    let ready = s.leader.is_some() && s.session.is_some() && s.lease_valid && caught_up;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    answer(
        code,
        json!({
            "ready": ready,
            "name": s.name.to_string(),
            "leader": s.leader_name().map(|n| n.to_string()),
            "session_open": s.session.is_some(),
            "lease_valid": s.lease_valid,
            "commit_index": s.commit_index,
            "applied_index": s.applied_index,
        }),
    )
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
        .into_response()
}
