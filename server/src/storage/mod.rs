//! Durability: the transaction log, snapshots, recovery and purge.
//!
//! The node loop hands batches of prepared transactions to [`Log::append`]; a transaction
//! is applied and answered only once the log reports it durable, either at once (the
//! in-memory log) or later through a [`LogEvent::Durable`] from the writer thread (group
//! commit: one fdatasync per batch of waiting writes).
//!
//! Snapshots are copy-on-write: the node hands [`Log::snapshot`] an O(1) clone of the tree
//! taken between two transactions, and another thread serialises it, so writes never wait
//! for a snapshot.
//!
//! # Threads
//!
//! ```text
//!  node loop ──Log::append(batch)──► [cmd channel] ──► log writer thread
//!      ▲                                 │              drain every waiting command,
//!      │                                 │              write them, fdatasync once
//!      └──── LogEvent::Durable(zxid) ◄───┼──────────────┘ (or LogEvent::Failed, then stop)
//!                                        │
//!  node loop ──Log::snapshot(clone)──► Roll ──► writer starts log.<next zxid> at its next append
//!                  └──────────────► snapshot thread: snapshot.<zxid>.tmp, fsync, rename,
//!                                   fsync dir (one at a time; skipped while one is running)
//!  purge timer thread (autopurge.purgeInterval > 0): at start, then every interval
//! ```
//!
//! * [`Log::append`] never blocks: it sends the batch to the writer over an unbounded
//!   channel. The channel is bounded in practice by the connections' outstanding-request
//!   limit (a connection stops reading once too many of its requests are unanswered).
//! * The writer drains every command waiting (up to [`log::GROUP_BYTES_MAX`] of encoded
//!   records), writes them with one `pwrite`, calls `fdatasync` once (unless `forceSync=no`)
//!   and then reports [`LogEvent::Durable`] with the last zxid of the group. A write is
//!   therefore acknowledged only after its record is durable. On an IO error it reports
//!   [`LogEvent::Failed`] and stops; the node then stops the server.
//! * [`Log::wants_snapshot`] follows ZooKeeper: true once the transactions logged since the
//!   last snapshot exceed `snapCount/2 + r`, `r` drawn from `[0, snapCount/2)` after every
//!   snapshot, so the servers of an ensemble do not all snapshot at once.
//! * [`Log::snapshot`] sends `Roll` to the writer (after every batch already appended), so
//!   the next transaction opens a new segment and old segments can be purged, and starts the
//!   snapshot thread on the clone. The only work on the node loop is the O(1) clone and the
//!   session list. So that the snapshot does not slow writes down in other ways:
//!   - it is encoded at the lowest CPU priority (nice 19), so on a machine with few cores
//!     the node loop, the writer and the connections come first;
//!   - its data is written back to the disk every 512 KiB as it is written
//!     (`sync_file_range`), so no log fdatasync ever waits behind hundreds of MiB of
//!     snapshot pages that share the filesystem journal with it;
//!   - the clone is dropped at normal priority once the file is written (dropping frees the
//!     node versions the live tree replaced meanwhile; a nice-19 thread holding the
//!     allocator's locks would stall the node loop).
//! * [`Log::close`] asks the writer to flush (one last fdatasync) and waits for it, the
//!   snapshot thread and the purge thread without blocking the runtime.
//! * [`Log::truncate`], [`Log::reload`] and [`Log::install_snapshot`] (a follower's sync
//!   with a new leader: TRUNC, and SNAP) wait for the writer to flush and close its segment,
//!   and for a running snapshot, then work on the files from the calling thread. They are
//!   rare and may block the node loop briefly.
//!
//! Two `unsafe` calls depart from the workspace's `unsafe_code = "deny"`: `setpriority(2)`
//! and `sync_file_range(2)`, which std does not wrap. Both take only integers and a borrowed
//! descriptor.
//!
//! # Files
//!
//! Both directories are `<dir>/version-2` ([`StorageConfig`]); `dataLogDir` may differ from
//! `dataDir`.
//!
//! * `log.<16 hex digits>`: a log segment, named by the zxid of its first record. A 32-byte
//!   header (magic `CRRL-TXN`, version, first zxid, header CRC32), then records
//!   `len: u32 | crc32(len ‖ payload): u32 | payload`, the payload being the Jute
//!   [`TxnHeader`] and the Jute transaction body. The file grows in steps of `preAllocSize`
//!   so appends rarely change its size; zero bytes after the last record are preallocation.
//!   See [`log`].
//! * `snapshot.<16 hex digits>`: the tree, the sessions and the zxid. A 32-byte header
//!   (magic `CRRL-SNP`, version, zxid, CRC32), chunks of Jute records of at most about
//!   1 MiB, each with its own CRC32, an end marker and a 48-byte trailer (zxid, node count,
//!   session count, tree digest, CRC32). Written as `snapshot.<zxid>.tmp`, fsynced, renamed,
//!   and the directory fsynced. See [`snapshot`].
//!
//! # Recovery ([`open`])
//!
//! The newest snapshot that reads back whole (every CRC, counts, digest) is loaded; if the
//! newest is corrupt, the previous one is used provided the log still covers it. Then every
//! logged transaction after the snapshot's zxid is applied with [`DataTree::apply`], and
//! CreateSession / CloseSession transactions add and remove sessions. Zxids must follow each
//! other without a hole ([`StorageError::Gap`]): each zxid is the previous one plus one, or
//! the first (counter 1) of a later epoch ([`follows`]). Bytes that are not a valid record at
//! the end of the newest segment, with no valid record after them, are a write torn by a
//! crash: they are cut off with a warning. Anything else that does not check out stops the
//! server with [`StorageError::Corrupt`] naming the file and offset.

