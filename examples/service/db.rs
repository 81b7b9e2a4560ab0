//! The database side: one fenced transaction per deposit.
//!
//! The lock alone is not enough (Kleppmann, "How to do distributed
//! locking"): a holder can pause after it took the lock and write after its
//! lease ended and another holder wrote. So the account row keeps the
//! highest fencing token it accepted (`fence`), and every write first moves
//! it forward with `UPDATE accounts SET fence = $token WHERE id = $id AND
//! fence < $token`. Zero rows updated means a later holder already wrote:
//! the transaction is rolled back and nothing changes.
//!
//! Strictly `<`, not `<=`: every deposit takes the lock anew, and every
//! grant has a token of its own (peerlock's tokens rise with every grant,
//! across all locks), so one token never writes twice here. A holder that
//! makes several writes under one guard would compare with `<=` instead.
//!
//! The deposit is recorded under its idempotency key in the same
//! transaction, so a retried request (its answer was lost, its node was
//! killed) is answered "duplicate" and not applied twice. `writes` counts
//! the accepted deposits per account and each deposit keeps its number
//! (`seq`): an audit checks that tokens rise in the order writes were
//! accepted.
//!
//! One SQL text for SQLite and PostgreSQL through `sqlx::Any`: `$n`
//! placeholders and `ON CONFLICT .. DO NOTHING` mean the same in both.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// The tables; `IF NOT EXISTS` so every instance may run them (under a
/// peerlock lock, as PostgreSQL's catalog can refuse two at once).
const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS accounts (
        id TEXT PRIMARY KEY,
        balance BIGINT NOT NULL,
        fence BIGINT NOT NULL,
        writes BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS deposits (
        idem_key TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        amount BIGINT NOT NULL,
        token BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        node TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS refused_writes (
        idem_key TEXT NOT NULL,
        account TEXT NOT NULL,
        token BIGINT NOT NULL,
        fence BIGINT NOT NULL,
        node TEXT NOT NULL)",
];

/// What a deposit did.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Applied now: the new balance.
    Applied { balance: i64 },
    /// This key was applied before (a retry): nothing changed.
    Duplicate { balance: i64 },
    /// The key was used before for another account or amount.
    KeyReused,
    /// Refused: the account accepted `fence` > `token` already.
    Stale { fence: i64 },
    /// The database failed (the transaction was rolled back).
    Failed(String),
}

/// One deposit request.
pub struct Deposit<'a> {
    pub account: &'a str,
    pub key: &'a str,
    pub amount: i64,
    pub token: i64,
    pub node: &'a str,
}

/// An account as read back.
#[derive(serde::Serialize)]
pub struct Account {
    pub id: String,
    pub balance: i64,
    pub fence: i64,
    pub writes: i64,
}

/// A pool on `url`: SQLite (a file shared by the instances: WAL so
/// readers do not block the writer, a busy timeout so the instances wait
/// for each other's write lock instead of failing) or PostgreSQL.
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // busy_timeout first: switching to WAL needs the lock.
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// Creates the tables if missing.
pub async fn create_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for stmt in SCHEMA {
        sqlx::query(stmt).execute(pool).await?;
    }
    Ok(())
}

/// Applies `d` in one transaction fenced by `d.token` (see the module docs).
pub async fn deposit(pool: &AnyPool, d: &Deposit<'_>) -> Outcome {
    match try_deposit(pool, d).await {
        Ok(Outcome::Stale { fence }) => {
            // Kept apart (the fenced transaction was rolled back) so an
            // audit can count the refused writes.
            let rec = sqlx::query(
                "INSERT INTO refused_writes (idem_key, account, token, fence, node)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(d.key)
            .bind(d.account)
            .bind(d.token)
            .bind(fence)
            .bind(d.node)
            .execute(pool)
            .await;
            if let Err(e) = rec {
                tracing::warn!("could not record a refused write: {e}");
            }
            Outcome::Stale { fence }
        }
        Ok(o) => o,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

async fn try_deposit(pool: &AnyPool, d: &Deposit<'_>) -> Result<Outcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO accounts (id, balance, fence, writes) VALUES ($1, 0, 0, 0)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(d.account)
    .execute(&mut *tx)
    .await?;
    // The fence: only a token above every one accepted so far may write.
    let moved = sqlx::query("UPDATE accounts SET fence = $2 WHERE id = $1 AND fence < $2")
        .bind(d.account)
        .bind(d.token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if moved == 0 {
        let fence: i64 = sqlx::query("SELECT fence FROM accounts WHERE id = $1")
            .bind(d.account)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.rollback().await?;
        return Ok(Outcome::Stale { fence });
    }
    let fresh = sqlx::query(
        "INSERT INTO deposits (idem_key, account, amount, token, seq, node)
         VALUES ($1, $2, $3, $4, -1, $5) ON CONFLICT (idem_key) DO NOTHING",
    )
    .bind(d.key)
    .bind(d.account)
    .bind(d.amount)
    .bind(d.token)
    .bind(d.node)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if fresh == 0 {
        let prev = sqlx::query("SELECT account, amount FROM deposits WHERE idem_key = $1")
            .bind(d.key)
            .fetch_one(&mut *tx)
            .await?;
        let (account, amount): (String, i64) = (prev.try_get(0)?, prev.try_get(1)?);
        let balance = balance(&mut tx, d.account).await?;
        // The fence moved forward: harmless, and keeps the rule simple.
        tx.commit().await?;
        return Ok(if account == d.account && amount == d.amount {
            Outcome::Duplicate { balance }
        } else {
            Outcome::KeyReused
        });
    }
    sqlx::query("UPDATE accounts SET balance = balance + $2, writes = writes + 1 WHERE id = $1")
        .bind(d.account)
        .bind(d.amount)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE deposits SET seq = (SELECT writes FROM accounts WHERE id = $2)
         WHERE idem_key = $1",
    )
    .bind(d.key)
    .bind(d.account)
    .execute(&mut *tx)
    .await?;
    let balance = balance(&mut tx, d.account).await?;
    tx.commit().await?;
    Ok(Outcome::Applied { balance })
}

async fn balance(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT balance FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)
}

/// The account `id`, if it exists.
pub async fn account(pool: &AnyPool, id: &str) -> Result<Option<Account>, sqlx::Error> {
    let row: Option<AnyRow> =
        sqlx::query("SELECT id, balance, fence, writes FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    row.map(|r| {
        Ok(Account {
            id: r.try_get(0)?,
            balance: r.try_get(1)?,
            fence: r.try_get(2)?,
            writes: r.try_get(3)?,
        })
    })
    .transpose()
}
