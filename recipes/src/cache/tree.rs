//! [`TreeCache`]: a subtree mirrored in memory, and the task that keeps it current.
//!
//! ```text
//!   server ── persistent recursive watch (or one-shot watches) ──► hints: "look at P"
//!                                                                    │
//!   session states ── connected again / new session ──► full resync │
//!                                                                    ▼
//!                                      cache task: read P (and below), diff with the map
//!                                                                    │ Created/Changed/Deleted
//!                                                                    ▼
//!                      Shared { map, broadcast } ──► CacheEvents (one per subscriber)
//! ```
//!
//! Watch events are only *hints*: for each one the task reads the node's current state
//! and reconciles the map with it, so duplicated, reordered or stale events are harmless,
//! and a lost event (ZOOKEEPER-4698: persistent watches do not replay what happened while
//! disconnected) is made up by the full resynchronisation that follows every reconnect.
//! A node whose `czxid` changed was deleted and created again (CURATOR-391) and is
//! reported so.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use corral_client::{
    AddWatchMode, Client, Error, EventType, OneshotWatcher, PersistentWatcher, SessionStatus, Stat,
    WatchedEvent,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::event::{CacheEvent, CacheEvents, ChildData};
use crate::lock::common::{join, parent};
use crate::RecipeError;

/// Default bound of each subscriber's event queue.
const EVENT_CAPACITY_DEFAULT: usize = 1024;
/// Bound of the queue of one-shot watch firings waiting for the cache task.
const HINT_CAPACITY: usize = 1024;
/// How many queued watch events (or one-shot firings) are read in one pipelined batch.
const BATCH_MAX: usize = 4096;
/// First and largest pause before retrying a failed synchronisation.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How a cache learns about changes.
///
/// ```no_run
/// # fn f(client: corral_client::Client) -> Result<(), corral_recipes::RecipeError> {
/// use corral_recipes::cache::{TreeCache, WatchMode};
/// let cache = TreeCache::builder(&client, "/app").with_watch_mode(WatchMode::OneShot).start()?;
/// // Later: which mode is in use (Persistent falls back to OneShot on old servers).
/// println!("{:?}", cache.watch_mode());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WatchMode {
    /// One persistent watch on the cache's root: `PersistentRecursive` for a tree,
    /// `Persistent` for a single node (ZooKeeper 3.6+). The default; a server that answers
    /// `Unimplemented` makes the cache fall back to [`WatchMode::OneShot`].
    Persistent,
    /// A one-shot data watch on every cached node and a child watch on every cached node
    /// above the depth limit, re-armed after each firing (how caches worked before 3.6).
    OneShot,
}

/// Progress of a cache, for waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Progress {
    initialized: bool,
    closed: bool,
}

/// What a cache handle and its task share.
#[derive(Debug)]
pub(crate) struct Shared {
    root: String,
    state: StdMutex<State>,
    progress: watch::Sender<Progress>,
}

#[derive(Debug)]
struct State {
    nodes: BTreeMap<String, ChildData>,
    initialized: bool,
    /// `None` once the cache is closed: subscriptions then end.
    tx: Option<broadcast::Sender<CacheEvent>>,
    mode: Option<WatchMode>,
    /// Bumped on every change of `nodes`, so derived views can be memoised.
    generation: u64,
}

/// The first key after every path that starts with `prefix` (`prefix` ends with `/`).
fn prefix_end(prefix: &str) -> String {
    // '/' + 1 is '0': every path below `dir/` sorts before `dir0`.
    let mut end = prefix[..prefix.len() - 1].to_owned();
    end.push('0');
    end
}

/// The prefix every descendant of `path` starts with.
fn descendant_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    }
}