pub mod inspect;
pub mod log;
pub mod purge;
mod recover;
pub mod snapshot;

use crate::config::ServerConfig;
use crate::tree::DataTree;
use corral_proto::{Txn, TxnHeader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::mpsc;

pub use log::FileLog;

/// What the log reports back to the node loop.
#[derive(Debug)]
pub enum LogEvent {
    /// Every transaction up to this zxid is durable.
    Durable(i64),
    /// The log can no longer write; the server must stop.
    Failed(String),
}

/// Storage settings, taken from the server configuration.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Where snapshots go (`<dataDir>/version-2`).
    pub data_dir: PathBuf,
    /// Where log segments go (`<dataLogDir>/version-2`, default the data dir).
    pub data_log_dir: PathBuf,
    /// fdatasync each batch (`forceSync`).
    pub force_sync: bool,
    /// Segment preallocation, KiB (`preAllocSize`).
    pub pre_alloc_size_kb: u64,
    /// Transactions between snapshots, randomised as ZooKeeper does (`snapCount`).
    pub snap_count: u64,
    /// Snapshots kept by purge (`autopurge.snapRetainCount`).
    pub snap_retain_count: u32,
    /// Hours between automatic purges, 0 = never (`autopurge.purgeInterval`).
    pub purge_interval_hours: u32,
}

impl StorageConfig {
    /// The storage settings of a server configuration.
    pub fn from_server_config(cfg: &ServerConfig) -> Self {
        StorageConfig {
            data_dir: cfg.data_dir.join("version-2"),
            data_log_dir: cfg.effective_data_log_dir().join("version-2"),
            force_sync: cfg.force_sync,
            pre_alloc_size_kb: cfg.pre_alloc_size_kb,
            snap_count: cfg.snap_count,
            snap_retain_count: cfg.autopurge_snap_retain_count,
            purge_interval_hours: cfg.autopurge_purge_interval_hours,
        }
    }
}

/// The state found on disk at start.
#[derive(Debug)]
pub struct Recovered {
    /// The tree after the newest valid snapshot and every logged transaction after it.
    pub tree: DataTree,
    /// Live sessions: (id, timeout ms).
    pub sessions: Vec<(i64, i32)>,
}

/// A consistent copy of the state at `zxid`, to be written as a snapshot.
#[derive(Debug)]
pub struct SnapshotData {
    /// The tree (a cheap copy-on-write clone).
    pub tree: DataTree,
    /// Live sessions: (id, timeout ms).
    pub sessions: Vec<(i64, i32)>,
    /// The last transaction applied to `tree`.
    pub zxid: i64,
}

