//! [`PersistentNode`]: a node that stays there while its owner lives (Curator's
//! `PersistentNode`).
//!
//! ```text
//!   PersistentNode ──► keeper task ── create (parents as containers) ──► node
//!        │ set_data        ▲   │  data watch on the node: deleted / changed → check again
//!        └── nudge ────────┘   │  session: connected again → check; new session → recreate
//!                              │  TTL mode: touch every ttl/2
//!                              └─ shutdown (close / drop): delete the node, then end
//! ```

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use corral_client::{Acl, Client, CreateMode, CreateOptions, Error, OneshotWatcher};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lock::common::{ensure_parents, node_name, parent, reconnect_bound, wait_connected};
use crate::RecipeError;

/// How many create / adopt rounds one check makes before backing off.
const ENSURE_ATTEMPTS_MAX: u32 = 8;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the keeper reports.
#[derive(Debug, Clone, Default)]
struct Status {
    /// The node's actual path while it is known to exist.
    path: Option<String>,
    /// The last failure to create or check the node, cleared by the next success.
    error: Option<RecipeError>,
    /// The keeper ended (closed, or the client's session task ended).
    closed: bool,
}

/// What the handle and the keeper share.
#[derive(Debug)]
struct Core {
    base_path: String,
    mode: CreateMode,
    options: CreateOptions,
    ttl: Option<Duration>,
    desired: StdMutex<Vec<u8>>,
    status: watch::Sender<Status>,
    nudge: Notify,
}

impl Core {
    fn desired(&self) -> Vec<u8> {
        self.desired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn publish(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(f);
    }
}

/// Settings of a [`PersistentNode`]; [`PersistentNodeBuilder::start`] starts it.
///
/// ```no_run
/// # fn f(client: corral_client::Client) -> Result<(), corral_recipes::RecipeError> {
/// use std::time::Duration;
/// use corral_client::CreateMode;
/// use corral_recipes::persistent_node::PersistentNode;
/// let node = PersistentNode::builder(&client, "/app/heartbeats/worker-1", b"up")
///     .with_mode(CreateMode::PersistentWithTtl)
///     .with_ttl(Duration::from_secs(30))
///     .start()?;
/// # drop(node); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PersistentNodeBuilder {
    client: Client,
    path: String,
    data: Vec<u8>,
    mode: CreateMode,
    ttl: Option<Duration>,
    acl: Option<Vec<Acl>>,
}

impl PersistentNodeBuilder {
    /// The node's mode (default [`CreateMode::Ephemeral`]): `Ephemeral`,
    /// `EphemeralSequential` (a new sequential node replaces a lost one), `Persistent` or
    /// `PersistentWithTtl` (with [`PersistentNodeBuilder::with_ttl`]).
    pub fn with_mode(mut self, mode: CreateMode) -> Self {
        self.mode = mode;
        self
    }

    /// The TTL of a `PersistentWithTtl` node. The keeper touches the node every half TTL,
    /// so it outlives its TTL only while the keeper runs.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The node's ACL (default: open).
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = Some(acl);
        self
    }

    /// Starts the keeper, which creates the node (and its missing parents, as
    /// containers) in the background; see [`PersistentNode::created`].
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path, an unsupported mode, or a TTL
    /// that does not match the mode.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(self) -> Result<PersistentNode, RecipeError> {
        crate::cache::validate_path(&self.path)?;
        if self.path == "/" {
            return Err(RecipeError::BadArguments(
                "the root cannot be a persistent node".into(),
            ));
        }
        let supported = matches!(
            self.mode,
            CreateMode::Ephemeral
                | CreateMode::EphemeralSequential
                | CreateMode::Persistent
                | CreateMode::PersistentWithTtl
        );
        if !supported {
            return Err(RecipeError::BadArguments(format!(
                "a persistent node cannot have mode {:?}",
                self.mode
            )));
        }
        let mut options = CreateOptions::new(self.mode);
        if let Some(acl) = self.acl {
            options = options.with_acl(acl);
        }
        match (self.mode.is_ttl(), self.ttl) {
            (true, Some(ttl)) if !ttl.is_zero() => options = options.with_ttl(ttl),
            (false, None) => {}
            _ => {
                return Err(RecipeError::BadArguments(
                    "a (non-zero) TTL goes with PersistentWithTtl and only with it".into(),
                ))
            }
        }
        let core = Arc::new(Core {
            base_path: self.path,
            mode: self.mode,
            options,
            ttl: self.ttl,
            desired: StdMutex::new(self.data),
            status: watch::channel(Status::default()).0,
            nudge: Notify::new(),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(keep(self.client.clone(), core.clone(), shutdown.clone()));
        Ok(PersistentNode {
            client: self.client,
            core,
            shutdown,
            task: StdMutex::new(Some(task)),
        })
    }
}

