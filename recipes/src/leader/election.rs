//! Leader election that runs the leader's work: Curator's `LeaderSelector`.
//!
//! ```text
//!   Queued ── Mutex(<path>, data = id).acquire() ──► Leading(token): spawn work(ctx)
//!     ▲                                                   │ work returns
//!     │                                                   │ or the lock is suspended/lost
//!     │                                                   │ or close()  ──► ctx cancelled,
//!     │                                                   ▼                 wait for work
//!     └─ auto-requeue / requeue() ◄── Idle ◄── release the lock ◄─ Relinquishing
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use corral_client::{Client, Zxid};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::participant::{participants, Participant};
use super::session::{usable_session, Usable};
use crate::lock::Mutex;
use crate::RecipeError;

/// Curator's `LeaderSelector` uses an `InterProcessMutex`: nodes are
/// `<path>/_c_<uuid>-lock-<seq>`, their data the participant id.
const LOCK_NAME: &str = "lock-";

/// Where a participant of a [`LeaderElection`] stands.
///
/// ```
/// use corral_recipes::leader::ElectionState;
/// assert!(!ElectionState::Queued.is_leader());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElectionState {
    /// Not queued: the work returned and the participant does not requeue (see
    /// [`LeaderElection::with_auto_requeue`] and [`Election::requeue`]).
    Idle,
    /// Waiting for leadership.
    Queued,
    /// Leading: the work runs. Carries the term's fencing token.
    Leading(Zxid),
    /// Leadership was lost or given up: the work was told to stop
    /// ([`LeaderContext::cancelled`]) and we wait for it to return before releasing.
    Relinquishing,
    /// Closed.
    Closed,
    /// Stopped because the client can no longer be used, or a request failed for good.
    Failed(RecipeError),
}

impl ElectionState {
    /// Whether this state means leadership (`Leading`).
    pub fn is_leader(&self) -> bool {
        matches!(self, ElectionState::Leading(_))
    }

    /// Whether the participant has stopped for good.
    pub fn is_final(&self) -> bool {
        matches!(self, ElectionState::Closed | ElectionState::Failed(_))
    }
}

/// What the leader's work gets: its fencing token and the signal to stop.
///
/// The work must return soon after [`LeaderContext::cancelled`] fires (the connection
/// dropped, the session was lost, our node was deleted, or the election is closing):
/// from then on another participant may lead. Leadership ends, and the next participant
/// is let in, only once the work has returned.
///
/// ```no_run
/// # async fn work(ctx: corral_recipes::leader::LeaderContext) {
/// loop {
///     tokio::select! {
///         _ = ctx.cancelled() => break, // leadership lost: stop now
///         _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
///             println!("leading with token {}", ctx.fencing_token());
///         }
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LeaderContext {
    cancel: CancellationToken,
    token: Zxid,
    node: String,
    id: String,
}

impl LeaderContext {
    /// The token cancelled when leadership is lost or given up.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Completes when the work must stop.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Whether the work must stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The fencing token of this term: the `czxid` of our lock node, strictly increasing
    /// across terms.
    pub fn fencing_token(&self) -> Zxid {
        self.token
    }

    /// The path of our lock node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Leader election that runs work while leading (Curator's `LeaderSelector`).
///
/// # How it works
///
/// Participants queue on a fair [`Mutex`] at `path` (Curator's layout:
/// `<path>/_c_<uuid>-lock-<seq>`, data = the participant id, so Java `LeaderSelector`s and
/// Rust participants share one election). The holder is the leader: it runs the work
/// closure with a [`LeaderContext`]. Leadership is relinquished (the lock released, the
/// next participant let in) when the work returns, or, after its context has been
/// cancelled, when the lock is *suspended* (connection lost) or *lost* (session expired,
/// node deleted), or when the election is closed. As with Curator's
/// `LeaderSelectorListenerAdapter`, a suspension already cancels: the work cannot know
/// whether its session survives.
///
/// With [`LeaderElection::with_auto_requeue`] the participant queues again after each
/// term; otherwise it goes idle until [`Election::requeue`].
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::leader::LeaderElection;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let election = LeaderElection::new(client, "/app/scheduler")
///     .with_id("node-1")
///     .with_auto_requeue(true)
///     .start(|ctx| async move {
///         println!("leading, token {}", ctx.fencing_token());
///         ctx.cancelled().await; // lead until told to stop
///     });
/// // ...
/// println!("leader: {:?}", election.leader().await?);
/// election.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LeaderElection {
    client: Client,
    path: String,
    id: String,
    auto_requeue: bool,
}

impl LeaderElection {
    /// A participant of the election at `path`, with an empty id and no auto-requeue.
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        LeaderElection {
            client,
            path: path.into(),
            id: String::new(),
            auto_requeue: false,
        }
    }

    /// Sets this participant's id (its node's data, shown by [`Election::participants`]).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Whether to queue again after each term (Curator's `autoRequeue`; default no).
    pub fn with_auto_requeue(mut self, auto_requeue: bool) -> Self {
        self.auto_requeue = auto_requeue;
        self
    }

    /// Starts participating: queues for leadership and runs `work` in a task of its own
    /// each time leadership is taken.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime. A panic of `work` does not stop the election: it ends the
    /// term like a return.
    pub fn start<F, Fut>(self, work: F) -> Election
    where
        F: FnMut(LeaderContext) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, state) = watch::channel(ElectionState::Queued);
        let shutdown = CancellationToken::new();
        let requeue = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            self.clone(),
            work,
            tx,
            shutdown.clone(),
            requeue.clone(),
        ));
        Election {
            client: self.client,
            path: self.path,
            id: self.id,
            state,
            shutdown,
            requeue,
            task: Some(task),
        }
    }
}