impl Shared {
    fn new(root: String, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Shared {
            root,
            state: StdMutex::new(State {
                nodes: BTreeMap::new(),
                initialized: false,
                tx: Some(tx),
                mode: None,
                generation: 0,
            }),
            progress: watch::channel(Progress::default()).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The current content as events, and a receiver of every later event (`None` when
    /// the cache is closed), taken atomically.
    pub(crate) fn subscribe(
        &self,
    ) -> (
        VecDeque<CacheEvent>,
        Option<broadcast::Receiver<CacheEvent>>,
    ) {
        let state = self.lock();
        let mut pending: VecDeque<CacheEvent> = state
            .nodes
            .values()
            .cloned()
            .map(CacheEvent::Created)
            .collect();
        if state.initialized {
            pending.push_back(CacheEvent::Initialized);
        }
        let rx = state.tx.as_ref().map(|tx| tx.subscribe());
        (pending, rx)
    }

    /// Applies one event to the map and publishes it.
    fn apply(&self, event: CacheEvent) {
        let mut state = self.lock();
        match &event {
            CacheEvent::Created(d) | CacheEvent::Changed(d) => {
                state.nodes.insert(d.path.clone(), d.clone());
                state.generation += 1;
            }
            CacheEvent::Deleted(d) => {
                state.nodes.remove(&d.path);
                state.generation += 1;
            }
            CacheEvent::Initialized => state.initialized = true,
            CacheEvent::Reset => {}
        }
        if let Some(tx) = &state.tx {
            // No subscriber is fine: the map is the truth.
            let _ = tx.send(event);
        }
        let initialized = state.initialized;
        drop(state);
        self.progress.send_if_modified(|p| {
            let changed = p.initialized != initialized;
            p.initialized = initialized;
            changed
        });
    }

    fn set_mode(&self, mode: WatchMode) {
        self.lock().mode = Some(mode);
    }

    fn close(&self) {
        // Closed is visible before the streams end.
        self.progress.send_if_modified(|p| {
            let changed = !p.closed;
            p.closed = true;
            changed
        });
        self.lock().tx = None;
    }

    fn get(&self, path: &str) -> Option<ChildData> {
        self.lock().nodes.get(path).cloned()
    }

    fn contains(&self, path: &str) -> bool {
        self.lock().nodes.contains_key(path)
    }

    /// The names of the cached children of `path`.
    fn child_names(&self, path: &str) -> BTreeSet<String> {
        let prefix = descendant_prefix(path);
        let state = self.lock();
        state
            .nodes
            .range(prefix.clone()..prefix_end(&prefix))
            .filter_map(|(p, _)| {
                let rest = &p[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_owned())
            })
            .collect()
    }

    /// `path` and its cached descendants, deepest first.
    fn subtree_deepest_first(&self, path: &str) -> Vec<ChildData> {
        let prefix = descendant_prefix(path);
        let state = self.lock();
        let mut out: Vec<ChildData> = state
            .nodes
            .range(prefix.clone()..prefix_end(&prefix))
            .map(|(_, d)| d.clone())
            .collect();
        out.reverse();
        if path != "/" || !out.iter().any(|d| d.path == "/") {
            if let Some(d) = state.nodes.get(path) {
                out.push(d.clone());
            }
        }
        out
    }
}

/// The handle's share of a cache: dropping the last handle stops the task.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings of a [`TreeCache`]; [`TreeCacheBuilder::start`] starts it.
///
/// ```no_run
/// # fn f(client: corral_client::Client) -> Result<(), corral_recipes::RecipeError> {
/// use corral_recipes::cache::{TreeCache, WatchMode};
/// let cache = TreeCache::builder(&client, "/app/config")
///     .with_max_depth(2)
///     .with_watch_mode(WatchMode::OneShot)
///     .with_event_capacity(10_000)
///     .start()?;
/// # let _ = cache; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TreeCacheBuilder {
    client: Client,
    path: String,
    max_depth: usize,
    mode: WatchMode,
    capacity: usize,
}

impl TreeCacheBuilder {
    /// How deep below the root to cache: 0 caches the root only, 1 the root and its
    /// children, and so on (default: unlimited).
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// How to watch (default [`WatchMode::Persistent`], falling back to one-shot watches
    /// on servers without persistent watches).
    pub fn with_watch_mode(mut self, mode: WatchMode) -> Self {
        self.mode = mode;
        self
    }

    /// How many events each subscriber may have unread before it is reset (default 1024).
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Starts the cache: its task loads the subtree, then follows it. Returns at once;
    /// see [`TreeCache::initialized`].
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(self) -> Result<TreeCache, RecipeError> {
        validate_path(&self.path)?;
        let shared = Arc::new(Shared::new(self.path.clone(), self.capacity));
        let shutdown = CancellationToken::new();
        let (hints_tx, hints_rx) = mpsc::channel(HINT_CAPACITY);
        let task = Task {
            client: self.client,
            root: self.path,
            max_depth: self.max_depth,
            shared: shared.clone(),
            requested: self.mode,
            persistent_unsupported: false,
            persistent: None,
            armed_data: HashSet::new(),
            armed_child: HashSet::new(),
            armed_exists: false,
            generation: 0,
            hints_tx,
            hints_rx,
            watchers: JoinSet::new(),
            session: None,
        };
        tokio::spawn(task.run(shutdown.clone()));
        Ok(TreeCache {
            handle: Arc::new(Handle { shared, shutdown }),
        })
    }
}

pub(crate) fn validate_path(path: &str) -> Result<(), RecipeError> {
    let ok = path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && !path.split('/').any(|c| c == "." || c == "..");
    if ok {
        Ok(())
    } else {
        Err(RecipeError::BadArguments(format!("invalid path {path:?}")))
    }
}

/// A subtree mirrored in memory (Curator's `TreeCache` / `CuratorCache`).
///
/// A task loads every node under the root (down to a depth limit), then follows changes
/// with one persistent recursive watch on the root, or with one-shot watches on servers
/// that lack persistent watches (before ZooKeeper 3.6: they answer `Unimplemented`). It
/// publishes [`CacheEvent`]s: `Created`, `Changed`, `Deleted`, and `Initialized` once the
/// first load is complete.
///
/// # No change is missed silently
///
/// After every reconnect (and after a new session replaces an expired one, with
/// [`corral_client::ClientBuilder::with_session_renewal`]) the cache reads the whole
/// subtree again and reports the difference. Persistent watches do not report what
/// happened while the client was disconnected (ZOOKEEPER-4698), and a node deleted and
/// created again meanwhile looks unchanged to a one-shot watch (CURATOR-391): the cache
/// compares creation zxids and reports such a node `Deleted` then `Created`.
///
/// Reads are local and never block: [`TreeCache::get`], [`TreeCache::children`],
/// [`TreeCache::snapshot`]. Clones share one cache; it stops when the last clone is
/// dropped or [`TreeCache::close`] is called, and when its client's session task ends
/// (closed, or expired without renewal).
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::cache::{CacheEvent, TreeCache};
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let cache = TreeCache::builder(&client, "/app/config").with_max_depth(1).start()?;
/// let mut events = cache.events();
/// while let Some(event) = events.recv().await {
///     match event {
///         CacheEvent::Initialized => println!("loaded {} nodes", cache.len()),
///         CacheEvent::Changed(node) => println!("{} is now {:?}", node.path, node.data),
///         other => println!("{other:?}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TreeCache {
    handle: Arc<Handle>,
}

impl TreeCache {
    /// A builder for a cache of the subtree at `path` (which need not exist yet).
    pub fn builder(client: &Client, path: &str) -> TreeCacheBuilder {
        TreeCacheBuilder {
            client: client.clone(),
            path: path.to_owned(),
            max_depth: usize::MAX,
            mode: WatchMode::Persistent,
            capacity: EVENT_CAPACITY_DEFAULT,
        }
    }

