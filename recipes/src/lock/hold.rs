//! Holding a lock: the loss monitor, reentrant holds shared by guards, and the release.
//!
//! ```text
//!   guard ─┐                     ┌─ monitor task: session states + a watch on our node
//!   guard ─┼─ HoldRef ─► Shared ─┤        │ Held / Suspended / Lost
//!   guard ─┘   (count)    (Hold) └─ watch channel ◄─┘  ─► guards' is_held(), not_held()
//!                            │
//!                            └─ last guard gone: abort the monitor, delete the node in a
//!                               task (retried across connection loss until the session ends)
//! ```

use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard, Weak};
use std::time::Duration;

use corral_client::{Client, EventType, KeeperState, OneshotWatcher, SessionStatus, Zxid};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::common::{spawn_cleanup, Target};
use crate::RecipeError;

/// Whether a guard still holds its lock (or lease).
///
/// A guard starts [`LockState::Held`]. It becomes [`LockState::Suspended`] as soon as the
/// client loses its connection: the session, and so the lock, may be expiring on the server
/// while we cannot tell. It goes back to `Held` when the same session reconnects and our
/// node is still there, and becomes [`LockState::Lost`] (for good) when the session expires,
/// is probably expired (disconnected for longer than its timeout, Curator's `LOST`), the
/// client is closed, or our node is deleted. [`LockState::Released`] follows a release.
///
/// Work that must not run without the lock (writes to a shared resource) checks
/// [`LockState::is_held`] and passes the fencing token along, so that the resource can
/// refuse a stale holder.
///
/// ```
/// use corral_recipes::lock::LockState;
/// assert!(LockState::Held.is_held());
/// assert!(!LockState::Suspended.is_held());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockState {
    /// We hold the lock.
    Held,
    /// The connection is down; we may or may not still hold the lock.
    Suspended,
    /// We no longer hold the lock: the session ended or our node was deleted.
    Lost,
    /// The guard was released.
    Released,
}

impl LockState {
    /// Whether this state means the lock is held.
    pub fn is_held(self) -> bool {
        self == LockState::Held
    }
}

/// How long a release waits for the delete before leaving it to the background.
const RELEASE_WAIT: Duration = Duration::from_secs(60);

/// One held node: its loss monitor and what to delete on release.
///
/// Dropping it releases in the background.
#[derive(Debug)]
pub(crate) struct Hold {
    inner: Option<HoldInner>,
}

#[derive(Debug)]
struct HoldInner {
    client: Client,
    target: Target,
    monitor: AbortHandle,
    state: Arc<watch::Sender<LockState>>,
    runtime: Handle,
}

impl Hold {
    /// Starts holding `path` (created in `token`), watched through `own_watch` (a watch on
    /// `path` set after we found we hold it). Returns the hold and its state channel.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub(crate) fn start(
        client: &Client,
        path: String,
        target: Target,
        token: Zxid,
        own_watch: OneshotWatcher,
    ) -> (Hold, watch::Receiver<LockState>) {
        let (tx, rx) = watch::channel(LockState::Held);
        let state = Arc::new(tx);
        let runtime = Handle::current();
        let epoch = client.status().epoch;
        let monitor = runtime
            .spawn(monitor(
                client.clone(),
                path,
                token,
                epoch,
                own_watch,
                state.clone(),
            ))
            .abort_handle();
        let hold = Hold {
            inner: Some(HoldInner {
                client: client.clone(),
                target,
                monitor,
                state,
                runtime,
            }),
        };
        (hold, rx)
    }

    /// Stops the monitor, marks the hold released and starts deleting the node.
    fn begin_release(&mut self) -> Option<tokio::task::JoinHandle<Result<(), RecipeError>>> {
        let inner = self.inner.take()?;
        inner.monitor.abort();
        transition(&inner.state, LockState::Released);
        Some(spawn_cleanup(&inner.runtime, inner.client, inner.target))
    }

    /// Releases and waits until the node is deleted (or gone with the session).
    async fn release(mut self) -> Result<(), RecipeError> {
        match self.begin_release() {
            None => Ok(()),
            Some(task) => match tokio::time::timeout(RELEASE_WAIT, task).await {
                Ok(Ok(result)) => result,
                // The runtime is shutting down, or the server is unreachable: the delete
                // goes on in the background (or the session ends, taking the node).
                Ok(Err(_)) | Err(_) => Ok(()),
            },
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        drop(self.begin_release());
    }
}

/// What a session status means for a hold taken in session `epoch`.
fn judge(status: &SessionStatus, epoch: u64) -> Option<bool> {
    use corral_client::ConnectionState as C;
    if status.epoch != epoch
        || status.is_terminal()
        || matches!(status.connection_state, C::Lost | C::Closed)
    {
        None
    } else {
        Some(status.keeper_state == KeeperState::SyncConnected)
    }
}

