//! The line protocol on stdin and stdout (the table in `main.rs`): one
//! command a line, one answer a line. `tests/process` drives nodes through
//! it, so every answer's shape is part of the contract.

use std::collections::HashMap;
use std::time::Duration;

use peerlock::{Leadership, LockGuard, MemberRole, NameKind, Node};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Writes one answer line and flushes it (the tests wait for each line).
pub async fn say(out: &mut tokio::io::Stdout, line: String) {
    let _ = out.write_all(format!("{line}\n").as_bytes()).await;
    let _ = out.flush().await;
}

/// What this process holds between commands.
#[derive(Default)]
struct Held {
    guards: HashMap<String, LockGuard>,
    terms: HashMap<String, Leadership>,
}

/// What one command line asks of the loop.
enum Step {
    Answer(String),
    /// An empty line: nothing to answer.
    Nothing,
    Quit,
}

/// Answers commands until `quit`, the end of stdin or SIGTERM; drops every
/// guard and term it still holds before returning.
pub async fn serve(node: &Node, out: &mut tokio::io::Stdout) -> Result<(), peerlock::Error> {
    let mut held = Held::default();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // SIGTERM (what an orchestrator sends to stop an instance) shuts the
    // node down gracefully, as `quit` does.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(peerlock::Error::Io)?;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => line,
                _ => break,
            },
            _ = term.recv() => break,
        };
        // A command runs while SIGTERM is watched too: a `lock` waiting
        // for its turn must not hold a graceful stop up (an orchestrator
        // would kill the process before it left).
        let answer = tokio::select! {
            step = answer(node, &mut held, &line) => match step {
                Step::Quit => break,
                Step::Nothing => continue,
                Step::Answer(answer) => answer,
            },
            _ = term.recv() => break,
        };
        say(out, answer).await;
    }
    Ok(())
}

/// `lock NAME` waits as long as it takes; `lock NAME MS` at most MS ms.
async fn lock(node: &Node, name: &str, ms: Option<&str>) -> Result<LockGuard, String> {
    match ms {
        None => node.lock(name).await.map_err(|e| e.to_string()),
        Some(ms) => {
            let ms: u64 = ms.parse().map_err(|e| format!("bad timeout {ms:?}: {e}"))?;
            node.lock_timeout(name, Duration::from_millis(ms))
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn answer(node: &Node, held: &mut Held, line: &str) -> Step {
    let mut words = line.split_whitespace();
    let (cmd, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let arg = words.next();
    let answer = match cmd {
        "lock" => match lock(node, name, arg).await {
            Ok(g) => {
                let a = format!("granted {name} {}", g.token());
                held.guards.insert(name.to_owned(), g);
                a
            }
            Err(e) => format!("error {e}"),
        },
        "try" => match node.try_lock(name).await {
            Ok(Some(g)) => {
                let a = format!("granted {name} {}", g.token());
                held.guards.insert(name.to_owned(), g);
                a
            }
            Ok(None) => format!("busy {name}"),
            Err(e) => format!("error {e}"),
        },
        "unlock" => match held.guards.remove(name) {
            Some(g) => match g.unlock().await {
                Ok(()) => format!("released {name}"),
                Err(e) => format!("error {e}"),
            },
            None => format!("error this process holds no guard for {name:?}"),
        },
        "held" => format!(
            "held {name} {}",
            held.guards.get(name).is_some_and(|g| g.is_held())
        ),
        // Leader election (issue 11): `campaign` waits until this process
        // leads; `leading` is its local view; `leader` the linearizable
        // read; `resign` steps down.
        "campaign" => match node.campaign(name).await {
            Ok(l) => {
                let a = format!("leading {name} {}", l.token());
                held.terms.insert(name.to_owned(), l);
                a
            }
            Err(e) => format!("error {e}"),
        },
        "leading" => format!(
            "leading {name} {}",
            held.terms.get(name).is_some_and(|l| l.is_leader())
        ),
        "leader" => match node.leader(name).await {
            Ok(Some(l)) => format!("leader {name} {} {} {}", l.holder, l.token, l.candidates),
            Ok(None) => format!("leader {name} none"),
            Err(e) => format!("error {e}"),
        },
        "resign" => match held.terms.remove(name) {
            Some(l) => match l.resign().await {
                Ok(()) => format!("resigned {name}"),
                Err(e) => format!("error {e}"),
            },
            None => format!("error this process does not lead {name:?}"),
        },
        "holder" => match node.holder(name).await {
            Ok(Some(i)) => format!("holder {name} {} {} {}", i.holder, i.token, i.waiters),
            Ok(None) => format!("holder {name} none"),
            Err(e) => format!("error {e}"),
        },
        "status" => status(node),
        // `locks [LIMIT [AFTER]]`: one page of `node.locks()` (issue 12).
        "locks" => match locks_page(node, name, arg).await {
            Ok(line) => line,
            Err(e) => format!("error {e}"),
        },
        "members" => match node.members().await {
            Ok(members) => members_line(&members),
            Err(e) => format!("error {e}"),
        },
        "quit" => return Step::Quit,
        "" => return Step::Nothing,
        other => format!("error unknown command {other:?}"),
    };
    Step::Answer(answer)
}

fn status(node: &Node) -> String {
    let s = node.status();
    format!(
        "status {:?} term={} leader={} leader_name={} applied={}",
        s.role,
        s.term,
        s.leader.map_or("none".to_owned(), |l| l.to_string()),
        s.leader_name().map_or("none", |n| n.as_str()),
        s.applied_index
    )
}

fn members_line(members: &[peerlock::MemberInfo]) -> String {
    let list: Vec<String> = members
        .iter()
        .map(|m| {
            let role = match m.role {
                MemberRole::Voter => "voter",
                _ => "learner",
            };
            let live = if m.live { "live" } else { "silent" };
            let zone = m
                .zone
                .as_deref()
                .map(|z| format!(",zone={z}"))
                .unwrap_or_default();
            // The id as `status` and the logs print it (hex), so the
            // leader can be found in this list.
            format!("{}={role},{live},id={},addr={}{zone}", m.name, m.id, m.addr)
        })
        .collect();
    format!("members {}", list.join(" "))
}

/// `locks [LIMIT [AFTER]]`: `locks next=NAME|none` then one word per name,
/// `NAME=KIND,waiters=N[,handoff][,HOLDER@TOKEN/AGE]...` (AGE in ms, `?`
/// when the answering node does not know it; KIND `lock` or `semaphore/N`).
async fn locks_page(node: &Node, limit: &str, after: Option<&str>) -> Result<String, String> {
    let limit = match limit {
        "" => 100,
        n => n.parse().map_err(|e| format!("bad limit {n:?}: {e}"))?,
    };
    let page = node.locks(after, limit).await.map_err(|e| e.to_string())?;
    let mut words = vec![format!(
        "next={}",
        page.next.as_ref().map_or("none", |n| n.as_str())
    )];
    for row in &page.locks {
        let i = &row.info;
        let kind = match i.kind {
            NameKind::Semaphore { count } => format!("semaphore/{count}"),
            _ => "lock".to_owned(),
        };
        let mut word = format!("{}={kind},waiters={}", row.name, i.waiters);
        if i.awaiting_handoff {
            word.push_str(",handoff");
        }
        for g in &i.holders {
            let age = g.age.map_or("?".to_owned(), |a| a.as_millis().to_string());
            word.push_str(&format!(",{}@{}/{age}", g.holder, g.token));
        }
        words.push(word);
    }
    Ok(format!("locks {}", words.join(" ")))
}
