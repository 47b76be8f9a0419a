//! Snapshots: the tree, the session table and the last zxid, written from a copy-on-write
//! clone on a thread of their own.
//!
//! # Snapshot format (version 1)
//!
//! ```text
//! offset 0   header, 32 bytes:
//!            magic "CRRL-SNP" (8) | version u32 = 2 | flags u32 = 0 | zxid i64
//!            | reserved u32 = 0 | crc32 of the 28 bytes before u32
//! then       chunks: len u32 (> 0) | crc32(payload) u32 | payload (len bytes)
//!            payload = records, never split across chunks, each a tag byte and Jute fields:
//!              1 session  id i64, timeout ms i32
//!              2 acl      index i32, vector<ACL>      (before the first node that uses it)
//!              3 node     path ustring, data buffer (null kept apart from empty),
//!                         acl index i32, Stat (the persisted fields)
//! then       end marker: len 0 | crc 0
//! then       trailer, 48 bytes:
//!            magic "CRRL-END" (8) | zxid i64 | nodes u64 | sessions u64 | digest u64
//!            | reserved u32 = 0 | crc32 of the 44 bytes before u32
//! ```
//!
//! `digest` is [`DataTree::digest`] of the tree written; loading recomputes and compares it.
//! Integers are big-endian.

use super::{fsync_dir, snapshot_file_name, SnapshotData, StorageError};
use crate::tree::DataTree;
use corral_proto::codec::{write_buffer, write_str};
use corral_proto::{Acl, Jute, Reader, Stat};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"CRRL-SNP";
/// First bytes of the trailer.
pub const TRAILER_MAGIC: [u8; 8] = *b"CRRL-END";
/// The snapshot format written by this version.
pub const SNAPSHOT_VERSION: u32 = 2;
const HEADER_BYTES: u64 = 32;
const TRAILER_BYTES: u64 = 48;
/// A chunk is closed once it holds this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// Largest chunk accepted when reading (a record can be larger than [`CHUNK_BYTES`]).
const CHUNK_BYTES_MAX: u32 = 256 << 20;
/// The file is written back every this many bytes while it is written (see [`write_back`]),
/// so the kernel never holds a pile of its dirty pages that a log fdatasync could end up
/// waiting behind.
const SYNC_EVERY_BYTES: u64 = 512 << 10;

const TAG_SESSION: u8 = 1;
const TAG_ACL: u8 = 2;
const TAG_NODE: u8 = 3;

/// What a written or read snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The file.
    pub path: PathBuf,
    /// The last zxid applied to the tree.
    pub zxid: i64,
    /// Nodes written (each path once).
    pub nodes: u64,
    /// Sessions written.
    pub sessions: u64,
    /// [`DataTree::digest`] of the tree.
    pub digest: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// A snapshot read back whole.
#[derive(Debug)]
pub struct LoadedSnapshot {
    /// The tree, its `last_zxid` set to the snapshot's zxid.
    pub tree: DataTree,
    /// The sessions: (id, timeout ms).
    pub sessions: Vec<(i64, i32)>,
    /// What the file says about itself (checked against what was read).
    pub summary: SnapshotSummary,
}

fn encode_header(zxid: i64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    h[16..24].copy_from_slice(&zxid.to_be_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_be_bytes());
    h
}

