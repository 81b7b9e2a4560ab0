//! Tests of the formation decision: exact cases (the properties are in
//! `formation_proptests.rs`).

use super::formation::*;

pub(super) fn run(name: &str, run: u64) -> Run {
    Run {
        name: name.into(),
        run,
    }
}

pub(super) fn cand(expect: u64, r: u64, promised: Option<Run>) -> Heard {
    Heard::Candidate {
        run: r,
        expect,
        promised,
    }
}

/// `f` hears b and c (runs 2 and 3) every 500 ms from `from` to `to`.
fn hear_bc(f: &mut Formation, from: u64, to: u64, promised: Option<Run>) {
    let mut t = from;
    while t <= to {
        f.hear("b", cand(3, 2, promised.clone()), t);
        f.hear("c", cand(3, 3, promised.clone()), t);
        t += ANNOUNCE_EVERY_MS;
    }
}

#[test]
fn the_lowest_candidate_founds_with_n_promises_after_the_stable_margin() {
    let a = run("a", 1);
    let mut f = Formation::new(a.clone(), 3, 0);
    assert_eq!(f.decide(0), Decision::Wait);
    hear_bc(&mut f, 0, 1000, None);
    assert_eq!(f.decide(1000), Decision::Wait, "not stable long enough");
    hear_bc(&mut f, 1500, 3000, None);
    assert_eq!(f.decide(3000), Decision::Promise(a.clone()));
    // Only itself so far.
    assert_eq!(f.decide(3100), Decision::Wait);
    f.hear("b", cand(3, 2, Some(a.clone())), 3200);
    assert_eq!(f.decide(3200), Decision::Wait);
    f.hear("c", cand(3, 3, Some(a.clone())), 3300);
    assert_eq!(
        f.decide(3300),
        Decision::Found(vec!["a".into(), "b".into(), "c".into()])
    );
}

/// c, hearing a and b (runs 1 and 2, expecting 3) every 500 ms for 3 s,
/// has just promised to a.
fn c_promised_to_a() -> Formation {
    let mut f = Formation::new(run("c", 3), 3, 0);
    let mut t = 0;
    while t <= 3000 {
        f.hear("a", cand(3, 1, None), t);
        f.hear("b", cand(3, 2, None), t);
        t += 500;
    }
    assert_eq!(f.decide(3000), Decision::Promise(run("a", 1)));
    f
}

#[test]
fn a_higher_candidate_promises_to_the_lowest_and_then_joins_it() {
    let mut f = c_promised_to_a();
    assert_eq!(f.decide(3500), Decision::Wait);
    // x is reachable but has not answered yet.
    f.peers_known(["a", "b", "x"].map(String::from));
    f.hear("a", Heard::Cluster { cluster_id: 0 }, 3900);
    assert_eq!(f.decide(3900), Decision::Wait, "no id yet");
    f.hear("a", Heard::Cluster { cluster_id: 5 }, 4000);
    assert_eq!(f.decide(4000), Decision::Wait, "the grace for other seeds");
    assert_eq!(
        f.decide(4000 + JOIN_GRACE_MS),
        Decision::Join(vec!["a".into()])
    );
}

#[test]
fn a_change_in_the_set_restarts_the_margin() {
    let mut f = Formation::new(run("b", 2), 3, 0);
    let mut t = 0;
    while t <= 2500 {
        f.hear("c", cand(3, 3, None), t);
        f.hear("d", cand(3, 4, None), t);
        t += 500;
    }
    f.hear("a", cand(3, 1, None), 2500);
    assert_eq!(f.decide(2500), Decision::Wait);
    assert_eq!(f.decide(3000), Decision::Wait, "a arrived at 2.5 s");
    let mut t = 3000;
    while t <= 5500 {
        for (n, r) in [("a", 1), ("c", 3), ("d", 4)] {
            f.hear(n, cand(3, r, None), t);
        }
        t += 500;
    }
    assert_eq!(f.decide(5500), Decision::Promise(run("a", 1)));
}

