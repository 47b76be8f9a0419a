//! A double barrier with Curator's `DistributedDoubleBarrier` node layout.
//!
//! ```text
//!   enter: create <path>/<uuid> (ephemeral) ─► watch <path>/ready and the children
//!            ├─ ready created after our node ─────────────────────────► entered
//!            ├─ ≥ N members of this round (created after any older ready)
//!            │      └─ (replace a stale ready) create ready ───────────► entered
//!            └─ otherwise wait for either watch, then look again (never return early)
//!   leave: delete our node ─► wait until no member created before our round's ready is
//!          left ─► delete that ready node (only that one)
//! ```

use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, Error, Stat};
use tokio::time::Instant;
use uuid::Uuid;

use super::{ensure_containers, recover, Recovered};
use crate::lock::common::{join, reconnect_bound, until, PendingNode, Target};
use crate::RecipeError;

/// Curator's `DistributedDoubleBarrier.READY_NODE`.
const READY_NODE: &str = "ready";

/// How many times a create is tried again (after its parent vanished or its reply was
/// lost).
const CREATE_ATTEMPTS_MAX: u32 = 16;

/// A double barrier: [`DoubleBarrier::enter`] blocks until `members` participants have
/// entered, and [`Entered::leave`] blocks until every participant of the round has left
/// (Curator's `DistributedDoubleBarrier`; the "Double Barriers" recipe of the ZooKeeper
/// documentation).
///
/// # How it works
///
/// Curator's layout: each participant is an ephemeral node `<path>/<uuid>`, and the
/// participant that sees the quorum complete creates `<path>/ready`. Unlike Curator 5.4
/// (and up to 5.9), entering cannot be bypassed:
///
/// * an entrant returns only after it has itself read, *after* the last wake-up, either
///   at least `members` participants or a `ready` node created after its own node; a
///   spurious wake-up, a reconnect or a timeout re-check never lets it through (Curator's
///   GH-1290);
/// * the `ready` node is not counted as a participant, and a `ready` left behind by an
///   earlier round (its creation precedes our node) counts for nothing: only the
///   participants created after it count, and a full new round replaces it;
/// * participants still leaving an earlier round (created before that round's `ready`)
///   do not count towards the next round;
/// * a timed-out or cancelled enter deletes its node, so it is never counted by others
///   (Curator's CURATOR-318).
///
/// Leaving waits until every participant of our round (every node created before the
/// round's `ready`) is gone, whichever order they leave in. A participant whose session
/// expires inside the barrier is gone with its node, so the others' `leave` does not wait
/// for it; its own `leave` then still waits for the others. Dropping an [`Entered`]
/// without leaving deletes its node in the background.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::barrier::DoubleBarrier;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let barrier = DoubleBarrier::new(client, "/app/rounds/42", 3);
/// let inside = barrier.enter().await?; // all three are in
/// // ... work ...
/// inside.leave().await?; // all three are out
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DoubleBarrier {
    client: Client,
    path: String,
    members: usize,
}

/// A participant inside a [`DoubleBarrier`]. Leave with [`Entered::leave`]; dropping it
/// deletes its node in the background (the others then do not wait for it).
///
/// ```no_run
/// use std::time::Duration;
/// use corral_recipes::barrier::DoubleBarrier;
///
/// # async fn run(barrier: DoubleBarrier) -> Result<(), corral_recipes::RecipeError> {
/// if let Some(inside) = barrier.enter_timeout(Duration::from_secs(30)).await? {
///     println!("in, as {}", inside.node());
///     if !inside.leave_timeout(Duration::from_secs(30)).await? {
///         eprintln!("some participants are still inside");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping it leaves the barrier without waiting for the others"]
pub struct Entered {
    client: Client,
    path: String,
    node: String,
    ready_czxid: i64,
    pending: PendingNode,
}

/// How one look at the barrier ended.
enum Look {
    Entered(i64),
    Wait,
}

impl DoubleBarrier {
    /// A handle on the double barrier at `path` for `members` participants (every
    /// participant must use the same number).
    pub fn new(client: Client, path: impl Into<String>, members: usize) -> Self {
        DoubleBarrier {
            client,
            path: path.into(),
            members,
        }
    }

    /// The barrier directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The number of participants a round needs.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Enters, waiting until `members` participants are in.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for zero members; client errors;
    /// [`RecipeError::NodeDeleted`] when our node vanished while waiting (the session
    /// expired, or someone deleted it).
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future deletes our node in the background: nobody counts us.
    pub async fn enter(&self) -> Result<Entered, RecipeError> {
        let entered = self.enter_until(None).await?;
        Ok(entered.expect("no deadline"))
    }

