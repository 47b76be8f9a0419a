//! Recovery from real files: snapshot + log replay, sessions, torn tails, corruption, gaps,
//! a corrupt newest snapshot, preallocated zero tails.

mod storage_util;

use corral_server::storage::{segment_file_name, snapshot_file_name, StorageError};
use storage_util::*;

#[tokio::test]
async fn the_log_alone_replays_to_the_same_tree() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=100)).await;
    h.write(vec![set(101, "/n7", b"changed", 1)]).await;
    let expected = h.close().await;
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 101);
    assert_eq!(h.tree.digest(), expected.digest());
    assert_eq!(h.tree.get("/n7").unwrap().data(), Some(&b"changed"[..]));
    h.close().await;
}

#[tokio::test]
async fn snapshot_plus_log_recovers_even_without_the_old_segment() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=50)).await;
    h.snapshot(vec![]);
    h.write(creates(51..=80)).await;
    let expected = h.close().await;
    // The snapshot covers 1..=50, so the first segment is not needed.
    std::fs::remove_file(cfg.data_log_dir.join(segment_file_name(1))).unwrap();
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 80);
    assert_eq!(h.tree.digest(), expected.digest());
    h.close().await;
}

#[tokio::test]
async fn sessions_and_ephemerals_come_back_from_snapshot_and_log() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(vec![
        open_session(1, 0x11, 5000),
        open_session(2, 0x22, 7000),
        create(3, "/e11", 0x11),
        create(4, "/e22", 0x22),
    ])
    .await;
    h.snapshot(vec![(0x11, 5000), (0x22, 7000)]);
    h.write(vec![
        close_session(5, 0x22),
        open_session(6, 0x33, 9000),
        create(7, "/e33", 0x33),
    ])
    .await;
    h.close().await;
    let (h, sessions) = Harness::open(&cfg).unwrap();
    assert_eq!(sessions, [(0x11, 5000), (0x33, 9000)]);
    assert!(h.tree.get("/e11").is_some());
    assert!(h.tree.get("/e22").is_none(), "closed with its session");
    assert_eq!(h.tree.ephemerals(0x33).collect::<Vec<_>>(), ["/e33"]);
    h.close().await;
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_appending_after_it_works() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=10)).await;
    h.close().await;
    let seg = cfg.data_log_dir.join(segment_file_name(1));
    let offsets = record_offsets(&seg);
    // A crash in the middle of writing record 11: its first bytes landed, the rest did not.
    let (_, last_off) = offsets[9];
    let mut whole = Vec::new();
    corral_server::storage::log::encode_record(
        &mut whole,
        &create(11, "/n11", 0).0,
        &create(11, "/n11", 0).1,
    );
    let end = record_offsets(&seg).len();
    assert_eq!(end, 10);
    let valid_end = corral_server::storage::log::read_segment(&seg, |_| Ok(()))
        .unwrap()
        .valid_end;
    assert!(valid_end > last_off);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &whole[..whole.len() / 2], valid_end).unwrap();
    drop(f);

    let (mut h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 10, "the torn record is not applied");
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        valid_end,
        "truncated"
    );
    h.write(creates(11..=12)).await;
    let expected = h.close().await;
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 12);
    assert_eq!(h.tree.digest(), expected.digest());
    h.close().await;
}

#[tokio::test]
async fn a_bad_checksum_on_the_last_record_is_a_torn_tail() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=10)).await;
    h.close().await;
    let seg = cfg.data_log_dir.join(segment_file_name(1));
    let (_, off) = record_offsets(&seg)[9];
    flip_bit(&seg, off + 20);
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 9);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), off);
    h.close().await;
}

#[tokio::test]
async fn a_flipped_bit_in_the_middle_of_a_segment_is_corruption_with_file_and_offset() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=10)).await;
    h.close().await;
    let seg = cfg.data_log_dir.join(segment_file_name(1));
    let (_, off) = record_offsets(&seg)[4];
    flip_bit(&seg, off + 30);
    let before = std::fs::read(&seg).unwrap();
    match Harness::open(&cfg) {
        Err(StorageError::Corrupt { path, offset, .. }) => {
            assert_eq!((path, offset), (seg.clone(), off));
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, recovery succeeded"),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), before, "nothing was cut off");
}

#[tokio::test]
async fn corruption_in_an_older_segment_is_not_a_torn_tail() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=10)).await;
    h.snapshot(vec![]);
    h.write(creates(11..=20)).await;
    h.close().await;
    std::fs::remove_file(cfg.data_dir.join(snapshot_file_name(10))).unwrap();
    let seg = cfg.data_log_dir.join(segment_file_name(1));
    let (_, off) = record_offsets(&seg)[9];
    flip_bit(&seg, off + 20);
    match Harness::open(&cfg) {
        Err(StorageError::Corrupt { path, offset, .. }) => assert_eq!((path, offset), (seg, off)),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, recovery succeeded"),
    }
}

