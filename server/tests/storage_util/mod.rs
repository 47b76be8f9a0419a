//! Helpers for the storage tests: configurations in temp dirs, transactions, and a log
//! handle that waits for durability.
#![allow(dead_code)]

use corral_proto::{Acl, CloseSessionTxn, CreateSessionTxn, CreateTxn, SetDataTxn, Txn, TxnHeader};
use corral_server::storage::{self, Log, LogEvent, Recovered, SnapshotData, StorageConfig};
use corral_server::tree::DataTree;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Bound on every wait for the writer.
pub const WAIT: Duration = Duration::from_secs(10);

/// Snapshots under `<root>/data`, the log under `<root>/log` (dataLogDir differs).
pub fn cfg(root: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: root.join("data").join("version-2"),
        data_log_dir: root.join("log").join("version-2"),
        force_sync: true,
        pre_alloc_size_kb: 64,
        snap_count: 1_000_000,
        snap_retain_count: 3,
        purge_interval_hours: 0,
    }
}

fn hdr(zxid: i64, session: i64, txn: &Txn) -> TxnHeader {
    TxnHeader {
        client_id: session,
        cxid: zxid as i32,
        zxid,
        time: 1_700_000_000_000 + zxid,
        txn_type: txn.txn_type(),
    }
}

/// A create of `path` at `zxid` (ephemeral when `owner` is not 0).
pub fn create(zxid: i64, path: &str, owner: i64) -> (TxnHeader, Txn) {
    let txn = Txn::Create(CreateTxn {
        path: path.into(),
        data: Some(format!("v-{zxid}").into_bytes()),
        acl: Acl::open_unsafe(),
        ephemeral: owner != 0,
        parent_cversion: zxid as i32,
    });
    (hdr(zxid, owner, &txn), txn)
}

/// A setData of `path` at `zxid`.
pub fn set(zxid: i64, path: &str, data: &[u8], version: i32) -> (TxnHeader, Txn) {
    let txn = Txn::SetData(SetDataTxn {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    });
    (hdr(zxid, 0, &txn), txn)
}

/// A createSession.
pub fn open_session(zxid: i64, id: i64, timeout_ms: i32) -> (TxnHeader, Txn) {
    let txn = Txn::CreateSession(CreateSessionTxn { timeout_ms });
    (hdr(zxid, id, &txn), txn)
}

/// A closeSession.
pub fn close_session(zxid: i64, id: i64) -> (TxnHeader, Txn) {
    let txn = Txn::CloseSession(CloseSessionTxn {
        paths_to_delete: vec![],
    });
    (hdr(zxid, id, &txn), txn)
}

/// Creates `/n<zxid>` for every zxid in `range`.
pub fn creates(range: std::ops::RangeInclusive<i64>) -> Vec<(TxnHeader, Txn)> {
    range.map(|z| create(z, &format!("/n{z}"), 0)).collect()
}

/// A log opened on `cfg`, with the tree it should hold (every txn appended, applied).
pub struct Harness {
    pub cfg: StorageConfig,
    pub log: Log,
    pub events: mpsc::UnboundedReceiver<LogEvent>,
    /// What was recovered at open, then every appended transaction applied.
    pub tree: DataTree,
    /// Durable reports seen.
    pub durable_reports: usize,
}

impl Harness {
    /// Opens (recovers) the storage.
    pub fn open(cfg: &StorageConfig) -> Result<(Harness, Vec<(i64, i32)>), storage::StorageError> {
        let (tx, events) = mpsc::unbounded_channel();
        let (log, Recovered { tree, sessions }) = storage::open(cfg, tx)?;
        Ok((
            Harness {
                cfg: cfg.clone(),
                log,
                events,
                tree,
                durable_reports: 0,
            },
            sessions,
        ))
    }

    /// Appends `batch` without waiting, applying it to the expected tree.
    pub fn append(&mut self, batch: Vec<(TxnHeader, Txn)>) {
        for (h, t) in &batch {
            let _ = self.tree.apply(h, t);
        }
        assert_eq!(self.log.append(batch), None, "the file log answers later");
    }

    /// Waits until `zxid` is reported durable.
    pub async fn wait_durable(&mut self, zxid: i64) {
        loop {
            let ev = tokio::time::timeout(WAIT, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("0x{zxid:x} not durable within {WAIT:?}"));
            match ev {
                Some(LogEvent::Durable(z)) => {
                    self.durable_reports += 1;
                    if z >= zxid {
                        return;
                    }
                }
                Some(LogEvent::Failed(e)) => panic!("log failed: {e}"),
                None => panic!("log event channel closed"),
            }
        }
    }

    /// Appends and waits for durability.
    pub async fn write(&mut self, batch: Vec<(TxnHeader, Txn)>) {
        let last = batch.last().expect("non-empty batch").0.zxid;
        self.append(batch);
        self.wait_durable(last).await;
    }

    /// Snapshots the expected tree (as the node would, between transactions).
    pub fn snapshot(&mut self, sessions: Vec<(i64, i32)>) {
        self.log.snapshot(SnapshotData {
            tree: self.tree.clone(),
            sessions,
            zxid: self.tree.last_zxid(),
        });
    }

    /// Snapshots and waits until the snapshot thread is done (so the next may start).
    pub async fn snapshot_and_wait(&mut self, sessions: Vec<(i64, i32)>) {
        self.snapshot(sessions);
        let deadline = std::time::Instant::now() + WAIT;
        while self.log.snapshot_in_progress() {
            assert!(
                std::time::Instant::now() < deadline,
                "snapshot not done in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let path = self
            .cfg
            .data_dir
            .join(storage::snapshot_file_name(self.tree.last_zxid()));
        assert!(path.exists(), "{} not written", path.display());
    }

    /// Closes the log (waits for the writer and any snapshot).
    pub async fn close(mut self) -> DataTree {
        self.log.close().await;
        self.tree
    }
}

/// The segments in the log dir, by first zxid.
pub fn segments(cfg: &StorageConfig) -> Vec<(i64, PathBuf)> {
    storage::list_segments(&cfg.data_log_dir).unwrap()
}

/// The snapshots in the data dir, by zxid.
pub fn snapshots(cfg: &StorageConfig) -> Vec<(i64, PathBuf)> {
    storage::list_snapshots(&cfg.data_dir).unwrap()
}

/// Offsets of every record in a segment, by zxid order.
pub fn record_offsets(path: &Path) -> Vec<(i64, u64)> {
    let mut v = Vec::new();
    storage::log::read_segment(path, |t| {
        v.push((t.hdr.zxid, t.offset));
        Ok(())
    })
    .unwrap();
    v
}

/// Flips one bit of the byte at `offset`.
pub fn flip_bit(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}
