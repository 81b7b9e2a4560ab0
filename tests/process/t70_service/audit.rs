//! t70's audit: reads the database back after the load and checks every
//! promise the service makes.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::load::Sent;

/// What the audit counted, for the test's summary line.
pub(super) struct Audit {
    pub(super) applied_unacked: usize,
    pub(super) refused_rows: usize,
}

/// Reads the database back and checks every promise.
pub(super) async fn audit(url: &str, prefix: &str, sent: &[Sent], stale_token: u64) -> Audit {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("audit connects");
    let like = format!("{prefix}-%");
    let rows = sqlx::query(
        "SELECT idem_key, account, amount, token, seq FROM deposits WHERE account LIKE $1",
    )
    .bind(&like)
    .fetch_all(&pool)
    .await
    .expect("read deposits");
    // key -> (account, amount, token, seq); the key is the primary key, so
    // a deposit is recorded (and applied) at most once.
    let mut applied: HashMap<String, (String, i64, i64, i64)> = HashMap::new();
    for r in rows {
        let key: String = r.get(0);
        let v = (r.get(1), r.get(2), r.get(3), r.get(4));
        assert!(applied.insert(key.clone(), v).is_none(), "{key} twice");
    }
    let by_key: HashMap<&str, &Sent> = sent.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut applied_unacked = 0;
    for s in sent {
        let row = applied.get(&s.key);
        if s.acked {
            let row = row.unwrap_or_else(|| panic!("acknowledged {} not applied", s.key));
            assert_eq!((&row.0, row.1), (&s.account, s.amount), "{}", s.key);
        } else if row.is_some() {
            applied_unacked += 1;
        }
        if s.refused {
            assert!(row.is_none(), "{} answered 409 but applied", s.key);
        }
    }
    let stale_late = format!("{prefix}-stale-late");
    let stale_next = format!("{prefix}-stale-next");
    for (key, (_, amount, _, _)) in &applied {
        if *key == stale_next {
            assert_eq!(*amount, 7);
            continue;
        }
        let s = by_key
            .get(key.as_str())
            .unwrap_or_else(|| panic!("{key} applied but never sent"));
        assert_eq!(s.amount, *amount, "{key}");
    }
    assert!(
        !applied.contains_key(&stale_late),
        "the stale write applied"
    );
    assert!(applied.contains_key(&stale_next), "the next holder's write");

    let accounts = sqlx::query("SELECT id, balance, fence, writes FROM accounts WHERE id LIKE $1")
        .bind(&like)
        .fetch_all(&pool)
        .await
        .expect("read accounts");
    let mut fences: HashMap<String, i64> = HashMap::new();
    for a in accounts {
        let (id, balance, fence, writes): (String, i64, i64, i64) =
            (a.get(0), a.get(1), a.get(2), a.get(3));
        let mut mine: Vec<&(String, i64, i64, i64)> =
            applied.values().filter(|d| d.0 == id).collect();
        let sum: i64 = mine.iter().map(|d| d.1).sum();
        assert_eq!(balance, sum, "{id}: the balance is the deposits applied");
        let acked: i64 = sent
            .iter()
            .filter(|s| s.acked && s.account == id)
            .map(|s| s.amount)
            .sum();
        assert!(balance >= acked, "{id}: {balance} < acknowledged {acked}");
        assert_eq!(writes as usize, mine.len(), "{id}: one write per deposit");
        // In the order the database accepted them, the tokens rise: no
        // write with a token below an accepted one got in.
        mine.sort_by_key(|d| d.3);
        let seqs: Vec<i64> = mine.iter().map(|d| d.3).collect();
        assert_eq!(seqs, (1..=mine.len() as i64).collect::<Vec<_>>(), "{id}");
        for pair in mine.windows(2) {
            assert!(pair[0].2 < pair[1].2, "{id}: token fell {pair:?}");
        }
        assert!(
            mine.iter().all(|d| d.2 <= fence),
            "{id}: fence below a token"
        );
        fences.insert(id, fence);
    }
    for s in sent.iter().filter(|s| s.acked) {
        assert!(fences.contains_key(&s.account), "{} has no account", s.key);
    }

    let refused = sqlx::query(
        "SELECT idem_key, account, token, fence FROM refused_writes WHERE account LIKE $1",
    )
    .bind(&like)
    .fetch_all(&pool)
    .await
    .expect("read refused writes");
    let mut refused_keys = HashSet::new();
    for r in &refused {
        let (key, account, token, fence): (String, String, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert!(token < fence, "{key}: refused {token} but fence {fence}");
        assert!(token < fences[&account], "{key}: refused yet not stale");
        refused_keys.insert(key);
    }
    assert!(
        refused_keys.contains(&stale_late),
        "the paused holder's write is recorded as refused"
    );
    let stale_row = refused
        .iter()
        .find(|r| r.get::<String, _>(0) == stale_late)
        .expect("row");
    assert_eq!(stale_row.get::<i64, _>(2) as u64, stale_token);
    pool.close().await;
    Audit {
        applied_unacked,
        refused_rows: refused.len(),
    }
}