fn decode_header(h: &[u8; 32]) -> Result<i64, String> {
    if h[0..8] != SNAPSHOT_MAGIC {
        return Err("not a corral snapshot (bad magic)".into());
    }
    if u32::from_be_bytes([h[28], h[29], h[30], h[31]]) != crc32fast::hash(&h[0..28]) {
        return Err("snapshot header checksum mismatch".into());
    }
    let version = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    Ok(be_i64(&h[16..24]))
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    i64::from_be_bytes(a)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trailer {
    zxid: i64,
    nodes: u64,
    sessions: u64,
    digest: u64,
}

impl Trailer {
    fn encode(&self) -> [u8; 48] {
        let mut t = [0u8; 48];
        t[0..8].copy_from_slice(&TRAILER_MAGIC);
        t[8..16].copy_from_slice(&self.zxid.to_be_bytes());
        t[16..24].copy_from_slice(&self.nodes.to_be_bytes());
        t[24..32].copy_from_slice(&self.sessions.to_be_bytes());
        t[32..40].copy_from_slice(&self.digest.to_be_bytes());
        let crc = crc32fast::hash(&t[0..44]);
        t[44..48].copy_from_slice(&crc.to_be_bytes());
        t
    }

    fn decode(t: &[u8; 48]) -> Result<Trailer, String> {
        if t[0..8] != TRAILER_MAGIC {
            return Err("bad trailer magic".into());
        }
        if u32::from_be_bytes([t[44], t[45], t[46], t[47]]) != crc32fast::hash(&t[0..44]) {
            return Err("trailer checksum mismatch".into());
        }
        Ok(Trailer {
            zxid: be_i64(&t[8..16]),
            nodes: be_i64(&t[16..24]) as u64,
            sessions: be_i64(&t[24..32]) as u64,
            digest: be_i64(&t[32..40]) as u64,
        })
    }
}

/// Writes `data` as `dir/snapshot.<zxid>`: to a `.tmp` file first, fsynced, then renamed,
/// and the directory fsynced, so a crash leaves either the whole snapshot or none.
///
/// # Errors
/// [`StorageError::Io`]; the `.tmp` file is removed.
pub fn write(dir: &Path, data: &SnapshotData) -> Result<SnapshotSummary, StorageError> {
    let name = snapshot_file_name(data.zxid);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let result = File::create(&tmp)
        .map_err(|e| StorageError::io(&tmp, e))
        .and_then(|file| {
            let mut w = ChunkWriter::new(FileSink {
                file,
                path: &tmp,
                written: 0,
                flushed: 0,
            });
            let s = w.encode(data)?;
            w.sink
                .file
                .sync_all()
                .map_err(|e| StorageError::io(&tmp, e))?;
            Ok(s)
        });
    match result {
        Ok(mut s) => {
            std::fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
            fsync_dir(dir)?;
            s.path = path;
            Ok(s)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes snapshot bytes received whole (from [`encode`], e.g. a leader's) as
/// `dir/snapshot.<zxid>`, the same way [`write`] does.
///
/// # Errors
/// [`StorageError::Io`]; the `.tmp` file is removed.
pub fn write_bytes(dir: &Path, zxid: i64, bytes: &[u8]) -> Result<PathBuf, StorageError> {
    let name = snapshot_file_name(zxid);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let result = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(StorageError::io(&tmp, e));
    }
    std::fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
    fsync_dir(dir)?;
    Ok(path)
}

/// Encodes `data` in the snapshot format, in memory (to send to a follower).
pub fn encode(data: &SnapshotData) -> Vec<u8> {
    let mut w = ChunkWriter::new(VecSink(Vec::new()));
    w.encode(data).expect("writing to a Vec does not fail");
    w.sink.0
}

/// Decodes snapshot bytes held in memory, checked as [`read`] checks a file.
///
/// # Errors
/// [`StorageError::Corrupt`] (the path is `<memory>`).
pub fn decode(bytes: &[u8]) -> Result<LoadedSnapshot, StorageError> {
    read_from(Path::new("<memory>"), bytes, bytes.len() as u64)
}

/// Where encoded bytes go: a file (fdatasynced now and then) or memory.
trait Sink {
    fn put(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
    /// Called every [`SYNC_EVERY_BYTES`]: write back what was put so far.
    fn sync(&mut self) -> Result<(), StorageError>;
}

struct FileSink<'a> {
    file: File,
    path: &'a Path,
    /// Bytes written so far.
    written: u64,
    /// Bytes already written back to the disk.
    flushed: u64,
}

impl Sink for FileSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.written += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .map_err(|e| StorageError::io(self.path, e))
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        write_back(&self.file, self.flushed, self.written - self.flushed)
            .map_err(|e| StorageError::io(self.path, e))?;
        self.flushed = self.written;
        Ok(())
    }
}

/// Writes `len` bytes at `offset` back to the disk and waits for them, without committing
/// the filesystem journal (Linux `sync_file_range`): the snapshot's data reaches the disk in
/// small steps as it is written, so neither its final fsync nor a log fdatasync that shares
/// the journal with it has hundreds of MiB to wait for. Elsewhere, `fdatasync`.
///
/// The second `unsafe` in storage: `sync_file_range(2)` has no safe wrapper in std; it takes
/// a descriptor borrowed from `file` for the duration of the call and integers.
#[allow(unsafe_code)]
fn write_back(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: the descriptor is open for the whole call (borrowed from `file`); no
        // memory is passed.
        let r =
            unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, flags) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (offset, len);
        file.sync_data()
    }
}