    /// Enters, waiting at most `timeout`; `Ok(None)` when it passes (our node is then
    /// deleted, so the others do not count us).
    ///
    /// # Errors
    ///
    /// As [`DoubleBarrier::enter`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DoubleBarrier::enter`].
    pub async fn enter_timeout(&self, timeout: Duration) -> Result<Option<Entered>, RecipeError> {
        self.enter_until(Some(Instant::now() + timeout)).await
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<Option<Entered>, RecipeError> {
        if self.members == 0 {
            return Err(RecipeError::BadArguments(
                "a double barrier needs at least one member".into(),
            ));
        }
        let client = &self.client;
        let name = Uuid::new_v4().to_string();
        let node = join(&self.path, &name);
        let pending = PendingNode::new(client, Target::Path(node.clone()));
        // A timed-out enter deletes its node before returning, so that nobody counts it.
        let cleanup_bound = reconnect_bound(client).min(Duration::from_secs(10));
        let Some(ours) = self.create_member(&node, deadline).await? else {
            pending.abandon(cleanup_bound).await;
            return Ok(None);
        };
        loop {
            match self.look(&name, &ours, deadline).await? {
                None => {
                    pending.abandon(cleanup_bound).await;
                    return Ok(None);
                }
                Some(Look::Entered(ready_czxid)) => {
                    tracing::debug!(%node, "entered the double barrier");
                    return Ok(Some(Entered {
                        client: client.clone(),
                        path: self.path.clone(),
                        node,
                        ready_czxid,
                        pending,
                    }));
                }
                Some(Look::Wait) => {}
            }
        }
    }

    /// Creates our member node; `None` when `deadline` passed.
    async fn create_member(
        &self,
        node: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Stat>, RecipeError> {
        let client = &self.client;
        let options = CreateOptions::new(CreateMode::Ephemeral);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(created) = until(deadline, client.create(node, b"", &options)).await else {
                return Ok(None);
            };
            match created {
                Ok((_, stat)) => return Ok(Some(stat)),
                Err(Error::NoNode) if attempts < CREATE_ATTEMPTS_MAX => {
                    match until(deadline, ensure_containers(client, &self.path)).await {
                        None => return Ok(None),
                        Some(r) => r?,
                    }
                }
                Err(e) if e.is_retryable() || e == Error::NodeExists => {
                    if attempts >= CREATE_ATTEMPTS_MAX {
                        return Err(e.into());
                    }
                    if e.is_retryable() {
                        match recover(client, deadline).await {
                            Recovered::Connected => {}
                            Recovered::TimedOut => return Ok(None),
                            Recovered::Gone(e) => return Err(e.into()),
                        }
                    }
                    // Our name is unique: a node there is ours if our session owns it.
                    let Some(found) = until(deadline, client.exists(node)).await else {
                        return Ok(None);
                    };
                    match found {
                        Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => {
                            return Ok(Some(stat));
                        }
                        Ok(Some(_)) => return Err(Error::NodeExists.into()),
                        Ok(None) => {}
                        Err(e) if e.is_retryable() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One look at the barrier: entered, or wait (and the wait happened); `None` when the
    /// deadline passed.
    async fn look(
        &self,
        name: &str,
        ours: &Stat,
        deadline: Option<Instant>,
    ) -> Result<Option<Look>, RecipeError> {
        let client = &self.client;
        let ready_path = join(&self.path, READY_NODE);
        // Both watches are set before reading, so no change between the reads is missed.
        let ready = client.exists_and_watch(&ready_path);
        let children = client.get_and_watch_children(&self.path);
        let Some(ready) = until(deadline, ready).await else {
            return Ok(None);
        };
        let Some(children) = until(deadline, children).await else {
            return Ok(None);
        };
        let ((ready, ready_watch), (children, child_watch)) = match (ready, children) {
            (Ok(r), Ok(c)) => (r, c),
            (Err(e), _) | (_, Err(e)) => {
                if e == Error::NoNode {
                    // The directory went, and our node with it.
                    return Err(RecipeError::NodeDeleted(join(&self.path, name)));
                }
                if !e.is_retryable() {
                    return Err(e.into());
                }
                return match recover(client, deadline).await {
                    Recovered::Connected => Ok(Some(Look::Wait)),
                    Recovered::TimedOut => Ok(None),
                    Recovered::Gone(e) => Err(e.into()),
                };
            }
        };
        if !children.iter().any(|c| c == name) {
            return Err(RecipeError::NodeDeleted(join(&self.path, name)));
        }
        if let Some(r) = &ready {
            if r.czxid > ours.czxid {
                // Created after we joined: our round is complete.
                return Ok(Some(Look::Entered(r.czxid)));
            }
        }
        let members: Vec<&String> = children.iter().filter(|c| *c != READY_NODE).collect();
        let count = match &ready {
            None => members.len(),
            // A ready node older than ours belongs to an earlier round: only members that
            // joined after it count towards ours.
            Some(stale) => {
                let Some(czxids) = until(deadline, czxids(client, &self.path, &members)).await
                else {
                    return Ok(None);
                };
                czxids?
                    .iter()
                    .filter(|(_, czxid)| *czxid > stale.czxid)
                    .count()
            }
        };
        if count >= self.members {
            if let Some(stale) = &ready {
                tracing::debug!(
                    czxid = stale.czxid,
                    "replacing the ready node of an earlier round"
                );
                match client.delete(&ready_path, Some(stale.version)).await {
                    Ok(()) | Err(Error::NoNode) | Err(Error::BadVersion) => {}
                    Err(e) if e.is_retryable() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match client
                .create(&ready_path, b"", &CreateOptions::persistent())
                .await
            {
                Ok((_, stat)) => return Ok(Some(Look::Entered(stat.czxid))),
                // Someone else completed the round (or our create's reply was lost): the
                // next look finds a ready node newer than ours.
                Err(Error::NodeExists) => return Ok(Some(Look::Wait)),
                Err(e) if e.is_retryable() => {
                    return match recover(client, deadline).await {
                        Recovered::Connected => Ok(Some(Look::Wait)),
                        Recovered::TimedOut => Ok(None),
                        Recovered::Gone(e) => Err(e.into()),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        let woken = async {
            tokio::select! {
                r = ready_watch => r.map(|_| ()),
                r = child_watch => r.map(|_| ()),
            }
        };
        match until(deadline, woken).await {
            None => Ok(None),
            Some(Ok(())) => Ok(Some(Look::Wait)),
            // The session ended; the next look reports it.
            Some(Err(_)) => Ok(Some(Look::Wait)),
        }
    }
}

/// The `czxid` of each of `names` under `dir` (nodes gone meanwhile are left out).
async fn czxids(
    client: &Client,
    dir: &str,
    names: &[&String],
) -> Result<Vec<(String, i64)>, RecipeError> {
    let reads: Vec<_> = names.iter().map(|n| client.exists(&join(dir, n))).collect();
    let mut out = Vec::with_capacity(names.len());
    for (name, read) in names.iter().zip(reads) {
        if let Some(stat) = read.await? {
            out.push(((*name).clone(), stat.czxid));
        }
    }
    Ok(out)
}

impl Entered {
    /// The path of our participant node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Leaves: deletes our node and waits until every participant of this round has left
    /// (or is gone with its session).
    ///
    /// # Errors
    ///
    /// Client errors; the session's terminal error.
    ///
    /// # Cancellation safety
    ///
    /// Our node is deleted whatever (in the background if the future is dropped); only the
    /// wait for the others is given up.
    pub async fn leave(self) -> Result<(), RecipeError> {
        self.leave_until(None).await.map(|_| ())
    }

    /// Leaves, waiting at most `timeout` for the others; `Ok(false)` when it passes (our
    /// node is deleted either way).
    ///
    /// # Errors
    ///
    /// As [`Entered::leave`].
    ///
    /// # Cancellation safety
    ///
    /// As [`Entered::leave`].
    pub async fn leave_timeout(self, timeout: Duration) -> Result<bool, RecipeError> {
        self.leave_until(Some(Instant::now() + timeout)).await
    }

    async fn leave_until(self, deadline: Option<Instant>) -> Result<bool, RecipeError> {
        let Entered {
            client,
            path,
            node,
            ready_czxid,
            pending,
        } = self;
        let bound = match deadline {
            None => reconnect_bound(&client),
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        pending.abandon(bound).await;
        let ours = crate::lock::common::node_name(&node).to_owned();
        loop {
            let Some(listed) = until(deadline, client.get_children(&path)).await else {
                return Ok(false);
            };
            let children = match listed {
                Ok(c) => c,
                Err(Error::NoNode) => break,
                Err(e) if e.is_retryable() => match recover(&client, deadline).await {
                    Recovered::Connected => continue,
                    Recovered::TimedOut => return Ok(false),
                    Recovered::Gone(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            };
            let others: Vec<&String> = children
                .iter()
                .filter(|c| *c != READY_NODE && **c != ours)
                .collect();
            let Some(stats) = until(deadline, czxids(&client, &path, &others)).await else {
                return Ok(false);
            };
            let mut remaining: Vec<(String, i64)> = match stats {
                Ok(s) => s.into_iter().filter(|(_, c)| *c < ready_czxid).collect(),
                Err(e) if e.is_retryable() => continue,
                Err(e) => return Err(e),
            };
            remaining.sort();
            let Some((first, _)) = remaining.first() else {
                break;
            };
            let Some(watched) = until(deadline, client.exists_and_watch(&join(&path, first))).await
            else {
                return Ok(false);
            };
            match watched {
                Ok((None, _)) => continue,
                Ok((Some(_), watcher)) => match until(deadline, watcher).await {
                    None => return Ok(false),
                    Some(_) => continue,
                },
                Err(e) if e.is_retryable() => match recover(&client, deadline).await {
                    Recovered::Connected => continue,
                    Recovered::TimedOut => return Ok(false),
                    Recovered::Gone(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        // Everyone of our round is out: remove our round's ready node (only that one; a
        // newer round may have made its own already).
        let ready_path = join(&path, READY_NODE);
        if let Ok(Some(stat)) = client.exists(&ready_path).await {
            if stat.czxid == ready_czxid {
                match client.delete(&ready_path, Some(stat.version)).await {
                    Ok(()) | Err(Error::NoNode) | Err(Error::BadVersion) => {}
                    Err(e) => tracing::debug!(error = %e, "could not delete the ready node"),
                }
            }
        }
        tracing::debug!(%node, "left the double barrier");
        Ok(true)
    }
}
