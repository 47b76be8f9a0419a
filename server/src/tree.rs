//! The data tree: znodes, Stat bookkeeping, ephemerals by session, containers and TTL nodes.
//!
//! The tree changes only by [`DataTree::apply`] of a committed transaction, so every server
//! that applies the same transactions holds the same tree. Time comes from the transaction
//! header (the leader's clock), never from this process.
//!
//! # Layout
//!
//! Memory per znode is what decides how large a tree a server can hold, so a znode is one
//! allocation: its Stat, ACL reference, path and data (when short) sit together behind a thin
//! pointer ([`Znode`]). The nodes live in one persistent ordered set keyed by
//! `(parent path, name)` rather than by full path. In that order a node's children are
//! adjacent, so no node carries a list of its children: `getChildren` is a range scan, and
//! a parent sorts before its children (its parent path is a proper prefix of theirs), which
//! is the order snapshots are written and read in.
//!
//! The set is persistent (structurally shared), so cloning the tree is O(1), which is what
//! lets a snapshot be taken without stopping writes. Nodes are never changed in place: a
//! change builds the node anew and replaces it, so a snapshot's clone never sees it.

use corral_proto::path::parent;
use corral_proto::{
    ttl_ephemeral_owner, ttl_of_owner, Acl, ErrorCode, Stat, Txn, TxnHeader,
    CONTAINER_EPHEMERAL_OWNER,
};
use equivalent::{Comparable, Equivalent};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use triomphe::ThinArc;

/// Persistent (structurally shared) B-tree map: cloning is O(1). A B-tree keeps its nodes
/// dense, so it costs a few bytes per entry where a persistent hash trie costs hundreds.
type PMap<K, V> = imbl::OrdMap<K, V>;
/// Persistent set, for the nodes and the indexes that a snapshot clone shares.
type PSet<T> = imbl::OrdSet<T>;

/// Data longer than this is kept in an allocation of its own. Every child create or delete
/// rebuilds the parent, so the parent's data must be cheap to carry over.
const INLINE_DATA_MAX: usize = 512;

/// Flag in [`Header::name_start`]: the node's data is null (not empty).
const NULL_DATA: u32 = 1 << 31;

/// The fixed part of a znode, in front of its path and inline data.
#[derive(Debug, Clone)]
struct Header {
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime: i64,
    mtime: i64,
    /// As stored: container and TTL markers included.
    ephemeral_owner: i64,
    version: i32,
    /// As stored: counts child creates (the sequential-name counter).
    cversion: i32,
    aversion: i32,
    num_children: i32,
    /// Shared between nodes that have the same ACL.
    acl: Arc<Vec<Acl>>,
    /// Data longer than [`INLINE_DATA_MAX`]; shorter data follows the path.
    big: Option<Arc<Vec<u8>>>,
    /// Bytes of the path at the start of the slice.
    path_len: u32,
    /// Where the last path component starts (the byte after the last '/'), and
    /// [`NULL_DATA`].
    name_start: u32,
}

/// One node of the tree: header, path and short data in one reference-counted allocation.
/// Cloning it is a reference count increment.
#[derive(Clone)]
pub struct Znode(ThinArc<Header, u8>);

impl std::fmt::Debug for Znode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Znode")
            .field("path", &self.path())
            .field("stat", &self.raw_stat())
            .field("data_len", &self.data().map(<[u8]>::len))
            .finish()
    }
}