#[tokio::test]
async fn a_missing_middle_segment_is_a_gap() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    for i in 0..3 {
        h.write(creates(i * 10 + 1..=i * 10 + 10)).await;
        h.snapshot_and_wait(vec![]).await;
    }
    h.write(creates(31..=35)).await;
    h.close().await;
    for (_, s) in snapshots(&cfg) {
        std::fs::remove_file(s).unwrap();
    }
    std::fs::remove_file(cfg.data_log_dir.join(segment_file_name(11))).unwrap();
    match Harness::open(&cfg) {
        Err(StorageError::Gap { from, to }) => assert_eq!((from, to), (11, 20)),
        Err(e) => panic!("expected Gap, got {e}"),
        Ok(_) => panic!("expected Gap, recovery succeeded"),
    }
}

#[tokio::test]
async fn a_log_that_does_not_reach_back_to_the_snapshot_is_a_gap() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=10)).await;
    h.snapshot_and_wait(vec![]).await;
    h.write(creates(11..=20)).await;
    h.snapshot_and_wait(vec![]).await;
    h.write(creates(21..=25)).await;
    h.close().await;
    std::fs::remove_file(cfg.data_dir.join(snapshot_file_name(20))).unwrap();
    std::fs::remove_file(cfg.data_log_dir.join(segment_file_name(11))).unwrap();
    match Harness::open(&cfg) {
        Err(StorageError::Gap { from, to }) => assert_eq!((from, to), (11, 20)),
        Err(e) => panic!("expected Gap, got {e}"),
        Ok(_) => panic!("expected Gap, recovery succeeded"),
    }
}

#[tokio::test]
async fn a_corrupt_newest_snapshot_falls_back_to_the_previous_one_and_the_log() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(vec![open_session(1, 0x44, 4000)]).await;
    h.write(creates(2..=10)).await;
    h.snapshot_and_wait(vec![(0x44, 4000)]).await;
    h.write(creates(11..=20)).await;
    h.snapshot_and_wait(vec![(0x44, 4000)]).await;
    h.write(creates(21..=25)).await;
    let expected = h.close().await;
    let newest = cfg.data_dir.join(snapshot_file_name(20));
    let len = std::fs::metadata(&newest).unwrap().len();
    flip_bit(&newest, len / 2);
    let (h, sessions) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 25);
    assert_eq!(h.tree.digest(), expected.digest());
    assert_eq!(sessions, [(0x44, 4000)]);
    h.close().await;

    // Without the segment the previous snapshot needs, it is an error naming the snapshot.
    std::fs::remove_file(cfg.data_log_dir.join(segment_file_name(11))).unwrap();
    match Harness::open(&cfg) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, newest),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected an error, recovery succeeded"),
    }
}

#[tokio::test]
async fn preallocated_zero_tails_are_not_torn_writes() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=5)).await;
    h.snapshot_and_wait(vec![]).await;
    h.write(creates(6..=8)).await;
    let expected = h.close().await;
    std::fs::remove_file(cfg.data_dir.join(snapshot_file_name(5))).unwrap();
    // Both segments as a crash leaves them: records, then preallocated zeros.
    let (old, newest) = (
        cfg.data_log_dir.join(segment_file_name(1)),
        cfg.data_log_dir.join(segment_file_name(6)),
    );
    let newest_len = std::fs::metadata(&newest).unwrap().len();
    for seg in [&old, &newest] {
        let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
        f.set_len(64 * 1024).unwrap();
    }
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 8);
    assert_eq!(h.tree.digest(), expected.digest());
    assert_eq!(std::fs::metadata(&old).unwrap().len(), 64 * 1024);
    assert_eq!(
        std::fs::metadata(&newest).unwrap().len(),
        newest_len,
        "the newest segment is cut back to its records"
    );
    h.close().await;
}

#[tokio::test]
async fn a_newest_segment_left_all_zeros_by_a_crash_is_removed() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    h.write(creates(1..=5)).await;
    let expected = h.close().await;
    // Created and preallocated, but the crash came before its first write was durable.
    let empty = cfg.data_log_dir.join(segment_file_name(6));
    std::fs::write(&empty, vec![0u8; 4096]).unwrap();
    let (mut h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.digest(), expected.digest());
    assert!(!empty.exists());
    h.write(creates(6..=6)).await;
    h.close().await;
    assert!(empty.exists(), "the next transaction starts log.6 afresh");
}

#[tokio::test]
async fn stale_snapshot_tmp_files_are_removed() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let tmp = cfg.data_dir.join(format!("{}.tmp", snapshot_file_name(9)));
    std::fs::write(&tmp, b"half").unwrap();
    let (h, _) = Harness::open(&cfg).unwrap();
    assert!(!tmp.exists());
    h.close().await;
}