/// Moves to `next` unless the hold is already over: `Released` is final, and `Lost` only
/// gives way to `Released` (a release racing with the monitor never looks held again).
fn transition(state: &watch::Sender<LockState>, next: LockState) {
    state.send_if_modified(|s| {
        let allowed = match *s {
            LockState::Released => false,
            LockState::Lost => next == LockState::Released,
            current => current != next,
        };
        if allowed {
            *s = next;
        }
        allowed
    });
}

/// Follows the session and our node, and publishes whether we still hold the lock.
///
/// Runs until the lock is lost (then it ends) or the hold is released (then it is
/// aborted).
async fn monitor(
    client: Client,
    path: String,
    token: Zxid,
    epoch: u64,
    own_watch: OneshotWatcher,
    state: Arc<watch::Sender<LockState>>,
) {
    let lose = |why: &str| {
        tracing::info!(%path, why, "lock lost");
        transition(&state, LockState::Lost);
    };
    let mut states = client.state_watcher();
    let mut status = states.current();
    let mut own = Some(own_watch);
    // Set when a check after a reconnect failed for want of a connection.
    let mut recheck = false;
    loop {
        match judge(&status, epoch) {
            None => return lose("session ended"),
            Some(false) => {
                if *state.borrow() == LockState::Held {
                    tracing::info!(%path, "lock suspended: connection lost");
                    transition(&state, LockState::Suspended);
                }
            }
            Some(true) if *state.borrow() == LockState::Suspended || recheck => {
                recheck = false;
                match client.exists(&path).await {
                    Ok(Some(stat)) if stat.czxid == token.0 => {
                        tracing::info!(%path, "lock held again after reconnect");
                        transition(&state, LockState::Held);
                    }
                    Ok(_) => return lose("our node is gone"),
                    Err(e) if e.is_retryable() => recheck = true,
                    Err(_) => return lose("cannot check our node"),
                }
            }
            Some(true) => {}
        }
        tokio::select! {
            biased;
            event = async { own.as_mut().expect("guarded").await }, if own.is_some() => {
                own = None;
                match event {
                    Ok(e) if e.event_type == EventType::NodeDeleted => {
                        return lose("our node was deleted");
                    }
                    Ok(_) => match client.exists_and_watch(&path).await {
                        Ok((Some(stat), w)) if stat.czxid == token.0 => own = Some(w),
                        Ok(_) => return lose("our node was replaced"),
                        // Keep following the session; it tells us if the node goes with it.
                        Err(_) => {}
                    },
                    Err(_) => return lose("session ended"),
                }
            }
            changed = states.changed() => match changed {
                Ok(s) => status = s,
                Err(_) => return lose("client stopped"),
            },
            _ = tokio::time::sleep(Duration::from_millis(200)), if recheck => {}
        }
    }
}

/// One acquisition, shared by every guard a handle hands out for it (reentrancy).
#[derive(Debug)]
pub(crate) struct Shared {
    path: String,
    token: Zxid,
    state: watch::Receiver<LockState>,
    slot: StdMutex<Slot>,
}

#[derive(Debug)]
struct Slot {
    hold: Option<Hold>,
    count: usize,
}

impl Shared {
    fn slot(&self) -> StdMutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops one count; returns the hold to release if that was the last.
    fn decrement(&self) -> Option<Hold> {
        let mut slot = self.slot();
        slot.count = slot.count.saturating_sub(1);
        if slot.count == 0 {
            slot.hold.take()
        } else {
            None
        }
    }
}

/// A guard's share of a hold. The last one to go releases the node.
#[derive(Debug)]
pub(crate) struct HoldRef {
    shared: Arc<Shared>,
    counted: bool,
}

impl HoldRef {
    /// The first share of a new hold.
    pub(crate) fn new(
        hold: Hold,
        state: watch::Receiver<LockState>,
        path: String,
        token: Zxid,
    ) -> Self {
        HoldRef {
            shared: Arc::new(Shared {
                path,
                token,
                state,
                slot: StdMutex::new(Slot {
                    hold: Some(hold),
                    count: 1,
                }),
            }),
            counted: true,
        }
    }

    pub(crate) fn path(&self) -> &str {
        &self.shared.path
    }

    pub(crate) fn token(&self) -> Zxid {
        self.shared.token
    }

    pub(crate) fn state(&self) -> LockState {
        *self.shared.state.borrow()
    }

    pub(crate) fn state_watcher(&self) -> watch::Receiver<LockState> {
        let mut rx = self.shared.state.clone();
        rx.mark_unchanged();
        rx
    }

