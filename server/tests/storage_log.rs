//! The file log through its public API: append and read back, group commit, segment roll
//! on snapshot, snapshot cadence, forceSync=no, purge and autopurge.

mod storage_util;

use corral_server::storage::log::{read_segment, SegmentEnd};
use corral_server::storage::{self, purge, segment_file_name, snapshot_file_name, Log};
use std::time::Instant;
use storage_util::*;

#[tokio::test]
async fn open_creates_missing_directories_and_starts_empty() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(&root.path().join("deep/er"));
    let (h, sessions) = Harness::open(&cfg).unwrap();
    assert!(cfg.data_dir.is_dir() && cfg.data_log_dir.is_dir());
    assert_eq!(h.tree.last_zxid(), 0);
    assert!(sessions.is_empty());
    assert!(matches!(h.log, Log::File(_)));
    h.close().await;
    assert!(segments(&cfg).is_empty(), "no transaction, no segment");
}

#[tokio::test]
async fn appended_transactions_read_back_in_order_from_one_preallocated_segment() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    let batch = creates(1..=40);
    h.write(batch[..15].to_vec()).await;
    h.write(batch[15..].to_vec()).await;
    let segs = segments(&cfg);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].1, cfg.data_log_dir.join(segment_file_name(1)));
    let mut read = Vec::new();
    let info = read_segment(&segs[0].1, |t| {
        read.push((t.hdr, t.txn));
        Ok(())
    })
    .unwrap();
    assert_eq!(read, batch);
    assert_eq!(info.end, SegmentEnd::Clean);
    assert_eq!(info.file_len, 64 * 1024, "preallocated to preAllocSize");
    assert!(info.valid_end < info.file_len);
    h.close().await;
    let len = std::fs::metadata(&segs[0].1).unwrap().len();
    assert_eq!(
        len, info.valid_end,
        "a finished segment is cut to its records"
    );
}

#[tokio::test]
async fn many_waiting_batches_share_fdatasyncs_and_durable_reports() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    for z in 1..=300 {
        h.append(vec![create(z, &format!("/n{z}"), 0)]);
    }
    h.wait_durable(300).await;
    let fsyncs = h.log.fsync_count();
    let reports = h.durable_reports;
    h.close().await;
    assert!(
        (1..300).contains(&fsyncs),
        "{fsyncs} fdatasyncs for 300 batches"
    );
    assert!(reports < 300, "{reports} durable reports for 300 batches");
}

#[tokio::test]
async fn force_sync_no_reports_durable_without_fdatasync() {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = cfg(root.path());
    cfg.force_sync = false;
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=20)).await;
    assert_eq!(h.log.fsync_count(), 0);
    let expected = h.close().await;
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.digest(), expected.digest());
    assert_eq!(h.tree.last_zxid(), 20);
    h.close().await;
}

#[tokio::test]
async fn a_snapshot_rolls_the_log_to_a_segment_starting_after_it() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=50)).await;
    h.snapshot(vec![(0x77, 6000)]);
    h.write(creates(51..=60)).await;
    h.close().await;
    let segs: Vec<i64> = segments(&cfg).into_iter().map(|(z, _)| z).collect();
    assert_eq!(segs, [1, 51]);
    assert_eq!(
        snapshots(&cfg),
        [(50, cfg.data_dir.join(snapshot_file_name(50)))]
    );
}

#[tokio::test]
async fn wants_snapshot_follows_the_randomised_snap_count() {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = cfg(root.path());
    cfg.snap_count = 10;
    let (mut h, _) = Harness::open(&cfg).unwrap();
    // Threshold is 5 + [0, 5): never after 5 transactions, always after 10.
    h.write(creates(1..=5)).await;
    assert!(!h.log.wants_snapshot());
    h.write(creates(6..=10)).await;
    assert!(h.log.wants_snapshot());
    h.snapshot(vec![]);
    assert!(!h.log.wants_snapshot(), "the count starts again");
    h.close().await;
    assert_eq!(snapshots(&cfg).len(), 1);
}

/// Five snapshots at 10, 20, ... 50, each rolling the log: segments 1, 11, ... 51.
async fn five_snapshots(cfg: &storage::StorageConfig) -> corral_server::tree::DataTree {
    let (mut h, _) = Harness::open(cfg).unwrap();
    for i in 0..5 {
        h.write(creates(i * 10 + 1..=i * 10 + 10)).await;
        h.snapshot_and_wait(vec![]).await;
    }
    h.write(creates(51..=55)).await;
    h.close().await
}

#[tokio::test]
async fn purge_keeps_the_newest_snapshots_and_the_segments_they_need() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let expected = five_snapshots(&cfg).await;
    let report = purge::purge(&cfg.data_dir, &cfg.data_log_dir, 3).unwrap();
    let snaps: Vec<i64> = snapshots(&cfg).into_iter().map(|(z, _)| z).collect();
    let segs: Vec<i64> = segments(&cfg).into_iter().map(|(z, _)| z).collect();
    assert_eq!(snaps, [30, 40, 50]);
    // Recovering from snapshot 30 needs 31..: segment 31 (and ZooKeeper also keeps 21).
    assert_eq!(segs, [21, 31, 41, 51]);
    assert_eq!(report.removed.len(), 2 + 2);
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.digest(), expected.digest());
    h.close().await;
}

#[tokio::test]
async fn autopurge_runs_when_the_interval_is_set() {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = cfg(root.path());
    five_snapshots(&cfg).await;
    cfg.purge_interval_hours = 1;
    let (h, _) = Harness::open(&cfg).unwrap();
    let deadline = Instant::now() + WAIT;
    while snapshots(&cfg).len() > 3 {
        assert!(Instant::now() < deadline, "autopurge did not run");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    h.close().await;
    assert_eq!(snapshots(&cfg)[0].0, 30);
}
