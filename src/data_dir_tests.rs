//! Tests of the data directory's files.

use super::*;

#[test]
fn identity_is_created_once_and_checked_after() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = open(dir.path(), "node-a", 7).unwrap();
    let (again, _) = open(dir.path(), "node-a", 7).unwrap();
    assert_eq!(
        a.incarnation, again.incarnation,
        "same incarnation after a restart"
    );
    assert_eq!((a.boot, again.boot), (1, 2), "each start is the next boot");
    assert!(
        matches!(open(dir.path(), "node-b", 7), Err(Error::Config(m)) if m.contains("belongs to node"))
    );
    // Issue 8 item 9 (and 12): this advised "use an empty directory",
    // which peers refuse for a node that ran in the cluster before.
    assert!(
        matches!(open(dir.path(), "node-a", 8), Err(Error::Config(m)) if m.contains("CA bundle does not hold") && !m.contains("empty directory") && m.contains("issue it from the cluster's CA"))
    );
    std::fs::write(dir.path().join(IDENTITY), "junk").unwrap();
    assert!(matches!(
        open(dir.path(), "node-a", 7),
        Err(Error::Config(_))
    ));
}

#[test]
fn a_log_without_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("raft")).unwrap();
    std::fs::write(dir.path().join("raft").join("0000.wal"), "x").unwrap();
    assert!(matches!(open(dir.path(), "n", 1), Err(Error::Config(m)) if m.contains("no identity")));
}

#[test]
fn peer_incarnations_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = FilePeers::open(dir.path()).unwrap();
    let run = |incarnation, boot, run| PeerRun {
        incarnation,
        boot,
        run,
    };
    p.remember(NodeId(5), run(42, 3, 11)).unwrap();
    p.remember(NodeId(9), run(7, 1, 2)).unwrap();
    let p = FilePeers::open(dir.path()).unwrap();
    assert_eq!(p.load().get(&NodeId(5)), Some(&run(42, 3, 11)));
    assert_eq!(p.load().len(), 2);
    // A file written before boot counts still reads: boot and run 0.
    std::fs::write(
        dir.path().join(PEERS),
        "0000000000000005 000000000000002a\n",
    )
    .unwrap();
    let p = FilePeers::open(dir.path()).unwrap();
    assert_eq!(p.load().get(&NodeId(5)), Some(&run(42, 0, 0)));
}

/// Issue 8 item 9: at first start `raft/` was created (by the log
/// store) after `identity` was written and the data directory last
/// fsynced, so a power cut soon after could keep `identity` and lose
/// `raft/`: the node then started blank under a trusted identity. Here
/// the first start (data directory, then the log store) is crashed at
/// every step and the power cut: `identity` never survives without
/// `raft/`, and the directory always opens again.
#[test]
fn issue_8_a_power_cut_at_first_start_never_keeps_identity_without_raft() {
    use peerlock_core::storage::fs::FaultyFs;
    use peerlock_core::storage::DiskStore;
    use std::sync::Arc;

    let first_start = |fs: &Arc<FaultyFs>, dir: &Path| -> Result<(), String> {
        let (_, raft) = open_with(fs.as_ref(), dir, "node-a", &[7]).map_err(|e| e.to_string())?;
        DiskStore::open_with(&raft, fs.clone()).map_err(|e| e.to_string())?;
        Ok(())
    };
    let base = tempfile::tempdir().unwrap();
    let clean = Arc::new(FaultyFs::new());
    first_start(&clean, &base.path().join("clean")).unwrap();
    let steps = clean.steps();
    assert!(steps > 5, "{steps} steps");
    for k in 0..=steps {
        let dir = base.path().join(format!("crash-{k}"));
        let fs = Arc::new(FaultyFs::new());
        fs.crash_after(k);
        let done = first_start(&fs, &dir);
        fs.power_cut();
        assert_eq!(done.is_ok(), k == steps, "step {k}: {done:?}");
        if dir.join(IDENTITY).exists() {
            assert!(dir.join(RAFT).is_dir(), "step {k}: identity without raft/");
        }
        // The next start works: as itself, or as a new node.
        let again = Arc::new(FaultyFs::new());
        first_start(&again, &dir).unwrap_or_else(|e| panic!("step {k}: {e}"));
    }
}