    /// The root of the cached subtree.
    pub fn path(&self) -> &str {
        &self.handle.shared.root
    }

    /// A cached node (the root or a descendant, by full path).
    pub fn get(&self, path: &str) -> Option<ChildData> {
        self.handle.shared.get(path)
    }

    /// The cached children of `path`, by name; `None` when `path` is not cached.
    pub fn children(&self, path: &str) -> Option<BTreeMap<String, ChildData>> {
        let shared = &self.handle.shared;
        let prefix = descendant_prefix(path);
        let state = shared.lock();
        if !state.nodes.contains_key(path) {
            return None;
        }
        Some(
            state
                .nodes
                .range(prefix.clone()..prefix_end(&prefix))
                .filter_map(|(p, d)| {
                    let rest = &p[prefix.len()..];
                    (!rest.is_empty() && !rest.contains('/')).then(|| (rest.to_owned(), d.clone()))
                })
                .collect(),
        )
    }

    /// Every cached node, by path.
    pub fn snapshot(&self) -> BTreeMap<String, ChildData> {
        self.handle.shared.lock().nodes.clone()
    }

    /// How many nodes are cached.
    pub fn len(&self) -> usize {
        self.handle.shared.lock().nodes.len()
    }

    /// Whether no node is cached (the root does not exist, or nothing is loaded yet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A counter bumped by every change of the content.
    pub(crate) fn generation(&self) -> u64 {
        self.handle.shared.lock().generation
    }

