//! Log segments: the on-disk format, the reader, and the writer thread with group commit.
//!
//! # Segment format (version 1)
//!
//! ```text
//! offset 0   header, 32 bytes:
//!            magic "CRRL-TXN" (8) | version u32 = 1 | flags u32 = 0 | first zxid i64
//!            | reserved u32 = 0 | crc32 of the 28 bytes before u32
//! offset 32  records, back to back:
//!            len u32 | crc32(len as 4 big-endian bytes ‖ payload) u32 | payload (len bytes)
//!            payload = Jute TxnHeader (32 bytes) ‖ Jute transaction body
//! then       zero bytes up to the preallocated size (a zero `len` ends the records)
//! ```
//!
//! Integers are big-endian. The records of a segment carry consecutive zxids, the first
//! equal to the zxid in the header and the file name.

use super::{fsync_dir, segment_file_name, snapshot, SnapshotData, StorageConfig, StorageError};
use super::{purge, LogEvent};
use corral_proto::{Jute, Txn, TxnHeader};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// First bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CRRL-TXN";
/// The segment format written by this version.
pub const SEGMENT_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a record's `len` and `crc` fields.
pub const RECORD_HEADER_BYTES: u64 = 8;
/// Largest record payload accepted when reading (a sanity bound on `len`).
pub const RECORD_BYTES_MAX: u32 = 64 << 20;
/// The writer stops draining waiting commands once a group holds this many encoded bytes,
/// so one group cannot grow without bound under a continuous stream of writes.
pub const GROUP_BYTES_MAX: usize = 8 << 20;
/// An fdatasync this slow is worth a warning (ZooKeeper's `fsync.warningthresholdms`).
const FSYNC_WARN: Duration = Duration::from_secs(1);
/// An fdatasync this slow is logged at debug level.
const FSYNC_DEBUG: Duration = Duration::from_millis(10);
/// Size of a Jute-encoded [`TxnHeader`].
const TXN_HEADER_BYTES: usize = 32;

/// Encodes a segment header.
pub fn encode_segment_header(first_zxid: i64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_be_bytes());
    h[16..24].copy_from_slice(&first_zxid.to_be_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_be_bytes());
    h
}

/// Decodes a segment header: the first zxid, or what is wrong with it.
fn decode_segment_header(h: &[u8; 32]) -> Result<i64, String> {
    if h[0..8] != SEGMENT_MAGIC {
        return Err("not a corral log segment (bad magic)".into());
    }
    let crc = u32::from_be_bytes([h[28], h[29], h[30], h[31]]);
    if crc != crc32fast::hash(&h[0..28]) {
        return Err("segment header checksum mismatch".into());
    }
    let version = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    if version != SEGMENT_VERSION {
        return Err(format!("unsupported segment version {version}"));
    }
    let mut z = [0u8; 8];
    z.copy_from_slice(&h[16..24]);
    Ok(i64::from_be_bytes(z))
}

/// Appends one record (`len | crc | TxnHeader | body`) to `out`.
pub fn encode_record(out: &mut Vec<u8>, hdr: &TxnHeader, txn: &Txn) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    hdr.write(out);
    txn.write_body(out);
    seal_record(out, start);
}

/// Appends one record whose `TxnHeader | body` part is already encoded (a ZAB proposal's
/// bytes, which are exactly that).
pub fn encode_record_bytes(out: &mut Vec<u8>, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(payload);
    seal_record(out, start);
}

/// Fills in the length and CRC of the record that starts at `start`.
fn seal_record(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 8) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_be_bytes());
    crc.update(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_be_bytes());
}

/// One transaction read back from a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedTxn {
    /// Offset of its record in the file.
    pub offset: u64,
    /// The header.
    pub hdr: TxnHeader,
    /// The body.
    pub txn: Txn,
}

/// How the records of a segment end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    /// At the end of the file, or followed only by zero bytes (preallocation).
    Clean,
    /// Followed by bytes that are not a valid record, with no valid record after them: a
    /// write torn by a crash. Safe to cut off only in the newest segment.
    Torn {
        /// Where the bad bytes start.
        offset: u64,
        /// What is wrong with them.
        reason: String,
    },
}

