//! Watch registry: one-shot data/child watches, persistent and persistent-recursive watches,
//! keyed by connection, with ZooKeeper's trigger rules.

use crate::tree::Trigger;
use corral_proto::path::parent;
use corral_proto::EventType;
use std::collections::{BTreeSet, HashMap};

/// A connection id: watches belong to the connection that set them.
pub type ConnId = u64;

/// How a watch behaves once triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchMode {
    /// Removed when it fires.
    Standard,
    /// Stays until removed; data and child events of one node.
    Persistent,
    /// Stays until removed; data events of a node and all its descendants.
    PersistentRecursive,
}

#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<String, HashMap<ConnId, BTreeSet<WatchMode>>>,
    by_conn: HashMap<ConnId, BTreeSet<String>>,
    recursive: usize,
}

impl Table {
    fn add(&mut self, path: &str, conn: ConnId, mode: WatchMode) {
        let modes = self
            .by_path
            .entry(path.to_owned())
            .or_default()
            .entry(conn)
            .or_default();
        if modes.insert(mode) && mode == WatchMode::PersistentRecursive {
            self.recursive += 1;
        }
        self.by_conn
            .entry(conn)
            .or_default()
            .insert(path.to_owned());
    }

    /// Removes the modes selected by `pred` for (path, conn); true if any was removed.
    fn remove(&mut self, path: &str, conn: ConnId, pred: impl Fn(WatchMode) -> bool) -> bool {
        let Some(conns) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(modes) = conns.get_mut(&conn) else {
            return false;
        };
        let before = modes.len();
        let rec_before = modes.contains(&WatchMode::PersistentRecursive);
        modes.retain(|m| !pred(*m));
        if rec_before && !modes.contains(&WatchMode::PersistentRecursive) {
            self.recursive -= 1;
        }
        let removed = modes.len() != before;
        if modes.is_empty() {
            conns.remove(&conn);
            if conns.is_empty() {
                self.by_path.remove(path);
            }
            if let Some(paths) = self.by_conn.get_mut(&conn) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_conn.remove(&conn);
                }
            }
        }
        removed
    }

    fn has(&self, path: &str, conn: ConnId, pred: impl Fn(WatchMode) -> bool) -> bool {
        self.by_path
            .get(path)
            .and_then(|c| c.get(&conn))
            .is_some_and(|m| m.iter().any(|m| pred(*m)))
    }

    /// Fires the watches a change of `path` triggers, adding the connections to `out`.
    fn trigger(&mut self, path: &str, out: &mut BTreeSet<ConnId>) {
        let mut fired_standard = Vec::new();
        if let Some(conns) = self.by_path.get(path) {
            for (conn, modes) in conns {
                out.insert(*conn);
                if modes.contains(&WatchMode::Standard) {
                    fired_standard.push(*conn);
                }
            }
        }
        for conn in fired_standard {
            self.remove(path, conn, |m| m == WatchMode::Standard);
        }
        if self.recursive > 0 && path != "/" {
            let mut p = parent(path);
            loop {
                if let Some(conns) = self.by_path.get(p) {
                    for (conn, modes) in conns {
                        if modes.contains(&WatchMode::PersistentRecursive) {
                            out.insert(*conn);
                        }
                    }
                }
                if p == "/" {
                    break;
                }
                p = parent(p);
            }
        }
    }

    fn remove_conn(&mut self, conn: ConnId) {
        if let Some(paths) = self.by_conn.remove(&conn) {
            for p in paths {
                if let Some(conns) = self.by_path.get_mut(&p) {
                    if let Some(modes) = conns.remove(&conn) {
                        if modes.contains(&WatchMode::PersistentRecursive) {
                            self.recursive -= 1;
                        }
                    }
                    if conns.is_empty() {
                        self.by_path.remove(&p);
                    }
                }
            }
        }
    }
}