/// A running participant of a [`LeaderElection`]. Dropping it (or [`Election::close`])
/// tells a running work to stop, then releases leadership and leaves the election.
///
/// # Example
///
/// ```no_run
/// use corral_recipes::leader::{ElectionState, LeaderElection};
///
/// # async fn run(client: corral_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let election = LeaderElection::new(client, "/app/compactor")
///     .with_id("node-7")
///     .start(|ctx| async move { ctx.cancelled().await });
/// let mut states = election.state_watcher();
/// states.wait_for(ElectionState::is_leader).await?;
/// println!("we lead; participants: {:?}", election.participants().await?);
/// election.close().await; // the work is told to stop, then leadership is released
/// # Ok(()) }
/// ```
pub struct Election {
    client: Client,
    path: String,
    id: String,
    state: watch::Receiver<ElectionState>,
    shutdown: CancellationToken,
    requeue: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Election {
    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current state.
    pub fn state(&self) -> ElectionState {
        self.state.borrow().clone()
    }

    /// Whether this participant leads now (its work runs and has not been told to stop).
    pub fn is_leader(&self) -> bool {
        self.state.borrow().is_leader()
    }

    /// A watch channel of the participant's state.
    pub fn state_watcher(&self) -> watch::Receiver<ElectionState> {
        let mut rx = self.state.clone();
        rx.mark_unchanged();
        rx
    }

    /// Queues again after a term, when not auto-requeueing (Curator's `requeue`). Has no
    /// effect while queued or leading, beyond queueing once more after the current term.
    pub fn requeue(&self) {
        self.requeue.notify_one();
    }

    /// Every participant in queue order, the leader first.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn participants(&self) -> Result<Vec<Participant>, RecipeError> {
        participants(&self.client, &self.path, LOCK_NAME).await
    }

    /// The current leader, if any.
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

    /// Leaves the election: a running work is told to stop, and once it has returned the
    /// lock is released. Waits for all of that (however long the work takes to return).
    ///
    /// # Cancellation safety
    ///
    /// The election is closed whatever: dropping the future lets the rest happen in the
    /// background.
    pub async fn close(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn set(tx: &watch::Sender<ElectionState>, next: ElectionState) {
    tx.send_if_modified(|s| {
        if s.is_final() || *s == next {
            return false;
        }
        tracing::debug!(state = ?next, "election state");
        *s = next;
        true
    });
}

/// The participant's task.
async fn run<F, Fut>(
    election: LeaderElection,
    mut work: F,
    tx: watch::Sender<ElectionState>,
    shutdown: CancellationToken,
    requeue: Arc<Notify>,
) where
    F: FnMut(LeaderContext) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let client = &election.client;
    let mut states = client.state_watcher();
    let mutex =
        Mutex::new(client.clone(), election.path.clone()).with_node_data(election.id.as_bytes());
    let mut queue = true;
    loop {
        if !queue {
            set(&tx, ElectionState::Idle);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = requeue.notified() => {}
            }
        }
        set(&tx, ElectionState::Queued);
        let acquired = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = mutex.acquire() => r,
        };
        let guard = match acquired {
            Ok(guard) => guard,
            Err(e)
                if e.is_retryable()
                    || e.is_terminal()
                    || matches!(e, RecipeError::NodeDeleted(_)) =>
            {
                tracing::debug!(error = %e, "could not queue; waiting for a session");
                match usable_session(client, &mut states, &shutdown).await {
                    Usable::Session(_) => {
                        queue = true;
                        continue;
                    }
                    Usable::Shutdown => break,
                    Usable::Ended(e) => return set(&tx, ElectionState::Failed(e.into())),
                }
            }
            Err(e) => return set(&tx, ElectionState::Failed(e)),
        };
        let ctx = LeaderContext {
            cancel: CancellationToken::new(),
            token: guard.fencing_token(),
            node: guard.path().to_owned(),
            id: election.id.clone(),
        };
        tracing::info!(node = %ctx.node, token = %ctx.token, "took leadership");
        set(&tx, ElectionState::Leading(ctx.token));
        let mut task = tokio::spawn(work(ctx.clone()));
        let mut told = false;
        loop {
            tokio::select! {
                biased;
                done = &mut task => {
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "the leader's work panicked");
                    }
                    break;
                }
                _ = shutdown.cancelled(), if !told => {
                    told = true;
                    set(&tx, ElectionState::Relinquishing);
                    ctx.cancel.cancel();
                }
                state = guard.not_held(), if !told => {
                    tracing::info!(?state, "leadership lost; telling the work to stop");
                    told = true;
                    set(&tx, ElectionState::Relinquishing);
                    ctx.cancel.cancel();
                }
            }
        }
        set(&tx, ElectionState::Relinquishing);
        // Whatever the work did, it is over: the token says so too.
        ctx.cancel.cancel();
        if let Err(e) = guard.release().await {
            tracing::warn!(error = %e, "could not release leadership");
        }
        tracing::info!(node = %ctx.node, "relinquished leadership");
        if shutdown.is_cancelled() {
            break;
        }
        queue = election.auto_requeue;
    }
    set(&tx, ElectionState::Closed);
}