#[test]
fn a_candidate_that_promised_away_is_passed_over() {
    let mut f = Formation::new(run("c", 3), 3, 0);
    let mut t = 0;
    while t <= 3000 {
        f.hear("a", cand(3, 1, Some(run("x", 9))), t);
        f.hear("b", cand(3, 2, None), t);
        t += 500;
    }
    assert_eq!(f.decide(3000), Decision::Promise(run("b", 2)));
}

#[test]
fn a_silent_candidate_is_forgotten_and_its_promise_not_counted() {
    let a = run("a", 1);
    let mut f = Formation::new(a.clone(), 3, 0);
    hear_bc(&mut f, 0, 3000, None);
    assert_eq!(f.decide(3000), Decision::Promise(a.clone()));
    f.hear("b", cand(3, 2, Some(a.clone())), 3000);
    // c never promises; b then goes silent.
    f.hear("c", cand(3, 3, None), 3100);
    assert_eq!(f.decide(3000 + FORGET_AFTER_MS + 100), Decision::Wait);
    let e = f.give_up(3000 + FORGET_AFTER_MS + 100);
    let msg = e.to_string();
    assert!(msg.contains("saw 1 ([a])"), "{msg}");
    assert!(msg.contains("bootstrap_expect(3)"), "{msg}");
}

#[test]
fn seeds_of_two_clusters_stop_the_start() {
    let mut f = Formation::new(run("z", 1), 3, 0);
    f.peers_known(["a", "b", "c", "d"].map(String::from));
    f.hear("a", Heard::Cluster { cluster_id: 7 }, 10);
    f.hear("b", Heard::Cluster { cluster_id: 7 }, 10);
    f.hear("c", Heard::Cluster { cluster_id: 0 }, 10);
    assert_eq!(f.decide(20), Decision::Wait);
    f.hear("d", Heard::Cluster { cluster_id: 9 }, 30);
    let Decision::Fail(e) = f.decide(40) else {
        panic!("two clusters must fail")
    };
    assert!(matches!(e, FormationError::TwoClusters { .. }));
    assert!(e.to_string().contains("two different clusters"), "{e}");
    // A join-only node too.
    let mut j = Formation::new(run("z", 1), 0, 0);
    j.hear("a", Heard::Cluster { cluster_id: 7 }, 10);
    j.hear("d", Heard::Cluster { cluster_id: 9 }, 10);
    assert!(matches!(j.decide(20), Decision::Fail(_)));
}

#[test]
fn a_join_only_node_never_promises_and_joins_a_cluster() {
    let mut f = Formation::new(run("z", 1), 0, 0);
    hear_bc(&mut f, 0, 10_000, None);
    assert_eq!(f.decide(10_000), Decision::Wait);
    f.hear("b", Heard::Cluster { cluster_id: 4 }, 10_000);
    assert_eq!(
        f.decide(10_000 + JOIN_GRACE_MS),
        Decision::Join(vec!["b".into()])
    );
    assert!(f.give_up(0).to_string().contains("no member"));
}

#[test]
fn candidates_given_different_counts_stop() {
    let mut f = Formation::new(run("a", 1), 3, 0);
    f.hear("b", cand(5, 2, None), 0);
    assert_eq!(f.decide(0), Decision::Wait, "it lingers so b hears it too");
    let Decision::Fail(e) = f.decide(FAIL_LINGER_MS) else {
        panic!("must fail")
    };
    let msg = e.to_string();
    assert!(
        msg.contains("bootstrap_expect(3)") && msg.contains("bootstrap_expect(5)"),
        "{msg}"
    );
    // A join-only peer (0) is not a candidate and is fine.
    let mut g = Formation::new(run("a", 1), 3, 0);
    g.hear("b", cand(0, 2, None), 0);
    assert_eq!(g.decide(0), Decision::Wait);
}

