//! A leader latch with Curator's `LeaderLatch` node layout.
//!
//! ```text
//!            ┌──────────── rejoin (node gone, session lost or replaced) ◄──────────┐
//!            ▼                                                                      │
//!   Joining: wait for a session ─► protected create _c_<uuid>-latch-<seq> ─┐        │
//!                                                                         ▼        │
//!   ┌──► list children, sort by sequence ─► first? ─ yes ─► our node, our session? ─┤ no
//!   │                                         │ no                   │ yes          │
//!   │                        Follower: watch predecessor      Leader(term): watch own node
//!   │                                         │                      │
//!   └──────── event / Reconnected (same session: check again) ◄──────┘
//!            Suspended (disconnected): not leader until checked again after reconnect
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use corral_client::{
    Client, ConnectionState, Error, EventType, OneshotWatcher, SessionId, SessionStatus, Stat,
    StateWatcher, Zxid,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, ReusableBoxFuture};
use uuid::Uuid;

use super::participant::{participants, Participant};
use super::session::{connected_in, usable_session, Usable};
use crate::lock::common::{
    join, protected_create, protected_prefix, reconnect_bound, sort_contenders, Created,
    PendingNode, Target,
};
use crate::RecipeError;

/// Curator's `LeaderLatch.LOCK_NAME`: nodes are `<path>/_c_<uuid>-latch-<seq>`.
pub(crate) const LATCH_NAME: &str = "latch-";

/// How long closing waits for our node's delete before leaving it to the background.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// One term of leadership: which node made us leader, in which session, and its fencing
/// token.
///
/// A participant that becomes leader again with the *same* node (after a suspension that
/// did not cost it the session) keeps the same term and token.
///
/// ```no_run
/// # async fn run(latch: corral_recipes::leader::LeaderLatch) -> Result<(), corral_recipes::RecipeError> {
/// let term = latch.leadership().await?;
/// println!("leader with fencing token {} (node {})", term.fencing_token(), term.node());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    token: Zxid,
    node: String,
    session: SessionId,
}

impl Term {
    /// The fencing token: the zxid that created the latch node (`czxid`). Tokens of
    /// successive terms of one latch strictly increase, so a resource that remembers the
    /// highest token it has seen can refuse a deposed leader.
    pub fn fencing_token(&self) -> Zxid {
        self.token
    }

    /// The path of the latch node behind this term.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The session that owns the node.
    pub fn session_id(&self) -> SessionId {
        self.session
    }
}

/// Where a [`LeaderLatch`] stands.
///
/// Only [`LatchState::Leader`] means leadership. The latch leaves it *before* anything
/// that could let another participant lead: on a disconnect (`Suspended`, until the node
/// and the session are checked again after reconnecting), a lost session, the deletion of
/// its node, or a close.
///
/// ```
/// use corral_recipes::leader::LatchState;
/// assert!(!LatchState::Suspended.is_leader());
/// assert!(LatchState::Closed.is_final());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LatchState {
    /// Creating our node (at start, or again after losing the previous one).
    Joining,
    /// Queued behind another participant, watching only its predecessor.
    Follower,
    /// The leader, for this term.
    Leader(Term),
    /// Disconnected: we may still be first on the server, but do not claim it.
    Suspended,
    /// Closed: leadership given up, node deleted.
    Closed,
    /// The latch stopped because the client can no longer be used (closed, session
    /// expired without renewal, authentication failed) or a request failed for good.
    Failed(RecipeError),
}

impl LatchState {
    /// Whether this state means leadership.
    pub fn is_leader(&self) -> bool {
        matches!(self, LatchState::Leader(_))
    }