/// Each start bumps the boot count durably before anything else
/// happens, and a crash between starts never lowers it.
#[test]
fn issue_8_the_boot_count_rises_at_every_start_even_across_power_cuts() {
    use peerlock_core::storage::fs::FaultyFs;
    let dir = tempfile::tempdir().unwrap();
    let mut last = 0;
    for round in 0..5u64 {
        let fs = FaultyFs::new();
        let (id, _) = open_with(&fs, dir.path(), "n", &[1]).unwrap();
        assert!(id.boot > last, "round {round}");
        last = id.boot;
        fs.power_cut();
        let again = open(dir.path(), "n", 1).unwrap().0;
        assert!(again.boot > last, "round {round}: the bump was durable");
        last = again.boot;
    }
}

#[test]
fn members_survive_a_reopen_and_damage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_members(dir.path()).unwrap(), None);
    let members = vec![
        Member {
            id: NodeId(7),
            name: NodeName("node with spaces".into()),
            addr: "127.0.0.1:7100".parse().unwrap(),
        },
        Member {
            id: NodeId(u64::MAX),
            name: NodeName("b".into()),
            addr: "[::1]:7101".parse().unwrap(),
        },
    ];
    save_members(dir.path(), &members).unwrap();
    assert_eq!(load_members(dir.path()).unwrap(), Some(members));
    std::fs::write(
        dir.path().join(MEMBERS),
        "peerlock-members 1\nzz 1.2.3.4:5 a\n",
    )
    .unwrap();
    assert!(matches!(load_members(dir.path()), Err(Error::Config(_))));
}

/// Issue 9: a CA bundle lets the cluster rotate its CA; a directory
/// made under the old CA is accepted while both are trusted, and is
/// recorded under the bundle's first from then on.
#[test]
fn a_directory_follows_its_cluster_through_a_ca_rotation() {
    let dir = tempfile::tempdir().unwrap();
    open_bundle(dir.path(), "n", &[7]).unwrap();
    let (id, _) = open_bundle(dir.path(), "n", &[9, 7]).unwrap();
    assert_eq!(id.cluster, 9);
    let (id, _) = open_bundle(dir.path(), "n", &[9]).unwrap();
    assert_eq!(id.cluster, 9);
    assert!(matches!(
        open_bundle(dir.path(), "n", &[5]),
        Err(Error::Config(_))
    ));
    // Issue 12: the CA before the last change still opens it (a reload
    // or start under a wrong CA must not lock the directory out), and
    // moves it back; a CA two changes back does not.
    let (id, _) = open_bundle(dir.path(), "n", &[7]).unwrap();
    assert_eq!((id.cluster, id.previous), (7, Some(9)));
    open_bundle(dir.path(), "n", &[5, 7]).unwrap();
    assert!(matches!(
        open_bundle(dir.path(), "n", &[9]),
        Err(Error::Config(_))
    ));
}

/// Issue 12: a TLS reload records the directory under its new bundle's
/// first CA, so the node starts on it after the old CA left the bundle;
/// the boot count is left alone.
#[test]
fn a_reload_moves_the_directory_to_the_new_bundle() {
    let dir = tempfile::tempdir().unwrap();
    recluster(dir.path(), &[7], &[9, 7]).unwrap();
    assert!(!dir.path().join(IDENTITY).exists(), "nothing to record yet");
    let (first, _) = open_bundle(dir.path(), "n", &[7]).unwrap();
    // Step 1 (new CA first), then step 3 (the old one dropped).
    recluster(dir.path(), &[7], &[9, 7]).unwrap();
    recluster(dir.path(), &[9, 7], &[9]).unwrap();
    let (id, _) = open_bundle(dir.path(), "n", &[9]).unwrap();
    assert_eq!((id.cluster, id.incarnation), (9, first.incarnation));
    assert_eq!(id.boot, first.boot + 1, "a reload is not a boot");
    // Straight from the old bundle to the new one: the running bundle
    // vouches for the directory.
    let other = tempfile::tempdir().unwrap();
    open_bundle(other.path(), "n", &[7]).unwrap();
    recluster(other.path(), &[7], &[9]).unwrap();
    assert_eq!(open_bundle(other.path(), "n", &[9]).unwrap().0.cluster, 9);
    // A directory of a CA in neither bundle is refused.
    assert!(matches!(
        recluster(other.path(), &[5], &[6]),
        Err(Error::Config(_))
    ));
}

#[test]
fn a_joined_members_id_survives_a_reopen_and_damage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_member_id(dir.path()).unwrap(), None);
    save_member_id(dir.path(), NodeId(42)).unwrap();
    assert_eq!(load_member_id(dir.path()).unwrap(), Some(NodeId(42)));
    std::fs::write(dir.path().join(MEMBER), "peerlock-member 1\nid zz\n").unwrap();
    assert!(matches!(load_member_id(dir.path()), Err(Error::Config(_))));
}