/// Rule 5: a silent promisee fails the start; one that comes back as a
/// new process releases the promise (the run promised to is gone and never
/// founds), and the promiser promises again (before, that failed the
/// start too).
#[test]
fn a_silent_promisee_fails_the_start_and_a_restarted_one_releases_it() {
    let mut f = Formation::new(run("c", 3), 2, 0);
    let mut t = 0;
    while t <= 3000 {
        f.hear("a", cand(2, 1, None), t);
        t += 500;
    }
    assert_eq!(f.decide(3000), Decision::Promise(run("a", 1)));
    assert_eq!(f.decide(3000 + PROMISEE_GONE_MS - 1), Decision::Wait);
    let Decision::Fail(e) = f.decide(3000 + PROMISEE_GONE_MS) else {
        panic!("a silent promisee must fail the start")
    };
    assert!(e.to_string().contains("silent"), "{e}");

    let mut g = Formation::new(run("c", 3), 2, 0);
    let mut t = 0;
    while t <= 3000 {
        g.hear("a", cand(2, 1, None), t);
        t += 500;
    }
    assert_eq!(g.decide(3000), Decision::Promise(run("a", 1)));
    g.hear("a", cand(2, 77, None), 3500);
    assert_eq!(g.decide(3500), Decision::Promise(run("a", 77)));
}

#[test]
fn bootstrap_expect_1_founds_alone_after_the_margin_unless_a_cluster_answers() {
    let me = run("a", 1);
    let mut f = Formation::new(me.clone(), 1, 0);
    assert_eq!(f.decide(STABLE_MARGIN_MS - 1), Decision::Wait);
    assert_eq!(f.decide(STABLE_MARGIN_MS), Decision::Promise(me));
    assert_eq!(
        f.decide(STABLE_MARGIN_MS),
        Decision::Found(vec!["a".into()])
    );
    let mut g = Formation::new(run("a", 1), 1, 0);
    g.hear("b", Heard::Cluster { cluster_id: 3 }, 100);
    assert_eq!(g.decide(STABLE_MARGIN_MS), Decision::Join(vec!["b".into()]));
}

/// The split the network model found: three candidates promise to the
/// lowest of them (b); a fourth, lower-named one (a) arrives later. It
/// must add its promise to b, not gather promises of its own.
#[test]
fn a_late_lower_candidate_promises_to_the_founder_in_progress() {
    let mut f = Formation::new(run("a", 1), 3, 4400);
    let b = run("b", 2);
    let mut t = 4400;
    while t <= 7400 {
        f.hear("b", cand(3, 2, Some(b.clone())), t);
        f.hear("c", cand(3, 3, None), t);
        f.hear("d", cand(3, 4, Some(b.clone())), t);
        t += 500;
    }
    assert_eq!(f.decide(7400), Decision::Promise(b));
}

#[test]
fn a_node_joins_at_once_when_every_known_peer_answered() {
    let mut f = Formation::new(run("z", 1), 0, 0);
    f.peers_known(["a".to_owned(), "b".to_owned()]);
    f.hear("a", Heard::Cluster { cluster_id: 4 }, 10);
    assert_eq!(f.decide(10), Decision::Wait, "b has not answered");
    f.hear("b", cand(3, 2, None), 20);
    assert_eq!(f.decide(20), Decision::Join(vec!["a".into()]));
    // A cluster without an id yet is waited on (it answers no join).
    let mut g = Formation::new(run("z", 1), 0, 0);
    g.peers_known(["a".to_owned()]);
    g.hear("a", Heard::Cluster { cluster_id: 0 }, 10);
    assert_eq!(g.decide(10 + 10 * JOIN_GRACE_MS), Decision::Wait);
    g.hear("a", Heard::Cluster { cluster_id: 2 }, 20_000);
    assert_eq!(g.decide(20_000), Decision::Join(vec!["a".into()]));
}