/// A node that is recreated whenever it goes away, until closed (Curator's
/// `PersistentNode`).
///
/// A keeper task creates the node (and missing parents, as containers), watches it, and
/// creates it again when it is deleted, when a reconnect finds it missing, and when a new
/// session replaces an expired one (clients built with
/// [`corral_client::ClientBuilder::with_session_renewal`]; without renewal an expired
/// client cannot create anything and the keeper ends). Modes: ephemeral (the usual: a
/// presence marker), ephemeral sequential, persistent, and persistent with a TTL (touched
/// every half TTL while the keeper runs, so it disappears a TTL after its owner died).
///
/// A node found at the path when creating is adopted and given our data, as Curator does.
///
/// Dropping the handle (or [`PersistentNode::close`]) stops the keeper and deletes the
/// node in the background.
///
/// ```no_run
/// use corral_client::{Client, CreateMode};
/// use corral_recipes::persistent_node::PersistentNode;
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::builder("127.0.0.1:2181").with_session_renewal(true).connect().await?;
/// let node = PersistentNode::builder(&client, "/app/members/worker-1", b"10.0.0.7:80")
///     .with_mode(CreateMode::Ephemeral)
///     .start()?;
/// let path = node.created().await?;
/// println!("registered at {path}");
/// node.set_data(b"10.0.0.7:81").await?;
/// node.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentNode {
    client: Client,
    core: Arc<Core>,
    shutdown: CancellationToken,
    task: StdMutex<Option<JoinHandle<()>>>,
}

impl PersistentNode {
    /// A builder for a node at `path` with `data` (for `EphemeralSequential`, the path
    /// the sequence number is appended to).
    pub fn builder(client: &Client, path: &str, data: &[u8]) -> PersistentNodeBuilder {
        PersistentNodeBuilder {
            client: client.clone(),
            path: path.to_owned(),
            data: data.to_vec(),
            mode: CreateMode::Ephemeral,
            ttl: None,
            acl: None,
        }
    }

    /// The node's actual path while it is known to exist (with the sequence suffix for a
    /// sequential node).
    pub fn actual_path(&self) -> Option<String> {
        self.core.status.borrow().path.clone()
    }

    /// The path the node is created at (without sequence suffix).
    pub fn path(&self) -> &str {
        &self.core.base_path
    }

    /// The data the node is kept with.
    pub fn data(&self) -> Vec<u8> {
        self.core.desired()
    }