    /// Whether the first full load is complete.
    pub fn is_initialized(&self) -> bool {
        self.handle.shared.lock().initialized
    }

    /// The watch mode in use (`None` until the first load started).
    pub fn watch_mode(&self) -> Option<WatchMode> {
        self.handle.shared.lock().mode
    }

    /// Waits until the first full load is complete.
    ///
    /// # Errors
    ///
    /// [`RecipeError::Closed`] if the cache stopped first (closed, or its client's
    /// session ended without renewal).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn initialized(&self) -> Result<(), RecipeError> {
        let mut rx = self.handle.shared.progress.subscribe();
        let p = *rx
            .wait_for(|p| p.initialized || p.closed)
            .await
            .map_err(|_| RecipeError::Closed)?;
        if p.initialized {
            Ok(())
        } else {
            Err(RecipeError::Closed)
        }
    }

    /// The events from now on, starting with the current content (see [`CacheEvents`]).
    pub fn events(&self) -> CacheEvents {
        CacheEvents::new(self.handle.shared.clone())
    }

    /// Whether the cache stopped (closed, or its client's session task ended).
    pub fn is_closed(&self) -> bool {
        self.handle.shared.progress.borrow().closed
    }

    /// Stops the cache (for every clone): its task ends, event streams end after the
    /// events already queued, and the content stays readable as it was.
    pub fn close(&self) {
        self.handle.shutdown.cancel();
    }
}

/// Which one-shot watch fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Child,
    Exists,
}

/// A one-shot watch firing, forwarded to the cache task.
#[derive(Debug)]
struct Hint {
    /// The arming generation: hints of watches armed before a new session are stale.
    generation: u64,
    path: String,
    kind: Kind,
    result: Result<WatchedEvent, Error>,
}

/// How much of a subtree a synchronisation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every node again (after a reconnect or a new session).
    Full,
    /// The node; its children only if it is new.
    Node,
    /// The node and its list of children; new children with their subtrees.
    Children,
}