/// The other split the model found: two candidates promised to b before
/// b promised; a lower-named a arrived in the meantime. b, being promised
/// to, must promise to itself, not to a.
#[test]
fn a_candidate_others_promised_to_promises_to_itself() {
    let b = run("b", 2);
    let mut f = Formation::new(b.clone(), 3, 0);
    let mut t = 0;
    while t <= 3000 {
        f.hear("a", cand(3, 1, None), t);
        f.hear("c", cand(3, 3, Some(b.clone())), t);
        f.hear("d", cand(3, 4, Some(b.clone())), t);
        t += 500;
    }
    assert_eq!(f.decide(3000), Decision::Promise(b.clone()));
    assert_eq!(
        f.decide(3000),
        Decision::Found(vec!["b".into(), "c".into(), "d".into()])
    );
}

/// CI found it (issue 9, rule 1): with two one-node clusters as seeds, the
/// first seed's connection came up and answered before the second was
/// reached, every known peer had answered, and the node joined the first
/// cluster. While the first round of dialing goes on, nothing joins; the
/// seeds reached then get the grace from the round's end to answer.
#[test]
fn no_join_while_the_first_round_of_dialing_the_seeds_goes_on() {
    let mut f = Formation::new(run("z", 1), 0, 0);
    f.seeds_dialing(true, 0);
    f.peers_known(["one".to_owned()]);
    f.hear("one", Heard::Cluster { cluster_id: 4 }, 10);
    assert_eq!(f.decide(10), Decision::Wait, "a seed is still dialed");
    assert_eq!(f.decide(10 + 10 * JOIN_GRACE_MS), Decision::Wait);
    // The round ends at 2 500 ms having reached "two" too.
    f.seeds_dialing(false, 2_500);
    f.peers_known(["one".to_owned(), "two".to_owned()]);
    assert_eq!(f.decide(2_500), Decision::Wait, "two has not answered");
    assert_eq!(f.decide(2_500 + JOIN_GRACE_MS - 1), Decision::Wait);
    f.hear("two", Heard::Cluster { cluster_id: 9 }, 2_600);
    assert!(
        matches!(
            f.decide(2_600),
            Decision::Fail(FormationError::TwoClusters { .. })
        ),
        "{:?}",
        f.decide(2_600)
    );
    // A seed that never answers is waited on for the grace from the end
    // of the round, not from the first answer.
    let mut g = Formation::new(run("z", 1), 0, 0);
    g.seeds_dialing(true, 0);
    g.hear("one", Heard::Cluster { cluster_id: 4 }, 10);
    g.seeds_dialing(false, 3_000);
    g.peers_known(["one".to_owned(), "two".to_owned()]);
    assert_eq!(g.decide(3_000 + JOIN_GRACE_MS - 1), Decision::Wait);
    assert_eq!(
        g.decide(3_000 + JOIN_GRACE_MS),
        Decision::Join(vec!["one".into()])
    );
}

/// A promisee that heard of a running cluster joins it, and its join asks
/// "which cluster are you in?" under its name with another number and
/// `expect` 0: that is not the promisee restarting (rule 5), and the
/// promiser joins the cluster once a member answers.
#[test]
fn a_promisee_that_joins_a_cluster_is_not_a_restart() {
    let mut f = c_promised_to_a();
    f.hear("a", cand(0, 77, None), 3200);
    assert_eq!(f.decide(3200), Decision::Wait, "not a restart");
    f.peers_known(["a".to_owned(), "b".to_owned()]);
    f.hear("a", Heard::Cluster { cluster_id: 5 }, 3600);
    f.hear("b", Heard::Cluster { cluster_id: 5 }, 3600);
    assert_eq!(f.decide(3600), Decision::Join(vec!["a".into(), "b".into()]));
    // A new candidate process under its name still is a restart: the
    // promise is released and made again, to the new process.
    let mut g = c_promised_to_a();
    g.hear("a", cand(3, 9, None), 3200);
    assert_eq!(g.decide(3200), Decision::Promise(run("a", 9)));
}

