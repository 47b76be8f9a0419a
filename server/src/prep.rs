//! Prep: the one place that decides what a write means. A request becomes a transaction
//! (or an error transaction) against the tree *as it will be* after every write already in
//! flight, which this module tracks as outstanding changes.

use crate::acl;
use crate::tree::{DataTree, SYSTEM_PATHS};
use corral_proto::path::{parent, validate_path};
use corral_proto::{
    perms, ttl_ephemeral_owner, ttl_of_owner, Acl, CheckVersionTxn, CloseSessionTxn,
    CreateContainerTxn, CreateMode, CreateTtlTxn, CreateTxn, DeleteTxn, ErrorCode, Id, OpCode,
    Request, SetAclTxn, SetDataTxn, Stat, Txn, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS,
};
use hashbrown::{hash_table, DefaultHashBuilder, HashTable};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::hash::BuildHasher as _;
use std::sync::Arc;

/// Settings prep needs.
#[derive(Debug, Clone, Default)]
pub struct PrepConfig {
    /// TTL nodes allowed (`extendedTypesEnabled`).
    pub extended_types: bool,
}

/// A node as prep sees it: the tree plus outstanding changes.
#[derive(Debug, Clone)]
struct NodeView {
    stat: Stat,
    acl: Arc<Vec<Acl>>,
}

/// An outstanding change: the zxid that made it and the node after it (`None`: deleted).
type Change = (i64, Option<NodeView>);

/// Outstanding changes by path: the newest change of every path that writes in flight
/// touch. A record allocates its path at most once, as an `Arc<str>` that the table entry and
/// the `order` entries share, and not at all when the path has a change in flight already
/// (as a parent has under a stream of creates). `order` keeps each entry's hash, so
/// [`Prep::applied`] finds the entry by hash and pointer without reading the path again:
/// by then its bytes have usually left the cache.
///
/// The hasher is foldhash (hashbrown's default): about as fast as FxHash on short paths, but
/// seeded at random per table. Paths are chosen by clients, and the writes in flight are
/// bounded only loosely (`globalOutstandingLimit` per connection, times the connections), so
/// with a fixed hasher a client allowed to create nodes could fill the table with colliding
/// paths and make every prep and every `applied` scan them. Iteration order is therefore not
/// fixed, and nothing depends on it (`close_session` sorts what it collects).
#[derive(Debug, Default)]
struct Changes {
    table: HashTable<(Arc<str>, Change)>,
    hasher: DefaultHashBuilder,
}

impl Changes {
    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn iter(&self) -> impl Iterator<Item = &(Arc<str>, Change)> {
        self.table.iter()
    }

    fn get(&self, path: &str) -> Option<&Change> {
        self.table
            .find(self.hash(path), |(p, _)| **p == *path)
            .map(|(_, c)| c)
    }

    /// Makes `change` the newest of `path`. Returns the path's hash and shared key, and the
    /// change it replaced.
    fn insert(&mut self, path: &str, change: Change) -> (u64, Arc<str>, Option<Change>) {
        let hash = self.hash(path);
        let hasher = &self.hasher;
        match self
            .table
            .entry(hash, |(p, _)| **p == *path, |(p, _)| hasher.hash_one(&**p))
        {
            hash_table::Entry::Occupied(mut e) => {
                let (key, old) = e.get_mut();
                let prev = std::mem::replace(old, change);
                (hash, key.clone(), Some(prev))
            }
            hash_table::Entry::Vacant(e) => {
                let key: Arc<str> = Arc::from(path);
                e.insert((key.clone(), change));
                (hash, key, None)
            }
        }
    }

    /// Puts back what [`Changes::insert`] replaced (`None`: there was no change).
    fn restore(&mut self, hash: u64, path: Arc<str>, prev: Option<Change>) {
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |(p, _)| Arc::ptr_eq(p, &path) || *p == path,
            |(p, _)| hasher.hash_one(&**p),
        );
        match (entry, prev) {
            (hash_table::Entry::Occupied(mut e), Some(prev)) => e.get_mut().1 = prev,
            (hash_table::Entry::Occupied(e), None) => {
                e.remove();
            }
            (hash_table::Entry::Vacant(e), Some(prev)) => {
                e.insert((path, prev));
            }
            (hash_table::Entry::Vacant(_), None) => {}
        }
    }

    /// Drops the change of `path` if `zxid` made it (no later change replaced it).
    fn forget(&mut self, hash: u64, path: &Arc<str>, zxid: i64) {
        // The same Arc, unless the entry was dropped and made again since; compare the bytes
        // only then.
        let found = self
            .table
            .find_entry(hash, |(p, _)| Arc::ptr_eq(p, path) || p == path);
        if let Ok(e) = found {
            if e.get().1 .0 == zxid {
                e.remove();
            }
        }
    }
}