/// What reading a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// The zxid in the header (`None` when the header itself is torn).
    pub first_zxid: Option<i64>,
    /// Valid records read.
    pub records: u64,
    /// Zxid of the last valid record.
    pub last_zxid: Option<i64>,
    /// Offset just after the last valid record.
    pub valid_end: u64,
    /// Size of the file.
    pub file_len: u64,
    /// How the records end.
    pub end: SegmentEnd,
}

/// Reads a segment, calling `each` for every valid record in order.
///
/// Checks the header, each record's CRC, and that zxids follow each other from the header's
/// first zxid. A bad record with a valid record somewhere after it is corruption, not a torn
/// tail.
///
/// # Errors
/// [`StorageError::Io`]; [`StorageError::Corrupt`] (with the offset) for a bad header or a
/// bad record that valid data follows, a record that passes its CRC but does not decode, or
/// zxids out of sequence; or whatever `each` returns.
pub fn read_segment(
    path: &Path,
    mut each: impl FnMut(LoggedTxn) -> Result<(), StorageError>,
) -> Result<SegmentInfo, StorageError> {
    let io = |e| StorageError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut info = SegmentInfo {
        path: path.to_owned(),
        first_zxid: None,
        records: 0,
        last_zxid: None,
        valid_end: 0,
        file_len,
        end: SegmentEnd::Clean,
    };
    // A torn header: the crash came before the first write of the segment was durable.
    let mut header = [0u8; 32];
    if file_len < SEGMENT_HEADER_BYTES {
        info.end = tail_or_corrupt(path, &mut r, 0, None, "segment header is truncated")?;
        return Ok(info);
    }
    r.read_exact(&mut header).map_err(io)?;
    if header.iter().all(|b| *b == 0) {
        info.end = tail_or_corrupt(path, &mut r, 0, None, "segment header is missing")?;
        return Ok(info);
    }
    let first = decode_segment_header(&header).map_err(|e| StorageError::corrupt(path, 0, e))?;
    info.first_zxid = Some(first);
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut payload = Vec::new();
    loop {
        info.valid_end = offset;
        if offset == file_len {
            return Ok(info);
        }
        if offset + RECORD_HEADER_BYTES > file_len {
            info.end = tail_or_corrupt(path, &mut r, offset, info.last_zxid, "truncated record")?;
            return Ok(info);
        }
        let mut rh = [0u8; 8];
        r.read_exact(&mut rh).map_err(io)?;
        let len = u32::from_be_bytes([rh[0], rh[1], rh[2], rh[3]]);
        let crc = u32::from_be_bytes([rh[4], rh[5], rh[6], rh[7]]);
        if len == 0 && crc == 0 {
            info.end = tail_or_corrupt(path, &mut r, offset, info.last_zxid, "end of records")?;
            return Ok(info);
        }
        let bad = if (len as usize) < TXN_HEADER_BYTES || len > RECORD_BYTES_MAX {
            Some(format!("bad record length {len}"))
        } else if offset + RECORD_HEADER_BYTES + u64::from(len) > file_len {
            Some(format!("record length {len} runs past the end of the file"))
        } else {
            None
        };
        if let Some(reason) = bad {
            info.end = tail_or_corrupt(path, &mut r, offset, info.last_zxid, &reason)?;
            return Ok(info);
        }
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload).map_err(io)?;
        if record_crc(len, &payload) != crc {
            info.end = tail_or_corrupt(
                path,
                &mut r,
                offset,
                info.last_zxid,
                "record checksum mismatch",
            )?;
            return Ok(info);
        }
        let (hdr, txn) = decode_payload(&payload)
            .map_err(|e| StorageError::corrupt(path, offset, format!("undecodable record: {e}")))?;
        let in_sequence = match info.last_zxid {
            Some(prev) => super::follows(prev, hdr.zxid),
            None => hdr.zxid == first,
        };
        if !in_sequence {
            return Err(StorageError::corrupt(
                path,
                offset,
                format!(
                    "record has zxid 0x{:x} after 0x{:x}",
                    hdr.zxid,
                    info.last_zxid.unwrap_or(first)
                ),
            ));
        }
        info.last_zxid = Some(hdr.zxid);
        info.records += 1;
        each(LoggedTxn { offset, hdr, txn })?;
        offset += RECORD_HEADER_BYTES + u64::from(len);
    }
}