/// Why storage failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is corrupt where data cannot be dropped safely.
    #[error("{path}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Transactions are missing between two files.
    #[error("transactions 0x{from:x}..0x{to:x} are missing from the log")]
    Gap {
        /// First missing zxid.
        from: i64,
        /// Last missing zxid.
        to: i64,
    },
    /// The log writer has stopped (after [`LogEvent::Failed`] or [`Log::close`]).
    #[error("the transaction log writer has stopped")]
    Closed,
    /// The operation needs files, and this log keeps none ([`Log::Memory`]).
    #[error("the in-memory log cannot {0}")]
    Unsupported(&'static str),
}

impl StorageError {
    /// An [`StorageError::Io`] for `path`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A [`StorageError::Corrupt`] for `path` at `offset`.
    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.to_owned(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Where transactions go before they are applied.
#[derive(Debug, Default)]
pub enum Log {
    /// Keeps nothing: every batch is "durable" at once. For tests and ephemeral servers.
    #[default]
    Memory,
    /// Segment files written by a writer thread with group commit; see the module docs.
    File(Box<FileLog>),
}

/// Opens the storage in `cfg`'s directories: recovers the state and starts the log writer,
/// which reports durability on `events`.
///
/// Creates the directories when they do not exist (a fresh server), and removes snapshot
/// files left half-written (`*.tmp`) by a crash.
///
/// # Errors
/// [`StorageError`] when the files cannot be read or are corrupt beyond a torn tail:
/// [`StorageError::Corrupt`] names the file and offset, [`StorageError::Gap`] the missing
/// zxids.
pub fn open(
    cfg: &StorageConfig,
    events: mpsc::UnboundedSender<LogEvent>,
) -> Result<(Log, Recovered), StorageError> {
    let recovered = recover::recover(cfg)?;
    let log = FileLog::start(cfg, events)?;
    Ok((Log::File(Box::new(log)), recovered))
}

impl Log {
    /// Appends a batch in zxid order. Returns the zxid now durable when that is known at
    /// once; otherwise a [`LogEvent::Durable`] follows. Never blocks.
    ///
    /// The node loop hands over `Arc<Txn>`s it keeps until apply, so the writer thread
    /// encodes the transactions without anyone copying them; owned ones are wrapped.
    pub fn append<T: Into<Arc<Txn>>>(&mut self, batch: Vec<(TxnHeader, T)>) -> Option<i64> {
        match self {
            Log::Memory => batch.last().map(|(h, _)| h.zxid),
            Log::File(f) => {
                // For `T = Arc<Txn>` this reuses the vector in place.
                f.append(batch.into_iter().map(|(h, t)| (h, t.into())).collect());
                None
            }
        }
    }

    /// Appends already encoded `TxnHeader | body` payloads (zxid, bytes) in zxid order, as
    /// [`Log::append`] does: a ZAB proposal's bytes go to the log as they are. The caller
    /// has checked that each payload decodes and carries its zxid.
    pub fn append_encoded(&mut self, batch: Vec<(i64, Arc<[u8]>)>) -> Option<i64> {
        match self {
            Log::Memory => batch.last().map(|(z, _)| *z),
            Log::File(f) => {
                f.append_encoded(batch);
                None
            }
        }
    }

    /// Whether enough transactions were logged since the last snapshot to take another
    /// (and no snapshot is being written).
    pub fn wants_snapshot(&self) -> bool {
        match self {
            Log::Memory => false,
            Log::File(f) => f.wants_snapshot(),
        }
    }

    /// Starts writing a snapshot in the background (and rolls the log to a new segment).
    pub fn snapshot(&mut self, data: SnapshotData) {
        match self {
            Log::Memory => {}
            Log::File(f) => f.snapshot(data),
        }
    }

    /// Flushes and stops the writer, and waits for a snapshot being written.
    ///
    /// # Cancellation safety
    /// Dropping the future does not lose a write: the writer thread still flushes and
    /// fsyncs what it was given before it exits.
    pub async fn close(&mut self) {
        match self {
            Log::Memory => {}
            Log::File(f) => f.close().await,
        }
    }

    /// Cuts every logged transaction after `zxid` (ZAB's TRUNC: a follower drops what the new
    /// leader never committed), and removes snapshots taken after it. Blocks until the
    /// writer has flushed and any snapshot being written is done; rare (at sync with a new
    /// leader), so the node loop may call it directly.
    ///
    /// # Errors
    /// [`StorageError`] when the files cannot be changed; the server should stop.
    pub fn truncate(&mut self, zxid: i64) -> Result<(), StorageError> {
        match self {
            Log::Memory => Ok(()),
            Log::File(f) => f.truncate(zxid),
        }
    }

    /// Rebuilds the state from the files (the newest snapshot and the log), as at start,
    /// after the writer has flushed: for a follower whose tree went past a truncation.
    ///
    /// # Errors
    /// As [`open`]; [`StorageError::Unsupported`] for the memory log.
    pub fn reload(&mut self, zxid: i64) -> Result<(DataTree, Vec<(i64, i32)>), StorageError> {
        match self {
            Log::Memory => Err(StorageError::Unsupported("reload state")),
            Log::File(f) => {
                let r = f.reload()?;
                if r.tree.last_zxid() > zxid {
                    tracing::warn!(
                        want = %format_args!("0x{zxid:x}"),
                        got = %format_args!("0x{:x}", r.tree.last_zxid()),
                        "reloaded state is past the requested zxid"
                    );
                }
                Ok((r.tree, r.sessions))
            }
        }
    }

    /// Installs a snapshot received whole (SNAP sync: bytes from [`snapshot::encode`] on
    /// the leader): checks and decodes it, cuts the log after `zxid` (what follows in this
    /// server's log is not the leader's history), removes newer snapshots, and writes it as
    /// `snapshot.<zxid>`. Returns the state it holds. Blocks like [`Log::truncate`].
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when the bytes do not check out or hold another zxid;
    /// IO errors.
    pub fn install_snapshot(
        &mut self,
        zxid: i64,
        data: &[u8],
    ) -> Result<(DataTree, Vec<(i64, i32)>), StorageError> {
        let loaded = snapshot::decode(data)?;
        if loaded.summary.zxid != zxid {
            return Err(StorageError::corrupt(
                Path::new("<memory>"),
                0,
                format!(
                    "snapshot holds zxid 0x{:x}, not 0x{zxid:x}",
                    loaded.summary.zxid
                ),
            ));
        }
        if let Log::File(f) = self {
            f.install_snapshot(zxid, data)?;
        }
        Ok((loaded.tree, loaded.sessions))
    }

    /// Whether a snapshot thread is still running (writing, or just finishing).
    pub fn snapshot_in_progress(&self) -> bool {
        match self {
            Log::Memory => false,
            Log::File(f) => f.snapshot_running(),
        }
    }

    /// How many fdatasync calls the log writer made (0 for the memory log): with group
    /// commit this grows slower than the number of appended batches.
    pub fn fsync_count(&self) -> u64 {
        match self {
            Log::Memory => 0,
            Log::File(f) => f.fsync_count(),
        }
    }
}

/// Whether `next` may follow `prev` in the log: the next counter of the same epoch, or the
/// first transaction (counter 1) of a later epoch.
pub fn follows(prev: i64, next: i64) -> bool {
    next == prev + 1 || ((next >> 32) > (prev >> 32) && next & 0xffff_ffff == 1)
}

/// The first zxid missing between `prev` and `next` (when `next` does not follow `prev`).
pub(crate) fn first_missing(prev: i64, next: i64) -> i64 {
    if (next >> 32) > (prev >> 32) {
        (next >> 32 << 32) | 1
    } else {
        prev + 1
    }
}

/// `log.<16 hex digits>`.
pub fn segment_file_name(first_zxid: i64) -> String {
    format!("log.{:016x}", first_zxid as u64)
}

/// `snapshot.<16 hex digits>`.
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("snapshot.{:016x}", zxid as u64)
}

fn parse_name(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
}

fn list(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if let Some(z) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_name(n, prefix))
        {
            out.push((z, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The log segments in `dir`, oldest first, with the zxid their names give.
///
/// # Errors
/// [`StorageError::Io`] when the directory cannot be read (a missing one is empty).
pub fn list_segments(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    list(dir, "log.")
}

/// The snapshots in `dir`, oldest first, with the zxid their names give.
///
/// # Errors
/// [`StorageError::Io`] when the directory cannot be read (a missing one is empty).
pub fn list_snapshots(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    list(dir, "snapshot.")
}

/// fsyncs a directory, so the names created or renamed in it survive a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}
