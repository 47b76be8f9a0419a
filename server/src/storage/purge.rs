//! Purge: keep the newest snapshots and the log segments they need, remove the rest
//! (ZooKeeper's `PurgeTxnLog`, with `autopurge.snapRetainCount` / `purgeInterval`).

use super::{list_segments, list_snapshots, snapshot, StorageConfig, StorageError};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{error, info, warn};

/// What a purge kept and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// The snapshots kept, newest first.
    pub kept_snapshots: Vec<PathBuf>,
    /// The files removed (snapshots, then log segments), oldest first.
    pub removed: Vec<PathBuf>,
}

/// Keeps the `retain` newest valid snapshots (at least one) in `snap_dir` and the segments
/// of `log_dir` needed to recover from the oldest of them: every segment that starts after
/// its zxid, and the newest one that starts at or before it. Removes older snapshots and
/// segments. A snapshot whose header or trailer is bad does not count as kept (it is
/// removed only if older than the oldest kept). Does nothing when no snapshot is valid.
///
/// Both directories are the `version-2` ones. Safe to run while the server writes: it
/// never touches the newest segment or a snapshot being written (`*.tmp`).
///
/// # Errors
/// [`StorageError::Io`] when a directory cannot be read or a file removed.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> Result<PurgeReport, StorageError> {
    let retain = retain.max(1);
    let snapshots = list_snapshots(snap_dir)?;
    let mut report = PurgeReport::default();
    let mut least = None;
    for (zxid, path) in snapshots.iter().rev() {
        if report.kept_snapshots.len() == retain {
            break;
        }
        match snapshot::check(path) {
            Ok(_) => {
                report.kept_snapshots.push(path.clone());
                least = Some(*zxid);
            }
            Err(e) => warn!(error = %e, "purge: not counting an invalid snapshot"),
        }
    }
    let Some(least) = least else {
        return Ok(report);
    };
    for (zxid, path) in &snapshots {
        if *zxid < least {
            remove(path, &mut report)?;
        }
    }
    let segments = list_segments(log_dir)?;
    if let Some(keep_from) = segments.iter().rposition(|(z, _)| *z <= least) {
        for (_, path) in &segments[..keep_from] {
            remove(path, &mut report)?;
        }
    }
    Ok(report)
}

fn remove(path: &Path, report: &mut PurgeReport) -> Result<(), StorageError> {
    std::fs::remove_file(path).map_err(|e| StorageError::io(path, e))?;
    info!(file = %path.display(), "purged");
    report.removed.push(path.to_owned());
    Ok(())
}

/// Starts the autopurge thread: it purges at once, then every `purgeInterval` hours, until
/// the returned sender is used or dropped.
pub(crate) fn start_timer(
    cfg: &StorageConfig,
) -> Result<(mpsc::Sender<()>, JoinHandle<()>), StorageError> {
    let (stop, stopped) = mpsc::channel::<()>();
    let interval = Duration::from_secs(u64::from(cfg.purge_interval_hours) * 3600);
    let (snap_dir, log_dir) = (cfg.data_dir.clone(), cfg.data_log_dir.clone());
    let retain = cfg.snap_retain_count as usize;
    let handle = std::thread::Builder::new()
        .name("corral-purge".into())
        .spawn(move || loop {
            match purge(&snap_dir, &log_dir, retain) {
                Ok(r) => info!(
                    removed = r.removed.len(),
                    kept_snapshots = r.kept_snapshots.len(),
                    "autopurge done"
                ),
                Err(e) => error!(error = %e, "autopurge failed"),
            }
            if !matches!(
                stopped.recv_timeout(interval),
                Err(mpsc::RecvTimeoutError::Timeout)
            ) {
                return;
            }
        })
        .map_err(|e| StorageError::io(&cfg.data_dir, e))?;
    Ok((stop, handle))
}