fn record_crc(len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_be_bytes());
    h.update(payload);
    h.finalize()
}

fn decode_payload(payload: &[u8]) -> Result<(TxnHeader, Txn), corral_proto::DecodeError> {
    let hdr = TxnHeader::from_bytes(&payload[..TXN_HEADER_BYTES])?;
    let txn = Txn::decode(hdr.txn_type, &payload[TXN_HEADER_BYTES..])?;
    Ok((hdr, txn))
}

/// The records stopped at `offset` for `reason`. Decides whether what follows is a clean
/// end (zeros), a torn tail (garbage, no valid record after it) or corruption (a valid record
/// with a later zxid somewhere after it).
fn tail_or_corrupt(
    path: &Path,
    r: &mut BufReader<File>,
    offset: u64,
    last_zxid: Option<i64>,
    reason: &str,
) -> Result<SegmentEnd, StorageError> {
    let io = |e| StorageError::io(path, e);
    r.seek(SeekFrom::Start(offset)).map_err(io)?;
    // Usually a zero tail: check it in pieces rather than holding it all.
    let mut piece = vec![0u8; 1 << 20];
    let mut all_zero = true;
    loop {
        let n = r.read(&mut piece).map_err(io)?;
        if n == 0 {
            break;
        }
        if !is_zero(&piece[..n]) {
            all_zero = false;
            break;
        }
    }
    if all_zero {
        return Ok(if offset == 0 {
            // Missing header: nothing was ever durable here.
            SegmentEnd::Torn {
                offset,
                reason: reason.to_owned(),
            }
        } else {
            SegmentEnd::Clean
        });
    }
    r.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).map_err(io)?;
    let reason = if reason == "end of records" {
        "non-zero bytes after the end of records"
    } else {
        reason
    };
    let start = if offset == 0 { SEGMENT_HEADER_BYTES } else { 1 };
    if let Some(at) = find_valid_record(&rest, start as usize, last_zxid) {
        return Err(StorageError::corrupt(
            path,
            offset,
            format!(
                "{reason}, but a valid record follows at offset {}",
                offset + at as u64
            ),
        ));
    }
    Ok(SegmentEnd::Torn {
        offset,
        reason: reason.to_owned(),
    })
}

fn is_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words
        .by_ref()
        .all(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) == 0)
        && words.remainder().iter().all(|x| *x == 0)
}

/// The first offset at or after `from` in `buf` where a record with a valid CRC (and a
/// zxid after `after`) starts.
fn find_valid_record(buf: &[u8], from: usize, after: Option<i64>) -> Option<usize> {
    let mut p = from;
    while p + RECORD_HEADER_BYTES as usize + TXN_HEADER_BYTES <= buf.len() {
        let len = u32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]);
        let end = p + 8 + len as usize;
        if (len as usize) >= TXN_HEADER_BYTES && len <= RECORD_BYTES_MAX && end <= buf.len() {
            let crc = u32::from_be_bytes([buf[p + 4], buf[p + 5], buf[p + 6], buf[p + 7]]);
            let payload = &buf[p + 8..end];
            if record_crc(len, payload) == crc {
                if let Ok((hdr, _)) = decode_payload(payload) {
                    if after.is_none_or(|z| hdr.zxid > z) {
                        return Some(p);
                    }
                }
            }
        }
        p += 1;
    }
    None
}

// ----- the writer thread ------------------------------------------------------------------