    /// The term, when leader.
    pub fn term(&self) -> Option<&Term> {
        match self {
            LatchState::Leader(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the latch has stopped for good (`Closed` or `Failed`).
    pub fn is_final(&self) -> bool {
        matches!(self, LatchState::Closed | LatchState::Failed(_))
    }
}

/// Leader election by latch: every participant creates a node, and the one with the lowest
/// sequence number leads until it leaves (Curator's `LeaderLatch`).
///
/// # How it works
///
/// [`LeaderLatch::start`] spawns a task that creates `<path>/_c_<uuid>-latch-<seq>`
/// (ephemeral-sequential, protected, parents as containers, data = the participant id)
/// and lists the children ordered by sequence *number*. The first participant leads; each
/// other one watches only its predecessor (no herd). The layout is Curator's, so Rust and
/// Java (Curator 5) participants elect one leader among them.
///
/// Leadership is claimed conservatively:
///
/// * before claiming, the latch reads its own node and checks that it still exists and
///   is owned by the *current* session (`ephemeralOwner`), which rules out leading on a
///   node of an expired session (Curator's CURATOR-696, fixed in 5.7);
/// * when the connection drops, the leader stops claiming ([`LatchState::Suspended`])
///   until, reconnected in the same session, it has checked its node again;
/// * when the session is lost ([`ConnectionState::Lost`]) or replaced, or the node is
///   deleted, the latch rejoins with a new node (in the client's next session, when it
///   renews sessions: see [`corral_client::ClientBuilder::with_session_renewal`]);
/// * if the latch directory vanished meanwhile (a container reaped with our node), it is
///   created again (Curator 5.4 stalls there: CURATOR-724, fixed in 5.8).
///
/// Every term carries a fencing token ([`Term::fencing_token`]), the `czxid` of the node.
///
/// Dropping the latch (or [`LeaderLatch::close`]) gives up leadership and deletes the node.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use corral_client::Client;
/// use corral_recipes::leader::LeaderLatch;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let latch = LeaderLatch::start_with_id(client, "/app/leader", "worker-1");
/// if let Some(term) = latch.leadership_timeout(Duration::from_secs(5)).await? {
///     println!("leading with token {}", term.fencing_token());
///     let mut changes = latch.state_watcher();
///     // ... lead until `changes` says otherwise ...
///     changes.wait_for(|s| !s.is_leader()).await?;
/// }
/// latch.close().await?;
/// # Ok(()) }
/// ```
pub struct LeaderLatch {
    client: Client,
    path: String,
    id: String,
    state: watch::Receiver<LatchState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for LeaderLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderLatch")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl LeaderLatch {
    /// Starts participating in the election at `path` with an empty id.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(client: Client, path: impl Into<String>) -> LeaderLatch {
        Self::start_with_id(client, path, "")
    }

    /// Starts participating in the election at `path` with `id`, stored as the data of
    /// our node (what [`LeaderLatch::participants`] reports, as Curator's
    /// `getParticipants`).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start_with_id(
        client: Client,
        path: impl Into<String>,
        id: impl Into<String>,
    ) -> LeaderLatch {
        let path = path.into();
        let id = id.into();
        let (tx, state) = watch::channel(LatchState::Joining);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            client.clone(),
            path.clone(),
            id.clone(),
            tx,
            shutdown.clone(),
        ));
        LeaderLatch {
            client,
            path,
            id,
            state,
            shutdown,
            task: Some(task),
        }
    }

    /// The latch directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current state.
    pub fn state(&self) -> LatchState {
        self.state.borrow().clone()
    }

    /// Whether this participant leads now.
    pub fn has_leadership(&self) -> bool {
        self.state.borrow().is_leader()
    }

    /// The current term, if leading.
    pub fn term(&self) -> Option<Term> {
        self.state.borrow().term().cloned()
    }

    /// A watch channel of the latch's state (the current value is readable at once with
    /// `borrow()`; `changed()` waits for the next change).
    pub fn state_watcher(&self) -> watch::Receiver<LatchState> {
        let mut rx = self.state.clone();
        rx.mark_unchanged();
        rx
    }

    /// The latch's state changes from now on, as a [`futures_core::Stream`] that ends
    /// after the final state ([`LatchState::is_final`]). Like a watch channel, it yields the
    /// latest state after each change, so quick successive changes may be seen as one.
    pub fn state_stream(&self) -> LatchStateStream {
        LatchStateStream {
            next: ReusableBoxFuture::new(next_state(self.state_watcher())),
            done: false,
        }
    }

    /// Waits until this participant leads and returns the term.
    ///
    /// # Errors
    ///
    /// [`RecipeError::Closed`] when the latch is closed first; the error of
    /// [`LatchState::Failed`] when the latch stops for good.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: it only observes the latch.
    pub async fn leadership(&self) -> Result<Term, RecipeError> {
        let mut rx = self.state.clone();
        let state = rx
            .wait_for(|s| s.is_leader() || s.is_final())
            .await
            .map(|s| s.clone())
            .unwrap_or(LatchState::Closed);
        match state {
            LatchState::Leader(term) => Ok(term),
            LatchState::Failed(e) => Err(e),
            _ => Err(RecipeError::Closed),
        }
    }

    /// Waits at most `timeout` for leadership; `Ok(None)` when it passes (Curator's
    /// `await(timeout)`).
    ///
    /// # Errors
    ///
    /// As [`LeaderLatch::leadership`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn leadership_timeout(&self, timeout: Duration) -> Result<Option<Term>, RecipeError> {
        match tokio::time::timeout_at(Instant::now() + timeout, self.leadership()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Every participant in queue order, the leader first (Curator's `getParticipants`).
    ///
    /// # Errors
    ///
    /// Client errors; an unused latch has no participants.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn participants(&self) -> Result<Vec<Participant>, RecipeError> {
        participants(&self.client, &self.path, LATCH_NAME).await
    }

    /// The current leader, if any (Curator's `getLeader`).
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn leader(&self) -> Result<Option<Participant>, RecipeError> {
        Ok(self.participants().await?.into_iter().next())
    }

    /// Gives up leadership (at once: the state is [`LatchState::Closed`] before our node is
    /// deleted) and waits until our node is deleted, at most 10 s (then the delete goes on
    /// in the background). Dropping the latch does the same in the background.
    ///
    /// # Errors
    ///
    /// None so far; kept for symmetry with the other recipes.
    ///
    /// # Cancellation safety
    ///
    /// The latch is closed whatever: dropping the future leaves the delete running.
    pub async fn close(mut self) -> Result<(), RecipeError> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn next_state(
    mut rx: watch::Receiver<LatchState>,
) -> (Option<LatchState>, watch::Receiver<LatchState>) {
    let next = match rx.changed().await {
        Ok(()) => Some(rx.borrow_and_update().clone()),
        Err(_) => None,
    };
    (next, rx)
}

/// The state changes of a [`LeaderLatch`] as a stream; see [`LeaderLatch::state_stream`].
///
/// ```no_run
/// # async fn run(latch: corral_recipes::leader::LeaderLatch) {
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
/// let mut changes = latch.state_stream();
/// while let Some(state) = poll_fn(|cx| Pin::new(&mut changes).poll_next(cx)).await {
///     println!("latch is now {state:?}");
/// }
/// # }
/// ```
pub struct LatchStateStream {
    next: ReusableBoxFuture<'static, (Option<LatchState>, watch::Receiver<LatchState>)>,
    done: bool,
}

impl fmt::Debug for LatchStateStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatchStateStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for LatchStateStream {
    type Item = LatchState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LatchState>> {
        if self.done {
            return Poll::Ready(None);
        }
        let (next, rx) = std::task::ready!(self.next.poll(cx));
        match next {
            Some(state) => {
                if state.is_final() {
                    self.done = true;
                } else {
                    self.next.set(next_state(rx));
                }
                Poll::Ready(Some(state))
            }
            None => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// Publishes `next` unless the latch already stopped (final states are final).
fn publish(tx: &watch::Sender<LatchState>, next: LatchState) {
    tx.send_if_modified(|s| {
        if s.is_final() || *s == next {
            return false;
        }
        match &next {
            LatchState::Leader(t) => tracing::info!(node = %t.node, token = %t.token, "leader"),
            other => tracing::debug!(state = ?other, "latch state"),
        }
        *s = next;
        true
    });
}

/// Whether the node we read may make us leader: it is the node we created, and it belongs
/// to the session we are connected in now (CURATOR-696: a node of an expired session
/// must never grant leadership, even if its delete has not reached this server yet).
pub(crate) fn may_claim(stat: Option<&Stat>, created: &Stat, session: SessionId) -> bool {
    stat.is_some_and(|s| s.czxid == created.czxid && s.ephemeral_owner == session.0)
}

/// How a request raced against the session and a close.
enum Raced<T> {
    /// The request completed.
    Done(T),
    /// The latch is closing.
    Stop,
    /// The connection dropped (or the session changed) first: the request is abandoned.
    /// Reads are retried by the client for a while; the latch must not wait for that
    /// while it may be leader.
    Disconnected,
}

/// Runs `request` unless the latch closes or the session stops being `epoch`, connected.
async fn race<T>(
    request: impl std::future::Future<Output = T>,
    states: &mut StateWatcher,
    shutdown: &CancellationToken,
    epoch: u64,
) -> Raced<T> {
    tokio::pin!(request);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Raced::Stop,
            changed = states.changed() => match changed {
                Ok(s) if connected_in(&s, epoch) => {}
                _ => return Raced::Disconnected,
            },
            r = &mut request => return Raced::Done(r),
        }
    }
}

/// What the node loop tells the latch loop.
enum Next {
    /// Drop this node and create a new one.
    Rejoin,
    /// Close: give up leadership, delete the node.
    Stop,
    /// Stop for good.
    Fail(RecipeError),
}

/// How a failed request inside the node loop is handled.
fn on_error(e: Error) -> Option<Next> {
    if e.is_retryable() {
        // Wait for the connection at the top of the node loop.
        None
    } else if e.is_terminal() {
        Some(Next::Rejoin)
    } else {
        Some(Next::Fail(e.into()))
    }
}

/// The latch task: one node per iteration of the outer loop.
async fn run(
    client: Client,
    dir: String,
    id: String,
    tx: watch::Sender<LatchState>,
    shutdown: CancellationToken,
) {
    let mut states = client.state_watcher();
    // Consecutive creates that found no parent (a container reaped under us).
    let mut missing_parent = 0;
    loop {
        publish(&tx, LatchState::Joining);
        let session = match usable_session(&client, &mut states, &shutdown).await {
            Usable::Session(s) => s,
            Usable::Shutdown => return publish(&tx, LatchState::Closed),
            Usable::Ended(e) => return publish(&tx, LatchState::Failed(e.into())),
        };
        let prefix = protected_prefix(&Uuid::new_v4());
        let mut pending = PendingNode::new(
            &client,
            Target::Protected {
                dir: dir.clone(),
                prefix: prefix.clone(),
            },
        );
        let created = tokio::select! {
            biased;
            _ = shutdown.cancelled() => None,
            r = protected_create(
                &client, &dir, &prefix, LATCH_NAME, id.as_bytes(), None, &mut pending,
            ) => Some(r),
        };
        let created = match created {
            None => {
                publish(&tx, LatchState::Closed);
                return pending.abandon(CLOSE_WAIT).await;
            }
            Some(Ok(Some(created))) => {
                missing_parent = 0;
                created
            }
            Some(Ok(None)) => continue,
            // An ancestor was reaped between our creates (CURATOR-724's situation, where
            // Curator 5.4 gives up): create the path again.
            Some(Err(Error::NoNode)) if missing_parent < 16 => {
                missing_parent += 1;
                continue;
            }
            Some(Err(e)) if e.is_retryable() || e.is_terminal() => {
                tracing::debug!(error = %e, "latch create failed; trying again");
                continue;
            }
            Some(Err(e)) => return publish(&tx, LatchState::Failed(e.into())),
        };
        // The create may have been adopted after a reconnect: the session is whatever
        // owns the node, checked before any claim.
        tracing::debug!(path = %created.path, "latch node created");
        match hold_node(
            &client,
            &dir,
            &created,
            &session,
            &mut states,
            &tx,
            &shutdown,
        )
        .await
        {
            Next::Rejoin => {
                tracing::info!(path = %created.path, "latch node lost; rejoining");
                // Deletes the old node in the background, if it is still there.
                drop(pending);
            }
            Next::Stop => {
                publish(&tx, LatchState::Closed);
                return pending
                    .abandon(CLOSE_WAIT.min(reconnect_bound(&client)))
                    .await;
            }
            Next::Fail(e) => {
                publish(&tx, LatchState::Failed(e));
                return pending.abandon(CLOSE_WAIT).await;
            }
        }
    }
}

/// Follows one node until it is lost (or the latch stops).
async fn hold_node(
    client: &Client,
    dir: &str,
    created: &Created,
    session: &SessionStatus,
    states: &mut StateWatcher,
    tx: &watch::Sender<LatchState>,
    shutdown: &CancellationToken,
) -> Next {
    let epoch = session.epoch;
    loop {
        // 1. A usable connection in our session, or no claim at all.
        let status = client.status();
        if status.epoch != epoch
            || status.is_terminal()
            || status.connection_state == ConnectionState::Lost
        {
            return Next::Rejoin;
        }
        if !connected_in(&status, epoch) {
            publish(tx, LatchState::Suspended);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Next::Stop,
                changed = states.changed() => {
                    if changed.is_err() {
                        return Next::Rejoin;
                    }
                }
            }
            continue;
        }
        // 2. Where are we in the queue?
        let listed = match race(client.get_children(dir), states, shutdown, epoch).await {
            Raced::Done(r) => r,
            Raced::Stop => return Next::Stop,
            Raced::Disconnected => continue,
        };
        let children = match listed {
            Ok(c) => c,
            // The directory went, so our node went with it.
            Err(Error::NoNode) => return Next::Rejoin,
            Err(e) => match on_error(e) {
                Some(next) => return next,
                None => {
                    publish(tx, LatchState::Suspended);
                    continue;
                }
            },
        };
        let sorted = sort_contenders(&children, &[LATCH_NAME]);
        let Some(index) = sorted.iter().position(|c| c.name == created.name) else {
            return Next::Rejoin;
        };
        // 3. Claim (after checking our node and session), or watch the predecessor.
        let (watcher, leading): (OneshotWatcher, bool) = if index == 0 {
            let read = match race(
                client.exists_and_watch(&created.path),
                states,
                shutdown,
                epoch,
            )
            .await
            {
                Raced::Done(r) => r,
                Raced::Stop => return Next::Stop,
                Raced::Disconnected => continue,
            };
            match read {
                Ok((stat, watcher)) => {
                    // The session we read in must still be the session we hold.
                    let now = client.status();
                    if !connected_in(&now, epoch) {
                        continue;
                    }
                    if !may_claim(stat.as_ref(), &created.stat, now.session_id) {
                        tracing::warn!(
                            path = %created.path,
                            session = %now.session_id,
                            owner = ?stat.map(|s| SessionId(s.ephemeral_owner)),
                            "first in line, but the node is not ours in this session"
                        );
                        return Next::Rejoin;
                    }
                    publish(
                        tx,
                        LatchState::Leader(Term {
                            token: Zxid(created.stat.czxid),
                            node: created.path.clone(),
                            session: now.session_id,
                        }),
                    );
                    (watcher, true)
                }
                Err(e) => match on_error(e) {
                    Some(next) => return next,
                    None => {
                        publish(tx, LatchState::Suspended);
                        continue;
                    }
                },
            }
        } else {
            let predecessor = join(dir, &sorted[index - 1].name);
            publish(tx, LatchState::Follower);
            let read = match race(
                client.get_and_watch_data(&predecessor),
                states,
                shutdown,
                epoch,
            )
            .await
            {
                Raced::Done(r) => r,
                Raced::Stop => return Next::Stop,
                Raced::Disconnected => continue,
            };
            match read {
                Ok((_, _, watcher)) => (watcher, false),
                Err(Error::NoNode) => continue,
                Err(e) => match on_error(e) {
                    Some(next) => return next,
                    None => continue,
                },
            }
        };
        // 4. Wait for the watched node, the session, or a close.
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Next::Stop,
            changed = states.changed() => {
                if changed.is_err() {
                    return Next::Rejoin;
                }
            }
            event = watcher => match event {
                Ok(e) if leading && e.event_type == EventType::NodeDeleted => {
                    publish(tx, LatchState::Joining);
                    return Next::Rejoin;
                }
                Ok(e) => tracing::debug!(event = ?e.event_type, path = %e.path, "latch woken"),
                // The session ended: the top of the loop sees it.
                Err(_) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(czxid: i64, owner: i64) -> Stat {
        Stat {
            czxid,
            ephemeral_owner: owner,
            ..Stat::default()
        }
    }

    #[test]
    fn only_our_node_in_our_current_session_may_claim() {
        let created = stat(10, 7);
        assert!(may_claim(Some(&stat(10, 7)), &created, SessionId(7)));
        // The node of an expired session, still visible on a lagging server.
        assert!(!may_claim(Some(&stat(10, 7)), &created, SessionId(8)));
        // Another node at the same path (impossible with sequence numbers, but checked).
        assert!(!may_claim(Some(&stat(11, 7)), &created, SessionId(7)));
        assert!(!may_claim(None, &created, SessionId(7)));
    }

    #[test]
    fn final_states_stay_final() {
        let (tx, rx) = watch::channel(LatchState::Joining);
        publish(&tx, LatchState::Follower);
        assert_eq!(*rx.borrow(), LatchState::Follower);
        publish(&tx, LatchState::Closed);
        publish(&tx, LatchState::Joining);
        assert_eq!(*rx.borrow(), LatchState::Closed);
    }
}