impl Znode {
    fn build(mut header: Header, path: &str, data: Option<&[u8]>) -> Znode {
        let name_start = match path.rfind('/') {
            Some(i) => i + 1,
            None => 0,
        };
        header.path_len = path.len() as u32;
        header.name_start = name_start as u32;
        header.big = None;
        let inline: &[u8] = match data {
            None => {
                header.name_start |= NULL_DATA;
                &[]
            }
            Some(d) if d.len() > INLINE_DATA_MAX => {
                header.big = Some(Arc::new(d.to_vec()));
                &[]
            }
            Some(d) => d,
        };
        let (a, b) = (path.as_bytes(), inline);
        if b.is_empty() {
            return Znode(ThinArc::from_header_and_slice(header, a));
        }
        // Path and data side by side; on the stack when short, which most are.
        let n = a.len() + b.len();
        let mut stack = [0u8; 320];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, 0);
            &mut heap
        };
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..].copy_from_slice(b);
        Znode(ThinArc::from_header_and_slice(header, buf))
    }

    /// The same node with a changed header; path and data carried over.
    fn with_header(&self, header: Header) -> Znode {
        let mut h = header;
        h.path_len = self.header().path_len;
        h.name_start = self.header().name_start;
        h.big = self.header().big.clone();
        Znode(ThinArc::from_header_and_slice(h, &self.0.slice))
    }

    fn header(&self) -> &Header {
        &self.0.header.header
    }

    fn path_bytes(&self) -> &[u8] {
        &self.0.slice[..self.header().path_len as usize]
    }

    /// `(parent path, name)`: the order of the node set. The root is `("", "")`, children
    /// of the root `("", name)`.
    fn key(&self) -> (&[u8], &[u8]) {
        let p = self.path_bytes();
        let start = (self.header().name_start & !NULL_DATA) as usize;
        (&p[..start.saturating_sub(1)], &p[start..])
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        // The bytes were copied from a `&str`, so they are UTF-8.
        std::str::from_utf8(self.path_bytes()).unwrap_or_default()
    }

    /// The data; `None` when created with null data (kept apart from empty).
    pub fn data(&self) -> Option<&[u8]> {
        let h = self.header();
        if h.name_start & NULL_DATA != 0 {
            return None;
        }
        Some(match &h.big {
            Some(b) => b,
            None => &self.0.slice[h.path_len as usize..],
        })
    }

    fn data_len(&self) -> usize {
        self.data().map_or(0, <[u8]>::len)
    }

    /// The ACL, shared between nodes that have the same one.
    pub fn acl(&self) -> &Arc<Vec<Acl>> {
        &self.header().acl
    }

    /// Number of children.
    pub fn num_children(&self) -> usize {
        self.header().num_children.max(0) as usize
    }

    /// The Stat as clients see it, as ZooKeeper computes it: `cversion` reported as
    /// `2 × stored − numChildren` (the stored value counts child creates, so this is creates
    /// plus deletes), and `ephemeralOwner` 0 for container and TTL nodes.
    pub fn stat(&self) -> Stat {
        let mut s = self.raw_stat();
        if s.ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
            || ttl_of_owner(s.ephemeral_owner).is_some()
        {
            s.ephemeral_owner = 0;
        }
        s.cversion = s.cversion.wrapping_mul(2).wrapping_sub(s.num_children);
        s
    }

    /// The Stat as stored: `cversion` counting child creates (the sequential-name counter)
    /// and the stored `ephemeralOwner` (container and TTL markers included).
    pub fn raw_stat(&self) -> Stat {
        let h = self.header();
        Stat {
            czxid: h.czxid,
            mzxid: h.mzxid,
            ctime: h.ctime,
            mtime: h.mtime,
            version: h.version,
            cversion: h.cversion,
            aversion: h.aversion,
            ephemeral_owner: h.ephemeral_owner,
            data_length: self.data_len() as i32,
            num_children: h.num_children,
            pzxid: h.pzxid,
        }
    }

    /// The data as the wire carries it.
    pub fn data_vec(&self) -> Option<Vec<u8>> {
        self.data().map(<[u8]>::to_vec)
    }
}

impl PartialEq for Znode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Znode {}

impl PartialOrd for Znode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Znode {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A position in the node set, for lookups and range scans without building a node.
#[derive(Debug, Clone, Copy)]
enum Probe<'a> {
    /// The node `(parent, name)`.
    Exact(&'a [u8], &'a [u8]),
    /// Just after every child of `parent`.
    AfterChildren(&'a [u8]),
}

impl<'a> Probe<'a> {
    /// The probe for the node at `path`.
    fn of(path: &'a str) -> Probe<'a> {
        let p = path.as_bytes();
        match path.rfind('/') {
            Some(i) => Probe::Exact(&p[..i], &p[i + 1..]),
            None => Probe::Exact(p, &[]),
        }
    }

    /// The parent path as keys of its children carry it (`""` for the root).
    fn parent_key(path: &'a str) -> &'a [u8] {
        if path == "/" || path.is_empty() {
            &[]
        } else {
            path.as_bytes()
        }
    }
}

impl Equivalent<Znode> for Probe<'_> {
    fn equivalent(&self, key: &Znode) -> bool {
        self.compare(key) == Ordering::Equal
    }
}

impl Comparable<Znode> for Probe<'_> {
    fn compare(&self, key: &Znode) -> Ordering {
        let (kp, kn) = key.key();
        match *self {
            Probe::Exact(p, n) => (p, n).cmp(&(kp, kn)),
            Probe::AfterChildren(p) => p.cmp(kp).then(Ordering::Greater),
        }
    }
}

/// A watch trigger produced by applying a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A node was created.
    Created(String),
    /// A node was deleted; its ACL decides who may hear of it.
    Deleted(String, Arc<Vec<Acl>>),
    /// A node's data changed.
    DataChanged(String),
    /// A node's children changed.
    ChildrenChanged(String),
}

/// The in-memory tree. `Clone` is cheap (structural sharing), so a snapshot is a clone.
#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: PSet<Znode>,
    ephemerals: PMap<i64, PSet<Arc<str>>>,
    containers: PSet<Arc<str>>,
    ttls: PSet<Arc<str>>,
    acl_cache: HashMap<Vec<Acl>, Arc<Vec<Acl>>>,
    /// The ACL interned last: most creates repeat it, and comparing is cheaper than hashing.
    last_acl: Option<Arc<Vec<Acl>>>,
    last_zxid: i64,
    data_bytes: u64,
    /// Sum of every node's hash, kept current on each change (see [`DataTree::digest`]).
    digest: u64,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