/// What the node side sends to the writer thread.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Log these, in order. The transactions are the node loop's own, shared.
    Append(Vec<(TxnHeader, Arc<Txn>)>),
    /// Log these already encoded `TxnHeader | body` payloads (zxid, bytes), in order.
    AppendEncoded(Vec<(i64, Arc<[u8]>)>),
    /// Finish the current segment: the next record opens a new one.
    Roll,
    /// Flush, fsync, answer, exit.
    Close(oneshot::Sender<()>),
    /// Flush, fsync and finish the current segment, then answer: the files are quiet until
    /// the next append.
    Barrier(std_mpsc::Sender<()>),
}

/// The open segment.
#[derive(Debug)]
struct Segment {
    file: File,
    path: PathBuf,
    /// Where the next pending bytes go.
    pos: u64,
    /// The file's size (preallocated).
    allocated: u64,
}

/// The writer: owns the current segment; one group of commands, one fdatasync.
#[derive(Debug)]
pub(crate) struct Writer {
    dir: PathBuf,
    force_sync: bool,
    prealloc_bytes: u64,
    seg: Option<Segment>,
    events: mpsc::UnboundedSender<LogEvent>,
    fsyncs: Arc<AtomicU64>,
    /// Encoded bytes for the current segment, not yet written.
    buf: Vec<u8>,
    /// Bytes were written to the current segment since its last fdatasync.
    dirty: bool,
}

impl Writer {
    pub(crate) fn new(
        cfg: &StorageConfig,
        events: mpsc::UnboundedSender<LogEvent>,
        fsyncs: Arc<AtomicU64>,
    ) -> Self {
        Writer {
            dir: cfg.data_log_dir.clone(),
            force_sync: cfg.force_sync,
            prealloc_bytes: cfg.pre_alloc_size_kb.saturating_mul(1024),
            seg: None,
            events,
            fsyncs,
            buf: Vec::with_capacity(1 << 20),
            dirty: false,
        }
    }

