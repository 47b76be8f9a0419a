//! What a follower's sync with a leader needs from storage: zxids that change epoch,
//! truncation (TRUNC), reload, and installing a leader's snapshot (SNAP).

mod storage_util;

use corral_server::storage::{
    self, follows, segment_file_name, snapshot, snapshot_file_name, Log, SnapshotData, StorageError,
};
use corral_server::tree::DataTree;
use storage_util::*;

const E1: i64 = 1 << 32;
const E2: i64 = 2 << 32;

fn apply_all(tree: &mut DataTree, batch: &[(corral_proto::TxnHeader, corral_proto::Txn)]) {
    for (h, t) in batch {
        tree.apply(h, t).unwrap();
    }
}

#[test]
fn a_new_epoch_starts_at_counter_one() {
    assert!(follows(5, 6));
    assert!(follows(E1 | 7, E2 | 1));
    assert!(follows(0, E1 | 1));
    assert!(
        !follows(E1 | 7, E2 | 2),
        "counter 1 of the new epoch is missing"
    );
    assert!(!follows(5, 7));
    assert!(!follows(E2 | 1, E1 | 8), "epochs never go back");
}

#[tokio::test]
async fn the_log_recovers_across_an_epoch_change_and_reports_a_gap_inside_one() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(vec![create(E1 | 1, "/a", 0), create(E1 | 2, "/b", 0)])
        .await;
    h.write(vec![create(E2 | 1, "/c", 0), create(E2 | 2, "/d", 0)])
        .await;
    let expected = h.close().await;
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), E2 | 2);
    assert_eq!(h.tree.digest(), expected.digest());
    h.close().await;

    let root = tempfile::tempdir().unwrap();
    let cfg = storage_util::cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(vec![create(E1 | 1, "/a", 0)]).await;
    h.snapshot_and_wait(vec![]).await;
    h.write(vec![create(E1 | 3, "/c", 0)]).await;
    h.close().await;
    match Harness::open(&cfg) {
        Err(StorageError::Gap { from, to }) => assert_eq!((from, to), (E1 | 2, E1 | 2)),
        Err(e) => panic!("expected Gap, got {e}"),
        Ok(_) => panic!("expected Gap, recovery succeeded"),
    }
}

#[tokio::test]
async fn truncate_cuts_the_log_and_newer_snapshots_and_reload_rebuilds_the_state() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    let mut at12 = DataTree::new();
    apply_all(&mut at12, &creates(1..=12));
    h.write(creates(1..=10)).await;
    h.snapshot_and_wait(vec![]).await;
    h.write(creates(11..=20)).await;
    h.snapshot_and_wait(vec![]).await;
    h.write(creates(21..=25)).await;

    h.log.truncate(12).unwrap();
    let segs: Vec<i64> = segments(&cfg).into_iter().map(|(z, _)| z).collect();
    assert_eq!(segs, [1, 11]);
    let snaps: Vec<i64> = snapshots(&cfg).into_iter().map(|(z, _)| z).collect();
    assert_eq!(snaps, [10], "the snapshot at 20 is past the cut");
    let (tree, sessions) = h.log.reload(12).unwrap();
    assert_eq!(tree.last_zxid(), 12);
    assert_eq!(tree.digest(), at12.digest());
    assert!(sessions.is_empty());

    // The new leader's history continues after the cut.
    let next = vec![create(E1 | 1, "/new", 0)];
    apply_all(&mut at12, &next);
    let mut log = std::mem::take(&mut h.log);
    assert_eq!(log.append(next), None);
    h.log = log;
    h.wait_durable(E1 | 1).await;
    h.close().await;
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), E1 | 1);
    assert_eq!(h.tree.digest(), at12.digest());
    assert!(h.tree.get("/n13").is_none());
    h.close().await;
}

#[tokio::test]
async fn an_installed_snapshot_replaces_the_state_and_recovery_starts_from_it() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=20)).await;

    // The leader's state: other nodes, a session, at E1|100.
    let mut leader = DataTree::new();
    apply_all(
        &mut leader,
        &[
            open_session(E1 | 99, 0x5, 8000),
            create(E1 | 100, "/leader", 0x5),
        ],
    );
    let bytes = snapshot::encode(&SnapshotData {
        tree: leader.clone(),
        sessions: vec![(0x5, 8000)],
        zxid: E1 | 100,
    });
    assert!(
        h.log.install_snapshot(E1 | 99, &bytes).is_err(),
        "a snapshot at another zxid is refused"
    );
    let (tree, sessions) = h.log.install_snapshot(E1 | 100, &bytes).unwrap();
    assert_eq!(tree.digest(), leader.digest());
    assert_eq!(sessions, [(0x5, 8000)]);
    assert!(cfg.data_dir.join(snapshot_file_name(E1 | 100)).exists());

    let next = vec![set(E1 | 101, "/leader", b"x", 1)];
    apply_all(&mut leader, &next);
    let mut log = std::mem::take(&mut h.log);
    log.append(next);
    h.log = log;
    h.wait_durable(E1 | 101).await;
    h.close().await;
    assert!(cfg.data_log_dir.join(segment_file_name(E1 | 101)).exists());
    let (h, sessions) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.digest(), leader.digest());
    assert_eq!(sessions, [(0x5, 8000)]);
    assert!(h.tree.get("/n1").is_none(), "the old state is gone");
    h.close().await;
}

#[tokio::test]
async fn the_memory_log_decodes_snapshots_but_cannot_reload() {
    let mut log = Log::Memory;
    let mut t = DataTree::new();
    apply_all(&mut t, &creates(1..=3));
    let bytes = snapshot::encode(&SnapshotData {
        tree: t.clone(),
        sessions: vec![],
        zxid: 3,
    });
    let (tree, _) = log.install_snapshot(3, &bytes).unwrap();
    assert_eq!(tree.digest(), t.digest());
    assert!(log.truncate(2).is_ok());
    assert!(matches!(log.reload(2), Err(StorageError::Unsupported(_))));
    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 1;
    assert!(matches!(
        storage::snapshot::decode(&bad),
        Err(StorageError::Corrupt { .. })
    ));
}
