//! Recovery at start: the newest valid snapshot, then every logged transaction after it.

use super::log::{read_segment, SegmentEnd};
use super::{
    first_missing, follows, list_segments, list_snapshots, snapshot, Recovered, StorageConfig,
    StorageError,
};
use crate::tree::DataTree;
use corral_proto::Txn;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::{debug, info, warn};

/// Recovers the state in `cfg`'s directories (creating them when missing).
pub(crate) fn recover(cfg: &StorageConfig) -> Result<Recovered, StorageError> {
    for dir in [&cfg.data_dir, &cfg.data_log_dir] {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    }
    remove_stale_tmp(&cfg.data_dir)?;
    let started = Instant::now();
    let snapshots = list_snapshots(&cfg.data_dir)?;
    let segments = list_segments(&cfg.data_log_dir)?;
    let mut first_err: Option<StorageError> = None;
    for (name_zxid, path) in snapshots.iter().rev() {
        let loaded = match snapshot::read(path).and_then(|s| {
            if s.summary.zxid == *name_zxid {
                Ok(s)
            } else {
                Err(StorageError::corrupt(
                    path,
                    0,
                    format!("header zxid 0x{:x} does not match the name", s.summary.zxid),
                ))
            }
        }) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "snapshot unusable; trying the previous one");
                first_err.get_or_insert(e);
                continue;
            }
        };
        info!(
            file = %path.display(),
            zxid = %format_args!("0x{:x}", loaded.summary.zxid),
            nodes = loaded.summary.nodes,
            ms = started.elapsed().as_millis() as u64,
            "snapshot loaded"
        );
        let mut sessions: BTreeMap<i64, i32> = loaded.sessions.into_iter().collect();
        let mut tree = loaded.tree;
        let zxid = loaded.summary.zxid;
        return match replay(&mut tree, &mut sessions, zxid, &segments) {
            Ok(()) => Ok(done(tree, sessions, started)),
            Err(StorageError::Gap { from, to }) if first_err.is_some() => {
                Err(with_reason(first_err.take().expect("checked"), |r| {
                    format!(
                        "{r}; the previous snapshot (0x{zxid:x}) cannot stand in: \
                         transactions 0x{from:x}..0x{to:x} are missing from the log"
                    )
                }))
            }
            Err(e) => Err(e),
        };
    }
    // No usable snapshot: the log must hold everything from the first transaction.
    let mut tree = DataTree::new();
    let mut sessions = BTreeMap::new();
    match replay(&mut tree, &mut sessions, 0, &segments) {
        Ok(()) => Ok(done(tree, sessions, started)),
        Err(StorageError::Gap { .. }) if first_err.is_some() => {
            Err(with_reason(first_err.take().expect("checked"), |r| {
                format!(
                    "{r}; no other snapshot, and the log does not start at the first transaction"
                )
            }))
        }
        Err(e) => Err(e),
    }
}

fn with_reason(e: StorageError, f: impl FnOnce(&str) -> String) -> StorageError {
    match e {
        StorageError::Corrupt {
            path,
            offset,
            reason,
        } => StorageError::Corrupt {
            path,
            offset,
            reason: f(&reason),
        },
        other => other,
    }
}

fn done(tree: DataTree, sessions: BTreeMap<i64, i32>, started: Instant) -> Recovered {
    info!(
        zxid = %format_args!("0x{:x}", tree.last_zxid()),
        sessions = sessions.len(),
        ms = started.elapsed().as_millis() as u64,
        "recovery complete"
    );
    Recovered {
        tree,
        sessions: sessions.into_iter().collect(),
    }
}