    /// Runs until `Close` or until every sender is gone (then it flushes what it has).
    pub(crate) fn run(mut self, rx: std_mpsc::Receiver<Cmd>) {
        loop {
            let Ok(first) = rx.recv() else {
                return;
            };
            let mut close = None;
            let mut last = None;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                let step = match cmd {
                    Cmd::Append(batch) => self.append(&batch, &mut last),
                    Cmd::AppendEncoded(batch) => self.append_encoded(&batch, &mut last),
                    Cmd::Roll => self.roll(),
                    Cmd::Barrier(reply) => self.roll().map(|()| {
                        let _ = reply.send(());
                    }),
                    Cmd::Close(reply) => {
                        close = Some(reply);
                        Ok(())
                    }
                };
                if let Err(e) = step {
                    return self.fail(e);
                }
                if close.is_none() && self.buf.len() < GROUP_BYTES_MAX {
                    next = rx.try_recv().ok();
                }
            }
            if let Err(e) = self.flush().and_then(|()| self.sync()) {
                return self.fail(e);
            }
            if let Some(zxid) = last {
                let _ = self.events.send(LogEvent::Durable(zxid));
            }
            if let Some(reply) = close {
                if let Err(e) = self.roll() {
                    return self.fail(e);
                }
                let _ = reply.send(());
                return;
            }
        }
    }

    fn fail(&self, e: StorageError) {
        error!(error = %e, "transaction log write failed");
        let _ = self.events.send(LogEvent::Failed(e.to_string()));
    }

    fn append(
        &mut self,
        batch: &[(TxnHeader, Arc<Txn>)],
        last: &mut Option<i64>,
    ) -> Result<(), StorageError> {
        for (hdr, txn) in batch {
            if self.seg.is_none() {
                self.open_segment(hdr.zxid)?;
            }
            encode_record(&mut self.buf, hdr, txn);
            *last = Some(hdr.zxid);
        }
        Ok(())
    }

    fn append_encoded(
        &mut self,
        batch: &[(i64, Arc<[u8]>)],
        last: &mut Option<i64>,
    ) -> Result<(), StorageError> {
        for (zxid, payload) in batch {
            if self.seg.is_none() {
                self.open_segment(*zxid)?;
            }
            encode_record_bytes(&mut self.buf, payload);
            *last = Some(*zxid);
        }
        Ok(())
    }

    fn open_segment(&mut self, first_zxid: i64) -> Result<(), StorageError> {
        debug_assert!(
            self.buf.is_empty(),
            "pending bytes belong to the old segment"
        );
        let path = self.dir.join(segment_file_name(first_zxid));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        let mut allocated = 0;
        if self.prealloc_bytes > 0 {
            file.set_len(self.prealloc_bytes)
                .map_err(|e| StorageError::io(&path, e))?;
            allocated = self.prealloc_bytes;
        }
        // The new name must be durable before anything in the file is reported durable.
        if self.force_sync {
            fsync_dir(&self.dir)?;
        }
        info!(file = %path.display(), "new log segment");
        self.buf
            .extend_from_slice(&encode_segment_header(first_zxid));
        self.seg = Some(Segment {
            file,
            path,
            pos: 0,
            allocated,
        });
        Ok(())
    }

    /// Writes the pending bytes to the current segment, growing it by whole preallocation
    /// steps when they do not fit.
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let seg = self
            .seg
            .as_mut()
            .expect("pending bytes imply an open segment");
        let end = seg.pos + self.buf.len() as u64;
        let io = |e| StorageError::io(&seg.path, e);
        if self.prealloc_bytes > 0 && end > seg.allocated {
            let steps = (end - seg.allocated).div_ceil(self.prealloc_bytes);
            seg.allocated += steps * self.prealloc_bytes;
            seg.file.set_len(seg.allocated).map_err(io)?;
        }
        seg.file.write_all_at(&self.buf, seg.pos).map_err(io)?;
        seg.pos = end;
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.force_sync || !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        if let Some(seg) = &self.seg {
            let started = Instant::now();
            seg.file
                .sync_data()
                .map_err(|e| StorageError::io(&seg.path, e))?;
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            let took = started.elapsed();
            if took >= FSYNC_WARN {
                // ZooKeeper's fsync.warningthresholdms.
                warn!(ms = took.as_millis() as u64, file = %seg.path.display(), "fdatasync of the transaction log was slow; writes wait for it");
            } else if took >= FSYNC_DEBUG {
                debug!(ms = took.as_millis() as u64, "slow fdatasync");
            }
        }
        Ok(())
    }

    /// Finishes the current segment: flushed, synced, and cut to its records (the
    /// preallocated zeros after them are not needed any more).
    fn roll(&mut self) -> Result<(), StorageError> {
        if self.seg.is_some() {
            self.flush()?;
            self.sync()?;
            let seg = self.seg.take().expect("checked");
            seg.file
                .set_len(seg.pos)
                .map_err(|e| StorageError::io(&seg.path, e))?;
        }
        Ok(())
    }
}

// ----- the node-side handle -----------------------------------------------------------------

/// The file log: the node-side handle of the writer, snapshot and purge threads.
#[derive(Debug)]
pub struct FileLog {
    cfg: StorageConfig,
    tx: std_mpsc::Sender<Cmd>,
    writer: Option<JoinHandle<()>>,
    snap_dir: PathBuf,
    snap_count: u64,
    /// Transactions appended since the last snapshot.
    since_snapshot: u64,
    /// `snapCount/2 + random [0, snapCount/2)`: snapshot when `since_snapshot` exceeds it.
    threshold: u64,
    rng: u64,
    snapshot: Option<JoinHandle<()>>,
    purge: Option<(std_mpsc::Sender<()>, JoinHandle<()>)>,
    fsyncs: Arc<AtomicU64>,
}

