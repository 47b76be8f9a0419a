//! A fair, reentrant distributed mutex with Curator's `InterProcessMutex` node layout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use corral_client::Client;
use tokio::time::Instant;

use super::common::until;
use super::hold::{guard_accessors, HoldRef, Reentrant};
use super::sequential::{self, Rule, Spec};
use crate::RecipeError;

/// Curator's `InterProcessMutex` lock name: nodes are `<path>/_c_<uuid>-lock-<seq>`.
pub(crate) const LOCK_NAME: &str = "lock-";

/// A fair, reentrant distributed mutex (Curator's `InterProcessMutex`).
///
/// # How it works
///
/// To acquire, the handle creates an ephemeral-sequential node
/// `<path>/_c_<uuid>-lock-<seq>` (parents as containers, protected against connection loss),
/// lists the children and holds the lock if its node has the lowest sequence number.
/// Otherwise it watches only its immediate predecessor and looks again when that node
/// goes: waiters acquire in arrival order, and each release wakes exactly one waiter (no
/// herd). Children are ordered by their sequence *number*, so foreign children are
/// ignored and the signed 32-bit wrap of the counter keeps the order.
///
/// The layout is Curator's, so Rust and Java processes (Curator 5) can share one lock.
///
/// # Reentrancy
///
/// The handle is the owner: while a guard from this handle is alive and the lock is held,
/// [`Mutex::acquire`] returns at once with another guard of the same hold
/// ([`MutexGuard::hold_count`] counts them); the node is deleted when the last one goes.
/// Tasks that must exclude *each other* each need their own handle
/// (`Mutex::new(client.clone(), path)`); a `Mutex` is not `Clone` for that reason.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::lock::Mutex;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let mutex = Mutex::new(client.clone(), "/locks/orders");
/// let guard = mutex.acquire().await?;
/// println!("holding {} with fencing token {}", guard.path(), guard.fencing_token());
/// if guard.is_held() {
///     // ... work, passing guard.fencing_token() to the resource ...
/// }
/// guard.release().await?; // or just drop it
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Mutex {
    client: Client,
    path: String,
    data: Vec<u8>,
    /// One acquisition at a time per handle, so that concurrent calls share one node.
    serial: tokio::sync::Mutex<()>,
    current: Reentrant,
    wakeups: AtomicU64,
}

impl Mutex {
    /// A handle on the mutex at `path` (a directory that holds the lock nodes; created on
    /// first use).
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        Mutex {
            client,
            path: path.into(),
            data: Vec::new(),
            serial: tokio::sync::Mutex::new(()),
            current: Reentrant::default(),
            wakeups: AtomicU64::new(0),
        }
    }

    /// Sets the data stored in this handle's lock nodes (default empty; Curator stores the
    /// host address by default), e.g. to tell operators who holds the lock.
    pub fn with_node_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// The lock's directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Acquires the mutex, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`RecipeError::Client`] for client failures (e.g. `SessionExpired`, or
    /// `ConnectionLoss` when the connection does not come back within the session
    /// timeout); [`RecipeError::NodeDeleted`] when our node is deleted while we wait;
    /// [`RecipeError::HoldNotValid`] when this handle's guards of a suspended or lost hold
    /// are still alive.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future gives up the attempt and deletes its node in the background,
    /// even if its create is still in flight; nothing is left behind.
    pub async fn acquire(&self) -> Result<MutexGuard, RecipeError> {
        let guard = self.acquire_until(None).await?;
        Ok(guard.expect("no deadline"))
    }

    /// Acquires the mutex, waiting at most `timeout`; `Ok(None)` when it passes (our node
    /// is then deleted before returning, or in the background if the server is
    /// unreachable).
    ///
    /// # Errors
    ///
    /// As [`Mutex::acquire`].
    ///
    /// # Cancellation safety
    ///
    /// As [`Mutex::acquire`].
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<MutexGuard>, RecipeError> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// Acquires with an optional deadline (shared with the semaphore).
    pub(crate) async fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<MutexGuard>, RecipeError> {
        let Some(_serial) = until(deadline, self.serial.lock()).await else {
            return Ok(None);
        };
        if let Some(hold) = self.current.reenter()? {
            return Ok(Some(MutexGuard { hold }));
        }
        let spec = Spec {
            client: &self.client,
            dir: &self.path,
            base: LOCK_NAME,
            markers: &[LOCK_NAME],
            rule: Rule::Exclusive,
            data: &self.data,
            wakeups: &self.wakeups,
        };
        let hold = sequential::acquire(spec, deadline).await?;
        Ok(hold.map(|hold| {
            self.current.set(&hold);
            MutexGuard { hold }
        }))
    }

    /// The names of the lock's nodes in queue order: the holder first, then the waiters
    /// (Curator's `getParticipantNodes`).
    ///
    /// # Errors
    ///
    /// Client errors; a lock never used has no participants.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn participants(&self) -> Result<Vec<String>, RecipeError> {
        sequential::participants(&self.client, &self.path, &[LOCK_NAME]).await
    }

    /// How many watch events have woken this handle's waits so far (diagnostics: with no
    /// herd effect, each acquisition that had to wait is woken once per node that left
    /// ahead of it, usually exactly once).
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

/// A hold on a [`Mutex`]: the lock is released when the last guard of the hold is dropped
/// (the delete completes in the background, retried across connection loss) or released.
///
/// The guard reports the lock's state: [`MutexGuard::is_held`] turns false as soon as the
/// connection is lost (`Suspended`), true again if the same session reconnects with our
/// node intact, and false for good once the session is lost or our node deleted.
///
/// # Example
///
/// ```no_run
/// use corral_recipes::lock::{LockState, Mutex};
///
/// # async fn run(mutex: Mutex) -> Result<(), corral_recipes::RecipeError> {
/// let guard = mutex.acquire().await?;
/// tokio::select! {
///     state = guard.not_held() => eprintln!("lock {state:?}: stop working"),
///     _ = async { /* work */ } => {}
/// }
/// drop(guard); // releases
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct MutexGuard {
    hold: HoldRef,
}

impl MutexGuard {
    guard_accessors!("lock");

    /// How many guards of this handle share the hold (reentrant acquisitions).
    pub fn hold_count(&self) -> usize {
        self.hold.hold_count()
    }
}