/// Which watch table a removeWatches / checkWatches names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// Child watches (one-shot).
    Children,
    /// Data / exists watches (one-shot).
    Data,
    /// Everything on the path.
    Any,
    /// Persistent watches.
    Persistent,
    /// Persistent recursive watches.
    PersistentRecursive,
}

/// Every watch of the server.
#[derive(Debug, Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
}

impl WatchManager {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A one-shot data watch (getData, exists).
    pub fn add_data(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, WatchMode::Standard);
    }

    /// A one-shot child watch (getChildren).
    pub fn add_child(&mut self, path: &str, conn: ConnId) {
        self.child.add(path, conn, WatchMode::Standard);
    }

    /// A persistent watch (addWatch mode 0): data and child events on `path`.
    pub fn add_persistent(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, WatchMode::Persistent);
        self.child.add(path, conn, WatchMode::Persistent);
    }

    /// A persistent recursive watch (addWatch mode 1).
    pub fn add_recursive(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, WatchMode::PersistentRecursive);
    }

    /// Whether `conn` has a watch of `kind` on `path`; with `remove`, also removes it.
    pub fn check_or_remove(
        &mut self,
        path: &str,
        conn: ConnId,
        kind: WatchKind,
        remove: bool,
    ) -> bool {
        type Pred = fn(WatchMode) -> bool;
        let (data_pred, child_pred): (Pred, Pred) = match kind {
            WatchKind::Data => (|m| m == WatchMode::Standard, |_| false),
            WatchKind::Children => (|_| false, |m| m == WatchMode::Standard),
            WatchKind::Any => (|_| true, |_| true),
            WatchKind::Persistent => (
                |m| m == WatchMode::Persistent,
                |m| m == WatchMode::Persistent,
            ),
            WatchKind::PersistentRecursive => (|m| m == WatchMode::PersistentRecursive, |_| false),
        };
        if remove {
            let a = self.data.remove(path, conn, data_pred);
            let b = self.child.remove(path, conn, child_pred);
            a || b
        } else {
            self.data.has(path, conn, data_pred) || self.child.has(path, conn, child_pred)
        }
    }

    /// Removes every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        self.data.remove_conn(conn);
        self.child.remove_conn(conn);
    }

    /// The notifications a tree change causes: (connection, event type, path), at most one
    /// per connection per trigger, in trigger order.
    pub fn trigger(&mut self, trig: &Trigger) -> Vec<(ConnId, EventType, String)> {
        let mut conns = BTreeSet::new();
        let (ty, path) = match trig {
            Trigger::Created(p) => {
                self.data.trigger(p, &mut conns);
                (EventType::NodeCreated, p)
            }
            Trigger::DataChanged(p) => {
                self.data.trigger(p, &mut conns);
                (EventType::NodeDataChanged, p)
            }
            Trigger::Deleted(p, _) => {
                self.data.trigger(p, &mut conns);
                self.child.trigger(p, &mut conns);
                (EventType::NodeDeleted, p)
            }
            Trigger::ChildrenChanged(p) => {
                // Only the child table, which never holds recursive watches: recursive
                // watchers do not see child events.
                self.child.trigger(p, &mut conns);
                (EventType::NodeChildrenChanged, p)
            }
        };
        conns.into_iter().map(|c| (c, ty, path.clone())).collect()
    }

    /// (connections watching, paths watched, total watches) of the data table, as `wchs`.
    pub fn data_summary(&self) -> (usize, usize, usize) {
        let total = self.data.by_path.values().map(|c| c.len()).sum::<usize>()
            + self.child.by_path.values().map(|c| c.len()).sum::<usize>();
        let mut conns: BTreeSet<ConnId> = self.data.by_conn.keys().copied().collect();
        conns.extend(self.child.by_conn.keys().copied());
        let mut paths: BTreeSet<&String> = self.data.by_path.keys().collect();
        paths.extend(self.child.by_path.keys());
        (conns.len(), paths.len(), total)
    }

    /// Watched paths per connection, as `wchc`.
    pub fn by_connection(&self) -> Vec<(ConnId, Vec<String>)> {
        let mut m: HashMap<ConnId, BTreeSet<String>> = HashMap::new();
        for t in [&self.data, &self.child] {
            for (c, ps) in &t.by_conn {
                m.entry(*c).or_default().extend(ps.iter().cloned());
            }
        }
        let mut v: Vec<_> = m
            .into_iter()
            .map(|(c, p)| (c, p.into_iter().collect()))
            .collect();
        v.sort();
        v
    }

    /// Watching connections per path, as `wchp`.
    pub fn by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut m: HashMap<String, BTreeSet<ConnId>> = HashMap::new();
        for t in [&self.data, &self.child] {
            for (p, cs) in &t.by_path {
                m.entry(p.clone()).or_default().extend(cs.keys().copied());
            }
        }
        let mut v: Vec<_> = m
            .into_iter()
            .map(|(p, c)| (p, c.into_iter().collect()))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(w: &mut WatchManager, t: Trigger) -> Vec<(ConnId, EventType)> {
        w.trigger(&t).into_iter().map(|(c, e, _)| (c, e)).collect()
    }

    #[test]
    fn one_shot_fires_once() {
        let mut w = WatchManager::new();
        w.add_data("/a", 1);
        assert_eq!(
            ev(&mut w, Trigger::DataChanged("/a".into())),
            [(1, EventType::NodeDataChanged)]
        );
        assert!(ev(&mut w, Trigger::DataChanged("/a".into())).is_empty());
    }

    #[test]
    fn persistent_stays_and_sees_children() {
        let mut w = WatchManager::new();
        w.add_persistent("/a", 1);
        for _ in 0..2 {
            assert_eq!(ev(&mut w, Trigger::DataChanged("/a".into())).len(), 1);
            assert_eq!(ev(&mut w, Trigger::ChildrenChanged("/a".into())).len(), 1);
        }
    }

    #[test]
    fn recursive_sees_descendants_but_not_child_events() {
        let mut w = WatchManager::new();
        w.add_recursive("/a", 1);
        assert_eq!(
            ev(&mut w, Trigger::Created("/a/b/c".into())),
            [(1, EventType::NodeCreated)]
        );
        assert!(ev(&mut w, Trigger::ChildrenChanged("/a".into())).is_empty());
        assert!(ev(&mut w, Trigger::Created("/ab".into())).is_empty());
    }

    #[test]
    fn one_event_per_connection_per_trigger() {
        let mut w = WatchManager::new();
        w.add_data("/a", 1);
        w.add_child("/a", 1);
        w.add_recursive("/", 1);
        assert_eq!(
            ev(
                &mut w,
                Trigger::Deleted(
                    "/a".into(),
                    std::sync::Arc::new(corral_proto::Acl::open_unsafe())
                )
            ),
            [(1, EventType::NodeDeleted)]
        );
        // Both one-shot watches were consumed; the recursive one stays.
        assert!(!w.check_or_remove("/a", 1, WatchKind::Any, false));
        assert_eq!(ev(&mut w, Trigger::Created("/a".into())).len(), 1);
    }

    #[test]
    fn parent_standard_watch_is_not_fired_by_grandchild() {
        let mut w = WatchManager::new();
        w.add_data("/a", 1);
        assert!(ev(&mut w, Trigger::Created("/a/b".into())).is_empty());
    }

    #[test]
    fn remove_watches_by_kind() {
        let mut w = WatchManager::new();
        w.add_data("/a", 1);
        w.add_child("/a", 1);
        assert!(w.check_or_remove("/a", 1, WatchKind::Children, true));
        assert!(!w.check_or_remove("/a", 1, WatchKind::Children, false));
        assert!(w.check_or_remove("/a", 1, WatchKind::Data, false));
        w.remove_conn(1);
        assert!(!w.check_or_remove("/a", 1, WatchKind::Any, false));
        assert_eq!(w.data_summary(), (0, 0, 0));
    }
}