impl FileLog {
    /// Starts the writer thread (and the purge timer when `purgeInterval` > 0).
    ///
    /// # Errors
    /// [`StorageError::Io`] when a thread cannot be started.
    pub(crate) fn start(
        cfg: &StorageConfig,
        events: mpsc::UnboundedSender<LogEvent>,
    ) -> Result<FileLog, StorageError> {
        let fsyncs = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std_mpsc::channel();
        let writer = Writer::new(cfg, events, fsyncs.clone());
        let writer = std::thread::Builder::new()
            .name("corral-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::io(&cfg.data_log_dir, e))?;
        let purge = if cfg.purge_interval_hours > 0 {
            Some(purge::start_timer(cfg)?)
        } else {
            None
        };
        let mut rng = seed();
        let threshold = next_threshold(cfg.snap_count, &mut rng);
        Ok(FileLog {
            cfg: cfg.clone(),
            tx,
            writer: Some(writer),
            snap_dir: cfg.data_dir.clone(),
            snap_count: cfg.snap_count,
            since_snapshot: 0,
            threshold,
            rng,
            snapshot: None,
            purge,
            fsyncs,
        })
    }

    pub(crate) fn append(&mut self, batch: Vec<(TxnHeader, Arc<Txn>)>) {
        self.since_snapshot += batch.len() as u64;
        // A send fails only once the writer has stopped after reporting `Failed`.
        let _ = self.tx.send(Cmd::Append(batch));
    }

    pub(crate) fn append_encoded(&mut self, batch: Vec<(i64, Arc<[u8]>)>) {
        self.since_snapshot += batch.len() as u64;
        let _ = self.tx.send(Cmd::AppendEncoded(batch));
    }

    pub(crate) fn snapshot_running(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|h| !h.is_finished())
    }

    pub(crate) fn wants_snapshot(&self) -> bool {
        self.since_snapshot > self.threshold && !self.snapshot_running()
    }

    pub(crate) fn snapshot(&mut self, data: SnapshotData) {
        if self.snapshot_running() {
            info!(zxid = %format_args!("0x{:x}", data.zxid), "a snapshot is still being written; skipping");
            return;
        }
        let _ = self.tx.send(Cmd::Roll);
        self.since_snapshot = 0;
        self.threshold = next_threshold(self.snap_count, &mut self.rng);
        let dir = self.snap_dir.clone();
        let zxid = data.zxid;
        let spawned = std::thread::Builder::new()
            .name("corral-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                info!(zxid = %format_args!("0x{zxid:x}"), "writing snapshot");
                // Encoding and writing run at the lowest CPU priority, on a scoped thread;
                // this one keeps the normal priority and drops the clone afterwards. The
                // drop frees the node versions the live tree replaced meanwhile, memory the
                // node loop's allocator arena owns: a low-priority thread holding that
                // arena's lock would stall the node loop (priority inversion).
                let written = std::thread::scope(|scope| {
                    scope
                        .spawn(|| {
                            lower_thread_priority();
                            snapshot::write(&dir, &data)
                        })
                        .join()
                });
                let ms = started.elapsed().as_millis() as u64;
                drop(data);
                match written {
                    Err(_) => error!("the snapshot thread panicked"),
                    Ok(Ok(s)) => info!(
                        zxid = %format_args!("0x{zxid:x}"),
                        nodes = s.nodes,
                        sessions = s.sessions,
                        bytes = s.bytes,
                        ms,
                        file = %s.path.display(),
                        "snapshot written"
                    ),
                    Ok(Err(e)) => error!(error = %e, "snapshot failed"),
                }
            });
        match spawned {
            Ok(h) => self.snapshot = Some(h),
            Err(e) => error!(error = %e, "cannot start the snapshot thread"),
        }
    }

    pub(crate) async fn close(&mut self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Cmd::Close(reply)).is_ok() {
            let _ = done.await;
        }
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        threads.extend(self.writer.take());
        threads.extend(self.snapshot.take());
        if let Some((stop, h)) = self.purge.take() {
            let _ = stop.send(());
            threads.push(h);
        }
        let _ = tokio::task::spawn_blocking(move || {
            for h in threads {
                let _ = h.join();
            }
        })
        .await;
    }

    /// Waits until the writer has flushed and closed its segment.
    fn barrier(&self) -> Result<(), StorageError> {
        let (reply, done) = std_mpsc::channel();
        self.tx
            .send(Cmd::Barrier(reply))
            .map_err(|_| StorageError::Closed)?;
        done.recv().map_err(|_| StorageError::Closed)
    }

    /// Waits for a snapshot being written.
    fn join_snapshot(&mut self) {
        if let Some(h) = self.snapshot.take() {
            let _ = h.join();
        }
    }

    pub(crate) fn truncate(&mut self, zxid: i64) -> Result<(), StorageError> {
        self.barrier()?;
        self.join_snapshot();
        super::recover::truncate_after(&self.cfg, zxid)
    }

    pub(crate) fn reload(&mut self) -> Result<super::Recovered, StorageError> {
        self.barrier()?;
        self.join_snapshot();
        super::recover::recover(&self.cfg)
    }

    pub(crate) fn install_snapshot(&mut self, zxid: i64, bytes: &[u8]) -> Result<(), StorageError> {
        self.barrier()?;
        self.join_snapshot();
        super::recover::truncate_after(&self.cfg, zxid)?;
        let path = snapshot::write_bytes(&self.cfg.data_dir, zxid, bytes)?;
        info!(file = %path.display(), "installed the leader's snapshot");
        self.since_snapshot = 0;
        Ok(())
    }

    pub(crate) fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
}