/// Issue 9 (CI, five candidates with one seed each in a ring): c promised
/// to a, and a then promised to another (it saw a founder in progress c
/// cannot see). a can never found, so c's promise is released and c
/// promises again, to the founder it sees. Before, c waited on a until
/// the start-up deadline.
#[test]
fn a_promise_to_a_candidate_that_promised_away_is_released() {
    let mut f = c_promised_to_a();
    // a now promises to z (lower-named than none here: the name does not
    // matter, only that a promised away); b promised to itself.
    f.hear("a", cand(3, 1, Some(run("z", 9))), 3500);
    f.hear("b", cand(3, 2, Some(run("b", 2))), 3500);
    assert_eq!(f.decide(3500), Decision::Promise(run("b", 2)));
    // And not again while b founds.
    f.hear("b", cand(3, 2, Some(run("b", 2))), 4000);
    assert_eq!(f.decide(4000), Decision::Wait);
}

/// Only the promisee's own word releases a promise: another's claim that
/// it promised away (a stale run, or a peer's word about it) does not.
#[test]
fn a_promise_is_released_only_by_the_promisee_s_own_run() {
    let mut f = c_promised_to_a();
    // b says it promised to a: no release.
    f.hear("b", cand(3, 2, Some(run("a", 1))), 3500);
    assert_eq!(f.decide(3500), Decision::Wait);
    // a's announcement promising to itself: no release either.
    f.hear("a", cand(3, 1, Some(run("a", 1))), 3600);
    assert_eq!(f.decide(3600), Decision::Wait);
}

/// b (expecting 3) that heard c and d for 3 s, none of them promised, and
/// so promised to its own run at t = 3000 ms.
fn b_promised_to_itself() -> Formation {
    let mut f = Formation::new(run("b", 2), 3, 0);
    let mut t = 0;
    while t <= 3000 {
        f.hear("c", cand(3, 3, None), t);
        f.hear("d", cand(3, 4, None), t);
        t += 500;
    }
    assert_eq!(f.decide(3000), Decision::Promise(run("b", 2)));
    f
}

/// Issue 9: a founder short of `n` that sees a lower-named candidate that
/// promised to itself yields to it, and the candidates that promised to
/// the one that yielded are released (the test above); a founder with a
/// higher name in view does not yield to it.
#[test]
fn a_founder_short_of_n_yields_to_a_lower_named_founder() {
    // b: hears c and d, promises to itself first (a is not heard yet
    // when b's set of b, c and d is stable).
    let mut f = b_promised_to_itself();
    f.hear("c", cand(3, 3, Some(run("b", 2))), 3100);
    // d promised to itself: higher-named, b does not yield.
    f.hear("d", cand(3, 4, Some(run("d", 4))), 3100);
    assert_eq!(f.decide(3100), Decision::Wait);
    // a appears, already promised to itself: b (2 of 3) yields to a.
    f.hear("a", cand(3, 1, Some(run("a", 1))), 3200);
    assert_eq!(f.decide(3200), Decision::Promise(run("a", 1)));
    assert_eq!(f.promised(), Some(&run("a", 1)));
    // It never founds after that, however many promise to it.
    f.hear("c", cand(3, 3, Some(run("b", 2))), 3300);
    f.hear("d", cand(3, 4, Some(run("b", 2))), 3300);
    assert_eq!(f.decide(3300), Decision::Wait);
}

/// A founder with `n` promises founds rather than yield.
#[test]
fn a_founder_with_n_promises_founds_before_it_would_yield() {
    let mut f = b_promised_to_itself();
    f.hear("c", cand(3, 3, Some(run("b", 2))), 3100);
    f.hear("d", cand(3, 4, Some(run("b", 2))), 3100);
    f.hear("a", cand(3, 1, Some(run("a", 1))), 3100);
    assert_eq!(
        f.decide(3100),
        Decision::Found(vec!["b".into(), "c".into(), "d".into()])
    );
}