    pub(crate) async fn not_held(&self) -> LockState {
        let mut rx = self.shared.state.clone();
        let seen = rx.wait_for(|s| !s.is_held()).await.map(|s| *s).ok();
        seen.unwrap_or_else(|| *rx.borrow())
    }

    pub(crate) fn hold_count(&self) -> usize {
        self.shared.slot().count
    }

    /// Gives up this share; if it was the last, deletes the node and waits for it.
    pub(crate) async fn release(mut self) -> Result<(), RecipeError> {
        self.counted = false;
        match self.shared.decrement() {
            Some(hold) => hold.release().await,
            None => Ok(()),
        }
    }
}

impl Drop for HoldRef {
    fn drop(&mut self) {
        if self.counted {
            // Dropping the hold (outside the slot's lock) releases it in the background.
            drop(self.shared.decrement());
        }
    }
}

/// The hold a handle currently has on one lock, for reentrancy. It does not keep the hold
/// alive: that is the guards' job.
#[derive(Debug, Default)]
pub(crate) struct Reentrant {
    current: StdMutex<Weak<Shared>>,
}

impl Reentrant {
    fn current(&self) -> Option<Arc<Shared>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }

    /// Another share of the current hold, if there is one and it is held.
    ///
    /// # Errors
    ///
    /// [`RecipeError::HoldNotValid`] when guards of a suspended or lost hold are alive.
    pub(crate) fn reenter(&self) -> Result<Option<HoldRef>, RecipeError> {
        let Some(shared) = self.current() else {
            return Ok(None);
        };
        let mut slot = shared.slot();
        if slot.hold.is_none() || slot.count == 0 {
            return Ok(None);
        }
        let state = *shared.state.borrow();
        if !state.is_held() {
            return Err(RecipeError::HoldNotValid(state));
        }
        slot.count += 1;
        drop(slot);
        Ok(Some(HoldRef {
            shared,
            counted: true,
        }))
    }

    /// Remembers `hold` as the current hold.
    pub(crate) fn set(&self, hold: &HoldRef) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&hold.shared);
    }

    /// The node path and state of the current hold, if any guard of it is alive.
    pub(crate) fn active(&self) -> Option<(String, LockState)> {
        let shared = self.current()?;
        let slot = shared.slot();
        (slot.hold.is_some() && slot.count > 0)
            .then(|| (shared.path.clone(), *shared.state.borrow()))
    }
}

/// The accessors every guard shares; the guard has a `hold: HoldRef` field.
macro_rules! guard_accessors {
    ($what:literal) => {
        #[doc = concat!("The path of the ", $what, " node this guard holds.")]
        pub fn path(&self) -> &str {
            self.hold.path()
        }

        #[doc = concat!(
            "The fencing token: the zxid that created the ", $what, " node (`czxid`).\n\n",
            "Tokens of successive acquisitions of the same lock strictly increase, so a ",
            "resource that remembers the highest token it has seen can refuse a holder ",
            "whose lock was lost (a stale token)."
        )]
        pub fn fencing_token(&self) -> corral_client::Zxid {
            self.hold.token()
        }

        /// The current state (held, suspended, lost, released).
        pub fn state(&self) -> $crate::lock::LockState {
            self.hold.state()
        }

        /// Whether the lock is held now (`state() == LockState::Held`). Check it before
        /// each step that needs the lock; it turns false as soon as the connection is
        /// lost.
        pub fn is_held(&self) -> bool {
            self.hold.state().is_held()
        }

        /// A channel of state changes (from now on; the current value is readable with
        /// `borrow()`).
        pub fn state_watcher(&self) -> tokio::sync::watch::Receiver<$crate::lock::LockState> {
            self.hold.state_watcher()
        }

        /// Waits until the lock is no longer held (suspended, lost or released) and
        /// returns that state; at once if it is not held now.
        ///
        /// # Cancellation safety
        ///
        /// Cancel-safe.
        pub async fn not_held(&self) -> $crate::lock::LockState {
            self.hold.not_held().await
        }

        #[doc = concat!(
            "Releases the ", $what, " and waits until its node is deleted (dropping the ",
            "guard does the same in the background). With other guards of the same hold ",
            "alive (reentrancy), only this share is given up.\n\n",
            "# Errors\n\n",
            "A client error that retrying cannot fix (e.g. `NoAuth`). Connection loss is ",
            "retried until the session ends, which deletes the node anyway.\n\n",
            "# Cancellation safety\n\n",
            "The release happens whatever: dropping the future leaves the delete running in ",
            "the background."
        )]
        pub async fn release(self) -> Result<(), $crate::RecipeError> {
            self.hold.release().await
        }
    };
}
pub(crate) use guard_accessors;