struct VecSink(Vec<u8>);

impl Sink for VecSink {
    fn put(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

struct ChunkWriter<S: Sink> {
    sink: S,
    chunk: Vec<u8>,
    written: u64,
    synced: u64,
}

impl<S: Sink> ChunkWriter<S> {
    fn new(sink: S) -> Self {
        ChunkWriter {
            sink,
            chunk: Vec::with_capacity(CHUNK_BYTES + (64 << 10)),
            written: 0,
            synced: 0,
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.sink.put(bytes)?;
        self.written += bytes.len() as u64;
        if self.written - self.synced >= SYNC_EVERY_BYTES {
            self.sink.sync()?;
            self.synced = self.written;
        }
        Ok(())
    }

    fn end_chunk(&mut self) -> Result<(), StorageError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let mut head = [0u8; 8];
        head[0..4].copy_from_slice(&(self.chunk.len() as u32).to_be_bytes());
        head[4..8].copy_from_slice(&crc32fast::hash(&self.chunk).to_be_bytes());
        let chunk = std::mem::take(&mut self.chunk);
        self.raw(&head)?;
        self.raw(&chunk)?;
        self.chunk = chunk;
        self.chunk.clear();
        Ok(())
    }

    fn maybe_end_chunk(&mut self) -> Result<(), StorageError> {
        if self.chunk.len() >= CHUNK_BYTES {
            self.end_chunk()?;
        }
        Ok(())
    }

    /// Encodes the whole snapshot (header, chunks, end marker, trailer).
    fn encode(&mut self, data: &SnapshotData) -> Result<SnapshotSummary, StorageError> {
        self.raw(&encode_header(data.zxid))?;
        for (id, timeout) in &data.sessions {
            self.chunk.push(TAG_SESSION);
            id.write(&mut self.chunk);
            timeout.write(&mut self.chunk);
            self.maybe_end_chunk()?;
        }
        // ACLs are shared (interned) by the tree: write each once, nodes refer to its index.
        let mut acls: HashMap<*const Vec<Acl>, i32> = HashMap::new();
        let mut nodes = 0u64;
        for (path, n) in data.tree.iter() {
            let key = Arc::as_ptr(n.acl());
            let index = match acls.get(&key) {
                Some(i) => *i,
                None => {
                    let i = acls.len() as i32;
                    acls.insert(key, i);
                    self.chunk.push(TAG_ACL);
                    i.write(&mut self.chunk);
                    n.acl().as_ref().write(&mut self.chunk);
                    i
                }
            };
            self.chunk.push(TAG_NODE);
            write_str(&mut self.chunk, path);
            write_buffer(&mut self.chunk, n.data());
            index.write(&mut self.chunk);
            n.raw_stat().write(&mut self.chunk);
            nodes += 1;
            self.maybe_end_chunk()?;
        }
        self.end_chunk()?;
        let trailer = Trailer {
            zxid: data.zxid,
            nodes,
            sessions: data.sessions.len() as u64,
            digest: data.tree.digest(),
        };
        self.raw(&[0u8; 8])?;
        self.raw(&trailer.encode())?;
        Ok(SnapshotSummary {
            path: PathBuf::new(),
            zxid: data.zxid,
            nodes,
            sessions: trailer.sessions,
            digest: trailer.digest,
            bytes: self.written,
        })
    }
}

/// Reads a snapshot whole: every chunk's CRC, the trailer, the counts, that every node has
/// its parent, and the tree digest.
///
/// # Errors
/// [`StorageError::Io`]; [`StorageError::Corrupt`] with the offset of the bad part.
pub fn read(path: &Path) -> Result<LoadedSnapshot, StorageError> {
    let io = |e| StorageError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    read_from(path, BufReader::with_capacity(1 << 20, file), file_len)
}

fn read_from(path: &Path, mut r: impl Read, file_len: u64) -> Result<LoadedSnapshot, StorageError> {
    let io = |e| StorageError::io(path, e);
    if file_len < HEADER_BYTES + 8 + TRAILER_BYTES {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("file is too short ({file_len} bytes)"),
        ));
    }
    let mut header = [0u8; 32];
    r.read_exact(&mut header).map_err(io)?;
    let zxid = decode_header(&header).map_err(|e| StorageError::corrupt(path, 0, e))?;
    let mut tree = DataTree::new();
    let mut sessions = Vec::new();
    let mut acls: HashMap<i32, Vec<Acl>> = HashMap::new();
    let mut nodes = 0u64;
    let mut offset = HEADER_BYTES;
    let mut chunk = Vec::new();
    loop {
        if offset + 8 > file_len {
            return Err(StorageError::corrupt(
                path,
                offset,
                "truncated: no end marker",
            ));
        }
        let mut head = [0u8; 8];
        r.read_exact(&mut head).map_err(io)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 && crc == 0 {
            break;
        }
        if len > CHUNK_BYTES_MAX || offset + 8 + u64::from(len) > file_len {
            return Err(StorageError::corrupt(
                path,
                offset,
                format!("bad chunk length {len}"),
            ));
        }
        chunk.resize(len as usize, 0);
        r.read_exact(&mut chunk).map_err(io)?;
        if crc32fast::hash(&chunk) != crc {
            return Err(StorageError::corrupt(
                path,
                offset,
                "chunk checksum mismatch",
            ));
        }
        parse_chunk(&chunk, &mut tree, &mut sessions, &mut acls, &mut nodes).map_err(|e| {
            StorageError::corrupt(path, offset, format!("bad record in chunk: {e}"))
        })?;
        offset += 8 + u64::from(len);
    }
    let trailer_at = offset + 8;
    if file_len != trailer_at + TRAILER_BYTES {
        return Err(StorageError::corrupt(
            path,
            trailer_at,
            format!(
                "{} bytes after the end marker, expected a {TRAILER_BYTES}-byte trailer",
                file_len - trailer_at
            ),
        ));
    }
    let mut t = [0u8; 48];
    r.read_exact(&mut t).map_err(io)?;
    let trailer = Trailer::decode(&t).map_err(|e| StorageError::corrupt(path, trailer_at, e))?;
    let found = Trailer {
        zxid,
        nodes,
        sessions: sessions.len() as u64,
        digest: trailer.digest,
    };
    if trailer != found {
        return Err(StorageError::corrupt(
            path,
            trailer_at,
            format!("trailer says {trailer:?} but the file holds {found:?}"),
        ));
    }
    tree.finish_load(zxid)
        .map_err(|e| StorageError::corrupt(path, HEADER_BYTES, e))?;
    let digest = tree.digest();
    if digest != trailer.digest {
        return Err(StorageError::corrupt(
            path,
            trailer_at,
            format!(
                "tree digest {digest:#x} differs from the recorded {:#x}",
                trailer.digest
            ),
        ));
    }
    Ok(LoadedSnapshot {
        tree,
        summary: SnapshotSummary {
            path: path.to_owned(),
            zxid,
            nodes,
            sessions: sessions.len() as u64,
            digest,
            bytes: file_len,
        },
        sessions,
    })
}