/// Lowers the calling thread's CPU priority to nice 19 (Linux schedules threads, so this
/// affects only this one). On a machine with few cores the snapshot thread then gives way to
/// the node loop, the log writer and the connection tasks, and runs on what CPU they leave:
/// a snapshot takes longer, writes are not delayed behind it.
///
/// The one `unsafe` in storage: `setpriority(2)` has no safe wrapper in std; it takes no
/// pointers and cannot violate memory safety.
#[allow(unsafe_code)]
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on integers; no memory is passed.
        let r = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
        };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the snapshot thread's priority");
        }
    }
}

/// A seed for the snapshot jitter: it only spreads snapshots of different servers apart,
/// so the clock and pid are enough.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) | 1
}

/// `snap_count/2 + r`, `r` uniform in `[0, snap_count/2)` (ZooKeeper's `randRoll`).
fn next_threshold(snap_count: u64, rng: &mut u64) -> u64 {
    // xorshift64*
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    let r = rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let half = snap_count / 2;
    half + if half == 0 { 0 } else { r % half }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::{Acl, CreateTxn};

    fn shared((hdr, txn): (TxnHeader, Txn)) -> (TxnHeader, Arc<Txn>) {
        (hdr, Arc::new(txn))
    }

    fn txn(zxid: i64) -> (TxnHeader, Txn) {
        (
            TxnHeader {
                client_id: 1,
                cxid: zxid as i32,
                zxid,
                time: 1000,
                txn_type: 1,
            },
            Txn::Create(CreateTxn {
                path: format!("/n{zxid}"),
                data: Some(vec![7; 10]),
                acl: Acl::open_unsafe(),
                ephemeral: false,
                parent_cversion: zxid as i32,
            }),
        )
    }

    fn cfg(dir: &Path) -> StorageConfig {
        StorageConfig {
            data_dir: dir.to_owned(),
            data_log_dir: dir.to_owned(),
            force_sync: true,
            pre_alloc_size_kb: 64,
            snap_count: 100,
            snap_retain_count: 3,
            purge_interval_hours: 0,
        }
    }

    #[test]
    fn every_waiting_batch_shares_one_fdatasync_and_one_durable_report() {
        let dir = tempfile::tempdir().unwrap();
        let (events, mut rx) = mpsc::unbounded_channel();
        let fsyncs = Arc::new(AtomicU64::new(0));
        let writer = Writer::new(&cfg(dir.path()), events, fsyncs.clone());
        let (tx, cmd_rx) = std_mpsc::channel();
        // Fifty batches are waiting before the writer starts: one group.
        for z in 1..=50 {
            tx.send(Cmd::Append(vec![shared(txn(z))])).unwrap();
        }
        let (reply, _done) = oneshot::channel();
        tx.send(Cmd::Close(reply)).unwrap();
        writer.run(cmd_rx);
        assert_eq!(fsyncs.load(Ordering::Relaxed), 1);
        assert!(matches!(rx.try_recv(), Ok(LogEvent::Durable(50))));
        assert!(rx.try_recv().is_err(), "one report covers the group");
        let mut n = 0;
        let info = read_segment(&dir.path().join(segment_file_name(1)), |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            (n, info.last_zxid, info.end),
            (50, Some(50), SegmentEnd::Clean)
        );
    }

    #[test]
    fn encoded_payloads_are_logged_as_the_same_records() {
        // A proposal's bytes (`TxnHeader | body`) make the very record `encode_record` makes.
        let (hdr, t) = txn(9);
        let mut a = Vec::new();
        encode_record(&mut a, &hdr, &t);
        let mut payload = Vec::new();
        hdr.write(&mut payload);
        t.write_body(&mut payload);
        let mut b = Vec::new();
        encode_record_bytes(&mut b, &payload);
        assert_eq!(a, b);
        // And they read back as the transactions, mixed with encoded ones in one segment.
        let dir = tempfile::tempdir().unwrap();
        let (events, mut rx) = mpsc::unbounded_channel();
        let writer = Writer::new(&cfg(dir.path()), events, Arc::default());
        let (tx, cmd_rx) = std_mpsc::channel();
        tx.send(Cmd::Append(vec![shared(txn(1))])).unwrap();
        let encoded = (2..=3)
            .map(|z| {
                let (h, t) = txn(z);
                let mut p = Vec::new();
                h.write(&mut p);
                t.write_body(&mut p);
                (z, Arc::from(p))
            })
            .collect();
        tx.send(Cmd::AppendEncoded(encoded)).unwrap();
        drop(tx);
        writer.run(cmd_rx);
        assert!(matches!(rx.try_recv(), Ok(LogEvent::Durable(3))));
        let mut read = Vec::new();
        read_segment(&dir.path().join(segment_file_name(1)), |r| {
            read.push((r.hdr.clone(), r.txn.clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(read, (1..=3).map(txn).collect::<Vec<_>>());
    }

    #[test]
    fn segment_grows_in_preallocation_steps() {
        let dir = tempfile::tempdir().unwrap();
        let (events, _rx) = mpsc::unbounded_channel();
        let writer = Writer::new(&cfg(dir.path()), events, Arc::default());
        let (tx, cmd_rx) = std_mpsc::channel();
        // ~100 bytes a record: 1000 records need two 64 KiB steps.
        tx.send(Cmd::Append((1..=1000).map(txn).map(shared).collect()))
            .unwrap();
        drop(tx);
        writer.run(cmd_rx);
        let len = std::fs::metadata(dir.path().join(segment_file_name(1)))
            .unwrap()
            .len();
        assert_eq!(len % (64 * 1024), 0);
        assert!(len >= 2 * 64 * 1024, "{len}");
    }

    #[test]
    fn threshold_stays_in_zookeepers_range() {
        let mut rng = 42;
        for _ in 0..1000 {
            let t = next_threshold(100, &mut rng);
            assert!((50..100).contains(&t), "{t}");
        }
        assert_eq!(next_threshold(2, &mut rng), 1);
    }

    #[test]
    fn a_record_round_trips_and_its_crc_covers_the_length() {
        let (h, t) = txn(9);
        let mut buf = Vec::new();
        encode_record(&mut buf, &h, &t);
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(len + 8, buf.len());
        assert_eq!(decode_payload(&buf[8..]).unwrap(), (h, t));
        assert_eq!(find_valid_record(&buf, 0, None), Some(0));
        buf[3] ^= 1; // the length changes: the CRC no longer matches
        assert_eq!(find_valid_record(&buf, 0, None), None);
    }
}
