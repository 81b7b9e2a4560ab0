//! Issue 12, item 6: the operator's `locks` and `members` commands of
//! `examples/node`, across three processes: a page chains to the next, a
//! row names its holder's member name, token and waiters, and a follower
//! answers as the holder's process does.

use std::time::Duration;

use crate::procs::start;

/// The words after `locks ` in an answer: `next=..` first, then the rows.
fn rows(line: &str) -> (String, Vec<String>) {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("locks"), "{line}");
    let next = words.next().unwrap_or_default().to_owned();
    (next, words.map(str::to_owned).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t73_issue_12_locks_and_members_commands() {
    let (_spec, mut procs) = start(3, Duration::from_millis(1500)).await;
    let mut tokens = Vec::new();
    for name in ["a", "b", "c"] {
        let line = procs[0].ask(&format!("lock {name}")).await;
        assert!(line.starts_with(&format!("granted {name} ")), "{line}");
        tokens.push(line.rsplit(' ').next().unwrap().to_owned());
    }
    let members = procs[1].ask("members").await;
    assert_eq!(members.matches("=voter").count(), 3, "{members}");
    // Node 0's member name, from its own `holder` answer, is a member.
    let me = procs[0].ask("holder a").await;
    let me = me.split_whitespace().nth(2).unwrap().to_owned();
    assert!(members.contains(&format!("{me}=voter")), "{members}");

    // Two pages of two from another process: a, b then c.
    let (next, first) = rows(&procs[2].ask("locks 2").await);
    assert_eq!(next, "next=b");
    assert_eq!(first.len(), 2);
    for (row, (name, token)) in first.iter().zip(["a", "b"].iter().zip(&tokens)) {
        let want = format!("{name}=lock,waiters=0,{me}@{token}/");
        assert!(row.starts_with(&want), "{row} vs {want}");
    }
    let (next, rest) = rows(&procs[2].ask("locks 2 b").await);
    assert_eq!(next, "next=none");
    assert_eq!(rest.len(), 1);
    assert!(rest[0].starts_with(&format!("c=lock,waiters=0,{me}@{}/", tokens[2])));

    // Released names leave the listing; a bad limit is an error line.
    assert_eq!(procs[0].ask("unlock b").await, "released b");
    let (_, all) = rows(&procs[1].ask("locks").await);
    let names: Vec<&str> = all.iter().map(|r| r.split('=').next().unwrap()).collect();
    assert_eq!(names, ["a", "c"]);
    let refused = procs[1].ask("locks 5000").await;
    assert!(refused.starts_with("error invalid request"), "{refused}");
}