/// What a record replaced, to roll a failed multi back: the path's hash, the path, and its
/// previous change (`None`: it had none).
type Undo = (u64, Arc<str>, Option<Change>);

/// Who is asking and when.
#[derive(Debug, Clone, Copy)]
pub struct PrepCtx<'a> {
    /// The tree as of the last applied transaction.
    pub tree: &'a DataTree,
    /// The requesting session (0 for the server itself).
    pub session: i64,
    /// The connection's identities.
    pub ids: &'a [Id],
    /// The zxid this transaction gets.
    pub zxid: i64,
    /// The transaction time (ms since the epoch).
    pub time: i64,
}

/// Outstanding changes of prepared but not yet applied transactions.
#[derive(Debug, Default)]
pub struct Prep {
    cfg: PrepConfig,
    changes: Changes,
    /// The (zxid, hash, path) of every change, oldest first, to forget them once applied.
    order: VecDeque<(i64, u64, Arc<str>)>,
    /// While a multi is being prepped: the previous change of every path it touched.
    undo: Option<Vec<Undo>>,
}

type PResult<T> = Result<T, ErrorCode>;

impl Prep {
    /// A prep stage with no outstanding changes.
    pub fn new(cfg: PrepConfig) -> Self {
        Prep {
            cfg,
            ..Default::default()
        }
    }

    /// Forgets the outstanding changes of transactions up to `zxid`, now in the tree.
    pub fn applied(&mut self, zxid: i64) {
        while self.order.front().is_some_and(|(z, _, _)| *z <= zxid) {
            let (z, hash, path) = self.order.pop_front().expect("front exists");
            self.changes.forget(hash, &path, z);
        }
    }

    /// Number of paths with outstanding changes.
    pub fn outstanding(&self) -> usize {
        self.changes.len()
    }

    fn view(&self, tree: &DataTree, path: &str) -> Option<NodeView> {
        if let Some((_, v)) = self.changes.get(path) {
            return v.clone();
        }
        tree.get(path).map(|n| NodeView {
            stat: n.raw_stat(),
            acl: n.acl().clone(),
        })
    }

    fn record(&mut self, zxid: i64, path: &str, v: Option<NodeView>) {
        let (hash, key, prev) = self.changes.insert(path, (zxid, v));
        if let Some(undo) = &mut self.undo {
            undo.push((hash, key.clone(), prev));
        }
        self.order.push_back((zxid, hash, key));
    }

    /// Turns a write request into its transaction; a failed check becomes `Txn::Error`.
    /// Takes the request so that its path, data and ACL move into the transaction.
    pub fn prep(&mut self, ctx: &PrepCtx<'_>, req: Request) -> Txn {
        match req {
            Request::Multi(ops) => self.prep_multi(ctx, ops),
            _ => self
                .prep_op(ctx, req)
                .unwrap_or_else(|e| Txn::Error(e.code())),
        }
    }