type DataReply = Result<Option<(Vec<u8>, Stat, Option<OneshotWatcher>)>, Error>;
type ChildReply = Result<Option<(Vec<String>, Option<OneshotWatcher>)>, Error>;
type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The cache task: the only writer of the map.
struct Task {
    client: Client,
    root: String,
    max_depth: usize,
    shared: Arc<Shared>,
    requested: WatchMode,
    /// Set when the server answered `Unimplemented` to addWatch.
    persistent_unsupported: bool,
    persistent: Option<PersistentWatcher>,
    /// Paths with an armed one-shot data watch.
    armed_data: HashSet<String>,
    /// Paths with an armed one-shot child watch.
    armed_child: HashSet<String>,
    /// Whether an exists watch waits for the missing root.
    armed_exists: bool,
    generation: u64,
    hints_tx: mpsc::Sender<Hint>,
    hints_rx: mpsc::Receiver<Hint>,
    /// Tasks forwarding one-shot watch firings.
    watchers: JoinSet<()>,
    /// The session epoch our watches live in; `None` until established.
    session: Option<u64>,
}

impl Task {
    fn one_shot(&self) -> bool {
        self.persistent.is_none()
    }

    fn depth(&self, path: &str) -> usize {
        if path == self.root {
            return 0;
        }
        let rel = if self.root == "/" {
            path
        } else {
            &path[self.root.len()..]
        };
        rel.matches('/').count()
    }