fn remove_stale_tmp(dir: &Path) -> Result<(), StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snapshot.") && name.ends_with(".tmp") {
            warn!(file = %entry.path().display(), "removing a snapshot left half-written");
            std::fs::remove_file(entry.path()).map_err(|e| StorageError::io(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Applies every logged transaction after `from` to `tree` and `sessions`, checking that
/// zxids follow each other from `from + 1`. Cuts a torn tail off the newest segment.
fn replay(
    tree: &mut DataTree,
    sessions: &mut BTreeMap<i64, i32>,
    from: i64,
    segments: &[(i64, PathBuf)],
) -> Result<(), StorageError> {
    let Some(newest_seg) = segments.last() else {
        return Ok(());
    };
    // The segment holding the first transaction after `from` is the newest one that starts
    // at or before `from + 1` (or the first one, when a new epoch starts after `from`).
    let start = segments
        .iter()
        .rposition(|(z, _)| *z <= from + 1)
        .unwrap_or(0);
    let mut last = from;
    let mut applied = 0u64;
    for (name_zxid, path) in &segments[start..] {
        let newest = path == &newest_seg.1;
        let info = read_segment(path, |t| {
            let z = t.hdr.zxid;
            if z <= from {
                return Ok(());
            }
            if !follows(last, z) {
                return Err(if z > last {
                    StorageError::Gap {
                        from: first_missing(last, z),
                        to: z - 1,
                    }
                } else {
                    StorageError::corrupt(
                        path,
                        t.offset,
                        format!("zxid 0x{z:x} was already logged"),
                    )
                });
            }
            apply(tree, sessions, &t.hdr, &t.txn);
            last = z;
            applied += 1;
            Ok(())
        })?;
        if let Some(first) = info.first_zxid {
            if first != *name_zxid {
                return Err(StorageError::corrupt(
                    path,
                    0,
                    format!("header says first zxid 0x{first:x}, the name 0x{name_zxid:x}"),
                ));
            }
        }
        match info.end {
            SegmentEnd::Torn { offset, reason } => {
                if !newest {
                    return Err(StorageError::corrupt(path, offset, reason));
                }
                cut_torn_tail(path, offset, info.file_len, info.records, &reason)?;
            }
            SegmentEnd::Clean if newest && info.records == 0 => {
                // A header and nothing else: the next transaction will start this segment
                // again, under the same name.
                warn!(file = %path.display(), "removing an empty log segment");
                std::fs::remove_file(path).map_err(|e| StorageError::io(path, e))?;
            }
            SegmentEnd::Clean if newest && info.valid_end < info.file_len => {
                // The preallocated zeros of the segment the server was writing when it
                // stopped; it will not be appended to again (the next write starts a new
                // segment), so the file is cut to its records.
                debug!(file = %path.display(), bytes = info.file_len - info.valid_end, "dropping the preallocated tail");
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| StorageError::io(path, e))?;
                f.set_len(info.valid_end)
                    .map_err(|e| StorageError::io(path, e))?;
            }
            SegmentEnd::Clean => {}
        }
    }
    info!(
        transactions = applied,
        zxid = %format_args!("0x{:x}", tree.last_zxid()),
        "log replayed"
    );
    Ok(())
}

fn cut_torn_tail(
    path: &Path,
    offset: u64,
    file_len: u64,
    records: u64,
    reason: &str,
) -> Result<(), StorageError> {
    let io = |e| StorageError::io(path, e);
    if records == 0 {
        warn!(
            file = %path.display(),
            reason,
            "the newest log segment holds no complete record (a crash while it was created); removing it"
        );
        std::fs::remove_file(path).map_err(io)?;
        if let Some(dir) = path.parent() {
            super::fsync_dir(dir)?;
        }
        return Ok(());
    }
    warn!(
        file = %path.display(),
        offset,
        dropped_bytes = file_len - offset,
        reason,
        "truncating a torn write at the end of the newest log segment"
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    f.set_len(offset).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Applies one logged transaction the way the node loop does (a multi step by step), and
/// keeps the session table.
fn apply(
    tree: &mut DataTree,
    sessions: &mut BTreeMap<i64, i32>,
    hdr: &corral_proto::TxnHeader,
    txn: &Txn,
) {
    let result = match txn {
        Txn::Multi(subs) if !subs.iter().any(|t| matches!(t, Txn::Error(_))) => {
            let mut r = Ok(Vec::new());
            for t in subs {
                if let Err(e) = tree.apply(hdr, t) {
                    r = Err(e);
                }
            }
            r
        }
        _ => tree.apply(hdr, txn),
    };
    if let Err(e) = result {
        // The node loop saw (and logged) the same outcome when it applied this.
        debug!(zxid = %format_args!("0x{:x}", hdr.zxid), err = ?e, "replayed transaction did not apply");
    }
    match txn {
        Txn::CreateSession(t) => {
            sessions.insert(hdr.client_id, t.timeout_ms);
        }
        Txn::CloseSession(_) => {
            sessions.remove(&hdr.client_id);
        }
        _ => {}
    }
}

/// Removes every logged transaction after `zxid` (whole segments that start after it, the
/// tail of the one that holds it) and every snapshot taken after it. The writer must have
/// no open segment.
pub(crate) fn truncate_after(cfg: &StorageConfig, zxid: i64) -> Result<(), StorageError> {
    let segments = list_segments(&cfg.data_log_dir)?;
    for (first, path) in segments.iter().rev() {
        if *first > zxid {
            warn!(file = %path.display(), zxid = %format_args!("0x{zxid:x}"), "truncating: removing a log segment");
            std::fs::remove_file(path).map_err(|e| StorageError::io(path, e))?;
            continue;
        }
        let mut cut = None;
        let info = read_segment(path, |t| {
            if t.hdr.zxid > zxid && cut.is_none() {
                cut = Some(t.offset);
            }
            Ok(())
        })?;
        let cut = cut.or(match info.end {
            SegmentEnd::Torn { offset, .. } => Some(offset),
            SegmentEnd::Clean => None,
        });
        if let Some(offset) = cut {
            warn!(file = %path.display(), offset, zxid = %format_args!("0x{zxid:x}"), "truncating a log segment");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| StorageError::io(path, e))?;
            f.set_len(offset).map_err(|e| StorageError::io(path, e))?;
            f.sync_all().map_err(|e| StorageError::io(path, e))?;
        }
        break;
    }
    super::fsync_dir(&cfg.data_log_dir)?;
    for (z, path) in list_snapshots(&cfg.data_dir)? {
        if z > zxid {
            warn!(file = %path.display(), "truncating: removing a snapshot taken after the cut");
            std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        }
    }
    super::fsync_dir(&cfg.data_dir)
}