    fn prep_multi(&mut self, ctx: &PrepCtx<'_>, ops: Vec<Request>) -> Txn {
        let count = ops.len();
        self.undo = Some(Vec::new());
        let mut out = Vec::with_capacity(count);
        let mut failed = None;
        for (i, op) in ops.into_iter().map(normalize_multi_op).enumerate() {
            match self.prep_op(ctx, op) {
                Ok(t) => out.push(t),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        let undo = self.undo.take().unwrap_or_default();
        let Some((at, err)) = failed else {
            return Txn::Multi(out);
        };
        // Roll back this multi's changes, newest first.
        for (hash, path, prev) in undo.into_iter().rev() {
            self.changes.restore(hash, path, prev);
        }
        let results = (0..count)
            .map(|i| {
                Txn::Error(match i.cmp(&at) {
                    std::cmp::Ordering::Less => 0,
                    std::cmp::Ordering::Equal => err.code(),
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                })
            })
            .collect();
        Txn::Multi(results)
    }

    fn node(&self, ctx: &PrepCtx<'_>, path: &str) -> PResult<NodeView> {
        self.view(ctx.tree, path).ok_or(ErrorCode::NoNode)
    }

    fn prep_op(&mut self, ctx: &PrepCtx<'_>, req: Request) -> PResult<Txn> {
        match req {
            Request::Create(r) | Request::Create2(r) => {
                self.create(ctx, r.path, r.data, r.acl, r.flags, None, false)
            }
            Request::CreateContainer(r) => {
                self.create(ctx, r.path, r.data, r.acl, r.flags, None, true)
            }
            Request::CreateTtl(r) => {
                self.create(ctx, r.path, r.data, r.acl, r.flags, Some(r.ttl), false)
            }
            Request::Delete(r) => {
                // Like ZooKeeper, delete checks only the last '/', NUL and the system paths;
                // other odd paths fail the parent lookup with NoNode.
                let path = r.path;
                let Some(slash) = path.rfind('/') else {
                    return Err(ErrorCode::BadArguments);
                };
                if path.contains('\0') || SYSTEM_PATHS.contains(&path.as_str()) {
                    return Err(ErrorCode::BadArguments);
                }
                let ppath = if slash == 0 { "/" } else { &path[..slash] };
                let mut pnode = self.node(ctx, ppath)?;
                check_acl(&pnode.acl, perms::DELETE, ctx.ids)?;
                let node = self.node(ctx, &path)?;
                check_version(node.stat.version, r.version)?;
                if node.stat.num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                pnode.stat.num_children -= 1;
                pnode.stat.pzxid = ctx.zxid;
                self.record(ctx.zxid, ppath, Some(pnode));
                self.record(ctx.zxid, &path, None);
                Ok(Txn::Delete(DeleteTxn { path }))
            }
            Request::DeleteContainer(r) => {
                let path = r.path;
                validate(&path)?;
                if SYSTEM_PATHS.contains(&path.as_str()) {
                    return Err(ErrorCode::BadArguments);
                }
                let node = self.node(ctx, &path)?;
                if node.stat.num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                let owner = node.stat.ephemeral_owner;
                match ttl_of_owner(owner) {
                    Some(ttl) if ctx.time.saturating_sub(node.stat.mtime) <= ttl => {
                        return Err(ErrorCode::BadVersion)
                    }
                    Some(_) => {}
                    None if owner != CONTAINER_EPHEMERAL_OWNER => {
                        return Err(ErrorCode::BadVersion)
                    }
                    None => {}
                }
                let ppath = parent(&path);
                let mut pnode = self.node(ctx, ppath)?;
                pnode.stat.num_children -= 1;
                pnode.stat.pzxid = ctx.zxid;
                self.record(ctx.zxid, ppath, Some(pnode));
                self.record(ctx.zxid, &path, None);
                Ok(Txn::DeleteContainer(DeleteTxn { path }))
            }
            Request::SetData(r) => {
                validate(&r.path)?;
                let mut node = self.node(ctx, &r.path)?;
                check_acl(&node.acl, perms::WRITE, ctx.ids)?;
                let version = check_version(node.stat.version, r.version)?;
                node.stat.version = version;
                node.stat.mzxid = ctx.zxid;
                node.stat.mtime = ctx.time;
                node.stat.data_length = r.data.as_ref().map_or(0, |d| d.len() as i32);
                self.record(ctx.zxid, &r.path, Some(node));
                Ok(Txn::SetData(SetDataTxn {
                    path: r.path,
                    data: r.data,
                    version,
                }))
            }
            Request::SetAcl(r) => {
                validate(&r.path)?;
                let acl = acl::fixup_owned(r.acl, ctx.ids)?;
                let mut node = self.node(ctx, &r.path)?;
                check_acl(&node.acl, perms::ADMIN, ctx.ids)?;
                let version = check_version(node.stat.aversion, r.version)?;
                node.stat.aversion = version;
                node.acl = Arc::new(acl.clone());
                self.record(ctx.zxid, &r.path, Some(node));
                Ok(Txn::SetAcl(SetAclTxn {
                    path: r.path,
                    acl,
                    version,
                }))
            }
            Request::Check(r) => {
                validate(&r.path)?;
                let node = self.node(ctx, &r.path)?;
                check_acl(&node.acl, perms::READ, ctx.ids)?;
                let version = check_version(node.stat.version, r.version)?;
                Ok(Txn::Check(CheckVersionTxn {
                    path: r.path,
                    version,
                }))
            }
            Request::CloseSession => Ok(self.close_session(ctx)),
            Request::Reconfig(_) => Err(ErrorCode::ReconfigDisabled),
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    /// The transaction that ends `ctx.session`, deleting its ephemerals.
    pub fn close_session(&mut self, ctx: &PrepCtx<'_>) -> Txn {
        let mut paths: Vec<String> = ctx
            .tree
            .ephemerals(ctx.session)
            .map(str::to_owned)
            .collect();
        paths.extend(
            self.changes
                .iter()
                .filter(|(_, (_, v))| {
                    v.as_ref()
                        .is_some_and(|v| v.stat.ephemeral_owner == ctx.session)
                })
                .map(|(p, _)| p.to_string()),
        );
        paths.sort();
        paths.dedup();
        paths.retain(|p| {
            self.view(ctx.tree, p)
                .is_some_and(|v| v.stat.ephemeral_owner == ctx.session)
        });
        for p in &paths {
            let ppath = parent(p);
            if let Some(mut pnode) = self.view(ctx.tree, ppath) {
                pnode.stat.num_children -= 1;
                pnode.stat.pzxid = ctx.zxid;
                self.record(ctx.zxid, ppath, Some(pnode));
            }
            self.record(ctx.zxid, p, None);
        }
        Txn::CloseSession(CloseSessionTxn {
            paths_to_delete: paths,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        ctx: &PrepCtx<'_>,
        path: String,
        data: Option<Vec<u8>>,
        acl_in: Vec<Acl>,
        flags: i32,
        ttl: Option<i64>,
        container_op: bool,
    ) -> PResult<Txn> {
        let mode = CreateMode::from_flags(flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.cfg.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl_value = ttl.unwrap_or(-1);
        if mode.is_ttl() {
            if ttl_value <= 0 || ttl_value > MAX_TTL_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl_value >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        if mode.is_ephemeral() && ctx.session == 0 {
            return Err(ErrorCode::BadArguments);
        }
        let Some(slash) = path.rfind('/') else {
            return Err(ErrorCode::BadArguments);
        };
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let acl = acl::fixup_owned(acl_in, ctx.ids)?;
        let ppath = if slash == 0 { "/" } else { &path[..slash] };
        let mut pnode = self.node(ctx, ppath)?;
        check_acl(&pnode.acl, perms::CREATE, ctx.ids)?;
        let pcv = pnode.stat.cversion;
        let mut full = path;
        if mode.is_sequential() {
            // `%010d`, as `sequence_suffix`, written in place.
            write!(full, "{pcv:010}").expect("writing to a String cannot fail");
        }
        validate(&full)?;
        if self.view(ctx.tree, &full).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        let powner = pnode.stat.ephemeral_owner;
        if powner != 0 && powner != CONTAINER_EPHEMERAL_OWNER && ttl_of_owner(powner).is_none() {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let new_cv = pcv.wrapping_add(1);
        let owner = if container_op {
            CONTAINER_EPHEMERAL_OWNER
        } else if mode.is_ttl() {
            ttl_ephemeral_owner(ttl_value)
        } else if mode.is_ephemeral() {
            ctx.session
        } else {
            0
        };
        // Children usually carry their parent's ACL: share its Arc rather than copy the ACL
        // into a new one (and free that again once applied).
        let node_acl = if *pnode.acl == acl {
            pnode.acl.clone()
        } else {
            Arc::new(acl.clone())
        };
        pnode.stat.num_children += 1;
        pnode.stat.cversion = new_cv;
        pnode.stat.pzxid = ctx.zxid;
        self.record(ctx.zxid, &full[..slash.max(1)], Some(pnode));
        let node = NodeView {
            stat: Stat {
                czxid: ctx.zxid,
                mzxid: ctx.zxid,
                ctime: ctx.time,
                mtime: ctx.time,
                ephemeral_owner: owner,
                pzxid: ctx.zxid,
                data_length: data.as_ref().map_or(0, |d| d.len() as i32),
                ..Stat::default()
            },
            acl: node_acl,
        };
        self.record(ctx.zxid, &full, Some(node));
        Ok(if container_op {
            Txn::CreateContainer(CreateContainerTxn {
                path: full,
                data,
                acl,
                parent_cversion: new_cv,
            })
        } else if mode.is_ttl() {
            Txn::CreateTtl(CreateTtlTxn {
                path: full,
                data,
                acl,
                parent_cversion: new_cv,
                ttl: ttl_value,
            })
        } else {
            Txn::Create(CreateTxn {
                path: full,
                data,
                acl,
                ephemeral: mode.is_ephemeral(),
                parent_cversion: new_cv,
            })
        })
    }
}

/// The operation a create inside multi really is: ZooKeeper re-derives it from the flags,
/// so a create2 answers as a plain create, flags 4 make a container and flags 5/6 a TTL node
/// whatever opcode carried them.
pub fn normalize_multi_op(op: Request) -> Request {
    use corral_proto::{CreateRequest, CreateTtlRequest};
    let (base, ttl) = match op {
        Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => (r, -1),
        Request::CreateTtl(r) => (
            CreateRequest {
                path: r.path,
                data: r.data,
                acl: r.acl,
                flags: r.flags,
            },
            r.ttl,
        ),
        other => return other,
    };
    match CreateMode::from_flags(base.flags) {
        Some(m) if m.is_container() => Request::CreateContainer(base),
        Some(m) if m.is_ttl() => Request::CreateTtl(CreateTtlRequest {
            path: base.path,
            data: base.data,
            acl: base.acl,
            flags: base.flags,
            ttl,
        }),
        _ => Request::Create(base),
    }
}

/// The opcode of [`normalize_multi_op`]`(op)`, without taking or copying the request.
pub fn multi_op_code(op: &Request) -> OpCode {
    let flags = match op {
        Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.flags,
        Request::CreateTtl(r) => r.flags,
        other => return other.op(),
    };
    match CreateMode::from_flags(flags) {
        Some(m) if m.is_container() => OpCode::CreateContainer,
        Some(m) if m.is_ttl() => OpCode::CreateTtl,
        _ => OpCode::Create,
    }
}

/// `%010d` of the parent's cversion, as ZooKeeper names sequential nodes.
pub fn sequence_suffix(cversion: i32) -> String {
    format!("{cversion:010}")
}

fn validate(path: &str) -> PResult<()> {
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)
}

fn check_acl(acl: &[Acl], perm: i32, ids: &[Id]) -> PResult<()> {
    if acl::check(acl, perm, ids) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn check_version(current: i32, expected: i32) -> PResult<i32> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::{CreateRequest, DeleteRequest, SetDataRequest, TxnHeader};

    struct Fixture {
        tree: DataTree,
        prep: Prep,
        zxid: i64,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                tree: DataTree::new(),
                prep: Prep::new(PrepConfig {
                    extended_types: true,
                }),
                zxid: 0,
            }
        }
        /// Preps without applying (the write stays in flight).
        fn prep(&mut self, req: Request) -> Txn {
            self.zxid += 1;
            let ctx = PrepCtx {
                tree: &self.tree,
                session: 9,
                ids: &[],
                zxid: self.zxid,
                time: 100,
            };
            self.prep.prep(&ctx, req)
        }
        fn apply_all(&mut self, txns: &[Txn]) {
            for (i, t) in txns.iter().enumerate() {
                let hdr = TxnHeader {
                    client_id: 9,
                    cxid: 0,
                    zxid: self.zxid - (txns.len() - 1 - i) as i64,
                    time: 100,
                    txn_type: t.txn_type(),
                };
                self.tree.apply(&hdr, t).unwrap();
                self.prep.applied(hdr.zxid);
            }
        }
    }

    fn create(path: &str, flags: i32) -> Request {
        Request::Create(CreateRequest {
            path: path.into(),
            data: Some(vec![1]),
            acl: Acl::open_unsafe(),
            flags,
        })
    }

    #[test]
    fn in_flight_create_is_seen_by_the_next_prep() {
        let mut f = Fixture::new();
        assert!(matches!(f.prep(create("/a", 0)), Txn::Create(_)));
        assert_eq!(
            f.prep(create("/a", 0)),
            Txn::Error(ErrorCode::NodeExists.code())
        );
        assert!(matches!(f.prep(create("/a/b", 0)), Txn::Create(_)));
    }

    #[test]
    fn sequential_names_follow_parent_cversion_in_flight() {
        let mut f = Fixture::new();
        let t1 = f.prep(create("/s-", 2));
        let t2 = f.prep(create("/s-", 2));
        let names: Vec<_> = [t1, t2]
            .iter()
            .map(|t| match t {
                Txn::Create(c) => c.path.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["/s-0000000000", "/s-0000000001"]);
    }

    #[test]
    fn failed_write_becomes_error_txn() {
        let mut f = Fixture::new();
        let t = f.prep(Request::SetData(SetDataRequest {
            path: "/nope".into(),
            data: None,
            version: -1,
        }));
        assert_eq!(t, Txn::Error(ErrorCode::NoNode.code()));
        let t = f.prep(Request::Delete(DeleteRequest {
            path: "/zookeeper".into(),
            version: -1,
        }));
        assert_eq!(t, Txn::Error(ErrorCode::BadArguments.code()));
    }

    #[test]
    fn failed_multi_rolls_back_and_reports_per_op_codes() {
        let mut f = Fixture::new();
        let t = f.prep(Request::Multi(vec![
            create("/m", 0),
            Request::Delete(DeleteRequest {
                path: "/missing".into(),
                version: -1,
            }),
            create("/m2", 0),
        ]));
        assert_eq!(
            t,
            Txn::Multi(vec![Txn::Error(0), Txn::Error(-101), Txn::Error(-2)])
        );
        // /m was rolled back, so it can be created now.
        assert!(matches!(f.prep(create("/m", 0)), Txn::Create(_)));
    }

    #[test]
    fn delete_of_node_with_in_flight_child_is_not_empty() {
        let mut f = Fixture::new();
        let a = f.prep(create("/a", 0));
        let b = f.prep(create("/a/b", 0));
        let d = f.prep(Request::Delete(DeleteRequest {
            path: "/a".into(),
            version: -1,
        }));
        assert_eq!(d, Txn::Error(ErrorCode::NotEmpty.code()));
        f.apply_all(&[a, b, d]);
        assert_eq!(f.prep.outstanding(), 0);
    }

    #[test]
    fn changes_are_forgotten_once_applied_even_after_a_rollback() {
        let mut f = Fixture::new();
        let failed = f.prep(Request::Multi(vec![
            create("/m", 0),
            Request::Delete(DeleteRequest {
                path: "/missing".into(),
                version: -1,
            }),
        ]));
        let m = f.prep(create("/m", 0));
        let c = f.prep(create("/m/c", 2));
        let c2 = f.prep(create("/m/c", 2));
        assert!(f.prep.outstanding() > 0);
        f.apply_all(&[failed, m, c, c2]);
        assert_eq!(f.prep.outstanding(), 0);
        assert!(f.tree.get("/m/c0000000001").is_some());
    }

    #[test]
    fn ephemeral_parent_refuses_children() {
        let mut f = Fixture::new();
        f.prep(create("/e", 1));
        assert_eq!(
            f.prep(create("/e/c", 0)),
            Txn::Error(ErrorCode::NoChildrenForEphemerals.code())
        );
    }

    #[test]
    fn ttl_rules() {
        let mut f = Fixture::new();
        let ttl = |flags, ttl| {
            Request::CreateTtl(corral_proto::CreateTtlRequest {
                path: "/t".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags,
                ttl,
            })
        };
        assert_eq!(f.prep(ttl(5, 0)), Txn::Error(-8));
        assert_eq!(f.prep(ttl(0, 10)), Txn::Error(-8));
        assert!(matches!(f.prep(ttl(5, 10)), Txn::CreateTtl(_)));
        let mut off = Fixture::new();
        off.prep = Prep::new(PrepConfig::default());
        assert_eq!(off.prep(ttl(5, 10)), Txn::Error(-6));
    }
}
