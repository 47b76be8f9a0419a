//! The data tree: znodes, Stat bookkeeping, ephemerals by session, containers and TTL nodes.
//!
//! The tree changes only by [`DataTree::apply`] of a committed transaction, so every server
//! that applies the same transactions holds the same tree. Time comes from the transaction
//! header (the leader's clock), never from this process.

use corral_proto::path::{name, parent};
use corral_proto::{
    ttl_ephemeral_owner, ttl_of_owner, Acl, ErrorCode, Stat, Txn, TxnHeader,
    CONTAINER_EPHEMERAL_OWNER,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Persistent (structurally shared) B-tree map: cloning the tree is O(1), which is what lets a
/// snapshot be taken without stopping writes. A B-tree keeps its nodes dense, so it costs a
/// few bytes per entry where a persistent hash trie costs hundreds.
type PMap<K, V> = imbl::OrdMap<K, V>;
/// Persistent set, for children lists and indexes that a snapshot clone shares.
type PSet<T> = imbl::OrdSet<T>;

/// A node's children: their full paths, sharing the allocation of the node map's key, and
/// no set at all for the many nodes without children.
#[derive(Debug, Clone, Default)]
pub struct Children(Option<PSet<Arc<str>>>);

impl Children {
    /// Number of children.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The children's names (last path component), in path order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|s| s.iter()).map(|p| name(p))
    }

    fn insert(&mut self, child_path: Arc<str>) {
        self.0.get_or_insert_with(PSet::new).insert(child_path);
    }

    fn remove(&mut self, child_path: &str) {
        if let Some(s) = &mut self.0 {
            s.remove(child_path);
            if s.is_empty() {
                self.0 = None;
            }
        }
    }
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub struct Znode {
    /// Data; `None` when created with null data (kept apart from empty).
    pub data: Option<Arc<[u8]>>,
    /// ACL, shared between nodes that have the same one.
    pub acl: Arc<Vec<Acl>>,
    /// Persisted Stat fields; `data_length` and `num_children` are derived on read.
    pub stat: Stat,
    /// The children.
    pub children: Children,
}

impl Znode {
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

    /// The Stat as stored: derived lengths filled in, `cversion` counting child creates (the
    /// sequential-name counter) and the stored `ephemeralOwner` (container and TTL markers
    /// included).
    pub fn raw_stat(&self) -> Stat {
        let mut s = self.stat.clone();
        s.data_length = self.data.as_ref().map_or(0, |d| d.len() as i32);
        s.num_children = self.children.len() as i32;
        s
    }

    /// The data as the wire carries it.
    pub fn data_vec(&self) -> Option<Vec<u8>> {
        self.data.as_ref().map(|d| d.to_vec())
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
    nodes: PMap<Arc<str>, Arc<Znode>>,
    ephemerals: PMap<i64, PSet<Arc<str>>>,
    containers: PSet<Arc<str>>,
    ttls: PSet<Arc<str>>,
    acl_cache: HashMap<Vec<Acl>, Arc<Vec<Acl>>>,
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

impl DataTree {
    /// A tree with the root and the `/zookeeper` system nodes.
    pub fn new() -> Self {
        let mut t = DataTree {
            nodes: PMap::new(),
            ephemerals: PMap::new(),
            containers: PSet::new(),
            ttls: PSet::new(),
            acl_cache: HashMap::new(),
            last_zxid: 0,
            data_bytes: 0,
            digest: 0,
        };
        let open = t.intern_acl(Acl::open_unsafe());
        let read = t.intern_acl(Acl::read_unsafe());
        for (p, acl) in [
            ("/", open.clone()),
            ("/zookeeper", open.clone()),
            ("/zookeeper/quota", open),
            ("/zookeeper/config", read),
        ] {
            let key: Arc<str> = Arc::from(p);
            t.nodes.insert(
                key.clone(),
                Arc::new(Znode {
                    data: Some(Arc::from(&b""[..])),
                    acl,
                    stat: Stat::default(),
                    children: Children::default(),
                }),
            );
            if p != "/" {
                t.node_mut(parent(p))
                    .expect("system parent")
                    .children
                    .insert(key);
            }
        }
        t.digest = t.full_digest();
        t
    }

    /// The node at `path` (`""` names the root too, as in ZooKeeper).
    pub fn get(&self, path: &str) -> Option<&Znode> {
        if path.is_empty() {
            return self.nodes.get("/").map(|n| &**n);
        }
        self.nodes.get(path).map(|n| &**n)
    }

    /// The node at `path` for a change: copied first if a snapshot still shares it.
    fn node_mut(&mut self, path: &str) -> Option<&mut Znode> {
        self.nodes.get_mut(path).map(Arc::make_mut)
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
        let Some(node) = self.nodes.get(path) else {
            return 0;
        };
        let mut n = 0;
        let mut stack: Vec<&Znode> = vec![node];
        while let Some(node) = stack.pop() {
            if let Some(set) = &node.children.0 {
                for child in set.iter() {
                    n += 1;
                    if let Some(c) = self.nodes.get(child) {
                        stack.push(c);
                    }
                }
            }
        }
        n
    }

    /// Shares one allocation among nodes with equal ACLs.
    pub fn intern_acl(&mut self, acl: Vec<Acl>) -> Arc<Vec<Acl>> {
        if let Some(a) = self.acl_cache.get(&acl) {
            return a.clone();
        }
        let a = Arc::new(acl.clone());
        self.acl_cache.insert(acl, a.clone());
        a
    }

    /// Containers and TTL nodes that are due for removal at `now_ms`: containers that had a
    /// child and have none, TTL nodes childless and unmodified for their TTL.
    pub fn expired_containers_and_ttls(&self, now_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.containers.iter() {
            if let Some(n) = self.nodes.get(p) {
                if n.children.is_empty() && n.stat.cversion > 0 {
                    out.push(p.to_string());
                }
            }
        }
        for p in self.ttls.iter() {
            if let Some(n) = self.nodes.get(p) {
                let ttl = ttl_of_owner(n.stat.ephemeral_owner).unwrap_or(i64::MAX);
                if n.children.is_empty() && now_ms.saturating_sub(n.stat.mtime) > ttl {
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
                    &t.data,
                    &t.acl,
                    owner,
                    t.parent_cversion,
                    triggers,
                )
            }
            Txn::CreateContainer(t) => self.create(
                hdr,
                &t.path,
                &t.data,
                &t.acl,
                CONTAINER_EPHEMERAL_OWNER,
                t.parent_cversion,
                triggers,
            ),
            Txn::CreateTtl(t) => self.create(
                hdr,
                &t.path,
                &t.data,
                &t.acl,
                ttl_ephemeral_owner(t.ttl),
                t.parent_cversion,
                triggers,
            ),
            Txn::Delete(t) | Txn::DeleteContainer(t) => self.delete(hdr.zxid, &t.path, triggers),
            Txn::SetData(t) => {
                let mut old = 0;
                self.update(&t.path, |node| {
                    old = node.data.as_ref().map_or(0, |d| d.len()) as u64;
                    node.data = t.data.as_deref().map(Arc::from);
                    node.stat.version = t.version;
                    node.stat.mzxid = hdr.zxid;
                    node.stat.mtime = hdr.time;
                })?;
                self.data_bytes =
                    self.data_bytes - old + t.data.as_ref().map_or(0, |d| d.len()) as u64;
                triggers.push(Trigger::DataChanged(t.path.clone()));
                Ok(())
            }
            Txn::SetAcl(t) => {
                let acl = self.intern_acl(t.acl.clone());
                self.update(&t.path, |node| {
                    node.acl = acl;
                    node.stat.aversion = t.version;
                })
            }
            Txn::CloseSession(t) => {
                let mut paths: BTreeSet<String> = t.paths_to_delete.iter().cloned().collect();
                paths.extend(self.ephemerals(hdr.client_id).map(str::to_owned));
                for p in paths {
                    let owned = self
                        .nodes
                        .get(p.as_str())
                        .is_some_and(|n| n.stat.ephemeral_owner == hdr.client_id);
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
        data: &Option<Vec<u8>>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(), ErrorCode> {
        if self.nodes.contains_key(path) {
            return Err(ErrorCode::NodeExists);
        }
        let parent_path = parent(path);
        let acl = self.intern_acl(acl.to_vec());
        let key: Arc<str> = Arc::from(path);
        let child = key.clone();
        self.update(parent_path, |parent_node| {
            parent_node.children.insert(child);
            if parent_cversion > parent_node.stat.cversion {
                parent_node.stat.cversion = parent_cversion;
            }
            if hdr.zxid > parent_node.stat.pzxid {
                parent_node.stat.pzxid = hdr.zxid;
            }
        })?;
        let stat = Stat {
            czxid: hdr.zxid,
            mzxid: hdr.zxid,
            ctime: hdr.time,
            mtime: hdr.time,
            ephemeral_owner: owner,
            pzxid: hdr.zxid,
            ..Stat::default()
        };
        self.data_bytes += (path.len() + data.as_ref().map_or(0, |d| d.len())) as u64;
        let node = Arc::new(Znode {
            data: data.as_deref().map(Arc::from),
            acl,
            stat,
            children: Children::default(),
        });
        self.digest = self.digest.wrapping_add(node_hash(&key, &node));
        self.nodes.insert(key.clone(), node);
        self.index(key, owner);
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
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        let node = self.nodes.remove(path).expect("checked above");
        self.digest = self.digest.wrapping_sub(node_hash(path, &node));
        self.data_bytes = self
            .data_bytes
            .saturating_sub((path.len() + node.data.as_ref().map_or(0, |d| d.len())) as u64);
        let owner = node.stat.ephemeral_owner;
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
            p.children.remove(path);
            if zxid > p.stat.pzxid {
                p.stat.pzxid = zxid;
            }
        });
        triggers.push(Trigger::Deleted(path.to_owned(), node.acl.clone()));
        triggers.push(Trigger::ChildrenChanged(parent_path.to_owned()));
        Ok(())
    }

    /// Adds a node read from a snapshot. Children, ephemerals, containers and TTL nodes are
    /// linked up by [`DataTree::finish_load`] once every node is in.
    pub fn load_node(&mut self, path: &str, data: Option<Vec<u8>>, acl: Vec<Acl>, stat: Stat) {
        let acl = self.intern_acl(acl);
        if let Some(old) = self.nodes.get(path) {
            // Replacing a node (a system node the snapshot also holds): count it once.
            let old_bytes = path.len() + old.data.as_ref().map_or(0, |d| d.len());
            self.data_bytes = self.data_bytes.saturating_sub(old_bytes as u64);
        }
        self.data_bytes += (path.len() + data.as_ref().map_or(0, |d| d.len())) as u64;
        self.nodes.insert(
            path.into(),
            Arc::new(Znode {
                data: data.map(Arc::from),
                acl,
                stat,
                children: Children::default(),
            }),
        );
    }

    /// Records `path` in the ephemeral / container / TTL index its owner calls for.
    fn index(&mut self, path: Arc<str>, owner: i64) {
        if owner == CONTAINER_EPHEMERAL_OWNER {
            self.containers.insert(path);
        } else if ttl_of_owner(owner).is_some() {
            self.ttls.insert(path);
        } else if owner != 0 {
            self.ephemerals.entry(owner).or_default().insert(path);
        }
    }

    /// Links children to parents and rebuilds the ephemeral, container and TTL indexes after
    /// [`DataTree::load_node`] calls; `last_zxid` is the zxid the snapshot was taken at.
    ///
    /// # Errors
    /// A node whose parent is missing (a corrupt snapshot), naming the path.
    pub fn finish_load(&mut self, last_zxid: i64) -> Result<(), String> {
        let paths: Vec<Arc<str>> = self.nodes.keys().cloned().collect();
        self.ephemerals = PMap::new();
        self.containers = PSet::new();
        self.ttls = PSet::new();
        for p in paths {
            if &*p == "/" {
                continue;
            }
            let parent_path = parent(&p);
            let Some(pn) = self.node_mut(parent_path) else {
                return Err(format!("node {p} has no parent {parent_path}"));
            };
            pn.children.insert(p.clone());
            let owner = self.nodes.get(&*p).map_or(0, |n| n.stat.ephemeral_owner);
            self.index(p, owner);
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
            .fold(0u64, |acc, (p, n)| acc.wrapping_add(node_hash(p, n)))
    }

    /// Changes the node at `path` with `f`, keeping the digest current.
    fn update(&mut self, path: &str, f: impl FnOnce(&mut Znode)) -> Result<(), ErrorCode> {
        let key = self
            .nodes
            .get_key_value(path)
            .map(|(k, _)| k.clone())
            .ok_or(ErrorCode::NoNode)?;
        let node = self.node_mut(path).ok_or(ErrorCode::NoNode)?;
        let old = node_hash(&key, node);
        f(node);
        let new = node_hash(&key, node);
        self.digest = self.digest.wrapping_sub(old).wrapping_add(new);
        Ok(())
    }

    /// Iterates over every node in path order, parents before their children (for
    /// snapshots and dumps).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Znode)> {
        self.nodes.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// One node's contribution to the tree digest: its path, data and Stat as clients see it.
fn node_hash(path: &str, n: &Znode) -> u64 {
    let mut h = Fnv64::default();
    h.write(path.as_bytes());
    h.write(&[0xff]);
    if let Some(d) = &n.data {
        h.write(d);
    }
    let s = n.stat();
    for v in [
        s.czxid,
        s.mzxid,
        s.ctime,
        s.mtime,
        s.ephemeral_owner,
        s.pzxid,
    ] {
        h.write(&v.to_be_bytes());
    }
    for v in [s.version, s.cversion, s.aversion, s.num_children] {
        h.write(&v.to_be_bytes());
    }
    h.0
}

/// FNV-1a, 64 bit: a stable hash for digests that are written to disk.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
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
        assert!(n.data.is_none());
    }

    #[test]
    fn a_reloaded_tree_has_the_same_digest_and_links() {
        let mut t = DataTree::new();
        t.apply(&hdr(2), &create("/a", false, 1)).unwrap();
        t.apply(&hdr(3), &create("/a/e", true, 1)).unwrap();
        let snap = t.clone();
        t.apply(&hdr(4), &create("/later", false, 2)).unwrap();
        let mut loaded = DataTree {
            nodes: PMap::new(),
            ..DataTree::new()
        };
        for (p, n) in snap.iter() {
            loaded.load_node(p, n.data_vec(), n.acl.to_vec(), n.stat.clone());
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