fn parse_chunk(
    chunk: &[u8],
    tree: &mut DataTree,
    sessions: &mut Vec<(i64, i32)>,
    acls: &mut HashMap<i32, Vec<Acl>>,
    nodes: &mut u64,
) -> Result<(), String> {
    let mut r = Reader::with_max_len(chunk, chunk.len());
    while r.remaining() > 0 {
        let tag = r.take(1, "tag").map_err(|e| e.to_string())?[0];
        let step: Result<(), corral_proto::DecodeError> = (|| {
            match tag {
                TAG_SESSION => {
                    let id = r.i64("session id")?;
                    let timeout = r.i32("session timeout")?;
                    sessions.push((id, timeout));
                }
                TAG_ACL => {
                    let index = r.i32("acl index")?;
                    let acl = Vec::<Acl>::read(&mut r)?;
                    acls.insert(index, acl);
                }
                TAG_NODE => {
                    let path = r.ustring("path")?.unwrap_or_default();
                    let data = r.buffer("data")?;
                    let index = r.i32("acl index")?;
                    let stat = Stat::read(&mut r)?;
                    let Some(acl) = acls.get(&index) else {
                        return Err(corral_proto::DecodeError::InvalidValue {
                            what: "acl index",
                            value: index.into(),
                        });
                    };
                    if !path.starts_with('/') {
                        return Err(corral_proto::DecodeError::InvalidValue {
                            what: "path (not absolute)",
                            value: path.len() as i64,
                        });
                    }
                    tree.load_node(&path, data, acl.clone(), stat);
                    *nodes += 1;
                }
                other => {
                    return Err(corral_proto::DecodeError::InvalidValue {
                        what: "record tag",
                        value: other.into(),
                    })
                }
            }
            Ok(())
        })();
        step.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks a snapshot cheaply (header and trailer only) and returns its zxid: enough for
/// purge to count it as one of the snapshots to keep.
///
/// # Errors
/// [`StorageError::Io`], or [`StorageError::Corrupt`] for a bad header or trailer.
pub fn check(path: &Path) -> Result<i64, StorageError> {
    let io = |e| StorageError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < HEADER_BYTES + 8 + TRAILER_BYTES {
        return Err(StorageError::corrupt(path, 0, "file is too short"));
    }
    let mut header = [0u8; 32];
    file.read_exact(&mut header).map_err(io)?;
    let zxid = decode_header(&header).map_err(|e| StorageError::corrupt(path, 0, e))?;
    let mut tail = [0u8; 56];
    file.seek(SeekFrom::Start(len - 56)).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    if tail[0..8] != [0; 8] {
        return Err(StorageError::corrupt(path, len - 56, "no end marker"));
    }
    let mut t = [0u8; 48];
    t.copy_from_slice(&tail[8..]);
    let trailer = Trailer::decode(&t).map_err(|e| StorageError::corrupt(path, len - 48, e))?;
    if trailer.zxid != zxid {
        return Err(StorageError::corrupt(
            path,
            len - 48,
            "trailer and header disagree on the zxid",
        ));
    }
    Ok(zxid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::{CreateTxn, Txn, TxnHeader};

    fn tree_with(n: i64) -> DataTree {
        let mut t = DataTree::new();
        for z in 1..=n {
            let hdr = TxnHeader {
                client_id: if z % 2 == 0 { 0x55 } else { 0 },
                cxid: 1,
                zxid: z,
                time: 1000 + z,
                txn_type: 1,
            };
            let acl = if z % 3 == 0 {
                Acl::read_unsafe()
            } else {
                Acl::open_unsafe()
            };
            let txn = Txn::Create(CreateTxn {
                path: format!("/n{z}"),
                data: match z % 3 {
                    0 => None,
                    1 => Some(Vec::new()),
                    _ => Some(vec![z as u8; 5]),
                },
                acl,
                ephemeral: z % 2 == 0,
                parent_cversion: z as i32,
            });
            t.apply(&hdr, &txn).unwrap();
        }
        t
    }

    #[test]
    fn a_snapshot_reads_back_with_the_same_digest_sessions_and_null_data() {
        let dir = tempfile::tempdir().unwrap();
        let tree = tree_with(20);
        let data = SnapshotData {
            tree: tree.clone(),
            sessions: vec![(0x55, 4000), (0x66, 6000)],
            zxid: 20,
        };
        let s = write(dir.path(), &data).unwrap();
        assert_eq!(s.path, dir.path().join("snapshot.0000000000000014"));
        assert_eq!(check(&s.path).unwrap(), 20);
        let loaded = read(&s.path).unwrap();
        assert_eq!(loaded.tree.digest(), tree.digest());
        assert_eq!(loaded.tree.last_zxid(), 20);
        assert_eq!(loaded.sessions, vec![(0x55, 4000), (0x66, 6000)]);
        assert!(loaded.tree.get("/n3").unwrap().data().is_none());
        assert_eq!(loaded.tree.get("/n1").unwrap().data(), Some(&[][..]));
        assert_eq!(
            loaded.tree.get("/n3").unwrap().acl().as_ref(),
            &Acl::read_unsafe()
        );
        assert_eq!(loaded.tree.ephemerals(0x55).count(), 10);
        assert_eq!(loaded.summary.nodes, s.nodes);
        assert!(!dir.path().join("snapshot.0000000000000014.tmp").exists());
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let data = SnapshotData {
            tree: tree_with(5),
            sessions: vec![(1, 2)],
            zxid: 5,
        };
        let s = write(dir.path(), &data).unwrap();
        let good = std::fs::read(&s.path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&s.path, &bad).unwrap();
            assert!(
                matches!(read(&s.path), Err(StorageError::Corrupt { .. })),
                "flip at {i} went unnoticed"
            );
        }
        std::fs::write(&s.path, &good[..good.len() - 1]).unwrap();
        assert!(matches!(read(&s.path), Err(StorageError::Corrupt { .. })));
        assert!(check(&s.path).is_err());
    }
}