/// Paths every server has and clients may not delete.
pub const SYSTEM_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// A header with the given Stat fields.
fn header_of(stat: &Stat, acl: Arc<Vec<Acl>>) -> Header {
    Header {
        czxid: stat.czxid,
        mzxid: stat.mzxid,
        pzxid: stat.pzxid,
        ctime: stat.ctime,
        mtime: stat.mtime,
        ephemeral_owner: stat.ephemeral_owner,
        version: stat.version,
        cversion: stat.cversion,
        aversion: stat.aversion,
        num_children: 0,
        acl,
        big: None,
        path_len: 0,
        name_start: 0,
    }
}

impl DataTree {
    /// A tree with the root and the `/zookeeper` system nodes.
    pub fn new() -> Self {
        let mut t = DataTree {
            nodes: PSet::new(),
            ephemerals: PMap::new(),
            containers: PSet::new(),
            ttls: PSet::new(),
            acl_cache: HashMap::new(),
            last_acl: None,
            last_zxid: 0,
            data_bytes: 0,
            digest: 0,
        };
        let open = t.intern_acl(Acl::open_unsafe());
        let read = t.intern_acl(Acl::read_unsafe());
        for (p, acl, children) in [
            ("/", open.clone(), 1),
            ("/zookeeper", open.clone(), 2),
            ("/zookeeper/quota", open, 0),
            ("/zookeeper/config", read, 0),
        ] {
            let mut h = header_of(&Stat::default(), acl);
            h.num_children = children;
            t.nodes.insert(Znode::build(h, p, Some(b"")));
        }
        t.digest = t.full_digest();
        t
    }

    /// The node at `path` (`""` names the root too, as in ZooKeeper).
    pub fn get(&self, path: &str) -> Option<&Znode> {
        if path.is_empty() {
            return self.nodes.get(&Probe::Exact(&[], &[]));
        }
        self.nodes.get(&Probe::of(path))
    }