    fn covers(&self, path: &str) -> bool {
        path == self.root
            || (self.root == "/" && path.starts_with('/'))
            || (path.starts_with(&self.root) && path[self.root.len()..].starts_with('/'))
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let mut states = self.client.state_watcher();
        let mut status = states.current();
        let mut dirty = true;
        let mut retry_at: Option<Instant> = None;
        let mut backoff = RETRY_MIN;
        loop {
            while self.watchers.try_join_next().is_some() {}
            let due = retry_at.is_none_or(|t| Instant::now() >= t);
            if status.is_connected() && due && (dirty || self.session != Some(status.epoch)) {
                match self.synchronise(&status).await {
                    Ok(()) => {
                        dirty = false;
                        retry_at = None;
                        backoff = RETRY_MIN;
                    }
                    Err(e) => {
                        tracing::debug!(path = %self.root, error = %e, "cache sync failed; will retry");
                        dirty = true;
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(RETRY_MAX);
                    }
                }
            }
            // The retry timer runs only while connected: otherwise the next state change
            // (connected again) is what starts the next attempt.
            let retry = retry_at
                .filter(|_| status.is_connected() && (dirty || self.session != Some(status.epoch)));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                changed = states.changed() => match changed {
                    Ok(s) => {
                        if s.is_connected() {
                            // Connected again (maybe after a quick drop we did not see):
                            // whatever happened meanwhile must be read.
                            dirty = true;
                            retry_at = None;
                        }
                        status = s;
                    }
                    Err(_) => break,
                },
                event = next_persistent(&mut self.persistent), if self.persistent.is_some() => {
                    match event {
                        Some(Ok(event)) => {
                            // Take every event already queued, and read them in one batch.
                            let mut batch = vec![event];
                            let mut end = None;
                            while let Some(w) = self.persistent.as_mut() {
                                if batch.len() >= BATCH_MAX {
                                    break;
                                }
                                match try_next(w) {
                                    Some(Some(Ok(e))) => batch.push(e),
                                    Some(ended) => {
                                        end = Some(ended);
                                        break;
                                    }
                                    None => break,
                                }
                            }
                            if let Err(e) = self.on_persistent_events(batch).await {
                                tracing::debug!(path = %self.root, error = %e, "cache refresh failed");
                                dirty = true;
                            }
                            if let Some(end) = end {
                                tracing::debug!(path = %self.root, ?end, "persistent watch ended");
                                self.persistent = None;
                                self.session = None;
                                dirty = true;
                            }
                        }
                        end => {
                            // Lagged, removed, or the session ended: watch again and read
                            // everything, since events were lost.
                            tracing::debug!(path = %self.root, ?end, "persistent watch ended");
                            self.persistent = None;
                            self.session = None;
                            dirty = true;
                        }
                    }
                }
                Some(hint) = self.hints_rx.recv() => {
                    let mut hints = vec![hint];
                    while hints.len() < BATCH_MAX {
                        match self.hints_rx.try_recv() {
                            Ok(h) => hints.push(h),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.on_hints(hints).await {
                        tracing::debug!(path = %self.root, error = %e, "cache refresh failed");
                        dirty = true;
                    }
                }
                _ = sleep_until(retry), if retry.is_some() => {}
            }
        }
        self.watchers.abort_all();
        self.shared.close();
    }

    /// Brings the map in line with the server: a new watch and a full read for a new
    /// session, a full read otherwise.
    async fn synchronise(&mut self, status: &SessionStatus) -> Result<(), Error> {
        if self.session != Some(status.epoch) || self.persistent_lost() {
            self.establish().await?;
            self.session = Some(status.epoch);
        } else {
            self.sync(&self.root.clone(), Scope::Full).await?;
        }
        if !self.shared.lock().initialized {
            self.shared.apply(CacheEvent::Initialized);
        }
        Ok(())
    }

    fn persistent_lost(&self) -> bool {
        self.requested == WatchMode::Persistent
            && !self.persistent_unsupported
            && self.persistent.is_none()
    }

    /// Sets the watch for a (new) session and reads everything.
    async fn establish(&mut self) -> Result<(), Error> {
        self.generation += 1;
        self.watchers.abort_all();
        self.armed_data.clear();
        self.armed_child.clear();
        self.armed_exists = false;
        self.persistent = None;
        if self.requested == WatchMode::Persistent && !self.persistent_unsupported {
            let mode = if self.max_depth == 0 {
                AddWatchMode::Persistent
            } else {
                AddWatchMode::PersistentRecursive
            };
            match self.client.add_watch(&self.root, mode).await {
                Ok(w) => self.persistent = Some(w),
                Err(Error::Unimplemented) => {
                    tracing::info!(
                        path = %self.root,
                        "the server has no persistent watches; caching with one-shot watches"
                    );
                    self.persistent_unsupported = true;
                }
                Err(e) => return Err(e),
            }
        }
        self.shared.set_mode(if self.one_shot() {
            WatchMode::OneShot
        } else {
            WatchMode::Persistent
        });
        self.sync(&self.root.clone(), Scope::Full).await
    }

    async fn on_persistent_events(&mut self, events: Vec<WatchedEvent>) -> Result<(), Error> {
        let mut starts = BTreeSet::new();
        for event in events {
            if !self.covers(&event.path) || self.depth(&event.path) > self.max_depth {
                continue;
            }
            match event.event_type {
                EventType::NodeCreated | EventType::NodeDeleted | EventType::NodeDataChanged => {
                    starts.insert(self.start_for(&event.path));
                }
                // Only a non-recursive watch (depth 0) reports these; children are not cached.
                _ => {}
            }
        }
        self.sync_many(starts.into_iter().collect(), Scope::Node)
            .await
    }

    async fn on_hints(&mut self, hints: Vec<Hint>) -> Result<(), Error> {
        let mut nodes = BTreeSet::new();
        let mut lists = BTreeSet::new();
        for hint in hints {
            if hint.generation != self.generation {
                continue;
            }
            match hint.kind {
                Kind::Data => self.armed_data.remove(&hint.path),
                Kind::Child => self.armed_child.remove(&hint.path),
                Kind::Exists => std::mem::replace(&mut self.armed_exists, false),
            };
            let event = match hint.result {
                Ok(event) => event,
                // The session ended: the state change brings a new session and a full read.
                Err(_) => continue,
            };
            let start = self.start_for(&hint.path);
            match (hint.kind, event.event_type) {
                (_, EventType::DataWatchRemoved | EventType::ChildWatchRemoved) => {}
                (Kind::Child, EventType::NodeChildrenChanged) if start == hint.path => {
                    lists.insert(start);
                }
                _ => {
                    nodes.insert(start);
                }
            }
        }
        let nodes: Vec<String> = nodes.difference(&lists).cloned().collect();
        self.sync_many(lists.into_iter().collect(), Scope::Children)
            .await?;
        self.sync_many(nodes, Scope::Node).await
    }

    /// Where to synchronise `path` from: its highest ancestor missing from the map, so
    /// that a node is never cached without its parent.
    fn start_for(&self, path: &str) -> String {
        let mut start = path.to_owned();
        while start != self.root && !self.shared.contains(parent(&start)) {
            start = parent(&start).to_owned();
        }
        start
    }

    async fn sync(&mut self, start: &str, scope: Scope) -> Result<(), Error> {
        self.sync_many(vec![start.to_owned()], scope).await
    }

    /// Reads `starts` (parents before children: sorted) and, level by level, the part of
    /// their subtrees `scope` asks for, and reconciles the map. Each level's reads are
    /// sent together (pipelined).
    async fn sync_many(&mut self, starts: Vec<String>, scope: Scope) -> Result<(), Error> {
        let mut level = starts;
        let mut first = true;
        while !level.is_empty() {
            let reads: Vec<BoxFut<DataReply>> =
                level.iter().map(|p| self.request_data(p)).collect();
            let mut listable = Vec::new();
            let mut again = Vec::new();
            for (path, read) in level.iter().zip(reads) {
                match read.await {
                    Ok(None) => {
                        self.remove_subtree(path);
                        if path == &self.root && self.one_shot() && !self.armed_exists {
                            let (stat, w) = self.client.exists_and_watch(path).await?;
                            self.arm(path, Kind::Exists, w);
                            if stat.is_some() {
                                again.push(path.clone());
                            }
                        }
                    }
                    Ok(Some((data, stat, watcher))) => {
                        if let Some(w) = watcher {
                            self.arm(path, Kind::Data, w);
                        }
                        if path != &self.root && !self.shared.contains(parent(path)) {
                            // The parent went meanwhile; its own update handles this.
                            continue;
                        }
                        let is_new = self.upsert(path, data, stat);
                        let force = scope == Scope::Full || (first && scope == Scope::Children);
                        if self.depth(path) < self.max_depth && (is_new || force) {
                            listable.push(path.clone());
                        }
                    }
                    Err(Error::NoAuth) => {
                        tracing::debug!(%path, "cache cannot read a node (NoAuth); left out");
                        self.remove_subtree(path);
                    }
                    Err(e) => return Err(e),
                }
            }
            let lists: Vec<BoxFut<ChildReply>> =
                listable.iter().map(|p| self.request_children(p)).collect();
            let mut next = again;
            for (path, list) in listable.iter().zip(lists) {
                let names = match list.await {
                    Ok(Some((names, watcher))) => {
                        if let Some(w) = watcher {
                            self.arm(path, Kind::Child, w);
                        }
                        names
                    }
                    Ok(None) => {
                        self.remove_subtree(path);
                        continue;
                    }
                    Err(Error::NoAuth) => Vec::new(),
                    Err(e) => return Err(e),
                };
                let names: BTreeSet<String> = names.into_iter().collect();
                let cached = self.shared.child_names(path);
                for gone in cached.difference(&names) {
                    self.remove_subtree(&join(path, gone));
                }
                for name in &names {
                    if scope == Scope::Full || !cached.contains(name) {
                        next.push(join(path, name));
                    }
                }
            }
            level = next;
            first = false;
        }
        Ok(())
    }

    /// Records the state read for `path`; returns whether the node is new to the map
    /// (first seen, or created again: its children must be read).
    fn upsert(&mut self, path: &str, data: Vec<u8>, stat: Stat) -> bool {
        match self.shared.get(path) {
            None => {
                self.shared
                    .apply(CacheEvent::Created(ChildData::new(path, data, stat)));
                true
            }
            Some(old) if old.stat.czxid != stat.czxid => {
                // Deleted and created again while we were not looking (CURATOR-391).
                self.remove_subtree(path);
                self.shared
                    .apply(CacheEvent::Created(ChildData::new(path, data, stat)));
                true
            }
            Some(old) if old.stat.mzxid != stat.mzxid || old.data != data => {
                // A read older than the cached state cannot happen: one session's reads
                // are served in order by servers that only move forward.
                if stat.mzxid >= old.stat.mzxid {
                    self.shared
                        .apply(CacheEvent::Changed(ChildData::new(path, data, stat)));
                }
                false
            }
            Some(_) => false,
        }
    }

    /// Removes `path` and its cached descendants, reporting each, deepest first.
    fn remove_subtree(&mut self, path: &str) {
        for node in self.shared.subtree_deepest_first(path) {
            self.shared.apply(CacheEvent::Deleted(node));
        }
    }

    fn request_data(&self, path: &str) -> BoxFut<DataReply> {
        if self.one_shot() && !self.armed_data.contains(path) {
            let read = self.client.get_and_watch_data(path);
            Box::pin(async move {
                match read.await {
                    Ok((data, stat, w)) => Ok(Some((data, stat, Some(w)))),
                    Err(Error::NoNode) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        } else {
            let read = self.client.get_data(path);
            Box::pin(async move {
                match read.await {
                    Ok((data, stat)) => Ok(Some((data, stat, None))),
                    Err(Error::NoNode) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        }
    }

    fn request_children(&self, path: &str) -> BoxFut<ChildReply> {
        if self.one_shot() && !self.armed_child.contains(path) {
            let read = self.client.get_and_watch_children(path);
            Box::pin(async move {
                match read.await {
                    Ok((names, w)) => Ok(Some((names, Some(w)))),
                    Err(Error::NoNode) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        } else {
            let read = self.client.get_children(path);
            Box::pin(async move {
                match read.await {
                    Ok(names) => Ok(Some((names, None))),
                    Err(Error::NoNode) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        }
    }

    /// Remembers an armed one-shot watch and forwards its firing to the task.
    fn arm(&mut self, path: &str, kind: Kind, watcher: OneshotWatcher) {
        match kind {
            Kind::Data => self.armed_data.insert(path.to_owned()),
            Kind::Child => self.armed_child.insert(path.to_owned()),
            Kind::Exists => std::mem::replace(&mut self.armed_exists, true),
        };
        let tx = self.hints_tx.clone();
        let generation = self.generation;
        let path = path.to_owned();
        self.watchers.spawn(async move {
            let result = watcher.await;
            // The queue is bounded: a slow cache task parks this forwarder, not the client.
            let _ = tx
                .send(Hint {
                    generation,
                    path,
                    kind,
                    result,
                })
                .await;
        });
    }
}

async fn next_persistent(
    watcher: &mut Option<PersistentWatcher>,
) -> Option<Result<WatchedEvent, Error>> {
    match watcher {
        Some(w) => w.recv().await,
        None => std::future::pending().await,
    }
}

/// The next item of `stream` if one is ready now, without waiting.
fn try_next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<Option<S::Item>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match Pin::new(stream).poll_next(&mut cx) {
        std::task::Poll::Ready(item) => Some(item),
        std::task::Poll::Pending => None,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_one_contiguous_range() {
        let mut m = BTreeMap::new();
        for p in ["/a", "/a-b", "/a/b", "/a/b/c", "/a0", "/a/z", "/b"] {
            m.insert(p.to_owned(), ());
        }
        let prefix = descendant_prefix("/a");
        let below: Vec<_> = m
            .range(prefix.clone()..prefix_end(&prefix))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(below, ["/a/b", "/a/b/c", "/a/z"]);
        let root = descendant_prefix("/");
        assert_eq!(m.range(root.clone()..prefix_end(&root)).count(), m.len());
    }

    #[test]
    fn paths_are_validated() {
        assert!(validate_path("/").is_ok());
        assert!(validate_path("/a/b").is_ok());
        for bad in ["", "a", "/a/", "/a//b", "/a/./b", "/.."] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
    }
}