    /// Waits until the node exists and returns its actual path.
    ///
    /// # Errors
    ///
    /// The last error of the keeper when it cannot be fixed by retrying (e.g. `NoAuth`,
    /// or `Unimplemented` for a TTL on a server without TTL nodes): the keeper keeps
    /// trying, in case it can; [`RecipeError::Closed`] when the keeper ended (closed, or
    /// the client's session task ended).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn created(&self) -> Result<String, RecipeError> {
        let mut rx = self.core.status.subscribe();
        let status = rx
            .wait_for(|s| {
                s.path.is_some()
                    || s.closed
                    || s.error
                        .as_ref()
                        .is_some_and(|e| !e.is_retryable() && !e.is_terminal())
            })
            .await
            .map_err(|_| RecipeError::Closed)?
            .clone();
        match status {
            Status {
                path: Some(path), ..
            } => Ok(path),
            Status { closed: true, .. } => Err(RecipeError::Closed),
            Status { error, .. } => Err(error.unwrap_or(RecipeError::Closed)),
        }
    }

    /// Changes the data the node is kept with, and writes it to the node.
    ///
    /// # Errors
    ///
    /// Client errors other than connection loss and `NoNode`: in those cases the keeper
    /// writes the new data once connected again / creates the node with it.
    ///
    /// # Cancellation safety
    ///
    /// The new data is recorded at once; the keeper writes it even if the future is
    /// dropped.
    pub async fn set_data(&self, data: &[u8]) -> Result<(), RecipeError> {
        *self.core.desired.lock().unwrap_or_else(|e| e.into_inner()) = data.to_vec();
        let Some(path) = self.actual_path() else {
            self.core.nudge.notify_one();
            return Ok(());
        };
        match self.client.set_data(&path, data, None).await {
            Ok(_) => Ok(()),
            Err(e) if e == Error::NoNode || e.is_retryable() => {
                self.core.nudge.notify_one();
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stops the keeper and deletes the node, waiting for the delete.
    ///
    /// # Errors
    ///
    /// None so far; a delete that fails for good (e.g. `NoAuth`) is logged.
    ///
    /// # Cancellation safety
    ///
    /// The keeper stops and deletes the node whatever; dropping the future only stops
    /// waiting for it.
    pub async fn close(self) -> Result<(), RecipeError> {
        self.shutdown.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Drop for PersistentNode {
    fn drop(&mut self) {
        // The keeper deletes the node on its way out.
        self.shutdown.cancel();
    }
}

/// The keeper: keeps the node there until shut down, then deletes it.
async fn keep(client: Client, core: Arc<Core>, shutdown: CancellationToken) {
    let mut states = client.state_watcher();
    let mut status = states.current();
    let mut check = true;
    let mut own: Option<OneshotWatcher> = None;
    let mut path: Option<String> = None;
    let mut retry_at: Option<Instant> = None;
    let mut backoff = RETRY_MIN;
    let touch_every = core.ttl.map(|t| (t / 2).max(Duration::from_millis(10)));
    let mut touch = touch_every.map(|every| {
        let mut t = tokio::time::interval_at(Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let due = retry_at.is_none_or(|t| Instant::now() >= t);
        if check && status.is_connected() && due {
            match ensure(&client, &core, &mut path).await {
                Ok(watcher) => {
                    own = Some(watcher);
                    check = false;
                    retry_at = None;
                    backoff = RETRY_MIN;
                    let actual = path.clone();
                    core.publish(|s| {
                        s.path = actual;
                        s.error = None;
                    });
                }
                Err(e) => {
                    tracing::debug!(path = %core.base_path, error = %e, "cannot keep the node yet");
                    let e = RecipeError::from(e);
                    core.publish(|s| {
                        s.path = None;
                        s.error = Some(e);
                    });
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        let retry = retry_at.filter(|_| check && status.is_connected());
        let touching = touch.is_some() && path.is_some() && status.is_connected() && !check;
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            changed = states.changed() => match changed {
                Ok(s) => {
                    if s.epoch != status.epoch && core.mode.is_ephemeral() {
                        // A new session: the old session's node is gone.
                        own = None;
                        core.publish(|st| st.path = None);
                    }
                    if s.is_connected() {
                        check = true;
                        retry_at = None;
                    }
                    status = s;
                }
                Err(_) => break,
            },
            event = async { own.as_mut().expect("guarded").await }, if own.is_some() => {
                own = None;
                check = true;
                if let Ok(e) = event {
                    tracing::debug!(path = %e.path, event = ?e.event_type, "persistent node changed");
                }
            }
            _ = core.nudge.notified() => check = true,
            _ = async { touch.as_mut().expect("guarded").tick().await }, if touching => {
                if let Some(p) = &path {
                    // Touching refreshes the TTL; a failure makes the next check find out.
                    if client.set_data(p, &core.desired(), None).await.is_err() {
                        check = true;
                    }
                }
            }
            _ = sleep_until(retry), if retry.is_some() => {}
        }
    }
    // A non-sequential node may exist even if we never saw the reply of its create.
    let target = path.or_else(|| (!core.mode.is_sequential()).then(|| core.base_path.clone()));
    if let Some(p) = target {
        delete_ours(&client, &p, core.mode).await;
    }
    core.publish(|s| {
        s.path = None;
        s.closed = true;
    });
}

/// Makes sure the node exists with our data; returns a data watch on it.
async fn ensure(
    client: &Client,
    core: &Core,
    path: &mut Option<String>,
) -> Result<OneshotWatcher, Error> {
    let base = &core.base_path;
    let sequential = core.mode.is_sequential();
    let mut last = Error::ConnectionLoss;
    for _ in 0..ENSURE_ATTEMPTS_MAX {
        let desired = core.desired();
        let known = path.clone().or_else(|| (!sequential).then(|| base.clone()));
        if let Some(p) = known {
            match client.get_and_watch_data(&p).await {
                Ok((data, stat, watcher)) => {
                    let ours = client.session_id().0;
                    if sequential && stat.ephemeral_owner != ours {
                        // Not the node of this session (a new session replaced ours).
                        *path = None;
                        continue;
                    }
                    if core.mode.is_ephemeral() && stat.ephemeral_owner != ours {
                        tracing::info!(path = %p, "adopting a node another session created");
                    }
                    if data != desired {
                        match client.set_data(&p, &desired, None).await {
                            Ok(_) | Err(Error::NoNode) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    *path = Some(p);
                    return Ok(watcher);
                }
                Err(Error::NoNode) => *path = None,
                Err(e) => return Err(e),
            }
        }
        match client.create(base, &desired, &core.options).await {
            Ok((actual, _)) => *path = Some(actual),
            // Someone else's (or our lost reply's) node: adopt it on the next round.
            Err(Error::NodeExists) => {}
            Err(Error::NoNode) => ensure_parents(client, parent(base)).await?,
            Err(e) if e.is_retryable() => {
                wait_connected(client, reconnect_bound(client)).await?;
                if sequential {
                    *path = find_ours(client, base).await?;
                }
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// This session's sequential node(s) for `base` after a create whose reply was lost;
/// keeps one, deletes the others.
async fn find_ours(client: &Client, base: &str) -> Result<Option<String>, Error> {
    let is_ours = |p: &str| {
        p.strip_prefix(base).is_some_and(|seq| {
            let digits = seq.strip_prefix('-').unwrap_or(seq);
            digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())
        })
    };
    let mut found: Vec<String> = match client.get_ephemerals(base).await {
        Ok(paths) => paths.into_iter().filter(|p| is_ours(p)).collect(),
        Err(Error::Unimplemented) => {
            let dir = parent(base);
            let name = node_name(base);
            let mut out = Vec::new();
            for child in client.get_children(dir).await? {
                let p = crate::lock::common::join(dir, &child);
                if child.starts_with(name) && is_ours(&p) {
                    if let Some(stat) = client.exists(&p).await? {
                        if stat.ephemeral_owner == client.session_id().0 {
                            out.push(p);
                        }
                    }
                }
            }
            out
        }
        Err(e) => return Err(e),
    };
    found.sort();
    let keep = found.pop();
    for extra in found {
        match client.delete(&extra, None).await {
            Ok(()) | Err(Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(keep)
}

/// Deletes the node if it is still ours, retrying across connection loss until the
/// session ends (an ephemeral goes with it anyway).
async fn delete_ours(client: &Client, path: &str, mode: CreateMode) {
    loop {
        let attempt = async {
            let Some(stat) = client.exists(path).await? else {
                return Ok(());
            };
            if mode.is_ephemeral() && stat.ephemeral_owner != client.session_id().0 {
                // Another session's node now: not ours to delete.
                return Ok(());
            }
            match client.delete(path, Some(stat.version)).await {
                Ok(()) | Err(Error::NoNode) => Ok(()),
                Err(e) => Err(e),
            }
        };
        match attempt.await {
            Ok(()) => return,
            Err(Error::BadVersion) => continue,
            Err(e) if e.is_retryable() => {
                if let Err(e) = wait_connected(client, reconnect_bound(client)).await {
                    if e.is_terminal() {
                        return;
                    }
                }
            }
            Err(e) if e.is_terminal() => return,
            Err(e) => {
                tracing::warn!(%path, error = %e, "could not delete a persistent node");
                return;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