    /// Whether a node exists at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The children of `path` (none if there is no such node), in name order.
    pub fn children<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Znode> + 'a {
        let p = Probe::parent_key(path);
        // The root is the only node with an empty name, and it is no one's child.
        let range = (
            Bound::Excluded(Probe::Exact(p, &[])),
            Bound::Excluded(Probe::AfterChildren(p)),
        );
        self.nodes.range(range)
    }

    /// The names of the children of `path`, in name order.
    pub fn child_names<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.children(path).map(|c| {
            let (_, name) = c.key();
            std::str::from_utf8(name).unwrap_or_default()
        })
    }

    /// Number of nodes, counted as ZooKeeper's `Node count` does (the root twice).
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    /// Approximate bytes of paths and data, as `zk_approximate_data_size`.
    pub fn approximate_data_size(&self) -> u64 {
        self.data_bytes
    }

    /// Zxid of the last applied transaction.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Records that the transaction `zxid` was applied (for transactions applied step by
    /// step, such as an empty multi, that change no node).
    pub fn advance_zxid(&mut self, zxid: i64) {
        self.last_zxid = self.last_zxid.max(zxid);
    }

    /// Ephemerals owned by `session`, sorted.
    pub fn ephemerals(&self, session: i64) -> impl Iterator<Item = &str> {
        self.ephemerals
            .get(&session)
            .into_iter()
            .flat_map(|s| s.iter())
            .map(|p| &**p)
    }

    /// Sessions that own ephemerals, with their paths, sorted by session.
    pub fn all_ephemerals(&self) -> Vec<(i64, Vec<String>)> {
        let mut v: Vec<_> = self
            .ephemerals
            .iter()
            .map(|(k, set)| (*k, set.iter().map(|p| p.to_string()).collect()))
            .collect();
        v.sort();
        v
    }

    /// Total number of ephemeral nodes.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    /// Number of descendants of `path` (not counting it).
    pub fn descendant_count(&self, path: &str) -> usize {
        if self.get(path).is_none() {
            return 0;
        }
        let mut n = 0;
        let mut stack: Vec<&Znode> = self.children(path).collect();
        while let Some(node) = stack.pop() {
            n += 1;
            if node.num_children() > 0 {
                stack.extend(self.children(node.path()));
            }
        }
        n
    }

    /// Shares one allocation among nodes with equal ACLs.
    pub fn intern_acl(&mut self, acl: Vec<Acl>) -> Arc<Vec<Acl>> {
        self.intern_acl_ref(&acl)
    }

    fn intern_acl_ref(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        if let Some(a) = &self.last_acl {
            if a.as_slice() == acl {
                return a.clone();
            }
        }
        let a = match self.acl_cache.get(acl) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(acl.to_vec());
                self.acl_cache.insert(acl.to_vec(), a.clone());
                a
            }
        };
        self.last_acl = Some(a.clone());
        a
    }

    /// Forgets interned ACLs that no node uses any more.
    pub fn purge_acl_cache(&mut self) {
        self.last_acl = None;
        self.acl_cache.retain(|_, a| Arc::strong_count(a) > 1);
    }

    /// Containers and TTL nodes that are due for removal at `now_ms`: containers that had a
    /// child and have none, TTL nodes childless and unmodified for their TTL.
    pub fn expired_containers_and_ttls(&self, now_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.containers.iter() {
            if let Some(n) = self.get(p) {
                if n.num_children() == 0 && n.header().cversion > 0 {
                    out.push(p.to_string());
                }
            }
        }
        for p in self.ttls.iter() {
            if let Some(n) = self.get(p) {
                let h = n.header();
                let ttl = ttl_of_owner(h.ephemeral_owner).unwrap_or(i64::MAX);
                if n.num_children() == 0 && now_ms.saturating_sub(h.mtime) > ttl {
                    out.push(p.to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// Applies a committed transaction, returning the watch triggers it causes.
    ///
    /// A transaction that does not fit the tree (which a correct prep never produces) changes
    /// nothing and returns its error code.
    pub fn apply(&mut self, hdr: &TxnHeader, txn: &Txn) -> Result<Vec<Trigger>, ErrorCode> {
        let mut triggers = Vec::new();
        let r = self.apply_inner(hdr, txn, &mut triggers);
        if hdr.zxid > self.last_zxid {
            self.last_zxid = hdr.zxid;
        }
        r.map(|()| triggers)
    }

    fn apply_inner(
        &mut self,
        hdr: &TxnHeader,
        txn: &Txn,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(), ErrorCode> {
        match txn {
            Txn::Create(t) => {
                let owner = if t.ephemeral { hdr.client_id } else { 0 };
                self.create(
                    hdr,
                    &t.path,
                    t.data.as_deref(),
                    &t.acl,
                    owner,
                    t.parent_cversion,
                    triggers,
                )
            }
            Txn::CreateContainer(t) => self.create(
                hdr,
                &t.path,
                t.data.as_deref(),
                &t.acl,
                CONTAINER_EPHEMERAL_OWNER,
                t.parent_cversion,
                triggers,
            ),
            Txn::CreateTtl(t) => self.create(
                hdr,
                &t.path,
                t.data.as_deref(),
                &t.acl,
                ttl_ephemeral_owner(t.ttl),
                t.parent_cversion,
                triggers,
            ),
            Txn::Delete(t) | Txn::DeleteContainer(t) => self.delete(hdr.zxid, &t.path, triggers),
            Txn::SetData(t) => {
                let old = self.get(&t.path).ok_or(ErrorCode::NoNode)?.clone();
                let mut h = old.header().clone();
                h.version = t.version;
                h.mzxid = hdr.zxid;
                h.mtime = hdr.time;
                let new = Znode::build(h, &t.path, t.data.as_deref());
                self.data_bytes =
                    (self.data_bytes + new.data_len() as u64).saturating_sub(old.data_len() as u64);
                self.digest = self
                    .digest
                    .wrapping_sub(node_hash(&old))
                    .wrapping_add(node_hash(&new));
                self.nodes.insert(new);
                triggers.push(Trigger::DataChanged(t.path.clone()));
                Ok(())
            }
            Txn::SetAcl(t) => {
                let acl = self.intern_acl_ref(&t.acl);
                self.update(&t.path, |h| {
                    h.acl = acl;
                    h.aversion = t.version;
                })
            }
            Txn::CloseSession(t) => {
                let mut paths: BTreeSet<String> = t.paths_to_delete.iter().cloned().collect();
                paths.extend(self.ephemerals(hdr.client_id).map(str::to_owned));
                for p in paths {
                    let owned = self
                        .get(&p)
                        .is_some_and(|n| n.header().ephemeral_owner == hdr.client_id);
                    if owned {
                        self.delete(hdr.zxid, &p, triggers)?;
                    }
                }
                self.ephemerals.remove(&hdr.client_id);
                Ok(())
            }
            Txn::Multi(txns) => {
                if txns.iter().any(|t| matches!(t, Txn::Error(_))) {
                    return Ok(()); // an aborted multi changes nothing
                }
                for t in txns {
                    self.apply_inner(hdr, t, triggers)?;
                }
                Ok(())
            }
            Txn::Check(_) | Txn::CreateSession(_) | Txn::Error(_) => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        hdr: &TxnHeader,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(), ErrorCode> {
        if path.is_empty() || path == "/" {
            return Err(ErrorCode::NodeExists);
        }
        let parent_path = parent(path);
        if !self.contains(parent_path) {
            return Err(ErrorCode::NoNode);
        }
        let stat = Stat {
            czxid: hdr.zxid,
            mzxid: hdr.zxid,
            ctime: hdr.time,
            mtime: hdr.time,
            ephemeral_owner: owner,
            pzxid: hdr.zxid,
            ..Stat::default()
        };
        let acl = self.intern_acl_ref(acl);
        let node = Znode::build(header_of(&stat, acl), path, data);
        let hash = node_hash(&node);
        let bytes = (path.len() + node.data_len()) as u64;
        // One walk both checks and inserts; a node already there is put back.
        if let Some(existing) = self.nodes.insert(node) {
            self.nodes.insert(existing);
            return Err(ErrorCode::NodeExists);
        }
        self.data_bytes += bytes;
        self.digest = self.digest.wrapping_add(hash);
        self.update(parent_path, |p| {
            p.num_children += 1;
            if parent_cversion > p.cversion {
                p.cversion = parent_cversion;
            }
            if hdr.zxid > p.pzxid {
                p.pzxid = hdr.zxid;
            }
        })?;
        self.index(path, owner);
        triggers.push(Trigger::Created(path.to_owned()));
        triggers.push(Trigger::ChildrenChanged(parent_path.to_owned()));
        Ok(())
    }

    fn delete(
        &mut self,
        zxid: i64,
        path: &str,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(), ErrorCode> {
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if node.num_children() > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if path == "/" {
            return Err(ErrorCode::BadArguments);
        }
        let node = self
            .nodes
            .remove(&Probe::of(path))
            .ok_or(ErrorCode::NoNode)?;
        self.digest = self.digest.wrapping_sub(node_hash(&node));
        self.data_bytes = self
            .data_bytes
            .saturating_sub((path.len() + node.data_len()) as u64);
        let owner = node.header().ephemeral_owner;
        if owner == CONTAINER_EPHEMERAL_OWNER {
            self.containers.remove(path);
        } else if ttl_of_owner(owner).is_some() {
            self.ttls.remove(path);
        } else if owner != 0 {
            if let Some(set) = self.ephemerals.get_mut(&owner) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
        let parent_path = parent(path);
        // The stored cversion counts creates only; see `Znode::stat`.
        let _ = self.update(parent_path, |p| {
            p.num_children -= 1;
            if zxid > p.pzxid {
                p.pzxid = zxid;
            }
        });
        triggers.push(Trigger::Deleted(path.to_owned(), node.acl().clone()));
        triggers.push(Trigger::ChildrenChanged(parent_path.to_owned()));
        Ok(())
    }

    /// Adds a node read from a snapshot. Child counts, ephemerals, containers and TTL nodes
    /// are worked out by [`DataTree::finish_load`] once every node is in.
    pub fn load_node(&mut self, path: &str, data: Option<Vec<u8>>, acl: Vec<Acl>, stat: Stat) {
        let acl = self.intern_acl(acl);
        if let Some(old) = self.get(path) {
            // Replacing a node (a system node the snapshot also holds): count it once.
            let old_bytes = path.len() + old.data_len();
            self.data_bytes = self.data_bytes.saturating_sub(old_bytes as u64);
        }
        self.data_bytes += (path.len() + data.as_ref().map_or(0, |d| d.len())) as u64;
        self.nodes
            .insert(Znode::build(header_of(&stat, acl), path, data.as_deref()));
    }

    /// Records `path` in the ephemeral / container / TTL index its owner calls for.
    fn index(&mut self, path: &str, owner: i64) {
        if owner == CONTAINER_EPHEMERAL_OWNER {
            self.containers.insert(Arc::from(path));
        } else if ttl_of_owner(owner).is_some() {
            self.ttls.insert(Arc::from(path));
        } else if owner != 0 {
            self.ephemerals
                .entry(owner)
                .or_default()
                .insert(Arc::from(path));
        }
    }

    /// Counts children and rebuilds the ephemeral, container and TTL indexes after
    /// [`DataTree::load_node`] calls; `last_zxid` is the zxid the snapshot was taken at.
    ///
    /// # Errors
    /// A node whose parent is missing (a corrupt snapshot), naming the path.
    pub fn finish_load(&mut self, last_zxid: i64) -> Result<(), String> {
        self.ephemerals = PMap::new();
        self.containers = PSet::new();
        self.ttls = PSet::new();
        // Children of one parent are adjacent in the set: count them run by run.
        let mut runs: Vec<(String, i32)> = Vec::new();
        let mut indexed: Vec<(String, i64)> = Vec::new();
        for n in self.nodes.iter() {
            let path = n.path();
            if path == "/" {
                continue;
            }
            let parent_path = parent(path);
            match runs.last_mut() {
                Some((p, c)) if p == parent_path => *c += 1,
                _ => runs.push((parent_path.to_owned(), 1)),
            }
            let owner = n.header().ephemeral_owner;
            if owner != 0 {
                indexed.push((path.to_owned(), owner));
            }
        }
        for (parent_path, count) in runs {
            let Some(old) = self.get(&parent_path).cloned() else {
                let orphan = self
                    .children(&parent_path)
                    .next()
                    .map_or_else(|| parent_path.clone(), |c| c.path().to_owned());
                return Err(format!("node {orphan} has no parent {parent_path}"));
            };
            let mut h = old.header().clone();
            h.num_children = count;
            let new = old.with_header(h);
            self.nodes.insert(new);
        }
        for (path, owner) in indexed {
            self.index(&path, owner);
        }
        self.digest = self.full_digest();
        self.last_zxid = last_zxid;
        Ok(())
    }

    /// A digest of every node's path, data and Stat, independent of iteration order: two
    /// trees with the same content have the same digest. Kept up to date on every change, so
    /// reading it is O(1).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest computed from scratch (for checks; equals [`DataTree::digest`]).
    pub fn full_digest(&self) -> u64 {
        self.nodes
            .iter()
            .fold(0u64, |acc, n| acc.wrapping_add(node_hash(n)))
    }

    /// Changes the Stat or ACL of the node at `path` with `f` (path and data stay), keeping
    /// the digest current.
    fn update(&mut self, path: &str, f: impl FnOnce(&mut Header)) -> Result<(), ErrorCode> {
        let old = self.get(path).ok_or(ErrorCode::NoNode)?.clone();
        let mut h = old.header().clone();
        f(&mut h);
        let new = old.with_header(h);
        // Path and data are unchanged, so only the Stat half of the node's hash moves.
        self.digest = self
            .digest
            .wrapping_sub(stat_hash(&old))
            .wrapping_add(stat_hash(&new));
        self.nodes.insert(new);
        Ok(())
    }

    /// Iterates over every node, parents before their children and siblings in name order
    /// (for snapshots and dumps).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Znode)> {
        self.nodes.iter().map(|n| (n.path(), n))
    }
}

/// One node's contribution to the tree digest: its path, data and Stat as clients see it.
/// Two halves, so that a change of the Stat alone (every child create and delete changes
/// the parent's) rehashes the path and Stat but not the data.
fn node_hash(n: &Znode) -> u64 {
    content_hash(n).wrapping_add(stat_hash(n))
}

fn content_hash(n: &Znode) -> u64 {
    let mut h = Hash64::new(1);
    h.bytes(n.path_bytes());
    match n.data() {
        Some(d) => h.bytes(d),
        None => h.word(u64::MAX),
    }
    h.finish()
}

fn stat_hash(n: &Znode) -> u64 {
    let mut h = Hash64::new(2);
    h.bytes(n.path_bytes());
    let s = n.stat();
    for v in [
        s.czxid,
        s.mzxid,
        s.ctime,
        s.mtime,
        s.ephemeral_owner,
        s.pzxid,
    ] {
        h.word(v as u64);
    }
    for v in [s.version, s.cversion, s.aversion, s.num_children] {
        h.word(v as u32 as u64);
    }
    h.word(s.data_length as u32 as u64);
    h.finish()
}

/// A stable 64-bit hash, eight bytes a step, for digests that are written to disk: the
/// same input hashes the same on every platform and in every version of this file.
struct Hash64(u64);

impl Hash64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new(domain: u64) -> Self {
        Hash64(domain.wrapping_mul(Self::K) ^ 0x243f_6a88_85a3_08d3)
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(Self::K).rotate_left(29);
    }

    /// Length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
    fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
    }

    /// Final avalanche (the splitmix64 finaliser).
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::{CreateTxn, DeleteTxn, SetDataTxn};

    fn hdr(zxid: i64) -> TxnHeader {
        TxnHeader {
            client_id: 7,
            cxid: 1,
            zxid,
            time: 1000 + zxid,
            txn_type: 0,
        }
    }

    fn create(path: &str, eph: bool, pcv: i32) -> Txn {
        Txn::Create(CreateTxn {
            path: path.into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral: eph,
            parent_cversion: pcv,
        })
    }

    #[test]
    fn fresh_tree_counts_root_twice_like_zookeeper() {
        let t = DataTree::new();
        assert_eq!(t.node_count(), 5);
        assert_eq!(
            t.get("/").unwrap().stat().cversion,
            -1,
            "0 creates, 1 child"
        );
        assert_eq!(t.get("").unwrap().stat().num_children, 1);
    }

    #[test]
    fn container_and_ttl_owners_read_as_zero() {
        let mut t = DataTree::new();
        let c = Txn::CreateContainer(corral_proto::CreateContainerTxn {
            path: "/c".into(),
            data: None,
            acl: Acl::open_unsafe(),
            parent_cversion: 0,
        });
        t.apply(&hdr(2), &c).unwrap();
        let n = t.get("/c").unwrap();
        assert_eq!(n.stat().ephemeral_owner, 0);
        assert_eq!(n.raw_stat().ephemeral_owner, CONTAINER_EPHEMERAL_OWNER);
    }

    #[test]
    fn create_sets_stat_and_bumps_parent() {
        let mut t = DataTree::new();
        let trig = t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        assert_eq!(
            trig,
            vec![
                Trigger::Created("/a".into()),
                Trigger::ChildrenChanged("/".into())
            ]
        );
        let s = t.get("/a").unwrap().stat();
        assert_eq!(
            (s.czxid, s.mzxid, s.pzxid, s.ctime, s.data_length),
            (2, 2, 2, 1002, 1)
        );
        let root = t.get("/").unwrap().raw_stat();
        assert_eq!(
            (root.cversion, root.pzxid),
            (1, 2),
            "parent_cversion from the txn"
        );
    }

    #[test]
    fn delete_moves_pzxid_and_reported_cversion() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        t.apply(&hdr(3), &create("/a/b", false, 1)).unwrap();
        t.apply(
            &hdr(4),
            &Txn::Delete(DeleteTxn {
                path: "/a/b".into(),
            }),
        )
        .unwrap();
        let a = t.get("/a").unwrap().stat();
        assert_eq!((a.cversion, a.pzxid, a.num_children), (2, 4, 0));
        assert_eq!(
            t.get("/a").unwrap().raw_stat().cversion,
            1,
            "stored: creates only"
        );
    }

    #[test]
    fn close_session_removes_its_ephemerals_only() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create("/e", true, 1)).unwrap();
        let mut other = hdr(3);
        other.client_id = 8;
        t.apply(&other, &create("/f", true, 2)).unwrap();
        let close = Txn::CloseSession(corral_proto::CloseSessionTxn {
            paths_to_delete: vec!["/e".into()],
        });
        let trig = t.apply(&hdr(4), &close).unwrap();
        assert!(t.get("/e").is_none());
        assert!(t.get("/f").is_some());
        assert!(trig
            .iter()
            .any(|t| matches!(t, Trigger::Deleted(p, _) if p == "/e")));
        assert_eq!(t.ephemeral_count(), 1);
    }

    #[test]
    fn set_data_bumps_version_and_mzxid() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        let set = Txn::SetData(SetDataTxn {
            path: "/a".into(),
            data: None,
            version: 1,
        });
        t.apply(&hdr(5), &set).unwrap();
        let n = t.get("/a").unwrap();
        assert_eq!(
            (n.stat().version, n.stat().mzxid, n.stat().mtime),
            (1, 5, 1005)
        );
        assert!(n.data().is_none());
    }

    #[test]
    fn a_reloaded_tree_has_the_same_digest_and_links() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        t.apply(&hdr(3), &create("/a/e", true, 1)).unwrap();
        let snap = t.clone();
        t.apply(&hdr(4), &create("/later", false, 2)).unwrap();
        let mut loaded = DataTree {
            nodes: PSet::new(),
            ..DataTree::new()
        };
        for (p, n) in snap.iter() {
            loaded.load_node(p, n.data_vec(), n.acl().to_vec(), n.raw_stat());
        }
        loaded.finish_load(snap.last_zxid()).unwrap();
        assert_eq!(loaded.digest(), snap.digest());
        assert_ne!(
            loaded.digest(),
            t.digest(),
            "the clone did not see the later create"
        );
        assert_eq!(loaded.ephemerals(7).collect::<Vec<_>>(), ["/a/e"]);
        assert_eq!(loaded.get("/a").unwrap().stat().num_children, 1);
    }

    #[test]
    fn the_running_digest_equals_a_full_recount() {
        let mut t = DataTree::new();
        assert_eq!(t.digest(), t.full_digest());
        t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        t.apply(&hdr(3), &create("/a/b", true, 1)).unwrap();
        let set = Txn::SetData(SetDataTxn {
            path: "/a".into(),
            data: Some(b"new".to_vec()),
            version: 1,
        });
        t.apply(&hdr(4), &set).unwrap();
        let snap = t.clone();
        t.apply(
            &hdr(5),
            &Txn::Delete(DeleteTxn {
                path: "/a/b".into(),
            }),
        )
        .unwrap();
        assert_eq!(t.digest(), t.full_digest());
        assert_eq!(
            snap.digest(),
            snap.full_digest(),
            "the clone kept its own digest"
        );
        assert_ne!(t.digest(), snap.digest());
    }

    #[test]
    fn orphan_in_snapshot_is_an_error() {
        let mut t = DataTree::new();
        t.load_node("/x/y", None, Acl::open_unsafe(), Stat::default());
        assert!(t.finish_load(1).unwrap_err().contains("/x/y"));
    }

    fn create_data(path: &str, data: Option<Vec<u8>>, pcv: i32) -> Txn {
        Txn::Create(CreateTxn {
            path: path.into(),
            data,
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: pcv,
        })
    }

    #[test]
    fn children_are_exactly_the_direct_children_in_name_order() {
        let mut t = DataTree::new();
        let mut z = 1;
        for p in [
            "/a", "/a-b", "/a/c", "/a/b", "/a/b/x", "/a/b-", "/ab", "/a/c/d/e",
        ] {
            z += 1;
            // "/a/c/d/e" has no parent: it must fail and leave the tree alone.
            let r = t.apply(&hdr(z), &create(p, false, z as i32));
            assert_eq!(r.is_ok(), p != "/a/c/d/e", "{p}");
        }
        let names = |t: &DataTree, p: &str| t.child_names(p).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(names(&t, "/a"), ["b", "b-", "c"]);
        assert_eq!(names(&t, "/a/b"), ["x"]);
        assert_eq!(names(&t, "/"), ["a", "a-b", "ab", "zookeeper"]);
        assert_eq!(names(&t, ""), names(&t, "/"), "\"\" is the root");
        assert!(names(&t, "/a/b/x").is_empty());
        assert!(names(&t, "/nothing").is_empty());
        for p in ["/", "/a", "/a/b", "/zookeeper"] {
            assert_eq!(t.get(p).unwrap().num_children(), names(&t, p).len(), "{p}");
        }
        // Parents come before their children in iteration (the snapshot order).
        let order: Vec<&str> = t.iter().map(|(p, _)| p).collect();
        for (i, p) in order.iter().enumerate().skip(1) {
            let at = order.iter().position(|q| *q == parent(p)).unwrap();
            assert!(at < i, "{p} before its parent in {order:?}");
        }
    }

    #[test]
    fn null_empty_short_and_long_data_round_trip() {
        let mut t = DataTree::new();
        let long: Vec<u8> = (0..INLINE_DATA_MAX * 3).map(|i| i as u8).collect();
        let short = vec![7u8; INLINE_DATA_MAX];
        t.apply(&hdr(2), &create_data("/null", None, 1)).unwrap();
        t.apply(&hdr(3), &create_data("/empty", Some(vec![]), 2))
            .unwrap();
        t.apply(&hdr(4), &create_data("/short", Some(short.clone()), 3))
            .unwrap();
        t.apply(&hdr(5), &create_data("/long", Some(long.clone()), 4))
            .unwrap();
        assert_eq!(t.get("/null").unwrap().data(), None);
        assert_eq!(t.get("/empty").unwrap().data(), Some(&[][..]));
        assert_eq!(t.get("/short").unwrap().data(), Some(&short[..]));
        assert_eq!(t.get("/long").unwrap().data(), Some(&long[..]));
        assert_eq!(
            t.get("/long").unwrap().stat().data_length as usize,
            long.len()
        );
        // A child create rebuilds the parent: its data and path must carry over.
        t.apply(&hdr(6), &create("/long/c", false, 1)).unwrap();
        t.apply(&hdr(7), &create("/null/c", false, 1)).unwrap();
        let l = t.get("/long").unwrap();
        assert_eq!((l.data(), l.path()), (Some(&long[..]), "/long"));
        assert_eq!(t.get("/null").unwrap().data(), None);
        let size = ["/null", "/empty", "/short", "/long", "/long/c", "/null/c"]
            .iter()
            .map(|p| p.len() + t.get(p).unwrap().data().map_or(0, <[u8]>::len))
            .sum::<usize>() as u64;
        assert_eq!(t.approximate_data_size(), size);
        assert_eq!(t.digest(), t.full_digest());
    }

    #[test]
    fn a_snapshot_clone_does_not_see_later_changes_to_a_parent() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create_data("/p", Some(b"v1".to_vec()), 1))
            .unwrap();
        let snap = t.clone();
        t.apply(&hdr(3), &create("/p/c", false, 1)).unwrap();
        let set = Txn::SetData(SetDataTxn {
            path: "/p".into(),
            data: Some(b"v2".to_vec()),
            version: 1,
        });
        t.apply(&hdr(4), &set).unwrap();
        let old = snap.get("/p").unwrap();
        assert_eq!((old.data(), old.num_children()), (Some(&b"v1"[..]), 0));
        assert_eq!(snap.child_names("/p").count(), 0);
        let new = t.get("/p").unwrap();
        assert_eq!((new.data(), new.num_children()), (Some(&b"v2"[..]), 1));
        assert_eq!(snap.digest(), snap.full_digest());
        assert_eq!(t.digest(), t.full_digest());
    }

    #[test]
    fn set_acl_keeps_the_digest_and_unused_acls_are_purged() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        let mine = vec![Acl {
            perms: 31,
            id: corral_proto::Id::new("digest", "u:h"),
        }];
        let set_acl = |acl: Vec<Acl>, version| {
            Txn::SetAcl(corral_proto::SetAclTxn {
                path: "/a".into(),
                acl,
                version,
            })
        };
        t.apply(&hdr(3), &set_acl(mine.clone(), 1)).unwrap();
        assert_eq!(t.get("/a").unwrap().acl().as_slice(), &mine[..]);
        assert_eq!(t.get("/a").unwrap().stat().aversion, 1);
        assert_eq!(t.digest(), t.full_digest());
        t.apply(&hdr(4), &set_acl(Acl::open_unsafe(), 2)).unwrap();
        assert!(t.acl_cache.contains_key(&mine));
        t.purge_acl_cache();
        assert!(!t.acl_cache.contains_key(&mine), "no node uses it");
        assert!(t.acl_cache.contains_key(&Acl::open_unsafe()));
    }

    #[test]
    fn descendants_are_counted() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        t.apply(&hdr(3), &create("/a/b", false, 1)).unwrap();
        t.apply(&hdr(4), &create("/a/b/c", false, 1)).unwrap();
        assert_eq!(t.descendant_count("/a"), 2);
        assert_eq!(t.descendant_count("/"), 6);
    }
}
